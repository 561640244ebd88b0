//! Shared dataset plumbing: a deterministic DataFusion session, and writing a record-batch
//! stream to one Parquet file with its metadata.
//!
//! A dataset's bytes depend only on its rows: [`DatasetWriter`] hands the Parquet writer
//! batches of [`WRITE_BATCH_ROWS`] rows whatever batches it is given (the Parquet writer's
//! pages follow its input batches), so the merge of a sharded node writes the same file as an
//! unsharded run.

use anyhow::{Context, Result};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
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
    while let Some(batch) = stream.next().await {
        w.write(&batch?)?;
    }
    let rows = w.close()?;
    Ok(meta(&schema, rows))
}

/// The Parquet files of a port's input datasets, as paths DataFusion reads.
pub fn files(arts: &[InputArtifact]) -> Result<Vec<String>> {
    arts.iter()
        .map(|a| Ok(a.path()?.join(DATA_FILE).display().to_string()))
        .collect()
}

/// A writer for the dataset in `dir` (`dir/data.parquet`).
pub fn writer(dir: &Path, schema: SchemaRef) -> Result<DatasetWriter> {
    let path = dir.join(DATA_FILE);
    let file = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    Ok(DatasetWriter {
        inner: ArrowWriter::try_new(file, schema.clone(), Some(writer_properties()?))?,
        schema,
        pending: Vec::new(),
        pending_rows: 0,
        rows: 0,
    })
}

/// Rows per batch handed to the Parquet writer (see [`DatasetWriter`]).
pub const WRITE_BATCH_ROWS: usize = 8192;

/// Writes one dataset's Parquet file in batches of exactly [`WRITE_BATCH_ROWS`] rows (the
/// last one shorter), whatever the batches it is given, so that equal rows make equal bytes.
pub struct DatasetWriter {
    inner: ArrowWriter<std::fs::File>,
    schema: SchemaRef,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    rows: usize,
}

impl DatasetWriter {
    /// Adds the rows of `batch`, which must have the writer's schema.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows();
        self.pending_rows += batch.num_rows();
        self.pending.push(batch.clone());
        while self.pending_rows >= WRITE_BATCH_ROWS {
            self.flush(WRITE_BATCH_ROWS)?;
        }
        Ok(())
    }

    /// Writes the first `n` pending rows as one batch.
    fn flush(&mut self, n: usize) -> Result<()> {
        let all = if self.pending.len() == 1 {
            self.pending.pop().expect("one pending batch")
        } else {
            let b = concat_batches(&self.schema, &self.pending)?;
            self.pending.clear();
            b
        };
        self.inner.write(&all.slice(0, n))?;
        if all.num_rows() > n {
            self.pending.push(all.slice(n, all.num_rows() - n));
        }
        self.pending_rows -= n;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Writes what is pending and closes the file; returns the rows written.
    pub fn close(mut self) -> Result<usize> {
        if self.pending_rows > 0 {
            self.flush(self.pending_rows)?;
        }
        self.inner.close()?;
        Ok(self.rows)
    }
}

/// The rows of the Parquet files `files`, from their footers.
pub fn row_count(files: &[String]) -> Result<usize> {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let mut rows = 0usize;
    for f in files {
        let file = std::fs::File::open(f).with_context(|| format!("cannot open {f}"))?;
        let reader = SerializedFileReader::new(file)
            .with_context(|| format!("{f} is not a readable Parquet file"))?;
        rows += usize::try_from(reader.metadata().file_metadata().num_rows())
            .with_context(|| format!("{f}: a negative row count"))?;
    }
    Ok(rows)
}

/// Writes the rows of the Parquet files `files`, in order, as the dataset in `dir`; they
/// must have one schema. Returns the dataset's metadata ([`meta`]).
pub fn concat(files: &[std::path::PathBuf], dir: &Path) -> Result<serde_json::Value> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut out: Option<DatasetWriter> = None;
    for f in files {
        let file =
            std::fs::File::open(f).with_context(|| format!("cannot open {}", f.display()))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .with_context(|| format!("{} is not a readable Parquet file", f.display()))?;
        let schema = builder.schema().clone();
        let w = match out.as_mut() {
            Some(w) => {
                if w.schema != schema {
                    anyhow::bail!(
                        "{} has another schema than the parts before it ({schema:?} vs {:?})",
                        f.display(),
                        w.schema
                    );
                }
                w
            }
            None => out.insert(writer(dir, schema)?),
        };
        for batch in builder.with_batch_size(WRITE_BATCH_ROWS).build()? {
            w.write(&batch?)?;
        }
    }
    let w = out.context("no parts to concatenate")?;
    let schema = w.schema.clone();
    let rows = w.close()?;
    Ok(meta(&schema, rows))
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

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(schema: &SchemaRef, lo: usize, hi: usize) -> RecordBatch {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values((lo..hi).map(|i| i as i64)));
        let texts: ArrayRef =
            Arc::new(StringArray::from_iter((lo..hi).map(|i| {
                (i % 7 != 0).then(|| format!("document {i} {}", "x".repeat(i % 50)))
            })));
        RecordBatch::try_new(schema.clone(), vec![ids, texts]).unwrap()
    }

    #[test]
    fn equal_rows_make_equal_bytes_whatever_the_batches() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("text", DataType::Utf8, true),
        ]));
        let n = 3 * WRITE_BATCH_ROWS + 123;
        let write = |cuts: &[usize]| -> Vec<u8> {
            let dir = tempfile::tempdir().unwrap();
            let mut w = writer(dir.path(), schema.clone()).unwrap();
            for c in cuts.windows(2) {
                w.write(&batch(&schema, c[0], c[1])).unwrap();
            }
            assert_eq!(w.close().unwrap(), n);
            std::fs::read(dir.path().join(DATA_FILE)).unwrap()
        };
        let one = write(&[0, n]);
        assert_eq!(write(&[0, 1, 2, 5000, 5000, 20000, n]), one);
        assert_eq!(
            write(&[0, WRITE_BATCH_ROWS, 2 * WRITE_BATCH_ROWS + 1, n]),
            one
        );
        let odd: Vec<usize> = (0..n).step_by(997).chain([n]).collect();
        assert_eq!(write(&odd), one);
    }
}
