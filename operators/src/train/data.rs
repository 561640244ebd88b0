//! Reading training text from datasets.

use crate::data::docs;
use anyhow::Result;
use futures::StreamExt;
use zest_engine::operator::OpContext;

/// The text column `column` of every dataset on input `port`, in order (nulls and empty
/// strings skipped). `field` names the config field that chose the column, for the error when
/// the dataset lacks it.
pub fn read_texts(ctx: &OpContext, port: &str, field: &str, column: &str) -> Result<Vec<String>> {
    ctx.block_on(async {
        let (schema, mut stream) = docs::open(ctx, port).await?;
        docs::require_columns(&schema, port, &[(field, column)])?;
        let mut out = vec![];
        while let Some(batch) = stream.next().await {
            for t in docs::texts(&batch?, column)? {
                if !t.is_empty() {
                    out.push(t);
                }
            }
        }
        Ok(out)
    })
}

/// Every row of the datasets on input `port` as a JSON object (Arrow's JSON encoding: nested
/// lists and structs as JSON, nulls left out).
pub fn read_rows(ctx: &OpContext, port: &str) -> Result<Vec<serde_json::Value>> {
    ctx.block_on(async {
        let (_, mut stream) = docs::open(ctx, port).await?;
        let mut out = vec![];
        while let Some(batch) = stream.next().await {
            out.extend(batch_rows(&batch?)?);
        }
        Ok(out)
    })
}

/// The rows of one record batch as JSON objects, encoded as [`read_rows`] encodes them.
pub fn batch_rows(
    batch: &datafusion::arrow::record_batch::RecordBatch,
) -> Result<Vec<serde_json::Value>> {
    let mut w = datafusion::arrow::json::ArrayWriter::new(Vec::new());
    w.write(batch)?;
    w.finish()?;
    let buf = w.into_inner();
    Ok(if buf.is_empty() {
        vec![]
    } else {
        serde_json::from_slice(&buf)?
    })
}
