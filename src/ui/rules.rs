//! `/rules`: alerting rules with their state and active alerts (labels,
//! state, active since, value, annotations), then every rule group with each
//! rule's health, last error and evaluation.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;

use super::html::{self, Esc, Nav};
use crate::api::Api;
use crate::rules::alerting::AlertState;
use crate::rules::group::{GroupStatus, Health};

/// `GET /rules`.
pub async fn page(State(api): State<Arc<Api>>) -> Response {
    let body = body(&api.rule_groups(), api.clock.now_ms());
    html::page("Rules & alerts", Nav::Rules, &body)
}

fn state_class(state: AlertState) -> &'static str {
    match state {
        AlertState::Firing => "bad",
        AlertState::Pending => "warn",
        AlertState::Inactive => "ok",
        AlertState::Unknown => "muted",
    }
}

fn annotations(map: &BTreeMap<String, String>) -> String {
    if map.is_empty() {
        return String::new();
    }
    let mut out = String::from("<dl class=\"annotations\">");
    for (name, value) in map {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", Esc(name), Esc(value));
    }
    out.push_str("</dl>");
    out
}

/// The page's body for `groups` at `now_ms`.
pub fn body(groups: &[Arc<GroupStatus>], now_ms: i64) -> String {
    let mut out = String::new();
    if groups.is_empty() {
        out.push_str(
            "<p class=\"hint\">No rules loaded. Add <code>rule_files</code> to the configuration.</p>\n",
        );
        return out;
    }
    let alerting: Vec<_> = groups
        .iter()
        .flat_map(|g| g.rules.iter())
        .filter_map(|r| r.alerting.as_ref().map(|a| (r, a)))
        .collect();
    let count = |state: AlertState| alerting.iter().filter(|(_, a)| a.state == state).count();
    let _ = writeln!(
        out,
        "<section id=\"alerts\"><h2>Alerts</h2><p class=\"summary\">{} {} {}</p>",
        html::badge("bad", &format!("{} firing", count(AlertState::Firing))),
        html::badge("warn", &format!("{} pending", count(AlertState::Pending))),
        html::badge("ok", &format!("{} inactive", count(AlertState::Inactive))),
    );
    for (rule, alerting) in &alerting {
        let open = if matches!(alerting.state, AlertState::Firing | AlertState::Pending) {
            " open"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<details class=\"alert-rule\"{open}><summary>{} <strong>{}</strong> <span class=\"muted\">({} active)</span></summary>\
             <div class=\"rule-body\"><p>{}</p>",
            html::badge(state_class(alerting.state), alerting.state.as_str()),
            Esc(&rule.name),
            alerting.alerts.len(),
            html::query_link(&rule.query)
        );
        if !alerting.hold.is_zero() {
            let _ = write!(
                out,
                "<p class=\"muted\">for {}</p>",
                html::duration(i64::try_from(alerting.hold.as_millis()).unwrap_or(i64::MAX))
            );
        }
        if !rule.labels.is_empty() {
            let _ = write!(
                out,
                "<p>{}</p>",
                html::labels(rule.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            );
        }
        out.push_str(&annotations(&alerting.annotations));
        if !alerting.alerts.is_empty() {
            out.push_str(
                "<div class=\"table-wrap\"><table class=\"alerts\"><thead><tr><th>Labels</th><th>State</th>\
                 <th>Active since</th><th>Value</th><th>Annotations</th></tr></thead><tbody>",
            );
            for alert in &alerting.alerts {
                let _ = write!(
                    out,
                    "<tr class=\"alert\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    html::labels(alert.labels.iter().map(|l| (&*l.name, &*l.value))),
                    html::badge(state_class(alert.state), alert.state.as_str()),
                    html::time(alert.active_at, now_ms),
                    Esc(&crate::float::format_e(alert.value)),
                    annotations(&alert.annotations)
                );
            }
            out.push_str("</tbody></table></div>");
        }
        out.push_str("</div></details>\n");
    }
    out.push_str("</section>\n<section id=\"groups\"><h2>Rule groups</h2>\n");
    for group in groups {
        let last = group
            .last_evaluation
            .map_or_else(|| "never".to_string(), |t| html::time(t, now_ms));
        let _ = write!(
            out,
            "<section class=\"group\"><h3>{}</h3><p class=\"muted\">{} · every {} · last evaluation {last} \
             · took {}</p><div class=\"table-wrap\"><table class=\"rules\"><thead><tr><th>Rule</th>\
             <th>Health</th><th>Last evaluation</th><th>Took</th></tr></thead><tbody>",
            Esc(&group.name),
            Esc(&group.file),
            html::duration(i64::try_from(group.interval.as_millis()).unwrap_or(i64::MAX)),
            html::duration(i64::try_from(group.evaluation_time.as_millis()).unwrap_or(i64::MAX)),
        );
        for rule in &group.rules {
            let kind = if rule.alerting.is_some() {
                "alert"
            } else {
                "record"
            };
            let health = match rule.health {
                Health::Good => html::badge("ok", "ok"),
                Health::Bad => html::badge("bad", "error"),
                Health::Unknown => html::badge("muted", "unknown"),
            };
            let error = rule.last_error.as_deref().map_or_else(String::new, |e| {
                format!("<p class=\"error-text\">{}</p>", Esc(e))
            });
            let last = rule
                .last_evaluation
                .map_or_else(|| "never".to_string(), |t| html::time(t, now_ms));
            let _ = writeln!(
                out,
                "<tr class=\"rule\"><td><span class=\"muted\">{kind}:</span> <strong>{}</strong><br>{}{error}</td>\
                 <td>{health}</td><td>{last}</td><td>{}</td></tr>",
                Esc(&rule.name),
                html::query_link(&rule.query),
                html::duration(i64::try_from(rule.evaluation_time.as_millis()).unwrap_or(i64::MAX)),
            );
        }
        out.push_str("</tbody></table></div></section>\n");
    }
    out.push_str("</section>\n");
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tsdb::model::Labels;

    use super::*;
    use crate::rules::alerting::Alert;
    use crate::rules::group::{AlertingStatus, RuleStatus};

    fn rule(name: &str, alerting: Option<AlertingStatus>, error: Option<&str>) -> RuleStatus {
        RuleStatus {
            name: name.into(),
            query: "up == 0".into(),
            labels: BTreeMap::from([("severity".into(), "page".into())]),
            health: if error.is_some() {
                Health::Bad
            } else {
                Health::Good
            },
            last_error: error.map(str::to_string),
            evaluation_time: Duration::from_millis(3),
            last_evaluation: Some(50_000),
            alerting,
        }
    }

    #[test]
    fn alerts_show_state_active_since_and_annotations() {
        let firing = AlertingStatus {
            state: AlertState::Firing,
            hold: Duration::from_secs(300),
            keep_firing_for: Duration::ZERO,
            annotations: BTreeMap::from([("summary".into(), "{{ $labels.instance }} down".into())]),
            alerts: vec![Alert {
                state: AlertState::Firing,
                labels: Labels::from_pairs(&[("alertname", "Down"), ("instance", "<a:1>")]),
                annotations: BTreeMap::from([("summary".into(), "<a:1> down".into())]),
                value: 0.0,
                active_at: 0,
                fired_at: Some(0),
                resolved_at: None,
                last_sent_at: None,
                valid_until: None,
                keep_firing_since: None,
            }],
        };
        let quiet = AlertingStatus {
            state: AlertState::Inactive,
            alerts: Vec::new(),
            ..firing.clone()
        };
        let group = GroupStatus {
            name: "node".into(),
            file: "/etc/rules/<node>.yml".into(),
            interval: Duration::from_secs(15),
            limit: 0,
            evaluation_time: Duration::from_millis(4),
            last_evaluation: Some(50_000),
            rules: vec![
                rule("Down", Some(firing), None),
                rule("Quiet", Some(quiet), None),
                rule("job:up:sum", None, Some("bad <thing>")),
            ],
        };
        let body = body(&[Arc::new(group)], 60_000);
        assert!(body.contains("<span class=\"badge bad\">1 firing</span>"));
        assert!(body.contains("<span class=\"badge ok\">1 inactive</span>"));
        assert!(body.contains(
            "<details class=\"alert-rule\" open><summary><span class=\"badge bad\">firing</span> <strong>Down</strong>"
        ));
        assert!(body.contains(
            "<details class=\"alert-rule\"><summary><span class=\"badge ok\">inactive</span>"
        ));
        assert!(body.contains("instance=&quot;&lt;a:1&gt;&quot;"));
        assert!(body.contains("<dd>&lt;a:1&gt; down</dd>"));
        assert!(body.contains(">1m 0s ago</time>"), "{body}");
        assert!(body.contains("<p class=\"muted\">for 5m 0s</p>"));
        assert!(body.contains("/etc/rules/&lt;node&gt;.yml"));
        assert!(body.contains("<p class=\"error-text\">bad &lt;thing&gt;</p>"));
        assert!(body.contains("<span class=\"badge bad\">error</span>"));
        assert_eq!(body.matches("<tr class=\"rule\">").count(), 3);
        assert!(!body.contains("<a:1>"));
    }

    #[test]
    fn no_rules_says_so() {
        assert!(body(&[], 0).contains("No rules loaded"));
    }
}
