//! Evaluates the semantic cache's hit decision on the labelled pairs in
//! `tests/data/cache_pairs.jsonl`: for a sweep of thresholds, the share of should-hit pairs that
//! hit and of trap pairs that hit (false hits), for cosine alone and for cosine + gates, per
//! category, on the tuning part and the held-out part separately; then the default it picks.
//!
//! `cargo run --release --bin cache-eval [-- PAIRS.jsonl [MODEL_DIR]]` (model: scripts/setup-model.sh)

use std::collections::BTreeMap;

use serde::Deserialize;
use switchyard::cache::gates::{verify, Block};
use switchyard::embed::{cosine, default_model_dir, Embedder};

#[derive(Deserialize)]
struct Pair {
    a: String,
    b: String,
    label: String,
    category: String,
    split: String,
    context_a: Option<serde_json::Value>,
    context_b: Option<serde_json::Value>,
}

struct Scored {
    pair: Pair,
    cos: f32,
    same_context: bool,
    gate: Option<Block>,
}

#[derive(Default, Clone, Copy)]
struct Rates {
    hits: usize,
    should_hit: usize,
    false_hits: usize,
    traps: usize,
}

impl Rates {
    fn hit_rate(&self) -> f64 {
        self.hits as f64 / self.should_hit.max(1) as f64
    }
    fn false_rate(&self) -> f64 {
        self.false_hits as f64 / self.traps.max(1) as f64
    }
}

fn rates<'a>(scored: impl Iterator<Item = &'a Scored>, threshold: f32, gates: bool) -> Rates {
    let mut r = Rates::default();
    for s in scored {
        let hit = s.same_context && s.cos >= threshold && (!gates || s.gate.is_none());
        if s.pair.label == "hit" {
            r.should_hit += 1;
            r.hits += hit as usize;
        } else {
            r.traps += 1;
            r.false_hits += hit as usize;
        }
    }
    r
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let pairs_path = args.get(1).cloned().unwrap_or_else(|| "tests/data/cache_pairs.jsonl".into());
    let model_dir = args.get(2).map(std::path::PathBuf::from).unwrap_or_else(default_model_dir);
    let text = std::fs::read_to_string(&pairs_path).map_err(|e| format!("{pairs_path}: {e}"))?;
    let pairs: Vec<Pair> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{pairs_path}: {e}")))
        .collect::<Result<_, _>>()?;
    let mut model = Embedder::load(&model_dir, 2)?;
    let started = std::time::Instant::now();
    let mut vectors = Vec::with_capacity(pairs.len() * 2);
    let texts: Vec<&str> = pairs.iter().flat_map(|p| [p.a.as_str(), p.b.as_str()]).collect();
    for chunk in texts.chunks(32) {
        vectors.extend(model.embed_batch(chunk)?);
    }
    let embed_ms = started.elapsed().as_secs_f64() * 1e3;
    let prompts = texts.len();
    let scored: Vec<Scored> = pairs
        .into_iter()
        .enumerate()
        .map(|(i, pair)| Scored {
            cos: cosine(&vectors[2 * i], &vectors[2 * i + 1]),
            same_context: pair.context_a == pair.context_b,
            gate: verify(&pair.a, &pair.b),
            pair,
        })
        .collect();
    println!("{} pairs, {} prompts embedded in {embed_ms:.0} ms\n", scored.len(), prompts);

    let thresholds: Vec<f32> = (0..=24).map(|i| 0.50 + i as f32 * 0.02).collect();
    println!("| threshold | tune hit (cos) | tune false (cos) | tune hit (+gates) | tune false (+gates) |");
    println!("|---|---|---|---|---|");
    for &t in &thresholds {
        let tune = || scored.iter().filter(|s| s.pair.split == "tune");
        let (c, g) = (rates(tune(), t, false), rates(tune(), t, true));
        println!(
            "| {t:.2} | {:.1} % | {:.1} % | {:.1} % | {:.1} % |",
            c.hit_rate() * 100.0,
            c.false_rate() * 100.0,
            g.hit_rate() * 100.0,
            g.false_rate() * 100.0
        );
    }
    // The default: the lowest threshold whose tuning false-hit rate stays within 1 %.
    let pick = |gates: bool| {
        thresholds
            .iter()
            .copied()
            .find(|&t| rates(scored.iter().filter(|s| s.pair.split == "tune"), t, gates).false_rate() <= 0.01)
            .unwrap_or(0.98)
    };
    for (name, gates) in [("cosine alone", false), ("cosine + gates", true)] {
        let t = pick(gates);
        println!("\n### {name}: threshold {t:.2} (lowest with tune false hits <= 1 %)\n");
        println!("| category | tune | holdout |");
        println!("|---|---|---|");
        let mut cats: BTreeMap<&str, ()> = BTreeMap::new();
        for s in &scored {
            cats.insert(s.pair.category.as_str(), ());
        }
        for cat in cats.keys().copied().chain(["ALL"]) {
            let row = |split: &str| {
                let r = rates(
                    scored.iter().filter(|s| s.pair.split == split && (cat == "ALL" || s.pair.category == cat)),
                    t,
                    gates,
                );
                let mut parts = Vec::new();
                if r.should_hit > 0 {
                    parts.push(format!("hit {:.1} % ({}/{})", r.hit_rate() * 100.0, r.hits, r.should_hit));
                }
                if r.traps > 0 {
                    parts.push(format!("false hit {:.1} % ({}/{})", r.false_rate() * 100.0, r.false_hits, r.traps));
                }
                parts.join(", ")
            };
            println!("| {cat} | {} | {} |", row("tune"), row("holdout"));
        }
    }
    println!("\n### gate effect (all splits): blocks on should-hit pairs (lost hits) vs on traps\n");
    let mut by_gate: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for s in &scored {
        if let Some(b) = s.gate {
            let e = by_gate.entry(format!("{b:?}")).or_default();
            if s.pair.label == "hit" {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
    }
    println!("| gate | blocked should-hit | blocked traps |");
    println!("|---|---|---|");
    for (g, (lost, caught)) in by_gate {
        println!("| {g} | {lost} | {caught} |");
    }
    Ok(())
}
