//! The training operators: `model.load`, `model.init`, `train.tokenizer`, `train.cpt`, `train.sft`,
//! `train.preference`.
//!
//! Their configs and ports are declared here, where `zest` (which never links libtorch) can
//! validate, plan and document them. Operators that need libtorch say
//! [`WorkerKind::Torch`](zest_engine::operator::WorkerKind::Torch): the scheduler hands their
//! nodes to `zest-torch node worker`, which installs the libtorch implementations with
//! [`install_runner`] and runs them through the same registry, so both binaries agree on
//! names, versions, ports, config schemas and code fingerprints (cache keys).

pub mod common;
pub mod cpt;
pub mod data;
pub mod init;
pub mod load;
pub mod preference;
pub mod sft;
pub mod tokenizer;

use std::sync::OnceLock;
use zest_engine::operator::OpContext;

/// What runs the libtorch operators: installed by the `zest-torch` binary.
pub trait TorchRunner: Send + Sync {
    /// Runs operator `op` with its parsed, canonical `config`.
    fn run(&self, op: &str, config: &serde_json::Value, ctx: &mut OpContext) -> anyhow::Result<()>;
}

static RUNNER: OnceLock<Box<dyn TorchRunner>> = OnceLock::new();

/// Installs the libtorch implementations (once per process; later calls are ignored).
pub fn install_runner(runner: Box<dyn TorchRunner>) {
    let _ = RUNNER.set(runner);
}

/// Runs a libtorch operator through the installed runner.
pub(crate) fn run_in_torch<C: serde::Serialize>(
    op: &str,
    config: &C,
    ctx: &mut OpContext,
) -> anyhow::Result<()> {
    let Some(runner) = RUNNER.get() else {
        anyhow::bail!(
            "`{op}` needs libtorch and runs in `zest-torch node worker`; this process cannot run it"
        );
    };
    runner.run(op, &serde_json::to_value(config)?, ctx)
}

/// Shared by the unit tests of this family.
#[cfg(test)]
pub(crate) mod testing {
    use zest_kernels::text_tokenizer::{SpecialRoles, TextTokenizer};

    /// A small BPE tokenizer in zest's chat format, trained on `corpus`.
    pub fn tokenizer(corpus: &[&str]) -> TextTokenizer {
        let f = super::tokenizer::ChatFormat::Zest.tokens();
        TextTokenizer::train_bpe(
            corpus.iter().cycle().take(50).copied(),
            300,
            f.specials,
            &SpecialRoles {
                eos: Some(f.eos.into()),
                pad: Some(f.pad.into()),
                chat_template: Some(f.template.into()),
                ..Default::default()
            },
        )
        .unwrap()
    }
}
