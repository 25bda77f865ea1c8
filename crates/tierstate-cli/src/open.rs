//! Opening a store by URL: `sqlite:PATH`, `redb:PATH` or `postgres://…`. Passwords are never
//! echoed: every message shows the URL redacted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tierstate::{
    PostgresConfig, PostgresStore, RedbConfig, RedbStore, SqliteConfig, SqliteStore, StateStore,
};

use crate::error::{CliError, Result};

/// A parsed store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Url {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A redb file.
    Redb(PathBuf),
    /// A PostgreSQL server, with an optional `?schema=` for tierstate's tables.
    Postgres {
        /// The connection URL without the schema parameter.
        url: String,
        /// The schema, if named.
        schema: Option<String>,
    },
}

impl Url {
    /// Parses `sqlite:PATH`, `redb:PATH`, `postgres://…` or `postgresql://…`.
    ///
    /// # Errors
    /// `Usage` naming the accepted forms.
    pub fn parse(s: &str) -> Result<Self> {
        let file = |rest: &str| -> Result<PathBuf> {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            if rest.is_empty() {
                return Err(CliError::Usage(format!("{s:?} names no file")));
            }
            Ok(PathBuf::from(rest))
        };
        if let Some(rest) = s.strip_prefix("sqlite:") {
            Ok(Self::Sqlite(file(rest)?))
        } else if let Some(rest) = s.strip_prefix("redb:") {
            Ok(Self::Redb(file(rest)?))
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            let (url, schema) = split_schema(s);
            Ok(Self::Postgres { url, schema })
        } else {
            Err(CliError::Usage(format!(
                "unknown database URL {:?}: use sqlite:PATH, redb:PATH or postgres://USER@HOST/DB",
                redact(s)
            )))
        }
    }

    /// The URL as it may be shown (password masked).
    pub fn shown(&self) -> String {
        match self {
            Self::Sqlite(p) => format!("sqlite:{}", p.display()),
            Self::Redb(p) => format!("redb:{}", p.display()),
            Self::Postgres { url, .. } => redact(url),
        }
    }

    /// The embedded database file, if this is one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Self::Sqlite(p) | Self::Redb(p) => Some(p),
            Self::Postgres { .. } => None,
        }
    }

    /// Opens the store for a read command: read-only, so nothing is created, upgraded, locked
    /// or written, on a read-only file too, beside a running writer.
    ///
    /// # Errors
    /// `Missing` for a file that is not there; `Store` for a file that is not a tierstate
    /// database, an older schema (naming `migrate`), a newer one, a redb file another process
    /// has open, or a server that cannot be reached.
    pub async fn open_read(&self) -> Result<Arc<dyn StateStore>> {
        self.require_file()?;
        Ok(match self {
            Self::Sqlite(p) => {
                Arc::new(SqliteStore::open(SqliteConfig::new(p).read_only(true)).await?)
            }
            Self::Redb(p) => Arc::new(RedbStore::open_read_only(p.clone()).await?),
            Self::Postgres { .. } => {
                Arc::new(PostgresStore::connect(self.postgres_config()?.read_only(true)).await?)
            }
        })
    }

    /// Opens the store for a command that writes (the demo): the embedded file exclusively
    /// (a second writer is refused), created if `create`.
    ///
    /// # Errors
    /// As [`Url::open_read`], and `Locked` if another process holds the file.
    pub async fn open_write(&self, create: bool) -> Result<Arc<dyn StateStore>> {
        if !create {
            self.require_file()?;
        }
        Ok(match self {
            Self::Sqlite(p) => Arc::new(SqliteStore::open(SqliteConfig::new(p)).await?),
            Self::Redb(p) => Arc::new(RedbStore::open(RedbConfig::new(p)).await?),
            Self::Postgres { .. } => {
                Arc::new(PostgresStore::connect(self.postgres_config()?).await?)
            }
        })
    }

    fn require_file(&self) -> Result<()> {
        match self.file() {
            Some(path) if !path.exists() => Err(CliError::Missing(path.to_owned())),
            _ => Ok(()),
        }
    }

    /// The PostgreSQL settings of this URL.
    ///
    /// # Errors
    /// `Store` for a bad schema name; `Other` if this is not a PostgreSQL URL.
    pub fn postgres_config(&self) -> Result<PostgresConfig> {
        let Self::Postgres { url, schema } = self else {
            return Err(CliError::Other(format!(
                "{} is not PostgreSQL",
                self.shown()
            )));
        };
        let mut config = PostgresConfig::new(url.clone())
            .application_name("tierstate-cli")
            .max_connections(4);
        if let Some(s) = schema {
            config = config.schema(s)?;
        }
        Ok(config)
    }
}

/// Takes a `schema=` query parameter out of a PostgreSQL URL.
fn split_schema(s: &str) -> (String, Option<String>) {
    let Some((base, query)) = s.split_once('?') else {
        return (s.to_owned(), None);
    };
    let mut schema = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("schema=") {
            Some(v) => {
                schema = Some(v.to_owned());
                false
            }
            None => true,
        })
        .collect();
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (url, schema)
}

/// The URL with any password masked (`scheme://user:***@host`): the library's own rule.
pub fn redact(url: &str) -> String {
    PostgresConfig::new(url).redacted_url()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_passwords_never_show() {
        assert_eq!(
            Url::parse("sqlite:a/b.db").unwrap(),
            Url::Sqlite("a/b.db".into())
        );
        assert_eq!(
            Url::parse("redb:///tmp/x.redb").unwrap(),
            Url::Redb("/tmp/x.redb".into())
        );
        let pg = Url::parse("postgres://u:secret@h:5/db?schema=s1&sslmode=disable").unwrap();
        assert_eq!(
            pg,
            Url::Postgres {
                url: "postgres://u:secret@h:5/db?sslmode=disable".into(),
                schema: Some("s1".into())
            }
        );
        assert!(!pg.shown().contains("secret"));
        let e = Url::parse("mysql://u:secret@h/db").unwrap_err().to_string();
        assert!(e.contains("sqlite:PATH") && !e.contains("secret"), "{e}");
        assert!(Url::parse("sqlite:").is_err());
    }
}
