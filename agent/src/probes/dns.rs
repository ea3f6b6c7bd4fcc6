//! The `dns` probe: one query of `record` for `query`, to the check's `resolver` or
//! the system's, through hickory-resolver with its cache off (every probe asks the server).
//! Up when the response code is the expected one (default `NOERROR`), the answer has records of
//! that type, and every `expected` value is among them. `[BODY]` is the answers, joined by `, `.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use lookout_config::CheckConfig;
use lookout_config::condition::Placeholder;

use super::Outcome;
use super::net::ms_since;

/// One resolver per server asked (`None`: the system's), built when first needed.
#[derive(Debug, Clone, Default)]
pub struct Resolvers {
    by_server: Arc<Mutex<HashMap<Option<SocketAddr>, TokioResolver>>>,
}

impl Resolvers {
    fn get(&self, server: Option<SocketAddr>) -> Result<TokioResolver, String> {
        let mut map = self.by_server.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = map.get(&server) {
            return Ok(r.clone());
        }
        let mut builder = match server {
            Some(addr) => {
                let mut conn = ConnectionConfig::udp();
                conn.port = addr.port();
                let ns = NameServerConfig::new(addr.ip(), true, vec![conn]);
                Resolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![ns]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => Resolver::builder_tokio()
                .map_err(|e| format!("reading the system's resolver settings: {e}"))?,
        };
        let opts = builder.options_mut();
        // Every probe asks the server; the check's timeout bounds the whole probe.
        opts.cache_size = 0;
        opts.timeout = Duration::from_secs(30);
        opts.attempts = 1;
        opts.ndots = 0;
        // A DNS check asks the DNS: /etc/hosts would answer for it (and hide a dead server).
        opts.use_hosts_file = ResolveHosts::Never;
        let resolver = builder
            .build()
            .map_err(|e| format!("building the resolver: {e}"))?;
        map.insert(server, resolver.clone());
        Ok(resolver)
    }

    /// Runs one probe of `check`, filling `out` (its timeout is enforced by the caller).
    pub async fn probe(&self, check: &CheckConfig, out: &mut Outcome) -> Result<(), String> {
        let server = match check.resolver.as_deref() {
            None => None,
            Some(r) => Some(match r.parse::<SocketAddr>() {
                Ok(a) => a,
                Err(_) => SocketAddr::new(
                    r.parse::<IpAddr>()
                        .map_err(|_| format!("resolver {r:?} is not an address"))?,
                    53,
                ),
            }),
        };
        let resolver = self.get(server)?;
        let mut name = check.query.clone().unwrap_or_default();
        if !name.ends_with('.') {
            name.push('.');
        }
        let qname =
            Name::from_str(&name).map_err(|e| format!("{name:?} is not a DNS name: {e}"))?;
        let rtype = record_type(check.record);
        let started = Instant::now();
        let result = resolver.lookup(qname, rtype).await;
        out.timings.dns_ms = Some(ms_since(started));
        let (rcode, answers) = match result {
            Ok(l) => (
                l.message().response_code,
                l.answers()
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .map(|r| r.data.to_string())
                    .collect::<Vec<_>>(),
            ),
            Err(NetError::Dns(DnsError::NoRecordsFound(nr))) => (nr.response_code, Vec::new()),
            Err(NetError::Dns(DnsError::ResponseCode(rc))) => (rc, Vec::new()),
            Err(e) => return Err(format!("query for {name} {rtype}: {e}")),
        };
        out.seen.connected = true;
        let rcode = rcode_name(rcode);
        out.seen.dns_rcode = Some(rcode.clone());
        out.seen.body = Some(answers.join(", ").into_bytes());
        let conditions_judge =
            |p: Placeholder| check.conditions.iter().any(|c| c.placeholder() == p);
        match &check.rcode {
            Some(want) if *want != rcode => {
                return Err(format!("response code {rcode}, expected {want}"));
            }
            None if rcode != "NOERROR" && !conditions_judge(Placeholder::DnsRcode) => {
                return Err(format!("response code {rcode} for {name} {rtype}"));
            }
            _ => {}
        }
        if rcode == "NOERROR"
            && answers.is_empty()
            && check.rcode.is_none()
            && !conditions_judge(Placeholder::DnsRcode)
            && !conditions_judge(Placeholder::Body)
        {
            return Err(format!("no {rtype} record for {name}"));
        }
        let normal = |s: &str| s.trim().trim_end_matches('.').to_ascii_lowercase();
        let have: Vec<String> = answers.iter().map(|a| normal(a)).collect();
        let missing: Vec<&String> = check
            .expected
            .iter()
            .filter(|e| !have.contains(&normal(e)))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "expected {} among the answers, got [{}]",
                missing
                    .iter()
                    .map(|m| format!("{m:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                answers.join(", ")
            ));
        }
        Ok(())
    }
}

fn record_type(t: lookout_config::RecordType) -> RecordType {
    use lookout_config::RecordType as C;
    match t {
        C::A => RecordType::A,
        C::Aaaa => RecordType::AAAA,
        C::Cname => RecordType::CNAME,
        C::Mx => RecordType::MX,
        C::Txt => RecordType::TXT,
        C::Ns => RecordType::NS,
    }
}

/// The code's name as DNS tools print it (`NXDOMAIN`; hickory's own text is "Non-Existent
/// Domain").
fn rcode_name(rc: ResponseCode) -> String {
    match rc {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::YXDomain => "YXDOMAIN".into(),
        ResponseCode::YXRRSet => "YXRRSET".into(),
        ResponseCode::NXRRSet => "NXRRSET".into(),
        ResponseCode::NotAuth => "NOTAUTH".into(),
        other => format!("RCODE{}", u16::from(other)),
    }
}
