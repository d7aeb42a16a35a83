//! Helpers for tests that drive the real `warden` binary.
#![allow(dead_code)]

mod mcp_client;
#[allow(unused_imports)]
pub use mcp_client::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub fn warden() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_warden"));
    // Tests must not pick up a developer's configuration.
    c.env_remove("WARDEN_CONFIG")
        .env("WARDEN_LOG__FORMAT", "text");
    c
}

/// Runs `warden` with `args` in `dir` (as data dir), feeding `stdin`.
pub fn run(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut cmd = warden();
    cmd.arg("--data-dir").arg(dir).args(args);
    run_cmd(cmd, stdin)
}

/// Runs a prepared `warden` command, feeding `stdin`, and collects its output.
pub fn run_cmd(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that fails on its arguments may exit before reading stdin: a broken pipe
    // here is not the test's concern, the exit status and output are.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A running `warden serve`, with the addresses it logged.
pub struct Server {
    pub child: Child,
    pub api: SocketAddr,
    pub admin: SocketAddr,
    pub logs: mpsc::Receiver<String>,
    pub stdout: mpsc::Receiver<String>,
}

impl Server {
    pub fn start(cmd: &mut Command) -> Server {
        let mut child = cmd
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (out_tx, stdout) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if out_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (tx, logs) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut api, mut admin) = (None, None);
        while api.is_none() || admin.is_none() {
            let line = logs
                .recv_timeout(Duration::from_secs(30))
                .expect("warden serve logged its addresses");
            let addr =
                || -> SocketAddr { line.split("addr=").nth(1).unwrap().trim().parse().unwrap() };
            if line.contains("data plane listening") {
                api = Some(addr());
            } else if line.contains("admin listening") {
                admin = Some(addr());
            }
        }
        Server {
            child,
            api: api.unwrap(),
            admin: admin.unwrap(),
            logs,
            stdout,
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = wait_timeout(&mut self.child, Duration::from_secs(20))
            .expect("warden stopped within 20 s of SIGTERM");
        let logs = self.logs.try_iter().collect();
        (status, logs)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A minimal HTTP/1.1 GET: status and body.
pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    // Small JSON bodies come back either whole or as a single chunk.
    let body = if resp
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body.lines().nth(1).unwrap_or("").to_owned()
    } else {
        body
    };
    (status, body)
}

/// A minimal HTTP/1.1 request with an optional bearer key; the answer's status and JSON body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> (u16, serde_json::Value) {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("Content-Type", content_type)];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    http_with(addr, method, path, &headers, body)
}

/// An HTTP/1.1 request with the given headers; the answer's status and JSON body.
pub fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, serde_json::Value) {
    let (status, _, body) = http_full(addr, method, path, headers, body);
    (status, body)
}

/// Like [`http_with`], also returning the response head (status line and headers), lowercased.
pub fn http_full(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, serde_json::Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    // The server may answer (413) before reading a large body; ignore a reset while sending.
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    (
        status,
        head.to_ascii_lowercase(),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// A response header's value from a head returned by [`http_full`].
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

/// A JSON POST with a bearer key.
pub fn post(
    addr: SocketAddr,
    path: &str,
    key: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    http(
        addr,
        "POST",
        path,
        Some(key),
        "application/json",
        body.to_string().as_bytes(),
    )
}

/// Starts `warden serve` on a fresh data dir and returns it with the bootstrap admin key.
pub fn server_with_admin_key(dir: &Path) -> (Server, String) {
    server_with_admin_key_cmd(warden(), dir)
}

/// As [`server_with_admin_key`], with a prepared command (its environment, say).
pub fn server_with_admin_key_cmd(mut cmd: Command, dir: &Path) -> (Server, String) {
    cmd.arg("--data-dir").arg(dir);
    let server = Server::start(&mut cmd);
    let mut key = String::new();
    while !key.starts_with("wdn_") {
        key = server
            .stdout
            .recv_timeout(Duration::from_secs(30))
            .expect("the bootstrap key")
            .trim()
            .to_owned();
    }
    (server, key)
}

/// Creates an API key with `warden keys create` and returns its secret.
pub fn create_key(dir: &Path, tenant: &str, scopes: &str) -> String {
    let out = run(
        dir,
        &[
            "keys", "create", "--tenant", tenant, "--scopes", scopes, "--json",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    created["key"].as_str().unwrap().to_owned()
}

/// An authenticated GET: status and JSON body.
pub fn get_as(addr: SocketAddr, path: &str, key: &str) -> (u16, serde_json::Value) {
    http(addr, "GET", path, Some(key), "application/json", b"")
}

/// Writes a policy pack that escalates every LLM call to the model `gpt-needs-review` into
/// `dir/packs` and returns that directory (for `policy.dir`).
pub fn review_pack(dir: &Path) -> std::path::PathBuf {
    let packs = dir.join("packs");
    std::fs::create_dir_all(&packs).unwrap();
    std::fs::write(
        packs.join("p.yaml"),
        "pack: review\nversion: 1.0.0\ndefault: allow\nrules:\n  - id: review\n    match:\n      decision_type: llm.request\n    when:\n      field: model\n      op: \"==\"\n      value: gpt-needs-review\n    outcome: escalate\n    reason: MODEL_NEEDS_REVIEW\n",
    )
    .unwrap();
    packs
}

/// A chat completion for `gpt-needs-review` (the mock answers `answer`), sent in the background:
/// with `proxy.escalation: hold` it waits for a reviewer.
pub fn held_call(
    addr: SocketAddr,
    key: String,
    answer: &str,
) -> tokio::task::JoinHandle<reqwest::Response> {
    let body = serde_json::json!({"model": "gpt-needs-review",
        "messages": [{"role": "user", "content": format!("say:{answer}")}]});
    spawn_chat(addr, key, body)
}

/// `POST /v1/chat/completions` with `body`, sent in the background.
pub fn spawn_chat(
    addr: SocketAddr,
    key: String,
    body: serde_json::Value,
) -> tokio::task::JoinHandle<reqwest::Response> {
    tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("http://{addr}/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    })
}

/// The first open Decision Desk thread, once there is one (at most 20 s).
pub async fn open_thread(addr: SocketAddr, key: &str) -> String {
    let start = std::time::Instant::now();
    loop {
        let (_, list) = get_as(addr, "/v1/escalations?status=OPEN", key);
        if let Some(t) = list["escalations"].as_array().and_then(|a| a.first()) {
            return t["thread_id"].as_str().unwrap().to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no open thread: {list}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Warden whose one upstream is a fresh mock provider answering within `timeout`, with `yaml`
/// appended to its configuration: the server, its admin key, what the mock receives, and the
/// directory holding the configuration and the data (`data/`).
pub async fn server_with_mock(
    timeout: &str,
    yaml: &str,
) -> (Server, String, warden_testkit::Received, tempfile::TempDir) {
    // The clients here use reqwest without a built-in crypto provider, as Warden does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (mock, received) = warden_testkit::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warden.yaml");
    std::fs::write(
        &config,
        format!(
            "upstreams:\n  - name: mock\n    base_url: http://{mock}/v1\n    api_key_env: MOCK_PROVIDER_KEY\n    timeout: {timeout}\n{yaml}"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let (server, key) = tokio::task::spawn_blocking(move || {
        let mut cmd = warden();
        cmd.env("WARDEN_CONFIG", &config);
        cmd.env("MOCK_PROVIDER_KEY", "sk-provider-secret");
        server_with_admin_key_cmd(cmd, &data)
    })
    .await
    .unwrap();
    (server, key, received, dir)
}
