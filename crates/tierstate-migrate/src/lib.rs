//! Payload schema migrations: how a strategy's state changes shape between releases.
//!
//! A [`StateMigration`] with `version = v` turns a state at schema `v - 1` into one at `v`.
//! A [`MigrationRegistry`] holds them, finds the path between two versions (a gap is an
//! error naming the missing step) and says which older binaries can still read data at its
//! current version (`rollback_safe_until`), which the state manager enforces when it opens.
//!
//! ```
//! use serde_json::json;
//! use tierstate_migrate::{MigrationRegistry, StateMigration};
//!
//! let mut reg = MigrationRegistry::new();
//! reg.register(StateMigration::new(2, "rename qty to size", 1, |mut s| {
//!     if let Some(q) = s.remove("qty") { s.insert("size".into(), q); }
//!     Ok(s)
//! })).unwrap();
//! let (state, at) = reg.migrate(json!({"qty": "1.5"}).as_object().unwrap().clone(), 1).unwrap();
//! assert_eq!((state["size"].as_str(), at), (Some("1.5"), 2));
//! ```
#![deny(missing_docs)]

mod registry;

pub use registry::{
    AppliedStep, BlockingStep, MigrateFn, Migrated, MigrationError, MigrationRegistry,
    RollbackInfo, RollbackTarget, StateMigration,
};
