//! `zest schema`: a JSON Schema (draft 2020-12) of DAG files, for editors
//! (yaml-language-server: `# yaml-language-server: $schema=zest.schema.json`).
//! Each operator's `with:` block is described by its own config schema.

use crate::operator::Registry;
use serde_json::{json, Map, Value};

/// Builds the schema for all operators in `registry`.
pub fn dag_schema(registry: &Registry) -> Value {
    let mut defs = Map::new();
    let mut branches = vec![];
    for op in registry.iter() {
        let mut s = op.config_schema().clone();
        let def_name = format!("op:{}", op.name());
        // Hoist the operator's own $defs so its $refs resolve.
        if let Some(Value::Object(m)) = s.as_object_mut().and_then(|o| o.remove("$defs")) {
            for (k, v) in m {
                defs.insert(k, v);
            }
        }
        if let Some(o) = s.as_object_mut() {
            o.remove("$schema");
            o.insert(
                "description".into(),
                Value::String(op.description().to_string()),
            );
        }
        defs.insert(def_name.clone(), s);
        branches.push(json!({
            "if": {"properties": {"op": {"const": op.name()}}, "required": ["op"]},
            "then": {"properties": {"with": {"$ref": format!("#/$defs/{def_name}")}}}
        }));
    }
    let names: Vec<&str> = registry.names().collect();
    defs.insert("duration".into(), json!({"type": ["string", "integer"], "description": "a duration: 500ms, 30s, 10m, 1h30m (integers are seconds)", "pattern": "^([0-9]+(\\.[0-9]+)?(ms|s|m|h|d))+$|^[0-9]+$"}));
    defs.insert("executor".into(), json!({"type": "string", "pattern": "^[A-Za-z0-9_-]+$", "description": "the executor profile the node runs on: `local`, or one defined by the run's executor config (`--executor-config`); default: `--executor`"}));
    defs.insert("retries".into(), json!({
        "oneOf": [
            {"type": "integer", "minimum": 0},
            {"type": "object", "additionalProperties": false, "properties": {
                "max": {"type": "integer", "minimum": 0, "maximum": 1000, "description": "retries after the first attempt"},
                "backoff": {"$ref": "#/$defs/duration", "description": "base delay, doubled each retry, with jitter"},
                "max_backoff": {"$ref": "#/$defs/duration"}
            }}
        ]
    }));
    defs.insert("resources".into(), json!({
        "type": "object", "additionalProperties": false, "properties": {
            "cpu": {"type": "number", "exclusiveMinimum": 0, "description": "CPU cores (fractions allowed)"},
            "memory": {"type": ["string", "integer"], "description": "memory: 512MiB, 2GiB, or bytes"},
            "gpu": {"type": "integer", "minimum": 0, "description": "whole GPUs"}
        }
    }));
    let mut node = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["op"],
        "properties": {
            "op": {"type": "string", "enum": names, "description": "the operator (`zest ops` lists them)"},
            "in": {"type": "object", "description": "input port → `node.port` (or a list of them)",
                   "additionalProperties": {"oneOf": [{"type": "string", "pattern": "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$"}, {"type": "array", "items": {"type": "string"}}]}},
            "with": {"type": "object", "description": "the operator's config"},
            "after": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}], "description": "nodes that must finish first"},
            "resources": {"$ref": "#/$defs/resources"},
            "retries": {"$ref": "#/$defs/retries"},
            "timeout": {"$ref": "#/$defs/duration"},
            "cache": {"type": "boolean", "description": "reuse outputs of an identical earlier execution (default true)"},
            "executor": {"$ref": "#/$defs/executor"},
            "shards": {"type": "integer", "minimum": 1, "maximum": 1024, "description": "run the node as this many instances over partitions of its input, then merge them into outputs identical to an unsharded run's (operators that support it: `zest ops`)"},
            "description": {"type": "string"}
        }
    });
    node["allOf"] = Value::Array(branches);
    defs.insert("node".into(), node);
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://zest.invalid/schema/dag.json",
        "title": "zest DAG",
        "type": "object",
        "additionalProperties": false,
        "required": ["nodes"],
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "params": {"type": "object", "additionalProperties": {
                "oneOf": [
                    {"type": "object", "additionalProperties": false, "properties": {
                        "type": {"enum": ["int", "float", "string", "bool", "list"]},
                        "default": {},
                        "help": {"type": "string"}
                    }},
                    {"type": ["string", "number", "boolean", "array"]}
                ]
            }},
            "defaults": {"type": "object", "additionalProperties": false, "properties": {
                "resources": {"$ref": "#/$defs/resources"},
                "retries": {"$ref": "#/$defs/retries"},
                "timeout": {"$ref": "#/$defs/duration"},
                "cache": {"type": "boolean"},
                "executor": {"$ref": "#/$defs/executor"}
            }},
            "nodes": {"type": "object", "propertyNames": {"pattern": "^[A-Za-z0-9_-]+$"}, "additionalProperties": {"$ref": "#/$defs/node"}}
        },
        "$defs": defs
    })
}
