//! The link to one upstream: connected, down, or one attempt under way.
//!
//! However many calls and listings need an upstream that is not connected, one attempt is
//! made, in a task of its own, and they all wait for that attempt: an upstream that accepts
//! connections and never answers costs one task and one timeout, not one per caller, and a
//! caller that stops waiting (a `tools/list` that will not wait a whole `call_timeout`) does
//! not cancel the attempt, so the next caller finds it further along or finished.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, Shared};

use super::{connect, Connected, UpstreamSpec};
use crate::error::ToolError;

type Attempt = Shared<BoxFuture<'static, Result<Arc<Connected>, ToolError>>>;

enum Link {
    Down,
    Connecting { attempt: Attempt, since: Instant },
    Up(Arc<Connected>),
}

/// A connection attempt that a caller stopped waiting for.
pub(crate) struct Pending(Attempt);

impl Pending {
    /// Ends with the attempt: `Ok` when the upstream is connected.
    pub async fn connected(self) -> Result<(), ToolError> {
        self.0.await.map(|_| ())
    }
}

/// One configured upstream and its link.
pub(super) struct Upstream {
    pub spec: UpstreamSpec,
    link: Mutex<Link>,
}

impl Upstream {
    pub fn new(spec: UpstreamSpec) -> Arc<Upstream> {
        Arc::new(Upstream {
            spec,
            link: Mutex::new(Link::Down),
        })
    }

    /// The live connection, waiting for the attempt under way (or a new one, which may take
    /// `timeout`) when there is none.
    pub async fn connection(
        self: &Arc<Self>,
        timeout: Duration,
    ) -> Result<Arc<Connected>, ToolError> {
        match self.now_or_attempt(timeout) {
            Ok(c) => Ok(c),
            Err((attempt, _)) => attempt.await,
        }
    }

    /// As [`Upstream::connection`], waiting at most `wait` counted from the start of the
    /// attempt (an attempt that has already run that long is not waited for at all). When the
    /// wait ends before the attempt does, the attempt comes back with the error, so the caller
    /// can learn when it ends without starting another.
    pub async fn connection_or_pending(
        self: &Arc<Self>,
        timeout: Duration,
        wait: Duration,
    ) -> Result<Arc<Connected>, (ToolError, Option<Pending>)> {
        let (attempt, since) = match self.now_or_attempt(timeout) {
            Ok(c) => return Ok(c),
            Err(a) => a,
        };
        let left = wait.saturating_sub(since.elapsed());
        match tokio::time::timeout(left, attempt.clone()).await {
            Ok(result) => result.map_err(|e| (e, None)),
            Err(_) => Err((
                ToolError::new(
                    "upstream_timeout",
                    format!(
                        "upstream {} is still connecting (for {:?})",
                        self.spec.name,
                        since.elapsed()
                    ),
                ),
                Some(Pending(attempt)),
            )),
        }
    }

    /// Forgets a connection that has closed, so the next use reconnects at once.
    pub fn closed(&self) {
        let mut link = self.link.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(&*link, Link::Up(c) if c.client.is_closed()) {
            *link = Link::Down;
        }
    }

    fn now_or_attempt(
        self: &Arc<Self>,
        timeout: Duration,
    ) -> Result<Arc<Connected>, (Attempt, Instant)> {
        let mut link = self.link.lock().unwrap_or_else(|p| p.into_inner());
        match &*link {
            Link::Up(c) if !c.client.is_closed() => return Ok(c.clone()),
            Link::Up(_) => {
                tracing::warn!(upstream = %self.spec.name, "MCP upstream connection closed; reconnecting")
            }
            // An attempt that has ended without updating the link (its task panicked) is over.
            Link::Connecting { attempt, since } if attempt.peek().is_none() => {
                return Err((attempt.clone(), *since))
            }
            Link::Connecting { .. } | Link::Down => {}
        }
        let up = self.clone();
        // The lock is held until the attempt is stored, so the task's own update comes after.
        let task = tokio::spawn(async move {
            let result = up.connect(timeout).await;
            *up.link.lock().unwrap_or_else(|p| p.into_inner()) = match &result {
                Ok(c) => Link::Up(c.clone()),
                Err(_) => Link::Down,
            };
            result
        });
        let attempt = async move { task.await.unwrap_or_else(|e| Err(ToolError::internal(e))) }
            .boxed()
            .shared();
        let since = Instant::now();
        *link = Link::Connecting {
            attempt: attempt.clone(),
            since,
        };
        Err((attempt, since))
    }

    async fn connect(&self, timeout: Duration) -> Result<Arc<Connected>, ToolError> {
        let name = &self.spec.name;
        let connected = tokio::time::timeout(timeout, connect(&self.spec))
            .await
            .map_err(|_| {
                ToolError::new(
                    "upstream_timeout",
                    format!("upstream {name} did not answer within {timeout:?}"),
                )
            })?
            .map_err(|e| ToolError::new("upstream_error", format!("upstream {name}: {e}")))?;
        tracing::info!(upstream = %name, tools = connected.tools.len(), "MCP upstream connected");
        Ok(Arc::new(connected))
    }
}
