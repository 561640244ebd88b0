//! `noop`: does nothing (optionally sleeps). Accepts any inputs, so it can depend on
//! anything; writes an output listing the digests of its inputs (and its `tag`, if any).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use zest_engine::operator::{OpContext, Operator, PortSpec, PortType, Ports};

/// Config of `noop`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoopConfig {
    /// Milliseconds to sleep before finishing.
    #[serde(default)]
    #[schemars(range(max = 86_400_000))]
    pub sleep_ms: u64,
    /// Free text written to the output. Nodes with different tags are different
    /// computations (distinct cache keys and artifacts), which tests and benchmarks use.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    /// A line printed to the node's log.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The `noop` operator.
pub struct Noop;

impl Operator for Noop {
    type Config = NoopConfig;
    const NAME: &'static str = "noop";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str = "Does nothing (optionally sleeps); accepts any input ports; for tests, benchmarks and grouping";

    fn ports(_: Option<&NoopConfig>) -> Ports {
        Ports {
            inputs: vec![],
            outputs: vec![PortSpec::new(
                "out",
                PortType::Files,
                "a small JSON file naming the input digests",
            )],
            other_inputs: Some(PortType::Any),
        }
    }

    fn run(config: &NoopConfig, ctx: &mut OpContext) -> anyhow::Result<()> {
        if !config.message.is_empty() {
            println!("{}", config.message);
        }
        if config.sleep_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(config.sleep_ms));
        }
        let inputs: std::collections::BTreeMap<&str, Vec<&str>> = ctx
            .inputs
            .iter()
            .map(|(p, a)| (p.as_str(), a.iter().map(|x| x.digest.as_str()).collect()))
            .collect();
        let mut doc = serde_json::json!({ "inputs": inputs });
        if !config.tag.is_empty() {
            doc["tag"] = serde_json::Value::String(config.tag.clone());
        }
        let body = serde_json::to_vec(&doc)?;
        ctx.write_output("out", "noop.json", body)?;
        Ok(())
    }
}
