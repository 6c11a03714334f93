//! SIGTERM (Kubernetes) and SIGINT (Ctrl-C) become one cancellation token; SIGHUP becomes a
//! stream of configuration reload requests (see [`crate::supervisor`]).

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGTERM or SIGINT.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("Shutdown signal received; stopping probes and cleaning up.");
        t.cancel();
    });
    token
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "Cannot listen for SIGTERM; only Ctrl-C stops lagwatch.");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

/// One message per SIGHUP. The handler is installed before this returns, so from then on
/// SIGHUP no longer terminates the process. Signals arriving while one is still queued are
/// merged into it: a reload re-reads the file anyway.
pub fn on_hangup() -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel(1);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        if let Err(mpsc::error::TrySendError::Closed(())) = tx.try_send(()) {
                            return;
                        }
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "Cannot listen for SIGHUP; reload with POST /-/reload (needs --web.enable-lifecycle).");
            }
        }
    }
    #[cfg(not(unix))]
    drop(tx);
    rx
}

/// For commands whose configuration cannot be reloaded (`lagwatch demo`): SIGHUP is logged and
/// otherwise ignored instead of terminating the process.
pub fn ignore_hangup(why: &'static str) {
    let mut hangups = on_hangup();
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::warn!("SIGHUP ignored: {why}");
        }
    });
}
