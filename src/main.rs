use clap::Parser;

/// mimalloc instead of the system allocator: str0m allocates per packet, and glibc's malloc
/// and free were ~5 % of the media loop's CPU. The `system-allocator` feature keeps the system's,
/// for heap profilers that hook malloc.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = vizit::cli::Cli::parse();
    match vizit::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vizit: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
