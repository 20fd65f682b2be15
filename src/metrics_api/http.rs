//! The routes of the metrics APIs and what each request queries.
//!
//! - `GET /apis`, `/apis/<group>`, `/apis/<group>/<version>`: discovery;
//! - custom (`v1beta1`, `v1beta2`):
//!   `/namespaces/{ns}/{resource}/{name|*}/{metric}`,
//!   `/{resource}/{name|*}/{metric}` (root-scoped objects) and
//!   `/namespaces/{ns}/metrics/{metric}` (the namespace itself), with
//!   `labelSelector` (objects, with `*`) and `metricLabelSelector`;
//! - external (`v1beta1`): `/namespaces/{ns}/{metric}?labelSelector=...`;
//! - `/healthz`, `/livez`, `/readyz`.
//!
//! `labelSelector` needs the objects' labels, which Sextant reads from
//! kube-state-metrics' `kube_<resource>_labels` series (no Kubernetes API).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tsdb::promql::{QueryBackend, Value};

use super::resources::GroupResource;
use super::rules::{QueryFields, Rule};
use super::selector::{self, Selector};
use super::wire::{self, CUSTOM_GROUP, EXTERNAL_GROUP};
use super::{Error, MetricsApi};

/// The router over `api`.
pub fn router<B: QueryBackend + 'static>(api: Arc<MetricsApi<B>>) -> Router {
    Router::new()
        .route("/apis", get(apis))
        .route("/apis/{group}", get(group))
        .route("/apis/{group}/{version}", get(version::<B>))
        .route("/apis/{group}/{version}/{*rest}", get(metric::<B>))
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/readyz", get(ok))
        .fallback(not_found)
        .with_state(api)
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (code, reason) = match &self {
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            Error::Internal(_) | Error::Tls(_) | Error::Authorization(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
            }
        };
        let body = wire::status(code.as_u16(), reason, &self.to_string());
        (code, axum::Json(body)).into_response()
    }
}

async fn ok() -> &'static str {
    "ok"
}

async fn not_found() -> Error {
    Error::NotFound("the server could not find the requested resource".into())
}

async fn apis() -> Response {
    axum::Json(wire::api_group_list()).into_response()
}

fn known_version(group: &str, version: &str) -> bool {
    match group {
        CUSTOM_GROUP => matches!(version, "v1beta1" | "v1beta2"),
        EXTERNAL_GROUP => version == "v1beta1",
        _ => false,
    }
}

async fn group(Path(group): Path<String>) -> Result<Response, Error> {
    if group != CUSTOM_GROUP && group != EXTERNAL_GROUP {
        return Err(not_found().await);
    }
    Ok(axum::Json(wire::api_group(&group)).into_response())
}

async fn version<B: QueryBackend + 'static>(
    State(api): State<Arc<MetricsApi<B>>>,
    Path((group, version)): Path<(String, String)>,
) -> Result<Response, Error> {
    if !known_version(&group, &version) {
        return Err(not_found().await);
    }
    let state = api.state();
    let resources = if group == CUSTOM_GROUP {
        state.catalog.custom_resources()
    } else {
        state.catalog.external_resources()
    };
    Ok(axum::Json(wire::api_resource_list(
        &format!("{group}/{version}"),
        &resources,
    ))
    .into_response())
}

/// The query parameters the APIs take.
#[derive(Debug, Default)]
struct Params {
    label_selector: Selector,
    metric_label_selector: Selector,
}

fn params(query: Option<&str>) -> Result<Params, Error> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| Error::BadRequest(format!("bad query string: {e}")))?;
    let mut params = Params::default();
    for (key, value) in pairs {
        let parsed = || Selector::parse(&value).map_err(Error::BadRequest);
        match key.as_str() {
            // `selector` is the old spelling in prometheus-adapter's walkthrough.
            "labelSelector" | "selector" => params.label_selector = parsed()?,
            "metricLabelSelector" => params.metric_label_selector = parsed()?,
            _ => {}
        }
    }
    Ok(params)
}

async fn metric<B: QueryBackend + 'static>(
    State(api): State<Arc<MetricsApi<B>>>,
    Path((group, version, rest)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    if !known_version(&group, &version) {
        return Err(not_found().await);
    }
    let params = params(query.as_deref())?;
    let segments: Vec<&str> = rest.split('/').collect();
    if group == EXTERNAL_GROUP {
        let ["namespaces", namespace, metric] = segments[..] else {
            return Err(not_found().await);
        };
        let body = external(&api, namespace, metric, &params.label_selector).await?;
        return Ok(axum::Json(body).into_response());
    }
    let request = match segments[..] {
        ["namespaces", namespace, "metrics", metric] => CustomRequest {
            resource: GroupResource::namespaces(),
            namespace: None,
            name: namespace,
            metric,
        },
        ["namespaces", namespace, resource, name, metric] => CustomRequest {
            resource: GroupResource::parse(resource),
            namespace: Some(namespace),
            name,
            metric,
        },
        [resource, name, metric] => CustomRequest {
            resource: GroupResource::parse(resource),
            namespace: None,
            name,
            metric,
        },
        _ => return Err(not_found().await),
    };
    let items = custom(&api, &request, &params).await?;
    Ok(axum::Json(wire::metric_value_list(
        &version,
        &items,
        &params.metric_label_selector.to_json(),
    ))
    .into_response())
}

/// One custom metrics request.
struct CustomRequest<'a> {
    resource: GroupResource,
    namespace: Option<&'a str>,
    /// An object name or `*`.
    name: &'a str,
    metric: &'a str,
}

/// Which objects a request is about.
enum Objects {
    One(String),
    Some(Vec<String>),
    All,
}

async fn custom<B: QueryBackend + 'static>(
    api: &MetricsApi<B>,
    request: &CustomRequest<'_>,
    params: &Params,
) -> Result<Vec<wire::MetricValue>, Error> {
    let state = api.state();
    let not_found = || {
        Error::NotFound(format!(
            "the server could not find the metric {} for {}",
            request.metric, request.resource
        ))
    };
    let entry = state
        .catalog
        .custom(&request.resource, request.metric)
        .ok_or_else(not_found)?;
    let rule = state.rules.custom.get(entry.rule).ok_or_else(not_found)?;
    let object_label = rule
        .resources
        .label_for_resource(&request.resource)
        .ok_or_else(not_found)?;
    let now = api.clock.now_ms();
    let objects = if request.name == "*" {
        if params.label_selector.is_empty() {
            Objects::All
        } else {
            let names = list_objects(api, request, &params.label_selector, now).await?;
            if names.is_empty() {
                return Ok(Vec::new());
            }
            Objects::Some(names)
        }
    } else {
        Objects::One(request.name.to_string())
    };

    let mut matchers = Vec::new();
    if let Some(namespace) = request.namespace
        && let Some(label) = rule.namespace_label()
    {
        matchers.push(format!("{label}={}", selector::quote(namespace)));
    }
    match &objects {
        Objects::One(name) => matchers.push(format!("{object_label}={}", selector::quote(name))),
        Objects::Some(names) => {
            let escaped: Vec<String> = names.iter().map(|n| selector::quote_meta(n)).collect();
            matchers.push(format!(
                "{object_label}=~{}",
                selector::quote(&escaped.join("|"))
            ));
        }
        Objects::All => {}
    }
    matchers.extend(metric_matchers(&params.metric_label_selector)?);
    let query = rule.query.render(&QueryFields {
        series: entry.series.clone(),
        matchers,
        group_by: vec![object_label.clone()],
    });
    let samples = run(api, rule, &query, now).await?;

    let mut items: Vec<wire::MetricValue> = samples
        .into_iter()
        .filter_map(|sample| {
            let name = sample.labels.get(&object_label)?.to_string();
            Some(wire::MetricValue {
                described_object: wire::ObjectReference {
                    kind: request.resource.kind(),
                    namespace: request.namespace.map(str::to_string),
                    name,
                    api_version: request.resource.api_version(),
                },
                metric: request.metric.to_string(),
                timestamp_ms: sample.t,
                value: sample.v,
            })
        })
        .collect();
    items.sort_by(|a, b| a.described_object.name.cmp(&b.described_object.name));
    if let Objects::One(name) = &objects {
        items.retain(|item| item.described_object.name == *name);
        items.truncate(1);
        if items.is_empty() {
            return Err(Error::NotFound(format!(
                "the server could not find the metric {} for {} {name}",
                request.metric, request.resource
            )));
        }
    }
    Ok(items)
}

/// The matchers of a `metricLabelSelector`: its keys are series labels.
fn metric_matchers(selector: &Selector) -> Result<Vec<String>, Error> {
    selector
        .promql_matchers(selector::prometheus_label)
        .map_err(Error::BadRequest)
}

/// The names of the objects a `labelSelector` selects, from kube-state-metrics'
/// `kube_<resource>_labels{<namespace>, label_<key>...}`.
async fn list_objects<B: QueryBackend>(
    api: &MetricsApi<B>,
    request: &CustomRequest<'_>,
    label_selector: &Selector,
    now: i64,
) -> Result<Vec<String>, Error> {
    let singular = request.resource.singular();
    let mut matchers = Vec::new();
    if let Some(namespace) = request.namespace {
        matchers.push(format!("namespace={}", selector::quote(namespace)));
    }
    matchers.extend(
        label_selector
            .promql_matchers(|key| Ok(selector::kube_state_metrics_label(key)))
            .map_err(Error::BadRequest)?,
    );
    let query = format!("kube_{singular}_labels{{{}}}", matchers.join(","));
    let result = api
        .backend
        .instant(&query, now)
        .await
        .map_err(|e| Error::Internal(format!("unable to list {}: {e}", request.resource)))?;
    let Value::Vector(samples) = result.value else {
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = samples
        .iter()
        .filter_map(|s| s.labels.get(&singular).map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Runs a rule's query; a vector is expected.
async fn run<B: QueryBackend>(
    api: &MetricsApi<B>,
    rule: &Rule,
    query: &str,
    now: i64,
) -> Result<Vec<tsdb::promql::Sample>, Error> {
    tracing::debug!(rule = %rule.origin, query, "Metrics API query.");
    let result = api.backend.instant(query, now).await.map_err(|e| {
        tracing::warn!(rule = %rule.origin, query, error = %e, "Metrics API query failed.");
        Error::Internal(format!("unable to fetch metrics: {e}"))
    })?;
    match result.value {
        Value::Vector(samples) => Ok(samples),
        Value::Scalar(scalar) => Ok(vec![tsdb::promql::Sample {
            labels: tsdb::model::Labels::empty(),
            t: scalar.t,
            v: scalar.v,
        }]),
        other => Err(Error::Internal(format!(
            "the query of {} returned a {}, not a vector",
            rule.origin,
            other.type_name()
        ))),
    }
}

async fn external<B: QueryBackend + 'static>(
    api: &MetricsApi<B>,
    namespace: &str,
    metric: &str,
    label_selector: &Selector,
) -> Result<serde_json::Value, Error> {
    let state = api.state();
    let not_found = || Error::NotFound(format!("the server could not find the metric {metric}"));
    let entry = state.catalog.external(metric).ok_or_else(not_found)?;
    let rule = state.rules.external.get(entry.rule).ok_or_else(not_found)?;
    let mut matchers = Vec::new();
    if rule.namespaced
        && let Some(label) = rule.namespace_label()
    {
        matchers.push(format!("{label}={}", selector::quote(namespace)));
    }
    matchers.extend(metric_matchers(label_selector)?);
    let query = rule.query.render(&QueryFields {
        series: entry.series.clone(),
        matchers,
        group_by: Vec::new(),
    });
    let now = api.clock.now_ms();
    let samples = run(api, rule, &query, now).await?;
    let items: Vec<wire::ExternalMetricValue> = samples
        .into_iter()
        .map(|sample| wire::ExternalMetricValue {
            metric: metric.to_string(),
            labels: sample
                .labels
                .iter()
                .filter(|l| &*l.name != "__name__")
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect(),
            timestamp_ms: sample.t,
            value: sample.v,
        })
        .collect();
    Ok(wire::external_metric_value_list(&items))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use serde_json::{Value as Json, json};
    use tower::ServiceExt;
    use tsdb::clock::ManualClock;
    use tsdb::head::{Head, HeadOptions};
    use tsdb::model::{Labels, Sample};
    use tsdb::promql::EngineOptions;
    use tsdb::storage::{Appendable, Queryable};

    use super::*;
    use crate::backend::LocalBackend;
    use crate::config::MetricsApiConfig;
    use crate::metrics::Registry;

    const T0: i64 = 1_748_779_200_000;

    const CONFIG: &str = r#"
rules:
- seriesQuery: '{__name__=~"^http_.*",namespace!="",pod!=""}'
  seriesFilters: [{isNot: "_total$"}]
  resources: {template: "<<.Resource>>"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: 'queue_messages{namespace!=""}'
  resources: {overrides: {namespace: {resource: namespace}}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)'
metrics:
- name: pod_count
  query: 'count(kube_pod_labels{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
  resources: {namespace: namespace}
"#;

    async fn api() -> Router {
        let head = Arc::new(Head::new(HeadOptions::default()));
        let mut app = head.appender();
        let series: &[(&[(&str, &str)], f64)] = &[
            (
                &[
                    ("__name__", "http_requests_in_flight"),
                    ("namespace", "shop"),
                    ("pod", "web-a"),
                    ("job", "app"),
                ],
                2.5,
            ),
            (
                &[
                    ("__name__", "http_requests_in_flight"),
                    ("namespace", "shop"),
                    ("pod", "web-b"),
                    ("job", "app"),
                ],
                3.0,
            ),
            (
                &[
                    ("__name__", "http_requests_in_flight"),
                    ("namespace", "shop"),
                    ("pod", "db-0"),
                    ("job", "db"),
                ],
                0.25,
            ),
            (
                &[
                    ("__name__", "http_requests_in_flight"),
                    ("namespace", "other"),
                    ("pod", "x"),
                    ("job", "app"),
                ],
                1000.0,
            ),
            (
                &[
                    ("__name__", "http_requests_total"),
                    ("namespace", "shop"),
                    ("pod", "web-a"),
                ],
                7.0,
            ),
            (
                &[
                    ("__name__", "kube_pod_labels"),
                    ("namespace", "shop"),
                    ("pod", "web-a"),
                    ("label_app", "web"),
                ],
                1.0,
            ),
            (
                &[
                    ("__name__", "kube_pod_labels"),
                    ("namespace", "shop"),
                    ("pod", "web-b"),
                    ("label_app", "web"),
                ],
                1.0,
            ),
            (
                &[
                    ("__name__", "kube_pod_labels"),
                    ("namespace", "shop"),
                    ("pod", "db-0"),
                    ("label_app", "db"),
                ],
                1.0,
            ),
            (
                &[
                    ("__name__", "queue_messages"),
                    ("namespace", "shop"),
                    ("queue", "orders"),
                ],
                42.0,
            ),
            (
                &[
                    ("__name__", "queue_messages"),
                    ("namespace", "shop"),
                    ("queue", "billing"),
                ],
                8.0,
            ),
        ];
        let mut t = T0 - 600_000;
        while t <= T0 {
            for (pairs, v) in series {
                app.append(None, &Labels::from_pairs(pairs), Sample::new(t, *v))
                    .unwrap();
            }
            t += 15_000;
        }
        app.commit().unwrap();
        let backend = LocalBackend::new(
            head as Arc<dyn Queryable>,
            EngineOptions::default(),
            2,
            &Registry::new(),
        );
        let config: MetricsApiConfig = serde_yaml::from_str(CONFIG).unwrap();
        let api = Arc::new(MetricsApi::new(
            Arc::new(backend),
            Arc::new(ManualClock::new(T0)),
            config.rule_set().unwrap(),
            config.max_age,
        ));
        api.relist().await;
        router(api)
    }

    async fn get(router: &Router, uri: &str) -> (StatusCode, Json) {
        let response = router
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    fn values(list: &Json) -> Vec<(String, String)> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                let name = item["describedObject"]["name"]
                    .as_str()
                    .or(item["metricLabels"]["queue"].as_str())
                    .unwrap_or("")
                    .to_string();
                (name, item["value"].as_str().unwrap().to_string())
            })
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn discovery_lists_rules_and_short_forms() {
        let router = api().await;
        let (status, list) = get(&router, "/apis/custom.metrics.k8s.io/v1beta2").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["groupVersion"], "custom.metrics.k8s.io/v1beta2");
        let resources: Vec<(String, bool)> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(r["kind"], "MetricValueList");
                assert_eq!(r["verbs"], json!(["get"]));
                assert_eq!(r["singularName"], "");
                (
                    r["name"].as_str().unwrap().to_string(),
                    r["namespaced"].as_bool().unwrap(),
                )
            })
            .collect();
        // `job` names Jobs through the `<<.Resource>>` template, as in the adapter.
        assert_eq!(
            resources,
            [
                ("jobs.batch/http_requests_in_flight".to_string(), true),
                ("namespaces/http_requests_in_flight".to_string(), false),
                ("namespaces/pod_count".to_string(), false),
                ("pods/http_requests_in_flight".to_string(), true),
            ]
        );
        let (_, external) = get(&router, "/apis/external.metrics.k8s.io/v1beta1").await;
        assert_eq!(
            external["resources"],
            json!([{"name": "queue_messages", "singularName": "", "namespaced": true,
                "kind": "ExternalMetricValueList", "verbs": ["get"]}])
        );
        let (_, group) = get(&router, "/apis/custom.metrics.k8s.io").await;
        assert_eq!(group["preferredVersion"]["version"], "v1beta2");
        let (_, apis) = get(&router, "/apis").await;
        assert_eq!(apis["groups"].as_array().unwrap().len(), 2);
        let (status, _) = get(&router, "/apis/custom.metrics.k8s.io/v1").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn pods_by_label_selector_and_by_name() {
        let router = api().await;
        let base = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods";
        let (status, list) = get(
            &router,
            &format!("{base}/%2A/http_requests_in_flight?labelSelector=app%3Dweb"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(values(&list), pairs(&[("web-a", "2500m"), ("web-b", "3")]));
        let item = &list["items"][0];
        assert_eq!(
            item["describedObject"],
            json!({"kind": "Pod", "namespace": "shop", "name": "web-a", "apiVersion": "v1"})
        );
        assert_eq!(
            item["metric"],
            json!({"name": "http_requests_in_flight", "selector": null})
        );
        assert_eq!(item["timestamp"], "2025-06-01T12:00:00Z");

        let (_, all) = get(&router, &format!("{base}/*/http_requests_in_flight")).await;
        assert_eq!(
            values(&all),
            pairs(&[("db-0", "250m"), ("web-a", "2500m"), ("web-b", "3")])
        );
        let (_, none) = get(
            &router,
            &format!("{base}/*/http_requests_in_flight?labelSelector=app%3Dnone"),
        )
        .await;
        assert_eq!(none["items"], json!([]));

        let (_, one) = get(
            &router,
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/web-b/http_requests_in_flight",
        )
        .await;
        assert_eq!(one["apiVersion"], "custom.metrics.k8s.io/v1beta1");
        assert_eq!(one["items"][0]["metricName"], "http_requests_in_flight");
        assert_eq!(one["items"][0]["value"], "3");
        assert_eq!(one["items"].as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn metric_label_selectors_filter_series_and_are_echoed() {
        let router = api().await;
        let base =
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/http_requests_in_flight";
        let (_, list) = get(&router, &format!("{base}?metricLabelSelector=job%3Ddb")).await;
        assert_eq!(values(&list), pairs(&[("db-0", "250m")]));
        assert_eq!(
            list["items"][0]["metric"]["selector"],
            json!({"matchLabels": {"job": "db"}})
        );
        let (_, list) = get(
            &router,
            &format!("{base}?metricLabelSelector=job+in+(nope)"),
        )
        .await;
        assert_eq!(list["items"], json!([]));
    }

    #[tokio::test]
    async fn namespace_and_root_scoped_objects() {
        let router = api().await;
        let (status, list) = get(
            &router,
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/metrics/http_requests_in_flight",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(values(&list), pairs(&[("shop", "5750m")]));
        assert_eq!(
            list["items"][0]["describedObject"],
            json!({"kind": "Namespace", "name": "shop", "apiVersion": "v1"})
        );
        let (_, list) = get(
            &router,
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/*/pod_count",
        )
        .await;
        assert_eq!(values(&list), pairs(&[("shop", "3")]));
        let (_, list) = get(
            &router,
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/other/http_requests_in_flight",
        )
        .await;
        assert_eq!(values(&list), pairs(&[("other", "1k")]));
    }

    #[tokio::test]
    async fn external_metrics_per_namespace_with_selectors() {
        let router = api().await;
        let base = "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_messages";
        let (status, list) = get(&router, &format!("{base}?labelSelector=queue%3Dorders")).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(
            list,
            json!({"kind": "ExternalMetricValueList", "apiVersion": "external.metrics.k8s.io/v1beta1",
                "metadata": {}, "items": [{"metricName": "queue_messages",
                "metricLabels": {"queue": "orders"}, "timestamp": "2025-06-01T12:00:00Z", "value": "42"}]})
        );
        let (_, list) = get(&router, base).await;
        assert_eq!(values(&list), pairs(&[("billing", "8"), ("orders", "42")]));
        let (_, list) = get(
            &router,
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/other/queue_messages",
        )
        .await;
        assert_eq!(list["items"], json!([]));
    }

    #[tokio::test]
    async fn errors_are_status_objects() {
        let router = api().await;
        let (status, body) = get(
            &router,
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/nope",
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            body,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "the server could not find the metric nope for pods",
                "reason": "NotFound", "code": 404})
        );
        let (status, body) = get(
            &router,
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/ghost/http_requests_in_flight",
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, body) = get(
            &router,
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/http_requests_in_flight?labelSelector=app%3D%3D%3D",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["reason"], "BadRequest");
        assert_eq!(body["code"], 400);
        let (status, _) = get(
            &router,
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_messages?labelSelector=a.b%2Fc%3Dd",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = get(
            &router,
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/nope",
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body) = get(&router, "/openapi/v2").await;
        assert_eq!(
            (status, &body["kind"]),
            (StatusCode::NOT_FOUND, &json!("Status"))
        );
    }
}
