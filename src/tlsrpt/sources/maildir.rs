//! A Maildir (the mailbox a reporting address delivers to): each message in `new/` is
//! imported and then moved to `cur/` with the Seen flag (`:2,S`), only after the store has
//! committed it — a crash in between leaves it in `new/`, and the next run finds it a
//! duplicate. Messages whose key lookup failed for now stay in `new/`.

use std::path::{Path, PathBuf};

use super::super::ingest::{Ingest, Refused, Taken, Tally, store_batch};
use super::super::store::{ReportStore, StoreError};
use super::super::unwrap::Hint;
use super::{BATCH, read_bounded};

#[derive(Debug, thiserror::Error)]
pub enum MaildirError {
    #[error("Maildir {dir}: {message}")]
    Dir { dir: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub async fn import(
    ingest: &Ingest,
    store: &mut dyn ReportStore,
    maildir: &Path,
    tally: &mut Tally,
) -> Result<(), MaildirError> {
    let fail = |message: String| MaildirError::Dir {
        dir: maildir.display().to_string(),
        message,
    };
    let new = maildir.join("new");
    let cur = maildir.join("cur");
    if !cur.is_dir() {
        return Err(fail("has no cur/ directory; is it a Maildir?".into()));
    }
    let mut messages: Vec<PathBuf> = std::fs::read_dir(&new)
        .map_err(|e| fail(format!("cannot list new/: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    messages.sort();
    let mut batch: Vec<Taken> = Vec::new();
    let mut processed: Vec<PathBuf> = Vec::new();
    for message in messages {
        let source = format!("maildir:{}", message.display());
        match read_bounded(&message) {
            Err(why) => {
                tally.refused(&source, &Refused::Invalid(why));
                processed.push(message);
            }
            Ok(bytes) => {
                if ingest
                    .take_into(&bytes, Hint::Mail, &source, &mut batch, tally)
                    .await
                {
                    processed.push(message);
                }
            }
        }
        if batch.len() >= BATCH {
            store_batch(store, std::mem::take(&mut batch), tally)?;
            mark_seen(&cur, std::mem::take(&mut processed)).map_err(fail)?;
        }
    }
    store_batch(store, batch, tally)?;
    mark_seen(&cur, processed).map_err(fail)
}

/// Moves each message to `cur/NAME:2,S` (Maildir's "seen" flag).
fn mark_seen(cur: &Path, messages: Vec<PathBuf>) -> Result<(), String> {
    for message in messages {
        let Some(name) = message.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        // A name from new/ carries no info part; keep any it has and add S.
        let base = name.split(":2,").next().unwrap_or(name);
        let target = cur.join(format!("{base}:2,S"));
        std::fs::rename(&message, &target)
            .map_err(|e| format!("cannot move {} to cur/: {e}", message.display()))?;
    }
    Ok(())
}
