//! `connect_timeout` (SPEC §12): one deadline over everything before the request is
//! written — name resolution, TCP connect, proxy tunnel and TLS handshake.
//!
//! hyper-util's `HttpConnector` bounds only the TCP connect of each address; a resolver
//! that never answers or a peer that accepts and never finishes the TLS handshake would
//! hang until the request `timeout` fired and be counted as an attempt. [`Bounded`] wraps
//! the whole connector, so such a stall fails *as a connect error* (hyper-util reports
//! every connector error as `is_connect()`), which the retry rules treat as the endpoint
//! being offline: only its head is probed and no attempt is counted.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connector whose every connection attempt is cut at `limit`.
#[derive(Clone)]
pub struct Bounded<C> {
    inner: C,
    limit: Duration,
}

impl<C> Bounded<C> {
    pub fn new(inner: C, limit: Duration) -> Bounded<C> {
        Bounded { inner, limit }
    }
}

/// The error of a connection attempt that ran out of time.
#[derive(Debug, thiserror::Error)]
#[error(
    "no connection within {0:?} (connect_timeout: name resolution, TCP connect and TLS handshake)"
)]
pub struct ConnectTimeout(pub Duration);

impl<C> Service<Uri> for Bounded<C>
where
    C: Service<Uri>,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let limit = self.limit;
        Box::pin(async move {
            match tokio::time::timeout(limit, connecting).await {
                Ok(result) => result.map_err(Into::into),
                Err(_) => Err(ConnectTimeout(limit).into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connector that never connects.
    #[derive(Clone)]
    struct Never;

    impl Service<Uri> for Never {
        type Response = ();
        type Error = std::io::Error;
        type Future = std::future::Pending<Result<(), std::io::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Uri) -> Self::Future {
            std::future::pending()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_connect_fails_at_the_limit() {
        let mut c = Bounded::new(Never, Duration::from_secs(5));
        let started = tokio::time::Instant::now();
        let err = c
            .call(Uri::from_static("https://x.example/"))
            .await
            .unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert!(err.is::<ConnectTimeout>(), "{err}");
        assert!(err.to_string().contains("connect_timeout"), "{err}");
    }
}
