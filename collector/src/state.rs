//! The state shared by every request: the store, the current configuration and the agents'
//! credentials.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use lookout_config::{CollectorConfig, Token, TokenDigest};

use crate::store::Store;

/// Lines a live-tail subscriber may fall behind by before it is told it missed some.
pub const TAIL_BUFFER: usize = 4096;

/// An agent allowed to ship, as authentication sees it.
#[derive(Debug, Clone)]
pub struct Credential {
    /// The agent's name.
    pub name: String,
    /// The digests of the tokens it may present (two while its token rotates).
    digests: Vec<TokenDigest>,
    /// Labels the collector's configuration gives it.
    pub labels: BTreeMap<String, String>,
    /// The labels it sends select checks too (`[[agents]] self_labels`).
    pub self_labels: bool,
    /// An enrolled agent that presented the credential its rotation replaced: the new one,
    /// given to it in the answer ([`lookout_protocol::http::CREDENTIAL_ROTATED_HEADER`]).
    pub handover: Option<Token>,
    /// An enrolled agent that presented its rotation's new credential while the store still
    /// keeps it: the store may forget it now.
    pub rotation_done: bool,
}

impl Credential {
    /// A credential for an agent that presents one of the tokens of these digests; what it
    /// says of itself selects no check.
    pub fn new(name: String, digests: Vec<TokenDigest>, labels: BTreeMap<String, String>) -> Self {
        Self {
            name,
            digests,
            labels,
            self_labels: false,
            handover: None,
            rotation_done: false,
        }
    }
}

impl AppState {
    /// Whether `credential` is the built-in local agent's.
    pub fn is_local(&self, credential: &Credential) -> bool {
        self.local
            .as_ref()
            .is_some_and(|l| l.name == credential.name && l.digests == credential.digests)
    }
}

/// Shared by every handler.
#[derive(Debug)]
pub struct AppState {
    /// Where everything is kept.
    pub store: Arc<dyn Store>,
    // std's RwLock: readers clone the Arc and let go at once; nothing awaits while holding it.
    config: RwLock<Arc<CollectorConfig>>,
    credentials: RwLock<Arc<Credentials>>,
    /// The labels each agent last sent with `GET /v1/assignments`: shown, and trusted for
    /// check selection only where its `[[agents]]` entry has `self_labels`.
    claims: RwLock<HashMap<String, BTreeMap<String, String>>>,
    /// The admin's logins: the key that signs them, and failed attempts.
    pub sessions: crate::sessions::Sessions,
    /// The built-in local agent's credential, which survives reloads of the file.
    local: Option<Credential>,
    /// One permit per ingest request in progress (`[server] max_concurrent_ingest`).
    ingest_slots: Arc<tokio::sync::Semaphore>,
    /// One permit per live-tail reader (`[server] max_tail_subscribers`).
    tail_slots: Arc<tokio::sync::Semaphore>,
    /// The agents that enrolled themselves, by their credentials' digests.
    pub enrolled: Arc<crate::enrolment::Registry>,
    /// Enrolments with a wrong enrolment token, per client address.
    pub enrol_failures: crate::sessions::Failures,
    /// Evaluates rules on what is stored.
    pub rules: Arc<crate::rules::Engine>,
    /// Sends the notification outbox.
    pub notifier: Arc<crate::notify::Worker>,
    /// The collector's own figures, for `/metrics`.
    pub metrics: Arc<crate::telemetry::Metrics>,
    /// Whether this collector leads: evaluates rules, owns alert state, rolls up
    /// ([`crate::leadership`]).
    pub leadership: Arc<crate::leadership::Leadership>,
    /// Where what is stored goes to be evaluated: here, or on the leader
    /// ([`crate::evaluation`]).
    pub evaluator: Arc<crate::evaluation::Evaluator>,
    /// This collector's identity in `GET /api/v1/cluster`, once it listens.
    pub me: std::sync::OnceLock<crate::cluster::Me>,
    /// Copies stored batches to an OTLP receiver (`[telemetry] forward_endpoint`).
    pub forwarder: crate::forward::Forwarder,
    /// Log lines as they are stored (without ids), for live tails.
    pub log_feed: tokio::sync::broadcast::Sender<Arc<crate::store::LogRow>>,
    /// The status page's rollup totals, shared by views for a few seconds.
    pub status_history: crate::views::HistoryCache,
    /// Stores ingested batches, several to a transaction when they arrive together.
    pub ingest_writer: crate::writer::group::GroupWriter,
    /// Where the store's writing runs: the group writers, and the roll-up and retention.
    pub writer_thread: crate::writer::WriterThread,
    /// The series and check names each agent has used, for its limits
    /// ([`crate::admission`]).
    pub ledgers: crate::admission::Ledgers,
    /// The SHA-256 of the agent binaries served, kept per file version
    /// ([`crate::install::downloads`]).
    pub checksums: Arc<crate::install::downloads::Checksums>,
}

impl AppState {
    /// State for this configuration; `local` is the built-in agent's credential, if it runs.
    pub fn new(
        store: Arc<dyn Store>,
        config: CollectorConfig,
        local: Option<Credential>,
        rules: Arc<crate::rules::Engine>,
        notifier: Arc<crate::notify::Worker>,
        metrics: Arc<crate::telemetry::Metrics>,
        leadership: Arc<crate::leadership::Leadership>,
    ) -> Self {
        let credentials = credentials(&config, local.as_ref());
        let ingest_slots = Arc::new(tokio::sync::Semaphore::new(
            config.server.max_concurrent_ingest,
        ));
        let tail_slots = Arc::new(tokio::sync::Semaphore::new(
            config.server.max_tail_subscribers,
        ));
        let evaluator = Arc::new(crate::evaluation::Evaluator::new(
            rules.clone(),
            store.clone(),
            leadership.clone(),
            metrics.clone(),
        ));
        let forwarder = match &config.telemetry.forward_endpoint {
            Some(base) => crate::forward::Forwarder::start(base, metrics.clone()),
            None => crate::forward::Forwarder::off(metrics.clone()),
        };
        // SQLite has one writer whatever we do; PostgreSQL writes groups side by side.
        let writer_thread = crate::writer::WriterThread::start();
        let ingest_writer = crate::writer::group::GroupWriter::start(
            store.clone(),
            if store.shared() { 4 } else { 1 },
            metrics.clone(),
            Some(evaluator.clone()),
            &writer_thread,
        );
        Self {
            ingest_slots,
            tail_slots,
            ingest_writer,
            writer_thread,
            config: RwLock::new(Arc::new(config)),
            credentials: RwLock::new(Arc::new(credentials)),
            claims: RwLock::new(HashMap::new()),
            sessions: crate::sessions::Sessions::new(),
            enrolled: Default::default(),
            enrol_failures: Default::default(),
            local,
            rules,
            notifier,
            log_feed: tokio::sync::broadcast::channel(TAIL_BUFFER).0,
            forwarder,
            metrics,
            leadership,
            evaluator,
            me: std::sync::OnceLock::new(),
            status_history: Default::default(),
            ledgers: Default::default(),
            checksums: Default::default(),
            store,
        }
    }

    /// The permits of ingest requests in progress.
    pub fn ingest_slots(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.ingest_slots
    }

    /// The permits of live-tail readers.
    pub fn tail_slots(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.tail_slots
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<CollectorConfig> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts a newly loaded configuration in force (checks, agents and tokens; `[server]` and
    /// `[storage]` changes need a restart).
    pub fn replace_config(&self, config: CollectorConfig) {
        let creds = credentials(&config, self.local.as_ref());
        *self.credentials.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(creds);
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }

    /// The agent this bearer token belongs to: looked up by the token's SHA-256, so the time
    /// taken depends on the digest of what was presented, which tells nothing about how close
    /// it came to a real token, and not on how many agents there are (comparing against every
    /// token was half of the collector's CPU with 10,000 agents).
    pub fn authenticate(&self, token: &str) -> Option<Credential> {
        self.credential_for(&Token::new(token).digest(), crate::clock::now())
            .ok()
    }

    /// The agent that presents the token of `digest` at `now`: a configured agent (the file
    /// wins over an enrolled agent of the same name), else an enrolled one, from memory. `Err`
    /// says why an enrolled credential is refused, or that nobody has it.
    pub fn credential_for(
        &self,
        digest: &TokenDigest,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Credential, crate::enrolment::Found> {
        use crate::enrolment::Found;
        let creds = self
            .credentials
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(c) = creds.by_digest.get(digest) {
            return Ok(c.clone());
        }
        match self.enrolled.find(digest, now) {
            Found::Agent { name, .. } if creds.all.iter().any(|c| c.name == name) => {
                Err(Found::Unknown)
            }
            Found::Agent {
                name,
                handover,
                rotation_done,
            } => {
                let config = self.config();
                let labels = config
                    .enrollment
                    .as_ref()
                    .map(|e| e.labels.clone())
                    .unwrap_or_default();
                Ok(Credential {
                    handover,
                    rotation_done,
                    ..Credential::new(name, vec![*digest], labels)
                })
            }
            other => Err(other),
        }
    }

    /// Keeps the labels `agent` sent, where they count (`self_labels`), for the checks it
    /// may report on.
    pub fn set_claims(&self, agent: &Credential, labels: &BTreeMap<String, String>) {
        if agent.self_labels {
            self.claims
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(agent.name.clone(), labels.clone());
        }
    }

    /// Calls `f` with the checks `agent` is given (see [`CollectorConfig::assigned`]): by its
    /// configured labels, and by the labels it last sent where they count.
    pub fn with_assigned<T>(
        &self,
        agent: &Credential,
        f: impl FnOnce(Vec<&lookout_config::CheckConfig>) -> T,
    ) -> T {
        let claims = if agent.self_labels {
            self.claims
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&agent.name)
                .cloned()
        } else {
            None
        };
        let config = self.config();
        f(config.assigned(&agent.name, &agent.labels, claims.as_ref()))
    }

    /// Every agent the configuration names (remote ones and the local one).
    pub fn configured_agents(&self) -> Vec<Credential> {
        self.credentials
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .all
            .clone()
    }
}

/// The agents allowed to ship, in the configuration's order and by their token's digest.
#[derive(Debug)]
struct Credentials {
    all: Vec<Credential>,
    by_digest: HashMap<TokenDigest, Credential>,
}

fn credentials(config: &CollectorConfig, local: Option<&Credential>) -> Credentials {
    let all: Vec<Credential> = config
        .agents
        .iter()
        .map(|a| Credential {
            self_labels: a.self_labels,
            ..Credential::new(a.name.clone(), a.digests(), a.labels.clone())
        })
        .chain(local.cloned())
        .collect();
    // Tokens are unique (the configuration's validation says so); the local agent's is random.
    let by_digest = all
        .iter()
        .flat_map(|c| c.digests.iter().map(move |d| (*d, c.clone())))
        .collect();
    Credentials { all, by_digest }
}
