//! tierstate's errors as the Python exception classes of `tierstate.errors`, with their
//! attributes (a conflict carries the deployment, the expected and the actual version).

use pyo3::prelude::*;
use pyo3::types::PyDict;
use tierstate::Error;

/// The exception of class `name` in `tierstate.errors`, built with `message` and `attrs`.
fn raise(name: &str, message: String, attrs: &[(&str, Py<PyAny>)]) -> PyErr {
    Python::attach(|py| {
        let made = (|| -> PyResult<PyErr> {
            let module = py.import("tierstate.errors")?;
            let class = module.getattr(name)?;
            let kwargs = PyDict::new(py);
            for (k, v) in attrs {
                kwargs.set_item(k, v)?;
            }
            let e = class.call((message.clone(),), Some(&kwargs))?;
            Ok(PyErr::from_value(e))
        })();
        made.unwrap_or_else(|e| e)
    })
}

/// The exception of class `name` in `tierstate.errors`, with only its message.
pub fn raise_named(name: &str, message: String) -> PyErr {
    raise(name, message, &[])
}

/// The base class, for failures of the binding itself.
pub fn base(message: String) -> PyErr {
    raise("TierstateError", message, &[])
}

/// `InvalidInputError` (also a `ValueError`) naming the field.
pub fn invalid(field: &str, reason: impl std::fmt::Display) -> PyErr {
    let message = format!("invalid {field}: {reason}");
    Python::attach(|py| {
        raise(
            "InvalidInputError",
            message,
            &[(
                "field",
                field.into_pyobject(py).expect("str").into_any().unbind(),
            )],
        )
    })
}

/// The Python exception for a tierstate error.
pub fn to_py(e: Error) -> PyErr {
    let message = e.to_string();
    Python::attach(|py| {
        let s = |v: &str| v.into_pyobject(py).expect("str").into_any().unbind();
        let n = |v: u64| v.into_pyobject(py).expect("int").into_any().unbind();
        let none = || py.None();
        match &e {
            Error::InvalidInput { field, .. } => {
                raise("InvalidInputError", message, &[("field", s(field))])
            }
            Error::NotFound { deployment_id } => raise(
                "NotFoundError",
                message,
                &[("deployment_id", s(deployment_id.as_str()))],
            ),
            Error::AlreadyExists {
                deployment_id,
                actual,
                ..
            } => raise(
                "AlreadyExistsError",
                message,
                &[
                    ("deployment_id", s(deployment_id.as_str())),
                    ("actual", n(*actual)),
                ],
            ),
            Error::Conflict {
                deployment_id,
                expected,
                actual,
                ..
            } => raise(
                "ConflictError",
                message,
                &[
                    ("deployment_id", s(deployment_id.as_str())),
                    ("expected", n(*expected)),
                    ("actual", actual.map_or_else(none, n)),
                ],
            ),
            Error::Integrity {
                deployment_id,
                version,
                ..
            } => raise(
                "IntegrityError",
                message,
                &[
                    ("deployment_id", s(deployment_id.as_str())),
                    ("version", n(*version)),
                ],
            ),
            Error::Corrupt { .. } => raise("IntegrityError", message, &[]),
            Error::SchemaTooNew { .. }
            | Error::PayloadTooNew { .. }
            | Error::MigrationFailed { .. } => raise("SchemaError", message, &[]),
            Error::RollbackUnsafe { .. } => raise("RollbackError", message, &[]),
            Error::Held {
                deployment_id,
                holder,
                ..
            } => raise(
                "LockedError",
                message,
                &[
                    ("deployment_id", s(deployment_id.as_str())),
                    ("holder", s(holder)),
                ],
            ),
            Error::Backend { kind, .. } if *kind == tierstate::BackendErrorKind::Locked => {
                raise("LockedError", message, &[])
            }
            _ => {
                let retryable = e
                    .is_retryable()
                    .into_pyobject(py)
                    .expect("bool")
                    .to_owned()
                    .into_any()
                    .unbind();
                raise("BackendError", message, &[("retryable", retryable)])
            }
        }
    })
}
