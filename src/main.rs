//! The `zest` command line.

mod cli;
mod commands;
mod machine;
mod output;
mod torch_exec;

use clap::Parser;

/// mimalloc: the scheduler and workers allocate many small, short-lived objects per node.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = cli::Cli::parse();
    let registry = zest_operators::registry();
    // Workers run operators on their own runtime; everything else runs on one here.
    if let cli::Command::Node { action } = &cli.command {
        std::process::exit(commands::node(action, &registry));
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zest: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(commands::dispatch(cli, registry));
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    std::process::exit(code);
}
