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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tally_bench::run(cli.suite, cli.options)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
