//! Opening the database a command names: the library's [`StoreUrl`] (every form, passwords
//! masked), read-only for read commands and exclusively for the demo, with the CLI's own word
//! for a missing file.

use std::sync::Arc;

use tierstate::{Access, StateStore, StoreUrl};

use crate::error::{CliError, Result};

/// Parses `--db`.
///
/// # Errors
/// `Usage` naming the accepted forms (any password masked).
pub fn parse(s: &str) -> Result<StoreUrl> {
    StoreUrl::parse(s).map_err(|e| match e {
        tierstate::Error::InvalidInput { reason, .. } => CliError::Usage(reason),
        other => CliError::Store(other),
    })
}

/// Opens the store for a read command: read-only, so nothing is created, upgraded, locked
/// or written, on a read-only file too, beside a running writer.
///
/// # Errors
/// `Missing` for a file that is not there; `Store` for a file that is not a tierstate
/// database, an older schema (naming `migrate`), a newer one, a redb file another process
/// has open, or a server that cannot be reached.
pub async fn open_read(url: &StoreUrl) -> Result<Arc<dyn StateStore>> {
    require_file(url)?;
    Ok(url.open(Access::ReadOnly).await?)
}

/// Fails with `Missing` if the URL names an embedded file that is not there.
///
/// # Errors
/// `Missing` naming the file.
pub fn require_file(url: &StoreUrl) -> Result<()> {
    match url.file() {
        Some(path) if !path.exists() => Err(CliError::Missing(path.to_owned())),
        _ => Ok(()),
    }
}
