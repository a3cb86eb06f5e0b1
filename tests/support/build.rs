//! With feature `components`: builds the plugins workspace (`plugins/`) for
//! wasm32-wasip2 with a nested cargo and writes the component paths to
//! `$OUT_DIR/components.rs`, so that `cargo test` needs no manual step before loading
//! them. Without it (the log and store tests), it does nothing.
//!
//! The nested build has its own target directory next to this build's profile
//! directory (e.g. `target/debug/tally-plugins-wasm`), shared by rebuilds, and
//! reruns only when the WIT, the SDK or a plugin changes.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The wasm target the plugins are built for.
const TARGET: &str = "wasm32-wasip2";

/// Components to expose: constant name, plugin directory, wasm file stem, doc.
const COMPONENTS: &[(&str, &str, &str, &str)] = &[
    (
        "ACCOUNT_SUMMARY",
        "account-summary",
        "account_summary",
        "account-summary (1.0.0), the reference projection over bank-account (v1 and v2)",
    ),
    (
        "BANK_ACCOUNT_V1",
        "bank-account",
        "bank_account",
        "bank-account v1 (1.0.0)",
    ),
    (
        "BANK_ACCOUNT_V2",
        "bank-account-v2",
        "bank_account_v2",
        "bank-account v2 (2.0.0)",
    ),
    (
        "TEST_CONTRACT_V1",
        "testing/test-contract-v1",
        "test_contract_v1",
        "test-contract-v1, a counter built against the frozen tally:aggregate@1.0.0 (no `decide`)",
    ),
    (
        "TEST_SUMMARY_V2",
        "testing/test-summary-v2",
        "test_summary_v2",
        "test-summary-v2, account-summary's logic as version 2.0.0, for the rebuild tests",
    ),
    (
        "TEST_PANIC",
        "testing/test-panic",
        "test_panic",
        "test-panic, which panics on `Explode`",
    ),
    (
        "TEST_HOSTILE",
        "testing/test-hostile",
        "test_hostile",
        "test-hostile, whose commands loop forever, exhaust memory, panic in `apply`, return a 100 MB event or an event that does not decode back",
    ),
    (
        "TEST_HOSTILE_PROJECTION",
        "testing/test-hostile-projection",
        "test_hostile_projection",
        "test-hostile-projection, a projection over bank-account whose deposits of 13 to 20 loop forever, exhaust memory, write a document too large, into an undeclared table, not JSON or at a key too long, return an error or panic",
    ),
    (
        "TEST_NAME_CLASH",
        "testing/test-name-clash",
        "test_name_clash",
        "test-name-clash, a projection named `bank-account` like the aggregate type, for the one-namespace tests",
    ),
    (
        "TEST_IMPOSTOR",
        "testing/test-impostor",
        "test_impostor",
        "test-impostor, which claims aggregate type `bank-account` but is not it",
    ),
];

/// Environment that the outer cargo sets for this build script but that must not
/// leak into the nested build: host rustflags, clippy's wrapper, a forced target.
const NOT_INHERITED: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_TARGET_DIR",
    "CARGO_PRIMARY_PACKAGE",
];

fn main() {
    if env::var_os("CARGO_FEATURE_COMPONENTS").is_none() {
        println!("cargo:rerun-if-changed=build.rs");
        return;
    }
    build_components();
}

/// Builds the plugins and writes `components.rs`.
fn build_components() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .join("../..")
        .canonicalize()
        .expect("the repository root exists");
    let plugins = root.join("plugins");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target_dir = nested_target_dir(&out_dir);

    rerun_if_changed(&root, &plugins);
    build_plugins(&plugins, &target_dir);
    let source = components_source(&target_dir.join(TARGET).join("release"));
    std::fs::write(out_dir.join("components.rs"), source).expect("write components.rs");
}

/// The constants of `components.rs`: the path of each built component in `release`.
fn components_source(release: &Path) -> String {
    let mut source = String::new();
    for &(constant, dir, stem, doc) in COMPONENTS {
        let path = release.join(format!("{stem}.wasm"));
        assert!(
            path.is_file(),
            "the plugins build did not produce {} (plugins/{dir})",
            path.display()
        );
        // Rebuild if a component is deleted behind cargo's back.
        println!("cargo:rerun-if-changed={}", path.display());
        writeln!(
            source,
            "/// Path of the component {doc}, built from `plugins/{dir}`."
        )
        .unwrap();
        writeln!(
            source,
            "pub const {constant}: &str = {:?};",
            path.display().to_string()
        )
        .unwrap();
    }
    source
}

/// The nested build's target directory: beside this profile's `build/` directory
/// when it can be found (stable across rebuilds), else inside `OUT_DIR`.
fn nested_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "build"))
        .and_then(Path::parent)
        .map_or_else(
            || out_dir.join("plugins-target"),
            |profile| profile.join("tally-plugins-wasm"),
        )
}

/// Reruns when the WIT, the SDK or the plugins' sources or manifests change.
/// `plugins/` itself is not watched as a whole: a `plugins/target` from a manual
/// build would trigger a rebuild every time.
fn rerun_if_changed(root: &Path, plugins: &Path) {
    let mut watched = vec![
        root.join("wit"),
        root.join("guest-sdk/rust/src"),
        root.join("guest-sdk/rust/Cargo.toml"),
        plugins.join("Cargo.toml"),
        plugins.join("Cargo.lock"),
    ];
    for &(_, dir, _, _) in COMPONENTS {
        watched.push(plugins.join(dir).join("src"));
        watched.push(plugins.join(dir).join("Cargo.toml"));
    }
    for path in watched {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// Runs `cargo build --release --target wasm32-wasip2` in `plugins/`.
fn build_plugins(plugins: &Path, target_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(plugins.join("Cargo.toml"));
    for name in NOT_INHERITED {
        command.env_remove(name);
    }
    command.env("CARGO_TARGET_DIR", target_dir);
    let status = command.status().expect("run cargo for the plugins build");
    assert!(
        status.success(),
        "building the plugins for {TARGET} failed ({status}); if the target is missing, run \
         `rustup target add {TARGET}`"
    );
}
