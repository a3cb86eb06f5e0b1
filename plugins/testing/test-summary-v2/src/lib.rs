//! account-summary's own source, built as this crate: the same projection at version
//! 2.0.0 (its `VERSION` is the building crate's version). The rebuild (blue/green)
//! tests install it over account-summary 1.0.0 and compare the rebuilt read model with
//! the one it replaces: same tables, same documents.

#[path = "../../../account-summary/src/lib.rs"]
pub mod account_summary;
