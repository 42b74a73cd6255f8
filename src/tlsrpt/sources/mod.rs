//! The ways reports arrive: files and directories, a Maildir, an IMAP mailbox, HTTPS POSTs.
//! Each reads its input (bounded), hands it to [`super::ingest::Ingest`], stores in batches,
//! and marks an input as processed only after the store committed it.

pub mod files;
pub mod http;
pub mod imap;
pub mod maildir;

use std::io::Read;
use std::path::Path;

use super::unwrap::MAX_INPUT_BYTES;

/// Reports stored per transaction when importing many inputs.
pub const BATCH: usize = 500;

/// Reads a file, refusing one larger than [`MAX_INPUT_BYTES`] without reading it all.
pub fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(format!("larger than {MAX_INPUT_BYTES} bytes; not a report"));
    }
    Ok(bytes)
}
