//! Migration steps and their registry.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The function of one step: the state at `version - 1` in, the state at `version` out.
pub type MigrateFn =
    Arc<dyn Fn(Map<String, Value>) -> Result<Map<String, Value>, String> + Send + Sync>;

/// Why a migration could not be registered, planned or applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MigrationError {
    /// Two steps claim the same version.
    #[error("a migration to version {0} is already registered")]
    Duplicate(u32),
    /// A step's version is not above the base version.
    #[error("migration version {version} must be greater than the base version {base}")]
    BelowBase {
        /// The step's version.
        version: u32,
        /// The registry's base version.
        base: u32,
    },
    /// A step's `rollback_safe_until` is above its own version.
    #[error("migration {version}: rollback_safe_until {until} is above the step's own version")]
    BadRollback {
        /// The step's version.
        version: u32,
        /// The offending value.
        until: u32,
    },
    /// No registered step leads to `missing` on the way from `from` to `to`.
    #[error("no migration to version {missing} (needed on the way from {from} to {to})")]
    Gap {
        /// The version with no step.
        missing: u32,
        /// Start of the path.
        from: u32,
        /// End of the path.
        to: u32,
    },
    /// The data is newer than this registry knows.
    #[error("state is at schema version {found}, newer than this build's {current}")]
    TooNew {
        /// The state's schema version.
        found: u32,
        /// The registry's current version.
        current: u32,
    },
    /// A step failed; the input state is untouched.
    #[error("migration to version {version} ({description}) failed: {reason}")]
    StepFailed {
        /// The failing step.
        version: u32,
        /// Its description.
        description: String,
        /// What it said.
        reason: String,
    },
}

/// One step of a payload schema.
#[derive(Clone)]
pub struct StateMigration {
    /// The schema version this step produces (from `version - 1`).
    pub version: u32,
    /// What it changes, for logs and operators.
    pub description: String,
    /// The transformation.
    pub migrate: MigrateFn,
    /// The oldest schema version whose binaries can still read data at `version` (e.g. a new
    /// optional field: `version - 1`; a renamed or removed field: `version`).
    pub rollback_safe_until: u32,
    /// When the step was defined (seed 000's `created_at`): now, unless set with
    /// [`StateMigration::created_at`].
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for StateMigration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateMigration")
            .field("version", &self.version)
            .field("description", &self.description)
            .field("rollback_safe_until", &self.rollback_safe_until)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl StateMigration {
    /// A step on raw JSON objects.
    pub fn new(
        version: u32,
        description: impl Into<String>,
        rollback_safe_until: u32,
        migrate: impl Fn(Map<String, Value>) -> Result<Map<String, Value>, String>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        Self {
            version,
            description: description.into(),
            migrate: Arc::new(migrate),
            rollback_safe_until,
            created_at: Utc::now(),
        }
    }

    /// A step with the default rollback safety: only binaries at `version` read its output.
    /// The default is the safe one (seed 000's default, 1, declares every older binary able
    /// to read anything, so a rollback could silently drop what a step wrote); a step that
    /// only adds an optional field says so with [`StateMigration::new`] and `version - 1`.
    pub fn step(
        version: u32,
        description: impl Into<String>,
        migrate: impl Fn(Map<String, Value>) -> Result<Map<String, Value>, String>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        Self::new(version, description, version, migrate)
    }

    /// Runs the step on `state` (seed 000's `apply`); the input is moved in, so the caller's
    /// stored copy is never touched.
    ///
    /// # Errors
    /// `StepFailed` naming this step.
    pub fn apply(&self, state: Map<String, Value>) -> Result<Map<String, Value>, MigrationError> {
        (self.migrate)(state).map_err(|reason| MigrationError::StepFailed {
            version: self.version,
            description: self.description.clone(),
            reason,
        })
    }

    /// The same step, defined at `at`.
    #[must_use]
    pub fn created_at(mut self, at: DateTime<Utc>) -> Self {
        self.created_at = at;
        self
    }

    /// A step written against serde types: decode `From`, convert, encode `To`.
    pub fn typed<From, To>(
        version: u32,
        description: impl Into<String>,
        rollback_safe_until: u32,
        convert: impl Fn(From) -> Result<To, String> + Send + Sync + 'static,
    ) -> Self
    where
        From: DeserializeOwned + Serialize,
        To: Serialize,
    {
        Self::new(version, description, rollback_safe_until, move |state| {
            let old: From = tierstate_core::exact::from_map(&state)
                .map_err(|e| format!("state does not match the step's input type: {e}"))?;
            match serde_json::to_value(convert(old)?) {
                Ok(Value::Object(map)) => Ok(map),
                Ok(_) => Err("the step's output type is not a JSON object".into()),
                Err(e) => Err(format!("cannot encode the step's output: {e}")),
            }
        })
    }
}

/// Which binaries can read data at the registry's current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollbackInfo {
    /// The registry's current version.
    pub current: u32,
    /// The oldest binary schema version that can still read data at `current`.
    pub oldest_reader: u32,
}

/// Whether data at one version can be read by binaries at an older `target` version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackTarget {
    /// The older version a binary would run at.
    pub target: u32,
    /// True if that binary reads the data without losing anything.
    pub safe: bool,
    /// If not safe: the first step above `target` that forbids it, and why.
    pub blocked_by: Option<BlockingStep>,
}

/// The step that makes a rollback unsafe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockingStep {
    /// Its version.
    pub version: u32,
    /// What it changes.
    pub description: String,
    /// The oldest binary version that reads its output.
    pub rollback_safe_until: u32,
}

impl fmt::Display for BlockingStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step {} ({}) is read only by binaries at {} or later",
            self.version, self.description, self.rollback_safe_until
        )
    }
}

/// One step a migration applied, and how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedStep {
    /// The version it produced.
    pub version: u32,
    /// What it changes.
    pub description: String,
    /// Its run time.
    pub duration: Duration,
}

/// What [`MigrationRegistry::migrate_report`] did (seed 000's `MigrationResult`).
#[derive(Debug, Clone, PartialEq)]
pub struct Migrated {
    /// The migrated state.
    pub state: Map<String, Value>,
    /// The version it was at.
    pub from: u32,
    /// The version it is at now.
    pub to: u32,
    /// The steps applied, in order (empty if it was current).
    pub applied: Vec<AppliedStep>,
    /// The whole run time.
    pub duration: Duration,
}

/// The registered steps of one payload schema.
#[derive(Debug, Clone)]
pub struct MigrationRegistry {
    base: u32,
    steps: BTreeMap<u32, StateMigration>,
}

impl Default for MigrationRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl MigrationRegistry {
    /// An empty registry whose states start at schema version 1.
    pub fn new() -> Self {
        Self::with_base(1)
    }

    /// An empty registry whose states start at `base`.
    pub fn with_base(base: u32) -> Self {
        Self {
            base,
            steps: BTreeMap::new(),
        }
    }

    /// Adds a step.
    ///
    /// # Errors
    /// `Duplicate` if its version is taken, `BelowBase` if it is not above the base version,
    /// `BadRollback` if `rollback_safe_until` is above its version.
    pub fn register(&mut self, step: StateMigration) -> Result<&mut Self, MigrationError> {
        if step.version <= self.base {
            return Err(MigrationError::BelowBase {
                version: step.version,
                base: self.base,
            });
        }
        if step.rollback_safe_until > step.version {
            return Err(MigrationError::BadRollback {
                version: step.version,
                until: step.rollback_safe_until,
            });
        }
        if self.steps.contains_key(&step.version) {
            return Err(MigrationError::Duplicate(step.version));
        }
        self.steps.insert(step.version, step);
        Ok(self)
    }

    /// The version new states are written at: the highest registered step, or the base.
    pub fn current_version(&self) -> u32 {
        self.steps.keys().next_back().copied().unwrap_or(self.base)
    }

    /// The version states start at.
    pub fn base_version(&self) -> u32 {
        self.base
    }

    /// The registered steps, in version order.
    pub fn steps(&self) -> impl Iterator<Item = &StateMigration> {
        self.steps.values()
    }

    /// The step that produces `version`, if registered (seed 000's `get`).
    pub fn get(&self, version: u32) -> Option<&StateMigration> {
        self.steps.get(&version)
    }

    /// The steps from `from` to `to`, in order.
    ///
    /// # Errors
    /// `Gap` naming the first version with no step; `TooNew` if `from` is above `to`.
    pub fn path(&self, from: u32, to: u32) -> Result<Vec<&StateMigration>, MigrationError> {
        if from > to {
            return Err(MigrationError::TooNew {
                found: from,
                current: to,
            });
        }
        ((from + 1)..=to)
            .map(|v| {
                self.steps.get(&v).ok_or(MigrationError::Gap {
                    missing: v,
                    from,
                    to,
                })
            })
            .collect()
    }

    /// Which older binaries can read data at the current version: the oldest `b` such that
    /// every step above `b` allows readers at `b`.
    pub fn rollback_info(&self) -> RollbackInfo {
        let current = self.current_version();
        let mut oldest = current;
        while oldest > self.base {
            let candidate = oldest - 1;
            let ok = self
                .steps
                .range(candidate + 1..=current)
                .all(|(_, s)| s.rollback_safe_until <= candidate);
            if !ok {
                break;
            }
            oldest = candidate;
        }
        RollbackInfo {
            current,
            oldest_reader: oldest,
        }
    }

    /// For data at `current`, every older version from the base up: whether a binary at it
    /// can read the data, and if not, the step that forbids it (seed 000's
    /// `get_rollback_info(current_version)`). Newest target first.
    ///
    /// # Errors
    /// `TooNew` if `current` is above the registry's current version; `Gap` for a missing
    /// step at or below it.
    pub fn rollback_targets(&self, current: u32) -> Result<Vec<RollbackTarget>, MigrationError> {
        if current > self.current_version() {
            return Err(MigrationError::TooNew {
                found: current,
                current: self.current_version(),
            });
        }
        let steps = self.path(self.base.min(current), current)?;
        Ok((self.base..current)
            .rev()
            .map(|target| {
                let blocked_by = steps
                    .iter()
                    .find(|s| s.version > target && s.rollback_safe_until > target)
                    .map(|s| BlockingStep {
                        version: s.version,
                        description: s.description.clone(),
                        rollback_safe_until: s.rollback_safe_until,
                    });
                RollbackTarget {
                    target,
                    safe: blocked_by.is_none(),
                    blocked_by,
                }
            })
            .collect())
    }

    /// As [`MigrationRegistry::migrate`], reporting each step applied with its run time.
    ///
    /// # Errors
    /// As [`MigrationRegistry::migrate`].
    pub fn migrate_report(
        &self,
        state: Map<String, Value>,
        from: u32,
    ) -> Result<Migrated, MigrationError> {
        let started = Instant::now();
        let current = self.current_version();
        if from > current {
            return Err(MigrationError::TooNew {
                found: from,
                current,
            });
        }
        let mut state = state;
        let mut applied = Vec::new();
        for step in self.path(from, current)? {
            let t = Instant::now();
            state = step.apply(state)?;
            applied.push(AppliedStep {
                version: step.version,
                description: step.description.clone(),
                duration: t.elapsed(),
            });
        }
        Ok(Migrated {
            state,
            from,
            to: current,
            applied,
            duration: started.elapsed(),
        })
    }

    /// Migrates `state` from schema `from` to the current version; returns it with its new
    /// version. The input is consumed only on success in the sense that a failure returns no
    /// partial state: the caller's stored copy is never touched.
    ///
    /// # Errors
    /// `TooNew` if `from` is above the current version, `Gap` for a missing step,
    /// `StepFailed` naming the failing step.
    pub fn migrate(
        &self,
        state: Map<String, Value>,
        from: u32,
    ) -> Result<(Map<String, Value>, u32), MigrationError> {
        self.migrate_report(state, from).map(|m| (m.state, m.to))
    }
}
