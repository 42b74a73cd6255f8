//! TLS-RPT (RFC 8460): reports that senders send about the TLS sessions they tried with a
//! domain's MX hosts, including DANE failures. Taken in from files, a Maildir, IMAP and an
//! HTTPS receiver; DKIM-checked when they come by mail; stored in SQLite; summarised.

pub mod dkim;
pub mod feedback;
pub mod html;
pub mod ingest;
pub mod publish;
pub mod record;
pub mod report;
pub mod sources;
pub mod store;
pub mod summary;
pub mod unwrap;
