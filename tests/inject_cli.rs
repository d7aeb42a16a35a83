//! `warden inject` through the CLI: sample workloads of every supported kind in one stream,
//! idempotence, the agent's environment, errors, and the sidecar overlay's example kept in step
//! with what `warden inject` makes.

mod common;

use std::process::Output;

use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::{json, Value};

use common::{run_cmd, text, warden};

const WORKLOADS: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: planner
spec:
  selector:
    matchLabels: {app: planner}
  template:
    metadata:
      labels: {app: planner}
    spec:
      containers:
        - name: agent
          image: planner:1
          env:
            - name: OPENAI_BASE_URL
              value: https://api.openai.com/v1
            - name: MODE
              value: "on"
        - name: helper
          image: helper:1
      volumes:
        - name: scratch
          emptyDir: {}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: memory
spec:
  serviceName: memory
  selector:
    matchLabels: {app: memory}
  template:
    metadata:
      labels: {app: memory}
    spec:
      containers:
        - name: agent
          image: memory:1
---
apiVersion: batch/v1
kind: Job
metadata:
  name: nightly-report
spec:
  template:
    spec:
      restartPolicy: Never
      initContainers:
        - name: fetch
          image: fetch:1
      containers:
        - name: agent
          image: report:1
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: digest
spec:
  schedule: "0 6 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
            - name: agent
              image: digest:1
---
apiVersion: v1
kind: Pod
metadata:
  name: scratchpad
spec:
  containers:
    - name: agent
      image: scratch:1
---
apiVersion: v1
kind: Service
metadata:
  name: planner
spec:
  selector: {app: planner}
  ports:
    - port: 80
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Pod
    metadata:
      name: listed
    spec:
      containers:
        - name: agent
          image: listed:1
"#;

fn inject(input: &str, args: &[&str]) -> Output {
    let mut cmd = warden();
    cmd.arg("inject").args(args);
    run_cmd(cmd, input)
}

fn injected(input: &str, args: &[&str]) -> (String, String) {
    let out = inject(input, args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    (text(&out.stdout), text(&out.stderr))
}

/// The YAML stream as JSON values, for assertions.
fn docs(yaml: &str) -> Vec<Value> {
    Yaml::load_from_str(yaml)
        .unwrap()
        .iter()
        .map(json_of)
        .collect()
}

fn json_of(y: &Yaml<'_>) -> Value {
    match y {
        Yaml::Value(Scalar::Null) => Value::Null,
        Yaml::Value(Scalar::Boolean(b)) => json!(b),
        Yaml::Value(Scalar::Integer(i)) => json!(i),
        Yaml::Value(Scalar::FloatingPoint(f)) => json!(f.into_inner()),
        Yaml::Value(Scalar::String(s)) => json!(s),
        Yaml::Sequence(v) => Value::Array(v.iter().map(json_of).collect()),
        Yaml::Mapping(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.as_str().unwrap().to_owned(), json_of(v)))
                .collect(),
        ),
        other => panic!("unexpected YAML node {other:?}"),
    }
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .map(|a| a.iter().map(|c| c["name"].as_str().unwrap()).collect())
        .unwrap_or_default()
}

fn env_of<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
}

/// Checks one pod spec: the sidecar first among the init containers, its volumes, and every
/// agent container pointed at it.
fn assert_injected(pod: &Value, what: &str) {
    let init = &pod["initContainers"];
    assert_eq!(names(init)[0], "warden", "{what}: {pod:#}");
    let sidecar = &init[0];
    assert_eq!(sidecar["restartPolicy"], "Always", "{what}");
    assert_eq!(
        sidecar["image"], "registry.example.com/warden:9.9.9",
        "{what}"
    );
    assert_eq!(
        sidecar["args"],
        json!(["serve", "--config", "/etc/warden/config/warden.yaml"])
    );
    assert_eq!(
        env_of(sidecar, "WARDEN_SERVER__LISTEN").unwrap()["value"],
        "127.0.0.1:8080"
    );
    assert_eq!(
        env_of(sidecar, "WARDEN_SERVER__ADMIN_LISTEN").unwrap()["value"],
        "0.0.0.0:9090"
    );
    for (probe, path) in [
        ("startupProbe", "/health"),
        ("livenessProbe", "/health"),
        ("readinessProbe", "/ready"),
    ] {
        assert_eq!(sidecar[probe]["httpGet"]["path"], path, "{what} {probe}");
        assert_eq!(sidecar[probe]["httpGet"]["port"], "warden-admin", "{what}");
    }
    assert_eq!(sidecar["ports"][0]["containerPort"], 9090);
    assert_eq!(sidecar["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(sidecar["securityContext"]["runAsNonRoot"], true);
    assert_eq!(sidecar["resources"]["requests"]["memory"], "128Mi");
    let volumes = names(&pod["volumes"]);
    for v in [
        "warden-config",
        "warden-policies",
        "warden-secrets",
        "warden-data",
        "warden-tmp",
    ] {
        assert!(volumes.contains(&v), "{what}: volume {v} in {volumes:?}");
    }
    let secret = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "warden-secrets")
        .unwrap();
    assert_eq!(secret["secret"]["secretName"], "warden-secrets");
    for c in pod["containers"].as_array().unwrap() {
        assert_eq!(
            env_of(c, "OPENAI_BASE_URL").unwrap()["value"],
            "http://127.0.0.1:8080/v1",
            "{what}: container {}",
            c["name"]
        );
        assert!(
            !c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["name"] == "warden-secrets"),
            "{what}: only the sidecar mounts the secrets"
        );
    }
}

#[test]
fn every_workload_kind_gets_the_sidecar_and_other_kinds_pass_through() {
    let (out, stderr) = injected(WORKLOADS, &["--image", "registry.example.com/warden:9.9.9"]);
    let d = docs(&out);
    assert_eq!(d.len(), 7, "{out}");
    assert_injected(&d[0]["spec"]["template"]["spec"], "Deployment");
    assert_injected(&d[1]["spec"]["template"]["spec"], "StatefulSet");
    assert_injected(&d[2]["spec"]["template"]["spec"], "Job");
    assert_injected(
        &d[3]["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        "CronJob",
    );
    assert_injected(&d[4]["spec"], "Pod");
    assert_injected(&d[6]["items"][0]["spec"], "a Pod in a List");
    // The Service is untouched.
    assert_eq!(d[5], docs(WORKLOADS)[5]);
    // The Job's own init container still runs, after the sidecar has started.
    assert_eq!(
        names(&d[2]["spec"]["template"]["spec"]["initContainers"]),
        ["warden", "fetch"]
    );
    // The Deployment keeps its own volume and its other variables.
    let deployment = &d[0]["spec"]["template"]["spec"];
    assert!(names(&deployment["volumes"]).contains(&"scratch"));
    let agent = &deployment["containers"][0];
    assert_eq!(env_of(agent, "MODE").unwrap()["value"], "on");
    assert_eq!(agent["env"].as_array().unwrap().len(), 2);
    // The replaced base URL is reported.
    assert!(
        stderr.contains(
            "Deployment planner: container `agent`: OPENAI_BASE_URL was https://api.openai.com/v1"
        ),
        "{stderr}"
    );
}

#[test]
fn injecting_twice_changes_nothing_more() {
    let args = ["--image", "registry.example.com/warden:9.9.9"];
    let (once, _) = injected(WORKLOADS, &args);
    let (twice, stderr) = injected(&once, &args);
    assert_eq!(once, twice);
    assert_eq!(
        stderr.matches("already has a `warden` container").count(),
        6,
        "{stderr}"
    );
    // Quoted strings that YAML would otherwise read as booleans stay strings.
    assert_eq!(
        env_of(
            &docs(&twice)[0]["spec"]["template"]["spec"]["containers"][0],
            "MODE"
        )
        .unwrap()["value"],
        "on"
    );
}

#[test]
fn the_agent_key_comes_from_the_named_secret() {
    let (out, _) = injected(WORKLOADS, &["--api-key-secret", "planner-warden-key"]);
    let agent = &docs(&out)[0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        env_of(agent, "OPENAI_API_KEY").unwrap()["valueFrom"]["secretKeyRef"],
        json!({"name": "planner-warden-key", "key": "api-key"})
    );
    let (plain, _) = injected(WORKLOADS, &[]);
    let agent = &docs(&plain)[0]["spec"]["template"]["spec"]["containers"][0];
    assert!(env_of(agent, "OPENAI_API_KEY").is_none());
    // The default image is this version's.
    assert_eq!(
        docs(&plain)[0]["spec"]["template"]["spec"]["initContainers"][0]["image"],
        format!("warden:{}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_port_warden_takes_in_the_pod_is_reported() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n    - name: agent\n      image: web:1\n      ports:\n        - containerPort: 8080\n";
    let (_, stderr) = injected(pod, &[]);
    assert!(
        stderr.contains("Pod web: container `agent` uses port 8080"),
        "{stderr}"
    );
}

#[test]
fn bad_input_is_refused_with_the_document_and_field() {
    for (input, expected) in [
        ("kind: Deployment\n  bad: [\n", "invalid YAML"),
        (
            "---\nkind: Service\nmetadata: {name: a}\n---\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: 1}\n",
            "document 2 (Deployment): `spec.template` is missing or not a mapping",
        ),
        (
            "kind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n",
            "document 1 (Pod): the pod has no containers",
        ),
        ("- just\n- a list\n", "document 1 (?): not a Kubernetes object"),
    ] {
        let out = inject(input, &[]);
        assert_eq!(out.status.code(), Some(2), "{input}");
        assert!(text(&out.stderr).contains(expected), "{}", text(&out.stderr));
        assert!(out.stdout.is_empty());
    }
}

/// The sidecar overlay's example agent is what `warden inject` makes of the plain one.
#[test]
fn the_sidecar_overlay_example_is_warden_inject_output() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/overlays/sidecar");
    let plain = std::fs::read_to_string(format!("{dir}/agent.plain.yaml")).unwrap();
    let committed = std::fs::read_to_string(format!("{dir}/agent.yaml")).unwrap();
    let (out, _) = injected(&plain, &["--api-key-secret", "support-agent-warden-key"]);
    let header: String = committed
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        committed,
        format!("{header}{out}"),
        "regenerate agent.yaml: see its header"
    );
}
