//! Test material made at test time with the `openssl` command, and the
//! answers `openssl` itself gives for it (an implementation independent of
//! ours). Shared by the cross-check tests and the benchmark script.
#![allow(dead_code)] // each test crate uses a different part

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Key types the issue requires us to cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rsa(u32),
    P256,
    P384,
    Ed25519,
}

impl Alg {
    pub fn name(self) -> String {
        match self {
            Alg::Rsa(bits) => format!("rsa{bits}"),
            Alg::P256 => "p256".into(),
            Alg::P384 => "p384".into(),
            Alg::Ed25519 => "ed25519".into(),
        }
    }

    fn genpkey_args(self) -> Vec<String> {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect();
        match self {
            Alg::Rsa(bits) => v(&[
                "-algorithm",
                "RSA",
                "-pkeyopt",
                &format!("rsa_keygen_bits:{bits}"),
            ]),
            Alg::P256 => v(&["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
            Alg::P384 => v(&["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]),
            Alg::Ed25519 => v(&["-algorithm", "ED25519"]),
        }
    }
}

/// Panics with install advice when a tool the tests rely on is missing: a
/// missing tool must fail the test, never skip it.
pub fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` not found: install the test tools with `scripts/install-test-deps` \
         (apt-get install -y --no-install-recommends openssl ldnsutils hash-slinger bind9 \
         bind9-utils bind9-dnsutils knot knot-dnsutils unbound)"
    );
}

/// Runs a command that must succeed, returning its stdout.
pub fn run(program: &str, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    let out = run_status(program, args, stdin);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs a command and returns its output whatever its status.
pub fn run_status(program: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    require(program);
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

pub fn openssl(args: &[&str]) -> Vec<u8> {
    run("openssl", args, None)
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A CA that signs the leaf certificates of one test run.
pub struct Ca {
    pub key: PathBuf,
    pub cert: PathBuf,
}

pub fn make_ca(dir: &Path) -> Ca {
    let key = dir.join("ca.key");
    let cert = dir.join("ca.pem");
    generate_key(Alg::P256, &key);
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        s(&key),
        "-out",
        s(&cert),
        "-days",
        "30",
        "-subj",
        "/CN=Test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
    ]);
    Ca { key, cert }
}

/// One key in every encoding the tool reads, and the certificate for it.
pub struct KeySet {
    pub alg: Alg,
    /// Private key files (PKCS#8 PEM/DER, plus PKCS#1 or SEC1 where the type has it).
    pub private_keys: Vec<PathBuf>,
    /// SubjectPublicKeyInfo PEM/DER, plus PKCS#1 `RSA PUBLIC KEY` for RSA.
    pub public_keys: Vec<PathBuf>,
    /// PKCS#10 requests, PEM and DER.
    pub csrs: Vec<PathBuf>,
    /// Leaf certificate PEM and DER.
    pub certs: Vec<PathBuf>,
    /// Leaf then CA, as certbot's fullchain.pem.
    pub fullchain: PathBuf,
    pub cert_pem: PathBuf,
}

/// Generates a key of `alg` into `path` (PKCS#8 PEM) with `openssl genpkey`.
pub fn generate_key(alg: Alg, path: &Path) {
    let mut args: Vec<String> = vec!["genpkey".into()];
    args.extend(alg.genpkey_args());
    args.extend(["-out".into(), s(path).into()]);
    openssl(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// Generates a key of `alg` under `dir` in every encoding, and a leaf signed by `ca`.
pub fn make_key_set(dir: &Path, alg: Alg, ca: &Ca, host: &str) -> KeySet {
    let p = |name: &str| dir.join(format!("{}-{name}", alg.name()));
    let pkcs8 = p("pkcs8.pem");
    generate_key(alg, &pkcs8);

    let pkcs8_der = p("pkcs8.der");
    openssl(&[
        "pkey",
        "-in",
        s(&pkcs8),
        "-outform",
        "DER",
        "-out",
        s(&pkcs8_der),
    ]);
    let mut private_keys = vec![pkcs8.clone(), pkcs8_der];
    match alg {
        Alg::Rsa(_) => {
            let (pem, der) = (p("pkcs1.pem"), p("pkcs1.der"));
            openssl(&["rsa", "-in", s(&pkcs8), "-traditional", "-out", s(&pem)]);
            openssl(&[
                "rsa",
                "-in",
                s(&pkcs8),
                "-traditional",
                "-outform",
                "DER",
                "-out",
                s(&der),
            ]);
            private_keys.extend([pem, der]);
        }
        Alg::P256 | Alg::P384 => {
            let (pem, der) = (p("sec1.pem"), p("sec1.der"));
            openssl(&["ec", "-in", s(&pkcs8), "-out", s(&pem)]);
            openssl(&["ec", "-in", s(&pkcs8), "-outform", "DER", "-out", s(&der)]);
            // `openssl ecparam -genkey` style: an EC PARAMETERS block first.
            let with_params = p("sec1-params.pem");
            let curve = if alg == Alg::P256 {
                "prime256v1"
            } else {
                "secp384r1"
            };
            let mut text = openssl(&["ecparam", "-name", curve]);
            text.extend(std::fs::read(&pem).unwrap());
            std::fs::write(&with_params, text).unwrap();
            private_keys.extend([pem, der, with_params]);
        }
        Alg::Ed25519 => {}
    }

    let (pub_pem, pub_der) = (p("spki.pem"), p("spki.der"));
    openssl(&["pkey", "-in", s(&pkcs8), "-pubout", "-out", s(&pub_pem)]);
    openssl(&[
        "pkey",
        "-in",
        s(&pkcs8),
        "-pubout",
        "-outform",
        "DER",
        "-out",
        s(&pub_der),
    ]);
    let mut public_keys = vec![pub_pem, pub_der];
    if let Alg::Rsa(_) = alg {
        let pkcs1_pub = p("rsapub.pem");
        openssl(&[
            "rsa",
            "-in",
            s(&pkcs8),
            "-RSAPublicKey_out",
            "-out",
            s(&pkcs1_pub),
        ]);
        public_keys.push(pkcs1_pub);
    }

    let subj = format!("/CN={host}");
    let (csr_pem, csr_der) = (p("csr.pem"), p("csr.der"));
    openssl(&[
        "req",
        "-new",
        "-key",
        s(&pkcs8),
        "-subj",
        &subj,
        "-out",
        s(&csr_pem),
    ]);
    openssl(&[
        "req",
        "-in",
        s(&csr_pem),
        "-outform",
        "DER",
        "-out",
        s(&csr_der),
    ]);

    let (cert_pem, cert_der) = (p("cert.pem"), p("cert.der"));
    openssl(&[
        "x509",
        "-req",
        "-in",
        s(&csr_pem),
        "-CA",
        s(&ca.cert),
        "-CAkey",
        s(&ca.key),
        "-days",
        "30",
        "-out",
        s(&cert_pem),
    ]);
    openssl(&[
        "x509",
        "-in",
        s(&cert_pem),
        "-outform",
        "DER",
        "-out",
        s(&cert_der),
    ]);
    let fullchain = p("fullchain.pem");
    let mut chain = std::fs::read(&cert_pem).unwrap();
    chain.extend(std::fs::read(&ca.cert).unwrap());
    std::fs::write(&fullchain, chain).unwrap();

    KeySet {
        alg,
        private_keys,
        public_keys,
        csrs: vec![csr_pem, csr_der],
        certs: vec![cert_pem.clone(), cert_der],
        fullchain,
        cert_pem,
    }
}

/// `openssl dgst` of `data` with `digest` (sha256/sha512), as lower-case hex.
pub fn openssl_digest(digest: &str, data: &[u8]) -> String {
    let out = run(
        "openssl",
        &["dgst", &format!("-{digest}"), "-r"],
        Some(data),
    );
    String::from_utf8(out)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The DER SPKI of a certificate, the way the issue spells it:
/// `openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER`.
pub fn openssl_cert_spki(cert_pem: &Path) -> Vec<u8> {
    let pubkey = openssl(&["x509", "-in", s(cert_pem), "-pubkey", "-noout"]);
    run(
        "openssl",
        &["pkey", "-pubin", "-outform", "DER"],
        Some(&pubkey),
    )
}

/// The DER form of a PEM certificate.
pub fn openssl_cert_der(cert_pem: &Path) -> Vec<u8> {
    openssl(&["x509", "-in", s(cert_pem), "-outform", "DER"])
}
