//! The plain-text part of a connection: each protocol's dialogue up to the
//! point where TLS starts (RFC 3207 SMTP, RFC 2033 LMTP, RFC 3501/9051 IMAP,
//! RFC 2595 POP3). Nothing here trusts the server: lines and replies are
//! bounded, and bytes the server sends after its "go ahead" are refused
//! rather than fed into TLS (the STARTTLS command-injection class of bugs).

use std::fmt;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::endpoint::Protocol;

/// Longest line accepted from a server (RFC 5321 allows 512 for replies;
/// real servers stay far below this bound).
const MAX_LINE: usize = 8192;

/// Most lines accepted in one reply (multi-line greetings, capability lists).
const MAX_REPLY_LINES: usize = 256;

/// How getting to TLS failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartTlsError {
    /// The server does not offer TLS: no STARTTLS/STLS capability, or the
    /// command was refused (e.g. Postfix's `454 4.7.0 TLS not available due
    /// to local problem` when it cannot read its key).
    NotOffered(String),
    /// The server said something the protocol does not allow here, refused
    /// the session, or closed the connection.
    Protocol(String),
    /// Reading or writing failed.
    Io(String),
}

impl fmt::Display for StartTlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartTlsError::NotOffered(s) | StartTlsError::Protocol(s) | StartTlsError::Io(s) => {
                f.write_str(s)
            }
        }
    }
}

/// Where a dialogue is, so a timeout can say what the server never answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Greeting,
    Capabilities,
    StartTls,
    Handshake,
}

impl Stage {
    /// "no reply … while {describe}".
    pub fn describe(self, protocol: Protocol) -> String {
        match self {
            Stage::Connect => {
                "connecting (packets dropped on the way, or the host is down)".into()
            }
            Stage::Greeting => {
                "waiting for the server's greeting (if this port speaks TLS from the first byte, use --starttls none)".into()
            }
            Stage::Capabilities => match protocol {
                Protocol::Smtp => "waiting for the EHLO reply".into(),
                Protocol::Lmtp => "waiting for the LHLO reply".into(),
                _ => "waiting for the capability list".into(),
            },
            Stage::StartTls => format!("waiting for the {} reply", protocol.starttls_command()),
            Stage::Handshake => "during the TLS handshake".into(),
        }
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(code: u8) -> Stage {
        match code {
            0 => Stage::Connect,
            1 => Stage::Greeting,
            2 => Stage::Capabilities,
            3 => Stage::StartTls,
            _ => Stage::Handshake,
        }
    }
}

/// The current [`Stage`] of one connection, readable from outside the
/// future that advances it (the timeout that cancels it reads it).
#[derive(Debug, Default)]
pub struct StageCell(std::sync::atomic::AtomicU8);

impl StageCell {
    pub fn set(&self, stage: Stage) {
        self.0
            .store(stage.code(), std::sync::atomic::Ordering::Relaxed);
    }

    pub fn get(&self) -> Stage {
        Stage::from_code(self.0.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// Speaks `protocol` on `stream` until the server has agreed to start TLS.
/// `helo` is the name sent in EHLO/LHLO. Returns the server's greeting line
/// (for reports). On return the stream is positioned exactly where the TLS
/// handshake begins.
pub async fn negotiate<S>(
    stream: &mut S,
    protocol: Protocol,
    helo: &str,
    stage: &StageCell,
) -> Result<String, StartTlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conv = Conversation::new(stream);
    let greeting = match protocol {
        Protocol::ImplicitTls => return Ok(String::new()),
        Protocol::Smtp | Protocol::Lmtp => smtp(&mut conv, protocol, helo, stage).await?,
        Protocol::Imap => imap(&mut conv, stage).await?,
        Protocol::Pop3 => pop3(&mut conv, stage).await?,
    };
    if !conv.buf.is_empty() {
        return Err(StartTlsError::Protocol(format!(
            "the server sent {} bytes after agreeing to {} and before TLS began; a client must not \
             treat them as part of TLS (check for a proxy or a broken server)",
            conv.buf.len(),
            protocol.starttls_command()
        )));
    }
    Ok(greeting)
}

/// A line-oriented exchange over a byte stream that reads only what it needs
/// and keeps what it read ahead in `buf`.
struct Conversation<'a, S> {
    stream: &'a mut S,
    buf: Vec<u8>,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Conversation<'a, S> {
    fn new(stream: &'a mut S) -> Self {
        Conversation {
            stream,
            buf: Vec::new(),
        }
    }

    /// The next line without its CRLF (or bare LF), as lossy UTF-8.
    async fn line(&mut self, after: &str) -> Result<String, StartTlsError> {
        loop {
            let newline = self.buf.iter().position(|&b| b == b'\n');
            if newline.unwrap_or(self.buf.len()) > MAX_LINE {
                return Err(StartTlsError::Protocol(format!(
                    "the server sent a line longer than {MAX_LINE} bytes {after}"
                )));
            }
            if let Some(end) = newline {
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            let mut chunk = [0u8; 2048];
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|e| StartTlsError::Io(format!("reading {after}: {e}")))?;
            if n == 0 {
                return Err(StartTlsError::Protocol(format!(
                    "the server closed the connection {after}"
                )));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn send(&mut self, command: &str) -> Result<(), StartTlsError> {
        self.stream
            .write_all(format!("{command}\r\n").as_bytes())
            .await
            .map_err(|e| StartTlsError::Io(format!("sending {command}: {e}")))?;
        self.stream
            .flush()
            .await
            .map_err(|e| StartTlsError::Io(format!("sending {command}: {e}")))
    }

    /// An SMTP reply: `NNN-text` continuation lines, then `NNN text` (or
    /// a bare `NNN`). Returns the code and the text of each line.
    async fn smtp_reply(&mut self, after: &str) -> Result<SmtpReply, StartTlsError> {
        let mut lines = Vec::new();
        loop {
            let line = self.line(after).await?;
            let bytes = line.as_bytes();
            let code = (bytes.len() >= 3 && bytes[..3].iter().all(u8::is_ascii_digit))
                .then(|| line[..3].parse::<u16>().ok())
                .flatten()
                .ok_or_else(|| {
                    StartTlsError::Protocol(format!(
                        "the server sent {:?} {after}, which is not an SMTP reply",
                        shorten(&line)
                    ))
                })?;
            let separator = bytes.get(3).copied();
            if !matches!(separator, None | Some(b' ') | Some(b'-')) {
                return Err(StartTlsError::Protocol(format!(
                    "the server sent {:?} {after}, which is not an SMTP reply",
                    shorten(&line)
                )));
            }
            lines.push(line.get(4..).unwrap_or_default().to_string());
            if separator != Some(b'-') {
                return Ok(SmtpReply { code, lines });
            }
            if lines.len() >= MAX_REPLY_LINES {
                return Err(StartTlsError::Protocol(format!(
                    "the server sent more than {MAX_REPLY_LINES} reply lines {after}"
                )));
            }
        }
    }
}

struct SmtpReply {
    code: u16,
    /// The text after `NNN-`/`NNN ` of each line.
    lines: Vec<String>,
}

impl SmtpReply {
    /// `NNN text / text…`, bounded, for messages.
    fn shown(&self) -> String {
        shorten(&format!("{} {}", self.code, self.lines.join(" / ")))
    }
}

async fn smtp<S: AsyncRead + AsyncWrite + Unpin>(
    conv: &mut Conversation<'_, S>,
    protocol: Protocol,
    helo: &str,
    stage: &StageCell,
) -> Result<String, StartTlsError> {
    stage.set(Stage::Greeting);
    let greeting = conv.smtp_reply("before its greeting").await?;
    if greeting.code != 220 {
        let _ = conv.send("QUIT").await;
        return Err(StartTlsError::Protocol(format!(
            "the server refused the session with {:?} instead of a 220 greeting",
            greeting.shown()
        )));
    }
    let hello = if protocol == Protocol::Lmtp {
        "LHLO"
    } else {
        "EHLO"
    };
    stage.set(Stage::Capabilities);
    conv.send(&format!("{hello} {helo}")).await?;
    let ehlo = conv.smtp_reply(&format!("after {hello}")).await?;
    if ehlo.code != 250 {
        let _ = conv.send("QUIT").await;
        return Err(StartTlsError::NotOffered(format!(
            "{hello} was answered with {:?}, so no STARTTLS capability can be announced",
            ehlo.shown()
        )));
    }
    // The first line carries the server's name; the others are one extension each.
    let offered = ehlo.lines.iter().skip(1).any(|line| {
        line.split_whitespace()
            .next()
            .is_some_and(|kw| kw.eq_ignore_ascii_case("STARTTLS"))
    });
    if !offered {
        let _ = conv.send("QUIT").await;
        return Err(StartTlsError::NotOffered(format!(
            "STARTTLS is not among the {hello} capabilities ({})",
            capabilities(&ehlo.lines[1..])
        )));
    }
    stage.set(Stage::StartTls);
    conv.send("STARTTLS").await?;
    let go = conv.smtp_reply("after STARTTLS").await?;
    if go.code != 220 {
        let _ = conv.send("QUIT").await;
        return Err(StartTlsError::NotOffered(format!(
            "the server announced STARTTLS but answered it with {:?}",
            go.shown()
        )));
    }
    Ok(shorten(&format!("220 {}", greeting.lines.join(" / "))))
}

async fn imap<S: AsyncRead + AsyncWrite + Unpin>(
    conv: &mut Conversation<'_, S>,
    stage: &StageCell,
) -> Result<String, StartTlsError> {
    stage.set(Stage::Greeting);
    let greeting = conv.line("before its greeting").await?;
    let upper = greeting.to_ascii_uppercase();
    if upper.starts_with("* PREAUTH") {
        return Err(StartTlsError::NotOffered(format!(
            "the server greeted with PREAUTH ({:?}); STARTTLS is not allowed in the authenticated state",
            shorten(&greeting)
        )));
    }
    if !upper.starts_with("* OK") {
        return Err(StartTlsError::Protocol(format!(
            "the server greeted with {:?} instead of \"* OK\"",
            shorten(&greeting)
        )));
    }
    stage.set(Stage::Capabilities);
    // A greeting such as `* OK [CAPABILITY IMAP4rev1 STARTTLS …]` saves a round trip.
    let mut caps = bracketed_capabilities(&greeting);
    if caps.is_none() {
        conv.send("a1 CAPABILITY").await?;
        let (status, untagged) = imap_tagged(conv, "a1", "after CAPABILITY").await?;
        if !status.to_ascii_uppercase().starts_with("OK") {
            return Err(StartTlsError::Protocol(format!(
                "CAPABILITY was answered with {:?}",
                shorten(&status)
            )));
        }
        caps = untagged.iter().find_map(|line| {
            let upper = line.to_ascii_uppercase();
            upper
                .strip_prefix("* CAPABILITY ")
                .map(|rest| rest.split_whitespace().map(str::to_string).collect())
        });
    }
    let caps = caps.unwrap_or_default();
    if !caps.iter().any(|c| c.eq_ignore_ascii_case("STARTTLS")) {
        let _ = conv.send("a9 LOGOUT").await;
        return Err(StartTlsError::NotOffered(format!(
            "STARTTLS is not among the IMAP capabilities ({})",
            capabilities(&caps)
        )));
    }
    stage.set(Stage::StartTls);
    conv.send("a2 STARTTLS").await?;
    let (status, _) = imap_tagged(conv, "a2", "after STARTTLS").await?;
    if !status.to_ascii_uppercase().starts_with("OK") {
        return Err(StartTlsError::NotOffered(format!(
            "the server announced STARTTLS but answered it with {:?}",
            shorten(&status)
        )));
    }
    Ok(shorten(&greeting))
}

/// `[CAPABILITY a b c]` inside an IMAP greeting, upper-cased.
fn bracketed_capabilities(greeting: &str) -> Option<Vec<String>> {
    let upper = greeting.to_ascii_uppercase();
    let start = upper.find("[CAPABILITY ")? + "[CAPABILITY ".len();
    let end = start + upper[start..].find(']')?;
    Some(
        upper[start..end]
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    )
}

/// Reads untagged lines until the line tagged `tag`; returns the tagged
/// status text (`OK …`, `NO …`, `BAD …`) and the untagged lines.
async fn imap_tagged<S: AsyncRead + AsyncWrite + Unpin>(
    conv: &mut Conversation<'_, S>,
    tag: &str,
    after: &str,
) -> Result<(String, Vec<String>), StartTlsError> {
    let mut untagged = Vec::new();
    loop {
        let line = conv.line(after).await?;
        if let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
            return Ok((rest.to_string(), untagged));
        }
        if line.to_ascii_uppercase().starts_with("* BYE") {
            return Err(StartTlsError::Protocol(format!(
                "the server ended the session {after}: {:?}",
                shorten(&line)
            )));
        }
        untagged.push(line);
        if untagged.len() >= MAX_REPLY_LINES {
            return Err(StartTlsError::Protocol(format!(
                "the server sent more than {MAX_REPLY_LINES} lines {after}"
            )));
        }
    }
}

async fn pop3<S: AsyncRead + AsyncWrite + Unpin>(
    conv: &mut Conversation<'_, S>,
    stage: &StageCell,
) -> Result<String, StartTlsError> {
    stage.set(Stage::Greeting);
    let greeting = conv.line("before its greeting").await?;
    if !greeting.starts_with("+OK") {
        return Err(StartTlsError::Protocol(format!(
            "the server greeted with {:?} instead of \"+OK\"",
            shorten(&greeting)
        )));
    }
    stage.set(Stage::Capabilities);
    conv.send("CAPA").await?;
    let status = conv.line("after CAPA").await?;
    // CAPA is optional (RFC 2449): without it, STLS is simply tried.
    let mut caps = None;
    if status.starts_with("+OK") {
        let mut list = Vec::new();
        loop {
            let line = conv.line("in the CAPA list").await?;
            if line == "." {
                break;
            }
            list.push(line);
            if list.len() >= MAX_REPLY_LINES {
                return Err(StartTlsError::Protocol(format!(
                    "the server sent more than {MAX_REPLY_LINES} CAPA lines"
                )));
            }
        }
        caps = Some(list);
    }
    if let Some(caps) = &caps
        && !caps.iter().any(|c| {
            c.split_whitespace()
                .next()
                .is_some_and(|kw| kw.eq_ignore_ascii_case("STLS"))
        })
    {
        let _ = conv.send("QUIT").await;
        return Err(StartTlsError::NotOffered(format!(
            "STLS is not among the POP3 capabilities ({})",
            capabilities(caps)
        )));
    }
    stage.set(Stage::StartTls);
    conv.send("STLS").await?;
    let go = conv.line("after STLS").await?;
    if !go.starts_with("+OK") {
        return Err(StartTlsError::NotOffered(format!(
            "STLS was answered with {:?}",
            shorten(&go)
        )));
    }
    Ok(shorten(&greeting))
}

fn capabilities(list: &[String]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    shorten(&list.join(", "))
}

/// Server text as shown in messages: bounded, without control characters.
fn shorten(text: &str) -> String {
    const MAX: usize = 200;
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() > MAX {
        format!("{}…", clean.chars().take(MAX).collect::<String>())
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    /// Runs `negotiate` against a scripted server: each `(expect, send)`
    /// pair waits for a client line starting with `expect` (empty: none),
    /// then sends `send`. Returns the result and what the client sent.
    async fn talk(
        protocol: Protocol,
        script: &[(&str, &str)],
    ) -> (Result<String, StartTlsError>, String) {
        let (mut client, mut server) = duplex(64 * 1024);
        let script: Vec<(String, String)> = script
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let server_task = tokio::spawn(async move {
            let mut heard = String::new();
            for (expect, send) in script {
                while !expect.is_empty() && !heard.lines().any(|l| l.starts_with(&expect)) {
                    let mut buf = [0u8; 1024];
                    let n = server.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return heard;
                    }
                    heard.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
                server.write_all(send.as_bytes()).await.unwrap();
            }
            // Collect whatever else the client says until it stops.
            let mut buf = [0u8; 1024];
            while let Ok(Ok(n)) =
                tokio::time::timeout(std::time::Duration::from_millis(50), server.read(&mut buf))
                    .await
            {
                if n == 0 {
                    break;
                }
                heard.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            heard
        });
        let stage = StageCell::default();
        let result = negotiate(&mut client, protocol, "client.example", &stage).await;
        drop(client);
        (result, server_task.await.unwrap())
    }

    #[tokio::test]
    async fn smtp_multiline_greeting_and_capabilities() {
        let (result, heard) = talk(
            Protocol::Smtp,
            &[
                (
                    "",
                    "220-mx.example ESMTP\r\n220-second line\r\n220 ready\r\n",
                ),
                (
                    "EHLO client.example",
                    "250-mx.example\r\n250-PIPELINING\r\n250-starttls\r\n250 8BITMIME\r\n",
                ),
                ("STARTTLS", "220 2.0.0 Ready to start TLS\r\n"),
            ],
        )
        .await;
        assert!(result.unwrap().contains("mx.example ESMTP"));
        assert!(heard.contains("EHLO client.example\r\n"), "{heard}");
    }

    #[tokio::test]
    async fn smtp_without_starttls_is_not_offered_and_quits() {
        let (result, heard) = talk(
            Protocol::Smtp,
            &[
                ("", "220 mx.example ESMTP\r\n"),
                (
                    "EHLO",
                    "250-mx.example\r\n250-STARTTLSX\r\n250 SIZE 100\r\n",
                ),
            ],
        )
        .await;
        let Err(StartTlsError::NotOffered(why)) = result else {
            panic!("{result:?}");
        };
        assert!(why.contains("STARTTLSX, SIZE 100"), "{why}");
        assert!(heard.contains("QUIT"), "{heard}");
    }

    #[tokio::test]
    async fn smtp_refusals_and_garbage() {
        let (result, _) = talk(Protocol::Smtp, &[("", "554 no service\r\n")]).await;
        assert!(
            matches!(&result, Err(StartTlsError::Protocol(w)) if w.contains("554 no service")),
            "{result:?}"
        );
        let (result, _) = talk(Protocol::Smtp, &[("", "SSH-2.0-OpenSSH\r\n")]).await;
        assert!(
            matches!(&result, Err(StartTlsError::Protocol(w)) if w.contains("not an SMTP reply")),
            "{result:?}"
        );
        let (result, _) = talk(
            Protocol::Smtp,
            &[
                ("", "220 x\r\n"),
                ("EHLO", "250-x\r\n250 STARTTLS\r\n"),
                (
                    "STARTTLS",
                    "454 4.7.0 TLS not available due to local problem\r\n",
                ),
            ],
        )
        .await;
        assert!(
            matches!(&result, Err(StartTlsError::NotOffered(w)) if w.contains("454 4.7.0")),
            "{result:?}"
        );
        let (result, _) = talk(Protocol::Smtp, &[("", "220 x\r\n"), ("EHLO", "")]).await;
        assert!(
            matches!(&result, Err(StartTlsError::Protocol(w)) if w.contains("closed the connection after EHLO")),
            "{result:?}"
        );
        let long = format!("220 {}\r\n", "x".repeat(MAX_LINE + 10));
        let (result, _) = talk(Protocol::Smtp, &[("", long.as_str())]).await;
        assert!(
            matches!(&result, Err(StartTlsError::Protocol(w)) if w.contains("longer than")),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn bytes_after_the_go_ahead_are_refused() {
        let (result, _) = talk(
            Protocol::Smtp,
            &[
                ("", "220 x\r\n"),
                ("EHLO", "250-x\r\n250 STARTTLS\r\n"),
                ("STARTTLS", "220 go ahead\r\n250 injected\r\n"),
            ],
        )
        .await;
        assert!(
            matches!(&result, Err(StartTlsError::Protocol(w)) if w.contains("before TLS began")),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn lmtp_says_lhlo() {
        let (result, heard) = talk(
            Protocol::Lmtp,
            &[
                ("", "220 lmtp\r\n"),
                ("LHLO", "250-lmtp\r\n250 STARTTLS\r\n"),
                ("STARTTLS", "220 go\r\n"),
            ],
        )
        .await;
        result.unwrap();
        assert!(heard.starts_with("LHLO client.example"), "{heard}");
    }

    #[tokio::test]
    async fn imap_capabilities_from_greeting_or_command() {
        let (result, heard) = talk(
            Protocol::Imap,
            &[
                (
                    "",
                    "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n",
                ),
                ("a2 STARTTLS", "a2 OK Begin TLS negotiation now\r\n"),
            ],
        )
        .await;
        result.unwrap();
        assert!(!heard.contains("CAPABILITY"), "{heard}");
        let (result, _) = talk(
            Protocol::Imap,
            &[
                ("", "* OK ready\r\n"),
                (
                    "a1 CAPABILITY",
                    "* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK done\r\n",
                ),
                ("a2 STARTTLS", "a2 OK go\r\n"),
            ],
        )
        .await;
        result.unwrap();
        let (result, _) = talk(
            Protocol::Imap,
            &[
                ("", "* OK ready\r\n"),
                (
                    "a1 CAPABILITY",
                    "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\na1 OK done\r\n",
                ),
            ],
        )
        .await;
        assert!(
            matches!(&result, Err(StartTlsError::NotOffered(w)) if w.contains("AUTH=PLAIN")),
            "{result:?}"
        );
        let (result, _) = talk(Protocol::Imap, &[("", "* PREAUTH hi\r\n")]).await;
        assert!(matches!(result, Err(StartTlsError::NotOffered(_))));
    }

    #[tokio::test]
    async fn pop3_capa_and_stls() {
        let (result, _) = talk(
            Protocol::Pop3,
            &[
                ("", "+OK POP3 ready\r\n"),
                ("CAPA", "+OK\r\nUSER\r\nSTLS\r\n.\r\n"),
                ("STLS", "+OK Begin TLS\r\n"),
            ],
        )
        .await;
        result.unwrap();
        let (result, _) = talk(
            Protocol::Pop3,
            &[("", "+OK ready\r\n"), ("CAPA", "+OK\r\nUSER\r\n.\r\n")],
        )
        .await;
        assert!(
            matches!(result, Err(StartTlsError::NotOffered(_))),
            "{result:?}"
        );
        // Without CAPA, STLS is tried anyway.
        let (result, _) = talk(
            Protocol::Pop3,
            &[
                ("", "+OK ready\r\n"),
                ("CAPA", "-ERR unknown\r\n"),
                ("STLS", "-ERR no TLS\r\n"),
            ],
        )
        .await;
        assert!(
            matches!(&result, Err(StartTlsError::NotOffered(w)) if w.contains("-ERR no TLS")),
            "{result:?}"
        );
    }
}
