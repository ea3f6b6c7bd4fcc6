//! The holder of a link to acknowledge an alert (`/ack/{token}`, [`crate::notify::link`]): the
//! token in the path is the credential, checked before the handler runs. A token that is not
//! one, or was not signed with this Lookout's key, is refused with 403; an expired one with
//! 410. Whether the alert it names still fires is the handler's to say.
//!
//! The button's `POST` must also come from a page of this site: its `Origin` names the host it
//! was sent to, or `[server] public_url` (behind a proxy that rewrites `Host`), as the admin
//! pages' forms ([`super::AdminForm`]). Nothing else guards it, and nothing else needs to: the
//! token is in the path, so another site's page cannot make a working form without it.

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::header;
use axum::http::request::Parts;

use crate::notify::link::{LinkError, Signed};
use crate::state::AppState;

/// Someone holding a good link: what its token names.
#[derive(Debug, Clone, Copy)]
pub struct LinkHolder(pub Signed);

/// Someone holding a good link, posting its page's form from this site.
#[derive(Debug, Clone, Copy)]
pub struct LinkForm(pub Signed);

/// Why a link was refused; `web` renders each as a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefusal {
    /// The token is refused (403; 410 when it expired).
    Token(LinkError),
    /// The form was sent from another site's page (403).
    CrossSite,
}

async fn signed(parts: &mut Parts, state: &Arc<AppState>) -> Result<Signed, LinkRefusal> {
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|_| LinkRefusal::Token(LinkError::Malformed))?;
    let token = params
        .iter()
        .find(|(key, _)| *key == "token")
        .map(|(_, value)| value)
        .ok_or(LinkRefusal::Token(LinkError::Malformed))?;
    state
        .notifier
        .links()
        .key()
        .verify(token, crate::clock::now())
        .map_err(LinkRefusal::Token)
}

impl FromRequestParts<Arc<AppState>> for LinkHolder {
    type Rejection = LinkRefusal;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        signed(parts, state).await.map(LinkHolder)
    }
}

impl FromRequestParts<Arc<AppState>> for LinkForm {
    type Rejection = LinkRefusal;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let public = state.config().server.public_url.clone();
        let from_public_url = |origin: &str| {
            public.as_deref().is_some_and(|u| {
                let u = u.trim_end_matches('/');
                // The public URL's origin: scheme, host and port, without a path.
                let end = u
                    .find("://")
                    .and_then(|i| u[i + 3..].find('/').map(|j| i + 3 + j))
                    .unwrap_or(u.len());
                origin.eq_ignore_ascii_case(&u[..end])
            })
        };
        let origin = parts
            .headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        if !(super::session::from_this_site(&parts.headers) || origin.is_some_and(from_public_url))
        {
            return Err(LinkRefusal::CrossSite);
        }
        signed(parts, state).await.map(LinkForm)
    }
}
