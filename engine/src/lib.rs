//! zest-engine: DAG spec, compiler, plan, scheduler, worker processes, artifact store,
//! run records, lineage and telemetry. It knows nothing of PDFs or models: operators plug in
//! through [`operator::Operator`] and a [`operator::Registry`].
//!
//! The flow of one run: [`spec::parse`] reads YAML with positions → [`compile::compile`]
//! checks it into a [`plan::Plan`] → [`scheduler::execute`] runs it, each node attempt in a
//! [`worker`] process, committing outputs to the [`store::ArtifactStore`] and journaling
//! every transition in a [`run`] record.
#![warn(missing_docs)]

pub mod checkpoint;
pub mod compile;
pub mod diag;
pub mod digest;
pub mod executor;
pub mod failure;
pub mod graph;
pub mod html_report;
pub mod lineage;
pub mod localfs;
pub mod memo;
pub mod operator;
pub mod params;
pub mod plan;
pub mod pool;
pub mod progress;
pub mod ranks;
pub mod report;
pub mod run;
pub mod s3;
pub mod sandbox;
pub mod scheduler;
pub mod schema;
pub mod schema_check;
pub mod secret;
pub mod spec;
pub mod store;
pub mod telemetry;
pub mod units;
pub mod worker;
pub mod yaml;
