//! What a component imports, read from its bytes before it is compiled: a component
//! that imports an interface the host does not provide is refused at once, not after
//! its compilation (seconds to tens of seconds for a Python or JavaScript plugin that
//! was built for another world, such as one importing `wasi:http`).
//!
//! The host links WASI 0.2 (`wasmtime_wasi::p2::add_to_linker_sync`: the `cli`,
//! `clocks`, `filesystem`, `io`, `random` and `sockets` packages, with every capability
//! denied) and, for projections, `tally:projection`'s `documents`. An import outside
//! these packages can never be satisfied. An import inside them that this build's
//! linker lacks (another version) is still found when the component is
//! pre-instantiated.

use wasmparser::{Parser, Payload};

/// The packages whose interfaces the host's linker provides, as `namespace:package/`.
const PROVIDED_PACKAGES: &[&str] = &[
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
    "tally:projection/",
];

/// The names of the instances and functions the outer component of `bytes` imports
/// (nested components' and modules' imports are the component's own business). An
/// unreadable binary gives the imports read before the damage: compiling it reports
/// the damage itself.
pub(crate) fn component_imports(bytes: &[u8]) -> Vec<String> {
    let mut imports = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else {
            break;
        };
        match payload {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(section) if depth == 0 => {
                imports.extend(
                    section
                        .into_iter()
                        .flatten()
                        .map(|import| import.name.name.to_owned()),
                );
            }
            _ => {}
        }
    }
    imports
}

/// The imports of `bytes` that the host can never provide, in the component's order.
pub(crate) fn unprovided_imports(bytes: &[u8]) -> Vec<String> {
    component_imports(bytes)
        .into_iter()
        .filter(|name| {
            !PROVIDED_PACKAGES
                .iter()
                .any(|package| name.starts_with(package))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component importing `names` (each an empty instance), from the text format.
    fn component_importing(names: &[&str]) -> Vec<u8> {
        let imports: String = names
            .iter()
            .map(|name| format!("(import \"{name}\" (instance))\n"))
            .collect();
        wat::parse_str(format!("(component {imports})")).expect("valid component text")
    }

    #[test]
    fn imports_of_wasi_and_the_projection_contract_are_provided() {
        let bytes = component_importing(&[
            "wasi:cli/stderr@0.2.0",
            "wasi:io/streams@0.2.3",
            "tally:projection/documents@1.0.0",
        ]);
        assert_eq!(component_imports(&bytes).len(), 3);
        assert!(unprovided_imports(&bytes).is_empty());
    }

    #[test]
    fn other_imports_are_named() {
        let bytes = component_importing(&[
            "wasi:cli/stdout@0.2.0",
            "wasi:http/types@0.2.3",
            "acme:billing/ledger",
        ]);
        assert_eq!(
            unprovided_imports(&bytes),
            ["wasi:http/types@0.2.3", "acme:billing/ledger"]
        );
    }

    #[test]
    fn a_nested_components_imports_are_its_own() {
        let bytes = wat::parse_str(
            r#"(component
                 (import "wasi:random/random@0.2.0" (instance))
                 (component (import "wasi:http/types@0.2.3" (instance))))"#,
        )
        .expect("valid component text");
        assert_eq!(component_imports(&bytes), ["wasi:random/random@0.2.0"]);
        assert!(unprovided_imports(&bytes).is_empty());
    }
}
