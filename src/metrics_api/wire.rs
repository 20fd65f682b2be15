//! The JSON documents of the metrics APIs (`docs/format/metrics-api.md`):
//! discovery (`APIGroupList`, `APIGroup`, `APIResourceList`), values
//! (`MetricValueList` v1beta1 and v1beta2, `ExternalMetricValueList`) and
//! errors (`Status`), shaped as the upstream Go types serialize.

use autoscaler::quantity::{Format, Quantity};
use serde::Serialize;
use serde_json::json;

pub const CUSTOM_GROUP: &str = "custom.metrics.k8s.io";
pub const EXTERNAL_GROUP: &str = "external.metrics.k8s.io";

/// A metric value as prometheus-adapter sends it: thousandths truncated toward
/// zero as a decimal-SI quantity (`2.5` -> `2500m`, `10` -> `10`); NaN is 0 and
/// infinities saturate.
pub fn quantity(value: f64) -> String {
    let milli = if value.is_nan() {
        0
    } else {
        // `as` truncates toward zero and saturates at the i64 range.
        (value * 1000.0) as i64
    };
    Quantity::from_milli(milli, Format::DecimalSi).to_canonical()
}

/// `metav1.Time`: RFC 3339 in UTC, whole seconds.
pub fn timestamp(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `metav1.GroupVersionForDiscovery`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupVersion {
    pub group_version: String,
    pub version: String,
}

impl GroupVersion {
    fn new(group: &str, version: &str) -> GroupVersion {
        GroupVersion {
            group_version: format!("{group}/{version}"),
            version: version.to_string(),
        }
    }
}

/// `metav1.APIGroup` of one of our groups.
pub fn api_group(group: &str) -> serde_json::Value {
    let versions: Vec<GroupVersion> = if group == CUSTOM_GROUP {
        vec![
            GroupVersion::new(group, "v1beta2"),
            GroupVersion::new(group, "v1beta1"),
        ]
    } else {
        vec![GroupVersion::new(group, "v1beta1")]
    };
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": versions,
        "preferredVersion": versions[0],
    })
}

/// `metav1.APIGroupList` of `/apis`: our two groups.
pub fn api_group_list() -> serde_json::Value {
    let mut groups = Vec::new();
    for group in [CUSTOM_GROUP, EXTERNAL_GROUP] {
        let mut g = api_group(group);
        if let Some(object) = g.as_object_mut() {
            object.remove("kind");
            object.remove("apiVersion");
        }
        groups.push(g);
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `metav1.APIResource` as custom-metrics-apiserver lists metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiResource {
    pub name: String,
    pub singular_name: String,
    pub namespaced: bool,
    pub kind: String,
    pub verbs: Vec<String>,
}

impl ApiResource {
    pub fn new(name: String, namespaced: bool, kind: &str) -> ApiResource {
        ApiResource {
            name,
            singular_name: String::new(),
            namespaced,
            kind: kind.to_string(),
            verbs: vec!["get".to_string()],
        }
    }
}

/// `metav1.APIResourceList`.
pub fn api_resource_list(group_version: &str, resources: &[ApiResource]) -> serde_json::Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

/// `v1.ObjectReference` of the object a value describes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub api_version: String,
}

/// One value of a custom metric, version-independent.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricValue {
    pub described_object: ObjectReference,
    pub metric: String,
    pub timestamp_ms: i64,
    pub value: f64,
}

/// `MetricValueList` in `version` (`v1beta1` or `v1beta2`; their field names
/// differ). `selector` is the applied metric label selector or null.
pub fn metric_value_list(
    version: &str,
    items: &[MetricValue],
    selector: &serde_json::Value,
) -> serde_json::Value {
    let items: Vec<serde_json::Value> = items
        .iter()
        .map(|item| {
            let mut out = json!({
                "describedObject": item.described_object,
                "timestamp": timestamp(item.timestamp_ms),
                "value": quantity(item.value),
            });
            if version == "v1beta1" {
                out["metricName"] = json!(item.metric);
                out["selector"] = selector.clone();
            } else {
                out["metric"] = json!({"name": item.metric, "selector": selector});
            }
            out
        })
        .collect();
    json!({
        "kind": "MetricValueList",
        "apiVersion": format!("{CUSTOM_GROUP}/{version}"),
        "metadata": {},
        "items": items,
    })
}

/// One value of an external metric.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalMetricValue {
    pub metric: String,
    /// The series' labels without `__name__`.
    pub labels: Vec<(String, String)>,
    pub timestamp_ms: i64,
    pub value: f64,
}

/// `ExternalMetricValueList` (v1beta1). `metricLabels` is always present.
pub fn external_metric_value_list(items: &[ExternalMetricValue]) -> serde_json::Value {
    let items: Vec<serde_json::Value> = items
        .iter()
        .map(|item| {
            let labels: serde_json::Map<String, serde_json::Value> = item
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            json!({
                "metricName": item.metric,
                "metricLabels": labels,
                "timestamp": timestamp(item.timestamp_ms),
                "value": quantity(item.value),
            })
        })
        .collect();
    json!({
        "kind": "ExternalMetricValueList",
        "apiVersion": format!("{EXTERNAL_GROUP}/v1beta1"),
        "metadata": {},
        "items": items,
    })
}

/// `metav1.Status` for a failure: `reason` such as `NotFound`, `BadRequest`.
pub fn status(code: u16, reason: &str, message: &str) -> serde_json::Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_canonical_milli_quantities() {
        for (value, text) in [
            (0.5, "500m"),
            (1.5, "1500m"),
            (2.5, "2500m"),
            (1.08, "1080m"),
            (10.0, "10"),
            (1500.0, "1500"),
            (1000.0, "1k"),
            (3000.0, "3k"),
            (1e9, "1G"),
            (0.0, "0"),
            (-0.0, "0"),
            (-2.5, "-2500m"),
            (0.0004, "0"),
            (0.001, "1m"),
            (f64::NAN, "0"),
            (2.0 * 1024.0 * 1024.0 * 1024.0, "2147483648"),
            (1e15, "1P"),
            (9e15, "9P"),
        ] {
            assert_eq!(quantity(value), text, "{value}");
        }
        // Beyond i64 milli: saturated, still a valid quantity.
        let huge = quantity(f64::INFINITY);
        assert_eq!(
            Quantity::parse(&huge).unwrap().milli_value(),
            i64::MAX,
            "{huge}"
        );
        assert!(quantity(f64::NEG_INFINITY).starts_with('-'));
    }

    #[test]
    fn quantities_read_back_as_the_hpa_reads_them() {
        // The docs' examples: what we emit parses back to the same amount.
        for (value, doc) in [(0.5, "500m"), (1000.0, "1k"), (2147483648.0, "2Gi")] {
            let ours = Quantity::parse(&quantity(value)).unwrap();
            assert_eq!(ours, Quantity::parse(doc).unwrap(), "{doc}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_seconds() {
        assert_eq!(timestamp(1_748_779_200_123), "2025-06-01T12:00:00Z");
    }

    #[test]
    fn value_lists_differ_by_version() {
        let item = MetricValue {
            described_object: ObjectReference {
                kind: "Pod".into(),
                namespace: Some("default".into()),
                name: "web".into(),
                api_version: "v1".into(),
            },
            metric: "http_requests".into(),
            timestamp_ms: 1_748_779_200_000,
            value: 2.5,
        };
        let v2 = metric_value_list(
            "v1beta2",
            std::slice::from_ref(&item),
            &serde_json::Value::Null,
        );
        assert_eq!(
            v2,
            json!({"kind":"MetricValueList","apiVersion":"custom.metrics.k8s.io/v1beta2","metadata":{},
                "items":[{"describedObject":{"kind":"Pod","namespace":"default","name":"web","apiVersion":"v1"},
                "metric":{"name":"http_requests","selector":null},
                "timestamp":"2025-06-01T12:00:00Z","value":"2500m"}]})
        );
        let v1 = metric_value_list("v1beta1", &[item], &serde_json::Value::Null);
        assert_eq!(v1["items"][0]["metricName"], "http_requests");
        assert_eq!(v1["items"][0]["selector"], serde_json::Value::Null);
        assert!(v1["items"][0].get("metric").is_none());
    }

    /// Every document shape, pinned (`docs/format/metrics-api.md`).
    #[test]
    fn documents_match_the_golden_file() {
        let pod = MetricValue {
            described_object: ObjectReference {
                kind: "Pod".into(),
                namespace: Some("shop".into()),
                name: "web-a".into(),
                api_version: "v1".into(),
            },
            metric: "http_requests".into(),
            timestamp_ms: 1_748_779_200_000,
            value: 2.5,
        };
        let selector = json!({"matchLabels": {"job": "app"}});
        let external = ExternalMetricValue {
            metric: "queue_messages".into(),
            labels: vec![("queue".into(), "orders".into())],
            timestamp_ms: 1_748_779_200_000,
            value: 42.0,
        };
        let documents = json!({
            "apis": api_group_list(),
            "custom_group": api_group(CUSTOM_GROUP),
            "external_group": api_group(EXTERNAL_GROUP),
            "custom_resources": api_resource_list(
                "custom.metrics.k8s.io/v1beta2",
                &[ApiResource::new("pods/http_requests".into(), true, "MetricValueList")],
            ),
            "external_resources": api_resource_list(
                "external.metrics.k8s.io/v1beta1",
                &[ApiResource::new("queue_messages".into(), true, "ExternalMetricValueList")],
            ),
            "v1beta2": metric_value_list("v1beta2", std::slice::from_ref(&pod), &selector),
            "v1beta1": metric_value_list("v1beta1", &[pod], &serde_json::Value::Null),
            "external": external_metric_value_list(&[external]),
            "not_found": status(404, "NotFound", "the server could not find the metric nope for pods"),
        });
        let text = serde_json::to_string_pretty(&documents).unwrap() + "\n";
        expect_test::expect_file!["testdata/wire-golden.json"].assert_eq(&text);
    }
}
