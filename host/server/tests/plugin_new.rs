//! `tally plugin new` end to end: the generated plugin builds and its tests pass
//! as generated, natively and as a wasm32-wasip2 component.
//!
//! Needs the `wasm32-wasip2` target (`rustup target add wasm32-wasip2`). The inner
//! cargo runs share `CARGO_TARGET_TMPDIR/plugin-new-target`, so repeated runs only
//! rebuild the plugin itself.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use tally_server::scaffold::{Scaffold, SdkSource, generate};

/// The plugin name: two words, so that crate name and `.wasm` stem differ from it.
const NAME: &str = "shopping-cart";

/// The guest SDK of this checkout.
fn sdk_path() -> PathBuf {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest-sdk");
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

#[test]
fn a_new_plugin_tests_and_builds_into_a_component_as_generated() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.join("plugin-new").join(NAME);
    let target_dir = tmp.join("plugin-new-target");
    // A fixed path (not a fresh temp dir) keeps the inner builds incremental.
    if dir.exists() {
        fs::remove_dir_all(&dir).unwrap();
    }

    let scaffold = Scaffold {
        name: NAME.to_owned(),
        dir: dir.clone(),
        sdk: SdkSource::Path(sdk_path()),
    };
    let files = generate(&scaffold).expect("the plugin is generated");
    for expected in [
        "Cargo.toml",
        ".gitignore",
        "README.md",
        "src/lib.rs",
        "tests/given_when_then.rs",
    ] {
        assert!(
            files.contains(&dir.join(expected)),
            "{expected} missing from {files:?}"
        );
        assert!(dir.join(expected).is_file(), "{expected} not written");
    }
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

    // Its given/when/then tests pass natively.
    cargo(&dir, &target_dir, &["test"]);

    // It builds into a component.
    let wasm = target_dir.join("wasm32-wasip2/release/shopping_cart.wasm");
    let _ = fs::remove_file(&wasm);
    cargo(
        &dir,
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

    fs::remove_dir_all(&dir).unwrap();
}
