//! Config errors in the operator's words, with the offending line shown as
//! toml shows it (line number, text, caret) — except that a line that may
//! hold a secret is never shown, and neither is any value an error message
//! quotes from it: a config error lands in terminals, logs and tickets.
//!
//! serde's messages name Rust types ("expected struct SecretRef", "u16");
//! they are rewritten here into what to write instead, with a "did you
//! mean" for near-miss keys and values.

use std::ops::Range;
use std::path::PathBuf;

/// Keys whose value is a credential, or names one. A near-miss spelling of
/// them (an unknown key) is caught by [`is_secret_key`]'s patterns.
const SECRET_WORDS: &[&str] = &[
    "key", "token", "secret", "pass", "auth", "cred", "hmac", "bearer",
];

/// Keys that contain a secret word but hold no secret.
const NOT_SECRET: &[&str] = &["next_key", "key_type"];

/// Whether a key may hold a secret: the known credential keys and anything
/// that looks like one (an unknown `password`, `tsig-key`, `apikey`).
/// Any part of a dotted key counts: `tsig_key.value = …` and `[zone.token]`
/// hold a secret as surely as `tsig_key = …` does.
pub(crate) fn is_secret_key(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    key.split('.')
        .map(|part| part.trim().trim_matches(['"', '\'']))
        .any(|part| !NOT_SECRET.contains(&part) && SECRET_WORDS.iter().any(|w| part.contains(w)))
}

/// Whether each line (0-based) of `text` may hold a secret: a secret key is
/// assigned on it, it lies in a table whose header names a secret key, it
/// holds a TSIG-looking value, or it continues a multi-line string, array or
/// inline table opened on such a line.
fn secret_lines(text: &str) -> Vec<bool> {
    let mut open: Option<(&str, bool)> = None;
    let mut in_secret_table = false;
    // Brackets still open since a secret line (a multi-line array).
    let mut depth: i64 = 0;
    text.split('\n')
        .map(|line| {
            let trimmed = line.trim_start();
            let header = open.is_none() && depth == 0 && trimmed.starts_with('[');
            if header {
                let name = trimmed.trim_start_matches('[');
                let name = name.split(']').next().unwrap_or(name);
                in_secret_table = is_secret_key(name);
            }
            let secret = match open {
                Some((_, secret)) => secret,
                None => {
                    in_secret_table
                        || depth > 0
                        || assigned_keys(line).any(is_secret_key)
                        || line.to_ascii_lowercase().contains("hmac-")
                }
            };
            if secret && !header && open.is_none() {
                let opened = line.matches(['[', '{']).count() as i64;
                let closed = line.matches([']', '}']).count() as i64;
                depth = (depth + opened - closed).max(0);
            }
            for delim in ["\"\"\"", "'''"] {
                let count = line.matches(delim).count();
                if count % 2 == 1 {
                    open = match open {
                        Some((d, _)) if d == delim => None,
                        None => Some((delim, secret)),
                        other => other,
                    };
                }
            }
            secret
        })
        .collect()
}

/// The keys assigned on a line (`key =`, also inside inline tables).
fn assigned_keys(line: &str) -> impl Iterator<Item = &str> {
    line.match_indices('=').filter_map(move |(at, _)| {
        let before = line[..at].trim_end();
        // Past the whole character that ends the key: it may be several bytes.
        let start = before
            .char_indices()
            .rfind(|&(_, c)| {
                !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\''))
            })
            .map_or(0, |(i, c)| i + c.len_utf8());
        let key = &before[start..];
        (!key.is_empty()).then_some(key)
    })
}

/// Where a byte offset is: 0-based line index, 1-based column, line text.
fn locate(text: &str, offset: usize) -> (usize, usize, &str) {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let index = text[..line_start].matches('\n').count();
    let column = text[line_start..offset].chars().count() + 1;
    (index, column, &text[line_start..line_end])
}

/// "line N, column C: MESSAGE" and the line under it, as toml prints it
/// (gutter, text, caret), with a secret line's value left out.
pub(crate) fn render(text: &str, span: Option<Range<usize>>, message: &str) -> String {
    let Some(span) = span else {
        return message.to_string();
    };
    let (index, column, line) = locate(text, span.start);
    let secret = is_secret_line(text, index);
    let number = (index + 1).to_string();
    let gutter = " ".repeat(number.len());
    let (shown, caret_at, width) = if secret {
        let key = line.find('=').map_or("", |eq| line[..eq].trim());
        // Only a bare key is shown: text before an `=` that is quoted, or
        // continues a value (base64 ends in `=`), may be the secret itself.
        let bare = key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' '));
        let key = if bare { key } else { "" };
        let prefix = if key.is_empty() {
            String::new()
        } else {
            format!("{key} = ")
        };
        let caret_at = prefix.chars().count();
        (
            format!("{prefix}… (not shown: it may hold a secret)"),
            caret_at,
            1,
        )
    } else {
        let width = span.end.saturating_sub(span.start).max(1);
        let rest = line.chars().count().saturating_sub(column - 1).max(1);
        (line.to_string(), column - 1, width.min(rest))
    };
    // Not even the column of a secret line: it would tell the secret's length.
    let column = if secret {
        String::new()
    } else {
        format!(", column {column}")
    };
    format!(
        "line {number}{column}: {message}\n{gutter} |\n{number} | {shown}\n{gutter} | {}{}",
        " ".repeat(caret_at),
        "^".repeat(width)
    )
}

fn is_secret_line(text: &str, index: usize) -> bool {
    secret_lines(text).get(index).copied().unwrap_or(true)
}

/// A message with every quoted value replaced by `…`, and every backquoted
/// token that does not look like a key name.
fn redact(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(open) = rest.find(['"', '`']) {
        let quote = rest[open..].chars().next().expect("found");
        out.push_str(&rest[..=open]);
        let after = &rest[open + 1..];
        let Some(close) = find_closing(after, quote) else {
            out.push('…');
            return out;
        };
        let inner = &after[..close];
        let keyish = quote == '`'
            && inner.len() <= 32
            && inner
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        out.push_str(if keyish { inner } else { "…" });
        out.push(quote);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// The closing quote, skipping backslash escapes (serde quotes with Debug).
fn find_closing(text: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            '\\' if quote == '"' && !escaped => escaped = true,
            c if c == quote && !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

/// A toml/serde error as one operator message with its line. `syntax`:
/// the text is not TOML at all (then toml's own words are kept).
pub(crate) fn describe(text: &str, error: &toml::de::Error, syntax: bool) -> String {
    let span = error.span();
    let raw = match &span {
        // Whatever serde quotes from a secret line is the secret, or part of it.
        Some(span) if is_secret_line(text, locate(text, span.start).0) => redact(error.message()),
        _ => error.message().to_string(),
    };
    let message = match &span {
        Some(_) if syntax => format!("not valid TOML: {raw}"),
        Some(span) => translate(text, span.clone(), &raw),
        None => raw,
    };
    render(text, span, &message)
}

/// What the table around `offset` is called: `[[set]]`, `[dnssec]`, or the
/// inline table's key (`deploy`), for "unknown key … in …".
fn context(text: &str, offset: usize) -> Option<String> {
    let (index, column, line) = locate(text, offset);
    let before = line.chars().take(column - 1).collect::<String>();
    if let Some(open) = before.rfind('{') {
        return assigned_keys(&before[..open + 1])
            .last()
            .map(|k| format!("`{k}`"));
    }
    if line.trim_start().starts_with('[') {
        // A header's context is its parent table: `[[set.endpoint]]` is in [[set]].
        let path = line.trim().trim_matches(['[', ']']);
        return path
            .rsplit_once('.')
            .map(|(parent, _)| format!("[{}]", parent.trim()));
    }
    text.split('\n')
        .take(index)
        .filter(|l| l.trim_start().starts_with('['))
        .last()
        .map(|header| {
            header
                .trim()
                .split('#')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .filter(|h| !h.is_empty())
}

/// The key whose value holds `offset` (the last `key =` before it on its line),
/// or the last component of a table header.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let (_, column, line) = locate(text, offset);
    let trimmed = line.trim_start();
    if trimmed.starts_with('[') {
        let name = trimmed.trim_start_matches('[');
        let name = name.split(']').next().unwrap_or("").trim();
        return name.rsplit('.').next().map(|s| s.trim().to_string());
    }
    let before: String = line.chars().take(column - 1).collect();
    assigned_keys(&before).last().map(|k| {
        let k = k.trim_matches(['"', '\'']);
        k.rsplit('.').next().unwrap_or(k).to_string()
    })
}

/// The names in "expected one of `a`, `b`" / "expected `a` or `b`".
fn expected_names(message: &str) -> Vec<String> {
    let Some(at) = message.find("expected") else {
        return Vec::new();
    };
    message[at..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The name in "unknown field `x`" / "unknown variant `x`".
fn backquoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    rest.strip_prefix('`')?.split('`').next()
}

/// The closest of `candidates` to `name`, if it is close enough to be a typo.
pub(crate) fn did_you_mean<'a>(name: &str, candidates: &'a [String]) -> Option<&'a str> {
    let fold = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let name = fold(name);
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(&name, &fold(c)), c))
        .filter(|(distance, _)| {
            *distance <= 1
                || (*distance <= 2 && name.len() >= 5)
                || (*distance <= 3 && name.len() >= 10)
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c.as_str())
}

fn list(names: &[String]) -> String {
    names.join(", ")
}

/// serde's message for the value at `span`, in the config's terms.
fn translate(text: &str, span: Range<usize>, message: &str) -> String {
    let key = key_at(text, span.start);
    let key_name = key.clone().unwrap_or_else(|| "this value".into());
    let named = format!("`{key_name}`");
    let in_context = context(text, span.start)
        .filter(|c| {
            key.as_deref()
                .is_none_or(|k| !c.trim_matches(['[', ']']).ends_with(k))
        })
        .map(|c| format!(" in {c}"))
        .unwrap_or_default();
    let expected = expected_names(message);
    if let Some(unknown) = backquoted_after(message, "unknown field ") {
        let (_, _, line) = locate(text, span.start);
        let kind = if line.trim_start().starts_with('[') {
            "table"
        } else {
            "key"
        };
        return match did_you_mean(unknown, &expected) {
            Some(best) => format!("unknown {kind} `{unknown}`{in_context}, did you mean `{best}`?"),
            None if expected.is_empty() => format!("unknown {kind} `{unknown}`{in_context}"),
            None => format!(
                "unknown {kind} `{unknown}`{in_context}; expected one of: {}",
                list(&expected)
            ),
        };
    }
    if let Some(value) = backquoted_after(message, "unknown variant ") {
        let shown = if is_secret_key(&key_name) {
            "…"
        } else {
            value
        };
        return match did_you_mean(value, &expected) {
            Some(best) => format!("{named} = \"{shown}\" is not known, did you mean \"{best}\"?"),
            None => format!(
                "{named} = \"{shown}\" is not known; expected one of: {}",
                list(&expected)
            ),
        };
    }
    if let Some(field) = backquoted_after(message, "missing field ") {
        let place = context(text, span.start)
            .map(|c| format!(" in {c}"))
            .unwrap_or_default();
        return format!("missing `{field}`{place}");
    }
    let Some(wanted) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|m| m.split(", expected ").nth(1))
    else {
        return format!("{named}: {message}");
    };
    format!("{named}: expected {}", expectation(&key_name, wanted))
}

/// What to write, for serde's name of the expected type.
fn expectation(key: &str, wanted: &str) -> String {
    let port = key.contains("port");
    match wanted {
        "struct SecretRef" => format!(
            "{{ file = \"PATH\" }} or {{ env = \"VARIABLE\" }}: a secret is never written in the config itself (a config is shown, copied and backed up); put it in a file only this user may read{}",
            if key == "tsig_key" { " (a tsig-keygen key file, or algorithm:name:secret)" } else { "" }
        ),
        "u16" if port => "a port number (1-65535)".into(),
        "u16" => "a whole number from 0 to 65535".into(),
        "u32" | "u64" if matches!(key, "ttl" | "margin") => "a whole number of seconds".into(),
        "u8" | "u32" | "u64" | "usize" => "a whole number (0 or more)".into(),
        "a sequence" => "a list in brackets, e.g. [\"…\", \"…\"]".into(),
        "a string" => "text in double quotes".into(),
        "a boolean" => "true or false".into(),
        "enum Source" => "one of { certbot = \"DIR\" }, { certbot-pair = [\"DIR_A\", \"DIR_B\"] }, { files = { cert = \"…\", key = \"…\" } }, { acme-sh = \"DIR\" }, { lego = { path = \"DIR\", domain = \"NAME\" } }, { self-signed = { names = [\"HOST\"] } }".into(),
        "struct Deploy" => "a table, e.g. { dir = \"/etc/tlsa/live/NAME\", reload = [\"postfix\", \"reload\"] }".into(),
        "struct Dnssec" => "a [dnssec] table with resolver = \"ADDRESS\"".into(),
        w if w.starts_with("struct ") || w == "a map" => "a table { key = value, … }".into(),
        other => other.to_string(),
    }
}

/// A config that cannot be used, as one paragraph naming the file and place.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    pub file: PathBuf,
    pub message: String,
}

/// What a check of the config found wrong: the message, and where the
/// offending value is in the config's text when the check knows it.
/// [`Invalid::render`] makes it the one paragraph an operator reads (the
/// line shown under it, a secret's line never).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub span: Option<Range<usize>>,
    pub message: String,
}

impl Invalid {
    pub fn at(span: Range<usize>, message: String) -> Invalid {
        Invalid {
            span: Some(span),
            message,
        }
    }

    /// The paragraph for `text`, the config this was found in.
    pub fn render(&self, text: &str) -> String {
        render(text, self.span.clone(), &self.message)
    }
}

/// A message whose place is already in its words ("line 12: set …"), or
/// that has none (a setting left at its default).
impl From<String> for Invalid {
    fn from(message: String) -> Invalid {
        Invalid {
            span: None,
            message,
        }
    }
}

impl From<&str> for Invalid {
    fn from(message: &str) -> Invalid {
        Invalid::from(message.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by tests/fuzz_parsers.rs: a non-ASCII character right before a
    /// key (here U+FFFD, what a stray byte becomes) made the key's start land
    /// inside it, and the error formatter panicked instead of reporting.
    #[test]
    fn a_multibyte_character_before_a_key_is_reported_not_a_panic() {
        for text in ["\u{FFFD}=", "é tsig_key = 1", "[x]\n\u{1F600}key=\"v\"\n"] {
            let error = crate::config::Config::parse(text).unwrap_err();
            assert!(error.contains("line"), "{error}");
        }
        assert_eq!(
            assigned_keys("\u{FFFD}token = 1").collect::<Vec<_>>(),
            ["token"]
        );
    }

    #[test]
    fn secret_keys_and_lines() {
        for key in [
            "tsig_key",
            "api_key",
            "token",
            "password",
            "tsig-key",
            "apikey",
            "\"token\"",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["next_key", "server", "name", "dir"] {
            assert!(!is_secret_key(key), "{key}");
        }
        let text = "a = 1\ntsig_key = \"\"\"x\nS\"\"\"\nb = 2\nz = \"hmac-sha256:n:S\"\n";
        assert_eq!(secret_lines(text), [false, true, true, false, true, false]);
    }

    #[test]
    fn redaction_keeps_key_names_only() {
        assert_eq!(
            redact("invalid type: string \"hmac:a\\\"b\", expected `file` or `env`"),
            "invalid type: string \"…\", expected `file` or `env`"
        );
        assert_eq!(redact("unknown variant `a:b/c=`"), "unknown variant `…`");
        assert_eq!(redact("open \"abc"), "open \"…");
    }

    #[test]
    fn near_misses() {
        let keys: Vec<String> = ["state_dir", "dnssec", "zone", "set", "concurrency"]
            .map(String::from)
            .into();
        assert_eq!(did_you_mean("sets", &keys), Some("set"));
        assert_eq!(did_you_mean("zones", &keys), Some("zone"));
        assert_eq!(did_you_mean("concurency", &keys), Some("concurrency"));
        assert_eq!(did_you_mean("xyz", &keys), None);
    }
}
