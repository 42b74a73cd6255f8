//! One input to one stored report: unwrap, verify the mail's DKIM signature, parse, and
//! decide whether the report is accepted or kept apart. The sources (files, Maildir, IMAP,
//! HTTPS) all come through here, so they all treat content the same way.

use serde::Serialize;

use super::dkim::{DkimVerdict, Verifier};
use super::report::{self, Report};
use super::store::{Inserted, Provenance, ReportStore, StoreError};
use super::unwrap::{self, Hint};

/// What to do with a mail report whose DKIM signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DkimMode {
    /// Keep it apart (quarantined, counted, never in summaries): RFC 8460 §5.3.
    #[default]
    Require,
    /// Accept it, recording the verdict.
    Record,
}

pub struct Ingest {
    verifier: Option<Verifier>,
    mode: DkimMode,
}

/// One input taken apart, ready to store.
#[derive(Debug)]
pub struct Taken {
    pub report: Report,
    pub provenance: Provenance,
}

/// Why an input gave no report to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not a report (bad JSON, no report part, too large, …): permanent.
    Invalid(String),
    /// The signature could not be checked now (DNS): leave the input for a later run.
    Retry(String),
}

impl Ingest {
    /// `verifier: None` when no mail is to be read (the HTTPS receiver).
    pub fn new(verifier: Option<Verifier>, mode: DkimMode) -> Self {
        Ingest { verifier, mode }
    }

    pub async fn take(&self, bytes: &[u8], hint: Hint, source: &str) -> Result<Taken, Refused> {
        let unwrapped = unwrap::unwrap(bytes, hint).map_err(|e| Refused::Invalid(e.to_string()))?;
        let verdict = match (&unwrapped.mail, &self.verifier) {
            (None, _) => DkimVerdict::NotMail,
            (Some(_), Some(verifier)) => verifier.verify(bytes).await,
            (Some(_), None) => DkimVerdict::TempError {
                reason: "no DKIM resolver is configured".into(),
            },
        };
        if let DkimVerdict::TempError { reason } = &verdict
            && self.mode == DkimMode::Require
        {
            return Err(Refused::Retry(format!("DKIM key lookup failed: {reason}")));
        }
        let report = report::parse(&unwrapped.json).map_err(|e| Refused::Invalid(e.to_string()))?;
        let mail = unwrapped.mail.unwrap_or_default();
        let dkim_domain = match &verdict {
            DkimVerdict::Pass { domain } => Some(domain.clone()),
            _ => None,
        };
        let provenance = Provenance {
            source: source.to_string(),
            dkim: verdict.label().to_string(),
            dkim_domain,
            report_domain: mail.report_domain,
            submitter: mail.submitter,
            quarantined: self.mode == DkimMode::Require && !verdict.passed(),
        };
        Ok(Taken { report, provenance })
    }
}

impl Ingest {
    /// [`Ingest::take`] into `batch`, counting a refusal in `tally`. Returns whether the
    /// input is done with (taken, or refused for good); `false`: leave it for the next run.
    pub async fn take_into(
        &self,
        bytes: &[u8],
        hint: Hint,
        source: &str,
        batch: &mut Vec<Taken>,
        tally: &mut Tally,
    ) -> bool {
        match self.take(bytes, hint, source).await {
            Ok(taken) => {
                batch.push(taken);
                true
            }
            Err(refused) => {
                tally.refused(source, &refused);
                matches!(refused, Refused::Invalid(_))
            }
        }
    }
}

/// What an import did, for the operator and for `--json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    pub stored: u64,
    pub duplicate: u64,
    pub promoted: u64,
    /// Stored apart: DKIM required and not passed.
    pub quarantined: u64,
    pub invalid: u64,
    /// Left in place for the next run.
    pub retry: u64,
    /// One line per input that was refused: source and reason (no content).
    pub problems: Vec<String>,
}

impl Tally {
    pub fn refused(&mut self, source: &str, refused: &Refused) {
        let (counter, why, what) = match refused {
            Refused::Invalid(why) => (&mut self.invalid, why, "not stored"),
            Refused::Retry(why) => (&mut self.retry, why, "left for the next run"),
        };
        *counter += 1;
        self.problems.push(format!("{source}: {why} ({what})"));
    }

    fn count(&mut self, inserted: Inserted, quarantined: bool) {
        match inserted {
            Inserted::Duplicate => self.duplicate += 1,
            Inserted::Promoted => self.promoted += 1,
            Inserted::Stored if quarantined => self.quarantined += 1,
            Inserted::Stored => self.stored += 1,
        }
    }
}

/// Stores a batch in one transaction and counts the outcomes.
pub fn store_batch(
    store: &mut dyn ReportStore,
    batch: Vec<Taken>,
    tally: &mut Tally,
) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    let quarantined: Vec<bool> = batch.iter().map(|t| t.provenance.quarantined).collect();
    let pairs: Vec<(Report, Provenance)> = batch
        .into_iter()
        .map(|t| (t.report, t.provenance))
        .collect();
    let outcomes = store.insert_all(&pairs)?;
    for (inserted, quarantined) in outcomes.into_iter().zip(quarantined) {
        tally.count(inserted, quarantined);
    }
    Ok(())
}
