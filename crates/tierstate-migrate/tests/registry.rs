//! Registry behaviour: registration, paths, rollback safety, typed steps, failures.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tierstate_migrate::{MigrationError, MigrationRegistry, StateMigration};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn add_field(version: u32, field: &'static str, safe: u32) -> StateMigration {
    StateMigration::new(version, format!("add {field}"), safe, move |mut s| {
        s.insert(field.into(), json!(version));
        Ok(s)
    })
}

#[test]
fn duplicate_and_invalid_steps_are_refused() {
    let mut reg = MigrationRegistry::new();
    reg.register(add_field(2, "a", 1)).unwrap();
    assert_eq!(
        reg.register(add_field(2, "b", 1)).unwrap_err(),
        MigrationError::Duplicate(2)
    );
    assert_eq!(
        reg.register(add_field(1, "c", 1)).unwrap_err(),
        MigrationError::BelowBase {
            version: 1,
            base: 1
        }
    );
    assert_eq!(
        reg.register(add_field(3, "d", 4)).unwrap_err(),
        MigrationError::BadRollback {
            version: 3,
            until: 4
        }
    );
    assert_eq!(reg.current_version(), 2);
}

#[test]
fn paths_and_gaps() {
    let mut reg = MigrationRegistry::new();
    reg.register(add_field(2, "a", 1)).unwrap();
    reg.register(add_field(4, "c", 3)).unwrap();
    assert_eq!(reg.current_version(), 4);
    assert_eq!(reg.path(1, 2).unwrap().len(), 1);
    assert_eq!(reg.path(2, 2).unwrap().len(), 0);
    assert_eq!(
        reg.path(1, 4).unwrap_err(),
        MigrationError::Gap {
            missing: 3,
            from: 1,
            to: 4
        }
    );
    assert!(matches!(reg.path(4, 2), Err(MigrationError::TooNew { .. })));
    reg.register(add_field(3, "b", 3)).unwrap();
    let (s, v) = reg.migrate(obj(json!({"x": 0})), 1).unwrap();
    assert_eq!(v, 4);
    assert_eq!(s, obj(json!({"x": 0, "a": 2, "b": 3, "c": 4})));
    let (s, v) = reg.migrate(obj(json!({"x": 0})), 3).unwrap();
    assert_eq!((s, v), (obj(json!({"x": 0, "c": 4})), 4));
    assert_eq!(
        reg.migrate(obj(json!({})), 5).unwrap_err(),
        MigrationError::TooNew {
            found: 5,
            current: 4
        }
    );
}

#[test]
fn rollback_info_is_the_oldest_reader() {
    let mut reg = MigrationRegistry::new();
    assert_eq!(reg.rollback_info().oldest_reader, 1);
    reg.register(add_field(2, "a", 1)).unwrap(); // additive: v1 binaries can read v2 data
    assert_eq!(reg.rollback_info().oldest_reader, 1);
    reg.register(add_field(3, "b", 3)).unwrap(); // breaking: only v3 binaries read v3 data
    assert_eq!(reg.rollback_info().oldest_reader, 3);
    reg.register(add_field(4, "c", 3)).unwrap(); // additive on top of v3
    assert_eq!(reg.rollback_info().oldest_reader, 3);
    assert_eq!(reg.rollback_info().current, 4);
}

#[test]
fn failing_step_is_named_and_input_untouched() {
    let mut reg = MigrationRegistry::new();
    reg.register(add_field(2, "a", 1)).unwrap();
    reg.register(StateMigration::new(3, "needs price", 3, |s| {
        if s.contains_key("price") {
            Ok(s)
        } else {
            Err("price is missing".into())
        }
    }))
    .unwrap();
    let input = obj(json!({"x": 1}));
    let err = reg.migrate(input.clone(), 1).unwrap_err();
    assert_eq!(
        err,
        MigrationError::StepFailed {
            version: 3,
            description: "needs price".into(),
            reason: "price is missing".into()
        }
    );
    assert_eq!(
        input,
        obj(json!({"x": 1})),
        "the caller's copy is untouched"
    );
}

#[test]
fn typed_steps() {
    #[derive(Deserialize, Serialize)]
    struct V1 {
        qty: f64,
    }
    #[derive(Serialize)]
    struct V2 {
        size: String,
        unit: &'static str,
    }
    let mut reg = MigrationRegistry::new();
    reg.register(StateMigration::typed(
        2,
        "qty as text with unit",
        2,
        |v: V1| {
            Ok(V2 {
                size: format!("{}", v.qty),
                unit: "contracts",
            })
        },
    ))
    .unwrap();
    let (s, _) = reg.migrate(obj(json!({"qty": 1.5})), 1).unwrap();
    assert_eq!(s, obj(json!({"size": "1.5", "unit": "contracts"})));
    let err = reg
        .migrate(obj(json!({"qty": "not a number"})), 1)
        .unwrap_err();
    assert!(
        matches!(err, MigrationError::StepFailed { version: 2, .. }),
        "{err:?}"
    );
}

/// Seed 000's registry calls: `get(version)`, rollback info for a given version with the safe
/// and unsafe targets and why, a result listing the steps applied with their run time, a
/// creation time on each step and a default rollback safety.
#[test]
fn lookup_rollback_targets_reports_and_defaults() {
    use chrono::TimeZone;
    let mut reg = MigrationRegistry::new();
    let defined = chrono::Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    reg.register(add_field(2, "a", 1).created_at(defined))
        .unwrap();
    reg.register(StateMigration::step(3, "rename b", |mut s| {
        let b = s.remove("a").unwrap_or(Value::Null);
        s.insert("b".into(), b);
        Ok(s)
    }))
    .unwrap();
    reg.register(add_field(4, "c", 3)).unwrap();

    let two = reg.get(2).unwrap();
    assert_eq!(
        (two.description.as_str(), two.created_at),
        ("add a", defined)
    );
    assert!(reg.get(5).is_none() && reg.get(1).is_none());
    assert_eq!(
        two.apply(obj(json!({"x": 0}))).unwrap(),
        obj(json!({"x": 0, "a": 2}))
    );
    // The default is the safe one: only binaries at the step's own version read its output.
    assert_eq!(reg.get(3).unwrap().rollback_safe_until, 3);
    let before = chrono::Utc::now() - chrono::Duration::seconds(60);
    assert!(reg.get(3).unwrap().created_at > before);

    // Data at 4: a v3 binary reads it; v2 and v1 do not, because of step 3.
    let t = reg.rollback_targets(4).unwrap();
    let summary: Vec<_> = t
        .iter()
        .map(|r| (r.target, r.safe, r.blocked_by.as_ref().map(|b| b.version)))
        .collect();
    assert_eq!(
        summary,
        [(3, true, None), (2, false, Some(3)), (1, false, Some(3))]
    );
    let why = t[1].blocked_by.as_ref().unwrap().to_string();
    assert!(
        why.contains("rename b") && why.contains("at 3 or later"),
        "{why}"
    );
    // Data at 2 (additive step): a v1 binary reads it.
    let t = reg.rollback_targets(2).unwrap();
    assert_eq!((t.len(), t[0].target, t[0].safe), (1, 1, true));
    assert!(matches!(
        reg.rollback_targets(5),
        Err(MigrationError::TooNew {
            found: 5,
            current: 4
        })
    ));

    // The report lists each step applied, in order, with its time.
    let m = reg.migrate_report(obj(json!({"x": 1})), 1).unwrap();
    assert_eq!((m.from, m.to), (1, 4));
    assert_eq!(
        m.applied.iter().map(|s| s.version).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    assert_eq!(m.applied[1].description, "rename b");
    assert!(m.duration >= m.applied.iter().map(|s| s.duration).sum());
    assert_eq!(m.state, obj(json!({"x": 1, "b": 2, "c": 4})));
    let none = reg.migrate_report(m.state.clone(), 4).unwrap();
    assert!(none.applied.is_empty());
}
