//! Loading through the public API: defaults, the example file, file problems with positions,
//! environment overrides.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use warden_config::{
    check, load, settings, Config, ConfigError, LogFormat, Problem, ProblemOrigin,
};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/warden.yaml");

fn env(vars: &[(&str, &str)]) -> BTreeMap<String, String> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn no_env() -> BTreeMap<String, String> {
    BTreeMap::new()
}

/// Loads `yaml` from a file named `warden.yaml` with `vars` as the environment.
fn load_yaml(yaml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.yaml");
    std::fs::write(&path, yaml).unwrap();
    load(Some(&path), &env(vars))
}

/// The problems of loading `yaml`, displayed, with the temporary directory left out.
fn problems_with_env(yaml: &str, vars: &[(&str, &str)]) -> Vec<String> {
    match load_yaml(yaml, vars) {
        Ok(config) => panic!("expected problems, loaded {config:?}"),
        Err(ConfigError::Invalid(problems)) => problems
            .iter()
            .map(|p| {
                let mut p = p.clone();
                if let ProblemOrigin::File { file, .. } = &mut p.origin {
                    *file = PathBuf::from(file.file_name().unwrap());
                }
                p.to_string()
            })
            .collect(),
        Err(e) => panic!("expected problems, got {e}"),
    }
}

fn problems(yaml: &str) -> Vec<String> {
    problems_with_env(yaml, &[])
}

#[test]
fn no_file_and_empty_env_is_the_default() {
    let config = load(None, &no_env()).unwrap();
    assert_eq!(config, Config::default());
}

#[test]
fn defaults_are_the_documented_ones() {
    let c = Config::default();
    assert_eq!(c.data_dir, Path::new("./warden-data"));
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.admin_listen.to_string(), "127.0.0.1:9090");
    assert_eq!(c.server.shutdown_grace, Duration::from_secs(30));
    assert_eq!(c.ledger.origin, "warden");
    assert_eq!(c.ledger.batch_max, 4096);
    assert_eq!(c.ledger.batch_wait, Duration::ZERO);
    assert_eq!(c.ledger.signing_key, None);
    assert_eq!(c.log.format, LogFormat::Text);
    assert_eq!(c.log.level, "info");
}

#[test]
fn signing_key_path_defaults_under_data_dir() {
    let mut ledger = Config::default().ledger;
    assert_eq!(
        ledger.signing_key_path(Path::new("/var/lib/warden")),
        Path::new("/var/lib/warden/keys/ledger.key")
    );
    ledger.signing_key = Some(PathBuf::from("/etc/warden/key"));
    assert_eq!(
        ledger.signing_key_path(Path::new("/var/lib/warden")),
        Path::new("/etc/warden/key")
    );
}

#[test]
fn example_file_loads_and_equals_the_default() {
    let config = check(Path::new(EXAMPLE), &no_env()).unwrap();
    assert_eq!(config, Config::default());
}

#[test]
fn example_file_documents_every_setting_and_its_env_var() {
    let text = std::fs::read_to_string(EXAMPLE).unwrap();
    for s in settings() {
        let key = s.path.rsplit('.').next().unwrap();
        assert!(
            text.contains(&format!("{key}: {}\n", s.default)),
            "example lacks `{key}: {}`",
            s.default
        );
        assert!(
            text.contains(&format!("env: {}", s.env)),
            "example lacks {}",
            s.env
        );
    }
}

#[test]
fn warden_config_env_names_the_file() {
    let config = load(None, &env(&[("WARDEN_CONFIG", EXAMPLE)])).unwrap();
    assert_eq!(config, Config::default());
    let err = load(None, &env(&[("WARDEN_CONFIG", "/nonexistent/w.yaml")])).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
}

#[test]
fn explicit_path_wins_over_warden_config() {
    let err = load(
        Some(Path::new("/nonexistent/explicit.yaml")),
        &env(&[("WARDEN_CONFIG", EXAMPLE)]),
    )
    .unwrap_err();
    match err {
        ConfigError::Read { path, .. } => assert_eq!(path, Path::new("/nonexistent/explicit.yaml")),
        e => panic!("{e}"),
    }
}

#[test]
fn missing_file_is_a_read_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.yaml");
    let err = load(Some(&path), &no_env()).unwrap_err();
    match &err {
        ConfigError::Read { path: p, source } => {
            assert_eq!(p, &path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        e => panic!("{e}"),
    }
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
}

#[test]
fn a_full_file_sets_every_field() {
    let config = load_yaml(
        "data_dir: /var/lib/warden
server:
  listen: 0.0.0.0:80
  admin_listen: '[::1]:9999'
  shutdown_grace: 2m
ledger:
  origin: example.com/warden
  batch_max: 1
  batch_wait: 250ms
  commit_interval: 1500us
  batched_window: 40ms
  signing_key: /etc/warden/ledger.key
log:
  format: json
  level: warn,warden_ledger=debug
",
        &[],
    )
    .unwrap();
    assert_eq!(config.data_dir, Path::new("/var/lib/warden"));
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:80");
    assert_eq!(config.server.admin_listen.to_string(), "[::1]:9999");
    assert_eq!(config.server.shutdown_grace, Duration::from_secs(120));
    assert_eq!(config.ledger.origin, "example.com/warden");
    assert_eq!(config.ledger.batch_max, 1);
    assert_eq!(config.ledger.batch_wait, Duration::from_millis(250));
    assert_eq!(config.ledger.commit_interval, Duration::from_micros(1500));
    assert_eq!(config.ledger.batched_window, Duration::from_millis(40));
    assert_eq!(
        config.ledger.signing_key.as_deref(),
        Some(Path::new("/etc/warden/ledger.key"))
    );
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.log.level, "warn,warden_ledger=debug");
}

#[test]
fn a_partial_file_keeps_the_other_defaults() {
    let config = load_yaml("ledger:\n  batch_max: 10\nserver:\n", &[]).unwrap();
    let mut expected = Config::default();
    expected.ledger.batch_max = 10;
    assert_eq!(config, expected);
}

#[test]
fn every_problem_is_reported_with_line_and_column() {
    let yaml = "\
server:
  listen: localhost
ledger:
  batch_max: lots
  bacth_max: 5
  batch_wait: 2s
log:
  format: xml
";
    assert_eq!(
        problems(yaml),
        [
            "warden.yaml:2:11: server.listen: expected a socket address like 127.0.0.1:8080 or [::1]:8080, found string \"localhost\"",
            "warden.yaml:4:14: ledger.batch_max: expected an integer from 1 to 65536, found string \"lots\"",
            "warden.yaml:5:3: ledger.bacth_max: unknown field `bacth_max`, expected one of `origin`, `batch_max`, `batch_wait`, `commit_interval`, `durability`, `batched_window`, `signing_key`",
            "warden.yaml:6:15: ledger.batch_wait: expected a duration of at most 1s, found string \"2s\"",
            "warden.yaml:8:11: log.format: expected one of `text`, `json`, found string \"xml\"",
        ]
    );
}

#[test]
fn a_commit_interval_past_100ms_is_refused() {
    assert_eq!(
        problems("ledger:\n  commit_interval: 1s\n"),
        ["warden.yaml:2:20: ledger.commit_interval: expected a duration of at most 100ms, found string \"1s\""]
    );
}

#[test]
fn a_batched_window_past_1s_is_refused() {
    assert_eq!(
        problems("ledger:\n  batched_window: 2s\n"),
        ["warden.yaml:2:19: ledger.batched_window: expected a duration of at most 1s, found string \"2s\""]
    );
}

#[test]
fn config_error_display_lists_every_problem_one_per_line() {
    let err = load_yaml("ledger:\n  batch_max: 0\nlog:\n  level: ''\n", &[]).unwrap_err();
    let text = err.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], "invalid configuration (2 problems):");
    assert!(lines[1].ends_with(
        "warden.yaml:2:14: ledger.batch_max: expected an integer from 1 to 65536, found integer 0"
    ));
    assert!(lines[2].ends_with(
        "warden.yaml:4:10: log.level: expected a log filter such as `info` or `warn,warden=debug` (non-empty), found string \"\""
    ));
}

#[test]
fn unknown_keys_top_level_and_nested() {
    assert_eq!(
        problems("dataa_dir: /x\nserver:\n  listen: 127.0.0.1:1\n  port: 80\n"),
        [
            "warden.yaml:1:1: dataa_dir: unknown field `dataa_dir`, expected one of `data_dir`, `server`, `ledger`, `store`, `policy`, `upstreams`, `proxy`, `limits`, `agents`, `tokenizers`, `guardians`, `mcp`, `gloxi`, `events`, `telemetry`, `log`",
            "warden.yaml:4:3: server.port: unknown field `port`, expected one of `listen`, `admin_listen`, `shutdown_grace`, `requests_per_minute`",
        ]
    );
}

#[test]
fn wrong_types() {
    assert_eq!(
        problems("ledger:\n  batch_max: \"4096\"\n  origin:\n    a: b\nserver: [1, 2]\nlog: text\n"),
        [
            "warden.yaml:2:14: ledger.batch_max: expected an integer from 1 to 65536, found string \"4096\"",
            "warden.yaml:4:5: ledger.origin: expected 1 to 128 printable ASCII characters without leading or trailing spaces, found a mapping",
            "warden.yaml:5:9: server: expected a mapping, found a list",
            "warden.yaml:6:6: log: expected a mapping, found string \"text\"",
        ]
    );
    assert_eq!(
        problems("data_dir: 12\nledger:\n  batch_max: 1.5\n  signing_key: [a]\n"),
        [
            "warden.yaml:1:11: data_dir: expected a path (non-empty), found integer 12",
            "warden.yaml:3:14: ledger.batch_max: expected an integer from 1 to 65536, found number 1.5",
            "warden.yaml:4:16: ledger.signing_key: expected a path or null, found a list",
        ]
    );
}

#[test]
fn out_of_range_values() {
    assert_eq!(
        problems("ledger:\n  batch_max: 0\n"),
        ["warden.yaml:2:14: ledger.batch_max: expected an integer from 1 to 65536, found integer 0"]
    );
    assert_eq!(
        problems("ledger:\n  batch_max: 65537\n"),
        ["warden.yaml:2:14: ledger.batch_max: expected an integer from 1 to 65536, found integer 65537"]
    );
    assert_eq!(
        problems("ledger:\n  batch_max: -1\n"),
        ["warden.yaml:2:14: ledger.batch_max: expected an integer from 1 to 65536, found integer -1"]
    );
    assert_eq!(
        problems("ledger:\n  batch_wait: 2s\n"),
        ["warden.yaml:2:15: ledger.batch_wait: expected a duration of at most 1s, found string \"2s\""]
    );
    assert_eq!(
        problems("server:\n  shutdown_grace: 11m\n"),
        ["warden.yaml:2:19: server.shutdown_grace: expected a duration of at most 10m, found string \"11m\""]
    );
    // The bounds themselves are allowed.
    let c = load_yaml(
        "ledger:\n  batch_max: 65536\n  batch_wait: 1s\nserver:\n  shutdown_grace: 10m\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.ledger.batch_max, 65536);
    assert_eq!(c.ledger.batch_wait, Duration::from_secs(1));
    assert_eq!(c.server.shutdown_grace, Duration::from_secs(600));
}

#[test]
fn bad_socket_address_duration_and_enum() {
    assert_eq!(
        problems("server:\n  admin_listen: 127.0.0.1\n  shutdown_grace: soon\nlog:\n  format: JSON\n"),
        [
            "warden.yaml:2:17: server.admin_listen: expected a socket address like 127.0.0.1:8080 or [::1]:8080, found string \"127.0.0.1\"",
            "warden.yaml:3:19: server.shutdown_grace: expected a duration like 250ms, 30s or 2m, at most 10m, found string \"soon\"",
            "warden.yaml:5:11: log.format: expected one of `text`, `json`, found string \"JSON\"",
        ]
    );
    assert_eq!(
        problems("server:\n  listen: 8080\n"),
        ["warden.yaml:2:11: server.listen: expected a socket address like 127.0.0.1:8080 or [::1]:8080, found integer 8080"]
    );
}

#[test]
fn bad_origin() {
    assert_eq!(
        problems("ledger:\n  origin: ' padded'\n"),
        ["warden.yaml:2:11: ledger.origin: expected 1 to 128 printable ASCII characters without leading or trailing spaces, found string \" padded\""]
    );
}

#[test]
fn yaml_syntax_error_has_its_line() {
    let found = problems("server:\n  listen: 127.0.0.1:8080\n  admin_listen: [oops\nlog:\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("warden.yaml:4:"), "{found:?}");
    assert!(found[0].contains("invalid YAML: "), "{found:?}");

    let found = problems("ledger:\n  origin: a\n  origin: b\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("warden.yaml:3:"), "{found:?}");
    assert!(found[0].contains("duplicated key"), "{found:?}");

    let found = problems("server:\n\tlisten: x\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("warden.yaml:2:"), "{found:?}");
}

#[test]
fn empty_documents_are_all_defaults() {
    for yaml in ["", "\n", "# only a comment\n", "---\n", "null\n", "~\n"] {
        assert_eq!(load_yaml(yaml, &[]).unwrap(), Config::default(), "{yaml:?}");
    }
}

#[test]
fn top_level_must_be_a_mapping() {
    assert_eq!(
        problems("- data_dir: /x\n"),
        ["warden.yaml:1:1: expected a mapping of settings at the top level, found a list"]
    );
    assert_eq!(
        problems("just words\n"),
        ["warden.yaml:1:1: expected a mapping of settings at the top level, found string \"just words\""]
    );
}

#[test]
fn one_document_only() {
    assert_eq!(
        problems("log:\n  level: info\n---\nlog:\n  level: debug\n"),
        ["warden.yaml:4:1: expected a single YAML document, found 2 documents"]
    );
}

#[test]
fn non_string_keys_are_reported() {
    assert_eq!(
        problems("ledger:\n  1: x\n"),
        ["warden.yaml:2:3: ledger: expected a field name, found integer 1"]
    );
}

#[test]
fn env_overrides_win_over_the_file() {
    let config = load_yaml(
        "data_dir: /from/file\nledger:\n  batch_max: 10\n  origin: file\n",
        &[
            ("WARDEN_DATA_DIR", "/from/env"),
            ("WARDEN_LEDGER__BATCH_MAX", "20"),
            ("WARDEN_SERVER__LISTEN", "0.0.0.0:8081"),
            ("WARDEN_LOG__FORMAT", "json"),
        ],
    )
    .unwrap();
    assert_eq!(config.data_dir, Path::new("/from/env"));
    assert_eq!(config.ledger.batch_max, 20);
    assert_eq!(config.ledger.origin, "file");
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:8081");
    assert_eq!(config.log.format, LogFormat::Json);
}

#[test]
fn every_setting_has_a_working_env_var() {
    let values = [
        ("data_dir", "/d"),
        ("server.listen", "10.1.1.1:1"),
        ("server.admin_listen", "10.1.1.1:2"),
        ("server.shutdown_grace", "1m 30s"),
        ("server.requests_per_minute", "120"),
        ("ledger.origin", "o"),
        ("ledger.batch_max", "7"),
        ("ledger.batch_wait", "5ms"),
        ("ledger.commit_interval", "2ms"),
        ("ledger.durability", "batched"),
        ("ledger.batched_window", "25ms"),
        ("ledger.signing_key", "/k"),
        ("store.url", "postgres://warden:pw@db:5432/warden"),
        ("policy.dir", "/p"),
        ("policy.reload_interval", "9s"),
        (
            "upstreams",
            r#"[{"name": "local", "base_url": "http://127.0.0.1:8000/v1/"}]"#,
        ),
        ("proxy.unknown_paths", "passthrough"),
        ("proxy.escalation", "hold"),
        ("proxy.escalation_timeout", "2m"),
        ("proxy.fail_mode", "open"),
        ("proxy.max_body_bytes", "65536"),
        ("limits", "[{per: tenant, tokens_per_minute: 1000}]"),
        ("limits.backend", "redis"),
        ("limits.redis_url", "redis://:pw@redis.internal:6380/1"),
        ("limits.redis_prefix", "fleet-a"),
        ("limits.redis_timeout", "50ms"),
        ("limits.fail_mode", "reject"),
        ("limits.rules", "[{per: tenant, tokens_per_minute: 1000}]"),
        ("agents", "[{name: bot, intent: answers questions}]"),
        ("tokenizers", "[{models: [llama*], file: /t.json}]"),
        ("guardians", "{pii: {enabled: false}}"),
        ("mcp.allowed_hosts", "warden.internal, 10.0.0.5:8080"),
        ("mcp.escalation", "fail"),
        ("mcp.escalation_timeout", "30s"),
        ("mcp.call_timeout", "5s"),
        ("mcp.fail_mode", "open"),
        (
            "mcp.upstreams",
            r#"[{name: tools, command: ./tools, args: [--quiet], env: {MODE: test}}, {name: gh, url: "https://example.com/mcp", headers: {Authorization: "Bearer x"}}]"#,
        ),
        (
            "events.webhook_secrets",
            "[{alias: primary, env: HOOK_SECRET}, {alias: old, file: /s}]",
        ),
        ("events.allowed_targets", "127.0.0.1:8088, hooks.internal"),
        ("events.delivery_timeout", "3s"),
        ("events.max_attempts", "3"),
        ("events.retry_base", "100ms"),
        ("events.retry_max", "2s"),
        ("events.endpoint_concurrency", "2"),
        ("events.checkpoint_interval", "10s"),
        ("telemetry.otlp_endpoint", "http://127.0.0.1:4318"),
        ("telemetry.otlp_protocol", "http/json"),
        ("telemetry.service_name", "warden-test"),
        ("gloxi.model", "gpt-4o-mini"),
        ("gloxi.max_tokens", "400"),
        ("log.format", "json"),
        ("log.level", "debug"),
    ];
    let all = settings();
    assert_eq!(all.len(), values.len(), "a setting without a case here");
    let vars: Vec<(String, &str)> = all
        .iter()
        .map(|s| {
            let v = values.iter().find(|(p, _)| *p == s.path).unwrap().1;
            (s.env.clone(), v)
        })
        .collect();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let c = load(None, &env(&vars)).unwrap();
    assert_eq!(
        c,
        Config {
            data_dir: "/d".into(),
            server: warden_config::ServerConfig {
                listen: "10.1.1.1:1".parse().unwrap(),
                admin_listen: "10.1.1.1:2".parse().unwrap(),
                shutdown_grace: Duration::from_secs(90),
                requests_per_minute: 120,
            },
            ledger: warden_config::LedgerConfig {
                origin: "o".into(),
                batch_max: 7,
                batch_wait: Duration::from_millis(5),
                commit_interval: Duration::from_millis(2),
                durability: warden_config::Durability::Batched,
                batched_window: Duration::from_millis(25),
                signing_key: Some("/k".into()),
            },
            store: warden_config::StoreConfig {
                url: Some("postgres://warden:pw@db:5432/warden".into()),
            },
            policy: warden_config::PolicyConfig {
                dir: Some("/p".into()),
                reload_interval: Duration::from_secs(9),
            },
            log: warden_config::LogConfig {
                format: LogFormat::Json,
                level: "debug".into(),
            },
            upstreams: vec![warden_config::UpstreamConfig {
                name: "local".into(),
                base_url: "http://127.0.0.1:8000/v1".into(),
                ..Default::default()
            }],
            proxy: warden_config::ProxyConfig {
                unknown_paths: warden_config::UnknownPaths::Passthrough,
                escalation: warden_config::EscalationMode::Hold,
                escalation_timeout: Duration::from_secs(120),
                fail_mode: warden_config::FailMode::Open,
                max_body_bytes: 65536,
            },
            limits: warden_config::LimitsConfig {
                rules: vec![warden_config::LimitConfig {
                    per: warden_config::LimitScope::Tenant,
                    only: None,
                    requests_per_minute: None,
                    tokens_per_minute: Some(1000),
                }],
                backend: warden_config::LimitBackend::Redis,
                redis_url: warden_config::RedisUrl::parse("redis://:pw@redis.internal:6380/1")
                    .unwrap(),
                redis_prefix: "fleet-a".into(),
                redis_timeout: Duration::from_millis(50),
                fail_mode: warden_config::LimitFailMode::Reject,
            },
            agents: vec![warden_config::AgentConfig {
                name: "bot".into(),
                tenant: "default".into(),
                intent: Some("answers questions".into()),
            }],
            tokenizers: vec![warden_config::TokenizerConfig {
                models: vec!["llama*".into()],
                file: "/t.json".into(),
            }],
            guardians: serde_json::json!({"pii": {"enabled": false}}),
            gloxi: warden_config::GloxiConfig {
                model: Some("gpt-4o-mini".into()),
                max_tokens: 400,
            },
            mcp: warden_config::McpConfig {
                allowed_hosts: vec!["warden.internal".into(), "10.0.0.5:8080".into()],
                escalation: warden_config::McpEscalation::Fail,
                escalation_timeout: Duration::from_secs(30),
                call_timeout: Duration::from_secs(5),
                fail_mode: Some(warden_config::FailMode::Open),
                upstreams: vec![
                    warden_config::McpUpstreamConfig {
                        name: "tools".into(),
                        command: Some("./tools".into()),
                        args: vec!["--quiet".into()],
                        env: vec![("MODE".into(), "test".into())],
                        ..Default::default()
                    },
                    warden_config::McpUpstreamConfig {
                        name: "gh".into(),
                        url: Some("https://example.com/mcp".into()),
                        headers: vec![("Authorization".into(), "Bearer x".into())],
                        ..Default::default()
                    },
                ],
            },
            events: warden_config::EventsConfig {
                webhook_secrets: vec![
                    warden_config::WebhookSecretConfig {
                        alias: "primary".into(),
                        env: Some("HOOK_SECRET".into()),
                        file: None,
                    },
                    warden_config::WebhookSecretConfig {
                        alias: "old".into(),
                        env: None,
                        file: Some("/s".into()),
                    },
                ],
                allowed_targets: vec!["127.0.0.1:8088".into(), "hooks.internal".into()],
                delivery_timeout: Duration::from_secs(3),
                max_attempts: 3,
                retry_base: Duration::from_millis(100),
                retry_max: Duration::from_secs(2),
                endpoint_concurrency: 2,
                checkpoint_interval: Duration::from_secs(10),
            },
            telemetry: warden_config::TelemetryConfig {
                otlp_endpoint: Some("http://127.0.0.1:4318".into()),
                otlp_protocol: warden_config::OtlpProtocol::Json,
                service_name: "warden-test".into(),
            },
        }
    );
}

#[test]
fn an_mcp_upstream_needs_exactly_one_of_command_and_url() {
    let err = load_yaml(
        "mcp:\n  upstreams:\n    - name: a\n    - name: b__c\n      url: http://x\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("exactly one of `command`"), "{err}");
    assert!(err.contains("without `__`"), "{err}");
}

#[test]
fn env_names_are_case_insensitive_and_empty_signing_key_is_null() {
    let c = load_yaml(
        "ledger:\n  signing_key: /from/file\n",
        &[
            ("warden_ledger__batch_max", "3"),
            ("WARDEN_LEDGER__SIGNING_KEY", ""),
        ],
    )
    .unwrap();
    assert_eq!(c.ledger.batch_max, 3);
    assert_eq!(c.ledger.signing_key, None);
}

#[test]
fn bad_env_values_name_the_variable() {
    assert_eq!(
        problems_with_env(
            "",
            &[
                ("WARDEN_LEDGER__BATCH_MAX", "lots"),
                ("WARDEN_SERVER__LISTEN", "nowhere"),
                ("WARDEN_LEDGER__BATCH_WAIT", "5s"),
                ("WARDEN_DATA_DIR", ""),
            ]
        ),
        [
            "env WARDEN_DATA_DIR: data_dir: expected a path (non-empty), found string \"\"",
            "env WARDEN_LEDGER__BATCH_MAX: ledger.batch_max: expected an integer from 1 to 65536, found string \"lots\"",
            "env WARDEN_LEDGER__BATCH_WAIT: ledger.batch_wait: expected a duration of at most 1s, found string \"5s\"",
            "env WARDEN_SERVER__LISTEN: server.listen: expected a socket address like 127.0.0.1:8080 or [::1]:8080, found string \"nowhere\"",
        ]
    );
}

#[test]
fn unknown_env_field_in_a_known_section_is_reported() {
    let err = load(None, &env(&[("WARDEN_LEDGER__NOPE", "1")])).unwrap_err();
    let ConfigError::Invalid(problems) = err else {
        panic!("{err}")
    };
    assert_eq!(
        problems.0,
        [Problem {
            path: "ledger.nope".into(),
            message: "unknown field `nope`, expected one of `origin`, `batch_max`, `batch_wait`, `commit_interval`, `durability`, `batched_window`, `signing_key`".into(),
            origin: ProblemOrigin::Env {
                var: "WARDEN_LEDGER__NOPE".into()
            },
        }]
    );
}

#[test]
fn unrelated_warden_variables_are_ignored() {
    let vars = env(&[
        ("WARDEN_API_KEY", "secret"),
        ("WARDEN_TEST_DATA", "x"),
        ("WARDEN_TEST__THING", "x"),
        ("WARDEN_LOG_LEVEL", "x"),
        ("HOME", "/root"),
    ]);
    assert_eq!(load(None, &vars).unwrap(), Config::default());
}

#[test]
fn file_and_env_problems_are_reported_together() {
    assert_eq!(
        problems_with_env(
            "ledger:\n  batch_max: 0\n",
            &[("WARDEN_LOG__FORMAT", "yaml")]
        ),
        [
            "warden.yaml:2:14: ledger.batch_max: expected an integer from 1 to 65536, found integer 0",
            "env WARDEN_LOG__FORMAT: log.format: expected one of `text`, `json`, found string \"yaml\"",
        ]
    );
}

#[test]
fn upstreams_limits_and_agents_from_a_file() {
    let c = load_yaml(
        "upstreams:
  - name: openai
    base_url: https://api.openai.com/v1
    api_key_env: OPENAI_API_KEY
    models: [gpt-4o*, o3-mini]
    timeout: 30s
  - name: local
    base_url: http://127.0.0.1:11434/v1
    api_key_file: /run/secrets/key
limits:
  - per: key
    requests_per_minute: 60
  - per: model
    only: gpt-4o*
    tokens_per_minute: 100000
agents:
  - name: support-bot
    tenant: acme
    intent: Answers customer questions about orders
",
        &[],
    )
    .unwrap();
    assert_eq!(c.upstreams.len(), 2);
    assert_eq!(c.upstreams[0].models, ["gpt-4o*", "o3-mini"]);
    assert_eq!(
        c.upstreams[0].api_key,
        warden_config::ApiKeySource::Env("OPENAI_API_KEY".into())
    );
    assert_eq!(c.upstreams[0].timeout, Duration::from_secs(30));
    assert_eq!(c.upstreams[1].models, ["*"]);
    assert_eq!(
        c.upstreams[1].api_key,
        warden_config::ApiKeySource::File("/run/secrets/key".into())
    );
    assert_eq!(c.limits.rules[1].only.as_deref(), Some("gpt-4o*"));
    assert_eq!(c.agents[0].tenant, "acme");
}

#[test]
fn list_item_problems_are_positioned_at_the_item_field() {
    assert_eq!(
        problems(
            "upstreams:
  - name: a
    base_url: ftp://x
    api_key_env: K
    api_key_file: /f
    colour: red
  - base_url: http://x
  - name: a
    base_url: http://y
limits:
  - per: planet
  - per: key
guardians: [1]
"
        ),
        [
            "warden.yaml:3:15: upstreams[0].base_url: expected an http:// or https:// URL, found string \"ftp://x\"",
            "warden.yaml:5:19: upstreams[0].api_key_file: give only one of `api_key_env`, `api_key_file`",
            "warden.yaml:6:5: upstreams[0].colour: unknown field `colour`, expected one of `name`, `base_url`, `api_key_env`, `api_key_file`, `models`, `timeout`",
            "warden.yaml:7:5: upstreams[1]: missing field `name`",
            "warden.yaml:11:10: limits[0].per: expected one of `key`, `agent`, `tenant`, `model`, found string \"planet\"",
            "warden.yaml:12:5: limits[1]: a limit needs `requests_per_minute`, `tokens_per_minute` or both",
            "warden.yaml:13:12: guardians: expected a mapping of guardian settings, found a list",
        ]
    );
    assert_eq!(
        problems(
            "upstreams:\n  - {name: a, base_url: http://x}\n  - {name: a, base_url: http://y}\n"
        ),
        ["warden.yaml:2:3: upstreams: upstream name `a` is used twice"]
    );
}

#[test]
fn limits_as_a_section_or_as_the_short_list() {
    let short = load_yaml("limits:\n  - per: key\n    requests_per_minute: 60\n", &[]).unwrap();
    let long = load_yaml(
        "limits:\n  backend: redis\n  redis_url: redis://u:secret@10.0.0.7:6379/3\n  redis_prefix: fleet:eu\n  redis_timeout: 40ms\n  fail_mode: reject\n  rules:\n    - per: key\n      requests_per_minute: 60\n",
        &[],
    )
    .unwrap();
    assert_eq!(short.limits.rules, long.limits.rules);
    assert_eq!(short.limits.backend, warden_config::LimitBackend::Local);
    assert_eq!(long.limits.backend, warden_config::LimitBackend::Redis);
    assert_eq!(
        long.limits.redis_url.expose(),
        "redis://u:secret@10.0.0.7:6379/3"
    );
    assert_eq!(long.limits.redis_prefix, "fleet:eu");
    assert_eq!(long.limits.redis_timeout, Duration::from_millis(40));
    assert_eq!(long.limits.fail_mode, warden_config::LimitFailMode::Reject);
    // The password never reaches a log through `Debug`.
    assert!(!format!("{long:?}").contains(":secret@"));
    assert!(!format!("{:?}", long.limits).contains("secret"));
    // The environment sets one field of the section and keeps the file's rules.
    let mixed = load_yaml(
        "limits:\n  - per: tenant\n    tokens_per_minute: 9\n",
        &[
            ("WARDEN_LIMITS__BACKEND", "redis"),
            ("WARDEN_LIMITS__FAIL_MODE", "reject"),
        ],
    )
    .unwrap();
    assert_eq!(mixed.limits.rules[0].tokens_per_minute, Some(9));
    assert_eq!(mixed.limits.backend, warden_config::LimitBackend::Redis);
}

#[test]
fn bad_limits_settings_name_the_field() {
    assert_eq!(
        problems(
            "limits:\n  backend: memcached\n  redis_url: rediss://r:6379\n  redis_prefix: \"a b\"\n  redis_timeout: 0ms\n  fail_mode: open\n  colour: red\n  rules:\n    - per: planet\n"
        ),
        [
            "warden.yaml:2:12: limits.backend: expected one of `local`, `redis`, found string \"memcached\"",
            "warden.yaml:3:14: limits.redis_url: expected a redis:// URL (this build has no TLS for Redis: keep Redis on the cluster network), found string \"rediss://r:6379\"",
            "warden.yaml:4:17: limits.redis_prefix: expected 1 to 64 letters, digits, `-`, `_`, `.` or `:`, found string \"a b\"",
            "warden.yaml:5:18: limits.redis_timeout: expected a duration above 0ms, at most 10s, found string \"0ms\"",
            "warden.yaml:6:14: limits.fail_mode: expected one of `local`, `reject`, found string \"open\"",
            "warden.yaml:7:3: limits.colour: unknown field `colour`, expected one of `backend`, `redis_url`, `redis_prefix`, `redis_timeout`, `fail_mode`, `rules`",
            "warden.yaml:9:12: limits.rules[0].per: expected one of `key`, `agent`, `tenant`, `model`, found string \"planet\"",
        ]
    );
    assert_eq!(
        problems_with_env("", &[("WARDEN_LIMITS__REDIS_URL", "http://r:6379")]),
        ["env WARDEN_LIMITS__REDIS_URL: limits.redis_url: expected a redis:// URL such as redis://127.0.0.1:6379, found string \"http://r:6379\""]
    );
}

#[test]
fn upstream_credentials_stay_out_of_debug_output() {
    let c = load_yaml(
        "mcp:\n  upstreams:\n    - {name: gh, url: \"https://example.com/mcp\", headers: {Authorization: \"Bearer ghp_secretvalue\"}}\n    - {name: t, command: ./t, env: {API_TOKEN: tok_secretvalue}}\n",
        &[],
    )
    .unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("secretvalue"), "{shown}");
    assert!(
        shown.contains("Authorization") && shown.contains("API_TOKEN"),
        "{shown}"
    );
}
