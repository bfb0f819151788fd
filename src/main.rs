use clap::Parser;

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
