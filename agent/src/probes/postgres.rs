//! The `postgres` probe: connect with the check's URL (TLS as its `sslmode` says) and run
//! `query` (default `SELECT 1`). `[BODY]` is the first column of the first row, as text.

use std::time::Instant;

use lookout_config::CheckConfig;
use sqlx::{Column, ConnectOptions, Connection, Row, TypeInfo};

use super::Outcome;
use super::net::ms_since;

/// Runs one probe of `check`, filling `out` (its timeout is enforced by the caller).
pub async fn probe(check: &CheckConfig, out: &mut Outcome) -> Result<(), String> {
    let url = check.url.as_deref().unwrap_or_default();
    let options: sqlx::postgres::PgConnectOptions = url
        .parse()
        // sqlx's errors name the problem, not the URL (which may hold a password).
        .map_err(|e: sqlx::Error| format!("invalid PostgreSQL url: {}", e))?;
    let options = options
        .application_name("lookout-agent")
        .disable_statement_logging();
    let started = Instant::now();
    let mut conn = options
        .connect()
        .await
        .map_err(|e| format!("connecting: {}", e))?;
    out.timings.connect_ms = Some(ms_since(started));
    out.seen.connected = true;
    let query = check.query.as_deref().unwrap_or("SELECT 1");
    let sent = Instant::now();
    let row = sqlx::query(sqlx::AssertSqlSafe(query))
        .fetch_optional(&mut conn)
        .await
        .map_err(|e| format!("query: {}", e));
    out.timings.ttfb_ms = Some(ms_since(sent));
    let _ = conn.close().await;
    if let Some(row) = row? {
        out.seen.body = first_value(&row).map(String::into_bytes);
    }
    Ok(())
}

/// The first column as text, for the common types.
fn first_value(row: &sqlx::postgres::PgRow) -> Option<String> {
    let col = row.columns().first()?;
    let i = col.ordinal();
    match col.type_info().name() {
        "INT2" => row.try_get::<i16, _>(i).ok().map(|v| v.to_string()),
        "INT4" => row.try_get::<i32, _>(i).ok().map(|v| v.to_string()),
        "INT8" => row.try_get::<i64, _>(i).ok().map(|v| v.to_string()),
        "FLOAT4" => row.try_get::<f32, _>(i).ok().map(|v| v.to_string()),
        "FLOAT8" => row.try_get::<f64, _>(i).ok().map(|v| v.to_string()),
        "BOOL" => row.try_get::<bool, _>(i).ok().map(|v| v.to_string()),
        _ => row.try_get::<String, _>(i).ok(),
    }
}
