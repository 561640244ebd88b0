//! zest-operators-torch: the libtorch implementations of zest's training operators, run by
//! `zest-torch node worker`. Their configs and ports are declared in
//! [`zest_operators::train`], which `zest` validates and plans without libtorch; this crate
//! installs what runs them ([`install`]).
#![warn(missing_docs)]

pub mod common;
pub mod cpt;
pub mod eval;
pub mod generate;
pub mod init;
pub mod mixer;
pub mod model_dir;
pub mod plots;
pub mod preference;
pub mod replay;
pub mod sft;

use anyhow::Context;
use zest_engine::operator::OpContext;
use zest_operators::train::{self, TorchRunner};

struct Runner;

fn parse<T: serde::de::DeserializeOwned>(config: &serde_json::Value) -> anyhow::Result<T> {
    serde_json::from_value(config.clone()).context("invalid config")
}

impl TorchRunner for Runner {
    fn run(&self, op: &str, config: &serde_json::Value, ctx: &mut OpContext) -> anyhow::Result<()> {
        // `resources.cpu` is the node's share of the machine: torch's intra-op threads.
        zest_kernels_torch::tch::set_num_threads(ctx.threads() as i32);
        match op {
            "model.init" => init::run(&parse(config)?, ctx),
            "train.cpt" => cpt::run(&parse(config)?, ctx),
            "train.sft" => sft::run(&parse(config)?, ctx),
            "train.preference" => preference::run(&parse(config)?, ctx),
            "eval.mcq" => eval::run(&parse(config)?, ctx),
            "generate.reasoning" => {
                zest_operators::generate::reasoning::execute(&parse(config)?, ctx)
            }
            "generate.rejection" => {
                zest_operators::generate::rejection::execute(&parse(config)?, ctx)
            }
            other => anyhow::bail!("zest-torch has no implementation of `{other}`"),
        }
    }
}

/// Installs the libtorch implementations into [`zest_operators::train`] (once per process).
pub fn install() {
    train::install_runner(Box::new(Runner));
    zest_operators::generate::backend::install_local(generate::open);
}
