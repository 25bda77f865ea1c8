//! Writing a backup file whole or not at all: built under a temporary name beside it, synced,
//! then hard-linked into place (a link refuses an existing name, where a rename would replace
//! it), so `dest` is either absent or complete, and never someone else's file overwritten.

use std::path::Path;

use crate::{BackendErrorKind, Error, Result};

/// Builds the new file `dest` with `build` (given the temporary path to write) and puts it in
/// place. `backend` names the store in errors.
///
/// # Errors
/// `InvalidInput` if `dest` exists; what `build` fails with; `Backend` (`Io`) if syncing or
/// placing the file fails. Nothing is left at `dest` or at the temporary name on failure.
pub fn write_new(
    backend: &'static str,
    dest: &Path,
    build: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    if dest.exists() {
        return Err(Error::invalid(
            "backup",
            format!("{} exists: name a new file", dest.display()),
        ));
    }
    let io = |what: &str, path: &Path, e: std::io::Error| Error::Backend {
        backend,
        kind: BackendErrorKind::Io,
        message: format!("cannot {what} {}: {e}", path.display()),
        source: Some(Box::new(e)),
    };
    let name = dest
        .file_name()
        .map_or_else(|| "backup".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dest.with_file_name(format!(".{name}.backup-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let placed = build(&tmp)
        .and_then(|()| {
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| io("sync", &tmp, e))
        })
        .and_then(|()| std::fs::hard_link(&tmp, dest).map_err(|e| io("create", dest, e)));
    let _ = std::fs::remove_file(&tmp);
    placed?;
    if let Some(dir) = dest.parent().and_then(|d| std::fs::File::open(d).ok()) {
        let _ = dir.sync_all();
    }
    Ok(())
}
