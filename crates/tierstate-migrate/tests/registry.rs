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
