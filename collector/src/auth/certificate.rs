//! An agent's client certificate, bound to the agent its token names (`[server.tls]
//! client_ca`). The accept loop verifies the certificate during the TLS handshake
//! (`crate::server::tls`) and gives each request of the connection its names as an
//! [`AgentCertificate`]; [`super::AgentAuth`] then holds the token's agent to them. The
//! extension is there only when `client_ca` is set, so an HTTP collector, or one without
//! client certificates, does no work here.
//!
//! The name rule is the modern one: the certificate's DNS subjectAltNames, compared with the
//! agent's name without regard to case; the subject's common name only when the certificate
//! has no DNS names at all.

use std::sync::Arc;

use crate::error::AppError;
use crate::state::{AppState, Credential};

/// The names of a connection's verified client certificate, given to each of its requests
/// when `[server.tls] client_ca` is set. `None`: the client sent no certificate.
#[derive(Debug, Clone)]
pub struct AgentCertificate(pub Option<Arc<[String]>>);

impl AgentCertificate {
    /// Whether the certificate names `agent` (DNS names compare without regard to case).
    pub fn names(&self, agent: &str) -> bool {
        self.0
            .as_ref()
            .is_some_and(|names| names.iter().any(|n| n.eq_ignore_ascii_case(agent)))
    }
}

/// An agent's token and its connection's client certificate name the same agent. The
/// built-in local agent is exempt: its token is made at each start and never leaves the
/// process, and it has no certificate to show.
pub(super) fn bound_to_certificate(
    state: &AppState,
    credential: &Credential,
    cert: &AgentCertificate,
) -> Result<(), AppError> {
    if state.is_local(credential) {
        return Ok(());
    }
    names_agent(cert, &credential.name)
}

/// The certificate names `agent`: else 401 without a certificate, 403 with another's. For
/// `POST /v1/enroll` too, where the agent's name is the one it asks for.
pub fn names_agent(cert: &AgentCertificate, agent: &str) -> Result<(), AppError> {
    if cert.names(agent) {
        return Ok(());
    }
    match &cert.0 {
        None => Err(AppError::Unauthorized(
            "this collector requires agents to present a client certificate signed by its \
             [server.tls] client_ca (set the agent's cert and key)"
                .into(),
        )),
        Some(names) => Err(AppError::Forbidden(format!(
            "the client certificate names {}, not agent {:?}: an agent's certificate must \
             name the agent its token belongs to",
            if names.is_empty() {
                "no one".to_string()
            } else {
                format!("{names:?}")
            },
            agent
        ))),
    }
}
