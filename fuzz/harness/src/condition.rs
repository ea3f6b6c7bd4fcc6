//! A check's `conditions` (`"[BODY].items[0].id == 3"`): parsed as the configuration loads
//! them, then evaluated against what a probe could have seen, built from the same input.

use std::time::Duration;

use lookout_config::{Condition, Observation};

use crate::input::Input;

/// Input: the condition's text up to a newline; then a byte of flags (which fields the
/// observation fills), two bytes of status and the rest as the body (a header's value and the
/// DNS code are taken from the body's first line). A condition that parses must display as
/// its text and parse again to the same condition.
pub fn condition(data: &[u8]) {
    let mut input = Input::new(data);
    let Ok(text) = std::str::from_utf8(input.until(b'\n')) else {
        return;
    };
    let Ok(condition) = Condition::parse(text) else {
        return;
    };
    assert_eq!(
        Condition::parse(&condition.to_string()).as_ref(),
        Ok(&condition)
    );
    let flags = input.byte();
    let status = input.u16();
    let body = input.rest();
    let first_line = String::from_utf8_lossy(body.split(|b| *b == b'\n').next().unwrap_or(&[]));
    let mut seen = Observation::default();
    seen.status = (flags & 1 != 0).then_some(status);
    seen.response_time_ms = f64::from(status) / 7.0;
    seen.body = (flags & 2 != 0).then(|| body.to_vec());
    if flags & 4 != 0 {
        seen.headers = vec![("content-type".into(), first_line.to_string())];
    }
    seen.certificate_expiration =
        (flags & 8 != 0).then(|| Duration::from_secs(u64::from(status) * 3600));
    seen.dns_rcode = (flags & 16 != 0).then(|| first_line.to_string());
    seen.connected = flags & 32 != 0;
    seen.ip = (flags & 64 != 0).then(|| "127.0.0.1".into());
    seen.domain_expiration =
        (flags & 128 != 0).then(|| Duration::from_secs(u64::from(status) * 86_400));
    if let Err(failed) = condition.evaluate(&seen) {
        assert!(failed.starts_with(text), "{failed:?} names {text:?}");
    }
}
