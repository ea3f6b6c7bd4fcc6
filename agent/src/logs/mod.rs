//! Log files: tailed ([`tail`]), cut into lines and events ([`lines`]), written to the spool
//! with the position each read reaches ([`checkpoints`]), and shipped with everything else;
//! an integration may look at a file's lines on their way ([`tap`]).

pub mod checkpoints;
pub mod journald;
pub mod lines;
pub mod mark;
pub mod tail;
pub mod tap;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lookout_config::logs::LogSourceConfig;
use tokio_util::sync::CancellationToken;

use crate::spool::Spool;

/// How long the tailer sleeps when a round found nothing new.
const IDLE_WAIT: Duration = Duration::from_millis(200);

/// A log reader running on a thread of its own (file reads block), and what stops it.
#[derive(Debug)]
pub struct Reader {
    thread: std::thread::JoinHandle<()>,
    stop: CancellationToken,
}

impl Reader {
    /// Runs `read` on a thread named `name`, with a token that is cancelled by [`Reader::stop`]
    /// or by `parent`.
    pub fn spawn(
        name: &str,
        parent: &CancellationToken,
        read: impl FnOnce(CancellationToken) + Send + 'static,
    ) -> std::io::Result<Self> {
        let stop = parent.child_token();
        let token = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || read(token))?;
        Ok(Self { thread, stop })
    }

    /// Stops it and waits until it has saved its positions; false when it ended abnormally
    /// (a panic), which is logged.
    pub async fn stop(self) -> bool {
        self.stop.cancel();
        let thread = self.thread;
        let ok = matches!(
            tokio::task::spawn_blocking(move || thread.join()).await,
            Ok(Ok(()))
        );
        if !ok {
            tracing::warn!("a log reader stopped abnormally");
        }
        ok
    }
}

/// Starts tailing `sources`, keeping positions in `dir`, until `parent` is cancelled or the
/// reader is stopped. The thread saves the positions before it ends. `earlier`: after a
/// reload, the sources the previous tailer had ([`tail::Tailer::after_reload`]).
pub fn spawn(
    sources: Vec<LogSourceConfig>,
    earlier: Option<Vec<LogSourceConfig>>,
    dir: PathBuf,
    spool: Arc<Spool>,
    taps: tap::Taps,
    parent: &CancellationToken,
) -> std::io::Result<Reader> {
    Reader::spawn("lookout-logs", parent, move |stop| {
        let mut tailer = match &earlier {
            Some(e) => tail::Tailer::after_reload(&sources, e, &dir, spool),
            None => tail::Tailer::new(&sources, &dir, spool),
        }
        .with_taps(taps);
        while !stop.is_cancelled() {
            if !tailer.poll(Instant::now()) {
                std::thread::sleep(IDLE_WAIT);
            }
        }
        tailer.save();
    })
}
