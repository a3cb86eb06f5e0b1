//! The plugin components the tests load, built from `plugins/` for wasm32-wasip2 by this
//! crate's build script: their paths (`BANK_ACCOUNT_V1`...), their bytes, and a compile
//! cache for the hosts under test.

use std::path::Path;
use std::sync::OnceLock;

include!(concat!(env!("OUT_DIR"), "/components.rs"));

/// The bytes of the built component at `path` (one of this module's constants).
pub fn bytes(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|error| panic!("read {path}: {error}"))
}

/// A compile cache directory shared by every host of this test binary, so that each
/// component is compiled once per run.
pub fn compile_cache() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("compile cache dir"))
        .path()
}
