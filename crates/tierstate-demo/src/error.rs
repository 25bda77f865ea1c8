//! The demo's one error type: each failure says what and why in one line.

use std::path::PathBuf;

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// An option is wrong (nothing was created).
    #[error("{0}")]
    Usage(String),
    /// The store failed or refused.
    #[error("{0}")]
    Store(#[from] tierstate::Error),
    /// The ledger or the portfolio failed.
    #[error("{0}")]
    Accounting(#[from] tierstate::accounting::AccountingError),
    /// The orders or the venue failed.
    #[error("{0}")]
    Orders(#[from] tierstate::orders::OrdersError),
    /// The position could not take a trade or a mark.
    #[error("{0}")]
    Positions(#[from] tierstate::positions::PositionError),
    /// The venue's file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Something else, said in one line.
    #[error("{0}")]
    Other(String),
}

impl DemoError {
    /// An I/O failure on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// The demo's result.
pub type Result<T, E = DemoError> = std::result::Result<T, E>;
