//! The accept loop of one virtual node (mini-redis style `run(listener, shutdown)`).
//!
//! Why not `axum::serve`: a node must be able to go down the way a real one does, which
//! means closing its listener (clients get "connection refused") and cutting its open
//! connections at once, and come back later on the same port. So the loop is ours:
//!
//! - a [`Semaphore`] caps open connections (`Limits::max_connections`); while it is
//!   exhausted the loop stops accepting and new clients wait in the kernel's backlog;
//! - each connection is a task in a [`JoinSet`], so the loop can abort them all;
//! - [`Stop::Graceful`] stops accepting, lets connections finish their current request
//!   (up to the grace period), then aborts what is left; [`Stop::Abort`] aborts at once.
//!
//! Connections upgraded to WebSocket leave hyper's hands; PSS subscriptions are closed
//! separately through the node's [`crate::pss::PssHub`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// What a node's server should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Keep serving.
    Run,
    /// Stop accepting; let open requests finish within the grace period.
    Graceful,
    /// Stop accepting and cut every connection now (a node going down).
    Abort,
}

/// Serves `app` on `listener` until `stop` leaves [`Stop::Run`].
pub async fn run(
    listener: TcpListener,
    app: Router,
    mut stop: watch::Receiver<Stop>,
    max_connections: usize,
    grace: Duration,
) {
    let permits = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut connections = JoinSet::new();
    let mut builder = http1::Builder::new();
    // Clients that never finish sending headers are dropped instead of holding a slot.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));

    let mode = loop {
        if *stop.borrow() != Stop::Run {
            break *stop.borrow();
        }
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                // The semaphore is never closed.
                Err(_) => break Stop::Graceful,
            },
            changed = stop.changed() => match changed {
                Ok(()) => continue,
                // The controller is gone: nobody can stop us later, so stop now.
                Err(_) => break Stop::Graceful,
            },
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            changed = stop.changed() => match changed {
                Ok(()) => continue,
                Err(_) => break Stop::Graceful,
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut conn_stop = stop.clone();
        connections.spawn(async move {
            let _permit = permit;
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                // The guard `wait_for` returns is not `Send`; drop it inside.
                () = async { drop(conn_stop.wait_for(|s| *s != Stop::Run).await) } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        // Reap finished connections so the set does not grow with closed ones.
        while connections.try_join_next().is_some() {}
    };

    drop(listener);
    if mode == Stop::Graceful {
        let drain = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::debug!("grace period over; cutting remaining connections");
        }
    }
    connections.shutdown().await;
}
