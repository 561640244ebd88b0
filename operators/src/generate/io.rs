//! What the generating operators read and write: multiple-choice questions from a dataset
//! port (any layout `eval.mcq` reads) and rows written as a Parquet dataset.

use crate::data::dataset;
use crate::eval::items::{self, Item, Layout};
use crate::train::data::read_rows;
use anyhow::{bail, Result};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use zest_engine::operator::OpContext;

/// The questions on dataset port `port`, the first `limit` of them.
pub fn load_items(
    ctx: &OpContext,
    port: &str,
    layout: Layout,
    exam: &str,
    limit: Option<usize>,
) -> Result<Vec<Item>> {
    let rows = read_rows(ctx, port)?;
    let base = items::medmcqa_cop_base(&rows);
    let mut out = vec![];
    let mut seen = HashSet::new();
    for (i, row) in rows.iter().enumerate() {
        if limit.is_some_and(|l| i >= l) {
            break;
        }
        let item = items::read(row, layout, exam, i, base)
            .map_err(|e| anyhow::anyhow!("input `{port}`, record {i}: {e}"))?;
        if !seen.insert((item.exam.clone(), item.id.clone())) {
            bail!(
                "input `{port}`, record {i}: id `{}` appears twice in exam `{}`",
                item.id,
                item.exam
            );
        }
        out.push(item);
    }
    if out.is_empty() {
        bail!("input `{port}` holds no questions");
    }
    Ok(out)
}

/// A nullable text column.
pub fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

/// A list-of-text column.
pub fn texts(name: &str) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        true,
    )
}

/// A column of chat messages (`[{role, content}]`), as TRL's datasets have them.
pub fn messages(name: &str) -> Field {
    let msg = DataType::Struct(Fields::from(vec![
        Field::new("role", DataType::Utf8, true),
        Field::new("content", DataType::Utf8, true),
    ]));
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("item", msg, true))),
        true,
    )
}

/// A column of type `ty`.
pub fn column(name: &str, ty: DataType) -> Field {
    Field::new(name, ty, true)
}

/// A schema of `fields`.
pub fn schema(fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
}

/// Writes `rows` (JSON objects with `schema`'s columns) as output dataset `port`.
pub fn write_rows(
    ctx: &mut OpContext,
    port: &str,
    schema: SchemaRef,
    rows: &[Value],
) -> Result<()> {
    let dir = ctx.output_dir(port)?.to_path_buf();
    let mut w = dataset::writer(&dir, schema.clone())?;
    let mut decoder = datafusion::arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(1024)
        .build_decoder()?;
    for chunk in rows.chunks(1024) {
        decoder.serialize(chunk)?;
        if let Some(batch) = decoder.flush()? {
            w.write(&batch)?;
        }
    }
    w.close()?;
    ctx.set_output_meta(port, dataset::meta(&schema, rows.len()));
    Ok(())
}
