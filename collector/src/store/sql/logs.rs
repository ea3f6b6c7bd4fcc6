//! Log search: filters, a page cursor, and the words of a query, through each backend's text
//! index ([`super::Backend::push_text_match`]).

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::values::{ms, time};
use super::{Backend, SqlStore};
use crate::store::{LogQuery, LogRow, StoreError};

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
    pub(super) async fn select_logs(&self, q: &LogQuery) -> Result<Vec<LogRow>, StoreError> {
        let mut qb = sqlx::QueryBuilder::<DB>::new(
            "SELECT l.id, l.agent, l.time_ms, l.source, l.level, l.text FROM logs l WHERE l.time_ms BETWEEN ",
        );
        qb.push_bind(ms(&q.from)).push(" AND ").push_bind(ms(&q.to));
        if let Some(a) = &q.agent {
            qb.push(" AND l.agent = ").push_bind(a.clone());
        }
        if let Some(src) = &q.source {
            qb.push(" AND l.source = ").push_bind(src.clone());
        }
        if let Some(level) = &q.level {
            qb.push(" AND l.level = ").push_bind(level.clone());
        }
        if let Some((time, id)) = q.before {
            qb.push(" AND (l.time_ms < ")
                .push_bind(time)
                .push(" OR (l.time_ms = ")
                .push_bind(time)
                .push(" AND l.id < ")
                .push_bind(id)
                .push("))");
        }
        if let Some(text) = q.text.as_deref().filter(|t| !t.trim().is_empty()) {
            let common = DB::text_is_common(&self.read, text).await?;
            qb.push(" AND ");
            DB::push_text_match(&mut qb, text, common);
        }
        qb.push(" ORDER BY l.time_ms DESC, l.id DESC LIMIT ")
            .push_bind(i64::from(q.limit));
        let rows = qb.build().fetch_all(&self.read).await?;
        rows.iter()
            .map(|r| {
                Ok(LogRow {
                    id: r.try_get("id")?,
                    agent: r.try_get("agent")?,
                    time: time(r.try_get("time_ms")?)?,
                    source: r.try_get("source")?,
                    level: r.try_get("level")?,
                    text: r.try_get("text")?,
                })
            })
            .collect()
    }
}
