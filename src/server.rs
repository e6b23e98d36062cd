//! The HTTP server around the router, with the limits a server on a shared network needs:
//! - at most [`Limits::max_connections`] open connections; one more is answered 503 problem+json
//!   with `Retry-After` and closed, so the process never runs out of file descriptors and
//!   `/healthz` keeps answering once the flood ends;
//! - a connection must send a request's headers within [`Limits::header_timeout`] of
//!   connecting or of its previous response (slow headers and idle keep-alive connections are
//!   closed; hyper's `header_read_timeout`);
//! - a request body must arrive whole within [`Limits::body_timeout`] of the request's
//!   headers ([`Deadline`]; tower-http's `TimeoutBody` only bounds the wait for each chunk, so
//!   a body trickling a byte at a time would never end). The API answers 408 `body_timeout`.
//!
//! axum's own `serve` offers neither a connection cap nor header timeouts, so connections are
//! accepted here and served by hyper's HTTP/1 connection (with hyper-util's graceful shutdown),
//! as axum's `serve-with-hyper` example does. HTTP/1.1 only: what browsers on LGWAN and
//! `curl` speak to a server without TLS.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// How much the server lets clients hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
        }
    }
}

/// What a connection over the cap is told before it is closed.
fn over_capacity() -> Vec<u8> {
    let body = serde_json::json!({
        "type": "urn:kiroku:problem:too_many_connections",
        "title": "ただいま混み合っています",
        "status": 503,
        "detail": "接続数が上限に達しています。何も記録していません。少し待ってからもう一度お試しください",
        "code": "too_many_connections",
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish (at most 30 s).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors or a connection reset before accept: wait a
                    // moment instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    stream.write_all(&over_capacity()).await?;
                    stream.shutdown().await
                })
                .await;
            });
            continue;
        };
        let router = router.clone();
        let body_timeout = limits.body_timeout;
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(|body| Body::new(Deadline::new(body, body_timeout)));
            request.extensions_mut().insert(ConnectInfo(remote));
            router.clone().oneshot(request)
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %remote, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open 30 s after shutdown began");
    }
    Ok(())
}

/// What a body that did not arrive in time fails with; the API's extractors recognise it.
#[derive(Debug, thiserror::Error)]
#[error("{BODY_TIMEOUT_MARK}")]
pub struct BodyTimedOut;

pub const BODY_TIMEOUT_MARK: &str = "the request body did not arrive in time";

/// A request body that must be complete by a fixed deadline.
pub struct Deadline<B> {
    body: B,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<B> Deadline<B> {
    pub fn new(body: B, within: Duration) -> Self {
        Deadline {
            body,
            deadline: Box::pin(tokio::time::sleep(within)),
        }
    }
}

impl<B> hyper::body::Body for Deadline<B>
where
    B: hyper::body::Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}
