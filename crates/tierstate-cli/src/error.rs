//! The CLI's one error type: every failure prints as one line with its cause and exits
//! non-zero, never a backtrace.

use std::path::PathBuf;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line or a value in it is wrong.
    #[error("{0}")]
    Usage(String),
    /// A database file that a read command needs is not there.
    #[error(
        "no database at {0} (read commands never create one; run `tierstate demo` to make one)"
    )]
    Missing(PathBuf),
    /// The store failed or refused.
    #[error("{0}")]
    Store(#[from] tierstate::Error),
    /// An accounting read failed.
    #[error("{0}")]
    Accounting(#[from] tierstate::accounting::AccountingError),
    /// An orders operation failed.
    #[error("{0}")]
    Orders(#[from] tierstate::orders::OrdersError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `verify` found damage (it has printed each finding).
    #[error("{0} damaged record(s) found")]
    Damaged(u64),
    /// A read found damage: its report is printed, then the error.
    #[error("{1} damaged record(s) found")]
    DamagedReport(crate::out::Report, u64),
    /// Some rows were not imported: the report names each, then the error.
    #[error("{1} row(s) not imported")]
    RefusedReport(crate::out::Report, u64),
    /// Stopped by Ctrl-C (exit 130); what it says was already printed.
    #[error("stopped by Ctrl-C")]
    Interrupted,
    /// Something else, said in one line.
    #[error("{0}")]
    Other(String),
}

/// The demo's failures, as the CLI prints them.
impl From<tierstate_demo::DemoError> for CliError {
    fn from(e: tierstate_demo::DemoError) -> Self {
        use tierstate_demo::DemoError as D;
        match e {
            D::Usage(m) => Self::Usage(m),
            D::Store(e) => Self::Store(e),
            D::Accounting(e) => Self::Accounting(e),
            D::Orders(e) => Self::Orders(e),
            D::Io { path, source } => Self::Io { path, source },
            other => Self::Other(other.to_string()),
        }
    }
}

impl CliError {
    /// An I/O failure on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// The CLI's result.
pub type Result<T, E = CliError> = std::result::Result<T, E>;
