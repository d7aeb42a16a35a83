//! An rmcp client over streamable HTTP that keeps the progress notifications it receives.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, RoleClient, ServiceExt};

/// The progress notifications received, and `tools/list_changed`.
#[derive(Clone, Default)]
pub struct Progress(
    Arc<Mutex<Vec<ProgressNotificationParam>>>,
    Arc<tokio::sync::Notify>,
);

impl ClientHandler for Progress {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _ctx: NotificationContext<RoleClient>,
    ) {
        self.0.lock().unwrap().push(params);
    }

    async fn on_tool_list_changed(&self, _ctx: NotificationContext<RoleClient>) {
        self.1.notify_one();
    }
}

impl Progress {
    /// Whether a `notifications/tools/list_changed` arrives within `within` (or arrived since
    /// the last call).
    #[allow(dead_code)]
    pub async fn tools_changed(&self, within: std::time::Duration) -> bool {
        tokio::time::timeout(within, self.1.notified())
            .await
            .is_ok()
    }

    /// (progress, total, message) of the notifications under `token`, in arrival order.
    pub fn of(&self, token: &ProgressToken) -> Vec<(f64, Option<f64>, Option<String>)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|p| &p.progress_token == token)
            .map(|p| (p.progress, p.total, p.message.clone()))
            .collect()
    }

    /// The messages of every notification received, joined in order of progress: the client
    /// may handle notifications concurrently, and progress rises with each one, so ordering by
    /// it is how a client restores their order (as the MCP spec allows).
    pub fn messages(&self) -> String {
        let mut got: Vec<(f64, String)> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|p| Some((p.progress, p.message.clone()?)))
            .collect();
        got.sort_by(|a, b| a.0.total_cmp(&b.0));
        got.into_iter().map(|(_, m)| m).collect()
    }
}

pub type McpClient = RunningService<RoleClient, Progress>;

/// A client of `http://{api}/mcp` with `key`, and the progress it will receive.
pub async fn mcp_client(api: SocketAddr, key: &str) -> (McpClient, Progress) {
    let progress = Progress::default();
    let config = StreamableHttpClientTransportConfig::with_uri(format!("http://{api}/mcp"))
        .auth_header(key.to_owned());
    let client = progress
        .clone()
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .unwrap();
    (client, progress)
}
