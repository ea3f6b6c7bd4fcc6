//! The answers of podman 4.3.1's Docker-compatible API, captured here
//! (`agent/src/integrations/fixtures/podman-4.3-*.json`), read as the integration reads them.
