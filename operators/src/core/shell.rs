//! `shell`: runs a command through `sh -c`. Input artifacts are exposed as paths in
//! environment variables; whatever the command writes to `$ZEST_OUT` becomes the `files`
//! artifact on port `out`.
//!
//! Environment: `ZEST_OUT` (output directory), `ZEST_IN_<PORT>` (input directory; several
//! artifacts on one port are joined with `:`), `ZEST_IN_<PORT>_DIGEST`, `ZEST_TMP`,
//! `ZEST_RUN_ID`, `ZEST_NODE`, `ZEST_ATTEMPT`, `CUDA_VISIBLE_DEVICES`, plus `env:`.
//!
//! Parameters in `run` are quoted for `sh` where they stand (`x-zest-template: shell`), so a
//! value is always data, never code; secrets become quoted expansions of their variables.
//! Input artifacts are read-only to the command (bind mounts in its own mount namespace
//! where it may have one, file permissions otherwise). Files the command reads from outside
//! the store are declared in `reads`, so that their content is part of the cache key.

use anyhow::{bail, Context};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use zest_engine::operator::{OpContext, Operator, PortSpec, PortType, Ports};

/// Config of `shell`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellConfig {
    /// The command, run with `sh -c`. `${params.x}` in it is quoted for the shell.
    #[schemars(length(min = 1), extend("x-zest-template" = "shell"))]
    pub run: String,
    /// Files or globs (local or `s3://`) the command reads from outside the store: their
    /// content is part of the cache key, so the node runs again when they change.
    #[serde(default)]
    pub reads: Vec<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory (default: where zest was started).
    #[serde(default)]
    pub workdir: Option<String>,
}

/// The `shell` operator.
pub struct Shell;

/// The environment variable name for an input port (the compiler refuses ports that share
/// one).
pub fn input_var(port: &str) -> String {
    zest_engine::compile::input_env_var(port)
}

impl Operator for Shell {
    type Config = ShellConfig;
    const NAME: &'static str = "shell";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Runs a shell command; inputs as paths in $ZEST_IN_<PORT>, output written to $ZEST_OUT";

    fn ports(_: Option<&ShellConfig>) -> Ports {
        Ports {
            inputs: vec![],
            outputs: vec![PortSpec::new(
                "out",
                PortType::Files,
                "the files the command wrote to $ZEST_OUT",
            )],
            other_inputs: Some(PortType::Any),
        }
    }

    fn check(c: &ShellConfig) -> Result<(), String> {
        if c.run.trim().is_empty() {
            return Err("`run` is empty".into());
        }
        Ok(())
    }

    const READS_FILES: bool = true;

    fn external_files(
        c: &ShellConfig,
        rt: &tokio::runtime::Handle,
    ) -> anyhow::Result<Vec<zest_engine::operator::ExternalFile>> {
        if c.reads.is_empty() {
            return Ok(vec![]);
        }
        rt.block_on(crate::data::sources::fingerprint(&c.reads))
    }

    fn run(config: &ShellConfig, ctx: &mut OpContext) -> anyhow::Result<()> {
        use std::os::unix::process::CommandExt;
        let out = ctx.output_dir("out")?.to_path_buf();
        let mut read_only = vec![];
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c").arg(&config.run);
        cmd.env("ZEST_OUT", &out)
            .env("ZEST_TMP", ctx.tmp_dir()?)
            .env("ZEST_RUN_ID", &ctx.run_id)
            .env("ZEST_NODE", &ctx.node)
            .env("ZEST_ATTEMPT", ctx.attempt.to_string());
        for (port, arts) in &ctx.inputs {
            let paths = arts
                .iter()
                .map(|a| Ok(a.path()?.display().to_string()))
                .collect::<anyhow::Result<Vec<String>>>()?;
            for a in arts {
                read_only.push(a.path()?.to_path_buf());
            }
            let digests: Vec<&str> = arts.iter().map(|a| a.digest.as_str()).collect();
            cmd.env(input_var(port), paths.join(":"));
            cmd.env(format!("{}_DIGEST", input_var(port)), digests.join(":"));
        }
        cmd.envs(&ctx.env).envs(&config.env);
        if let Some(w) = &config.workdir {
            cmd.current_dir(w);
        }
        // Output goes where the worker's goes: the node's log, capped and with secrets
        // redacted.
        cmd.stdin(std::process::Stdio::null());
        let view = zest_engine::sandbox::ReadOnlyView::new(&read_only);
        // SAFETY: `apply` makes only async-signal-safe system calls.
        unsafe {
            cmd.pre_exec(move || view.apply());
        }
        let status = cmd.status().context("cannot start `sh`")?;
        if !status.success() {
            let tail = ctx.output_tail(20);
            let how = match status.code() {
                Some(c) => format!("exited with code {c}"),
                None => {
                    use std::os::unix::process::ExitStatusExt;
                    format!("was killed by signal {}", status.signal().unwrap_or(0))
                }
            };
            if tail.trim().is_empty() {
                bail!("command {how}");
            }
            bail!("command {how}; last output:\n{tail}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn input_var_names() {
        assert_eq!(super::input_var("docs"), "ZEST_IN_DOCS");
        assert_eq!(super::input_var("raw-text"), "ZEST_IN_RAW_TEXT");
    }
}
