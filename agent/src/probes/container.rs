//! The `container` probe: through the Docker Engine API on its unix socket (the check's `url`,
//! default `unix:///var/run/docker.sock`; podman's `podman system service` serves the same
//! API), the named container (`container`), or the containers of a Compose service
//! (`compose_service`, optionally `compose_project`), must be running and, when it has a health
//! check, healthy. For a service, one such container is enough; the error names each one's
//! state otherwise.

use std::time::Instant;

use lookout_config::CheckConfig;
use lookout_config::integration::DEFAULT_CONTAINERS_URL;

use super::Outcome;
use super::net::ms_since;
use crate::integrations::containers::api::{Api, ApiError};
use crate::integrations::containers::model::{COMPOSE_PROJECT, COMPOSE_SERVICE, Inspect, Listed};
use crate::integrations::containers::{MAX_CONTAINERS, MAX_INSPECT_BYTES, MAX_LIST_BYTES};

/// Runs one probe of `check`, filling `out` (its timeout is enforced by the caller).
pub async fn probe(check: &CheckConfig, out: &mut Outcome) -> Result<(), String> {
    let url = check.url.as_deref().unwrap_or(DEFAULT_CONTAINERS_URL);
    let api = Api::new(url).ok_or_else(|| format!("{url:?} is not a unix socket URL"))?;
    let started = Instant::now();
    let names: Vec<String> = match (&check.container, &check.compose_service) {
        (Some(name), _) => vec![name.trim_start_matches('/').to_string()],
        (None, Some(service)) => {
            let mut labels = vec![format!("{COMPOSE_SERVICE}={service}")];
            if let Some(p) = &check.compose_project {
                labels.push(format!("{COMPOSE_PROJECT}={p}"));
            }
            let filters = serde_json::json!({ "label": labels }).to_string();
            let path = format!(
                "/containers/json?all=1&filters={}",
                url::form_urlencoded::byte_serialize(filters.as_bytes()).collect::<String>()
            );
            let listed: Vec<Listed> = api.json(&path, MAX_LIST_BYTES).await.map_err(said)?;
            out.seen.connected = true;
            // The filter is the engine's: check the labels again rather than trust it.
            let mine: Vec<String> = listed
                .iter()
                .filter(|c| {
                    c.compose_service() == Some(service.as_str())
                        && check
                            .compose_project
                            .as_deref()
                            .is_none_or(|p| c.compose_project() == Some(p))
                })
                .take(MAX_CONTAINERS)
                .map(|c| c.id.clone())
                .collect();
            if mine.is_empty() {
                return Err(format!("no container of compose service {service:?}"));
            }
            mine
        }
        (None, None) => return Err("no `container` or `compose_service` to look for".into()),
    };
    let mut states = Vec::new();
    for name in &names {
        let path = format!(
            "/containers/{}/json",
            url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
        );
        let inspect: Inspect = match api.json(&path, MAX_INSPECT_BYTES).await {
            Ok(i) => i,
            Err(ApiError::Status { status: 404, .. }) => {
                out.seen.connected = true;
                states.push(format!("no container {name:?}"));
                continue;
            }
            Err(e) => return Err(said(e)),
        };
        out.seen.connected = true;
        out.timings.ttfb_ms.get_or_insert(ms_since(started));
        let health = inspect.health();
        if inspect.state.running && matches!(health, "healthy" | "none") {
            return Ok(());
        }
        let shown = inspect.name.trim_start_matches('/');
        states.push(if inspect.state.running {
            format!("{shown} is {health}")
        } else {
            format!(
                "{shown} is {} (exit code {})",
                inspect.state.status, inspect.state.exit_code
            )
        });
    }
    Err(states.join("; "))
}

fn said(e: ApiError) -> String {
    e.to_string()
}
