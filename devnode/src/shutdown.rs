//! Process shutdown on SIGINT or SIGTERM, shared by the `staples-devnode` and `staples`
//! binaries.

use std::future::Future;

/// Resolves on SIGINT or SIGTERM. Call it inside the runtime, before announcing readiness.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    // Registered now, not on first poll: the address line is printed before the server
    // first polls this future, and a SIGTERM arriving in between would otherwise take
    // the default action and kill the process without a graceful shutdown.
    #[cfg(unix)]
    let streams = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (mut int, mut term) = streams;
            tokio::select! {
                _ = next_signal(&mut int) => {}
                _ = next_signal(&mut term) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown signal received");
    }
}

/// The next delivery of a registered signal; never, if it could not be registered.
#[cfg(unix)]
async fn next_signal(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}
