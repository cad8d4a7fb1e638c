//! `${VAR}` / `${VAR:-default}` substitution on the YAML text, line by line, so every error keeps
//! its line number and comments may mention variables that are not set.

use super::ConfigError;

/// Replaces `${VAR}` and `${VAR:-default}` outside comments. `lookup` is the environment (a closure
/// so tests need not touch the process environment).
pub fn interpolate(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    for (idx, line) in text.split_inclusive('\n').enumerate() {
        let line_no = idx + 1;
        let code_end = comment_start(line).unwrap_or(line.len());
        let (code, comment) = line.split_at(code_end);
        let mut rest = code;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| ConfigError::at(line_no, "unterminated `${` (expected `}`)"))?;
            let expr = &after[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ConfigError::at(
                    line_no,
                    format!("invalid environment variable name `{name}` in `${{{expr}}}`"),
                ));
            }
            let value = match (lookup(name), default) {
                (Some(v), _) => v,
                (None, Some(d)) => d.to_string(),
                (None, None) => {
                    return Err(ConfigError::at(
                        line_no,
                        format!(
                            "environment variable `{name}` is not set (use `${{{name}:-default}}` to make it optional)"
                        ),
                    ))
                }
            };
            if value.contains('\n') {
                return Err(ConfigError::at(line_no, format!("environment variable `{name}` contains a newline")));
            }
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out.push_str(comment);
    }
    Ok(out)
}

/// Byte offset of a YAML comment: a `#` at the start or after whitespace, outside quotes.
fn comment_start(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    let mut quote: Option<u8> = None;
    for (i, &b) in bytes.iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) => return Some(i),
            None => {}
        }
    }
    None
}

/// The variable names mentioned by `${...}` in a string (for "which key to set" hints).
pub fn variable_names(raw: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let expr = &after[..end];
        names.push(expr.split_once(":-").map_or(expr, |(n, _)| n).to_string());
        rest = &after[end + 1..];
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("sk-123".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_set_and_default_values() {
        let out = interpolate("a: ${KEY}\nb: \"${MISSING:-x}\"\nc: ${EMPTY}\n", env).unwrap();
        assert_eq!(out, "a: sk-123\nb: \"x\"\nc: \n");
    }

    #[test]
    fn unset_without_default_names_var_and_line() {
        let err = interpolate("a: 1\nb: ${NOPE}\n", env).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("NOPE"), "{}", err.message);
    }

    #[test]
    fn comments_are_left_alone() {
        let out = interpolate("# set ${NOPE}\na: 1 # or ${NOPE}\nb: \"#${KEY}\"\n", env).unwrap();
        assert_eq!(out, "# set ${NOPE}\na: 1 # or ${NOPE}\nb: \"#sk-123\"\n");
    }

    #[test]
    fn rejects_bad_names_and_unterminated() {
        assert!(interpolate("a: ${A B}", env).is_err());
        assert_eq!(interpolate("a: ${KEY", env).unwrap_err().line, Some(1));
    }

    #[test]
    fn finds_variable_names() {
        assert_eq!(variable_names("${OPENAI_API_KEY:-}"), vec!["OPENAI_API_KEY"]);
        assert!(variable_names("plain").is_empty());
    }
}
