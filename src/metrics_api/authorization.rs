//! `metrics_api.authorization`: what an authenticated caller may read, decided
//! by the Kubernetes API as an aggregated API server delegates it.
//!
//! Every request that is not a health probe is turned into Kubernetes request
//! attributes the way the apiserver library's `RequestInfoFactory` reads a path
//! (`/apis/<group>/<version>/namespaces/<ns>/<resource>/<name>/<subresource>`,
//! `get` with a name, `list` without; shorter paths are non-resource paths),
//! then posted as an `authorization.k8s.io/v1` `SubjectAccessReview` with the
//! user, groups and extras the authenticator found. Answers are cached per
//! attributes (10 s by default, allowed and denied alike; failures are not
//! cached). A denial is a 403 `Status` worded as the apiserver words it, a
//! failed review a 500 `InternalError`. Members of `always_allow_groups`
//! (`system:masters`) are allowed without a review, as the apiserver library
//! allows its privileged group. Wire format: `docs/format/metrics-api.md`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use parking_lot::Mutex;
use tsdb::clock::Clock;

use super::Error;
use super::tls::{ALWAYS_ALLOWED, User};
use super::wire::status;
use crate::config::metrics_api::MetricsApiAuthorization;

/// The most answers kept; past it expired ones are dropped, then all.
const CACHE_CAPACITY: usize = 8192;

/// What a request asks to do, as Kubernetes authorizers see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attributes {
    pub user: User,
    /// `get`, `list`, `create`, ...
    pub verb: String,
    pub target: Target,
}

/// A resource of an API group, or a plain path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Resource {
        group: String,
        version: String,
        /// Empty for cluster-scoped resources.
        namespace: String,
        resource: String,
        subresource: String,
        /// Empty for lists.
        name: String,
    },
    NonResource {
        path: String,
    },
}

impl Attributes {
    /// The attributes of `method` on `path` by `user`, read as the apiserver
    /// library's `RequestInfoFactory` reads them (`/apis` prefix only: the
    /// metrics APIs serve no `/api` paths).
    pub fn of(user: User, method: &Method, path: &str) -> Attributes {
        // Go reads the decoded path (kubectl sends `*` as `%2A`).
        let path = &super::tls::percent_decode(path);
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let method_verb = method.as_str().to_ascii_lowercase();
        if parts.len() < 4 || parts[0] != "apis" || parts.iter().any(|p| p.is_empty()) {
            return Attributes {
                user,
                verb: method_verb,
                target: Target::NonResource {
                    path: path.to_string(),
                },
            };
        }
        let (group, version) = (parts[1].to_string(), parts[2].to_string());
        let mut rest = &parts[3..];
        let mut namespace = String::new();
        if rest[0] == "namespaces" && rest.len() > 1 {
            namespace = rest[1].to_string();
            // `status` and `finalize` are subresources of the namespace.
            if rest.len() > 2 && !["status", "finalize"].contains(&rest[2]) {
                rest = &rest[2..];
            }
        }
        let resource = rest[0].to_string();
        let name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
        let subresource = rest.get(2).map(|s| s.to_string()).unwrap_or_default();
        let verb = match *method {
            Method::GET | Method::HEAD if name.is_empty() => "list".to_string(),
            Method::GET | Method::HEAD => "get".to_string(),
            Method::POST => "create".to_string(),
            Method::PUT => "update".to_string(),
            Method::PATCH => "patch".to_string(),
            Method::DELETE if name.is_empty() => "deletecollection".to_string(),
            Method::DELETE => "delete".to_string(),
            _ => method_verb,
        };
        Attributes {
            user,
            verb,
            target: Target::Resource {
                group,
                version,
                namespace,
                resource,
                subresource,
                name,
            },
        }
    }

    /// The `SubjectAccessReview` asking about these attributes.
    pub fn review(&self) -> SubjectAccessReview {
        let (resource_attributes, non_resource_attributes) = match &self.target {
            Target::Resource {
                group,
                version,
                namespace,
                resource,
                subresource,
                name,
            } => {
                let some = |s: &String| (!s.is_empty()).then(|| s.clone());
                (
                    Some(ResourceAttributes {
                        group: Some(group.clone()),
                        version: some(version),
                        namespace: some(namespace),
                        resource: some(resource),
                        subresource: some(subresource),
                        name: some(name),
                        verb: Some(self.verb.clone()),
                        ..ResourceAttributes::default()
                    }),
                    None,
                )
            }
            Target::NonResource { path } => (
                None,
                Some(NonResourceAttributes {
                    path: Some(path.clone()),
                    verb: Some(self.verb.clone()),
                }),
            ),
        };
        SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(self.user.name.clone()),
                groups: (!self.user.groups.is_empty()).then(|| self.user.groups.clone()),
                extra: (!self.user.extra.is_empty()).then(|| self.user.extra.clone()),
                resource_attributes,
                non_resource_attributes,
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        }
    }

    /// The apiserver's 403 `Status` for these attributes, with the
    /// authorizer's `reason` appended when there is one.
    pub fn forbidden(&self, reason: &str) -> serde_json::Value {
        let user = &self.user.name;
        let verb = &self.verb;
        let (message, details) = match &self.target {
            Target::NonResource { path } => (
                format!("forbidden: User {user:?} cannot {verb} path {path:?}"),
                serde_json::json!({}),
            ),
            Target::Resource {
                group,
                namespace,
                resource,
                subresource,
                name,
                ..
            } => {
                let mut what = resource.clone();
                if !subresource.is_empty() {
                    what = format!("{what}/{subresource}");
                }
                let scope = if namespace.is_empty() {
                    "at the cluster scope".to_string()
                } else {
                    format!("in the namespace {namespace:?}")
                };
                let qualified = if group.is_empty() {
                    resource.clone()
                } else {
                    format!("{resource}.{group}")
                };
                let object = if name.is_empty() {
                    qualified
                } else {
                    format!("{qualified} {name:?}")
                };
                let mut details = serde_json::Map::new();
                for (key, value) in [("name", name), ("group", group), ("kind", resource)] {
                    if !value.is_empty() {
                        details.insert(key.into(), value.clone().into());
                    }
                }
                (
                    format!(
                        "{object} is forbidden: User {user:?} cannot {verb} resource {what:?} in API group {group:?} {scope}"
                    ),
                    serde_json::Value::Object(details),
                )
            }
        };
        let message = if reason.is_empty() {
            message
        } else {
            format!("{message}: {reason}")
        };
        let mut body = status(403, "Forbidden", &message);
        body["details"] = details;
        body
    }
}

/// A client for the Kubernetes API as `config` says (`api_server`, else
/// `kubeconfig_file`, else in-cluster); in-cluster without a config.
///
/// # Errors
/// No usable credentials (unreadable kubeconfig, not in a cluster).
pub async fn client(config: Option<&MetricsApiAuthorization>) -> Result<kube::Client, Error> {
    let (api_server, kubeconfig, http) = match config {
        Some(c) => (
            c.api_server.as_deref(),
            c.kubeconfig_file.as_deref(),
            c.http_client_config(),
        ),
        None => (None, None, scraper::config::HttpClientConfig::default()),
    };
    scraper::discovery::kubernetes::client_for(api_server, kubeconfig, &http)
        .await
        .map_err(|e| Error::Authorization(e.to_string()))
}

/// An authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Denied, or no opinion: both are a 403. The reason may be empty.
    Denied(String),
}

#[derive(Debug, Clone)]
struct Cached {
    decision: Decision,
    expires_ms: i64,
}

/// Posts `SubjectAccessReview`s and caches their answers.
pub struct Authorizer {
    client: kube::Client,
    clock: Arc<dyn Clock>,
    allowed_ttl: Duration,
    denied_ttl: Duration,
    always_allow_groups: Vec<String>,
    cache: Mutex<HashMap<Attributes, Cached>>,
    reviews: std::sync::atomic::AtomicU64,
}

impl Authorizer {
    /// Reviews through `client` as `config` says; `clock` times the cache.
    pub fn new(
        config: &MetricsApiAuthorization,
        client: kube::Client,
        clock: Arc<dyn Clock>,
    ) -> Authorizer {
        Authorizer {
            client,
            clock,
            allowed_ttl: config.cache_authorized_ttl,
            denied_ttl: config.cache_unauthorized_ttl,
            always_allow_groups: config.always_allow_groups.clone(),
            cache: Mutex::new(HashMap::new()),
            reviews: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many reviews were posted (cache misses).
    pub fn reviews(&self) -> u64 {
        self.reviews.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The decision for `attributes`: privileged groups, then the cache, then
    /// a review.
    ///
    /// # Errors
    /// The review could not be posted or its answer read (not cached).
    pub async fn authorize(&self, attributes: &Attributes) -> Result<Decision, String> {
        if attributes
            .user
            .groups
            .iter()
            .any(|g| self.always_allow_groups.contains(g))
        {
            return Ok(Decision::Allowed);
        }
        let now = self.clock.now_ms();
        if let Some(cached) = self.cache.lock().get(attributes)
            && cached.expires_ms > now
        {
            return Ok(cached.decision.clone());
        }
        self.reviews
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let reviews: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = reviews
            .create(&PostParams::default(), &attributes.review())
            .await
            .map_err(|e| format!("SubjectAccessReview: {e}"))?;
        let status = answer.status.unwrap_or_default();
        let (decision, ttl) = if status.allowed {
            (Decision::Allowed, self.allowed_ttl)
        } else {
            let mut reason = status.reason.unwrap_or_default();
            if let Some(error) = status.evaluation_error.filter(|e| !e.is_empty()) {
                tracing::debug!(%error, "SubjectAccessReview evaluation error.");
                if reason.is_empty() {
                    reason = error;
                }
            }
            (Decision::Denied(reason), self.denied_ttl)
        };
        let expires_ms = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, c| c.expires_ms > now);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(
            attributes.clone(),
            Cached {
                decision: decision.clone(),
                expires_ms,
            },
        );
        Ok(decision)
    }
}

/// `router` behind `authorizer`: requests it does not allow are answered 403
/// (500 when the review fails). Goes inside the authentication layer, which
/// puts the [`User`] in the request's extensions; a request without one is
/// `system:anonymous`.
pub fn with_authorization(router: Router, authorizer: Arc<Authorizer>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        authorizer,
        authorize_request,
    ))
}

async fn authorize_request(
    State(authorizer): State<Arc<Authorizer>>,
    request: Request,
    next: Next,
) -> Response {
    if ALWAYS_ALLOWED.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let user = request
        .extensions()
        .get::<User>()
        .cloned()
        .unwrap_or_else(|| User {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
            extra: BTreeMap::new(),
        });
    let attributes = Attributes::of(user, request.method(), request.uri().path());
    match authorizer.authorize(&attributes).await {
        Ok(Decision::Allowed) => next.run(request).await,
        Ok(Decision::Denied(reason)) => {
            tracing::debug!(user = %attributes.user.name, verb = %attributes.verb, path = %request.uri().path(), %reason, "Metrics API request forbidden.");
            (
                StatusCode::FORBIDDEN,
                axum::Json(attributes.forbidden(&reason)),
            )
                .into_response()
        }
        Err(error) => {
            tracing::warn!(%error, "Metrics API request not authorized: the review failed.");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(status(
                    500,
                    "InternalError",
                    &format!("Internal error occurred: {error}"),
                )),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics_api::tls::tests::{ca, client_cert};
    use crate::metrics_api::tls::{Authenticator, default_hosts, with_authentication};
    use axum::extract::Json;
    use axum::routing::{get, post};
    use tsdb::clock::ManualClock;

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            extra: BTreeMap::new(),
        }
    }

    fn resource(
        group: &str,
        version: &str,
        namespace: &str,
        resource: &str,
        name: &str,
        subresource: &str,
    ) -> Target {
        Target::Resource {
            group: group.into(),
            version: version.into(),
            namespace: namespace.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            name: name.into(),
        }
    }

    #[test]
    fn paths_are_read_as_the_apiserver_reads_them() {
        const CUSTOM: &str = "custom.metrics.k8s.io";
        let cases = [
            (
                "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/http_requests",
                "get",
                resource(CUSTOM, "v1beta2", "shop", "pods", "*", "http_requests"),
            ),
            (
                "/apis/custom.metrics.k8s.io/v1beta1/nodes/node-1/cpu_load",
                "get",
                resource(CUSTOM, "v1beta1", "", "nodes", "node-1", "cpu_load"),
            ),
            (
                "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/metrics/queue",
                "get",
                resource(CUSTOM, "v1beta1", "shop", "metrics", "queue", ""),
            ),
            (
                "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop",
                "get",
                resource(CUSTOM, "v1beta1", "shop", "namespaces", "shop", ""),
            ),
            (
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_depth",
                "list",
                resource(
                    "external.metrics.k8s.io",
                    "v1beta1",
                    "shop",
                    "queue_depth",
                    "",
                    "",
                ),
            ),
        ];
        for (path, verb, target) in cases {
            let attributes = Attributes::of(user("alice", &[]), &Method::GET, path);
            assert_eq!(attributes.verb, verb, "{path}");
            assert_eq!(attributes.target, target, "{path}");
        }
        for path in [
            "/apis",
            "/apis/custom.metrics.k8s.io",
            "/apis/custom.metrics.k8s.io/v1beta1",
            "/openapi/v2",
        ] {
            let attributes = Attributes::of(user("alice", &[]), &Method::GET, path);
            assert_eq!(attributes.verb, "get");
            assert_eq!(attributes.target, Target::NonResource { path: path.into() });
        }
        // Escaped as kubectl sends it.
        let escaped = Attributes::of(
            user("alice", &[]),
            &Method::GET,
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/%2A/http_requests",
        );
        assert_eq!(
            escaped.target,
            resource(CUSTOM, "v1beta2", "shop", "pods", "*", "http_requests")
        );
        let post = Attributes::of(
            user("alice", &[]),
            &Method::POST,
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods",
        );
        assert_eq!(post.verb, "create");
    }

    #[test]
    fn denials_are_worded_as_the_apiserver_words_them() {
        let bob = user("bob", &["dev"]);
        let pods = Attributes::of(
            bob.clone(),
            &Method::GET,
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/http_requests",
        );
        assert_eq!(
            pods.forbidden(""),
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure",
                "message": "pods.custom.metrics.k8s.io \"*\" is forbidden: User \"bob\" cannot get resource \"pods/http_requests\" in API group \"custom.metrics.k8s.io\" in the namespace \"shop\"",
                "reason": "Forbidden",
                "details": {"name": "*", "group": "custom.metrics.k8s.io", "kind": "pods"},
                "code": 403})
        );
        let nodes = Attributes::of(
            bob.clone(),
            &Method::GET,
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_depth",
        );
        assert_eq!(
            nodes.forbidden("no RBAC policy matched")["message"],
            "queue_depth.external.metrics.k8s.io is forbidden: User \"bob\" cannot list resource \"queue_depth\" in API group \"external.metrics.k8s.io\" in the namespace \"shop\": no RBAC policy matched"
        );
        let cluster = Attributes::of(
            bob.clone(),
            &Method::GET,
            "/apis/custom.metrics.k8s.io/v1beta1/nodes/node-1/cpu_load",
        );
        assert_eq!(
            cluster.forbidden("")["message"],
            "nodes.custom.metrics.k8s.io \"node-1\" is forbidden: User \"bob\" cannot get resource \"nodes/cpu_load\" in API group \"custom.metrics.k8s.io\" at the cluster scope"
        );
        let discovery = Attributes::of(bob, &Method::GET, "/apis");
        let body = discovery.forbidden("");
        assert_eq!(
            body["message"],
            "forbidden: User \"bob\" cannot get path \"/apis\""
        );
        assert_eq!(body["details"], serde_json::json!({}));
    }

    /// A Kubernetes API answering `SubjectAccessReview`s on loopback: alice is
    /// allowed everything, "broken" gets a 500, anyone else is denied. Every
    /// review's spec is recorded.
    async fn fake_api_server() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&asked);
        let app = Router::new().route(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            post(async move |Json(review): Json<serde_json::Value>| {
                recorded.lock().push(review["spec"].clone());
                let user = review["spec"]["user"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if user == "broken" {
                    return (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        Json(status(500, "InternalError", "etcd is down")),
                    );
                }
                let mut answer = review.clone();
                answer["status"] = if user == "alice" {
                    serde_json::json!({"allowed": true, "reason": "RBAC: allowed"})
                } else {
                    serde_json::json!({"allowed": false, "reason": "no RBAC policy matched"})
                };
                (StatusCode::CREATED, Json(answer))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), asked)
    }

    async fn authorizer(api_server: &str, clock: Arc<ManualClock>) -> Authorizer {
        let config: MetricsApiAuthorization = serde_yaml::from_str(&format!(
            "{{api_server: '{api_server}', cache_unauthorized_ttl: 5s}}"
        ))
        .unwrap();
        Authorizer::new(&config, client(Some(&config)).await.unwrap(), clock)
    }

    #[tokio::test]
    async fn reviews_carry_the_user_and_answers_are_cached() {
        let (api_server, asked) = fake_api_server().await;
        let clock = Arc::new(ManualClock::new(1_000_000));
        let authorizer = authorizer(&api_server, Arc::clone(&clock)).await;
        let mut alice = user("alice", &["dev", "system:authenticated"]);
        alice
            .extra
            .insert("scopes".into(), vec!["read".into(), "write".into()]);
        let path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/http_requests";
        let read = Attributes::of(alice, &Method::GET, path);
        assert_eq!(
            authorizer.authorize(&read).await.unwrap(),
            Decision::Allowed
        );
        assert_eq!(
            asked.lock()[0],
            serde_json::json!({
                "user": "alice",
                "groups": ["dev", "system:authenticated"],
                "extra": {"scopes": ["read", "write"]},
                "resourceAttributes": {
                    "group": "custom.metrics.k8s.io", "version": "v1beta2",
                    "namespace": "shop", "resource": "pods", "name": "*",
                    "subresource": "http_requests", "verb": "get"
                }
            })
        );
        // Cached for the default 10 s.
        clock.advance(Duration::from_secs(9));
        assert_eq!(
            authorizer.authorize(&read).await.unwrap(),
            Decision::Allowed
        );
        assert_eq!(authorizer.reviews(), 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            authorizer.authorize(&read).await.unwrap(),
            Decision::Allowed
        );
        assert_eq!(authorizer.reviews(), 2);

        let bob = Attributes::of(user("bob", &["dev"]), &Method::GET, "/apis");
        let denied = Decision::Denied("no RBAC policy matched".into());
        assert_eq!(authorizer.authorize(&bob).await.unwrap(), denied);
        assert_eq!(
            asked.lock()[2]["nonResourceAttributes"],
            serde_json::json!({"path": "/apis", "verb": "get"})
        );
        // Denials are kept for cache_unauthorized_ttl (5 s here).
        clock.advance(Duration::from_secs(4));
        assert_eq!(authorizer.authorize(&bob).await.unwrap(), denied);
        assert_eq!(authorizer.reviews(), 3);
        clock.advance(Duration::from_secs(1));
        assert_eq!(authorizer.authorize(&bob).await.unwrap(), denied);
        assert_eq!(authorizer.reviews(), 4);

        // A failed review is an error, and is asked again next time.
        let broken = Attributes::of(user("broken", &[]), &Method::GET, "/apis");
        let error = authorizer.authorize(&broken).await.unwrap_err();
        assert!(error.contains("etcd is down"), "{error}");
        assert!(authorizer.authorize(&broken).await.is_err());
        assert_eq!(authorizer.reviews(), 6);

        // system:masters needs no review.
        let root = Attributes::of(user("root", &["system:masters"]), &Method::GET, path);
        assert_eq!(
            authorizer.authorize(&root).await.unwrap(),
            Decision::Allowed
        );
        assert_eq!(authorizer.reviews(), 6);
    }

    /// The whole stack on a loopback HTTPS listener: authentication, then
    /// authorization, then the API.
    #[tokio::test]
    async fn forbidden_requests_get_a_403_status() {
        let (api_server, _) = fake_api_server().await;
        let authorizer = Arc::new(authorizer(&api_server, Arc::new(ManualClock::new(0))).await);
        let dir = tempfile::tempdir().unwrap();
        let front_proxy = ca("front-proxy-ca");
        let ca_file = dir.path().join("front-proxy-ca.crt");
        std::fs::write(&ca_file, &front_proxy.pem).unwrap();
        let authentication = crate::config::metrics_api::MetricsApiAuthentication {
            requestheader_client_ca_file: Some(ca_file.display().to_string()),
            ..Default::default()
        };
        let authenticator = Arc::new(
            Authenticator::from_config(&authentication)
                .unwrap()
                .unwrap(),
        );
        let tls = crate::web::tls::from_pem_files(None, None, &default_hosts(), true).unwrap();
        let router = Router::new()
            .route("/apis/{*rest}", get(|| async { "metrics" }))
            .route("/healthz", get(|| async { "ok" }));
        let router = with_authentication(with_authorization(router, authorizer), authenticator);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::web::serve(
            listener,
            router,
            crate::web::Transport::Tls(Arc::new(tls)),
            crate::web::ConnectionLimits::default(),
            None,
            async move {
                let _ = stopped.await;
            },
        ));
        let (proxy, _) = client_cert(&front_proxy, "front-proxy-client", None);
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .identity(reqwest::Identity::from_pem(proxy.as_bytes()).unwrap())
            .build()
            .unwrap();
        let get = async |user: &str, path: &str| {
            let response = client
                .get(format!("https://{addr}{path}"))
                .header("X-Remote-User", user)
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        };
        let path = "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/web-a/http_requests";
        assert_eq!(get("alice", path).await, (200, "metrics".into()));
        let (code, body) = get("bob", path).await;
        assert_eq!(code, 403);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["reason"], "Forbidden");
        assert_eq!(
            body["message"],
            "pods.custom.metrics.k8s.io \"web-a\" is forbidden: User \"bob\" cannot get resource \"pods/http_requests\" in API group \"custom.metrics.k8s.io\" in the namespace \"shop\": no RBAC policy matched"
        );
        let (code, body) = get("broken", path).await;
        assert_eq!(code, 500, "{body}");
        assert!(body.contains("InternalError"), "{body}");
        // Probes need neither a user nor a review.
        assert_eq!(get("bob", "/healthz").await, (200, "ok".into()));

        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
