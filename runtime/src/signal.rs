//! The signals a daemon acts on: SIGTERM or Ctrl-C stops it (through a [`CancellationToken`],
//! so a test stops it the same way without a signal), SIGHUP asks it (the collector, the
//! agent) to re-read its configuration. Where a signal cannot be listened for, the daemon says
//! so and runs on.

use tokio_util::sync::CancellationToken;

/// Cancels `shutdown` on SIGTERM or Ctrl-C.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the process");
                let _ = ctrl_c.await;
                shutdown.cancel();
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("stopping");
    shutdown.cancel();
}

/// Sends a reload request on every SIGHUP; requests that arrive while one is still queued are
/// one reload.
pub async fn reload_on_sighup(tx: tokio::sync::mpsc::Sender<()>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload by restarting");
                return;
            }
        };
        while hup.recv().await.is_some() {
            // A reload already queued covers this one too.
            let _ = tx.try_send(());
        }
    }
    #[cfg(not(unix))]
    drop(tx);
}
