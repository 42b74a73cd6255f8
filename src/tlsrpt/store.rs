//! Where reports are kept: an embedded SQLite database in the state directory, behind the
//! [`ReportStore`] trait so that a server database can take its place for providers with
//! many domains.
//!
//! Crash safety: WAL journal with `synchronous = FULL`, so a commit that returned is on
//! disk (the HTTPS receiver answers 200 only after it), and every import is one
//! transaction: a crash leaves the report either wholly there or not at all, and the next
//! import of the same input finds it (or not) by (organization, report-id).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use super::report::Report;

/// Where a report came from and what was checked about it.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    /// File path, `maildir:…`, `imap://…`, `https-post` — for the operator, no secrets.
    pub source: String,
    /// `pass`, `none`, `fail`, `temperror`, `not-mail` (see [`super::dkim::DkimVerdict`]).
    pub dkim: String,
    /// The signing domain of a passing signature.
    pub dkim_domain: Option<String>,
    pub report_domain: Option<String>,
    pub submitter: Option<String>,
    /// Kept apart from the accepted reports (DKIM required and not passed).
    pub quarantined: bool,
}

/// What one insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Inserted {
    Stored,
    /// Already there with the same (organization, report-id): nothing changed.
    Duplicate,
    /// Was quarantined, now arrived with a valid signature: replaced by the accepted copy.
    Promoted,
}

/// Which reports a summary covers.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Reports whose date range starts at or after this Unix time.
    pub since: Option<i64>,
    /// Policy domain, lower case, no trailing dot.
    pub domain: Option<String>,
}

/// One line of the summary: a day, policy domain, policy type, MX host and result type.
/// `result_type: None` is the policy's totals line (successful and failed sessions);
/// the others count failed sessions of one result type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SummaryRow {
    pub day: String,
    pub policy_domain: String,
    pub policy_type: String,
    pub mx_host: String,
    pub result_type: Option<String>,
    pub successful: u64,
    pub failed: u64,
    pub sending_mtas: Vec<String>,
    pub organizations: Vec<String>,
}

/// Counts of reports in the store by how they were taken.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub accepted: u64,
    /// Quarantined reports by DKIM verdict (`none`, `fail`, …).
    pub quarantined: Vec<(String, u64)>,
}

/// What the accepted reports say about one MX host, over reports whose
/// date range ends after some instant: its policies (the host as policy
/// domain, as for DANE, or as the policy's `mx-host`, as reporters using
/// the recipient domain write it) and the failures naming it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostReports {
    pub host: String,
    /// Reports with a policy for the host.
    pub reports: u64,
    pub successful: u64,
    pub failed: u64,
    /// Failed sessions by result type, most first.
    pub failures: Vec<FailureCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureCount {
    pub result_type: String,
    pub sessions: u64,
    pub organizations: Vec<String>,
    /// The latest end of the date ranges reporting it (Unix time).
    pub last_end: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("report store {path}: {message}")]
pub struct StoreError {
    pub path: String,
    pub message: String,
}

/// The store's interface; [`SqliteStore`] is the one implementation so far.
pub trait ReportStore {
    /// Stores reports in one transaction; each gets its own outcome.
    fn insert_all(&mut self, reports: &[(Report, Provenance)])
    -> Result<Vec<Inserted>, StoreError>;
    fn summary(&self, filter: &Filter) -> Result<Vec<SummaryRow>, StoreError>;
    fn counts(&self) -> Result<Counts, StoreError>;
    /// Whether a report with this organization and id is stored and accepted.
    fn has_accepted(&self, organization: &str, report_id: &str) -> Result<bool, StoreError>;
    /// What the accepted reports whose date range ends after `ended_after`
    /// (Unix time) say about `host` (lower case, no trailing dot).
    fn host_reports(&self, host: &str, ended_after: i64) -> Result<HostReports, StoreError>;
}

/// A policy row `p` is about host `?1`: as the policy domain (DANE), or as
/// one of its MX hosts (a recipient-domain policy).
const POLICY_OF_HOST: &str =
    "(p.policy_domain = ?1 OR instr(',' || p.mx_hosts || ',', ',' || ?1 || ',') > 0)";

pub struct SqliteStore {
    connection: Connection,
    path: PathBuf,
}

/// The file name under the state directory when the config names none.
pub const DEFAULT_FILE: &str = "tlsrpt.sqlite";

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reports (
    id INTEGER PRIMARY KEY,
    organization TEXT NOT NULL,
    report_id TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    end_time INTEGER NOT NULL,
    contact TEXT,
    status TEXT NOT NULL CHECK (status IN ('accepted', 'quarantined')),
    dkim TEXT NOT NULL,
    dkim_domain TEXT,
    report_domain TEXT,
    submitter TEXT,
    source TEXT NOT NULL,
    notes TEXT NOT NULL,
    imported_at INTEGER NOT NULL,
    UNIQUE (organization, report_id)
);
CREATE INDEX IF NOT EXISTS reports_start ON reports (status, start_time);
CREATE TABLE IF NOT EXISTS policies (
    id INTEGER PRIMARY KEY,
    report INTEGER NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    policy_type TEXT NOT NULL,
    policy_domain TEXT NOT NULL,
    policy_strings TEXT NOT NULL,
    mx_hosts TEXT NOT NULL,
    successful INTEGER NOT NULL,
    failed INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS policies_report ON policies (report);
CREATE TABLE IF NOT EXISTS failures (
    id INTEGER PRIMARY KEY,
    policy INTEGER NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    result_type TEXT NOT NULL,
    sending_mta_ip TEXT,
    receiving_mx_hostname TEXT,
    receiving_mx_helo TEXT,
    receiving_ip TEXT,
    sessions INTEGER NOT NULL,
    additional_information TEXT,
    failure_reason_code TEXT
);
CREATE INDEX IF NOT EXISTS failures_policy ON failures (policy);
";

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`; its directory is created private.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let fail = |message: String| StoreError {
            path: path.display().to_string(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::fsutil::create_dir_all_mode(dir, crate::fsutil::PRIVATE_DIR)
                .map_err(|e| fail(format!("cannot create its directory: {e}")))?;
        }
        let connection = Connection::open(path).map_err(|e| fail(e.to_string()))?;
        let store = SqliteStore {
            connection,
            path: path.to_path_buf(),
        };
        store.setup().map_err(|e| fail(e.to_string()))?;
        Ok(store)
    }

    fn setup(&self) -> rusqlite::Result<()> {
        // Another process (the receiver, an import) may hold the write lock for a moment.
        self.connection
            .busy_timeout(std::time::Duration::from_secs(10))?;
        self.connection.pragma_update(None, "journal_mode", "WAL")?;
        self.connection.pragma_update(None, "synchronous", "FULL")?;
        self.connection.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = self
            .connection
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version < SCHEMA_VERSION {
            self.connection.execute_batch(SCHEMA)?;
            self.connection
                .pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        Ok(())
    }

    fn error(&self, e: rusqlite::Error) -> StoreError {
        StoreError {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    fn insert_one(
        tx: &rusqlite::Transaction<'_>,
        report: &Report,
        provenance: &Provenance,
    ) -> rusqlite::Result<Inserted> {
        let existing: Option<(i64, String)> = tx
            .query_row(
                "SELECT id, status FROM reports WHERE organization = ?1 AND report_id = ?2",
                params![report.organization, report.report_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let outcome = match existing {
            Some((id, status)) if status == "quarantined" && !provenance.quarantined => {
                tx.execute("DELETE FROM reports WHERE id = ?1", [id])?;
                Inserted::Promoted
            }
            Some(_) => return Ok(Inserted::Duplicate),
            None => Inserted::Stored,
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let notes = serde_json::to_string(&report.notes).unwrap_or_else(|_| "[]".into());
        tx.execute(
            "INSERT INTO reports (organization, report_id, start_time, end_time, contact, status, dkim, dkim_domain, report_domain, submitter, source, notes, imported_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                report.organization,
                report.report_id,
                report.start.unix_timestamp(),
                report.end.unix_timestamp(),
                report.contact,
                if provenance.quarantined { "quarantined" } else { "accepted" },
                provenance.dkim,
                provenance.dkim_domain,
                provenance.report_domain,
                provenance.submitter,
                provenance.source,
                notes,
                now
            ],
        )?;
        let report_row = tx.last_insert_rowid();
        let mut policy_insert = tx.prepare_cached(
            "INSERT INTO policies (report, policy_type, policy_domain, policy_strings, mx_hosts, successful, failed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut failure_insert = tx.prepare_cached(
            "INSERT INTO failures (policy, result_type, sending_mta_ip, receiving_mx_hostname, receiving_mx_helo, receiving_ip, sessions, additional_information, failure_reason_code)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for policy in &report.policies {
            policy_insert.execute(params![
                report_row,
                policy.policy_type.as_str(),
                policy.policy_domain,
                serde_json::to_string(&policy.policy_strings).unwrap_or_else(|_| "[]".into()),
                policy.mx_hosts.join(","),
                clamp(policy.successful),
                clamp(policy.failed),
            ])?;
            let policy_row = tx.last_insert_rowid();
            for failure in &policy.failures {
                failure_insert.execute(params![
                    policy_row,
                    failure.result_type,
                    failure.sending_mta_ip.map(|ip| ip.to_string()),
                    failure.receiving_mx_hostname,
                    failure.receiving_mx_helo,
                    failure.receiving_ip.map(|ip| ip.to_string()),
                    clamp(failure.failed_session_count),
                    failure.additional_information,
                    failure.failure_reason_code,
                ])?;
            }
        }
        Ok(outcome)
    }
}

/// SQLite integers are signed 64-bit; a count beyond that is no real count anyway.
fn clamp(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

fn strings(json: &str) -> Vec<String> {
    let mut items: Vec<String> = serde_json::from_str::<Vec<Option<String>>>(json)
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect();
    items.sort();
    items
}

/// The MX column of a totals line: the policy's MX hosts, or `*` when it named none.
const MX_OF_POLICY: &str = "CASE p.mx_hosts WHEN '' THEN '*' ELSE p.mx_hosts END";

impl ReportStore for SqliteStore {
    fn insert_all(
        &mut self,
        reports: &[(Report, Provenance)],
    ) -> Result<Vec<Inserted>, StoreError> {
        let run = |connection: &mut Connection| -> rusqlite::Result<Vec<Inserted>> {
            // IMMEDIATE: take the write lock up front, so a concurrent writer waits at
            // BEGIN (busy timeout) instead of failing at the first INSERT.
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let outcomes = reports
                .iter()
                .map(|(report, provenance)| Self::insert_one(&tx, report, provenance))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            tx.commit()?;
            Ok(outcomes)
        };
        run(&mut self.connection).map_err(|e| self.error(e))
    }

    fn summary(&self, filter: &Filter) -> Result<Vec<SummaryRow>, StoreError> {
        let since = filter.since.unwrap_or(i64::MIN);
        let domain = filter.domain.as_deref();
        let totals = format!(
            "SELECT date(r.start_time, 'unixepoch'), p.policy_domain, p.policy_type, {MX_OF_POLICY},
                    NULL, SUM(p.successful), SUM(p.failed), '[]', json_group_array(DISTINCT r.organization)
             FROM policies p JOIN reports r ON p.report = r.id
             WHERE r.status = 'accepted' AND r.start_time >= ?1 AND (?2 IS NULL OR p.policy_domain = ?2)
             GROUP BY 1, 2, 3, 4"
        );
        let failures = format!(
            "SELECT date(r.start_time, 'unixepoch'), p.policy_domain, p.policy_type,
                    COALESCE(f.receiving_mx_hostname, {MX_OF_POLICY}),
                    f.result_type, 0, SUM(f.sessions), json_group_array(DISTINCT f.sending_mta_ip),
                    json_group_array(DISTINCT r.organization)
             FROM failures f JOIN policies p ON f.policy = p.id JOIN reports r ON p.report = r.id
             WHERE r.status = 'accepted' AND r.start_time >= ?1 AND (?2 IS NULL OR p.policy_domain = ?2)
             GROUP BY 1, 2, 3, 4, 5"
        );
        let mut rows = Vec::new();
        for sql in [totals, failures] {
            let mut statement = self.connection.prepare(&sql).map_err(|e| self.error(e))?;
            let found = statement
                .query_map(params![since, domain], |r| {
                    Ok(SummaryRow {
                        day: r.get(0)?,
                        policy_domain: r.get(1)?,
                        policy_type: r.get(2)?,
                        mx_host: r.get(3)?,
                        result_type: r.get(4)?,
                        successful: r.get::<_, i64>(5)?.max(0) as u64,
                        failed: r.get::<_, i64>(6)?.max(0) as u64,
                        sending_mtas: strings(&r.get::<_, String>(7)?),
                        organizations: strings(&r.get::<_, String>(8)?),
                    })
                })
                .map_err(|e| self.error(e))?;
            for row in found {
                rows.push(row.map_err(|e| self.error(e))?);
            }
        }
        rows.sort_by(|a, b| {
            (
                &a.day,
                &a.policy_domain,
                &a.policy_type,
                &a.mx_host,
                &a.result_type,
            )
                .cmp(&(
                    &b.day,
                    &b.policy_domain,
                    &b.policy_type,
                    &b.mx_host,
                    &b.result_type,
                ))
        });
        Ok(rows)
    }

    fn counts(&self) -> Result<Counts, StoreError> {
        let accepted: i64 = self
            .connection
            .query_row(
                "SELECT COUNT(*) FROM reports WHERE status = 'accepted'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.error(e))?;
        let mut statement = self
            .connection
            .prepare(
                "SELECT dkim, COUNT(*) FROM reports WHERE status = 'quarantined' GROUP BY dkim ORDER BY dkim",
            )
            .map_err(|e| self.error(e))?;
        let quarantined = statement
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
            })
            .map_err(|e| self.error(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.error(e))?;
        Ok(Counts {
            accepted: accepted.max(0) as u64,
            quarantined,
        })
    }

    fn host_reports(&self, host: &str, ended_after: i64) -> Result<HostReports, StoreError> {
        let totals = format!(
            "SELECT COUNT(DISTINCT r.id), COALESCE(SUM(p.successful), 0), COALESCE(SUM(p.failed), 0)
             FROM policies p JOIN reports r ON p.report = r.id
             WHERE r.status = 'accepted' AND r.end_time > ?2 AND {POLICY_OF_HOST}"
        );
        let (reports, successful, failed): (i64, i64, i64) = self
            .connection
            .query_row(&totals, params![host, ended_after], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(|e| self.error(e))?;
        // A failure names its MX host, or (none named) belongs to the policy's.
        let failures = format!(
            "SELECT f.result_type, SUM(f.sessions), json_group_array(DISTINCT r.organization), MAX(r.end_time)
             FROM failures f JOIN policies p ON f.policy = p.id JOIN reports r ON p.report = r.id
             WHERE r.status = 'accepted' AND r.end_time > ?2
               AND (f.receiving_mx_hostname = ?1 OR (f.receiving_mx_hostname IS NULL AND {POLICY_OF_HOST}))
             GROUP BY f.result_type ORDER BY 2 DESC, 1"
        );
        let mut statement = self
            .connection
            .prepare(&failures)
            .map_err(|e| self.error(e))?;
        let failures = statement
            .query_map(params![host, ended_after], |r| {
                Ok(FailureCount {
                    result_type: r.get(0)?,
                    sessions: r.get::<_, i64>(1)?.max(0) as u64,
                    organizations: strings(&r.get::<_, String>(2)?),
                    last_end: r.get(3)?,
                })
            })
            .map_err(|e| self.error(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.error(e))?;
        Ok(HostReports {
            host: host.to_string(),
            reports: reports.max(0) as u64,
            successful: successful.max(0) as u64,
            failed: failed.max(0) as u64,
            failures,
        })
    }

    fn has_accepted(&self, organization: &str, report_id: &str) -> Result<bool, StoreError> {
        self.connection
            .query_row(
                "SELECT 1 FROM reports WHERE organization = ?1 AND report_id = ?2 AND status = 'accepted'",
                params![organization, report_id],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str) -> Report {
        let json = format!(
            r#"{{"organization-name":"Org","date-range":{{"start-datetime":"2026-11-30T00:00:00Z","end-datetime":"2026-11-30T23:59:59Z"}},"contact-info":null,"report-id":"{id}","policies":[{{"policy":{{"policy-type":"tlsa","policy-domain":"mx.example.test","mx-host":"mx.example.test"}},"summary":{{"total-successful-session-count":7,"total-failure-session-count":2}},"failure-details":[{{"result-type":"tlsa-invalid","sending-mta-ip":"192.0.2.9","failed-session-count":2}}]}}]}}"#
        );
        super::super::report::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn dedups_promotes_and_keeps_quarantine_apart() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("s/db.sqlite")).unwrap();
        let bad = Provenance {
            dkim: "fail".into(),
            quarantined: true,
            ..Default::default()
        };
        let good = Provenance {
            dkim: "pass".into(),
            ..Default::default()
        };
        let out = store
            .insert_all(&[(report("a"), bad.clone()), (report("a"), bad.clone())])
            .unwrap();
        assert_eq!(out, [Inserted::Stored, Inserted::Duplicate]);
        assert!(store.summary(&Filter::default()).unwrap().is_empty());
        assert_eq!(
            store.counts().unwrap().quarantined,
            [("fail".to_string(), 1)]
        );
        let out = store
            .insert_all(&[(report("a"), good.clone()), (report("a"), good)])
            .unwrap();
        assert_eq!(out, [Inserted::Promoted, Inserted::Duplicate]);
        let rows = store.summary(&Filter::default()).unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!((rows[0].successful, rows[0].failed), (7, 2));
        assert_eq!(rows[1].result_type.as_deref(), Some("tlsa-invalid"));
        assert_eq!(rows[1].sending_mtas, ["192.0.2.9"]);
        assert_eq!(store.counts().unwrap().accepted, 1);
    }

    #[test]
    fn a_host_s_reports_are_found_by_policy_domain_or_mx_host_and_by_end_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("db.sqlite")).unwrap();
        let recipient = r#"{"organization-name":"Other","date-range":{"start-datetime":"2026-11-30T00:00:00Z","end-datetime":"2026-11-30T23:59:59Z"},"contact-info":null,"report-id":"r2","policies":[{"policy":{"policy-type":"tlsa","policy-domain":"example.test","mx-host":["mx.example.test","mx2.example.test"]},"summary":{"total-successful-session-count":3,"total-failure-session-count":1},"failure-details":[{"result-type":"starttls-not-supported","receiving-mx-hostname":"mx2.example.test","failed-session-count":1}]}]}"#;
        let reports = [
            (report("a"), Provenance::default()),
            (
                super::super::report::parse(recipient.as_bytes()).unwrap(),
                Provenance::default(),
            ),
        ];
        store.insert_all(&reports).unwrap();
        let end = time::macros::datetime!(2026-11-30 23:59:59 UTC).unix_timestamp();
        let mx = store.host_reports("mx.example.test", end - 1).unwrap();
        assert_eq!((mx.reports, mx.successful, mx.failed), (2, 10, 3));
        let types: Vec<_> = mx
            .failures
            .iter()
            .map(|f| (f.result_type.as_str(), f.sessions))
            .collect();
        assert_eq!(
            types,
            [("tlsa-invalid", 2)],
            "the other host's failure is not this host's"
        );
        assert_eq!(mx.failures[0].organizations, ["Org"]);
        assert_eq!(mx.failures[0].last_end, end);
        let mx2 = store.host_reports("mx2.example.test", end - 1).unwrap();
        assert_eq!(mx2.failures[0].result_type, "starttls-not-supported");
        let later = store.host_reports("mx.example.test", end).unwrap();
        assert_eq!(
            later,
            HostReports {
                host: "mx.example.test".into(),
                ..Default::default()
            }
        );
    }
}
