//! Hostile SMTP, IMAP and POP3 servers: what the live check and the roll engine's observation meet when a
//! server misbehaves on purpose. Each scripted server listens on loopback; every case must
//! end within the connection limit (plus the bounded goodbye) with a failure that says
//! what went wrong — never a hang, never a panic, never unbounded memory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use tlsa::live::capture::{ConnectOptions, capture};
use tlsa::live::endpoint::Endpoint;
use tlsa::live::verdict::describe_failure;

/// The connection limit used here; the goodbye after a chain is bounded separately.
const LIMIT: Duration = Duration::from_secs(2);
/// What a case may take beyond the limit (a loaded 2-core machine).
const SLACK: Duration = Duration::from_secs(2);

/// Accepts one connection and runs `script` on it in a thread.
fn serve(script: impl FnOnce(TcpStream) + Send + 'static) -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        if let Ok((stream, _)) = listener.accept() {
            stream.set_write_timeout(Some(Duration::from_secs(10))).ok();
            script(stream);
        }
    });
    addr
}

/// Reads one command line from the client (EHLO, STARTTLS …).
fn read_line(stream: &TcpStream) -> String {
    let mut line = String::new();
    let _ = BufReader::new(stream).read_line(&mut line);
    line
}

/// Greets, offers STARTTLS in the EHLO reply, and reads the STARTTLS command.
fn offer_starttls(stream: &mut TcpStream) {
    let _ = stream.write_all(b"220 mail.example.test ESMTP\r\n");
    let _ = read_line(stream);
    let _ = stream.write_all(b"250-mail.example.test\r\n250 STARTTLS\r\n");
    let _ = read_line(stream);
}

/// [`offer_starttls`], then agrees to start TLS.
fn agree_to_starttls(stream: &mut TcpStream) {
    offer_starttls(stream);
    let _ = stream.write_all(b"220 go ahead\r\n");
}

/// Captures from `addr` as the check does, and returns the failure text and the time taken.
fn attempt(addr: SocketAddr) -> (String, Duration) {
    attempt_on(addr, 25)
}

/// [`attempt`] with the dialogue of `port` (143 IMAP, 110 POP3, 25 SMTP).
fn attempt_on(addr: SocketAddr, port: u16) -> (String, Duration) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let endpoint = Endpoint::new("mail.example.test", port, None).unwrap();
    let options = ConnectOptions {
        timeout: LIMIT,
        ..ConnectOptions::default()
    };
    let started = Instant::now();
    let outcome = runtime.block_on(capture(addr, &endpoint, &options));
    let took = started.elapsed();
    match outcome {
        Ok(_) => panic!("a hostile server yielded a chain"),
        Err(failure) => (describe_failure(failure), took),
    }
}

fn bounded(case: &str, took: Duration) {
    assert!(
        took <= LIMIT + SLACK,
        "{case}: took {took:?}, beyond the {LIMIT:?} limit"
    );
}

#[test]
fn an_endless_greeting_line_is_cut_off() {
    let addr = serve(|mut stream| {
        let _ = stream.write_all(b"220 ");
        let chunk = [b'x'; 4096];
        // Up to 64 MiB, far beyond any line limit; stops when the client goes.
        for _ in 0..16_384 {
            if stream.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let (why, took) = attempt(addr);
    bounded("endless line", took);
    assert!(why.contains("longer than"), "{why}");
}

#[test]
fn an_endless_multi_line_greeting_is_cut_off() {
    let addr = serve(|mut stream| {
        for _ in 0..1_000_000 {
            if stream.write_all(b"220-still greeting you\r\n").is_err() {
                break;
            }
        }
    });
    let (why, took) = attempt(addr);
    bounded("endless reply", took);
    assert!(why.contains("lines"), "{why}");
}

#[test]
fn a_server_sending_one_byte_a_second_times_out() {
    let addr = serve(|mut stream| {
        for byte in b"220 slow greeting\r\n" {
            if stream.write_all(&[*byte]).is_err() {
                break;
            }
            thread::sleep(Duration::from_secs(1));
        }
    });
    let (why, took) = attempt(addr);
    bounded("one byte a second", took);
    assert!(why.contains("no answer within"), "{why}");
}

#[test]
fn a_server_closing_after_agreeing_to_starttls_is_a_handshake_failure() {
    let addr = serve(|mut stream| {
        agree_to_starttls(&mut stream);
        // …and hang up before any TLS.
    });
    let (why, took) = attempt(addr);
    bounded("close mid-STARTTLS", took);
    assert!(why.contains("TLS handshake failed"), "{why}");
}

#[test]
fn garbage_instead_of_tls_is_a_handshake_failure() {
    let addr = serve(|mut stream| {
        agree_to_starttls(&mut stream);
        let mut hello = [0u8; 512];
        let _ = stream.read(&mut hello);
        let _ = stream.write_all(&[0x42; 64 * 1024]);
    });
    let (why, took) = attempt(addr);
    bounded("garbage TLS", took);
    assert!(why.contains("TLS handshake failed"), "{why}");
}

#[test]
fn a_server_refusing_starttls_says_so() {
    let addr = serve(|mut stream| {
        offer_starttls(&mut stream);
        let _ = stream.write_all(b"454 TLS not available due to temporary reason\r\n");
    });
    let (why, took) = attempt(addr);
    bounded("454", took);
    assert!(why.contains("454"), "{why}");
}

/// An IMAP server that greets, answers CAPABILITY with STARTTLS, and then runs `then`
/// on the STARTTLS command's tag.
fn imap_until_starttls(stream: &mut TcpStream, then: impl FnOnce(&mut TcpStream, &str)) {
    let _ = stream.write_all(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n");
    for _ in 0..4 {
        let line = read_line(stream);
        let tag = line.split_whitespace().next().unwrap_or("a").to_string();
        if line.to_ascii_uppercase().contains("STARTTLS") {
            then(stream, &tag);
            return;
        }
        let _ = stream
            .write_all(format!("* CAPABILITY IMAP4rev1 STARTTLS\r\n{tag} OK done\r\n").as_bytes());
    }
}

#[test]
fn imap_an_endless_greeting_line_is_cut_off() {
    let addr = serve(|mut stream| {
        let _ = stream.write_all(b"* OK ");
        let chunk = [b'x'; 4096];
        for _ in 0..16_384 {
            if stream.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let (why, took) = attempt_on(addr, 143);
    bounded("IMAP endless line", took);
    assert!(why.contains("longer than"), "{why}");
}

#[test]
fn imap_a_megabyte_of_untagged_lines_is_bounded() {
    let addr = serve(|mut stream| {
        let _ = stream.write_all(b"* OK ready\r\n");
        let _ = read_line(&stream);
        // A megabyte of untagged answers, never the tagged completion.
        for _ in 0..(1 << 20) / 32 {
            if stream
                .write_all(b"* CAPABILITY IMAP4rev1 XPADDING\r\n")
                .is_err()
            {
                break;
            }
        }
        thread::sleep(LIMIT + SLACK);
    });
    let (why, took) = attempt_on(addr, 143);
    bounded("IMAP megabyte response", took);
    assert!(!why.is_empty());
    eprintln!("IMAP megabyte response: {why} ({took:?})");
}

#[test]
fn imap_one_byte_a_second_times_out() {
    let addr = serve(|mut stream| {
        for byte in b"* OK slow greeting\r\n" {
            if stream.write_all(&[*byte]).is_err() {
                break;
            }
            thread::sleep(Duration::from_secs(1));
        }
    });
    let (why, took) = attempt_on(addr, 143);
    bounded("IMAP one byte a second", took);
    assert!(why.contains("no answer within"), "{why}");
}

#[test]
fn imap_closing_after_agreeing_to_starttls_is_a_handshake_failure() {
    let addr = serve(|mut stream| {
        imap_until_starttls(&mut stream, |stream, tag| {
            let _ = stream.write_all(format!("{tag} OK Begin TLS negotiation now\r\n").as_bytes());
        });
    });
    let (why, took) = attempt_on(addr, 143);
    bounded("IMAP close mid-STARTTLS", took);
    assert!(why.contains("TLS handshake failed"), "{why}");
}

#[test]
fn pop3_closing_after_agreeing_to_stls_is_a_handshake_failure() {
    let addr = serve(|mut stream| {
        let _ = stream.write_all(b"+OK POP3 ready\r\n");
        for _ in 0..4 {
            let line = read_line(&stream).to_ascii_uppercase();
            if line.starts_with("STLS") {
                let _ = stream.write_all(b"+OK Begin TLS\r\n");
                return;
            }
            let _ = stream.write_all(b"+OK\r\nSTLS\r\n.\r\n");
        }
    });
    let (why, took) = attempt_on(addr, 110);
    bounded("POP3 close mid-STLS", took);
    assert!(why.contains("TLS handshake failed"), "{why}");
}
