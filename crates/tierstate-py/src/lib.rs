//! The native module of the `tierstate` Python package: the front door's handle, with every
//! call blocking on one runtime while the GIL is released. The Python package around it
//! (`python/tierstate`) adds the async twins, the exception classes and the seed-000 drop-in.

mod convert;
mod domain;
mod errors;
mod runtime;
mod store;
mod trading;

use pyo3::prelude::*;

/// `tierstate._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<store::Store>()?;
    m.add_class::<store::State>()?;
    m.add_class::<trading::SimVenue>()?;
    m.add_function(wrap_pyfunction!(store::open, m)?)?;
    m.add_function(wrap_pyfunction!(convert::roundtrip, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
