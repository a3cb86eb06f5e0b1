//! Components of the right world whose `describe` misbehaves, forged from
//! hand-written core modules with wit-component against the frozen 1.0.0 contract
//! (`wit/v1.0.0`): installation refuses them.

use tally_runtime::{CallError, InstallError, LoadedPlugin};

use crate::engine;

/// The interface's export prefix in a core module (canonical ABI name mangling).
const IFACE: &str = "tally:aggregate/aggregate@1.0.0";

/// A core module exporting every function of the interface; `describe` runs
/// `describe_body` and every other function traps. `data` lays out memory.
fn forge(describe_body: &str, data: &str) -> Vec<u8> {
    forge_with_handle(describe_body, "unreachable", data)
}

/// [`forge`], with `handle` running `handle_body`.
fn forge_with_handle(describe_body: &str, handle_body: &str, data: &str) -> Vec<u8> {
    let wit = include_str!("../../../../wit/v1.0.0/aggregate.wit");
    forge_world(wit, IFACE, "", describe_body, handle_body, data)
}

/// A component of the `plugin` world of `wit`, whose interface is exported as
/// `iface`: the 1.0.0 functions as in [`forge_with_handle`], plus `extra` exports.
fn forge_world(
    wit: &str,
    iface: &str,
    extra: &str,
    describe_body: &str,
    handle_body: &str,
    data: &str,
) -> Vec<u8> {
    let module = format!(
        r#"(module
            (memory (export "memory") 1)
            {data}
            (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) i32.const 4096)
            (func (export "{iface}#describe") (result i32) {describe_body})
            (func (export "{iface}#initial-state") (result i32) unreachable)
            (func (export "{iface}#handle")
                (param i32 i32 i64 i64 i32 i32 i32 i32 i32 i32) (result i32) {handle_body})
            (func (export "{iface}#apply") (param i32 i32 i32 i32) (result i32) unreachable)
            (func (export "{iface}#upcast") (param i32 i32 i32 i32 i32) (result i32) unreachable)
            (func (export "{iface}#state-json") (param i32 i32) (result i32) unreachable)
            {extra}
        )"#
    );
    let mut module = wat::parse_str(&module).expect("core module");
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve.push_str("aggregate.wit", wit).expect("wit");
    let world = resolve
        .select_world(&[package], Some("plugin"))
        .expect("world");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("embed");
    wit_component::ComponentEncoder::default()
        .module(&module)
        .expect("module")
        .validate(true)
        .encode()
        .expect("component")
}

/// A pointer and a length as WAT data-string escapes (little-endian `i32`s).
fn pair(ptr: u32, len: usize) -> String {
    let mut text = String::new();
    for byte in ptr
        .to_le_bytes()
        .into_iter()
        .chain((len as u32).to_le_bytes())
    {
        text.push_str(&format!("\\{byte:02x}"));
    }
    text
}

/// A `plugin-info` record at address 16 (five string/list pointer-length
/// pairs), with the aggregate type and version strings at 64 and 96, a
/// one-byte description at 128, and no commands or events.
fn info_data(aggregate_type: &str, version: &str) -> String {
    format!(
        r#"(data (i32.const 16) "{}{}{}{}{}")
           (data (i32.const 64) "{aggregate_type}")
           (data (i32.const 96) "{version}")
           (data (i32.const 128) "x")"#,
        pair(64, aggregate_type.len()),
        pair(96, version.len()),
        pair(128, 1),
        pair(0, 0),
        pair(0, 0),
    )
}

#[test]
fn a_forged_component_with_good_info_loads() {
    let good = forge("i32.const 16", &info_data("forged", "0.1.0"));
    let plugin = LoadedPlugin::load(engine(), &good).unwrap();
    assert_eq!(plugin.info().aggregate_type, "forged");
    assert_eq!(plugin.info().version.to_string(), "0.1.0");
    // Its other functions trap: a call fails, typed.
    let error = plugin.instance().initial_state().unwrap_err();
    assert!(matches!(error, CallError::Trap { .. }), "{error:?}");
}

#[test]
fn a_trapping_describe_is_refused() {
    let trapping = forge("unreachable", "");
    let error = LoadedPlugin::load(engine(), &trapping).unwrap_err();
    let InstallError::Describe(CallError::Trap { message }) = &error else {
        panic!("expected describe to trap, got {error:?}");
    };
    assert!(message.contains("unreachable"), "{message}");
    assert!(
        error.to_string().starts_with("describe failed: "),
        "{error}"
    );
}

#[test]
fn a_describe_that_loops_is_refused_with_a_timeout() {
    let looping = forge("(loop $spin (br $spin)) unreachable", "");
    let error = LoadedPlugin::load(engine(), &looping).unwrap_err();
    assert!(
        matches!(error, InstallError::Describe(CallError::Timeout { .. })),
        "{error:?}"
    );
}

#[test]
fn an_empty_aggregate_type_is_invalid_info() {
    let empty_type = forge("i32.const 16", &info_data("", "1.0.0"));
    let error = LoadedPlugin::load(engine(), &empty_type).unwrap_err();
    let InstallError::InvalidInfo(detail) = &error else {
        panic!("expected invalid info, got {error:?}");
    };
    assert!(detail.contains("aggregate type \"\""), "{detail}");
}

#[test]
fn a_version_that_is_not_semver_is_invalid_info() {
    let not_semver = forge("i32.const 16", &info_data("forged", "v1"));
    let error = LoadedPlugin::load(engine(), &not_semver).unwrap_err();
    let InstallError::InvalidInfo(detail) = &error else {
        panic!("expected invalid info, got {error:?}");
    };
    assert!(detail.contains("\"v1\" is not semver"), "{detail}");
}

#[test]
fn events_the_plugin_does_not_describe_are_invalid_answers() {
    // handle returns `ok([{name: "ghost", version: 1, data: "{}"}])` from 256:
    // discriminant 0, then the list (pointer 512, length 1); the event record
    // at 512 is name (600, 5), version 1, data (620, 2).
    let data = format!(
        r#"{}
           (data (i32.const 256) "\00\00\00\00{}")
           (data (i32.const 512) "{}\01\00\00\00{}")
           (data (i32.const 600) "ghost")
           (data (i32.const 620) "{{}}")"#,
        info_data("forged", "1.0.0"),
        pair(512, 1),
        pair(600, 5),
        pair(620, 2),
    );
    let ghostly = forge_with_handle("i32.const 16", "i32.const 256", &data);
    let plugin = LoadedPlugin::load(engine(), &ghostly).unwrap();
    let mut instance = plugin.instance();
    let command = crate::command("Anything", "{}");
    let error = instance
        .handle(&crate::context("f", 0), b"state", &command)
        .unwrap_err();
    let CallError::Invalid(detail) = &error else {
        panic!("expected an invalid answer, got {error:?}");
    };
    assert!(
        detail.contains("\"ghost\", which the plugin does not describe"),
        "{detail}"
    );
    // The instance itself is fine: it is kept (describe was its first call).
    assert_eq!(instance.calls_on_current_instance(), 2);
}

#[test]
fn a_rejection_code_that_is_not_kebab_case_is_an_invalid_answer() {
    // handle returns `err({code: "Bad Code", message: "m"})` from 256.
    let data = format!(
        r#"{}
           (data (i32.const 256) "\01\00\00\00{}{}")
           (data (i32.const 600) "Bad Code")
           (data (i32.const 620) "m")"#,
        info_data("forged", "1.0.0"),
        pair(600, 8),
        pair(620, 1),
    );
    let rude = forge_with_handle("i32.const 16", "i32.const 256", &data);
    let plugin = LoadedPlugin::load(engine(), &rude).unwrap();
    let command = crate::command("Anything", "{}");
    let error = plugin
        .instance()
        .handle(&crate::context("f", 0), b"", &command)
        .unwrap_err();
    assert!(
        matches!(&error, CallError::Invalid(detail) if detail.contains("\"Bad Code\"")),
        "{error:?}"
    );
}

#[test]
fn a_decide_of_another_type_is_a_component_of_another_world() {
    // A 1.1.0 interface whose `decide` takes nothing and returns a number.
    let wit = include_str!("../../../../wit/v1.0.0/aggregate.wit")
        .replace(
            "package tally:aggregate@1.0.0;",
            "package tally:aggregate@1.1.0;",
        )
        .replace(
            "    /// Describes the plugin.",
            "    decide: func() -> u32;\n\n    /// Describes the plugin.",
        );
    let iface = "tally:aggregate/aggregate@1.1.0";
    let mistyped = forge_world(
        &wit,
        iface,
        &format!(r#"(func (export "{iface}#decide") (result i32) i32.const 0)"#),
        "i32.const 16",
        "unreachable",
        &info_data("forged", "0.1.0"),
    );
    let error = LoadedPlugin::load(engine(), &mistyped).unwrap_err();
    let InstallError::WrongWorld(message) = &error else {
        panic!("expected a component of another world, got {error:?}");
    };
    assert!(
        message.contains("`decide` does not have the type"),
        "{message}"
    );
}
