//! Kubernetes discovery (`kubernetes_sd_configs`): targets from the API
//! server's nodes, pods, services and EndpointSlices, with the
//! `__meta_kubernetes_*` labels Prometheus documents for each role.
//!
//! Objects are followed with list-then-watch (`kube::runtime::watcher`):
//! bookmarks keep the resource version fresh, a `410 Gone` or a broken
//! connection leads to a relist after a backoff, and a relist reports the
//! objects that disappeared meanwhile as groups without targets. The client
//! comes from `api_server` (with the section's HTTP client settings),
//! `kubeconfig_file`, or the in-cluster service account.
//!
//! Roles and sources: node (`node/<name>`), pod (`pod/<ns>/<name>`), service
//! (`svc/<ns>/<name>`), endpointslice (`endpointslice/<ns>/<name>`, enriched
//! with its service's and its pods' labels, plus a target for each container
//! port of those pods that no slice port covers). `attach_metadata` and the
//! `endpoints` and `ingress` roles are not acted on yet.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Container, ContainerPort, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tsdb::model::{Label, Labels};

use crate::config::{HttpClientConfig, KubernetesRole, KubernetesSdConfig, Secret, base64_encode};
use crate::discovery::{GroupSink, TargetGroup};
use crate::target::{ADDRESS_LABEL, INSTANCE_LABEL};

const META: &str = "__meta_kubernetes_";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Why Kubernetes discovery cannot start.
#[derive(Debug, thiserror::Error)]
pub enum KubernetesError {
    #[error("kubernetes client configuration: {0}")]
    Config(String),
    #[error("kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

/// Replaces every character that cannot appear in a legacy label name with
/// `_`, as Prometheus's `strutil.SanitizeLabelName`.
pub fn sanitize_label_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Builds the client a Kubernetes SD config asks for.
///
/// # Errors
/// Unreadable kubeconfig or credentials, or no in-cluster environment.
pub async fn client(config: &KubernetesSdConfig) -> Result<Client, KubernetesError> {
    client_for(
        config.api_server.as_deref(),
        config.kubeconfig_file.as_deref(),
        &config.http_client_config(),
    )
    .await
}

/// Builds a client for `api_server` with the `http` settings, else from the
/// `kubeconfig` file, else from the in-cluster environment, as Prometheus's
/// Kubernetes SD connects.
///
/// # Errors
/// Unreadable kubeconfig or credentials, or no in-cluster environment.
pub async fn client_for(
    api_server: Option<&str>,
    kubeconfig: Option<&str>,
    http: &HttpClientConfig,
) -> Result<Client, KubernetesError> {
    use kube::config::{
        AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
        NamedContext,
    };
    let client_config = if let Some(url) = api_server.filter(|u| !u.is_empty()) {
        let http = http.clone();
        let tls = &http.tls_config;
        let mut auth = AuthInfo::default();
        if let Some(basic) = &http.basic_auth {
            auth.username = Some(basic.username.clone());
            let password = match basic.password_file.as_deref() {
                Some(path) => std::fs::read_to_string(path)
                    .map_err(|e| KubernetesError::Config(format!("reading {path}: {e}")))?
                    .trim()
                    .to_string(),
                None => basic
                    .password
                    .as_ref()
                    .map(Secret::expose)
                    .unwrap_or("")
                    .to_string(),
            };
            auth.password = Some(password.into());
        } else if let Some(authorization) = http.effective_authorization() {
            if let Some(token) = authorization.credentials {
                auth.token = Some(token.expose().to_string().into());
            }
            auth.token_file = authorization.credentials_file;
        }
        auth.client_certificate = tls.cert_file.clone();
        auth.client_key = tls.key_file.clone();
        let pem_data = |pem: &Option<String>| pem.as_ref().map(|p| base64_encode(p.as_bytes()));
        auth.client_certificate_data = pem_data(&tls.cert);
        auth.client_key_data = tls
            .key
            .as_ref()
            .map(|k| base64_encode(k.expose().as_bytes()).into());
        let cluster = Cluster {
            server: Some(url.to_string()),
            insecure_skip_tls_verify: Some(tls.insecure_skip_verify),
            certificate_authority: tls.ca_file.clone(),
            certificate_authority_data: pem_data(&tls.ca),
            tls_server_name: tls.server_name.clone(),
            proxy_url: http.proxy_url.clone(),
            ..Cluster::default()
        };
        let kubeconfig = Kubeconfig {
            clusters: vec![NamedCluster {
                name: "sd".into(),
                cluster: Some(cluster),
                ..NamedCluster::default()
            }],
            auth_infos: vec![NamedAuthInfo {
                name: "sd".into(),
                auth_info: Some(auth),
                ..NamedAuthInfo::default()
            }],
            contexts: vec![NamedContext {
                name: "sd".into(),
                context: Some(Context {
                    cluster: "sd".into(),
                    user: Some("sd".into()),
                    ..Context::default()
                }),
                ..NamedContext::default()
            }],
            current_context: Some("sd".into()),
            ..Kubeconfig::default()
        };
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| KubernetesError::Config(e.to_string()))?
    } else if let Some(path) = kubeconfig.filter(|p| !p.is_empty()) {
        let kubeconfig = Kubeconfig::read_from(path)
            .map_err(|e| KubernetesError::Config(format!("{path}: {e}")))?;
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| KubernetesError::Config(format!("{path}: {e}")))?
    } else {
        kube::Config::incluster().map_err(|e| KubernetesError::Config(e.to_string()))?
    };
    Client::try_from(client_config).map_err(KubernetesError::Client)
}

/// One watched object.
#[derive(Debug, Clone)]
enum Object {
    Node(Box<Node>),
    Pod(Box<Pod>),
    Service(Box<Service>),
    EndpointSlice(Box<EndpointSlice>),
}

impl Object {
    fn meta(&self) -> &ObjectMeta {
        match self {
            Object::Node(o) => &o.metadata,
            Object::Pod(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
        }
    }

    /// `namespace/name` (or `name` for cluster-scoped objects).
    fn key(&self) -> String {
        let meta = self.meta();
        match &meta.namespace {
            Some(ns) => format!("{ns}/{}", meta.name.as_deref().unwrap_or("")),
            None => meta.name.clone().unwrap_or_default(),
        }
    }
}

/// The kinds a role watches: its own, plus services and pods for endpointslice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Node,
    Pod,
    Service,
    EndpointSlice,
}

type EventStream =
    Pin<Box<dyn Stream<Item = (usize, Result<Event<Object>, watcher::Error>)> + Send>>;

fn watch_stream<K>(
    api: Api<K>,
    config: watcher::Config,
    stream_id: usize,
    wrap: fn(K) -> Object,
) -> EventStream
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    Box::pin(
        watcher::watcher(api, config)
            .default_backoff()
            .map(move |event| (stream_id, event.map(|e| map_event(e, wrap)))),
    )
}

fn map_event<K>(event: Event<K>, wrap: fn(K) -> Object) -> Event<Object> {
    match event {
        Event::Apply(k) => Event::Apply(wrap(k)),
        Event::Delete(k) => Event::Delete(wrap(k)),
        Event::Init => Event::Init,
        Event::InitApply(k) => Event::InitApply(wrap(k)),
        Event::InitDone => Event::InitDone,
    }
}

/// The state of one discoverer: the objects of every watch stream, and the
/// groups last reported.
struct State {
    role: KubernetesRole,
    /// Objects by stream, then key.
    objects: Vec<BTreeMap<String, Object>>,
    /// Which kind each stream watches.
    kinds: Vec<Kind>,
    /// Objects of a stream being relisted, until `InitDone`.
    relisting: BTreeMap<usize, BTreeMap<String, Object>>,
    reported: BTreeMap<String, TargetGroup>,
}

impl State {
    fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Object> {
        self.kinds
            .iter()
            .zip(&self.objects)
            .filter(move |(k, _)| **k == kind)
            .flat_map(|(_, objects)| objects.values())
    }

    fn primary_kind(&self) -> Kind {
        match self.role {
            KubernetesRole::Node => Kind::Node,
            KubernetesRole::Pod => Kind::Pod,
            KubernetesRole::Service => Kind::Service,
            _ => Kind::EndpointSlice,
        }
    }

    /// Applies one watch event; returns the groups that changed.
    fn apply(&mut self, stream: usize, event: Event<Object>) -> Vec<TargetGroup> {
        match event {
            Event::Init => {
                self.relisting.insert(stream, BTreeMap::new());
                return Vec::new();
            }
            Event::InitApply(object) => {
                self.relisting
                    .entry(stream)
                    .or_default()
                    .insert(object.key(), object);
                return Vec::new();
            }
            Event::InitDone => {
                let listed = self.relisting.remove(&stream).unwrap_or_default();
                self.objects[stream] = listed;
            }
            Event::Apply(object) => {
                self.objects[stream].insert(object.key(), object);
            }
            Event::Delete(object) => {
                self.objects[stream].remove(&object.key());
            }
        }
        self.regroup()
    }

    /// Recomputes every group and returns those that differ from the last
    /// report (sources that vanished come back without targets).
    fn regroup(&mut self) -> Vec<TargetGroup> {
        let primary = self.primary_kind();
        let mut groups: BTreeMap<String, TargetGroup> = BTreeMap::new();
        for object in self.of_kind(primary) {
            let group = match object {
                Object::Node(node) => node_group(node),
                Object::Pod(pod) => pod_group(pod),
                Object::Service(service) => service_group(service),
                Object::EndpointSlice(slice) => self.endpoint_slice_group(slice),
            };
            groups.insert(group.source.clone(), group);
        }
        let mut changed = Vec::new();
        for source in self.reported.keys() {
            if !groups.contains_key(source) {
                changed.push(TargetGroup {
                    source: source.clone(),
                    ..TargetGroup::default()
                });
            }
        }
        for (source, group) in &groups {
            if self.reported.get(source) != Some(group) {
                changed.push(group.clone());
            }
        }
        self.reported = groups;
        changed
    }

    fn endpoint_slice_group(&self, slice: &EndpointSlice) -> TargetGroup {
        let namespace = slice.metadata.namespace.clone().unwrap_or_default();
        let service = slice.labels().get(SERVICE_NAME_LABEL).and_then(|name| {
            self.of_kind(Kind::Service).find_map(|o| match o {
                Object::Service(s)
                    if s.metadata.name.as_deref() == Some(name)
                        && s.metadata.namespace.as_deref() == Some(&namespace) =>
                {
                    Some(s.as_ref())
                }
                _ => None,
            })
        });
        let pod = |name: &str| {
            self.of_kind(Kind::Pod).find_map(|o| match o {
                Object::Pod(p)
                    if p.metadata.name.as_deref() == Some(name)
                        && p.metadata.namespace.as_deref() == Some(&namespace) =>
                {
                    Some(p.as_ref())
                }
                _ => None,
            })
        };
        endpoint_slice_group(slice, service, pod)
    }
}

/// Label pairs under construction.
#[derive(Default)]
struct LabelSet(Vec<Label>);

impl LabelSet {
    fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name: String = name.into();
        let value: String = value.into();
        self.0.push(Label::new(name, value));
    }

    /// `<prefix>_label_<name>`, `<prefix>_labelpresent_<name>` and the same
    /// for annotations.
    fn metadata(&mut self, prefix: &str, meta: &ObjectMeta) {
        for (name, value) in meta.labels.iter().flatten() {
            let name = sanitize_label_name(name);
            self.set(format!("{prefix}_label_{name}"), value.as_str());
            self.set(format!("{prefix}_labelpresent_{name}"), "true");
        }
        for (name, value) in meta.annotations.iter().flatten() {
            let name = sanitize_label_name(name);
            self.set(format!("{prefix}_annotation_{name}"), value.as_str());
            self.set(format!("{prefix}_annotationpresent_{name}"), "true");
        }
    }

    fn build(self) -> Labels {
        Labels::new(self.0)
    }
}

fn join_host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The node's address in Prometheus's order of preference, and the first
/// address of each type.
fn node_address(node: &Node) -> Option<(String, BTreeMap<String, String>)> {
    let addresses = node.status.as_ref()?.addresses.as_ref()?;
    let mut by_type: BTreeMap<String, String> = BTreeMap::new();
    for address in addresses {
        by_type
            .entry(address.type_.clone())
            .or_insert_with(|| address.address.clone());
    }
    let preferred = [
        "InternalIP",
        "InternalDNS",
        "ExternalIP",
        "ExternalDNS",
        "LegacyHostIP",
        "Hostname",
    ]
    .iter()
    .find_map(|t| by_type.get(*t).cloned())?;
    Some((preferred, by_type))
}

fn node_group(node: &Node) -> TargetGroup {
    let name = node.metadata.name.clone().unwrap_or_default();
    let mut labels = LabelSet::default();
    labels.set(format!("{META}node_name"), name.as_str());
    let provider_id = node
        .spec
        .as_ref()
        .and_then(|s| s.provider_id.clone())
        .unwrap_or_default();
    labels.set(format!("{META}node_provider_id"), provider_id);
    labels.metadata(&format!("{META}node"), &node.metadata);
    let mut group = TargetGroup {
        source: format!("node/{name}"),
        targets: Vec::new(),
        labels: labels.build(),
    };
    let Some((address, by_type)) = node_address(node) else {
        tracing::debug!(node = %name, "Node has no address; no target");
        return group;
    };
    let port = node
        .status
        .as_ref()
        .and_then(|s| s.daemon_endpoints.as_ref())
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map_or(0, |e| e.port);
    let mut target = LabelSet::default();
    target.set(ADDRESS_LABEL, join_host_port(&address, port));
    target.set(INSTANCE_LABEL, name.as_str());
    for (kind, value) in by_type {
        target.set(
            sanitize_label_name(&format!("{META}node_address_{kind}")),
            value,
        );
    }
    group.targets.push(target.build());
    group
}

/// The pod-level labels (`podLabels` in Prometheus).
fn pod_labels(pod: &Pod) -> LabelSet {
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let mut labels = LabelSet::default();
    labels.set(
        format!("{META}namespace"),
        meta.namespace.clone().unwrap_or_default(),
    );
    labels.set(
        format!("{META}pod_name"),
        meta.name.clone().unwrap_or_default(),
    );
    labels.set(
        format!("{META}pod_ip"),
        status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
    );
    labels.set(format!("{META}pod_ready"), pod_ready(pod));
    labels.set(
        format!("{META}pod_phase"),
        status.and_then(|s| s.phase.clone()).unwrap_or_default(),
    );
    labels.set(
        format!("{META}pod_node_name"),
        spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
    );
    labels.set(
        format!("{META}pod_host_ip"),
        status.and_then(|s| s.host_ip.clone()).unwrap_or_default(),
    );
    labels.set(
        format!("{META}pod_uid"),
        meta.uid.clone().unwrap_or_default(),
    );
    if let Some(controller) = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
    {
        labels.set(
            format!("{META}pod_controller_kind"),
            controller.kind.as_str(),
        );
        labels.set(
            format!("{META}pod_controller_name"),
            controller.name.as_str(),
        );
    }
    labels.metadata(&format!("{META}pod"), meta);
    labels
}

/// `true`, `false` or `unknown`, from the pod's `Ready` condition.
fn pod_ready(pod: &Pod) -> &'static str {
    let condition = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    match condition.map(|c| c.status.as_str()) {
        Some("True") => "true",
        Some("False") => "false",
        _ => "unknown",
    }
}

/// The container ID the status reports for a container, if any.
fn container_id(pod: &Pod, container: &str, init: bool) -> String {
    let status = pod.status.as_ref();
    let statuses = if init {
        status.and_then(|s| s.init_container_statuses.as_ref())
    } else {
        status.and_then(|s| s.container_statuses.as_ref())
    };
    statuses
        .and_then(|all| all.iter().find(|s| s.name == container))
        .and_then(|s| s.container_id.clone())
        .unwrap_or_default()
}

fn pod_group(pod: &Pod) -> TargetGroup {
    let meta = &pod.metadata;
    let source = format!(
        "pod/{}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    );
    let mut group = TargetGroup {
        source,
        targets: Vec::new(),
        labels: pod_labels(pod).build(),
    };
    let pod_ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default();
    if pod_ip.is_empty() {
        return group;
    }
    let Some(spec) = pod.spec.as_ref() else {
        return group;
    };
    let containers = spec
        .containers
        .iter()
        .map(|c| (c, false))
        .chain(spec.init_containers.iter().flatten().map(|c| (c, true)));
    for (container, init) in containers {
        let container_labels = |target: &mut LabelSet| {
            target.set(format!("{META}pod_container_name"), container.name.as_str());
            target.set(
                format!("{META}pod_container_image"),
                container.image.clone().unwrap_or_default(),
            );
            target.set(
                format!("{META}pod_container_id"),
                container_id(pod, &container.name, init),
            );
            target.set(
                format!("{META}pod_container_init"),
                if init { "true" } else { "false" },
            );
        };
        let ports = container.ports.as_deref().unwrap_or(&[]);
        if ports.is_empty() {
            // A target per container without ports, so relabeling can add one.
            let mut target = LabelSet::default();
            target.set(ADDRESS_LABEL, pod_ip.as_str());
            container_labels(&mut target);
            group.targets.push(target.build());
            continue;
        }
        for port in ports {
            let mut target = LabelSet::default();
            target.set(ADDRESS_LABEL, join_host_port(&pod_ip, port.container_port));
            container_labels(&mut target);
            set_port(&mut target, port);
            group.targets.push(target.build());
        }
    }
    group
}

/// The service-level labels (`serviceLabels` in Prometheus).
fn service_labels(service: &Service) -> LabelSet {
    let meta = &service.metadata;
    let mut labels = LabelSet::default();
    labels.set(
        format!("{META}namespace"),
        meta.namespace.clone().unwrap_or_default(),
    );
    labels.set(
        format!("{META}service_name"),
        meta.name.clone().unwrap_or_default(),
    );
    labels.metadata(&format!("{META}service"), meta);
    labels
}

fn service_group(service: &Service) -> TargetGroup {
    let meta = &service.metadata;
    let namespace = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    let mut group = TargetGroup {
        source: format!("svc/{namespace}/{name}"),
        targets: Vec::new(),
        labels: service_labels(service).build(),
    };
    let Some(spec) = service.spec.as_ref() else {
        return group;
    };
    let service_type = spec
        .type_
        .clone()
        .unwrap_or_else(|| "ClusterIP".to_string());
    let host = format!("{name}.{namespace}.svc");
    for port in spec.ports.iter().flatten() {
        let mut target = LabelSet::default();
        target.set(ADDRESS_LABEL, join_host_port(&host, port.port));
        target.set(
            format!("{META}service_port_name"),
            port.name.clone().unwrap_or_default(),
        );
        target.set(format!("{META}service_port_number"), port.port.to_string());
        target.set(
            format!("{META}service_port_protocol"),
            port.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
        );
        target.set(format!("{META}service_type"), service_type.as_str());
        if service_type == "ExternalName" {
            target.set(
                format!("{META}service_external_name"),
                spec.external_name.clone().unwrap_or_default(),
            );
        } else {
            target.set(
                format!("{META}service_cluster_ip"),
                spec.cluster_ip.clone().unwrap_or_default(),
            );
        }
        if service_type == "LoadBalancer" {
            // As Prometheus: the requested address of the spec, not the
            // status's ingress.
            target.set(
                format!("{META}service_loadbalancer_ip"),
                spec.load_balancer_ip.clone().unwrap_or_default(),
            );
        }
        group.targets.push(target.build());
    }
    group
}

fn bool_label(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

/// The container of `pod` declaring `port`, and that port.
fn container_port(pod: &Pod, port: i32) -> Option<(&Container, &ContainerPort)> {
    pod.spec.iter().flat_map(|s| &s.containers).find_map(|c| {
        c.ports
            .iter()
            .flatten()
            .find(|p| p.container_port == port)
            .map(|p| (c, p))
    })
}

fn set_container_port(target: &mut LabelSet, container: &Container, port: &ContainerPort) {
    target.set(format!("{META}pod_container_name"), container.name.as_str());
    target.set(
        format!("{META}pod_container_image"),
        container.image.clone().unwrap_or_default(),
    );
    set_port(target, port);
}

/// A container port's name, number and protocol (TCP when unset).
fn set_port(target: &mut LabelSet, port: &ContainerPort) {
    target.set(
        format!("{META}pod_container_port_name"),
        port.name.clone().unwrap_or_default(),
    );
    target.set(
        format!("{META}pod_container_port_number"),
        port.container_port.to_string(),
    );
    target.set(
        format!("{META}pod_container_port_protocol"),
        port.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
    );
}

/// One target per endpoint, port and address (in Prometheus's order),
/// with the slice's, its service's and its pod's labels; then, as
/// Prometheus, a target for each container port of those pods that no slice
/// port covers.
fn endpoint_slice_group<'p>(
    slice: &EndpointSlice,
    service: Option<&Service>,
    pod: impl Fn(&str) -> Option<&'p Pod>,
) -> TargetGroup {
    let meta = &slice.metadata;
    let namespace = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    let mut labels = LabelSet::default();
    labels.set(format!("{META}namespace"), namespace.as_str());
    labels.set(format!("{META}endpointslice_name"), name.as_str());
    labels.set(
        format!("{META}endpointslice_address_type"),
        slice.address_type.as_str(),
    );
    labels.metadata(&format!("{META}endpointslice"), meta);
    if let Some(service) = service {
        // The service's labels include the namespace again; values agree.
        labels.0.extend(service_labels(service).0);
    }
    let mut group = TargetGroup {
        source: format!("endpointslice/{namespace}/{name}"),
        targets: Vec::new(),
        labels: labels.build(),
    };
    // Pods seen, with the slice ports that made targets for them.
    let mut seen_pods: Vec<(&Pod, Vec<i32>)> = Vec::new();
    let ports = slice.ports.as_deref().unwrap_or(&[]);
    for endpoint in &slice.endpoints {
        let target_pod = endpoint
            .target_ref
            .as_ref()
            .filter(|r| r.kind.as_deref() == Some("Pod"))
            .and_then(|r| r.name.as_deref())
            .and_then(&pod);
        for port in ports {
            for address in &endpoint.addresses {
                let mut target = LabelSet::default();
                let joined = match port.port {
                    Some(number) => join_host_port(address, number),
                    None => address.clone(),
                };
                target.set(ADDRESS_LABEL, joined);
                if let Some(name) = &port.name {
                    target.set(format!("{META}endpointslice_port_name"), name.as_str());
                }
                if let Some(protocol) = &port.protocol {
                    target.set(
                        format!("{META}endpointslice_port_protocol"),
                        protocol.as_str(),
                    );
                }
                if let Some(number) = port.port {
                    target.set(format!("{META}endpointslice_port"), number.to_string());
                }
                if let Some(app_protocol) = &port.app_protocol {
                    target.set(
                        format!("{META}endpointslice_port_app_protocol"),
                        app_protocol.as_str(),
                    );
                }
                let conditions = endpoint.conditions.as_ref();
                for (condition, value) in [
                    ("ready", conditions.and_then(|c| c.ready)),
                    ("serving", conditions.and_then(|c| c.serving)),
                    ("terminating", conditions.and_then(|c| c.terminating)),
                ] {
                    if let Some(value) = value {
                        target.set(
                            format!("{META}endpointslice_endpoint_conditions_{condition}"),
                            bool_label(value),
                        );
                    }
                }
                if let Some(hostname) = &endpoint.hostname {
                    target.set(
                        format!("{META}endpointslice_endpoint_hostname"),
                        hostname.as_str(),
                    );
                }
                if let Some(target_ref) = &endpoint.target_ref {
                    target.set(
                        format!("{META}endpointslice_address_target_kind"),
                        target_ref.kind.clone().unwrap_or_default(),
                    );
                    target.set(
                        format!("{META}endpointslice_address_target_name"),
                        target_ref.name.clone().unwrap_or_default(),
                    );
                }
                if let Some(node_name) = &endpoint.node_name {
                    target.set(
                        format!("{META}endpointslice_endpoint_node_name"),
                        node_name.as_str(),
                    );
                }
                if let Some(zone) = &endpoint.zone {
                    target.set(format!("{META}endpointslice_endpoint_zone"), zone.as_str());
                }
                for (key, value) in endpoint.deprecated_topology.iter().flatten() {
                    let key = sanitize_label_name(key);
                    target.set(
                        format!("{META}endpointslice_endpoint_topology_{key}"),
                        value.as_str(),
                    );
                    target.set(
                        format!("{META}endpointslice_endpoint_topology_present_{key}"),
                        "true",
                    );
                }
                if let Some(pod) = target_pod {
                    target.0.extend(pod_labels(pod).0);
                    if let Some((container, container_port)) =
                        port.port.and_then(|number| container_port(pod, number))
                    {
                        set_container_port(&mut target, container, container_port);
                    }
                    let index = match seen_pods.iter().position(|(p, _)| std::ptr::eq(*p, pod)) {
                        Some(index) => index,
                        None => {
                            seen_pods.push((pod, Vec::new()));
                            seen_pods.len() - 1
                        }
                    };
                    if let (Some(number), Some((_, covered))) =
                        (port.port, seen_pods.get_mut(index))
                    {
                        covered.push(number);
                    }
                }
                group.targets.push(target.build());
            }
        }
    }
    for (pod, covered) in seen_pods {
        let pod_ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref());
        let Some(pod_ip) = pod_ip.filter(|ip| !ip.is_empty()) else {
            continue;
        };
        for container in pod.spec.iter().flat_map(|s| &s.containers) {
            for port in container.ports.iter().flatten() {
                if covered.contains(&port.container_port) {
                    continue;
                }
                let mut target = LabelSet::default();
                target.set(ADDRESS_LABEL, join_host_port(pod_ip, port.container_port));
                set_container_port(&mut target, container, port);
                target.0.extend(pod_labels(pod).0);
                group.targets.push(target.build());
            }
        }
    }
    group
}

/// The namespaces to watch: `None` for all.
fn namespaces(config: &KubernetesSdConfig) -> Option<Vec<String>> {
    let mut names: BTreeSet<String> = config.namespaces.names.iter().cloned().collect();
    if config.namespaces.own_namespace {
        match std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE) {
            Ok(ns) => {
                names.insert(ns.trim().to_string());
            }
            Err(error) => tracing::warn!(error = %error, "Cannot read the pod's own namespace"),
        }
    }
    if names.is_empty() {
        None
    } else {
        Some(names.into_iter().collect())
    }
}

fn watcher_config(config: &KubernetesSdConfig, role: KubernetesRole) -> watcher::Config {
    let mut wc = watcher::Config::default();
    if let Some(selector) = config.selectors.iter().find(|s| s.role == role) {
        if !selector.label.is_empty() {
            wc = wc.labels(&selector.label);
        }
        if !selector.field.is_empty() {
            wc = wc.fields(&selector.field);
        }
    }
    wc
}

fn apis<K>(client: &Client, namespaces: &Option<Vec<String>>) -> Vec<Api<K>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match namespaces {
        None => vec![Api::all(client.clone())],
        Some(names) => names
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect(),
    }
}

/// Runs discovery for one config until the task is aborted.
pub async fn run(config: KubernetesSdConfig, sink: GroupSink) {
    let client = match client(&config).await {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(error = %error, "Kubernetes discovery cannot start");
            return;
        }
    };
    let role = config.role;
    let namespaces = namespaces(&config);
    let mut streams: Vec<EventStream> = Vec::new();
    let mut kinds = Vec::new();
    let mut add = |stream: EventStream, kind: Kind, kinds: &mut Vec<Kind>| {
        streams.push(stream);
        kinds.push(kind);
    };
    match role {
        KubernetesRole::Node => {
            let id = kinds.len();
            add(
                watch_stream(
                    Api::<Node>::all(client.clone()),
                    watcher_config(&config, role),
                    id,
                    |o| Object::Node(Box::new(o)),
                ),
                Kind::Node,
                &mut kinds,
            );
        }
        KubernetesRole::Pod => {
            for api in apis::<Pod>(&client, &namespaces) {
                let id = kinds.len();
                add(
                    watch_stream(api, watcher_config(&config, role), id, |o| {
                        Object::Pod(Box::new(o))
                    }),
                    Kind::Pod,
                    &mut kinds,
                );
            }
        }
        KubernetesRole::Service => {
            for api in apis::<Service>(&client, &namespaces) {
                let id = kinds.len();
                add(
                    watch_stream(api, watcher_config(&config, role), id, |o| {
                        Object::Service(Box::new(o))
                    }),
                    Kind::Service,
                    &mut kinds,
                );
            }
        }
        KubernetesRole::EndpointSlice => {
            for api in apis::<EndpointSlice>(&client, &namespaces) {
                let id = kinds.len();
                add(
                    watch_stream(api, watcher_config(&config, role), id, |o| {
                        Object::EndpointSlice(Box::new(o))
                    }),
                    Kind::EndpointSlice,
                    &mut kinds,
                );
            }
            for api in apis::<Service>(&client, &namespaces) {
                let id = kinds.len();
                add(
                    watch_stream(
                        api,
                        watcher_config(&config, KubernetesRole::Service),
                        id,
                        |o| Object::Service(Box::new(o)),
                    ),
                    Kind::Service,
                    &mut kinds,
                );
            }
            for api in apis::<Pod>(&client, &namespaces) {
                let id = kinds.len();
                add(
                    watch_stream(api, watcher_config(&config, KubernetesRole::Pod), id, |o| {
                        Object::Pod(Box::new(o))
                    }),
                    Kind::Pod,
                    &mut kinds,
                );
            }
        }
        KubernetesRole::Endpoints | KubernetesRole::Ingress => {
            tracing::warn!(role = %role, "Kubernetes discovery role is not supported; it yields no targets");
            return;
        }
    }
    let mut state = State {
        role,
        objects: vec![BTreeMap::new(); kinds.len()],
        kinds,
        relisting: BTreeMap::new(),
        reported: BTreeMap::new(),
    };
    let mut events = futures::stream::select_all(streams);
    while let Some((stream, event)) = events.next().await {
        match event {
            Ok(event) => {
                let changed = state.apply(stream, event);
                if !changed.is_empty() {
                    sink.update(changed);
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, role = %role, "Kubernetes watch failed; it will relist");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn label_names_are_sanitized() {
        assert_eq!(
            sanitize_label_name("app.kubernetes.io/name"),
            "app_kubernetes_io_name"
        );
        assert_eq!(sanitize_label_name("a-b_c9"), "a_b_c9");
    }

    #[test]
    fn pod_targets_per_container_port() {
        let pod = pod(serde_json::json!({
            "metadata": {
                "name": "web-1", "namespace": "shop", "uid": "u1",
                "labels": {"app.kubernetes.io/name": "web"},
                "annotations": {"prometheus.io/scrape": "true"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-rs", "uid": "r", "controller": true}]
            },
            "spec": {
                "nodeName": "n1",
                "containers": [
                    {"name": "app", "image": "web:1", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]},
                    {"name": "sidecar", "image": "side:1"}
                ],
                "initContainers": [{"name": "init", "image": "init:1"}]
            },
            "status": {
                "phase": "Running", "podIP": "10.0.0.5", "hostIP": "192.168.1.1",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "app", "containerID": "containerd://abc", "image": "web:1", "imageID": "", "ready": true, "restartCount": 0}]
            }
        }));
        let group = pod_group(&pod);
        assert_eq!(group.source, "pod/shop/web-1");
        assert_eq!(
            group.labels.to_string(),
            r#"{__meta_kubernetes_namespace="shop", __meta_kubernetes_pod_annotation_prometheus_io_scrape="true", __meta_kubernetes_pod_annotationpresent_prometheus_io_scrape="true", __meta_kubernetes_pod_controller_kind="ReplicaSet", __meta_kubernetes_pod_controller_name="web-rs", __meta_kubernetes_pod_host_ip="192.168.1.1", __meta_kubernetes_pod_ip="10.0.0.5", __meta_kubernetes_pod_label_app_kubernetes_io_name="web", __meta_kubernetes_pod_labelpresent_app_kubernetes_io_name="true", __meta_kubernetes_pod_name="web-1", __meta_kubernetes_pod_node_name="n1", __meta_kubernetes_pod_phase="Running", __meta_kubernetes_pod_ready="true", __meta_kubernetes_pod_uid="u1"}"#
        );
        assert_eq!(group.targets.len(), 3);
        assert_eq!(
            group.targets[0].to_string(),
            r#"{__address__="10.0.0.5:8080", __meta_kubernetes_pod_container_id="containerd://abc", __meta_kubernetes_pod_container_image="web:1", __meta_kubernetes_pod_container_init="false", __meta_kubernetes_pod_container_name="app", __meta_kubernetes_pod_container_port_name="http", __meta_kubernetes_pod_container_port_number="8080", __meta_kubernetes_pod_container_port_protocol="TCP"}"#
        );
        assert_eq!(group.targets[1].get("__address__"), Some("10.0.0.5"));
        assert_eq!(
            group.targets[2].get("__meta_kubernetes_pod_container_init"),
            Some("true")
        );
    }

    #[test]
    fn node_target_uses_the_preferred_address_and_kubelet_port() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1", "labels": {"kubernetes.io/os": "linux"}},
            "spec": {"providerID": "aws:///i-1"},
            "status": {
                "addresses": [{"type": "Hostname", "address": "n1.local"}, {"type": "InternalIP", "address": "10.1.0.1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}
            }
        }))
        .unwrap();
        let group = node_group(&node);
        assert_eq!(group.source, "node/n1");
        assert_eq!(
            group.targets[0].to_string(),
            r#"{__address__="10.1.0.1:10250", __meta_kubernetes_node_address_Hostname="n1.local", __meta_kubernetes_node_address_InternalIP="10.1.0.1", instance="n1"}"#
        );
        assert_eq!(
            group
                .labels
                .get("__meta_kubernetes_node_label_kubernetes_io_os"),
            Some("linux")
        );
        assert_eq!(
            group.labels.get("__meta_kubernetes_node_provider_id"),
            Some("aws:///i-1")
        );
    }

    #[test]
    fn service_targets_per_port() {
        let service: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
        }))
        .unwrap();
        let group = service_group(&service);
        assert_eq!(group.source, "svc/shop/web");
        assert_eq!(
            group.targets[0].to_string(),
            r#"{__address__="web.shop.svc:80", __meta_kubernetes_service_cluster_ip="10.96.0.10", __meta_kubernetes_service_port_name="http", __meta_kubernetes_service_port_number="80", __meta_kubernetes_service_port_protocol="TCP", __meta_kubernetes_service_type="ClusterIP"}"#
        );
    }

    #[test]
    fn endpoint_slice_targets_carry_service_and_pod_labels() {
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-abc", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{
                "addresses": ["10.0.0.5"],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": "n1", "zone": "z1",
                "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "shop"}
            }],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        }))
        .unwrap();
        let service: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop", "labels": {"tier": "front"}}
        }))
        .unwrap();
        let web_pod = pod(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop"},
            "spec": {"containers": [{"name": "app", "image": "web:1", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"podIP": "10.0.0.5"}
        }));
        let group = endpoint_slice_group(&slice, Some(&service), |name| {
            (name == "web-1").then_some(&web_pod)
        });
        assert_eq!(group.source, "endpointslice/shop/web-abc");
        assert_eq!(
            group.labels.get("__meta_kubernetes_service_name"),
            Some("web")
        );
        assert_eq!(
            group.labels.get("__meta_kubernetes_service_label_tier"),
            Some("front")
        );
        assert_eq!(
            group
                .labels
                .get("__meta_kubernetes_endpointslice_address_type"),
            Some("IPv4")
        );
        let target = &group.targets[0];
        assert_eq!(target.get("__address__"), Some("10.0.0.5:8080"));
        assert_eq!(
            target.get("__meta_kubernetes_endpointslice_endpoint_conditions_ready"),
            Some("true")
        );
        assert_eq!(
            target.get("__meta_kubernetes_endpointslice_endpoint_zone"),
            Some("z1")
        );
        assert_eq!(
            target.get("__meta_kubernetes_endpointslice_address_target_kind"),
            Some("Pod")
        );
        assert_eq!(target.get("__meta_kubernetes_pod_name"), Some("web-1"));
        assert_eq!(
            target.get("__meta_kubernetes_pod_container_name"),
            Some("app")
        );
        assert_eq!(
            target.get("__meta_kubernetes_pod_container_port_name"),
            Some("http")
        );
    }

    #[test]
    fn ipv6_addresses_are_bracketed() {
        assert_eq!(join_host_port("fd00::1", 80), "[fd00::1]:80");
        assert_eq!(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
    }
}
