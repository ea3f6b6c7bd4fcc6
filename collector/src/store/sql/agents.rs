//! Agents: their labels and version as recorded, and when each was last seen.

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::values::{labels_json, parse_labels, time};
use super::{Backend, SqlStore};
use crate::store::{AgentRow, Presence, StoreError};

impl<DB> SqlStore<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'a> &'a str: ColumnIndex<DB::Row> + Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> i64: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> f64: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> bool: Type<DB> + Decode<'a, DB>,
    for<'a> String: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> Vec<u8>: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> Option<i64>: Encode<'a, DB>,
    for<'a> Option<String>: Encode<'a, DB>,
    for<'a> Option<&'a str>: Encode<'a, DB>,
{
    pub(super) async fn write_agent(
        &self,
        name: &str,
        labels: &std::collections::BTreeMap<String, String>,
        claimed: Option<&std::collections::BTreeMap<String, String>>,
        version: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO agents (name, labels, claimed_labels, version) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET labels = excluded.labels,
               claimed_labels = COALESCE(excluded.claimed_labels, agents.claimed_labels),
               version = COALESCE(excluded.version, agents.version)",
        )
        .bind(name)
        .bind(labels_json(labels))
        .bind(claimed.map(labels_json))
        .bind(version)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    pub(super) async fn write_agent_presence(
        &self,
        name: &str,
        presence: Option<Presence>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        let since = presence.map(|_| at.timestamp_millis());
        sqlx::query(
            "INSERT INTO agents (name, presence, presence_since_ms) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET presence = excluded.presence,
               presence_since_ms = excluded.presence_since_ms",
        )
        .bind(name)
        .bind(presence.map(Presence::as_str))
        .bind(since)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    pub(super) async fn select_agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, labels, claimed_labels, last_seen_ms, version, presence, presence_since_ms
             FROM agents ORDER BY name",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AgentRow {
                    name: r.try_get("name")?,
                    labels: parse_labels(r.try_get("labels")?)?,
                    last_seen: r
                        .try_get::<Option<i64>, _>("last_seen_ms")?
                        .map(time)
                        .transpose()?,
                    version: r.try_get("version")?,
                    claimed_labels: match r.try_get::<Option<String>, _>("claimed_labels")? {
                        Some(json) => parse_labels(&json)?,
                        None => Default::default(),
                    },
                    presence: match (
                        r.try_get::<Option<String>, _>("presence")?,
                        r.try_get::<Option<i64>, _>("presence_since_ms")?,
                    ) {
                        (Some(p), Some(since)) => match Presence::parse(&p) {
                            Some(p) => Some((p, time(since)?)),
                            None => None,
                        },
                        _ => None,
                    },
                })
            })
            .collect()
    }
}
