//! How property tests run: the number of cases, and a small runtime for async checks.

use proptest::test_runner::Config as ProptestConfig;

/// A proptest configuration with `default_cases` cases, or `PROPTEST_CASES` when it is
/// set; failing cases are printed (shrunk), never written into the source tree.
pub fn proptest_config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A multi-thread tokio runtime with one worker, for the async part of a synchronous
/// property test.
pub fn single_worker_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}
