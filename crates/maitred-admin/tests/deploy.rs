//! Checks the files under deploy/ without a cluster: every YAML and JSON file parses,
//! the Kubernetes manifests wire readiness to /readyz, liveness to /healthz and a preStop
//! drain, the shared ConfigMap's maitred.toml loads and validates, the Helm chart's
//! templates only use values that values.yaml defines, the Grafana dashboard only queries
//! metrics maitred exports, the systemd unit and Dockerfile have their key lines, and every
//! shipped admin endpoint answers /pools only on loopback while its probes reach the network.
//! (`helm template` and kubeconform are not installed here; see docs/kubernetes.md.)

use maitred_admin::{Admin, PoolObserver};
use maitred_pool::{PoolState, PoolStats};
use serde_yaml::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn read(rel: &str) -> String {
    let p = deploy().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every document of a multi-document YAML file.
fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = read(rel);
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

use serde::Deserialize as _;

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind}"))
}

/// The container named `name` of a Deployment.
fn container<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers")
        .iter()
        .find(|c| c["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn assert_probes_and_prestop(c: &Value) {
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert!(
        c["lifecycle"]["preStop"]["exec"]["command"].is_sequence(),
        "preStop drain missing"
    );
    let port = c["readinessProbe"]["httpGet"]["port"]
        .as_str()
        .expect("port name");
    let ports = c["ports"].as_sequence().expect("ports");
    assert!(ports.iter().any(|p| p["name"].as_str() == Some(port)));
}

#[test]
fn every_yaml_and_json_file_parses() {
    let mut files = Vec::new();
    files_under(&deploy(), &mut files);
    let mut seen = 0;
    for f in files {
        let rel = f
            .strip_prefix(deploy())
            .expect("prefix")
            .to_string_lossy()
            .into_owned();
        if rel.contains("helm/maitred/templates/") {
            continue; // Go templates: checked below
        }
        match f.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => {
                assert!(!yaml_docs(&rel).is_empty(), "{rel} is empty");
                seen += 1;
            }
            Some("json") => {
                let _: serde_json::Value =
                    serde_json::from_str(&read(&rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
                seen += 1;
            }
            _ => {}
        }
    }
    assert!(seen >= 5, "only {seen} files checked");
}

#[test]
fn sidecar_is_configured_by_env_from_a_secret_with_readiness_and_prestop() {
    let docs = yaml_docs("kubernetes/sidecar.yaml");
    let deployment = kind(&docs, "Deployment");
    let m = container(deployment, "maitred");
    assert_probes_and_prestop(m);
    let env = m["env"].as_sequence().expect("env");
    let var = |name: &str| {
        env.iter()
            .find(|e| e["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert!(var("MAITRED_LISTEN")["value"]
        .as_str()
        .expect("listen")
        .starts_with("127.0.0.1:"));
    let secret = &var("MAITRED_UPSTREAM")["valueFrom"]["secretKeyRef"];
    let secret_name = secret["name"].as_str().expect("secret name");
    let s = kind(&docs, "Secret");
    assert_eq!(s["metadata"]["name"].as_str(), Some(secret_name));
    assert!(s["stringData"][secret["key"].as_str().expect("key")].is_string());
    let _ = container(deployment, "app");
}

#[test]
fn shared_has_deployment_service_pdb_and_a_valid_config() {
    let docs = yaml_docs("kubernetes/shared.yaml");
    let deployment = kind(&docs, "Deployment");
    assert_probes_and_prestop(container(deployment, "maitred"));
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for selector in [
        &kind(&docs, "Service")["spec"]["selector"],
        &kind(&docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ] {
        for (k, v) in selector.as_mapping().expect("selector") {
            assert_eq!(&labels[k.as_str().expect("key")], v, "selector {k:?}");
        }
    }
    let toml = kind(&docs, "ConfigMap")["data"]["maitred.toml"]
        .as_str()
        .expect("maitred.toml");
    let config = maitred_config::parse_str_with_env(toml, [("APP_DB_PASSWORD", "pw")])
        .expect("maitred.toml loads");
    config.validate().expect("maitred.toml validates");
    let grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace period");
    assert!(
        Duration::from_secs(grace) > config.runtime.shutdown_timeout + Duration::from_secs(5),
        "terminationGracePeriodSeconds leaves no room for the drain"
    );
}

/// Every `.Values.a.b` path used by the chart's templates.
fn values_paths(template: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = template;
    while let Some(i) = rest.find(".Values.") {
        rest = &rest[i + ".Values.".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
            .unwrap_or(rest.len());
        out.insert(rest[..end].trim_end_matches('.').to_owned());
    }
    out
}

#[test]
fn helm_chart_parses_and_templates_use_defined_values() {
    let chart = &yaml_docs("helm/maitred/Chart.yaml")[0];
    assert_eq!(chart["apiVersion"].as_str(), Some("v2"));
    assert_eq!(chart["name"].as_str(), Some("maitred"));
    let values = &yaml_docs("helm/maitred/values.yaml")[0];
    assert_eq!(values["readinessProbe"]["path"].as_str(), Some("/readyz"));
    assert_eq!(values["livenessProbe"]["path"].as_str(), Some("/healthz"));
    let mut used = BTreeSet::new();
    for t in ["deployment", "service", "pdb", "configmap"] {
        let text = read(&format!("helm/maitred/templates/{t}.yaml"));
        assert_eq!(
            text.matches("{{").count(),
            text.matches("}}").count(),
            "{t}.yaml: unbalanced braces"
        );
        used.extend(values_paths(&text));
    }
    let deployment = read("helm/maitred/templates/deployment.yaml");
    for needle in ["readinessProbe", "preStop", "kind: Deployment"] {
        assert!(
            deployment.contains(needle),
            "deployment.yaml lacks {needle}"
        );
    }
    assert!(read("helm/maitred/templates/pdb.yaml").contains("kind: PodDisruptionBudget"));
    for path in used {
        let mut v = values;
        for part in path.split('.') {
            v = &v[part];
        }
        assert!(!v.is_null(), ".Values.{path} is not defined in values.yaml");
    }
}

struct PgLike;

impl PoolObserver for PgLike {
    fn name(&self) -> &str {
        "app"
    }
    fn protocol(&self) -> &'static str {
        "postgres"
    }
    fn listen(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 6432))
    }
    fn state(&self) -> PoolState {
        PoolState {
            size: 0,
            idle: 0,
            busy: 0,
            waiting: 0,
            max_size: 1,
        }
    }
    fn stats(&self) -> PoolStats {
        PoolStats {
            state: self.state(),
            checkouts: 0,
            checkout_wait_total: Duration::ZERO,
            queue_timeouts: 0,
            queue_full_rejections: 0,
            connects: 0,
            connect_failures: 0,
            closed_broken: 0,
            closed_expired: 0,
            resets: 0,
            reset_failures: 0,
            ..PoolStats::default()
        }
    }
    fn extra_counters(&self) -> Vec<(&'static str, u64)> {
        // The PostgreSQL pool's extras (crates/maitred/src/daemon/postgres.rs).
        [
            "clients_accepted_total",
            "login_failures_total",
            "transactions_total",
            "statement_cache_hits_total",
            "statement_prepares_total",
            "pins_refused_total",
        ]
        .into_iter()
        .map(|n| (n, 0))
        .collect()
    }
    fn labeled_counters(&self) -> Vec<maitred_admin::LabeledCounter> {
        vec![maitred_admin::LabeledCounter {
            name: "pins_total",
            label: "reason",
            value: "temp_table",
            count: 0,
        }]
    }
    fn extra_gauges(&self) -> Vec<(&'static str, f64)> {
        vec![("clients_pinned", 0.0)]
    }
}

#[test]
fn grafana_dashboard_queries_exported_metrics() {
    let admin = Admin::new();
    admin.register(Arc::new(PgLike));
    let exported: BTreeSet<String> = admin
        .render_metrics()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_owned))
        .collect();
    let dash: serde_json::Value =
        serde_json::from_str(&read("grafana/maitred.json")).expect("dashboard JSON");
    assert_eq!(dash["title"], "maitred");
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8);
    let mut queried = 0;
    for p in panels {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            let mut rest = expr;
            while let Some(i) = rest.find("maitred_") {
                rest = &rest[i..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                let name = &rest[..end];
                assert!(
                    exported.contains(name),
                    "{name} is not exported: {exported:?}"
                );
                queried += 1;
                rest = &rest[end..];
            }
        }
    }
    assert!(queried >= 15);
}

#[test]
fn systemd_unit_drains_and_reloads() {
    let unit = read("systemd/maitred.service");
    let key = |k: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k}="))
            .to_owned()
    };
    assert!(key("ExecReload").contains("kill -HUP $MAINPID"));
    assert_eq!(key("KillSignal"), "SIGTERM");
    let stop = humantime::parse_duration(&key("TimeoutStopSec")).expect("duration");
    assert!(
        stop > Duration::from_secs(30),
        "TimeoutStopSec below shutdown_timeout"
    );
    assert!(key("ExecStart").contains("maitred --config"));
    for section in ["[Unit]", "[Service]", "[Install]"] {
        assert!(unit.contains(section));
    }
}

#[test]
fn dockerfile_is_multi_stage_non_root_with_ports_and_entrypoint() {
    let d = read("Dockerfile");
    assert_eq!(d.lines().filter(|l| l.starts_with("FROM ")).count(), 2);
    assert!(d.contains("FROM debian:bookworm-slim"));
    assert!(d.lines().any(|l| l.starts_with("USER 10001")));
    assert!(d.lines().any(|l| l == "EXPOSE 6432 9930"));
    let entry = d
        .lines()
        .find(|l| l.starts_with("ENTRYPOINT"))
        .expect("ENTRYPOINT");
    assert!(entry.contains("\"maitred\""));
}

// ---------------------------------------------------------------------------
// The admin endpoint of the shipped deployments: probes for the network, detail on loopback

/// GET `path` from `addr`: the status code.
async fn status_of(addr: SocketAddr, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut got = String::new();
    s.read_to_string(&mut got).await.expect("read");
    got.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {got:?}"))
}

/// This host's address on its default route, if it has one that is not loopback.
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
}

/// Serves the admin endpoint as the daemon does for an `[admin]` table (address family
/// and port aside: 0.0.0.0 on a free port), and checks what a peer on another address and a
/// loopback peer get.
async fn assert_pools_only_on_loopback(admin_config: &maitred_config::AdminConfig, origin: &str) {
    assert!(
        admin_config.listen.ip().is_unspecified(),
        "{origin}: the probes must reach the kubelet and Prometheus (admin on 0.0.0.0)"
    );
    assert!(
        admin_config.detail_token.is_none(),
        "{origin}: no detail token by default"
    );
    let admin = Admin::new();
    admin.register(Arc::new(PgLike));
    admin.detail_token().set(
        admin_config
            .detail_token
            .as_ref()
            .map(|t| t.expose().to_owned()),
    );
    let listener = maitred_admin::http::bind(SocketAddr::from(([0, 0, 0, 0], 0)))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(maitred_admin::http::serve(listener, admin));
    let loopback = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(
        status_of(loopback, "/pools").await,
        200,
        "{origin}: loopback"
    );
    match non_loopback_ip() {
        Some(ip) => {
            let outside = SocketAddr::new(ip, port);
            for path in ["/metrics", "/healthz", "/readyz"] {
                let status = status_of(outside, path).await;
                assert!(
                    status == 200 || status == 503,
                    "{origin}: {path} from {ip}: {status}"
                );
            }
            assert_eq!(
                status_of(outside, "/pools").await,
                403,
                "{origin}: /pools from {ip}"
            );
        }
        None => eprintln!("{origin}: no non-loopback address here; only loopback checked"),
    }
    server.abort();
}

#[tokio::test]
async fn shipped_configs_answer_pools_only_on_loopback() {
    // shared.yaml: the ConfigMap's maitred.toml.
    let docs = yaml_docs("kubernetes/shared.yaml");
    let toml = kind(&docs, "ConfigMap")["data"]["maitred.toml"]
        .as_str()
        .expect("maitred.toml");
    let config = maitred_config::parse_str_with_env(toml, [("APP_DB_PASSWORD", "pw")])
        .expect("maitred.toml loads");
    assert_pools_only_on_loopback(config.admin.as_ref().expect("[admin]"), "shared.yaml").await;

    // sidecar.yaml and the Dockerfile: one-line mode, `MAITRED_ADMIN=0.0.0.0:9930`, which
    // has no token: the same [admin] as AdminConfig::new.
    let docs = yaml_docs("kubernetes/sidecar.yaml");
    let env = container(kind(&docs, "Deployment"), "maitred")["env"]
        .as_sequence()
        .expect("env")
        .clone();
    let admin_env = env
        .iter()
        .find(|e| e["name"].as_str() == Some("MAITRED_ADMIN"))
        .and_then(|e| e["value"].as_str())
        .expect("MAITRED_ADMIN");
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains("MAITRED_ADMIN=0.0.0.0:9930"));
    for (origin, listen) in [("sidecar.yaml", admin_env), ("Dockerfile", "0.0.0.0:9930")] {
        let admin = maitred_config::AdminConfig::new(listen.parse().expect("address"));
        assert_pools_only_on_loopback(&admin, origin).await;
    }

    // Nothing shipped opens the detail surface with a token written in the files.
    for rel in [
        "kubernetes/shared.yaml",
        "kubernetes/sidecar.yaml",
        "Dockerfile",
        "helm/maitred/values.yaml",
    ] {
        let text = read(rel);
        assert!(
            !text.contains("MAITRED_ADMIN__DETAIL_TOKEN"),
            "{rel}: a detail token from the environment, without a Secret"
        );
        for line in text.lines() {
            let line = line.trim_start();
            if line.starts_with("detail_token") {
                panic!("{rel}: an uncommented detail_token: {line}");
            }
        }
    }
    // The chart sets one only from a Secret it is given.
    let values = &yaml_docs("helm/maitred/values.yaml")[0];
    assert_eq!(values["adminDetailToken"]["secretName"].as_str(), Some(""));
    let configmap = read("helm/maitred/templates/configmap.yaml");
    let guarded = "{{- if .Values.adminDetailToken.secretName }}\n    detail_token = \"${MAITRED_ADMIN_DETAIL_TOKEN}\"\n    {{- end }}";
    assert!(
        configmap.contains(guarded),
        "configmap.yaml: detail_token unguarded"
    );
    assert_eq!(configmap.matches("detail_token").count(), 1);
    let deployment = read("helm/maitred/templates/deployment.yaml");
    assert!(deployment.contains(
        "name: MAITRED_ADMIN_DETAIL_TOKEN\n              valueFrom:\n                secretKeyRef:"
    ));
}
