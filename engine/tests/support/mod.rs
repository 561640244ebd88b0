//! Small operators for compiler tests: enough config schema and port variety to exercise
//! every check `compile_source` makes, and nothing that runs.
#![allow(dead_code)]

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use zest_engine::operator::{OpContext, Operator, PortSpec, PortType, Ports, Registry};

/// Config of `noop`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoopConfig {
    #[serde(default)]
    pub note: Option<String>,
}

/// Takes any inputs, produces `out`.
pub struct Noop;

impl Operator for Noop {
    type Config = NoopConfig;
    const NAME: &'static str = "noop";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str = "does nothing";
    fn ports(_: Option<&NoopConfig>) -> Ports {
        Ports {
            inputs: vec![],
            outputs: vec![PortSpec::new("out", PortType::Files, "nothing")],
            other_inputs: Some(PortType::Any),
        }
    }
    fn run(_: &NoopConfig, _: &mut OpContext) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Input formats of `load`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Parquet,
    Jsonl,
    Csv,
}

/// Config of `load`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadConfig {
    pub paths: Vec<String>,
    #[serde(default)]
    pub format: Option<Format>,
    #[schemars(range(min = 1, max = 64))]
    #[serde(default)]
    pub workers: Option<u32>,
    #[serde(default)]
    pub columns: Vec<String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// Loads a dataset: output `data`, with the configured columns.
pub struct Load;

impl Operator for Load {
    type Config = LoadConfig;
    const NAME: &'static str = "data.load";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str = "loads a dataset";
    fn ports(c: Option<&LoadConfig>) -> Ports {
        let cols: Vec<&str> = c
            .map(|c| c.columns.iter().map(String::as_str).collect())
            .unwrap_or_default();
        Ports {
            inputs: vec![],
            outputs: vec![PortSpec::new("data", PortType::Dataset, "rows").with_columns(&cols)],
            other_inputs: None,
        }
    }
    fn check(c: &LoadConfig) -> Result<(), String> {
        if c.paths.is_empty() {
            return Err("`paths` must not be empty".into());
        }
        Ok(())
    }
    fn run(_: &LoadConfig, _: &mut OpContext) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Config of `shell`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellConfig {
    #[schemars(length(min = 1))]
    pub run: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub workdir: Option<String>,
}

/// Runs a command (not here); any inputs, output `out`.
pub struct Shell;

impl Operator for Shell {
    type Config = ShellConfig;
    const NAME: &'static str = "shell";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str = "runs a command";
    fn ports(_: Option<&ShellConfig>) -> Ports {
        Ports {
            inputs: vec![],
            outputs: vec![PortSpec::new(
                "out",
                PortType::Files,
                "what the command wrote",
            )],
            other_inputs: Some(PortType::Any),
        }
    }
    fn run(_: &ShellConfig, _: &mut OpContext) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Optimisers of `train`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    Adam,
    Sgd,
}

/// A learning-rate schedule: a constant or a mapping.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Schedule {
    Constant(f64),
    Warmup { warmup_steps: u32, peak: f64 },
}

/// Config of `train`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    #[schemars(range(min = 1, max = 1000))]
    pub epochs: u32,
    #[serde(default)]
    pub optimizer: Option<Optimizer>,
    #[serde(default)]
    pub lr: Option<Schedule>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Free-form settings passed through.
    #[serde(default)]
    pub extra: Option<serde_json::Value>,
}

/// Trains a model from a dataset with a `text` column, and optionally a tokenizer.
pub struct Train;

impl Operator for Train {
    type Config = TrainConfig;
    const NAME: &'static str = "model.train";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str = "trains a model";
    fn ports(_: Option<&TrainConfig>) -> Ports {
        Ports {
            inputs: vec![
                PortSpec::new("data", PortType::Dataset, "rows").with_columns(&["text"]),
                PortSpec::new("tokenizer", PortType::Tokenizer, "tokenizer").optional(),
            ],
            outputs: vec![PortSpec::new("model", PortType::Model, "the model")],
            other_inputs: None,
        }
    }
    fn run(_: &TrainConfig, _: &mut OpContext) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Config of `eval.report`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    #[serde(default)]
    pub title: Option<String>,
}

/// Compares several models.
pub struct Report;

impl Operator for Report {
    type Config = ReportConfig;
    const NAME: &'static str = "eval.report";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str = "compares models";
    fn ports(_: Option<&ReportConfig>) -> Ports {
        Ports {
            inputs: vec![PortSpec::new("models", PortType::Model, "models").many()],
            outputs: vec![PortSpec::new("report", PortType::Report, "the comparison")],
            other_inputs: None,
        }
    }
    fn run(_: &ReportConfig, _: &mut OpContext) -> anyhow::Result<()> {
        Ok(())
    }
}

/// A registry with every test operator.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.register::<Noop>()
        .register::<Load>()
        .register::<Shell>()
        .register::<Train>()
        .register::<Report>();
    r
}
