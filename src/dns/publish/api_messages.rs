//! The API's own words in an error answer, whatever the API: the error
//! messages of Cloudflare, PowerDNS and deSEC bodies, each on one line and
//! bounded, or a short summary of a body that holds none (an HTML page, a
//! page of records from a server that is not the API).

/// Longest API message quoted in an error, and how many are quoted: an
/// error is a paragraph, not a copy of whatever the server sent.
const MAX_MESSAGE: usize = 200;
const MAX_MESSAGES: usize = 5;
/// Keys under which the APIs put their error messages.
const MESSAGE_KEYS: [&str; 5] = ["errors", "error", "detail", "messages", "non_field_errors"];

/// The API's own error messages in a body, whatever the API: Cloudflare's
/// `errors: [{code, message}]` (and `messages`), PowerDNS's `error` and
/// `errors`, deSEC's `detail` or per-field lists; at most `MAX_MESSAGES`.
/// Any other body (plain text, an HTML page, JSON from a server that is not
/// the API, such as a page of records) is summarised: its start, on one
/// line, at most `MAX_MESSAGE` characters.
pub fn api_messages(body: &[u8]) -> Vec<String> {
    let summary = || {
        // Enough bytes for the summary; the body may be megabytes.
        let text = String::from_utf8_lossy(&body[..body.len().min(8 * MAX_MESSAGE)]);
        let text = one_line(&text);
        if text.is_empty() {
            Vec::new()
        } else {
            vec![text]
        }
    };
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return summary();
    };
    let mut messages = Vec::new();
    collect_messages(&json, &mut messages, 0);
    messages.dedup();
    messages.truncate(MAX_MESSAGES);
    // An error envelope with no message in it (`"errors": []`) says nothing
    // more than the status; a body without one gets summarised.
    if messages.is_empty() && !has_message_keys(&json) {
        return summary();
    }
    messages
}

/// Whether `json` (or the objects of a top-level array) has a key the APIs
/// put error messages under.
fn has_message_keys(json: &serde_json::Value) -> bool {
    use serde_json::Value;
    match json {
        Value::Object(map) => MESSAGE_KEYS.iter().any(|k| map.contains_key(*k)),
        Value::Array(items) => items.iter().any(has_message_keys),
        _ => false,
    }
}

/// A deSEC field error: a string, or a list of strings.
fn is_field_error(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(_) => true,
        Value::Array(items) => !items.is_empty() && items.iter().all(Value::is_string),
        _ => false,
    }
}

fn collect_messages(value: &serde_json::Value, out: &mut Vec<String>, depth: usize) {
    use serde_json::Value;
    if depth > 4 || out.len() >= MAX_MESSAGES {
        return;
    }
    match value {
        Value::String(text) => {
            let text = one_line(text);
            if !text.is_empty() {
                out.push(text);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_messages(item, out, depth + 1);
            }
        }
        Value::Object(map) => {
            // {code, message}: Cloudflare's error objects.
            if let Some(Value::String(message)) = map.get("message") {
                let text = one_line(message);
                out.push(match map.get("code") {
                    Some(Value::Number(code)) => format!("{text} (code {code})"),
                    _ => text,
                });
                return;
            }
            let before = out.len();
            for key in MESSAGE_KEYS {
                if let Some(inner) = map.get(key) {
                    collect_messages(inner, out, depth + 1);
                }
            }
            if out.len() == before {
                // deSEC-style field errors: {"ttl": ["Ensure this value …"]};
                // only strings, never the records of some other answer.
                for (field, inner) in map.iter().filter(|(_, v)| is_field_error(v)) {
                    let mut found = Vec::new();
                    collect_messages(inner, &mut found, depth + 1);
                    out.extend(found.into_iter().map(|m| format!("{field}: {m}")));
                }
            }
        }
        _ => {}
    }
}

/// `text` on one line, without control characters, at most [`MAX_MESSAGE`] chars.
fn one_line(text: &str) -> String {
    let clean: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if clean.chars().count() > MAX_MESSAGE {
        let cut: String = clean.chars().take(MAX_MESSAGE).collect();
        format!("{cut}…")
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Cloudflare-shaped page of records, as a server that is not the
    /// configured API might answer.
    fn page_of_records(errors: &str) -> Vec<u8> {
        let records: Vec<String> = (0..100)
            .map(|i| format!(r#"{{"id":"r{i}","type":"TLSA","name":"_25._tcp.mx{i}.example.com","content":"3 1 1 {}","ttl":3600,"proxied":false}}"#, "ab".repeat(32)))
            .collect();
        format!(
            r#"{{"success":false,{errors}"result":[{}],"result_info":{{"page":1,"total_count":100}}}}"#,
            records.join(",")
        )
        .into_bytes()
    }

    #[test]
    fn a_body_without_error_messages_is_summarised_not_quoted() {
        let messages = api_messages(&page_of_records(""));
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].starts_with(r#"{"success":false,"result":[{"id":"r0""#));
        assert!(
            messages[0].chars().count() <= MAX_MESSAGE + 1,
            "{}",
            messages[0]
        );
        let with_errors = page_of_records(
            r#""errors":[{"code":7003,"message":"Could not route to /zones"},{"code":7000,"message":"No route for that URI"}],"#,
        );
        assert_eq!(
            api_messages(&with_errors),
            [
                "Could not route to /zones (code 7003)",
                "No route for that URI (code 7000)"
            ]
        );
        // However many messages, the error stays a paragraph.
        let many: Vec<String> = (0..50)
            .map(|i| format!(r#"{{"message":"{i} {}"}}"#, "m".repeat(500)))
            .collect();
        let many = format!(r#"{{"errors":[{}]}}"#, many.join(","));
        let messages = api_messages(many.as_bytes());
        assert!(messages.len() <= MAX_MESSAGES, "{}", messages.len());
        assert!(messages.iter().map(|m| m.chars().count()).sum::<usize>() <= 1024);
    }

    #[test]
    fn api_messages_of_every_shape() {
        let cloudflare = br#"{"success":false,"errors":[{"code":9109,"message":"Invalid access token"}],"messages":[],"result":null}"#;
        assert_eq!(
            api_messages(cloudflare),
            ["Invalid access token (code 9109)"]
        );
        let nested = br#"{"success":false,"errors":[{"code":1004,"message":"DNS Validation Error","error_chain":[{"code":9101,"message":"x"}]}]}"#;
        assert_eq!(api_messages(nested), ["DNS Validation Error (code 1004)"]);
        let pdns = br#"{"error": "RRset a.example. IN TLSA: Name is out of zone"}"#;
        assert_eq!(
            api_messages(pdns),
            ["RRset a.example. IN TLSA: Name is out of zone"]
        );
        let desec = br#"{"detail": "Invalid token."}"#;
        assert_eq!(api_messages(desec), ["Invalid token."]);
        let fields = br#"{"ttl": ["Ensure this value is greater than or equal to 3600."]}"#;
        assert_eq!(
            api_messages(fields),
            ["ttl: Ensure this value is greater than or equal to 3600."]
        );
        // deSEC bulk errors: one object per RRset, empty for the good ones.
        let bulk = br#"[{}, {"ttl": ["Ensure this value is greater than or equal to 3600."]}]"#;
        assert_eq!(
            api_messages(bulk),
            ["ttl: Ensure this value is greater than or equal to 3600."]
        );
        let empty = br#"{"success": false, "errors": [], "messages": [], "result": null}"#;
        assert!(api_messages(empty).is_empty());
        assert_eq!(api_messages(b"Unauthorized\n"), ["Unauthorized"]);
        assert!(api_messages(b"").is_empty());
        let long = "x".repeat(1000);
        assert_eq!(
            api_messages(long.as_bytes())[0].chars().count(),
            MAX_MESSAGE + 1
        );
        assert_eq!(api_messages(b"a\x07b\r\nc"), ["ab c"]);
    }
}
