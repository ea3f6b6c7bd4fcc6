//! The SQL implementation of [`EnrolledStore`]: the enrolled agents' table (schema v11).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lookout_config::{Token, TokenDigest};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::values::{ms, time};
use super::{Backend, RowsAffected, SqlStore};
use crate::store::StoreError;
use crate::store::enrolled::{Enrolled, EnrolledRow, EnrolledStore};

const COLUMNS: &str = "name, token_sha256, previous_sha256, previous_until_ms, rotation_pending, \
     lifecycle, enrolled_ms, rotated_ms, revoked_ms, reenroll_until_ms";

fn digest(hex: &str) -> Result<TokenDigest, StoreError> {
    TokenDigest::from_hex(hex).map_err(|e| StoreError::Corrupt(format!("a credential digest: {e}")))
}

fn at(ms: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    ms.map(time).transpose()
}

fn row<R: Row>(r: &R) -> Result<EnrolledRow, StoreError>
where
    for<'a> &'a str: ColumnIndex<R>,
    for<'a> String: Type<R::Database> + Decode<'a, R::Database>,
    for<'a> i64: Type<R::Database> + Decode<'a, R::Database>,
{
    Ok(EnrolledRow {
        name: r.try_get("name")?,
        token_sha256: digest(&r.try_get::<String, _>("token_sha256")?)?,
        previous_sha256: r
            .try_get::<Option<String>, _>("previous_sha256")?
            .as_deref()
            .map(digest)
            .transpose()?,
        previous_until: at(r.try_get("previous_until_ms")?)?,
        rotation_pending: r
            .try_get::<Option<String>, _>("rotation_pending")?
            .map(Token::new),
        lifecycle: r.try_get("lifecycle")?,
        enrolled: time(r.try_get("enrolled_ms")?)?,
        rotated: at(r.try_get("rotated_ms")?)?,
        revoked: at(r.try_get("revoked_ms")?)?,
        reenroll_until: at(r.try_get("reenroll_until_ms")?)?,
    })
}

#[async_trait]
impl<DB> EnrolledStore for SqlStore<DB>
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
    async fn enrolled_agents(&self) -> Result<Vec<EnrolledRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM enrolled_agents ORDER BY name");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(row).collect()
    }

    async fn enrolled_agent(&self, name: &str) -> Result<Option<EnrolledRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM enrolled_agents WHERE name = $1");
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        found.as_ref().map(row).transpose()
    }

    async fn enrolled_generation(&self) -> Result<(i64, i64), StoreError> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(version), 0) AS BIGINT) AS v FROM enrolled_agents",
        )
        .fetch_one(&self.read)
        .await?;
        Ok((r.try_get("n")?, r.try_get("v")?))
    }

    async fn enroll(
        &self,
        name: &str,
        digest: &TokenDigest,
        lifecycle: &str,
        now: DateTime<Utc>,
    ) -> Result<Enrolled, StoreError> {
        // One statement: the permission's check and its use cannot be split by another
        // collector's enrolment of the same name.
        let done = sqlx::query(
            "INSERT INTO enrolled_agents (name, token_sha256, lifecycle, enrolled_ms)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET token_sha256 = excluded.token_sha256,
               previous_sha256 = NULL, previous_until_ms = NULL, rotation_pending = NULL,
               lifecycle = excluded.lifecycle, enrolled_ms = excluded.enrolled_ms,
               rotated_ms = NULL, revoked_ms = NULL, reenroll_until_ms = NULL,
               version = enrolled_agents.version + 1
             WHERE enrolled_agents.reenroll_until_ms > $4",
        )
        .bind(name)
        .bind(digest.to_hex())
        .bind(lifecycle)
        .bind(ms(&now))
        .execute(&self.write)
        .await?;
        Ok(if done.rows_affected() == 1 {
            Enrolled::Done
        } else {
            Enrolled::Taken
        })
    }

    async fn revoke_enrolled(&self, name: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE enrolled_agents SET revoked_ms = COALESCE(revoked_ms, $2),
               previous_sha256 = NULL, previous_until_ms = NULL, rotation_pending = NULL,
               version = version + 1
             WHERE name = $1",
        )
        .bind(name)
        .bind(ms(&now))
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn rotate_enrolled(
        &self,
        name: &str,
        new: &Token,
        previous_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE enrolled_agents SET previous_sha256 = token_sha256, token_sha256 = $2,
               previous_until_ms = $3, rotation_pending = $4, rotated_ms = $5,
               version = version + 1
             WHERE name = $1 AND revoked_ms IS NULL",
        )
        .bind(name)
        .bind(new.digest().to_hex())
        .bind(ms(&previous_until))
        .bind(new.expose())
        .bind(ms(&now))
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn rotation_taken(&self, name: &str, digest: &TokenDigest) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE enrolled_agents SET rotation_pending = NULL, version = version + 1
             WHERE name = $1 AND token_sha256 = $2 AND rotation_pending IS NOT NULL",
        )
        .bind(name)
        .bind(digest.to_hex())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn allow_reenroll(&self, name: &str, until: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE enrolled_agents SET reenroll_until_ms = $2, version = version + 1
             WHERE name = $1",
        )
        .bind(name)
        .bind(ms(&until))
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
