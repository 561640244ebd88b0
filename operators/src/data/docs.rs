//! Document datasets as the cleaning operators see them: a stream of record batches in, kept
//! rows (with the operator's annotations as new columns) to `docs`, dropped rows (with every
//! reason) to `rejected`.
//!
//! Every cleaning and augmentation operator uses the same conventions, so that DAGs compose:
//! the text is in `text` and the id in `doc_id` unless configured otherwise, every input
//! column is passed through, and a dropped row carries a `reasons` column (a list of strings).
//!
//! The shared toolkit: the column defaults ([`text_column`], [`id_column`],
//! [`source_column`]), [`require_columns`] for the "no such column" error, [`par_map`] for
//! spreading documents over the node's threads ([`OpContext::threads`]), and the
//! [`FilterReport`] every operator that drops rows writes to its `report` output.

use crate::data::dataset;
pub use crate::data::filter_report::FilterReport;
use anyhow::{bail, Context, Result};
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, ListBuilder, StringArray, StringBuilder,
};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::ParquetReadOptions;
use std::path::Path;
use std::sync::Arc;
use zest_engine::operator::OpContext;

/// The name of the column that lists why a row was dropped.
pub const REASONS: &str = "reasons";

/// The default text column, `text`.
pub fn text_column() -> String {
    "text".into()
}

/// The default document id column, `doc_id`.
pub fn id_column() -> String {
    "doc_id".into()
}

/// The default source column, `source` (what the ingest operators write: `textbook`,
/// `guideline`, `web`, …); filter reports are broken down by it when the input has it.
pub fn source_column() -> String {
    "source".into()
}

/// Fails, naming the columns that exist, unless input `port`'s `schema` has every column in
/// `wanted`, given as (config field, column name) pairs such as `("text_column", "text")`.
pub fn require_columns(schema: &Schema, port: &str, wanted: &[(&str, &str)]) -> Result<()> {
    for (field, name) in wanted {
        if schema.index_of(name).is_err() {
            return Err(zest_engine::failure::permanent(format!(
                "input `{port}` has no column `{name}` (`{field}`; columns: {})",
                column_names(schema)
            )));
        }
    }
    Ok(())
}

/// The columns of `schema`, comma-separated.
pub fn column_names(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `f` applied to every item, the items split into one chunk per thread (at most `threads`
/// threads, normally [`OpContext::threads`]); results in the items' order.
pub fn par_map<T: Sync, R: Send>(
    threads: usize,
    items: &[T],
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    par_map_range(threads, items.len(), |i| f(&items[i]))
}

/// `f` applied to `0..n`, spread over at most `threads` threads; results in order.
pub fn par_map_range<R: Send>(threads: usize, n: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let threads = threads.max(1).min(n.max(1));
    if n < 2 || threads == 1 {
        return (0..n).map(&f).collect();
    }
    let chunk = n.div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|lo| s.spawn(move || (lo..(lo + chunk).min(n)).map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a worker thread panicked"))
            .collect()
    })
}

/// Whether `ctx` is an instance of a parallel stage of a sharded node (not its merge).
pub fn in_parallel_stage(ctx: &OpContext) -> bool {
    ctx.shard.as_ref().is_some_and(|s| !s.is_merge())
}

/// Where a row-wise operator writes output `port`: the port's own directory when the node
/// runs whole, the subdirectory `port` of its single part (`part0`) in a shard instance of a
/// one-stage sharding, which [`merge_row_parts`] puts together.
pub fn out_dir(ctx: &OpContext, port: &str) -> Result<std::path::PathBuf> {
    if !in_parallel_stage(ctx) {
        return Ok(ctx.output_dir(port)?.to_path_buf());
    }
    let dir = ctx
        .output_dir(&zest_engine::operator::part_port(0))?
        .join(port);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// How a row-wise operator shards: one parallel stage over contiguous ranges of rows, and a
/// merge that concatenates the parts ([`merge_row_parts`]).
pub fn row_sharding() -> zest_engine::operator::Sharding {
    zest_engine::operator::Sharding {
        stages: vec![ROWS_STAGE],
    }
}

/// The name of [`row_sharding`]'s parallel stage.
pub const ROWS_STAGE: &str = "rows";

/// Opens the rows of input `port` this node takes: all of them when it runs whole, its
/// contiguous share ([`zest_engine::operator::ShardPos::rows`]) in a parallel stage of a
/// sharded node. Returns the schema, the stream and the input row number of the first row.
pub async fn open_shard(
    ctx: &OpContext,
    port: &str,
) -> Result<(SchemaRef, SendableRecordBatchStream, usize)> {
    let Some(shard) = ctx.shard.as_ref().filter(|s| !s.is_merge()) else {
        let (schema, stream) = open(ctx, port).await?;
        return Ok((schema, stream, 0));
    };
    let files = dataset::files(ctx.inputs(port))?;
    if files.is_empty() {
        bail!("input `{port}` has no dataset");
    }
    let total = dataset::row_count(&files)?;
    let rows = shard.rows(total);
    let df = dataset::session()
        .read_parquet(files, ParquetReadOptions::default())
        .await?
        .limit(rows.start, Some(rows.len()))?;
    let schema: SchemaRef = df.schema().inner().clone();
    Ok((schema, df.execute_stream().await?, rows.start))
}

/// The merge of a row-wise operator's shards, for every output port of the node: the
/// `report` port is the parts' [`FilterReport`]s added up, every other port a dataset of the
/// parts' rows in order (the same bytes as an unsharded run: see [`dataset::DatasetWriter`]).
pub fn merge_row_parts(ctx: &mut OpContext) -> Result<()> {
    let parts: Vec<std::path::PathBuf> = ctx
        .inputs(zest_engine::operator::PARTS_PORT)
        .iter()
        .map(|a| a.path().map(Path::to_path_buf))
        .collect::<Result<_>>()?;
    if parts.is_empty() {
        bail!("the merge of a sharded node has no parts");
    }
    let ports: Vec<String> = ctx.outputs.keys().cloned().collect();
    for port in ports.iter().filter(|p| *p != REPORT_PORT) {
        let files: Vec<std::path::PathBuf> = parts
            .iter()
            .map(|p| p.join(port).join(dataset::DATA_FILE))
            .collect();
        let dir = ctx.output_dir(port)?.to_path_buf();
        let meta = dataset::concat(&files, &dir).with_context(|| format!("merging `{port}`"))?;
        ctx.set_output_meta(port, meta);
    }
    if ports.iter().any(|p| p == REPORT_PORT) {
        let mut merged: Option<FilterReport> = None;
        for p in &parts {
            let path = p.join(REPORT_PORT).join(REPORT_FILE);
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let r: FilterReport = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a filter report", path.display()))?;
            match merged.as_mut() {
                None => merged = Some(r),
                Some(m) => m.merge(r),
            }
        }
        let merged = merged.expect("at least one part");
        write_report(ctx, &merged)?;
    }
    Ok(())
}

/// Whether `ctx` is the merge of a sharded node.
pub fn is_merge(ctx: &OpContext) -> bool {
    ctx.shard.as_ref().is_some_and(|s| s.is_merge())
}

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
            column_names(&batch.schema())
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

/// The columns a [`FilterReport`] reads from each row.
#[derive(Debug, Clone)]
pub struct ReportColumns {
    /// The document id column (row numbers when the input lacks it).
    pub id: String,
    /// The text column (as written: after any rewriting by the operator).
    pub text: String,
    /// The source column; sources are all `all` when the input lacks it.
    pub source: String,
}

impl ReportColumns {
    /// The columns named `id`, `text` and `source`.
    pub fn new(id: &str, text: &str, source: &str) -> Self {
        ReportColumns {
            id: id.to_string(),
            text: text.to_string(),
            source: source.to_string(),
        }
    }
}

/// The name of the output port every operator that drops rows writes its [`FilterReport`] to.
pub const REPORT_PORT: &str = "report";

/// The `report` output port's declaration.
pub fn report_port() -> zest_engine::operator::PortSpec {
    zest_engine::operator::PortSpec::new(
        REPORT_PORT,
        zest_engine::operator::PortType::Report,
        "report.json: documents dropped per source and per rule, with examples",
    )
}

/// Writes `report` to `ctx`'s `report` output and its summary to the node's log (in a shard
/// instance, to its part: see [`out_dir`]).
pub fn write_report(ctx: &mut OpContext, report: &FilterReport) -> Result<()> {
    eprintln!("{}: {}", report.operator, report.summary());
    if in_parallel_stage(ctx) {
        let path = out_dir(ctx, REPORT_PORT)?.join(REPORT_FILE);
        return std::fs::write(&path, report.to_json())
            .with_context(|| format!("cannot write {}", path.display()));
    }
    ctx.write_output(REPORT_PORT, REPORT_FILE, report.to_json())
}

/// The file name of a filter report in its artifact.
pub const REPORT_FILE: &str = "report.json";

/// Writes the rows an operator keeps to `docs` and those it drops to `rejected`, each with the
/// operator's new columns appended; dropped rows also get `reasons`.
pub struct SplitWriter {
    kept_schema: SchemaRef,
    rejected_schema: SchemaRef,
    kept: dataset::DatasetWriter,
    rejected: Option<dataset::DatasetWriter>,
    n_kept: usize,
    n_rejected: usize,
    /// The input row number of the first row written (a shard's first row).
    first_row: usize,
    report: Option<(FilterReport, ReportColumns)>,
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
            first_row: 0,
            report: None,
        })
    }

    /// Numbers rows from `row` on, for the report's ids of rows without one: a shard
    /// instance's rows start where [`open_shard`] says.
    pub fn starting_at(mut self, row: usize) -> Self {
        self.first_row = row;
        self
    }

    /// Also builds a [`FilterReport`] of `operator` from every row written, written to the
    /// `report` output by [`SplitWriter::finish`].
    pub fn with_report(mut self, operator: &str, columns: ReportColumns) -> Self {
        let source =
            (self.kept_schema.index_of(&columns.source).is_ok()).then(|| columns.source.clone());
        self.report = Some((FilterReport::new(operator, source), columns));
        self
    }

    fn record(&mut self, full: &RecordBatch, reasons: &[Vec<String>]) -> Result<()> {
        let Some((report, cols)) = self.report.as_mut() else {
            return Ok(());
        };
        let ids = match full.schema().index_of(&cols.id) {
            Ok(i) => Some(strings(full.column(i), &cols.id)?),
            Err(_) => None,
        };
        let texts = match full.schema().index_of(&cols.text) {
            Ok(i) => Some(strings(full.column(i), &cols.text)?),
            Err(_) => None,
        };
        let sources = match &report.source_column {
            Some(s) => Some(strings(column(full, s)?, s)?),
            None => None,
        };
        fn value(a: &StringArray, i: usize) -> Option<&str> {
            (!a.is_null(i)).then(|| a.value(i))
        }
        for i in 0..full.num_rows() {
            let r: &[String] = reasons.get(i).map(Vec::as_slice).unwrap_or(&[]);
            let row = self.first_row + self.n_kept + self.n_rejected + i;
            let id = match &ids {
                Some(a) => value(a, i).unwrap_or("").to_string(),
                None => format!("row {row}"),
            };
            report.add(
                sources.as_ref().and_then(|s| value(s, i)),
                &id,
                texts.as_ref().and_then(|t| value(t, i)).unwrap_or(""),
                r,
            );
        }
        Ok(())
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
        if !reasons.is_empty() && reasons.len() != batch.num_rows() {
            bail!("{} reasons for {} rows", reasons.len(), batch.num_rows());
        }
        self.record(&full, reasons)?;
        if reasons.is_empty() || reasons.iter().all(|r| r.is_empty()) {
            self.n_kept += full.num_rows();
            self.kept.write(&full)?;
            return Ok(());
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

    /// Closes the files and records their metadata on `ctx`'s ports `docs` and `rejected`;
    /// writes the report, if the writer builds one, to `report`. In a shard instance the
    /// files are in its part ([`out_dir`]) and the metadata is the merge's to record.
    pub fn finish(self, ctx: &mut OpContext, docs_port: &str, rejected_port: &str) -> Result<()> {
        if let Some((report, _)) = &self.report {
            write_report(ctx, report)?;
        }
        self.kept.close()?;
        let whole = !in_parallel_stage(ctx);
        if whole {
            ctx.set_output_meta(docs_port, dataset::meta(&self.kept_schema, self.n_kept));
        }
        if let Some(r) = self.rejected {
            r.close()?;
            if whole {
                ctx.set_output_meta(
                    rejected_port,
                    dataset::meta(&self.rejected_schema, self.n_rejected),
                );
            }
        }
        Ok(())
    }
}
