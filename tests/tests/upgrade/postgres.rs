//! The previous release's schema on PostgreSQL (postgres.sql, a plain pg_dump), opened by this
//! collector: migrated at start and served. What it holds is read with psql from the loaded
//! dump, before this collector touches it.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{Context, Result, ensure};

use crate::recorded::{self, Carried};

/// Runs `sql` with psql on `url`: its rows, fields separated by `|`.
fn psql(url: &str, args: &[&str]) -> Result<String> {
    let out = Command::new("psql")
        .arg(url)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-At"])
        .args(args)
        .output()
        .context("running psql")?;
    ensure!(
        out.status.success(),
        "psql {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_collector_migrates_the_previous_postgres_schema_and_serves_it() -> Result<()> {
    let Some(url) = lookout_tests::pg_database("upgrade").await else {
        return Ok(());
    };
    let dump = recorded::dir().join("postgres.sql");
    psql(&url, &["-f", dump.to_str().context("path")?])?;
    // What the old collector stored, read from its own tables.
    let mut carried = Carried::default();
    let rows = psql(
        &url,
        &[
            "-c",
            "SELECT s.check_name, r.ok, r.time_ms FROM check_results r \
                 JOIN check_series s ON s.id = r.series_id WHERE s.agent = 'pg-1'",
        ],
    )?;
    let mut times = Vec::new();
    let mut results: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for row in rows.lines() {
        let mut f = row.split('|');
        let (check, ok, ms) = (f.next(), f.next(), f.next());
        let (Some(check), Some(ok), Some(ms)) = (check, ok, ms) else {
            anyhow::bail!("a row of three fields: {row}");
        };
        results
            .entry(check.to_string())
            .or_default()
            .push(ok == "t");
        times.push(chrono::DateTime::from_timestamp_millis(ms.parse()?).context("a time")?);
    }
    ensure!(!results.is_empty(), "the dump holds no results");
    carried.results = results;
    carried.span = Some((
        *times.iter().min().context("times")?,
        *times.iter().max().context("times")?,
    ));
    let dir = tempfile::tempdir()?;
    let extra = format!(
        "url = \"{url}\"\n\n[[agents]]\nname = \"pg-1\"\ntoken = \"fixture-pg-1-token-0123456789abcdef\"\n"
    );
    let config = recorded::collector_config(lookout_tests::free_port().get(), dir.path(), &extra)?;
    let (_collector, base) = lookout_tests::start_collector(dir.path(), &config)?;
    crate::serves(&base, &carried, "pg-1").await
}
