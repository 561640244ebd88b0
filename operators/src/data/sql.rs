//! `data.sql`: a DataFusion SQL query over input datasets, each registered as a table named
//! after its input port.

use super::dataset;
use anyhow::{Context, Result};
use datafusion::prelude::ParquetReadOptions;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use zest_engine::operator::{OpContext, Operator, PortSpec, PortType, Ports};

/// Config of `data.sql`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlConfig {
    /// One SQL query (DataFusion dialect). Input ports are its tables.
    #[schemars(length(min = 1))]
    pub query: String,
}

/// The `data.sql` operator.
pub struct Sql;

impl Operator for Sql {
    type Config = SqlConfig;
    const NAME: &'static str = "data.sql";
    const VERSION: &'static str = "1";
    const DESCRIPTION: &'static str =
        "Runs a DataFusion SQL query over input datasets (each input port is a table)";

    fn ports(_: Option<&SqlConfig>) -> Ports {
        Ports {
            inputs: vec![],
            outputs: vec![PortSpec::new("data", PortType::Dataset, "the query result")],
            other_inputs: Some(PortType::Dataset),
        }
    }

    fn check(c: &SqlConfig) -> Result<(), String> {
        use datafusion::sql::sqlparser::{dialect::GenericDialect, parser::Parser};
        let stmts = Parser::parse_sql(&GenericDialect {}, &c.query)
            .map_err(|e| format!("SQL syntax error in `query`: {e}"))?;
        if stmts.len() != 1 {
            return Err(format!(
                "`query` must hold exactly one SQL statement, found {}",
                stmts.len()
            ));
        }
        // A query reads its input tables and nothing else: no COPY (which writes files),
        // DDL, DML, SET or EXPLAIN ANALYZE.
        use datafusion::sql::sqlparser::ast::Statement;
        match &stmts[0] {
            Statement::Query(_) => Ok(()),
            other => {
                let text = other.to_string();
                let verb: String = text
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ");
                Err(format!(
                    "`query` must be a query (SELECT, WITH … SELECT, VALUES), found `{verb}…`: data.sql does not write files or change tables; write outputs through its `data` port"
                ))
            }
        }
    }

    fn run(c: &SqlConfig, ctx: &mut OpContext) -> Result<()> {
        let out = ctx.output_dir("data")?.to_path_buf();
        let session = dataset::session();
        let tables: Vec<(String, Vec<String>)> = ctx
            .inputs
            .iter()
            .map(|(port, arts)| Ok((port.clone(), dataset::files(arts)?)))
            .collect::<Result<_>>()?;
        let meta = ctx.block_on(async {
            for (name, files) in &tables {
                let df = session
                    .read_parquet(files.clone(), ParquetReadOptions::default())
                    .await
                    .with_context(|| format!("reading input `{name}`"))?;
                session.register_table(name.as_str(), df.into_view())?;
            }
            let options = datafusion::execution::context::SQLOptions::new()
                .with_allow_ddl(false)
                .with_allow_dml(false)
                .with_allow_statements(false);
            let df = session
                .sql_with_options(&c.query, options)
                .await
                // A query over tables or columns the inputs lack fails the same way every time.
                .map_err(|e| zest_engine::failure::permanent(format!("SQL error: {e}")))?;
            dataset::write(df, &out).await.context("running the query")
        })?;
        eprintln!("data.sql: {} rows", meta["rows"]);
        ctx.set_output_meta("data", meta);
        Ok(())
    }
}
