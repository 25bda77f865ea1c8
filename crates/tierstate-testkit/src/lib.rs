//! The tierstate conformance suite: every behaviour of [`StateStore`] specified once, run
//! against every backend.
//!
//! A backend's test file provides an async factory returning a [`Harness`] and invokes
//! [`conformance_tests!`], which generates one `#[tokio::test]` per check: states, documents,
//! journals, batches, damage, and what a verifier relies on, each in the file of its name.
//!
//! ```text
//! async fn harness() -> tierstate_testkit::Harness { /* open a fresh store */ }
//! tierstate_testkit::conformance_tests!(harness);
//! ```
#![deny(missing_docs)]
// Every check panics on a violation: that is how a test reports it.
#![allow(clippy::missing_panics_doc)]

use std::any::Any;
use std::sync::Arc;

use tierstate_core::{DeploymentId, Fault, FaultSeam, InMemoryStore, StateStore};

pub mod batches;
pub mod copy;
pub mod damage;
pub mod documents;
pub mod journals;
pub mod state;
mod support;
pub mod verify;

/// Every check, by name (what [`conformance_tests!`] calls).
pub mod checks {
    pub use crate::batches::*;
    pub use crate::copy::*;
    pub use crate::damage::*;
    pub use crate::documents::*;
    pub use crate::journals::*;
    pub use crate::state::*;
    pub use crate::verify::*;
}

/// A fresh, empty store under test plus its fault seam.
pub struct Harness {
    /// The store, empty.
    pub store: Arc<dyn StateStore>,
    /// The backend's fault seam (every backend provides one): damage the way a bad disk would.
    pub faults: Arc<dyn FaultSeam>,
    /// Anything that must outlive the test (a temporary directory, a server handle).
    pub guard: Box<dyn Any + Send>,
}

impl Harness {
    /// Flips a bit of the first byte of a stored version (the newest if `None`), leaving its
    /// checksum: false if there was no such record.
    ///
    /// # Panics
    /// If the backend fails to inject it.
    pub async fn damage_state(&self, id: DeploymentId, version: Option<u64>) -> bool {
        self.inject(Fault::StateBytes {
            id,
            version,
            offset: 0,
            mask: 0x20,
        })
        .await
    }

    /// Injects `fault` through the backend's seam.
    ///
    /// # Panics
    /// If the backend fails to inject it.
    pub async fn inject(&self, fault: Fault) -> bool {
        let shown = format!("{fault:?}");
        self.faults
            .inject(fault)
            .await
            .unwrap_or_else(|e| panic!("injecting {shown}: {e}"))
    }
}

/// A harness over the in-memory reference store.
pub async fn memory_harness() -> Harness {
    let store = Arc::new(InMemoryStore::new());
    Harness {
        store: store.clone(),
        faults: store,
        guard: Box::new(()),
    }
}

/// Writes versions `versions` of `id`, each `{"n": v}` (version 1 creates it), every write
/// keeping `retention`: history for backend tests of pruning.
///
/// # Panics
/// If a write fails.
pub async fn write_versions(
    store: &dyn StateStore,
    id: &DeploymentId,
    versions: std::ops::RangeInclusive<u64>,
    retention: tierstate_core::Retention,
) {
    use tierstate_core::StateWrite;
    for v in versions {
        let n = serde_json::json!({ "n": v })
            .as_object()
            .expect("an object")
            .clone();
        let w = if v == 1 {
            StateWrite::create(id.clone(), n)
        } else {
            StateWrite::update(id.clone(), v - 1, n)
        };
        store.put(w, retention).await.expect("write a version");
    }
}

/// The PostgreSQL server for tests, from `TEST_DATABASE_URL`. Without it the caller skips its
/// test, after this says so loudly, unless `TIERSTATE_REQUIRE_POSTGRES=1` (what
/// `cargo xtask test --require-postgres` sets), which makes it fail instead.
///
/// # Panics
/// When PostgreSQL is required but not configured.
pub fn pg_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var("TIERSTATE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "PostgreSQL is required but TEST_DATABASE_URL is not set"
            );
            eprintln!("SKIPPED: no PostgreSQL (set TEST_DATABASE_URL or run `cargo xtask test`)");
            None
        }
    }
}

/// A PostgreSQL schema name no other test (in any process) uses.
///
/// # Panics
/// If the system clock is before 1970.
pub fn fresh_schema(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    format!(
        "{prefix}_{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Generates one `#[tokio::test]` per conformance check, each on a fresh harness from
/// `$factory` (an async fn returning [`Harness`], or `Option<Harness>` for a backend that may be
/// unavailable, such as a server that is not configured).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::conformance_tests!(@each $factory;
            create_then_load,
            create_existing_fails,
            update_bumps_version,
            stale_update_conflicts,
            missing_update_conflicts,
            overwrite_creates_or_replaces,
            delete_removes_state_and_history,
            history_newest_first,
            retention_prunes_in_the_same_commit,
            retention_never_brings_pruned_versions_back,
            batch_commits_all,
            batch_failing_member_writes_nothing,
            corruption_is_detected_never_returned,
            scan_reports_damage_in_place,
            concurrent_increments_are_exact,
            ten_thousand_deployments_listed_and_scanned,
            one_mib_state_round_trips,
            unicode_keys_round_trip,
            invalid_input_changes_nothing,
            typed_state_round_trips,
            nesting_limit_is_one_rule_for_write_and_read,
            floats_round_trip_bit_exactly,
            schema_version_out_of_range_is_refused,
            reserved_records_are_hidden_from_listing,
            documents_compare_and_swap,
            a_document_keeps_its_own_retention,
            documents_list_by_collection,
            documents_scan_by_key_range,
            a_scan_reads_current_versions_whatever_the_history,
            record_damage_is_detected,
            large_bodies_are_compressed_and_still_checked,
            journal_sequences_are_contiguous,
            journal_idempotency_keys,
            journal_optimistic_appends,
            journal_queries,
            journal_truncation_keeps_the_chain,
            time_travel,
            mixed_batch_is_atomic,
            batch_guards_a_document,
            tail_follows_a_journal,
            catalog_lists_collections_and_streams,
            concurrent_point_reads_agree,
            every_deployment_with_any_record_is_listed,
            document_versions_read_by_number,
            audit_reads_step_over_damage,
            reads_by_time_see_a_deleted_neighbour,
            engine_check_passes_on_a_healthy_store,
            a_copy_holds_every_record_as_the_original,
        );
    };
    (@each $factory:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                // A factory may return `Option<Harness>`: `None` means the backend is not
                // available here and the factory has already said why.
                let harness: Option<$crate::Harness> = $factory().await.into();
                let Some(harness) = harness else { return };
                $crate::checks::$check(&harness).await;
            }
        )*
    };
}
