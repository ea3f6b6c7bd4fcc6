//! Log files: tailed ([`tail`]), cut into lines and events ([`lines`]), written to the spool
//! with the position each read reaches ([`checkpoints`]), and shipped with everything else.

pub mod checkpoints;
pub mod journald;
pub mod lines;
pub mod tail;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lookout_config::logs::LogSourceConfig;
use tokio_util::sync::CancellationToken;

use crate::spool::Spool;

/// How long the tailer sleeps when a round found nothing new.
const IDLE_WAIT: Duration = Duration::from_millis(200);

/// Starts tailing `sources` on a thread of its own (file reads block), keeping positions in
/// `dir`, until `stop`. The thread saves the positions before it ends.
pub fn spawn(
    sources: Vec<LogSourceConfig>,
    dir: PathBuf,
    spool: Arc<Spool>,
    stop: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("lookout-logs".into())
        .spawn(move || {
            let mut tailer = tail::Tailer::new(&sources, &dir, spool);
            while !stop.is_cancelled() {
                if !tailer.poll(Instant::now()) {
                    std::thread::sleep(IDLE_WAIT);
                }
            }
            tailer.save();
        })
}
