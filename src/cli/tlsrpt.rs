//! `tlsa tlsrpt import|summary|serve|publish`: TLS-RPT reports in, a summary out, the
//! reporting record kept.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use clap::{Args, Subcommand};

use super::Failure;
use super::common;
use crate::config::Config;
use crate::config::tlsrpt::Tlsrpt;
use crate::tlsrpt::dkim::Verifier;
use crate::tlsrpt::ingest::{DkimMode, Ingest, Tally};
use crate::tlsrpt::publish::{self, DomainRecord};
use crate::tlsrpt::sources::{files, http, imap, maildir};
use crate::tlsrpt::store::{Filter, ReportStore, SqliteStore};
use crate::tlsrpt::summary::{self, Summary};

#[derive(Debug, Args)]
pub struct TlsrptArgs {
    #[command(subcommand)]
    pub command: TlsrptCommand,
    #[command(flatten)]
    pub config: common::ConfigArgs,
    /// The report database [default: `[tlsrpt] store`, else STATE_DIR/tlsrpt.sqlite].
    #[arg(long, value_name = "FILE", global = true)]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum TlsrptCommand {
    /// Import reports: files and directories (.json, .json.gz, .gz, .eml), Maildirs, the
    /// configured IMAP mailbox. With none given, every source the config names.
    Import(ImportArgs),
    /// Per day, policy domain, policy type, MX host and result type: sessions, sending
    /// MTAs and reporting organisations.
    Summary(SummaryArgs),
    /// Receive reports by HTTPS POST (RFC 8460 §5.4), storing each before answering 200.
    Serve(ServeArgs),
    /// Publish the reporting record `_smtp._tls.DOMAIN` TXT `v=TLSRPTv1; rua=…` for every
    /// policy domain (each `[[mta_sts]]` domain and DANE MX host, or `[tlsrpt] domains`),
    /// confirmed on every authoritative server and validated Secure.
    Publish(PublishArgs),
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Only compare with what is served; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub propagation: super::common::PropagationArg,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Report files or directories.
    pub paths: Vec<PathBuf>,
    /// A Maildir: messages in new/ are imported, then moved to cur/ as seen; repeatable.
    #[arg(long, value_name = "DIR")]
    pub maildir: Vec<PathBuf>,
    /// The IMAP mailbox of `[tlsrpt.imap]`.
    #[arg(long)]
    pub imap: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// Reports starting on or after this day (YYYY-MM-DD, UTC) or RFC 3339 date-time.
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// One policy domain.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML page (chart and table) to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: `[tlsrpt.serve] listen`].
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain, leaf first [default: `[tlsrpt.serve] cert`].
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Plain HTTP, allowed on a loopback address only (behind a TLS proxy, or for tests).
    #[arg(long, conflicts_with_all = ["cert", "key"])]
    pub plain_http: bool,
}

/// The `[tlsrpt]` table, or its defaults when the config has none.
fn settings(config: &Config) -> Tlsrpt {
    config.tlsrpt.clone().unwrap_or_default()
}

fn open_store(args: &TlsrptArgs, config: &Config) -> Result<SqliteStore, Failure> {
    let path = args
        .store
        .clone()
        .unwrap_or_else(|| settings(config).store_path(&config.state_dir));
    SqliteStore::open(&path).map_err(|e| Failure::Runtime(vec![e.to_string()]))
}

/// The config's report store if it exists (`tlsa status` and `tlsa check`
/// read it and must not create it).
pub fn existing_store(config: &Config) -> Result<Option<SqliteStore>, String> {
    let path = settings(config).store_path(&config.state_dir);
    if !path.exists() {
        return Ok(None);
    }
    SqliteStore::open(&path)
        .map(Some)
        .map_err(|e| e.to_string())
}

pub fn run(args: &TlsrptArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let config = args.config.load()?;
    match &args.command {
        TlsrptCommand::Import(import) => run_import(args, import, &config, out),
        TlsrptCommand::Summary(summary) => run_summary(args, summary, &config, out),
        TlsrptCommand::Serve(serve) => run_serve(args, serve, &config, out),
        TlsrptCommand::Publish(publish) => run_publish(publish, config, out),
    }
}

fn run_publish(args: &PublishArgs, config: Config, out: &mut dyn Write) -> Result<(), Failure> {
    if settings(&config).rua.is_empty() {
        return Err(Failure::Input(vec![
            "nothing to publish: [tlsrpt] rua is not set; add rua = [\"mailto:tlsrpt@example.com\"] (where senders send reports) to the config".into(),
        ]));
    }
    if config.tlsrpt_domains().is_empty() {
        return Err(Failure::Input(vec![
            "no policy domain to publish for: the config has no [[mta_sts]] domain and no set endpoint on port 25; name them in [tlsrpt] domains".into(),
        ]));
    }
    // A change is made under the state lock, like `tlsa run`'s; a dry run reads only.
    let _lock = match args.dry_run {
        true => None,
        false => Some(common::open_state(&config)?),
    };
    let runtime = common::runtime()?;
    let records = runtime.block_on(async {
        let engine = common::engine(config).await?;
        let timeout = args
            .propagation
            .duration()
            .unwrap_or_else(|| engine.configured_propagation_timeout());
        Ok::<_, Failure>(publish::publish_all(&engine, args.dry_run, timeout).await)
    })?;
    finish_records(&records, out)
}

/// Prints one line per policy domain, and turns failures into the exit status
/// (2 when every failure is the config's, else 1).
pub fn finish_records(records: &[DomainRecord], out: &mut dyn Write) -> Result<(), Failure> {
    let mut problems = Vec::new();
    let mut all_config = true;
    for record in records {
        let line = match &record.result {
            Ok(action) => format!(
                "tls-rpt {}: {} ({})",
                record.domain,
                action.as_str(),
                record.text
            ),
            Err(failed) => {
                problems.push(failed.message.clone());
                all_config &= failed.config;
                format!("tls-rpt {}: failed (see below)", record.domain)
            }
        };
        writeln!(out, "{line}").map_err(runtime_error)?;
    }
    match problems.is_empty() {
        true => Ok(()),
        false if all_config => Err(Failure::Input(problems)),
        false => Err(Failure::Runtime(problems)),
    }
}

fn runtime_error(e: impl ToString) -> Failure {
    Failure::Runtime(vec![e.to_string()])
}

fn run_import(
    args: &TlsrptArgs,
    import: &ImportArgs,
    config: &Config,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let table = settings(config);
    let resolver = table.resolver.unwrap_or(config.dnssec.resolver);
    let explicit = !import.paths.is_empty() || !import.maildir.is_empty() || import.imap;
    let (paths, maildirs, use_imap) = if explicit {
        (import.paths.clone(), import.maildir.clone(), import.imap)
    } else {
        (table.paths.clone(), table.maildirs.clone(), true)
    };
    let imap_source = match config.tlsrpt.as_ref().and_then(|t| t.imap.as_ref()) {
        Some(imap) if use_imap => Some(imap.source().map_err(|e| Failure::Input(vec![e]))?),
        None if import.imap => {
            return Err(Failure::Input(vec![
                "--imap needs a [tlsrpt.imap] table in the config (server, user, password_file or password_env)".into(),
            ]));
        }
        _ => None,
    };
    if paths.is_empty() && maildirs.is_empty() && imap_source.is_none() {
        return Err(Failure::Input(vec![
            "nothing to import: give files or directories, --maildir DIR or --imap, or name sources in [tlsrpt] (paths, maildirs, [tlsrpt.imap])".into(),
        ]));
    }
    let files = files::expand(&paths).map_err(|e| Failure::Input(vec![e]))?;
    let mut store = open_store(args, config)?;
    let runtime = common::runtime()?;
    let tally = runtime.block_on(async {
        let verifier = Verifier::new(resolver).map_err(runtime_error)?;
        let ingest = Ingest::new(Some(verifier), table.dkim);
        let mut tally = Tally::default();
        let mut failures = Vec::new();
        if let Err(e) = files::import(&ingest, &mut store, &files, &mut tally).await {
            failures.push(e.to_string());
        }
        for dir in &maildirs {
            if let Err(e) = maildir::import(&ingest, &mut store, dir, &mut tally).await {
                failures.push(e.to_string());
            }
        }
        if let Some(source) = &imap_source
            && let Err(e) = imap::import(&ingest, &mut store, source, &mut tally).await
        {
            failures.push(e);
        }
        Ok::<_, Failure>((tally, failures))
    })?;
    let (tally, failures) = tally;
    for problem in &tally.problems {
        common::say(common::Verbosity::Normal, &format!("warning: {problem}"));
    }
    if import.json {
        let text = serde_json::to_string_pretty(&tally).map_err(runtime_error)?;
        writeln!(out, "{text}").map_err(runtime_error)?;
    } else {
        writeln!(
            out,
            "stored {}, duplicates {}, promoted {}, kept apart (DKIM) {}, not reports {}, left for the next run {}",
            tally.stored, tally.duplicate, tally.promoted, tally.quarantined, tally.invalid, tally.retry
        )
        .map_err(runtime_error)?;
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Failure::Runtime(failures))
    }
}

fn parse_since(text: &str) -> Result<i64, Failure> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(at) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at.unix_timestamp());
    }
    let day = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, day)
        .map(|d| d.midnight().assume_utc().unix_timestamp())
        .map_err(|_| {
            Failure::Input(vec![format!(
                "--since {text:?}: expected YYYY-MM-DD or an RFC 3339 date-time"
            )])
        })
}

fn run_summary(
    args: &TlsrptArgs,
    summary_args: &SummaryArgs,
    config: &Config,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let filter = Filter {
        since: summary_args.since.as_deref().map(parse_since).transpose()?,
        domain: summary_args
            .domain
            .as_deref()
            .map(|d| d.trim_end_matches('.').to_ascii_lowercase()),
    };
    let store = open_store(args, config)?;
    let summary = Summary {
        rows: store.summary(&filter).map_err(runtime_error)?,
        reports: store.counts().map_err(runtime_error)?,
    };
    if let Some(file) = &summary_args.html {
        let title = match &filter.domain {
            Some(domain) => format!("TLS-RPT summary: {domain}"),
            None => "TLS-RPT summary".to_string(),
        };
        crate::fsutil::write_atomic(
            file,
            crate::tlsrpt::html::page(&summary, &title).as_bytes(),
            0o644,
        )
        .map_err(|e| Failure::Runtime(vec![format!("{}: {e}", file.display())]))?;
    }
    let text = if summary_args.json {
        serde_json::to_string_pretty(&summary).map_err(runtime_error)? + "\n"
    } else {
        summary::text(&summary)
    };
    out.write_all(text.as_bytes()).map_err(runtime_error)
}

fn run_serve(
    args: &TlsrptArgs,
    serve: &ServeArgs,
    config: &Config,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let table = config.tlsrpt.as_ref().and_then(|t| t.serve.as_ref());
    let listen = serve.listen.or(table.map(|s| s.listen)).ok_or_else(|| {
        Failure::Input(vec![
            "no address to listen on: give --listen ADDR:PORT or [tlsrpt.serve] listen".into(),
        ])
    })?;
    let (cert, key) = match (&serve.cert, &serve.key) {
        (Some(c), Some(k)) => (Some(c.clone()), Some(k.clone())),
        _ if serve.plain_http => (None, None),
        _ => (
            table.and_then(|s| s.cert.clone()),
            table.and_then(|s| s.key.clone()),
        ),
    };
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => {
            Some(http::tls_acceptor(&cert, &key).map_err(|e| Failure::Input(vec![e]))?)
        }
        _ if serve.plain_http && listen.ip().is_loopback() => None,
        _ if serve.plain_http => {
            return Err(Failure::Input(vec![format!(
                "--plain-http is allowed on a loopback address only, not {listen}: reports would cross the network unencrypted"
            )]));
        }
        _ => {
            return Err(Failure::Input(vec![
                "the receiver needs a certificate: --cert FILE --key FILE or [tlsrpt.serve] cert/key (or --plain-http on loopback)".into(),
            ]));
        }
    };
    let store = open_store(args, config)?;
    let store: http::SharedStore = Arc::new(Mutex::new(Box::new(store)));
    let runtime = common::runtime()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Failure::Runtime(vec![format!("cannot listen on {listen}: {e}")]))?;
        let bound = listener.local_addr().map_err(runtime_error)?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        writeln!(out, "listening on {scheme}://{bound}").map_err(runtime_error)?;
        out.flush().map_err(runtime_error)?;
        // HTTPS POSTs are not mail: no DKIM (RFC 8460 §5.4 relies on the TLS channel).
        let ingest = Arc::new(Ingest::new(None, DkimMode::Record));
        http::serve(listener, tls, ingest, store)
            .await
            .map_err(runtime_error)
    })
}
