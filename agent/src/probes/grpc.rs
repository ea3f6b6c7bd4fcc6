//! The `grpc` probe: gRPC's standard health checking protocol, one unary call of
//! `grpc.health.v1.Health/Check` over HTTP/2 (in the clear with prior knowledge for `grpc://`,
//! over TLS with ALPN `h2` for `grpcs://`). Up when the answer's status is `SERVING`, unless a
//! condition tests `[BODY]`, which then decides alone (as `[STATUS]` does for `http`).
//!
//! # On the wire
//!
//! The request is `POST /grpc.health.v1.Health/Check` with `content-type: application/grpc` and
//! `te: trailers`; its body is one gRPC message: a flag byte (0, not compressed), the message's
//! length as a big-endian u32, then the protobuf `HealthCheckRequest { string service = 1; }`
//! (for a non-empty service: tag `0x0a`, the length as a varint, the name's UTF-8). An empty
//! service is the empty message, as proto3 omits default values.
//!
//! The answer is HTTP 200 with one such message, `HealthCheckResponse { ServingStatus status =
//! 1; }` (a varint: 0 `UNKNOWN`, 1 `SERVING`, 2 `NOT_SERVING`, 3 `SERVICE_UNKNOWN`), then the
//! trailers `grpc-status` (0 is OK) and `grpc-message` (percent-encoded). A failed call may be
//! "trailers only": the status in the headers and no body. Fields other than 1 are skipped, as
//! protobuf requires; a message over [`MAX_BODY`] is refused.
//!
//! `[BODY]` is the serving status's name, `[STATUS]` the HTTP status, and `[HEADER].grpc-status`
//! / `[HEADER].grpc-message` the trailers (with the headers).

use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lookout_config::CheckConfig;
use lookout_config::check_kinds::grpc_target;
use lookout_config::condition::Placeholder;

use super::Outcome;
use super::net::{self, Alpn, Tls, ms_since};

/// Most bytes of the answer's body read; a health answer is 7.
pub const MAX_BODY: usize = 64 << 10;

/// The method called.
const PATH: &str = "/grpc.health.v1.Health/Check";

/// Runs one probe of `check`, filling `out` (its timeout is enforced by the caller).
pub async fn probe(
    tls: &Tls,
    user_agent: &str,
    check: &CheckConfig,
    out: &mut Outcome,
) -> Result<(), String> {
    let target =
        grpc_target(check.url.as_deref().unwrap_or_default()).map_err(|e| format!("url {e}"))?;
    let tls = target.tls.then_some((tls, Alpn::H2));
    let io = net::open(tls, check, (&target.host, target.port), &target.host, out).await?;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .map_err(|e| format!("HTTP/2: {}", lookout_runtime::error_chain(&e)))?;
    let driver = tokio::spawn(conn);
    let result = call(&mut sender, &target, user_agent, check, out).await;
    driver.abort();
    result
}

async fn call(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    target: &lookout_config::check_kinds::GrpcTarget,
    user_agent: &str,
    check: &CheckConfig,
    out: &mut Outcome,
) -> Result<(), String> {
    let scheme = if target.tls { "https" } else { "http" };
    let host = if target.host.contains(':') {
        format!("[{}]", target.host)
    } else {
        target.host.clone()
    };
    let request = hyper::Request::post(format!("{scheme}://{host}:{}{PATH}", target.port))
        .header(hyper::header::CONTENT_TYPE, "application/grpc")
        .header(hyper::header::TE, "trailers")
        .header(hyper::header::USER_AGENT, user_agent)
        .body(Full::new(Bytes::from(encode_request(
            check.service.as_deref().unwrap_or_default(),
        ))))
        .map_err(|e| format!("building the request: {e}"))?;
    let sent = Instant::now();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP/2: {}", lookout_runtime::error_chain(&e)))?;
    out.timings.ttfb_ms = Some(ms_since(sent));
    let status = response.status().as_u16();
    out.status_code = Some(status);
    out.seen.status = Some(status);
    out.seen.headers = net::header_pairs(response.headers());
    if status != 200 {
        return Err(format!(
            "HTTP status {status}, expected 200 from a gRPC server"
        ));
    }
    let mut body = response.into_body();
    let mut message = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("reading the answer: {e}"))?;
        match frame.into_data() {
            Ok(data) => {
                if message.len() + data.len() > MAX_BODY {
                    return Err(format!("the answer is over {MAX_BODY} bytes"));
                }
                message.extend_from_slice(&data);
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    out.seen.headers.extend(net::header_pairs(&trailers));
                }
            }
        }
    }
    let header = |name: &str| {
        out.seen
            .headers
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(code) = header("grpc-status") else {
        return Err("the answer has no grpc-status: not a gRPC server?".to_string());
    };
    if code != "0" {
        let name = code.parse().ok().map_or("?", status_code_name);
        let text = header("grpc-message")
            .map(percent_decode)
            .unwrap_or_default();
        return Err(if text.is_empty() {
            format!("grpc-status {code} ({name})")
        } else {
            format!("grpc-status {code} ({name}): {text}")
        });
    }
    let serving = decode_response(&message)?;
    let name = serving_status_name(serving);
    out.seen.body = Some(name.clone().into_bytes());
    let conditions_judge = check
        .conditions
        .iter()
        .any(|c| c.placeholder() == Placeholder::Body);
    if serving == SERVING || conditions_judge {
        Ok(())
    } else {
        Err(format!("serving status {name}, expected SERVING"))
    }
}

/// `ServingStatus.SERVING`.
pub const SERVING: u64 = 1;

/// The request's body: one gRPC message holding `HealthCheckRequest { service }`.
pub fn encode_request(service: &str) -> Vec<u8> {
    let mut message = Vec::with_capacity(service.len() + 6);
    if !service.is_empty() {
        message.push(0x0a);
        put_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    framed
}

/// The serving status in a body of one gRPC message holding a `HealthCheckResponse`.
pub fn decode_response(body: &[u8]) -> Result<u64, String> {
    let [flag, a, b, c, d, message @ ..] = body else {
        return Err(format!(
            "the answer has no gRPC message ({} bytes)",
            body.len()
        ));
    };
    if *flag != 0 {
        return Err("the answer's message is compressed, which was not asked for".to_string());
    }
    let length = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
    if length != message.len() {
        return Err(format!(
            "the answer's message says {length} bytes and has {}",
            message.len()
        ));
    }
    let mut status = 0;
    let mut at = message;
    while !at.is_empty() {
        let key = take_varint(&mut at)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let v = take_varint(&mut at)?;
                if field == 1 {
                    status = v;
                }
            }
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                at = at.get(n..).ok_or(TRUNCATED)?;
            }
            2 => {
                let n = usize::try_from(take_varint(&mut at)?).map_err(|_| TRUNCATED)?;
                at = at.get(n..).ok_or(TRUNCATED)?;
            }
            other => return Err(format!("unexpected protobuf wire type {other}")),
        }
    }
    Ok(status)
}

const TRUNCATED: &str = "the answer's message is cut short";

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(at: &mut &[u8]) -> Result<u64, String> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&byte, rest) = at.split_first().ok_or(TRUNCATED)?;
        *at = rest;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("a protobuf varint is longer than 10 bytes".to_string())
}

/// `ServingStatus`'s name for `v`.
pub fn serving_status_name(v: u64) -> String {
    match v {
        0 => "UNKNOWN".to_string(),
        1 => "SERVING".to_string(),
        2 => "NOT_SERVING".to_string(),
        3 => "SERVICE_UNKNOWN".to_string(),
        other => format!("UNKNOWN_STATUS_{other}"),
    }
}

/// The name of gRPC status code `code`.
fn status_code_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.get(code as usize).copied().unwrap_or("?")
}

/// `grpc-message`'s percent-encoding undone (invalid escapes kept as they are), at most 500
/// characters of it.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn requests_are_framed_protobuf() {
        // The empty message: the whole server's health.
        assert_eq!(encode_request(""), [0, 0, 0, 0, 0]);
        // Field 1, wire type 2 (0x0a), length 3, "foo"; framed with its length 5.
        assert_eq!(
            encode_request("foo"),
            [0, 0, 0, 0, 5, 0x0a, 3, b'f', b'o', b'o']
        );
        // A 200-byte name: its length is a two-byte varint (0xc8 0x01).
        let long = "s".repeat(200);
        let framed = encode_request(&long);
        assert_eq!(&framed[..7], [0, 0, 0, 0, 203, 0x0a, 0xc8]);
        assert_eq!(framed[7], 0x01);
        assert_eq!(framed.len(), 5 + 203);
    }

    #[test]
    fn responses_are_read_and_bad_ones_refused() {
        // status = SERVING (field 1, varint): 0x08 0x01.
        assert_eq!(decode_response(&[0, 0, 0, 0, 2, 0x08, 1]), Ok(1));
        assert_eq!(decode_response(&[0, 0, 0, 0, 2, 0x08, 2]), Ok(2));
        // The default (UNKNOWN) is omitted in proto3: an empty message.
        assert_eq!(decode_response(&[0, 0, 0, 0, 0]), Ok(0));
        // Unknown fields of each wire type are skipped.
        let mut m = vec![0x10, 7, 0x1a, 2, b'h', b'i', 0x25, 1, 2, 3, 4];
        m.extend([0x29, 1, 2, 3, 4, 5, 6, 7, 8, 0x08, 1]);
        let mut framed = vec![0, 0, 0, 0, m.len() as u8];
        framed.extend(&m);
        assert_eq!(decode_response(&framed), Ok(1));
        for (bad, says) in [
            (&[][..], "no gRPC message"),
            (&[1, 0, 0, 0, 2, 0x08, 1][..], "compressed"),
            (&[0, 0, 0, 0, 3, 0x08, 1][..], "says 3 bytes and has 2"),
            (&[0, 0, 0, 0, 1, 0x08][..], "cut short"),
            (&[0, 0, 0, 0, 2, 0x1a, 5][..], "cut short"),
            (&[0, 0, 0, 0, 1, 0x0b][..], "wire type 3"),
        ] {
            let e = decode_response(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        let mut eleven = vec![0, 0, 0, 0, 12, 0x08];
        eleven.extend([0xff; 11]);
        assert!(decode_response(&eleven).unwrap_err().contains("10 bytes"));
    }

    #[test]
    fn names_and_messages_read_as_grpc_says() {
        assert_eq!(serving_status_name(2), "NOT_SERVING");
        assert_eq!(serving_status_name(9), "UNKNOWN_STATUS_9");
        assert_eq!(status_code_name(5), "NOT_FOUND");
        assert_eq!(status_code_name(12), "UNIMPLEMENTED");
        assert_eq!(status_code_name(99), "?");
        assert_eq!(
            percent_decode("unknown%20service%3A x"),
            "unknown service: x"
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%C3%A9"), "%zzé");
    }

    /// What a hand-made HTTP/2 server answers: status, body, trailers.
    type Answer = (u16, Vec<u8>, Vec<(&'static str, &'static str)>);

    /// An HTTP/2 server (hyper's) on loopback that checks each request as the health protocol
    /// says one must look, then gives `answer`. Returns its `grpc://` URL.
    async fn server(answer: Answer) -> String {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("grpc://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (status, body, trailers) = answer.clone();
                async move {
                    assert_eq!(req.method(), hyper::Method::POST);
                    assert_eq!(req.uri().path(), PATH);
                    assert_eq!(req.headers()["content-type"], "application/grpc");
                    assert_eq!(req.headers()["te"], "trailers");
                    let sent = req.into_body().collect().await.unwrap().to_bytes();
                    assert_eq!(sent.as_ref(), encode_request("svc"));
                    let mut map = hyper::HeaderMap::new();
                    for (n, v) in trailers {
                        map.insert(n, v.parse().unwrap());
                    }
                    let body =
                        Full::new(Bytes::from(body)).with_trailers(async move { Some(Ok(map)) });
                    Ok::<_, std::convert::Infallible>(
                        hyper::Response::builder()
                            .status(status)
                            .body(body)
                            .unwrap(),
                    )
                }
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        url
    }

    async fn run(answer: Answer, conditions: &[&str]) -> Result<Outcome, String> {
        let url = server(answer).await;
        let check: CheckConfig = serde_json::from_value(serde_json::json!({
            "name": "g", "type": "grpc", "url": url, "service": "svc", "conditions": conditions,
        }))
        .unwrap();
        let mut out = Outcome::default();
        probe(&Tls::new(), "test", &check, &mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn an_answer_is_read_with_its_trailers() {
        let serving = vec![0, 0, 0, 0, 2, 0x08, 1];
        let out = run((200, serving, vec![("grpc-status", "0")]), &[])
            .await
            .unwrap();
        assert_eq!(out.seen.body.as_deref(), Some(&b"SERVING"[..]));
        assert!(
            out.seen
                .headers
                .contains(&("grpc-status".into(), "0".into()))
        );
        let not = vec![0, 0, 0, 0, 2, 0x08, 2];
        let e = run((200, not.clone(), vec![("grpc-status", "0")]), &[])
            .await
            .unwrap_err();
        assert_eq!(e, "serving status NOT_SERVING, expected SERVING");
        // A [BODY] condition decides instead of the default.
        let out = run(
            (200, not, vec![("grpc-status", "0")]),
            &["[BODY] == NOT_SERVING"],
        )
        .await
        .unwrap();
        assert_eq!(out.seen.body.as_deref(), Some(&b"NOT_SERVING"[..]));
    }

    #[tokio::test]
    async fn failures_say_what_the_server_answered() {
        let trailers = vec![
            ("grpc-status", "12"),
            ("grpc-message", "Method%20not%20found%21"),
        ];
        let e = run((200, vec![], trailers), &[]).await.unwrap_err();
        assert_eq!(e, "grpc-status 12 (UNIMPLEMENTED): Method not found!");
        let e = run((404, vec![], vec![]), &[]).await.unwrap_err();
        assert_eq!(e, "HTTP status 404, expected 200 from a gRPC server");
        let e = run((200, vec![0, 0, 0, 0, 2, 0x08, 1], vec![]), &[])
            .await
            .unwrap_err();
        assert_eq!(e, "the answer has no grpc-status: not a gRPC server?");
        let e = run(
            (200, vec![0; MAX_BODY + 1], vec![("grpc-status", "0")]),
            &[],
        )
        .await
        .unwrap_err();
        assert_eq!(e, "the answer is over 65536 bytes");
    }

    proptest! {
        #[test]
        fn no_bytes_make_the_decoder_panic(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_response(&body);
            let _ = percent_decode(&String::from_utf8_lossy(&body));
        }

        #[test]
        fn a_request_s_service_reads_back(service in "[a-zA-Z0-9._]{0,300}") {
            let framed = encode_request(&service);
            let mut at = &framed[5..];
            prop_assert_eq!(u32::from_be_bytes(framed[1..5].try_into().unwrap()) as usize, at.len());
            if !service.is_empty() {
                prop_assert_eq!(take_varint(&mut at).unwrap(), 0x0a);
                prop_assert_eq!(take_varint(&mut at).unwrap() as usize, service.len());
                prop_assert_eq!(at, service.as_bytes());
            }
        }
    }
}
