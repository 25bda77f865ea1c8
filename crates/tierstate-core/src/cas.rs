//! The compare-and-swap rule, in one place for every backend.

use crate::{DeploymentId, Error, PutMode, Result, Target};

/// The version a write in `mode` gets when `current` is stored, or the error it fails with.
///
/// # Errors
/// `AlreadyExists` for a create over an existing deployment; `Conflict` for an update whose
/// expected version is not the stored one (or nothing is stored); `InvalidInput` if the version
/// counter would overflow.
pub fn next_version(id: &DeploymentId, mode: PutMode, current: Option<u64>) -> Result<u64> {
    next_version_of(id, &Target::State, mode, current)
}

/// [`next_version`] for any record of a deployment; errors name `target`.
///
/// # Errors
/// As [`next_version`].
pub fn next_version_of(
    id: &DeploymentId,
    target: &Target,
    mode: PutMode,
    current: Option<u64>,
) -> Result<u64> {
    match (mode, current) {
        (PutMode::Create, None) => Ok(1),
        (PutMode::Create, Some(actual)) => Err(Error::AlreadyExists {
            deployment_id: id.clone(),
            target: target.clone(),
            actual,
        }),
        (PutMode::Update { expected }, Some(actual)) if actual == expected => bump(id, actual),
        (PutMode::Update { expected }, actual) => Err(Error::Conflict {
            deployment_id: id.clone(),
            target: target.clone(),
            expected,
            actual,
        }),
        (PutMode::Overwrite, None) => Ok(1),
        (PutMode::Overwrite, Some(actual)) => bump(id, actual),
    }
}

fn bump(id: &DeploymentId, v: u64) -> Result<u64> {
    // Backends store versions as signed 64-bit integers.
    if v >= i64::MAX as u64 {
        return Err(Error::invalid(
            "version",
            format!("{id} has reached the largest version"),
        ));
    }
    Ok(v + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        let id = DeploymentId::new("d").unwrap();
        assert_eq!(next_version(&id, PutMode::Create, None).unwrap(), 1);
        assert!(matches!(
            next_version(&id, PutMode::Create, Some(4)),
            Err(Error::AlreadyExists { actual: 4, .. })
        ));
        assert_eq!(
            next_version(&id, PutMode::Update { expected: 4 }, Some(4)).unwrap(),
            5
        );
        assert!(matches!(
            next_version(&id, PutMode::Update { expected: 3 }, Some(4)),
            Err(Error::Conflict {
                expected: 3,
                actual: Some(4),
                ..
            })
        ));
        assert!(matches!(
            next_version(&id, PutMode::Update { expected: 3 }, None),
            Err(Error::Conflict {
                expected: 3,
                actual: None,
                ..
            })
        ));
        assert_eq!(next_version(&id, PutMode::Overwrite, None).unwrap(), 1);
        assert_eq!(next_version(&id, PutMode::Overwrite, Some(9)).unwrap(), 10);
    }
}
