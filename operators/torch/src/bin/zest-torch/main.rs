//! `zest-torch`: the half of the zest CLI that links libtorch. `zest` itself stays free of
//! libtorch, which costs about half a second and hundreds of megabytes to load: it hands
//! `zest model generate …` over to this binary, and the nodes of libtorch operators
//! (`train.cpt`, `model.init`, …) to its node workers.

mod args;
mod generate;
mod serve;

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
    /// Node execution for libtorch operators (started by the scheduler).
    #[command(hide = true)]
    Node {
        #[command(subcommand)]
        action: NodeAction,
    },
}

#[derive(Subcommand, Debug)]
enum NodeAction {
    /// Serve tasks on stdin/stdout (started by the local executor).
    Worker,
    /// Execute one task (a JSON file, `-` for stdin, or `store:KEY`) and print the result.
    Exec {
        /// The task file.
        #[arg(long)]
        task: String,
    },
    /// Run one follower rank of a data-parallel node (started by its rank 0).
    Rank {
        /// The task file rank 0 wrote.
        #[arg(long)]
        task: std::path::PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ModelAction {
    /// Generate text from a prompt (greedy unless --temperature > 0).
    Generate(args::GenerateArgs),
    /// Serve the model over an OpenAI-compatible HTTP API.
    Serve(args::ServeArgs),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Model {
            action: ModelAction::Generate(args),
        } => generate::run(&args),
        Command::Model {
            action: ModelAction::Serve(args),
        } => serve::run(&args),
        Command::Node { action } => node(&action),
    };
    std::process::exit(code);
}

/// The same registry as `zest`'s, with the libtorch implementations installed.
fn node(action: &NodeAction) -> i32 {
    zest_operators_torch::install();
    let registry = zest_operators::registry();
    match action {
        NodeAction::Worker => match zest_engine::worker::serve(&registry) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("zest-torch node worker: {e:#}");
                1
            }
        },
        NodeAction::Exec { task } => match zest_engine::worker::exec_task_arg(&registry, task) {
            Ok(r) => {
                if !task.starts_with(zest_engine::worker::STORE_TASK) {
                    println!("{}", serde_json::to_string(&r).unwrap_or_default());
                }
                i32::from(r.error.is_some())
            }
            Err(e) => {
                eprintln!("zest-torch node exec: {e:#}");
                2
            }
        },
        NodeAction::Rank { task } => match zest_engine::worker::exec_rank(&registry, task) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("{e:#}");
                1
            }
        },
    }
}
