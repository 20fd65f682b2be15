//! `rules` and `alerts`: the rule groups' latest status, in Prometheus's
//! shapes. The composition hands the API a snapshot function (the rules
//! manager's); this module only filters and writes JSON.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use tsdb::model::Labels;

use super::error::ApiError;
use super::json::{Envelope, rfc3339};
use super::params::Params;
use super::{Api, ok};
use crate::float;
use crate::rules::alerting::Alert;
use crate::rules::group::{GroupStatus, RuleStatus};

/// Hands out the rule groups' latest status.
pub type RulesSource = Box<dyn Fn() -> Vec<Arc<GroupStatus>> + Send + Sync>;

/// Go's zero `time.Time`: "never evaluated".
const NEVER: &str = "0001-01-01T00:00:00Z";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupJson {
    name: String,
    file: String,
    rules: Vec<RuleJson>,
    interval: f64,
    limit: i64,
    evaluation_time: f64,
    last_evaluation: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'static str>,
    name: String,
    query: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_firing_for: Option<f64>,
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alerts: Option<Vec<AlertJson>>,
    health: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    evaluation_time: f64,
    last_evaluation: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertJson {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    state: &'static str,
    active_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_firing_since: Option<String>,
    value: String,
}

fn alert_json(alert: &Alert) -> AlertJson {
    AlertJson {
        labels: label_map(&alert.labels),
        annotations: alert.annotations.clone(),
        state: alert.state.as_str(),
        active_at: rfc3339(alert.active_at),
        keep_firing_since: alert.keep_firing_since.map(rfc3339),
        value: float::format_e(alert.value),
    }
}

fn label_map(labels: &Labels) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect()
}

fn rule_json(rule: &RuleStatus, with_alerts: bool) -> RuleJson {
    let last_evaluation = rule
        .last_evaluation
        .map_or_else(|| NEVER.to_string(), rfc3339);
    let mut json = RuleJson {
        state: None,
        name: rule.name.clone(),
        query: rule.query.clone(),
        duration: None,
        keep_firing_for: None,
        labels: rule.labels.clone(),
        annotations: None,
        alerts: None,
        health: rule.health.as_str(),
        last_error: rule.last_error.clone(),
        evaluation_time: rule.evaluation_time.as_secs_f64(),
        last_evaluation,
        kind: "recording",
    };
    if let Some(alerting) = &rule.alerting {
        json.kind = "alerting";
        json.state = Some(alerting.state.as_str());
        json.duration = Some(alerting.hold.as_secs_f64());
        json.keep_firing_for = Some(alerting.keep_firing_for.as_secs_f64());
        json.annotations = Some(alerting.annotations.clone());
        json.alerts = Some(if with_alerts {
            alerting.alerts.iter().map(alert_json).collect()
        } else {
            Vec::new()
        });
    }
    json
}

/// `GET /api/v1/rules?type=alert|record&rule_name[]=…&rule_group[]=…&file[]=…&exclude_alerts=true`.
pub async fn rules(State(api): State<Arc<Api>>, params: Params) -> Result<Response, ApiError> {
    let kind = params.get("type").to_ascii_lowercase();
    let (want_alerting, want_recording) = match kind.as_str() {
        "" => (true, true),
        "alert" => (true, false),
        "record" => (false, true),
        other => {
            return Err(ApiError::BadData(format!("not supported value {other:?}")));
        }
    };
    let set = |name: &str| -> HashSet<String> {
        params
            .get_all(name)
            .into_iter()
            .map(str::to_string)
            .collect()
    };
    let (names, group_names, files) = (set("rule_name[]"), set("rule_group[]"), set("file[]"));
    let exclude_alerts = match params.get("exclude_alerts") {
        "" | "false" => false,
        "true" => true,
        other => {
            return Err(ApiError::BadData(format!(
                "parameter \"exclude_alerts\" must be a boolean, got {other:?}"
            )));
        }
    };
    let rule_filter = !kind.is_empty() || !names.is_empty();
    let mut groups = Vec::new();
    for group in (api.rules)() {
        if !group_names.is_empty() && !group_names.contains(&group.name) {
            continue;
        }
        if !files.is_empty() && !files.contains(&group.file) {
            continue;
        }
        let rules: Vec<RuleJson> = group
            .rules
            .iter()
            .filter(|r| {
                let alerting = r.alerting.is_some();
                (alerting && want_alerting || !alerting && want_recording)
                    && (names.is_empty() || names.contains(&r.name))
            })
            .map(|r| rule_json(r, !exclude_alerts))
            .collect();
        if rule_filter && rules.is_empty() {
            continue;
        }
        groups.push(GroupJson {
            name: group.name.clone(),
            file: group.file.clone(),
            rules,
            interval: group.interval.as_secs_f64(),
            limit: group.limit,
            evaluation_time: group.evaluation_time.as_secs_f64(),
            last_evaluation: group
                .last_evaluation
                .map_or_else(|| NEVER.to_string(), rfc3339),
        });
    }
    #[derive(Serialize)]
    struct Discovery {
        groups: Vec<GroupJson>,
    }
    data(&Discovery { groups })
}

/// `GET /api/v1/alerts`: the pending and firing alerts of every rule.
pub async fn alerts(State(api): State<Arc<Api>>) -> Result<Response, ApiError> {
    let alerts: Vec<AlertJson> = (api.rules)()
        .iter()
        .flat_map(|g| g.rules.iter())
        .filter_map(|r| r.alerting.as_ref())
        .flat_map(|a| a.alerts.iter().map(alert_json))
        .collect();
    #[derive(Serialize)]
    struct Alerts {
        alerts: Vec<AlertJson>,
    }
    data(&Alerts { alerts })
}

fn data(value: &impl Serialize) -> Result<Response, ApiError> {
    let json = serde_json::to_string(value).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(ok(Envelope::success(&json, &[], &[])))
}
