//! Settings of the PostgreSQL backend. The password never appears in `Debug` output.

use std::fmt;
use std::time::Duration;

use tierstate_core::{Error, Result};

/// How to connect a [`crate::PostgresStore`].
#[derive(Clone)]
pub struct PostgresConfig {
    url: String,
    /// Schema (search_path) holding tierstate's tables, so environments can share a server.
    pub schema: Option<String>,
    /// Most pooled connections.
    pub max_connections: u32,
    /// How long an operation waits for a pooled connection before a retryable `Timeout`.
    pub acquire_timeout: Duration,
    /// Whether to LISTEN for other processes' commits (HOT coherence). Default true.
    pub listen: bool,
    /// `application_name` of every connection (shows in `pg_stat_activity`). Default
    /// `"tierstate"`.
    pub application_name: String,
    /// A pooled connection idle at least this long is pinged before use, and replaced if the
    /// server hung up. Default 1 s: a ping is a round trip, and pinging every acquire (sqlx's
    /// default) put one before every statement.
    pub ping_after_idle: Duration,
    /// Connect for reading only (default: no): no schema is created or migrated, the
    /// sessions are read-only (`default_transaction_read_only`), every write fails; a schema
    /// at an older or newer migration is refused by name.
    pub read_only: bool,
}

impl PostgresConfig {
    /// Settings for the database at `url` (`postgres://user:password@host:port/db`).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: None,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            listen: true,
            application_name: "tierstate".to_owned(),
            ping_after_idle: Duration::from_secs(1),
            read_only: false,
        }
    }

    /// Sets read-only connecting; see the `read_only` field.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Sets how long a pooled connection may sit idle before it is pinged on acquire
    /// (`Duration::ZERO` pings every time).
    pub fn ping_after_idle(mut self, idle: Duration) -> Self {
        self.ping_after_idle = idle;
        self
    }

    /// Sets the `application_name` the connections report to the server.
    pub fn application_name(mut self, name: &str) -> Self {
        self.application_name = name.to_owned();
        self
    }

    /// Puts the tables in `schema` (created if absent).
    ///
    /// # Errors
    /// `InvalidInput` unless `schema` is 1..=63 of `[a-z0-9_]`, starting with a letter or `_`.
    pub fn schema(mut self, schema: &str) -> Result<Self> {
        let ok = !schema.is_empty()
            && schema.len() <= 63
            && schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !schema.as_bytes()[0].is_ascii_digit();
        if !ok {
            return Err(Error::invalid(
                "schema",
                format!("{schema:?} must match [a-z_][a-z0-9_]{{0,62}}"),
            ));
        }
        self.schema = Some(schema.to_owned());
        Ok(self)
    }

    /// Sets the pool size.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Sets how long to wait for a pooled connection.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Turns the NOTIFY listener on or off.
    pub fn listen(mut self, listen: bool) -> Self {
        self.listen = listen;
        self
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }
}

/// Replaces the password of a `scheme://user:password@host…` URL (core's rule).
pub(crate) fn redact(url: &str) -> String {
    tierstate_core::redact_url(url)
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &self.redacted_url())
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("listen", &self.listen)
            .field("application_name", &self.application_name)
            .field("ping_after_idle", &self.ping_after_idle)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_never_in_debug() {
        let c = PostgresConfig::new("postgres://app:s3cr3t@db:5432/x");
        let d = format!("{c:?}");
        assert!(!d.contains("s3cr3t"), "{d}");
        assert!(d.contains("app:***@db:5432/x"), "{d}");
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
    }

    #[test]
    fn schema_names_are_validated() {
        assert!(PostgresConfig::new("u").schema("env_1").is_ok());
        for bad in ["", "1abc", "Upper", "a-b", "a;drop", &"x".repeat(64)] {
            assert!(PostgresConfig::new("u").schema(bad).is_err(), "{bad:?}");
        }
    }
}
