//! `clean.dedup`: exact and MinHash-LSH near-duplicate removal across a whole dataset. Kept
//! rows go to `docs`, removed rows to `duplicates`, both with a `cluster_id` (the row number of
//! the cluster's kept document); removed rows also carry `kept_doc_id` and `dup_reason`
//! (`exact` or `near`).
//!
//! Two passes over the input, record batch by record batch: the first hashes the text column
//! (on every core) and keeps only hashes in memory; the second streams the rows again and
//! splits them.
//!
//! With `shards: N` it runs as map → shuffle → reduce → merge (see `zest_kernels::dedup`):
//! N `signatures` instances hash contiguous ranges of rows and split the hashes by reducer,
//! N `bands` instances each turn their share of exact hashes and LSH buckets into edges, and
//! the merge joins the edges into clusters and splits the rows. The clusters, and so the
//! outputs, are identical to an unsharded run's.

use crate::data::dataset;
use crate::data::docs::{self, column, strings, FilterReport};
use anyhow::{bail, Context, Result};
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, StringArray, UInt64Array};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::ParquetReadOptions;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use zest_engine::operator::{
    part_port, OpContext, Operator, PortSpec, PortType, Ports, Sharding, PARTS_PORT,
};
use zest_kernels::dedup::{Clusters, DedupConfig, DedupIndex};
use zest_kernels::minhash::MinHashConfig;

fn yes() -> bool {
    true
}
fn five() -> usize {
    5
}
fn bands() -> usize {
    14
}
fn rows() -> usize {
    8
}
fn threshold() -> f64 {
    0.7
}
fn seed() -> u64 {
    1
}

/// Config of `clean.dedup`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DedupOpConfig {
    /// The column holding the text.
    #[serde(default = "docs::text_column")]
    pub text_column: String,
    /// The column identifying a document (copied to `kept_doc_id` of its duplicates).
    #[serde(default = "docs::id_column")]
    pub id_column: String,
    /// The column the report breaks counts down by, when the input has it.
    #[serde(default = "docs::source_column")]
    pub source_column: String,
    /// Remove exact duplicates (same text after lower-casing, digit and punctuation folding).
    #[serde(default = "yes")]
    pub exact: bool,
    /// Remove near duplicates (MinHash LSH).
    #[serde(default = "yes")]
    pub near: bool,
    /// Words per shingle.
    #[serde(default = "five")]
    #[schemars(range(min = 1))]
    pub ngram: usize,
    /// LSH bands.
    #[serde(default = "bands")]
    #[schemars(range(min = 1))]
    pub bands: usize,
    /// Hashes per band.
    #[serde(default = "rows")]
    #[schemars(range(min = 1))]
    pub rows: usize,
    /// Candidates are merged when their estimated Jaccard similarity reaches this.
    #[serde(default = "threshold")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub threshold: f64,
    /// Seed of the hash functions.
    #[serde(default = "seed")]
    pub seed: u64,
}

/// The `clean.dedup` operator.
pub struct Dedup;

impl Operator for Dedup {
    type Config = DedupOpConfig;
    const NAME: &'static str = "clean.dedup";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Removes exact and MinHash-LSH near-duplicate documents, keeping one per cluster";

    fn ports(_: Option<&DedupOpConfig>) -> Ports {
        Ports {
            inputs: vec![PortSpec::new("docs", PortType::Dataset, "the documents")],
            outputs: vec![
                PortSpec::new("docs", PortType::Dataset, "kept documents, with cluster_id"),
                PortSpec::new(
                    "duplicates",
                    PortType::Dataset,
                    "removed documents, with cluster_id, kept_doc_id and dup_reason",
                ),
                docs::report_port(),
            ],
            other_inputs: None,
        }
    }

    fn sharding(_: &DedupOpConfig) -> Option<Sharding> {
        Some(Sharding {
            stages: vec![SIGNATURES_STAGE, BANDS_STAGE],
        })
    }

    fn run(c: &DedupOpConfig, ctx: &mut OpContext) -> Result<()> {
        let files: Vec<String> = ctx
            .inputs
            .get("docs")
            .map(|arts| dataset::files(arts))
            .transpose()?
            .unwrap_or_default();
        let config = c.kernel_config();
        let threads = ctx.threads();
        let shard = ctx.shard.clone();
        match shard {
            None => {
                let index = ctx.block_on(hash_rows(c, ctx, config, threads))?.0;
                let total = index.len();
                let clusters = index.finish();
                split(c, ctx, &files, &clusters, total)
            }
            Some(s) if s.stage == SIGNATURES_STAGE => {
                let (index, first_row) = ctx.block_on(hash_rows(c, ctx, config, threads))?;
                let first = u32::try_from(first_row).context("more than 2³² documents")?;
                for (j, bytes) in index.shuffle(first, s.count).into_iter().enumerate() {
                    ctx.write_output(&part_port(j as u32), HASHES_FILE, bytes)?;
                }
                Ok(())
            }
            Some(s) if s.stage == BANDS_STAGE => {
                let parts = read_parts(ctx, HASHES_FILE)?;
                let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
                let edges = zest_kernels::dedup::reduce(&refs, c.threshold)?;
                eprintln!(
                    "clean.dedup: reduced {} bytes of hashes from {} shards to {} bytes of edges",
                    refs.iter().map(|p| p.len()).sum::<usize>(),
                    refs.len(),
                    edges.len()
                );
                ctx.write_output(&part_port(0), EDGES_FILE, edges)
            }
            Some(s) if s.is_merge() => {
                let total = dataset::row_count(&files)?;
                let parts = read_parts(ctx, EDGES_FILE)?;
                let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
                let clusters = Clusters::from_edges(total, &refs, c.exact)?;
                split(c, ctx, &files, &clusters, total)
            }
            Some(s) => bail!("clean.dedup has no stage `{}`", s.stage),
        }
    }
}

/// The map stage of a sharded `clean.dedup`: hashes of its shard's rows, split by reducer.
pub const SIGNATURES_STAGE: &str = "signatures";
/// The reduce stage: one share of the exact hashes and LSH bands of every shard, to edges.
pub const BANDS_STAGE: &str = "bands";
const HASHES_FILE: &str = "hashes.bin";
const EDGES_FILE: &str = "edges.bin";

impl DedupOpConfig {
    fn kernel_config(&self) -> DedupConfig {
        DedupConfig {
            minhash: MinHashConfig {
                ngram: self.ngram,
                bands: self.bands,
                rows: self.rows,
                seed: self.seed,
            },
            threshold: self.threshold,
            exact: self.exact,
            near: self.near,
        }
    }
}

/// The file `name` of every part on the `parts` input, in order.
fn read_parts(ctx: &OpContext, name: &str) -> Result<Vec<Vec<u8>>> {
    ctx.inputs(PARTS_PORT)
        .iter()
        .map(|a| {
            let path = a.path()?.join(name);
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
        })
        .collect()
}

/// Hashes the text of the rows this node takes (all, or its shard's: `docs::open_shard`);
/// returns the index and the input row number of its first row.
async fn hash_rows(
    c: &DedupOpConfig,
    ctx: &OpContext,
    config: DedupConfig,
    threads: usize,
) -> Result<(DedupIndex, usize)> {
    let (schema, mut stream, first_row) = docs::open_shard(ctx, "docs").await?;
    docs::require_columns(&schema, "docs", &[("text_column", &c.text_column)])?;
    let mut index = DedupIndex::new(config);
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let texts = strings(column(&batch, &c.text_column)?, &c.text_column)?;
        let refs: Vec<&str> = (0..texts.len())
            .map(|i| if texts.is_null(i) { "" } else { texts.value(i) })
            .collect();
        index.add_all(&refs, threads);
        eprintln!("clean.dedup: hashed {} documents", index.len());
    }
    Ok((index, first_row))
}

/// Writes every input row to `docs` or `duplicates` by `clusters`, and the report.
fn split(
    c: &DedupOpConfig,
    ctx: &mut OpContext,
    files: &[String],
    clusters: &Clusters,
    total: usize,
) -> Result<()> {
    let docs_dir = ctx.output_dir("docs")?.to_path_buf();
    let dups_dir = ctx.output_dir("duplicates")?.to_path_buf();
    if clusters.removed.len() != total {
        bail!("{} clusters for {total} rows", clusters.removed.len());
    }
    let (docs_meta, dups_meta, report) = ctx.block_on(async {
        let df = dataset::session()
            .read_parquet(files.to_vec(), ParquetReadOptions::default())
            .await?;
        let schema: SchemaRef = df.schema().inner().clone();
        docs::require_columns(
            &schema,
            "docs",
            &[("text_column", &c.text_column), ("id_column", &c.id_column)],
        )?;
        let mut kept_fields: Vec<Field> =
            schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        kept_fields.push(Field::new("cluster_id", DataType::UInt64, false));
        let kept_schema = Arc::new(Schema::new(kept_fields.clone()));
        let mut dup_fields = kept_fields;
        dup_fields.push(Field::new("kept_doc_id", DataType::Utf8, true));
        dup_fields.push(Field::new("dup_reason", DataType::Utf8, false));
        let dup_schema = Arc::new(Schema::new(dup_fields));
        let mut kept_w = dataset::writer(&docs_dir, kept_schema.clone())?;
        let mut dup_w = dataset::writer(&dups_dir, dup_schema.clone())?;
        let has_source = schema.index_of(&c.source_column).is_ok();
        let mut report =
            FilterReport::new(Dedup::NAME, has_source.then(|| c.source_column.clone()));
        // Ids of the rows seen so far: a duplicate's representative is an earlier row.
        let mut ids: Vec<Option<String>> = Vec::with_capacity(total);
        let mut offset = 0usize;
        let mut stream = df.execute_stream().await?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let n = batch.num_rows();
            if offset + n > total {
                bail!("the input has more rows than the {total} it had when it was hashed");
            }
            let range = offset..offset + n;
            {
                let idcol = strings(column(&batch, &c.id_column)?, &c.id_column)?;
                ids.extend((0..n).map(|i| (!idcol.is_null(i)).then(|| idcol.value(i).to_string())));
                let texts = strings(column(&batch, &c.text_column)?, &c.text_column)?;
                let sources = if has_source {
                    Some(strings(
                        column(&batch, &c.source_column)?,
                        &c.source_column,
                    )?)
                } else {
                    None
                };
                for (i, removed) in clusters.removed[range.clone()].iter().enumerate() {
                    let reasons: Vec<String> =
                        removed.iter().map(|k| k.as_str().to_string()).collect();
                    let source = sources
                        .as_ref()
                        .and_then(|s| (!s.is_null(i)).then(|| s.value(i)));
                    let id = ids[offset + i].as_deref().unwrap_or("");
                    let text = if texts.is_null(i) { "" } else { texts.value(i) };
                    report.add(source, id, text, &reasons);
                }
            }
            offset += n;
            let keep: BooleanArray = clusters.removed[range.clone()]
                .iter()
                .map(|r| Some(r.is_none()))
                .collect();
            let drop: BooleanArray = clusters.removed[range.clone()]
                .iter()
                .map(|r| Some(r.is_some()))
                .collect();
            let cluster: ArrayRef = Arc::new(UInt64Array::from_iter_values(
                clusters.representative[range.clone()]
                    .iter()
                    .map(|&r| u64::from(r)),
            ));
            let mut cols = batch.columns().to_vec();
            cols.push(cluster);
            let with_cluster = RecordBatch::try_new(kept_schema.clone(), cols.clone())?;
            kept_w.write(&filter_record_batch(&with_cluster, &keep)?)?;
            let kept_ids: ArrayRef = Arc::new(StringArray::from_iter(
                clusters.representative[range.clone()]
                    .iter()
                    .map(|&r| ids[r as usize].clone()),
            ));
            let reasons: ArrayRef = Arc::new(StringArray::from_iter_values(
                clusters.removed[range]
                    .iter()
                    .map(|r| r.map_or("", |k| k.as_str())),
            ));
            let mut dcols = cols;
            dcols.push(kept_ids);
            dcols.push(reasons);
            let dups =
                filter_record_batch(&RecordBatch::try_new(dup_schema.clone(), dcols)?, &drop)?;
            dup_w.write(&dups)?;
        }
        if offset != total {
            bail!("the input changed between passes ({total} rows, then {offset})");
        }
        let (n_kept, n_dup) = (kept_w.close()?, dup_w.close()?);
        eprintln!("clean.dedup: {total} documents, kept {n_kept}, removed {n_dup}");
        Ok::<_, anyhow::Error>((
            dataset::meta(&kept_schema, n_kept),
            dataset::meta(&dup_schema, n_dup),
            report,
        ))
    })?;
    ctx.set_output_meta("docs", docs_meta);
    ctx.set_output_meta("duplicates", dups_meta);
    docs::write_report(ctx, &report)
}
