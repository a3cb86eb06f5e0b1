//! The `tally` binary: see `tally --help`.

fn main() -> std::process::ExitCode {
    tally_server::cli::main()
}
