//! What an agent sends and what it is told: a batch in every `Content-Encoding` the collector
//! reads ([`batch`]), and an assignments document as the agent reads it ([`assignments`]).

use std::collections::BTreeMap;
use std::io::Write;

use lookout_protocol::{Assignments, Batch, Encoding, decode_batch, encode_batch};

use crate::input::Input;

/// The decompressed size the bodies allow: small, so a compression bomb is refused quickly.
const MAX_DECODED: usize = 1 << 20;

/// First byte: how the rest is sent. 0-2: as it is, claimed to be identity, gzip or zstd
/// (the decompressors meet hostile bytes); 3-4: compressed here with gzip or zstd, so the
/// fuzzer's JSON reaches the parser through each decompressor; 5: the rest is a
/// `Content-Encoding` header value. A batch that decodes must encode and decode again to the
/// same batch, in every encoding.
pub fn batch(data: &[u8]) {
    let mut input = Input::new(data);
    let how = input.choose(6);
    let rest = input.rest();
    let (body, encoding) = match how {
        0 => (rest.to_vec(), Encoding::Identity),
        1 => (rest.to_vec(), Encoding::Gzip),
        2 => (rest.to_vec(), Encoding::Zstd),
        3 => (gzip(rest), Encoding::Gzip),
        4 => (zstd(rest), Encoding::Zstd),
        _ => {
            if let Ok(value) = std::str::from_utf8(rest)
                && let Ok(e) = Encoding::from_header(Some(value))
            {
                assert_eq!(Encoding::from_header(Some(e.header_value())).ok(), Some(e));
            }
            return;
        }
    };
    let Ok(decoded) = decode_batch(&body, encoding, MAX_DECODED) else {
        return;
    };
    round_trip(&decoded);
}

/// No limit, for the round trip: a batch's own JSON may be longer than the input it was read
/// from (`1e9` comes back as `1000000000.0`).
const ANY_SIZE: usize = usize::MAX / 2;

fn round_trip(batch: &Batch) {
    for encoding in [Encoding::Identity, Encoding::Gzip, Encoding::Zstd] {
        let encoded = encode_batch(batch, encoding).expect("a decoded batch encodes");
        let again = decode_batch(&encoded, encoding, ANY_SIZE).expect("and decodes again");
        assert_eq!(&again, batch, "{encoding:?} round trip");
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 1).expect("compressing in memory")
}

/// An assignments answer as the agent reads it: leniently, then each check validated, asked
/// where it runs and merged with a local check, as the agent's scheduler does. A document that
/// reads must read again the same from its own JSON.
pub fn assignments(data: &[u8]) {
    let Ok((doc, _skipped)) = Assignments::decode_lenient(data) else {
        return;
    };
    let labels = BTreeMap::from([("role".to_string(), "web".to_string())]);
    for check in &doc.checks {
        let _ = check.problems();
        let _ = check.retry_interval();
        let _ = check.has_secrets();
        let _ = check.runs_on("web-1", &labels);
    }
    let local = doc.checks.first().cloned().into_iter().collect::<Vec<_>>();
    let merged = lookout_agent::merge(&local, doc.checks.clone());
    assert!(merged.len() <= doc.checks.len() + local.len());
    let json = serde_json::to_vec(&doc).expect("assignments serialise");
    let (again, skipped) = Assignments::decode_lenient(&json).expect("and read again");
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(again, doc);
}
