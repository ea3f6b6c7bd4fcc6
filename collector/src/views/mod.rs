//! Read models: what both the JSON API (`api/`) and the pages (`web/`) show, computed once
//! here and only rendered there, so that a check's state or a day's uptime cannot differ
//! between `GET /api/v1/checks`, the status page, the admin pages and a badge.
//!
//! - [`checks`]: every check with its state and each agent's latest result;
//! - [`status`]: the status page's model (`GET /` and `GET /api/v1/status`);
//! - [`history`]: that model's rollup totals, shared between views for a few seconds.
//!
//! Models are built from the store and the configuration in force, never from a request:
//! functions take `&dyn Store` and `&CollectorConfig` and fail with [`StoreError`], which the
//! caller turns into its own answer (a JSON error, a page, a grey badge). Who may see them is
//! not decided here: the handlers that render them decide.
//!
//! [`StoreError`]: crate::store::StoreError

pub mod checks;
pub mod history;
pub mod status;

pub use checks::{CheckStatus, CheckView, check_exists, check_views, status_of};
pub use history::HistoryCache;
pub use status::StatusModel;
