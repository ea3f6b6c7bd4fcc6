//! The running agent: the parts [`crate::run`] starts (the client, the checks, the log readers,
//! host metrics, the shipper), held together so that a reload of the configuration
//! ([`crate::reload`]) can replace one part while the others go on, and stopped in order at the
//! end: work first, then the shipper's last delivery, then the goodbye.
//!
//! Each replaceable part is started by one function here, used at start and at a reload alike
//! ([`client_for`], [`Agent::start_tailer`], ...), so a reload builds exactly what a restart
//! would.

use std::sync::Arc;
use std::time::Duration;

use lookout_config::CheckConfig;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::client::CollectorClient;
use crate::scheduler::Scheduler;
use crate::self_metrics::AgentMetrics;
use crate::spool::Spool;
use crate::{AgentError, AgentSettings, credential, logs, probes, reload, shipper};

/// How long a stop waits for the shipper's last delivery attempt.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// How long a stop waits to tell the collector it is stopping.
const GOODBYE_DEADLINE: Duration = Duration::from_secs(2);

/// The client to the collectors that `settings` describe: their URLs, the agent's token and
/// labels, timeouts, and TLS (`ca`, `cert` and `key`, whose files are read here). The one
/// function that builds it, at start and at each reload, so a
/// reload reads everything a start reads.
pub fn client_for(settings: &AgentSettings) -> Result<CollectorClient, AgentError> {
    CollectorClient::new(
        settings.collector_urls.clone(),
        settings.token.clone(),
        &settings.labels,
        &settings.tls,
        settings.shipping.request_timeout,
        settings.shipping.max_answer_bytes,
    )
}

/// Warns when a collector of `settings` is reached in clear from another machine, and says so
/// in `/metrics`; at start, and after a reload changed the URLs.
pub fn warn_plaintext(settings: &AgentSettings, metrics: &AgentMetrics) {
    let plaintext: Vec<String> = settings
        .collector_urls
        .iter()
        .filter(|u| crate::collector_tls::plaintext_off_host(u))
        .map(|u| lookout_config::redact::url(u))
        .collect();
    if !plaintext.is_empty() {
        tracing::warn!(
            collectors = ?plaintext,
            "the agent's token (or the fleet's enrolment token), its assignments (with any \
             passwords in their checks) and what it ships cross the network in clear: use \
             https:// (the collector's [server.tls])"
        );
    }
    metrics.plaintext_collector(!plaintext.is_empty());
}

/// A running agent.
#[derive(Debug)]
pub(crate) struct Agent {
    /// What it runs with now.
    pub settings: AgentSettings,
    /// Shared with the shipper; its connection is replaced by a reload.
    pub client: Arc<CollectorClient>,
    pub scheduler: Scheduler,
    pub spool: Arc<Spool>,
    pub metrics: Arc<AgentMetrics>,
    /// Stops the checks, log readers, host metrics and spool upkeep; not the shipper, which
    /// stops with the shutdown token and makes a last delivery.
    pub work: CancellationToken,
    pub tailer: Option<logs::Reader>,
    pub journal: Option<logs::Reader>,
    /// Stops the host metrics task.
    pub host: Option<CancellationToken>,
    /// Stops the integrations' tasks.
    pub integrations: Option<CancellationToken>,
    /// The integrations' looks at tailed lines (an nginx access log), shared with the tailer.
    pub taps: logs::tap::Taps,
    shipper: JoinHandle<()>,
    /// The checks the collector assigned last, kept to merge with local checks after a reload.
    pub assigned: Vec<CheckConfig>,
    /// Their revision.
    revision: Option<String>,
}

impl Agent {
    /// Opens the spool, finds or gets the agent's credential, and starts every part. `None`
    /// when `shutdown` came before the agent could enrol.
    pub async fn start(
        settings: AgentSettings,
        shutdown: &CancellationToken,
    ) -> Result<Option<Self>, AgentError> {
        let spool = Arc::new(Spool::open_off_runtime(settings.spool.clone()).await?);
        if spool.backlog() > 0 {
            tracing::info!(
                records = spool.backlog(),
                "spool holds records from before; they go first"
            );
        }
        // Before the first request, enrolment included: the operator hears of a token crossing
        // the network in clear before it has, and `/metrics` shows it while enrolment retries.
        let work = CancellationToken::new();
        // An early return (a credential that cannot be read, a stop while enrolling) stops
        // what was started, `/metrics` first.
        let stop_work = work.clone().drop_guard();
        let metrics = Arc::new(AgentMetrics::default());
        warn_plaintext(&settings, &metrics);
        if let Some(addr) = settings.metrics_listen {
            crate::self_metrics::serve(addr, metrics.clone(), spool.clone(), work.clone())
                .await
                .map_err(|source| AgentError::MetricsListen { addr, source })?;
        }
        if let Some(otlp) = &settings.otlp {
            let addr = otlp.listen;
            crate::otlp::serve(otlp.clone(), spool.clone(), metrics.clone(), work.clone())
                .await
                .map_err(|source| AgentError::OtlpListen { addr, source })?;
        }
        let mut client = client_for(&settings)?;
        if settings.token.is_empty() {
            let Some(file) = settings.credential_file.clone() else {
                return Err(AgentError::NoCredential);
            };
            client = client.with_credential_file(file.clone());
            match credential::read(&file)? {
                Some(kept) => client.set_token(kept),
                None => {
                    let enroll_token = settings
                        .enroll_token
                        .as_ref()
                        .ok_or(AgentError::NoCredential)?;
                    match credential::enroll(
                        &client,
                        &settings.name,
                        enroll_token,
                        settings.lifecycle,
                        &file,
                        settings.shipping.max_backoff,
                        shutdown,
                    )
                    .await
                    {
                        Some(given) => client.set_token(given),
                        // Stopped before it could enrol: the spool keeps what was there.
                        None => return Ok(None),
                    }
                }
            }
        }
        // Started: from here, `Agent::stop` stops the work.
        stop_work.disarm();
        let client = Arc::new(client);
        let prober =
            probes::Prober::new(settings.max_concurrent_probes).identified_as(&settings.name);
        let mut scheduler = Scheduler::new(prober, spool.clone(), metrics.clone(), work.clone());
        scheduler.apply(settings.local_checks.clone());
        let deliveries = Arc::new(crate::fallback::Deliveries::default());
        if let Some(fb) = &settings.fallback {
            let fallback = crate::fallback::Fallback {
                settings: fb.clone(),
                agent: settings.name.clone(),
                collectors: settings
                    .collector_urls
                    .iter()
                    .map(|u| lookout_config::redact::url(u))
                    .collect(),
                http: crate::fallback::send::client()?,
                metrics: metrics.clone(),
            };
            tokio::spawn(crate::fallback::run(
                fallback,
                deliveries.clone(),
                work.clone(),
            ));
        }
        let shipper = tokio::spawn(shipper::run(
            settings.name.clone(),
            spool.clone(),
            client.clone(),
            settings.shipping.clone(),
            metrics.clone(),
            deliveries,
            shutdown.clone(),
        ));
        tokio::spawn(crate::spool_upkeep(
            spool.clone(),
            settings.spool.fsync,
            settings.name.clone(),
            work.clone(),
        ));
        let mut agent = Self {
            settings,
            client,
            scheduler,
            spool,
            metrics,
            work,
            tailer: None,
            journal: None,
            host: None,
            integrations: None,
            taps: logs::tap::Taps::default(),
            shipper,
            assigned: Vec::new(),
            revision: None,
        };
        agent.start_host_metrics();
        agent.start_integrations();
        agent.start_tailer(None);
        agent.start_journal();
        let collectors: Vec<String> = agent
            .settings
            .collector_urls
            .iter()
            .map(|u| lookout_config::redact::url(u))
            .collect();
        tracing::info!(agent = %agent.settings.name, ?collectors, "agent started");
        Ok(Some(agent))
    }

    /// Host metrics per `[host_metrics]`, when enabled.
    pub fn start_host_metrics(&mut self) {
        self.host = self.settings.host_metrics.enabled.then(|| {
            let stop = self.work.child_token();
            tokio::spawn(crate::host_metrics(
                self.settings.host_metrics.clone(),
                self.spool.clone(),
                self.metrics.clone(),
                stop.clone(),
            ));
            stop
        });
    }

    /// A task per `[[integrations]]` entry, when there are any.
    pub fn start_integrations(&mut self) {
        if self.settings.integrations.is_empty() {
            self.taps.set(Vec::new());
            return;
        }
        let stop = self.work.child_token();
        crate::integrations::spawn(
            &self.settings.integrations,
            self.spool.clone(),
            &self.taps,
            &self.settings.logs_dir,
            &stop,
        );
        self.integrations = Some(stop);
    }

    /// The tailer of `[[logs]]`, when there are any; `earlier`: the sources of the tailer it
    /// replaces, after a reload.
    pub fn start_tailer(&mut self, earlier: Option<Vec<lookout_config::logs::LogSourceConfig>>) {
        if self.settings.logs.is_empty() {
            return;
        }
        match logs::spawn(
            self.settings.logs.clone(),
            earlier,
            self.settings.logs_dir.clone(),
            self.spool.clone(),
            self.taps.clone(),
            &self.work,
        ) {
            Ok(t) => self.tailer = Some(t),
            Err(e) => tracing::error!(error = %e, "cannot start the log tailer"),
        }
    }

    /// The journal reader, when `[journald]` is enabled.
    pub fn start_journal(&mut self) {
        if !self.settings.journald.enabled {
            return;
        }
        match logs::journald::spawn(
            self.settings.journald.clone(),
            &self.settings.logs_dir,
            self.spool.clone(),
            &self.work,
        ) {
            Ok(t) => self.journal = Some(t),
            Err(e) => tracing::error!(error = %e, "cannot start the journal reader"),
        }
    }

    /// Runs until `shutdown`: fetches assignments every `assignments_interval` and applies
    /// changes, and re-reads the configuration on each of `reloads`' requests.
    pub async fn follow(
        &mut self,
        shutdown: &CancellationToken,
        mut reloads: Option<&mut reload::Reloads>,
    ) {
        let mut ticks = interval(self.settings.shipping.assignments_interval);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => self.poll_assignments().await,
                Some(()) = next_request(&mut reloads) => {
                    if let Some(r) = reloads.as_deref_mut() {
                        r.reload(self).await;
                    }
                    // At once: the collector sees new labels now, and an interval changed
                    // takes effect.
                    ticks = interval(self.settings.shipping.assignments_interval);
                }
            }
        }
    }

    /// Fetches assignments; applies them when they changed.
    async fn poll_assignments(&mut self) {
        let every = self.settings.shipping.assignments_interval;
        match self
            .client
            .assignments(self.revision.as_deref(), every)
            .await
        {
            Ok(None) => {}
            Ok(Some((assigned, skipped))) => {
                for s in &skipped {
                    tracing::warn!(problem = %s, "assigned check skipped");
                }
                self.assigned = assigned.checks;
                self.apply_checks();
                tracing::info!(revision = %assigned.revision, checks = ?self.scheduler.names(), "assignments applied");
                self.revision = Some(assigned.revision);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot fetch assignments; keeping the current checks")
            }
        }
    }

    /// Runs the local checks and the assigned ones.
    pub fn apply_checks(&mut self) {
        self.scheduler.apply(crate::merge(
            &self.settings.local_checks,
            self.assigned.clone(),
        ));
    }

    /// Stops the checks and log readers, then makes a bounded last delivery and tells the
    /// collector the agent is stopping.
    pub async fn stop(self) {
        self.work.cancel();
        for reader in [self.tailer, self.journal].into_iter().flatten() {
            reader.stop().await;
        }
        if tokio::time::timeout(STOP_DEADLINE, self.shipper)
            .await
            .is_err()
        {
            tracing::warn!(
                queued = self.spool.backlog(),
                "stop deadline passed before the last delivery"
            );
        }
        // After the last delivery: the silence that follows is a planned stop, not an outage.
        match tokio::time::timeout(GOODBYE_DEADLINE, self.client.goodbye()).await {
            Ok(Ok(())) => {
                tracing::info!("said goodbye: the collector knows this agent is stopping")
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not tell the collector this agent is stopping")
            }
            Err(_) => tracing::warn!("the collector did not answer this agent's goodbye in time"),
        }
        tracing::info!(agent = %self.settings.name, "agent stopped");
    }
}

/// An interval whose first tick is now, which waits out a slow tick rather than bursting.
fn interval(every: Duration) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks
}

/// The next reload request; never, without reloads (or once their sender is gone).
async fn next_request(reloads: &mut Option<&mut reload::Reloads>) -> Option<()> {
    match reloads {
        Some(r) => r.requests.recv().await,
        None => std::future::pending().await,
    }
}
