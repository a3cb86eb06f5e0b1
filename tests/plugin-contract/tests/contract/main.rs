//! The plugin contract across the WebAssembly boundary, one module per area. One
//! test binary, so that each component is compiled once per run.

mod bank_account_v1;
mod bank_account_v2;
mod decide;
mod describe;
mod panics;
