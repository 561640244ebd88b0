//! `data.load`: files or globs, local or on S3, in JSONL, CSV or Parquet → one dataset.

use super::{dataset, sources};
use anyhow::{Context, Result};
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use zest_engine::operator::{OpContext, Operator, PortSpec, PortType, Ports};

/// File formats `data.load` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values (see `csv`).
    Csv,
    /// Apache Parquet.
    Parquet,
}

/// CSV options.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    /// Whether the first line names the columns (otherwise columns are `column_1`, ...).
    #[serde(default = "yes")]
    pub header: bool,
    /// The field delimiter, one ASCII character.
    #[serde(default = "comma")]
    pub delimiter: String,
}

fn yes() -> bool {
    true
}
fn comma() -> String {
    ",".into()
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            header: true,
            delimiter: comma(),
        }
    }
}

/// Config of `data.load`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadConfig {
    /// Files or glob patterns: local paths (relative to where zest runs) or `s3://bucket/key`.
    #[schemars(length(min = 1))]
    pub paths: Vec<String>,
    /// The format; inferred from the file extension when absent.
    #[serde(default)]
    pub format: Option<Format>,
    /// CSV options.
    #[serde(default)]
    pub csv: CsvOptions,
}

/// The `data.load` operator.
pub struct Load;

fn infer_format(path: &str) -> Option<Format> {
    let p = path.to_ascii_lowercase();
    if p.ends_with(".jsonl") || p.ends_with(".ndjson") || p.ends_with(".json") {
        Some(Format::Jsonl)
    } else if p.ends_with(".csv") || p.ends_with(".tsv") {
        Some(Format::Csv)
    } else if p.ends_with(".parquet") || p.ends_with(".pq") {
        Some(Format::Parquet)
    } else {
        None
    }
}

impl Operator for Load {
    type Config = LoadConfig;
    const NAME: &'static str = "data.load";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Loads JSONL, CSV or Parquet files (local or s3://, globs allowed) into one dataset";

    fn ports(_: Option<&LoadConfig>) -> Ports {
        Ports {
            inputs: vec![],
            outputs: vec![PortSpec::new("data", PortType::Dataset, "the loaded rows")],
            other_inputs: None,
        }
    }

    fn check(c: &LoadConfig) -> Result<(), String> {
        if c.csv.delimiter.len() != 1 {
            return Err(format!(
                "`csv.delimiter` must be one ASCII character, found `{}`",
                c.csv.delimiter
            ));
        }
        if c.format.is_none() {
            let formats: Vec<Option<Format>> = c.paths.iter().map(|p| infer_format(p)).collect();
            if let Some(i) = formats.iter().position(Option::is_none) {
                return Err(format!("cannot tell the format of `{}` from its extension: set `format` (jsonl, csv or parquet)", c.paths[i]));
            }
            if formats.windows(2).any(|w| w[0] != w[1]) {
                return Err("`paths` mix formats: load each format in its own node".into());
            }
        }
        Ok(())
    }

    const READS_FILES: bool = true;

    fn external_files(
        c: &Self::Config,
        rt: &tokio::runtime::Handle,
    ) -> Result<Vec<zest_engine::operator::ExternalFile>> {
        rt.block_on(crate::data::sources::fingerprint(&c.paths))
    }

    fn run(c: &LoadConfig, ctx: &mut OpContext) -> Result<()> {
        let format = c
            .format
            .or_else(|| infer_format(&c.paths[0]))
            .expect("checked");
        let out = ctx.output_dir("data")?.to_path_buf();
        let session = dataset::session();
        let meta = ctx.block_on(async {
            let mut files = vec![];
            for src in sources::expand(&c.paths).await? {
                if let Some((url, store)) = src.object_store() {
                    session.register_object_store(&url, store);
                }
                files.push(src.location().to_string());
            }
            let df = match format {
                Format::Jsonl => {
                    session
                        .read_json(files.clone(), JsonReadOptions::default().file_extension(""))
                        .await
                }
                Format::Csv => {
                    let opts = CsvReadOptions::new()
                        .has_header(c.csv.header)
                        .delimiter(c.csv.delimiter.as_bytes()[0])
                        .file_extension("");
                    session.read_csv(files.clone(), opts).await
                }
                Format::Parquet => {
                    session
                        .read_parquet(
                            files.clone(),
                            ParquetReadOptions::default().file_extension(""),
                        )
                        .await
                }
            }
            .with_context(|| format!("reading {} as {format:?}", files.join(", ")))?;
            let meta = dataset::write(df, &out)
                .await
                .with_context(|| format!("reading {} as {format:?}", files.join(", ")))?;
            anyhow::Ok(meta)
        })?;
        eprintln!("data.load: {} rows", meta["rows"]);
        ctx.set_output_meta("data", meta);
        Ok(())
    }
}
