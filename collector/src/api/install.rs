//! `GET /install.sh` and `GET /downloads/{file}`: what installs an agent with one command
//! ([`crate::install`] says what each serves).
//!
//! Both are public: the script and the binary hold nothing secret (the enrolment token is
//! given to the script on the server being installed and sent only to enrol), and a server
//! being installed has no credential yet.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::Public;
use crate::error::AppError;
use crate::install::{downloads, script};
use crate::server::tls::TlsError;
use crate::server::tls::files;
use crate::state::AppState;

/// The `[install] agent_ca` bundle as text, checked to hold at least one certificate and
/// nothing but PEM (at most [`files::MAX_PEM_BYTES`] read). Blocking.
pub fn agent_ca(path: &Path) -> Result<String, TlsError> {
    let bytes = files::read_bounded(path)?;
    let text = String::from_utf8(bytes).map_err(|_| TlsError::NoCertificate {
        path: path.to_path_buf(),
    })?;
    // The same parse the agent will make of it: a bundle it could not use is refused here.
    files::read_certificates(path)?;
    Ok(text)
}

/// `GET /install.sh`: the install script for this collector ([`script`]). `no-store`: it is
/// written for the address the request used, which no shared cache should hand to another.
pub async fn install_script(
    State(state): State<Arc<AppState>>,
    _: Public,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let config = state.config();
    let url = match &config.server.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| script::host_is_plain(h))
                .ok_or_else(|| {
                    AppError::BadRequest(
                        "the request's Host header is not a host name and port, so this \
                         collector cannot write its address into the script: set [server] \
                         public_url to the address agents reach it at"
                            .into(),
                    )
                })?;
            let scheme = if config.server.tls.is_some() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{host}")
        }
    };
    let ca = match config.install.agent_ca.clone() {
        None => String::new(),
        Some(path) => tokio::task::spawn_blocking(move || agent_ca(&path))
            .await
            .map_err(|e| AppError::Unavailable(format!("reading [install] agent_ca: {e}")))?
            .map_err(|e| {
                tracing::warn!(error = %e, "GET /install.sh: [install] agent_ca cannot be used");
                AppError::Unavailable(
                    "the collector cannot read its [install] agent_ca; its log says why".into(),
                )
            })?,
    };
    let body = script::render(&script::Values { url: &url, ca: &ca });
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response())
}

/// `GET /downloads/{file}`: an agent binary, streamed from its file, or its SHA-256
/// ([`downloads`]).
pub async fn download(
    State(state): State<Arc<AppState>>,
    _: Public,
    UrlPath(file): UrlPath<String>,
) -> Result<Response, AppError> {
    let wanted = downloads::parse(&file).ok_or_else(|| {
        AppError::NotFound(format!(
            "no such download: this collector serves {}<arch> (<arch> as `uname -m` prints it: \
             x86_64, aarch64, ...) and <that>.sha256",
            downloads::PREFIX
        ))
    })?;
    let config = state.config();
    let folder = downloads::folder(config.install.binaries.as_deref()).ok_or_else(|| {
        AppError::NotFound(
            "the collector cannot tell the folder of its own executable: set [install] \
             binaries to the folder that holds the agent binaries"
                .into(),
        )
    })?;
    let missing = || {
        AppError::NotFound(format!(
            "this collector has no agent for Linux {arch}: put the agent built for it at {} \
             (the folder is [install] binaries)",
            folder.join(wanted.binary_name()).display(),
            arch = wanted.arch
        ))
    };
    let path = downloads::find(&folder, &wanted).ok_or_else(missing)?;
    if wanted.checksum {
        let sums = state.checksums.clone();
        let at = path.clone();
        let sum = tokio::task::spawn_blocking(move || sums.of(&at))
            .await
            .map_err(|e| AppError::Unavailable(format!("hashing the agent binary: {e}")))?
            .map_err(|e| {
                tracing::warn!(file = %path.display(), error = %e, "cannot hash an agent binary");
                missing()
            })?;
        return Ok((
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            format!("{sum}  {}\n", wanted.binary_name()),
        )
            .into_response());
    }
    let file = tokio::fs::File::open(&path).await.map_err(|e| {
        tracing::warn!(file = %path.display(), error = %e, "cannot open an agent binary");
        missing()
    })?;
    let len = file.metadata().await.map_err(|_| missing())?.len();
    // Read in pieces as the client takes them: the binary is never whole in memory.
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 64 << 10));
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}
