//! `tally plugin new` end to end: the generated plugin (an aggregate plugin, or with
//! `--projection` a projection) is formatted as rustfmt formats it, builds and its
//! tests pass as generated, natively and as a wasm32-wasip2 component.
//!
//! Needs the `wasm32-wasip2` target (`rustup target add wasm32-wasip2`) and rustfmt.
//! The inner cargo runs share `CARGO_TARGET_TMPDIR/plugin-new-target`, so repeated
//! runs only rebuild the plugin itself.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use tally_server::scaffold::{Kind, Language, Scaffold, SdkSource, generate};

/// The plugin name: two words, so that crate name and `.wasm` stem differ from it.
const NAME: &str = "shopping-cart";

/// The projection's name; it reads the events of the aggregate type [`NAME`].
const PROJECTION: &str = "shopping-cart-totals";

/// The guest SDK of this checkout.
fn sdk_path() -> PathBuf {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest-sdk/rust");
    fs::canonicalize(&sdk).unwrap_or_else(|error| panic!("{}: {error}", sdk.display()))
}

/// Runs `cargo ARGS` in `dir` with the shared target directory; panics with the
/// output unless it succeeds.
fn cargo(dir: &Path, target_dir: &Path, args: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir)
        // Whatever the outer build was given is not the plugin's business.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "`cargo {}` in {} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

/// Where the inner cargo runs put what they build.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-new-target")
}

/// A scaffold of `kind` named `name` in a fixed directory under the test's temp
/// dir, emptied first: a fixed path (not a fresh temp dir) keeps the inner builds
/// incremental.
fn fresh_scaffold(name: &str, kind: Kind) -> Scaffold {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("plugin-new")
        .join(name);
    if dir.exists() {
        fs::remove_dir_all(&dir).unwrap();
    }
    Scaffold {
        name: name.to_owned(),
        kind,
        dir,
        sdk: SdkSource::Path(sdk_path()),
        language: Language::Rust,
    }
}

/// Generates `scaffold` and checks that it wrote the crate's files, its tests in
/// `tests` (a relative path).
fn generate_files(scaffold: &Scaffold, tests: &str) {
    let dir = &scaffold.dir;
    let files = generate(scaffold).expect("the plugin is generated");
    for expected in ["Cargo.toml", ".gitignore", "README.md", "src/lib.rs", tests] {
        assert!(
            files.contains(&dir.join(expected)),
            "{expected} missing from {files:?}"
        );
        assert!(dir.join(expected).is_file(), "{expected} not written");
    }
}

/// Checks the generated crate in `dir` as its README tells a user to use it: it is
/// formatted, its tests pass natively, and it builds into the component `wasm_stem`
/// `.wasm`; returns the component's bytes.
fn check_and_build(dir: &Path, wasm_stem: &str) -> Vec<u8> {
    let target_dir = target_dir();
    cargo(dir, &target_dir, &["fmt", "--check"]);
    cargo(dir, &target_dir, &["test"]);
    let wasm = target_dir.join(format!("wasm32-wasip2/release/{wasm_stem}.wasm"));
    let _ = fs::remove_file(&wasm);
    cargo(
        dir,
        &target_dir,
        &["build", "--release", "--target", "wasm32-wasip2"],
    );
    let bytes = fs::read(&wasm).unwrap_or_else(|error| panic!("{}: {error}", wasm.display()));
    // `\0asm`, then version 0x0d and layer 1: a component, not a core module.
    assert_eq!(
        bytes.get(..8),
        Some(&b"\0asm\x0d\x00\x01\x00"[..]),
        "{} is not a component",
        wasm.display()
    );
    bytes
}

/// Whether the component `bytes` names the interface `name` (its exports and
/// imports are named in the component's own sections).
fn names_interface(bytes: &[u8], name: &str) -> bool {
    bytes
        .windows(name.len())
        .any(|window| window == name.as_bytes())
}

#[test]
fn a_new_plugin_tests_and_builds_into_a_component_as_generated() {
    let scaffold = fresh_scaffold(NAME, Kind::Aggregate);
    let dir = scaffold.dir.clone();
    generate_files(&scaffold, "tests/given_when_then.rs");
    // The crate is inside this checkout (under its target directory), so it names
    // the SDK by a relative path, and builds with it below.
    let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("tally-sdk = { path = \"../"),
        "{manifest}"
    );
    let readme = fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(
        readme.contains(
            "tally plugin install target/wasm32-wasip2/release/shopping_cart.wasm --activate"
        ),
        "{readme}"
    );

    // Generating again over it is refused and changes nothing.
    let lib = fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    assert!(generate(&scaffold).is_err());
    assert_eq!(fs::read_to_string(dir.join("src/lib.rs")).unwrap(), lib);

    // Its given/when/then tests pass natively, and it builds into an aggregate
    // plugin component.
    let bytes = check_and_build(&dir, "shopping_cart");
    assert!(names_interface(&bytes, "tally:aggregate/aggregate@"));

    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_new_projection_tests_and_builds_into_a_component_as_generated() {
    let kind = Kind::Projection {
        aggregate_type: NAME.to_owned(),
    };
    let scaffold = fresh_scaffold(PROJECTION, kind);
    let dir = scaffold.dir.clone();
    generate_files(&scaffold, "tests/given_then.rs");
    let lib = fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    assert!(
        lib.contains("pub const AGGREGATE_TYPE: &str = \"shopping-cart\";"),
        "{lib}"
    );
    let readme = fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(
        readme.contains(
            "tally plugin install target/wasm32-wasip2/release/shopping_cart_totals.wasm"
        ),
        "{readme}"
    );

    // Its given/then tests pass natively, and it builds into a projection
    // component, not an aggregate plugin.
    let bytes = check_and_build(&dir, "shopping_cart_totals");
    assert!(names_interface(&bytes, "tally:projection/projection@"));
    assert!(!names_interface(&bytes, "tally:aggregate/aggregate@"));

    fs::remove_dir_all(&dir).unwrap();
}
