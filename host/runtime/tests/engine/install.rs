//! Bytes that are not a plugin are refused with a typed, clear error.

use tally_runtime::{InstallError, LoadedPlugin};

use crate::engine;

/// Deterministic pseudo-random bytes (xorshift64).
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

fn refuse(bytes: &[u8]) -> InstallError {
    LoadedPlugin::load(engine(), bytes).expect_err("must be refused")
}

#[test]
fn random_bytes_are_not_wasm() {
    for (len, seed) in [(0, 1), (7, 2), (4096, 3), (1 << 20, 4)] {
        let error = refuse(&noise(len, seed));
        assert!(matches!(error, InstallError::NotWasm(_)), "{error:?}");
        assert!(
            error.to_string().starts_with("not a WebAssembly binary"),
            "{error}"
        );
    }
}

#[test]
fn random_bytes_behind_a_component_preamble_are_an_invalid_component() {
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
    bytes.extend(noise(4096, 5));
    let error = refuse(&bytes);
    assert!(
        matches!(error, InstallError::InvalidComponent(_)),
        "{error:?}"
    );
}

#[test]
fn a_core_module_is_not_a_component() {
    let module = wat::parse_str(
        r#"(module (func (export "describe") (result i32) i32.const 0) (memory (export "memory") 1))"#,
    )
    .unwrap();
    let error = refuse(&module);
    assert!(matches!(error, InstallError::NotAComponent), "{error:?}");
    assert!(error.to_string().contains("not a component"), "{error}");
}

#[test]
fn a_component_without_the_plugin_exports_is_the_wrong_world() {
    let empty = wat::parse_str("(component)").unwrap();
    let error = refuse(&empty);
    assert!(matches!(error, InstallError::WrongWorld(_)), "{error:?}");
    assert!(
        error.to_string().contains("tally:aggregate/plugin"),
        "{error}"
    );
}

#[test]
fn a_component_importing_what_the_host_does_not_provide_is_the_wrong_world() {
    let importer = wat::parse_str(
        r#"(component (import "acme:secrets/vault@1.0.0" (instance (export "open" (func)))))"#,
    )
    .unwrap();
    let error = refuse(&importer);
    let InstallError::WrongWorld(detail) = &error else {
        panic!("expected the wrong world, got {error:?}");
    };
    assert!(detail.contains("acme:secrets/vault"), "{detail}");
}

#[test]
fn an_import_the_host_never_provides_is_refused_before_compiling() {
    // The core module inside does not validate: compiling would fail with
    // `InvalidComponent`. The import is found first, from the bytes alone.
    let uncompilable = wat::parse_str(
        r#"(component
             (import "wasi:http/types@0.2.3" (instance))
             (core module (func (result i32))))"#,
    )
    .unwrap();
    let error = refuse(&uncompilable);
    let InstallError::WrongWorld(detail) = &error else {
        panic!("expected the wrong world, got {error:?}");
    };
    assert!(detail.contains("wasi:http/types@0.2.3"), "{detail}");
    assert!(detail.contains("-d http"), "{detail}");
}
