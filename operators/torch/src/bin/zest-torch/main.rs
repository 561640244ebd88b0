//! `zest-torch`: the half of the zest CLI that links libtorch (model generation now, training
//! operators later). `zest` itself stays free of libtorch, which costs about half a second and
//! hundreds of megabytes to load, and hands `zest model generate …` over to this binary.

mod args;
mod generate;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "zest",
    bin_name = "zest",
    about = "zest's libtorch commands (started by `zest model ...`)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Model directories (Hugging Face layout).
    Model {
        #[command(subcommand)]
        action: ModelAction,
    },
}

#[derive(Subcommand, Debug)]
enum ModelAction {
    /// Generate text from a prompt (greedy unless --temperature > 0).
    Generate(args::GenerateArgs),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Model {
            action: ModelAction::Generate(args),
        } => generate::run(&args),
    };
    std::process::exit(code);
}
