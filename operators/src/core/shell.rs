//! `shell`: runs a command through `sh -c`. Input artifacts are exposed as paths in
//! environment variables; whatever the command writes to `$ZEST_OUT` becomes the `files`
//! artifact on port `out`.
//!
//! Environment: `ZEST_OUT` (output directory), `ZEST_IN_<PORT>` (input directory; several
//! artifacts on one port are joined with `:`), `ZEST_IN_<PORT>_DIGEST`, `ZEST_TMP`,
//! `ZEST_RUN_ID`, `ZEST_NODE`, `ZEST_ATTEMPT`, `CUDA_VISIBLE_DEVICES`, plus `env:`.

use anyhow::{bail, Context};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use zest_engine::operator::{OpContext, Operator, PortSpec, PortType, Ports};

/// Config of `shell`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellConfig {
    /// The command, run with `sh -c`.
    #[schemars(length(min = 1))]
    pub run: String,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory (default: where zest was started).
    #[serde(default)]
    pub workdir: Option<String>,
}

/// The `shell` operator.
pub struct Shell;

/// The environment variable name for an input port.
pub fn input_var(port: &str) -> String {
    let up: String = port
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("ZEST_IN_{up}")
}

fn tail_of(path: &std::path::Path, start: u64, max_lines: usize) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let from = start.max(len.saturating_sub(8192));
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let _ = f.read_to_string(&mut s);
        }
    }
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
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

    fn run(config: &ShellConfig, ctx: &mut OpContext) -> anyhow::Result<()> {
        let out = ctx.output_dir("out")?.to_path_buf();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&ctx.log_path)?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
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
            let digests: Vec<&str> = arts.iter().map(|a| a.digest.as_str()).collect();
            cmd.env(input_var(port), paths.join(":"));
            cmd.env(format!("{}_DIGEST", input_var(port)), digests.join(":"));
        }
        cmd.envs(&ctx.env).envs(&config.env);
        if let Some(w) = &config.workdir {
            cmd.current_dir(w);
        }
        cmd.stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let status = cmd.status().context("cannot start `sh`")?;
        if !status.success() {
            let tail = tail_of(&ctx.log_path, log_start, 20);
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
