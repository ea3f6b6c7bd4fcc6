//! A batch read with a bound on its records, counted as they are parsed.
//!
//! The decompressed size bound (`max_decoded`) alone lets a batch of 64 MiB hold a million
//! small records, which take several times their JSON's size once parsed. Here the
//! `records` array is read one record at a time and the read stops at the first record past
//! the bound, so a batch of a million costs no more than the bound's worth of records.
//! Everything else reads as the derived `Deserialize` of [`Batch`] does: the same fields,
//! unknown ones refused, a duplicate refused.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::{Batch, Record};

/// Reads a [`Batch`] of at most `max_records` records; `over` is set when there were more.
pub(crate) struct BatchSeed<'a> {
    pub(crate) max_records: usize,
    pub(crate) over: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for BatchSeed<'_> {
    type Value = Batch;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Batch, D::Error> {
        const FIELDS: &[&str] = &["version", "agent", "batch_id", "records"];
        d.deserialize_struct("Batch", FIELDS, self)
    }
}

#[derive(serde::Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Field {
    Version,
    Agent,
    BatchId,
    Records,
}

impl<'de> Visitor<'de> for BatchSeed<'_> {
    type Value = Batch;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a batch: an object with version, agent, batch_id and records")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Batch, A::Error> {
        let (mut version, mut agent, mut batch_id, mut records) = (None, None, None, None);
        while let Some(key) = map.next_key::<Field>()? {
            match key {
                Field::Version if version.is_none() => version = Some(map.next_value()?),
                Field::Agent if agent.is_none() => agent = Some(map.next_value()?),
                Field::BatchId if batch_id.is_none() => batch_id = Some(map.next_value()?),
                Field::Records if records.is_none() => {
                    records = Some(map.next_value_seed(RecordsSeed {
                        max: self.max_records,
                        over: self.over,
                    })?);
                }
                Field::Version => return Err(de::Error::duplicate_field("version")),
                Field::Agent => return Err(de::Error::duplicate_field("agent")),
                Field::BatchId => return Err(de::Error::duplicate_field("batch_id")),
                Field::Records => return Err(de::Error::duplicate_field("records")),
            }
        }
        Ok(Batch {
            version: version.ok_or_else(|| de::Error::missing_field("version"))?,
            agent: agent.ok_or_else(|| de::Error::missing_field("agent"))?,
            batch_id: batch_id.ok_or_else(|| de::Error::missing_field("batch_id"))?,
            records: records.ok_or_else(|| de::Error::missing_field("records"))?,
        })
    }
}

/// The `records` array, read until it ends or holds one record more than `max`.
struct RecordsSeed<'a> {
    max: usize,
    over: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_> {
    type Value = Vec<Record>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<Record>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_> {
    type Value = Vec<Record>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Record>, A::Error> {
        // Never more room than the bound, whatever the input claims.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max).min(4096));
        while let Some(r) = seq.next_element::<Record>()? {
            if out.len() == self.max {
                self.over.set(true);
                return Err(de::Error::custom(format_args!(
                    "more than {} records",
                    self.max
                )));
            }
            out.push(r);
        }
        Ok(out)
    }
}
