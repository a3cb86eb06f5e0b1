//! The `tally` binary: see `tally --help`.

/// mimalloc instead of the system allocator: a command allocates many small
/// buffers on one thread and frees them on another (tokio's workers, the plugin
/// threads, the log writer), which glibc's arenas handle poorly.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tally_server::cli::main()
}
