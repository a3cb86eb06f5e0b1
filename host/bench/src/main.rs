//! The `tally-bench` binary: `tally-bench <suite> [--quick] [--json]`.

use std::process::ExitCode;

use clap::Parser;
use tally_bench::{BenchOptions, Suite};

/// The same allocator as the `tally` binary, so that in-process figures are the
/// service's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Measures Tally, each figure beside a reference taken in the same run
/// (docs/BENCHMARKS.md).
#[derive(Debug, Parser)]
#[command(name = "tally-bench", version)]
struct Cli {
    /// The suite.
    #[arg(value_enum)]
    suite: Suite,
    /// Options.
    #[command(flatten)]
    options: BenchOptions,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tally_server::cli::run_to_exit_code(tally_bench::run(cli.suite, cli.options))
}
