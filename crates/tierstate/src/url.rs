//! Opening a store from a URL — `sqlite:PATH`, `redb:PATH`, `postgres://…[?schema=S]`,
//! `memory:` — for writing or for reading only, and its own schema migrations; URLs are shown
//! with any password masked. The CLI and every tool open stores this way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tierstate_core::{Error, Result, SchemaMigrate, StateStore};

/// A parsed store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUrl {
    /// An in-process store (nothing survives the process): `memory:`.
    Memory,
    /// An SQLite file: `sqlite:PATH`.
    Sqlite(PathBuf),
    /// A redb file: `redb:PATH`.
    Redb(PathBuf),
    /// A PostgreSQL server, with an optional `?schema=` for tierstate's tables.
    Postgres {
        /// The connection URL without the schema parameter.
        url: String,
        /// The schema, if named.
        schema: Option<String>,
    },
}

/// What an open may do to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read and write; a missing embedded file is created, an older schema upgraded. An
    /// embedded file is this process's alone.
    ReadWrite,
    /// Read and write an existing database only (a missing file is an error).
    ReadWriteExisting,
    /// Read only: nothing is created, upgraded, locked or written; the file may be read-only
    /// and another process may be writing it. An older schema is refused, naming `migrate`.
    ReadOnly,
}

impl StoreUrl {
    /// Parses `sqlite:PATH`, `redb:PATH`, `postgres://…`/`postgresql://…` or `memory:`.
    ///
    /// # Errors
    /// `InvalidInput` naming the accepted forms (any password masked).
    pub fn parse(s: &str) -> Result<Self> {
        let file = |rest: &str| -> Result<PathBuf> {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            if rest.is_empty() {
                return Err(Error::invalid("url", format!("{s:?} names no file")));
            }
            Ok(PathBuf::from(rest))
        };
        if s == "memory:" || s == "memory://" {
            Ok(Self::Memory)
        } else if let Some(rest) = s.strip_prefix("sqlite:") {
            Ok(Self::Sqlite(file(rest)?))
        } else if let Some(rest) = s.strip_prefix("redb:") {
            Ok(Self::Redb(file(rest)?))
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            let (url, schema) = split_schema(s);
            Ok(Self::Postgres { url, schema })
        } else {
            Err(Error::invalid(
                "url",
                format!(
                    "unknown database URL {:?}: use sqlite:PATH, redb:PATH, postgres://USER@HOST/DB or memory:",
                    redact(s)
                ),
            ))
        }
    }

    /// The URL as it may be shown: any password masked.
    pub fn shown(&self) -> String {
        match self {
            Self::Memory => "memory:".into(),
            Self::Sqlite(p) => format!("sqlite:{}", p.display()),
            Self::Redb(p) => format!("redb:{}", p.display()),
            Self::Postgres { url, schema } => match schema {
                Some(s) => format!(
                    "{}{}schema={s}",
                    redact(url),
                    if url.contains('?') { '&' } else { '?' }
                ),
                None => redact(url),
            },
        }
    }

    /// The embedded database file, if this is one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Self::Sqlite(p) | Self::Redb(p) => Some(p),
            _ => None,
        }
    }

    /// Opens the store.
    ///
    /// # Errors
    /// `InvalidInput` for a backend this build leaves out (its feature) or a missing file
    /// under `ReadOnly`/`ReadWriteExisting`; what the backend's open fails with (`Locked`,
    /// `SchemaTooNew`, a server that cannot be reached, a file that is not a database).
    pub async fn open(&self, access: Access) -> Result<Arc<dyn StateStore>> {
        if access != Access::ReadWrite
            && let Some(p) = self.file()
            && !p.exists()
        {
            return Err(Error::invalid(
                "url",
                format!("no database at {} (it is not created here)", p.display()),
            ));
        }
        match self {
            Self::Memory => Ok(Arc::new(tierstate_core::InMemoryStore::new())),
            #[cfg(feature = "sqlite")]
            Self::Sqlite(p) => Ok(Arc::new(
                tierstate_sqlite::SqliteStore::open(
                    tierstate_sqlite::SqliteConfig::new(p).read_only(access == Access::ReadOnly),
                )
                .await?,
            )),
            #[cfg(feature = "redb")]
            Self::Redb(p) => Ok(if access == Access::ReadOnly {
                Arc::new(tierstate_redb::RedbStore::open_read_only(p.clone()).await?)
            } else {
                Arc::new(tierstate_redb::RedbStore::open(tierstate_redb::RedbConfig::new(p)).await?)
            }),
            #[cfg(feature = "postgres")]
            Self::Postgres { .. } => Ok(Arc::new(
                tierstate_postgres::PostgresStore::connect(
                    self.postgres_config()?
                        .read_only(access == Access::ReadOnly),
                )
                .await?,
            )),
            #[allow(unreachable_patterns)]
            other => Err(not_built(other)),
        }
    }

    /// The database's own schema migrations.
    ///
    /// # Errors
    /// `InvalidInput` for a backend this build leaves out, or for `memory:` (it has none).
    pub fn schema(&self) -> Result<Box<dyn SchemaMigrate>> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(p) => Ok(Box::new(tierstate_sqlite::SqliteSchema::new(p))),
            #[cfg(feature = "redb")]
            Self::Redb(p) => Ok(Box::new(tierstate_redb::RedbSchema::new(p))),
            #[cfg(feature = "postgres")]
            Self::Postgres { .. } => Ok(Box::new(tierstate_postgres::PostgresSchema::new(
                self.postgres_config()?,
            ))),
            Self::Memory => Err(Error::invalid(
                "url",
                "memory: has no schema of its own to migrate",
            )),
            #[allow(unreachable_patterns)]
            other => Err(not_built(other)),
        }
    }

    /// The PostgreSQL settings of this URL (its schema applied).
    ///
    /// # Errors
    /// `InvalidInput` if this is not a PostgreSQL URL or names a bad schema.
    #[cfg(feature = "postgres")]
    pub fn postgres_config(&self) -> Result<tierstate_postgres::PostgresConfig> {
        let Self::Postgres { url, schema } = self else {
            return Err(Error::invalid(
                "url",
                format!("{} is not PostgreSQL", self.shown()),
            ));
        };
        let mut config = tierstate_postgres::PostgresConfig::new(url.clone());
        if let Some(s) = schema {
            config = config.schema(s)?;
        }
        Ok(config)
    }
}

impl std::fmt::Display for StoreUrl {
    /// The URL with any password masked.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

fn not_built(url: &StoreUrl) -> Error {
    Error::invalid(
        "url",
        format!(
            "{} needs a backend this build leaves out: enable its feature of the tierstate crate",
            url.shown()
        ),
    )
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

pub use tierstate_core::redact_url as redact;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_passwords_never_show() {
        assert_eq!(
            StoreUrl::parse("sqlite:a/b.db").unwrap(),
            StoreUrl::Sqlite("a/b.db".into())
        );
        assert_eq!(
            StoreUrl::parse("redb:///tmp/x.redb").unwrap(),
            StoreUrl::Redb("/tmp/x.redb".into())
        );
        assert_eq!(StoreUrl::parse("memory:").unwrap(), StoreUrl::Memory);
        let pg = StoreUrl::parse("postgres://u:se:cr@t@h:5/db?schema=s1&sslmode=disable").unwrap();
        assert_eq!(
            pg,
            StoreUrl::Postgres {
                url: "postgres://u:se:cr@t@h:5/db?sslmode=disable".into(),
                schema: Some("s1".into())
            }
        );
        assert!(
            !pg.shown().contains("se:cr") && pg.shown().contains("u:***@h:5"),
            "{pg}"
        );
        assert!(pg.shown().ends_with("schema=s1"), "{pg}");
        let e = StoreUrl::parse("mysql://u:secret@h/db")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sqlite:PATH") && !e.contains("secret"), "{e}");
        assert!(StoreUrl::parse("sqlite:").is_err());
        assert_eq!(
            redact("postgres://h/db?user=u&password=pw"),
            "postgres://h/db?user=u&password=***"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[tokio::test]
    async fn memory_opens_and_read_only_opens_create_nothing() {
        let s = StoreUrl::Memory.open(Access::ReadWrite).await.unwrap();
        assert_eq!(s.backend(), "memory");
        let dir = tempfile::tempdir().unwrap();
        let missing = StoreUrl::Sqlite(dir.path().join("none.db"));
        let e = missing
            .open(Access::ReadOnly)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("no database at"), "{e}");
        assert!(!dir.path().join("none.db").exists());
    }
}
