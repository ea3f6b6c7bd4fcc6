//! One command per server: the collector serves what installs an agent, so adding a server is
//! `curl -fsSL https://COLLECTOR/install.sh | sudo sh -s -- --enroll-token TOKEN` and nothing
//! built or copied by hand (docs/deployment.md, "One command per server").
//!
//! - [`script`]: `install.sh` as this collector writes it: its URL (`[server] public_url`, else
//!   the request's `Host`), the CA its agents should trust (`[install] agent_ca`) and the
//!   systemd unit of this release.
//! - [`downloads`]: the agent binaries (`lookout-agent-linux-<arch>`) and their SHA-256, from
//!   `[install] binaries`.
//!
//! The routes (`GET /install.sh`, `GET /downloads/{file}`) are `api::install`'s; this module
//! holds what they serve and imports nothing of the collector, so the state can keep its
//! checksums without an import circle.

pub mod downloads;
pub mod script;
