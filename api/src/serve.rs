//! Serving the API: an HTTP/1 accept loop over hyper, every connection behind the head guard
//! ([`super::head_guard`]), with graceful shutdown. In front of the routes, outermost first:
//! the request id, the refusal of a client's `x-oxstack-forwarded-by`
//! ([`super::forward::refuse_forged`]), the browser guard, the limits ([`super::limits`]: in
//! flight, time, event stream subscribers), then forwarding.
//!
//! hyper is configured so that the guard, not hyper, decides which heads are taken: its read
//! buffer and header count are above the guard's limits, and `half_close` lets it finish the
//! responses in flight when the guard ends a connection's input after a refused head.
//! Shutdown: when the engine shuts down, no new connection is accepted, idle connections close,
//! and the requests in flight finish first. With [`ServeOptions::tls`] every connection is a TLS
//! one (`oxstack serve --tls-cert/--tls-key`): its handshake runs in the connection's own task,
//! and the guard reads the decrypted stream.

use std::net::SocketAddr;
use std::pin::pin;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use super::browser_guard::{self, BrowserGuard};
use super::head_guard::{self, Guarded, MAX_HEAD, MAX_HEADERS};
use super::limits::{self, Limits};
use super::{forward, request_id};
use oxstack_engine::Engine;

/// hyper's read buffer: above the largest head the guard passes, so hyper never refuses one.
const HYPER_READ_BUFFER: usize = 2 * MAX_HEAD;

/// Serves the API on `listener` until the engine shuts down, then stops taking connections and
/// lets the requests in flight finish.
pub async fn serve(engine: Engine, listener: TcpListener) -> std::io::Result<()> {
    serve_with(engine, listener, None).await
}

/// [`serve`], forwarding requests for resources other nodes own over the bus when there is one
/// (see [`forward`]); closes the bus once the server has stopped.
pub async fn serve_with(
    engine: Engine,
    listener: TcpListener,
    forwarding: Option<forward::Forwarding>,
) -> std::io::Result<()> {
    serve_configured(engine, listener, forwarding, ServeOptions::default()).await
}

/// How a node serves its API: which browsers' requests it takes and its limits.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// The names and origins browsers' requests may come under (see [`super::browser_guard`];
    /// the default: `localhost`, IP literals, and the node's own origin).
    pub guard: BrowserGuard,
    /// Requests at once, the time limit, event stream subscribers (see [`super::limits`]).
    pub limits: Limits,
    /// Serve HTTPS with this certificate and key (see `oxstack_tls::server`); plain HTTP
    /// without.
    pub tls: Option<std::sync::Arc<oxstack_tls::rustls::ServerConfig>>,
}

/// [`serve_with`], with `options`.
pub async fn serve_configured(
    engine: Engine,
    listener: TcpListener,
    forwarding: Option<forward::Forwarding>,
    options: ServeOptions,
) -> std::io::Result<()> {
    let mut shutdown = engine.shutdown_signal();
    let bus = forwarding.as_ref().map(|f| f.bus.clone());
    let app = match forwarding {
        Some(f) => forward::layer(super::router(engine.clone()), engine, f),
        None => super::router(engine),
    };
    // Outside forwarding too, so its own answers (503 when the owner is away) carry the id, and
    // a request waiting for another node holds its in-flight slot.
    let guard = std::sync::Arc::new(options.guard);
    let tls = options.tls.map(oxstack_tls::TlsAcceptor::from);
    let in_flight = limits::InFlight::new(&options.limits);
    let app = app
        .layer(axum::Extension(limits::EventSubscribers::new(&options.limits)))
        .layer(axum::middleware::from_fn_with_state(in_flight, limits::layer))
        .layer(axum::middleware::from_fn_with_state(guard, browser_guard::layer))
        .layer(axum::middleware::from_fn(forward::refuse_forged))
        .layer(axum::middleware::from_fn(request_id::layer))
        .layer(axum::middleware::from_fn(head_guard::close_after_refused_upgrade));
    // Connections hold a receiver each; the loop waits for all of them to be dropped.
    let (open_tx, open_rx) = watch::channel(());
    let (stop_tx, _) = watch::channel(false);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = oxstack_engine::shutdown_requested(&mut shutdown) => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let (open, stop) = (open_rx.clone(), stop_tx.subscribe());
        match &tls {
            None => {
                tokio::spawn(serve_connection(app.clone(), stream, peer, stop, open));
            }
            Some(tls) => {
                let (tls, app) = (tls.clone(), app.clone());
                tokio::spawn(async move {
                    match oxstack_tls::serve::handshake(&tls, stream).await {
                        Ok(stream) => serve_connection(app, stream, peer, stop, open).await,
                        Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                    }
                });
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(open_rx);
    open_tx.closed().await;
    if let Some(bus) = bus {
        bus.close().await;
    }
    Ok(())
}

/// Serves one connection until it closes, or until `stop` asks it to finish what is in flight.
/// Each request carries the connection's `peer` as axum's `ConnectInfo` (the audit log's source
/// address).
async fn serve_connection<S>(
    app: Router,
    stream: S,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
    _open: watch::Receiver<()>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app.map_request(move |req: Request<Incoming>| {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    }));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.half_close(true).max_buf_size(HYPER_READ_BUFFER).max_headers(MAX_HEADERS);
    let conn = http.serve_connection(TokioIo::new(Guarded::new(stream)), service).with_upgrades();
    let mut conn = pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            changed = stop.changed(), if !stopping => {
                let _ = changed;
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
