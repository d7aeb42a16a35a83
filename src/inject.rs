//! `warden inject`: adds the Warden sidecar to Kubernetes workloads, as `linkerd inject` does.
//!
//! The sidecar is a native sidecar (an init container with `restartPolicy: Always`, Kubernetes
//! 1.29 or later): it starts, and passes its startup probe, before the agent's containers, so
//! the agent's first call finds Warden listening; and it does not keep a Job's pod alive once
//! the agent has finished. Warden listens on the pod's loopback (`127.0.0.1:8080`), which the
//! agent shares, and its admin port on the pod address for the kubelet's probes. Every agent
//! container gets `OPENAI_BASE_URL=http://127.0.0.1:8080/v1`.
//!
//! Idempotent: a pod that already has a container named `warden` is left as it is. The YAML is
//! parsed and written again, so comments and quoting styles are not kept.

use std::borrow::Cow;
use std::io::Read;
use std::process::ExitCode;

use saphyr::{LoadableYamlNode, Mapping, Scalar, Yaml, YamlEmitter};

use crate::cli::InjectArgs;

/// What the agent's OpenAI SDK is pointed at.
pub const BASE_URL: &str = "http://127.0.0.1:8080/v1";
const SIDECAR: &str = "warden";

#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("cannot read standard input: {0}")]
    Read(#[from] std::io::Error),
    #[error("invalid YAML: {0}")]
    Yaml(String),
    #[error("document {doc} ({kind}): {message}")]
    Document {
        doc: usize,
        kind: String,
        message: String,
    },
}

pub fn run(args: &InjectArgs) -> ExitCode {
    let mut input = String::new();
    let result = std::io::stdin()
        .read_to_string(&mut input)
        .map_err(InjectError::from)
        .and_then(|_| inject(&input, args));
    match result {
        Ok((out, notes)) => {
            for n in notes {
                eprintln!("warden inject: {n}");
            }
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("warden inject: {e}");
            ExitCode::from(2)
        }
    }
}

/// Injects every workload of a YAML stream; returns the stream and notes for the operator.
pub fn inject(input: &str, args: &InjectArgs) -> Result<(String, Vec<String>), InjectError> {
    let mut docs = Yaml::load_from_str(input).map_err(|e| InjectError::Yaml(e.to_string()))?;
    let mut notes = Vec::new();
    let mut out = String::new();
    for (i, doc) in docs.iter_mut().enumerate() {
        if doc.is_null() {
            continue;
        }
        inject_object(doc, args, &mut notes).map_err(|(kind, message)| InjectError::Document {
            doc: i + 1,
            kind,
            message,
        })?;
        if !out.is_empty() {
            out.push('\n');
        }
        YamlEmitter::new(&mut out)
            .dump(doc)
            .map_err(|e| InjectError::Yaml(e.to_string()))?;
    }
    if !out.is_empty() {
        out.push('\n');
    }
    Ok((out, notes))
}

fn key(k: &str) -> Yaml<'static> {
    Yaml::Value(Scalar::String(Cow::Owned(k.to_owned())))
}

fn text<'a>(y: &'a Yaml<'_>, k: &str) -> Option<&'a str> {
    y.as_mapping()?.get(&key(k))?.as_str()
}

/// The pod spec of one object: where it sits, by kind. `Err((kind, why))` for a workload
/// without one.
fn inject_object(
    obj: &mut Yaml<'_>,
    args: &InjectArgs,
    notes: &mut Vec<String>,
) -> Result<(), (String, String)> {
    let Some(kind) = text(obj, "kind").map(str::to_owned) else {
        return Err(("?".into(), "not a Kubernetes object: no `kind`".into()));
    };
    let name = obj
        .as_mapping()
        .and_then(|m| m.get(&key("metadata")))
        .and_then(|m| text(m, "name"))
        .unwrap_or("")
        .to_owned();
    let path: &[&str] = match kind.as_str() {
        "List" => {
            let items = obj
                .as_mapping_mut()
                .and_then(|m| m.get_mut(&key("items")))
                .and_then(Yaml::as_vec_mut);
            for item in items.into_iter().flatten() {
                inject_object(item, args, notes)?;
            }
            return Ok(());
        }
        "Pod" => &["spec"],
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => &["spec", "template", "spec"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => return Ok(()),
    };
    let mut node = obj;
    for (depth, step) in path.iter().enumerate() {
        node = match node.as_mapping_mut().and_then(|m| m.get_mut(&key(step))) {
            Some(n) if n.is_mapping() => n,
            _ => {
                return Err((
                    kind.clone(),
                    format!("`{}` is missing or not a mapping", path[..=depth].join(".")),
                ))
            }
        };
    }
    let who = format!("{kind} {name}");
    inject_pod(node, args, &who, notes).map_err(|m| (kind, m))
}

fn containers<'a>(spec: &'a Yaml<'_>, field: &str) -> impl Iterator<Item = &'a Yaml<'a>> {
    spec.as_mapping()
        .and_then(|m| m.get(&key(field)))
        .and_then(Yaml::as_vec)
        .into_iter()
        .flatten()
}

fn inject_pod(
    spec: &mut Yaml<'_>,
    args: &InjectArgs,
    who: &str,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    let injected = containers(spec, "initContainers")
        .chain(containers(spec, "containers"))
        .any(|c| text(c, "name") == Some(SIDECAR));
    if injected {
        notes.push(format!(
            "{who}: already has a `{SIDECAR}` container; left as it is"
        ));
        return Ok(());
    }
    if containers(spec, "containers").next().is_none() {
        return Err("the pod has no containers".into());
    }
    for c in containers(spec, "containers").chain(containers(spec, "initContainers")) {
        let ports = c
            .as_mapping()
            .and_then(|m| m.get(&key("ports")))
            .and_then(Yaml::as_vec);
        for p in ports.into_iter().flatten() {
            let port = p
                .as_mapping()
                .and_then(|m| m.get(&key("containerPort")))
                .and_then(Yaml::as_integer);
            if let Some(port @ (8080 | 9090)) = port {
                notes.push(format!(
                    "{who}: container `{}` uses port {port}, which Warden listens on in the pod",
                    text(c, "name").unwrap_or("?")
                ));
            }
        }
    }
    let pod = spec.as_mapping_mut().expect("checked: a mapping");
    for c in seq(pod, "containers")? {
        let name = text(c, "name").unwrap_or("?").to_owned();
        let Some(c) = c.as_mapping_mut() else {
            return Err(format!("container `{name}` is not a mapping"));
        };
        let env = seq(c, "env")?;
        let url = parse(&format!("name: OPENAI_BASE_URL\nvalue: {BASE_URL}\n"));
        if let Some(old) = set_env(env, url) {
            notes.push(format!(
                "{who}: container `{name}`: OPENAI_BASE_URL was {old}; it now points at Warden"
            ));
        }
        if let Some(secret) = &args.api_key_secret {
            let key_ref = parse(&format!(
                "name: OPENAI_API_KEY\nvalueFrom:\n  secretKeyRef:\n    name: {}\n    key: api-key\n",
                quoted(secret)
            ));
            set_env(env, key_ref);
        }
    }
    // The sidecar goes first among the init containers: others may already call the model.
    seq(pod, "initContainers")?.insert(0, sidecar(args));
    let volumes = seq(pod, "volumes")?;
    for v in pod_volumes(args) {
        let name = text(&v, "name").map(str::to_owned);
        if !volumes.iter().any(|x| text(x, "name") == name.as_deref()) {
            volumes.push(v);
        }
    }
    Ok(())
}

/// The sequence at `field` of a mapping, created empty if absent.
fn seq<'a, 'i>(m: &'a mut Mapping<'i>, field: &str) -> Result<&'a mut Vec<Yaml<'i>>, String> {
    // Not `entry().or_insert_with()`: on a present key it moves the key to the end.
    if !m.contains_key(&key(field)) {
        m.insert(key(field), Yaml::Sequence(Vec::new()));
    }
    let slot = m.get_mut(&key(field)).expect("inserted above");
    if slot.is_null() {
        *slot = Yaml::Sequence(Vec::new());
    }
    slot.as_vec_mut()
        .ok_or_else(|| format!("`{field}` is not a list"))
}

/// Sets an environment variable entry (replacing one of the same name); returns the value it
/// replaced when that differed.
fn set_env<'i>(env: &mut Vec<Yaml<'i>>, entry: Yaml<'i>) -> Option<String> {
    let name = text(&entry, "name").map(str::to_owned);
    match env.iter_mut().find(|e| text(e, "name") == name.as_deref()) {
        Some(old) if *old == entry => None,
        Some(old) => {
            let was = text(old, "value")
                .unwrap_or("(from a reference)")
                .to_owned();
            *old = entry;
            Some(was)
        }
        None => {
            env.push(entry);
            None
        }
    }
}

/// A string as a YAML double-quoted scalar (JSON's escaping is YAML's).
fn quoted(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

fn parse(yaml: &str) -> Yaml<'static> {
    Yaml::load_from_str(yaml)
        .ok()
        .and_then(|mut docs| docs.pop())
        .expect("the sidecar's own YAML parses")
}

/// The sidecar. It takes the fleet's PostgreSQL store from the Secret `warden-store` when there
/// is one (deploy/README.md, "State"), and keeps a SQLite store of its own otherwise. Its
/// figures come from BENCHMARKS.md: about 80 MiB resident idle, 130-150 MiB
/// under load and up to about 370 MiB at saturation; about 1 ms of CPU per governed call.
fn sidecar(args: &InjectArgs) -> Yaml<'static> {
    parse(&format!(
        r#"name: {SIDECAR}
image: {image}
restartPolicy: Always
args: [serve, --config, /etc/warden/config/warden.yaml]
env:
  - name: WARDEN_SERVER__LISTEN
    value: "127.0.0.1:8080"
  - name: WARDEN_SERVER__ADMIN_LISTEN
    value: "0.0.0.0:9090"
  - name: WARDEN_STORE__URL
    valueFrom:
      secretKeyRef: {{name: warden-store, key: url, optional: true}}
ports:
  - name: warden-admin
    containerPort: 9090
startupProbe:
  httpGet: {{path: /health, port: warden-admin}}
  periodSeconds: 1
  failureThreshold: 60
livenessProbe:
  httpGet: {{path: /health, port: warden-admin}}
  periodSeconds: 10
readinessProbe:
  httpGet: {{path: /ready, port: warden-admin}}
  periodSeconds: 5
resources:
  requests: {{cpu: 50m, memory: 128Mi}}
  limits: {{memory: 384Mi}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  readOnlyRootFilesystem: true
  allowPrivilegeEscalation: false
  capabilities: {{drop: [ALL]}}
  seccompProfile: {{type: RuntimeDefault}}
volumeMounts:
  - {{name: warden-config, mountPath: /etc/warden/config, readOnly: true}}
  - {{name: warden-policies, mountPath: /etc/warden/policies, readOnly: true}}
  - {{name: warden-secrets, mountPath: /etc/warden/secrets, readOnly: true}}
  - {{name: warden-data, mountPath: /var/lib/warden}}
  - {{name: warden-tmp, mountPath: /tmp}}
"#,
        image = quoted(&args.image),
    ))
}

/// The Secret's files are owned by root; the agent's pod may set no `fsGroup` (and changing it
/// would touch the agent's own volumes), so they are world-readable (0444): only the sidecar
/// mounts them, so only the sidecar's processes can read them.
fn pod_volumes(args: &InjectArgs) -> Vec<Yaml<'static>> {
    let yaml = format!(
        r#"- name: warden-config
  configMap: {{name: {config}}}
- name: warden-policies
  configMap: {{name: {policies}, optional: true}}
- name: warden-secrets
  secret: {{secretName: {secret}, defaultMode: 292}}
- name: warden-data
  emptyDir: {{}}
- name: warden-tmp
  emptyDir: {{medium: Memory, sizeLimit: 64Mi}}
"#,
        config = quoted(&args.config_map),
        policies = quoted(&args.policies),
        secret = quoted(&args.secret),
    );
    match parse(&yaml) {
        Yaml::Sequence(v) => v,
        _ => unreachable!("a list"),
    }
}
