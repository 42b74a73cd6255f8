//! The TLS-RPT part of the enforce gate (`enforce_clean_reports = true`):
//! mode enforce only once the senders' own reports (RFC 8460) have shown
//! `enforce_after` of mode testing without a failure that enforce would
//! turn into bounced mail. Pure: the reports come in as per-day totals.
//!
//! Reports are counted by the UTC day their range starts (as the store
//! groups them), so a failure anywhere in a day restarts the clean period at
//! the end of that day — conservative by up to a day.

use std::time::{Duration, SystemTime};

use crate::tlsrpt::store::SummaryRow;

/// The RFC 8460 §4.3 result types an enforce policy turns into refused mail
/// for MTA-STS senders: the policy could not be had, or the MX certificate
/// does not pass WebPKI.
pub const BLOCKING: &[&str] = &[
    "sts-policy-fetch-error",
    "sts-policy-invalid",
    "sts-webpki-invalid",
    "certificate-host-mismatch",
    "certificate-expired",
    "certificate-not-trusted",
    "validation-failure",
];

pub const DAY: Duration = Duration::from_secs(86_400);

/// One UTC day of reports for the policy domain (policy type `sts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportDay {
    /// 00:00 UTC of the day.
    pub start: SystemTime,
    /// Sessions the reports count as successful.
    pub successful: u64,
    /// Failed sessions of the [`BLOCKING`] types, by type.
    pub blocking: Vec<(String, u64)>,
}

/// Why enforce must wait, if it must.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotYet {
    /// Reports are clean so far; enforce is due then.
    Until(SystemTime),
    /// Nothing says it is clean: no report with a successful session since.
    NoReport { since: SystemTime },
}

/// Whether the reports allow enforce now, for a testing period that began
/// at `testing_since`.
pub fn judge(
    days: &[ReportDay],
    testing_since: SystemTime,
    enforce_after: Duration,
    now: SystemTime,
) -> Result<(), (NotYet, Vec<String>)> {
    // Days that overlap the testing period.
    let relevant = days.iter().filter(|d| d.start + DAY > testing_since);
    let mut clean_since = testing_since;
    let mut failures = Vec::new();
    for day in relevant.clone().filter(|d| !d.blocking.is_empty()) {
        clean_since = clean_since.max(day.start + DAY);
        for (kind, sessions) in &day.blocking {
            failures.push(format!("{} {kind} × {sessions}", day_name(day.start)));
        }
    }
    let seen_clean = relevant
        .filter(|d| d.start + DAY > clean_since)
        .any(|d| d.successful > 0);
    if now < clean_since + enforce_after {
        return Err((NotYet::Until(clean_since + enforce_after), failures));
    }
    if !seen_clean {
        return Err((NotYet::NoReport { since: clean_since }, failures));
    }
    Ok(())
}

/// The store's summary rows for `domain` folded into days (policy type
/// `sts` only; other types are another mechanism's failures).
pub fn days_of(rows: &[SummaryRow], domain: &str) -> Vec<ReportDay> {
    let mut days: Vec<ReportDay> = Vec::new();
    for row in rows {
        if row.policy_type != "sts" || !row.policy_domain.eq_ignore_ascii_case(domain) {
            continue;
        }
        let Some(start) = day_start(&row.day) else {
            continue;
        };
        let at = match days.iter().position(|d| d.start == start) {
            Some(i) => i,
            None => {
                days.push(ReportDay {
                    start,
                    successful: 0,
                    blocking: Vec::new(),
                });
                days.len() - 1
            }
        };
        let day = &mut days[at];
        match &row.result_type {
            None => day.successful += row.successful,
            Some(kind) if BLOCKING.contains(&kind.as_str()) => {
                day.blocking.push((kind.clone(), row.failed));
            }
            Some(_) => {}
        }
    }
    days
}

/// `YYYY-MM-DD` of an instant (UTC).
pub fn day_name(t: SystemTime) -> String {
    let date = time::OffsetDateTime::from(t).date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// 00:00 UTC of a `YYYY-MM-DD` day, as the store names days.
pub fn day_start(name: &str) -> Option<SystemTime> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(name, &format).ok()?;
    Some(date.midnight().assume_utc().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: u32) -> SystemTime {
        SystemTime::UNIX_EPOCH + DAY * 20_000 + DAY * n
    }

    fn clean(n: u32) -> ReportDay {
        ReportDay {
            start: day(n),
            successful: 10,
            blocking: vec![],
        }
    }

    fn failing(n: u32) -> ReportDay {
        ReportDay {
            start: day(n),
            successful: 3,
            blocking: vec![("sts-webpki-invalid".into(), 2)],
        }
    }

    #[test]
    fn clean_reports_over_the_whole_period_allow_enforce() {
        let days = [clean(0), clean(1), clean(2)];
        assert_eq!(judge(&days, day(0), DAY * 2, day(2) + DAY / 2), Ok(()));
    }

    #[test]
    fn a_failure_restarts_the_clean_period_at_the_end_of_its_day() {
        let days = [clean(0), failing(1), clean(2)];
        let (why, failures) = judge(&days, day(0), DAY * 2, day(2) + DAY / 2).unwrap_err();
        assert_eq!(why, NotYet::Until(day(2) + DAY * 2));
        assert_eq!(failures.len(), 1);
        assert!(
            failures[0].contains("sts-webpki-invalid × 2"),
            "{failures:?}"
        );
        assert_eq!(
            judge(
                &[clean(0), failing(1), clean(3)],
                day(0),
                DAY,
                day(3) + DAY / 2
            ),
            Ok(())
        );
    }

    #[test]
    fn failures_before_testing_began_do_not_count() {
        let days = [failing(0), clean(1)];
        assert_eq!(
            judge(&days, day(1), Duration::ZERO, day(1) + DAY / 2),
            Ok(())
        );
    }

    #[test]
    fn no_report_is_no_evidence() {
        let (why, _) = judge(&[], day(0), Duration::ZERO, day(0)).unwrap_err();
        assert_eq!(why, NotYet::NoReport { since: day(0) });
        let only_failed_day = [failing(0)];
        let (why, _) = judge(&only_failed_day, day(0), Duration::ZERO, day(1)).unwrap_err();
        assert_eq!(why, NotYet::NoReport { since: day(1) });
    }

    #[test]
    fn summary_rows_fold_into_days_of_the_domain_and_type() {
        let row =
            |domain: &str, kind: &str, result: Option<&str>, ok: u64, failed: u64| SummaryRow {
                day: "2026-12-01".into(),
                policy_domain: domain.into(),
                policy_type: kind.into(),
                mx_host: "mail.example.com".into(),
                result_type: result.map(str::to_string),
                successful: ok,
                failed,
                sending_mtas: vec![],
                organizations: vec![],
            };
        let rows = [
            row("example.com", "sts", None, 7, 2),
            row("example.com", "sts", Some("sts-webpki-invalid"), 0, 2),
            row("example.com", "sts", Some("starttls-not-supported"), 0, 1),
            row("example.com", "tlsa", Some("tlsa-invalid"), 0, 5),
            row("other.example", "sts", Some("sts-policy-invalid"), 0, 9),
        ];
        let days = days_of(&rows, "example.com");
        assert_eq!(days.len(), 1);
        assert_eq!(days[0].start, day_start("2026-12-01").unwrap());
        assert_eq!(days[0].successful, 7);
        assert_eq!(
            days[0].blocking,
            vec![("sts-webpki-invalid".to_string(), 2)]
        );
    }

    #[test]
    fn day_names_round_trip() {
        let t = day(5);
        assert_eq!(day_start(&day_name(t)), Some(t));
        assert_eq!(day_start("2026-13-01"), None);
    }
}
