//! Document datasets as the cleaning operators see them: a stream of record batches in, kept
//! rows (with the operator's annotations as new columns) to `docs`, dropped rows (with every
//! reason) to `rejected`.
//!
//! Every cleaning and augmentation operator uses the same conventions, so that DAGs compose:
//! the text is in `text` and the id in `doc_id` unless configured otherwise, every input
//! column is passed through, and a dropped row carries a `reasons` column (a list of strings).

use crate::data::dataset;
use anyhow::{bail, Context, Result};
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, ListBuilder, StringArray, StringBuilder,
};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::ParquetReadOptions;
use std::path::Path;
use std::sync::Arc;
use zest_engine::operator::OpContext;

/// The name of the column that lists why a row was dropped.
pub const REASONS: &str = "reasons";

/// Opens the datasets on input port `port` as one stream of record batches, with its schema.
pub async fn open(ctx: &OpContext, port: &str) -> Result<(SchemaRef, SendableRecordBatchStream)> {
    let files = dataset::files(ctx.inputs(port))?;
    if files.is_empty() {
        bail!("input `{port}` has no dataset");
    }
    let df = dataset::session()
        .read_parquet(files, ParquetReadOptions::default())
        .await?;
    let schema: SchemaRef = df.schema().inner().clone();
    Ok((schema, df.execute_stream().await?))
}

/// The column `name` of `batch`, or an error naming the columns that exist.
pub fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    match batch.schema().index_of(name) {
        Ok(i) => Ok(batch.column(i)),
        Err(_) => bail!(
            "input has no column `{name}` (columns: {})",
            batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A column read as text (any type Arrow can cast to Utf8).
pub fn strings(col: &ArrayRef, name: &str) -> Result<StringArray> {
    let c = cast(col, &DataType::Utf8)
        .with_context(|| format!("column `{name}` cannot be read as text"))?;
    Ok(c.as_any()
        .downcast_ref::<StringArray>()
        .expect("cast to Utf8 gives a StringArray")
        .clone())
}

/// The text column `name` of `batch`, nulls read as "".
pub fn texts(batch: &RecordBatch, name: &str) -> Result<Vec<String>> {
    let a = strings(column(batch, name)?, name)?;
    Ok((0..a.len())
        .map(|i| {
            if a.is_null(i) {
                String::new()
            } else {
                a.value(i).to_string()
            }
        })
        .collect())
}

/// The `reasons` field: a list of strings.
pub fn reasons_field() -> Field {
    Field::new(
        REASONS,
        DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, false))),
        false,
    )
}

/// A `reasons` column from one list of reasons per row.
pub fn reasons_array(reasons: &[Vec<String>]) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new())
        .with_field(Arc::new(Field::new_list_field(DataType::Utf8, false)));
    for r in reasons {
        for s in r {
            b.values().append_value(s);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

/// Writes the rows an operator keeps to `docs` and those it drops to `rejected`, each with the
/// operator's new columns appended; dropped rows also get `reasons`.
pub struct SplitWriter {
    kept_schema: SchemaRef,
    rejected_schema: SchemaRef,
    kept: ArrowWriter<std::fs::File>,
    rejected: Option<ArrowWriter<std::fs::File>>,
    n_kept: usize,
    n_rejected: usize,
}

impl SplitWriter {
    /// A writer for input rows of `input` schema plus the `added` columns. Without a
    /// `rejected_dir`, every row must be kept.
    pub fn new(
        input: &Schema,
        added: Vec<Field>,
        docs_dir: &Path,
        rejected_dir: Option<&Path>,
    ) -> Result<Self> {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        for f in &added {
            if input.index_of(f.name()).is_ok() {
                bail!(
                    "the input already has a column `{}`, which this operator adds; \
                     rename or drop it first",
                    f.name()
                );
            }
        }
        fields.extend(added);
        let kept_schema = Arc::new(Schema::new(fields.clone()));
        fields.push(reasons_field());
        let rejected_schema = Arc::new(Schema::new(fields));
        let kept = dataset::writer(docs_dir, kept_schema.clone())?;
        let rejected = rejected_dir
            .map(|d| dataset::writer(d, rejected_schema.clone()))
            .transpose()?;
        Ok(SplitWriter {
            kept_schema,
            rejected_schema,
            kept,
            rejected,
            n_kept: 0,
            n_rejected: 0,
        })
    }

    /// Writes one input batch with its `added` columns; a row is kept when its list of
    /// `reasons` is empty. `reasons` may be empty to keep every row.
    pub fn write(
        &mut self,
        batch: &RecordBatch,
        added: Vec<ArrayRef>,
        reasons: &[Vec<String>],
    ) -> Result<()> {
        let mut cols = batch.columns().to_vec();
        cols.extend(added);
        let full = RecordBatch::try_new(self.kept_schema.clone(), cols.clone())?;
        if reasons.is_empty() || reasons.iter().all(|r| r.is_empty()) {
            self.n_kept += full.num_rows();
            self.kept.write(&full)?;
            return Ok(());
        }
        if reasons.len() != batch.num_rows() {
            bail!("{} reasons for {} rows", reasons.len(), batch.num_rows());
        }
        let keep: BooleanArray = reasons.iter().map(|r| Some(r.is_empty())).collect();
        let kept = filter_record_batch(&full, &keep)?;
        self.n_kept += kept.num_rows();
        self.kept.write(&kept)?;
        let Some(rejected) = self.rejected.as_mut() else {
            bail!("this operator has no `rejected` output, but dropped rows");
        };
        let drop: BooleanArray = reasons.iter().map(|r| Some(!r.is_empty())).collect();
        cols.push(reasons_array(reasons));
        let all = RecordBatch::try_new(self.rejected_schema.clone(), cols)?;
        let dropped = filter_record_batch(&all, &drop)?;
        self.n_rejected += dropped.num_rows();
        rejected.write(&dropped)?;
        Ok(())
    }

    /// Rows written so far: (kept, rejected).
    pub fn counts(&self) -> (usize, usize) {
        (self.n_kept, self.n_rejected)
    }

    /// Closes the files and records their metadata on `ctx`'s ports `docs` and `rejected`.
    pub fn finish(self, ctx: &mut OpContext, docs_port: &str, rejected_port: &str) -> Result<()> {
        self.kept.close()?;
        ctx.set_output_meta(docs_port, dataset::meta(&self.kept_schema, self.n_kept));
        if let Some(r) = self.rejected {
            r.close()?;
            ctx.set_output_meta(
                rejected_port,
                dataset::meta(&self.rejected_schema, self.n_rejected),
            );
        }
        Ok(())
    }
}
