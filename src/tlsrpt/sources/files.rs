//! Files and directories given on the command line: `.json`, `.json.gz`, `.gz`, `.eml`
//! (anything else is recognised by its content). Directories are walked in name order.

use std::path::{Path, PathBuf};

use super::super::ingest::{Ingest, Taken, Tally, store_batch};
use super::super::store::{ReportStore, StoreError};
use super::super::unwrap::Hint;
use super::{BATCH, read_bounded};

/// Every regular file under `paths` (directories recursively, sorted); errors name the path.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        walk(path, &mut files)?;
    }
    Ok(files)
}

fn walk(path: &Path, files: &mut Vec<PathBuf>) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_dir() {
        let mut entries = std::fs::read_dir(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect::<Vec<_>>();
        entries.sort();
        for entry in entries {
            walk(&entry, files)?;
        }
    } else if meta.is_file() {
        files.push(path.to_path_buf());
    }
    Ok(())
}

/// Imports `files`, [`BATCH`] per transaction.
pub async fn import(
    ingest: &Ingest,
    store: &mut dyn ReportStore,
    files: &[PathBuf],
    tally: &mut Tally,
) -> Result<(), StoreError> {
    let mut batch: Vec<Taken> = Vec::with_capacity(BATCH);
    for file in files {
        let source = file.display().to_string();
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let bytes = match read_bounded(file) {
            Ok(bytes) => bytes,
            Err(why) => {
                tally.refused(&source, &super::super::ingest::Refused::Invalid(why));
                continue;
            }
        };
        ingest
            .take_into(&bytes, Hint::from_name(name), &source, &mut batch, tally)
            .await;
        if batch.len() >= BATCH {
            store_batch(store, std::mem::take(&mut batch), tally)?;
        }
    }
    store_batch(store, batch, tally)
}
