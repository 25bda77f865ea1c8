//! The NOTIFY channel every commit is announced on and every store's listener hears: one place
//! the writer and the listener both see.

use sqlx::{Postgres, Transaction};
use tierstate_core::Result;

use crate::error::in_flight;

/// The channel every commit is announced on: payload `"<schema> <version> <deployment id>"`.
pub const NOTIFY_CHANNEL: &str = "tierstate_state";

/// Queues one NOTIFY per payload (`"<version> <id>"`, 0 for a delete) in the transaction.
pub(crate) async fn notify(tx: &mut Transaction<'_, Postgres>, payloads: &[String]) -> Result<()> {
    // Prefixed with the schema: managers on other schemas of the same database hear the
    // channel too, and must not evict their own entries of the same id.
    sqlx::query("SELECT pg_notify($1, current_schema() || ' ' || p) FROM unnest($2::text[]) AS p")
        .bind(NOTIFY_CHANNEL)
        .bind(payloads)
        .execute(&mut **tx)
        .await
        .map_err(in_flight)?;
    Ok(())
}
