//! The conformance suite against the in-memory reference store.
tierstate_testkit::conformance_tests!(tierstate_testkit::memory_harness);
