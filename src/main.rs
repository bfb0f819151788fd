use clap::Parser;

/// mimalloc instead of the system allocator: str0m allocates per packet, and glibc's malloc
/// and free were ~5 % of the media loop's CPU. The `system-allocator` feature keeps the system's,
/// for heap profilers that hook malloc.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // No transparent huge pages for this process: mimalloc asks for them on its arenas, and a
    // 2 MiB page is resident whole once any byte of it is touched — 18 of the 24 MiB of
    // anonymous memory of an idle server, and a share of every call's (bench/README.md,
    // "Memory"); the CPU they saved was within the benchmark's noise. Best effort.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let cli = vizit::cli::Cli::parse();
    match vizit::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vizit: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
