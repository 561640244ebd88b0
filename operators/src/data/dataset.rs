//! Shared dataset plumbing: a deterministic DataFusion session, and writing a record-batch
//! stream to one Parquet file with its metadata.

use anyhow::{Context, Result};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::context::SessionContext;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::{DataFrame, SessionConfig};
use futures::StreamExt;
use std::path::Path;
use zest_engine::operator::InputArtifact;

/// The file name of a dataset's data inside its artifact.
pub const DATA_FILE: &str = "data.parquet";

/// A session with one partition, so that row order, and therefore artifact digests, are the
/// same on every run.
pub fn session() -> SessionContext {
    let cfg = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(8192);
    SessionContext::new_with_config(cfg)
}

/// Writes a DataFrame to `dir/data.parquet` (zstd), returning the metadata to record:
/// `{"columns": [...], "schema": [{"name", "type", "nullable"}], "rows": N}`.
pub async fn write(df: DataFrame, dir: &Path) -> Result<serde_json::Value> {
    let schema: SchemaRef = df.schema().inner().clone();
    let mut stream = df.execute_stream().await?;
    let mut w = writer(dir, schema.clone())?;
    let mut rows = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows();
        w.write(&batch)?;
    }
    w.close()?;
    Ok(meta(&schema, rows))
}

/// The Parquet files of a port's input datasets, as paths DataFusion reads.
pub fn files(arts: &[InputArtifact]) -> Result<Vec<String>> {
    arts.iter()
        .map(|a| Ok(a.path()?.join(DATA_FILE).display().to_string()))
        .collect()
}

/// A Parquet writer for the dataset in `dir` (`dir/data.parquet`).
pub fn writer(dir: &Path, schema: SchemaRef) -> Result<ArrowWriter<std::fs::File>> {
    let path = dir.join(DATA_FILE);
    let file = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    Ok(ArrowWriter::try_new(
        file,
        schema,
        Some(writer_properties()?),
    )?)
}

/// How datasets are written: zstd level 3.
pub fn writer_properties() -> Result<WriterProperties> {
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_created_by("zest".into())
        .build())
}

/// The metadata recorded for a dataset.
pub fn meta(schema: &SchemaRef, rows: usize) -> serde_json::Value {
    let cols: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let fields: Vec<serde_json::Value> = schema
        .fields()
        .iter()
        .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable()}))
        .collect();
    serde_json::json!({"columns": cols, "schema": fields, "rows": rows})
}
