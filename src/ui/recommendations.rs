//! `/recommendations`: the recommender's latest report per workload: the HPA
//! verdict (replicas now and recommended, per-metric proposals, conditions)
//! with its backtest chart, and per container the current request against the
//! VPA lower bound, target and upper bound, each with its explanation and a
//! chart of usage against them (`/api/v1/recommendations/chart`).

use std::fmt::Write as _;
use std::sync::Arc;

use autoscaler::explain::Explanation;
use autoscaler::recommender::{Report, ResourceRecommendation, WorkloadRecommendation};
use axum::extract::State;
use axum::response::Response;

use super::html::{self, Esc, Nav};
use crate::api::Api;
use crate::api::recommendation_chart::kind_name;

/// `GET /recommendations`.
pub async fn page(State(api): State<Arc<Api>>) -> Response {
    let report = api.latest_recommendations();
    let body = body(report.as_deref(), api.clock.now_ms());
    html::page("Recommendations", Nav::Recommendations, &body)
}

/// An explanation as a collapsible block: the summary, the inputs and the
/// numbered steps.
fn explanation(label: &str, e: &Explanation) -> String {
    let mut out = format!(
        "<details class=\"explanation\"><summary>{}</summary><p>{}</p>",
        Esc(label),
        Esc(&e.summary)
    );
    if !e.inputs.is_empty() {
        out.push_str("<dl>");
        for input in &e.inputs {
            let _ = write!(
                out,
                "<dt>{}</dt><dd>{}</dd>",
                Esc(&input.name),
                Esc(&input.value)
            );
        }
        out.push_str("</dl>");
    }
    if !e.steps.is_empty() {
        out.push_str("<ol>");
        for step in &e.steps {
            if step.result.is_empty() {
                let _ = write!(out, "<li>{}</li>", Esc(&step.description));
            } else {
                let _ = write!(
                    out,
                    "<li>{} = <strong>{}</strong></li>",
                    Esc(&step.description),
                    Esc(&step.result)
                );
            }
        }
        out.push_str("</ol>");
    }
    out.push_str("</details>");
    out
}

/// A resource amount as its Kubernetes quantity when the report has one;
/// bytes also in IEC units, which people read faster.
fn amount(r: &ResourceRecommendation, key: &str, value: Option<f64>) -> String {
    let text = match (r.quantities.get(key), value) {
        (Some(q), _) => Esc(q).to_string(),
        (None, Some(v)) => format!("{v}"),
        (None, None) => return "–".to_string(),
    };
    match value {
        Some(v) if r.unit == "byte" && v >= 1024.0 => format!(
            "{text} <span class=\"muted\">({})</span>",
            Esc(&dashboards::chart::format_value(
                v,
                dashboards::chart::Unit::Bytes
            ))
        ),
        _ => text,
    }
}

fn chart_url(w: &WorkloadRecommendation, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("namespace", w.namespace.as_str()),
        ("kind", kind_name(w.kind)),
        ("name", w.name.as_str()),
    ];
    pairs.extend_from_slice(extra);
    html::url("/api/v1/recommendations/chart", &pairs)
}

fn workload(out: &mut String, w: &WorkloadRecommendation, now_ms: i64) {
    let title = format!("{}/{}/{}", w.namespace, kind_name(w.kind), w.name);
    let _ = write!(
        out,
        "<section class=\"workload\"><h2>{}</h2><p class=\"muted\">",
        Esc(&title)
    );
    if let (Some(start), Some(end)) = (w.inputs.history_start_ms, w.inputs.history_end_ms) {
        let _ = write!(
            out,
            "History {} of usage ending {} · ",
            html::duration(end.saturating_sub(start)),
            html::time(end, now_ms)
        );
    }
    let _ = write!(
        out,
        "{} CPU and {} memory samples",
        w.inputs.cpu_samples, w.inputs.memory_samples
    );
    if let Some(replicas) = w.current_replicas {
        let _ = write!(out, " · {replicas} replicas now");
    }
    out.push_str("</p>");
    if !w.errors.is_empty() {
        out.push_str("<ul class=\"errors\">");
        for e in &w.errors {
            let _ = write!(out, "<li class=\"error-text\">{}</li>", Esc(e));
        }
        out.push_str("</ul>");
    }
    if let Some(hpa) = &w.hpa {
        let change = match hpa.desired_replicas.cmp(&hpa.current_replicas) {
            std::cmp::Ordering::Greater => html::badge("warn", "scale up"),
            std::cmp::Ordering::Less => html::badge("warn", "scale down"),
            std::cmp::Ordering::Equal => html::badge("ok", "no change"),
        };
        let _ = write!(
            out,
            "<h3>Horizontal: replicas</h3><p class=\"hpa-verdict\">{} → <strong>{}</strong> {change} \
             <span class=\"muted\">(between {} and {})</span></p>",
            hpa.current_replicas, hpa.desired_replicas, hpa.min_replicas, hpa.max_replicas
        );
        if let Some(e) = &hpa.error {
            let _ = write!(out, "<p class=\"error-text\">{}</p>", Esc(e));
        }
        out.push_str(
            "<div class=\"table-wrap\"><table class=\"hpa-metrics\"><thead><tr><th>Metric</th><th>Replicas</th>\
             <th>Usage / target</th><th>Why</th></tr></thead><tbody>",
        );
        for m in &hpa.metrics {
            let why = match (&m.explanation, &m.error) {
                (Some(e), _) => explanation(&e.summary, e),
                (None, Some(error)) => format!("<span class=\"error-text\">{}</span>", Esc(error)),
                (None, None) => String::new(),
            };
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{why}</td></tr>",
                Esc(&m.metric),
                m.replicas.map_or("–".into(), |r| r.to_string()),
                m.usage_ratio
                    .map_or("–".into(), |r| format!("{:.0}%", r * 100.0)),
            );
        }
        out.push_str("</tbody></table></div>");
        if !hpa.conditions.is_empty() {
            out.push_str("<ul class=\"conditions\">");
            for c in &hpa.conditions {
                let _ = write!(out, "<li>{}</li>", Esc(c));
            }
            out.push_str("</ul>");
        }
        out.push_str(&explanation("Why this replica count", &hpa.explanation));
        let src = chart_url(w, &[("chart", "hpa"), ("width", "900")]);
        let _ = write!(
            out,
            "<figure class=\"chart\"><img src=\"{}\" loading=\"lazy\" alt=\"HPA backtest of {}\">\
             <figcaption>HPA backtest: replicas and usage against the target.</figcaption></figure>",
            Esc(&src),
            Esc(&title)
        );
    }
    if !w.containers.is_empty() {
        out.push_str(
            "<h3>Vertical: requests per container</h3><div class=\"table-wrap\"><table class=\"vpa\">\
             <thead><tr><th>Container</th><th>Resource</th><th>Request now</th><th>Lower bound</th>\
             <th>Target</th><th>Upper bound</th><th>Confidence</th></tr></thead><tbody>",
        );
        for c in &w.containers {
            for (resource, r) in [("cpu", &c.cpu), ("memory", &c.memory)] {
                let Some(r) = r else { continue };
                let _ = write!(
                    out,
                    "<tr class=\"vpa-row\"><td>{}</td><td>{resource}</td><td>{}</td><td>{}</td>\
                     <td><strong>{}</strong></td><td>{}</td><td>{:.1} days</td></tr>",
                    Esc(&c.name),
                    amount(r, "current_request", r.current_request),
                    amount(r, "lower_bound", Some(r.lower_bound)),
                    amount(r, "target", Some(r.target)),
                    amount(r, "upper_bound", Some(r.upper_bound)),
                    r.confidence,
                );
            }
        }
        out.push_str("</tbody></table></div>");
        for c in &w.containers {
            for (resource, r) in [("cpu", &c.cpu), ("memory", &c.memory)] {
                let Some(r) = r else { continue };
                let _ = write!(
                    out,
                    "<div class=\"container-detail\"><h4>{} · {resource}</h4>",
                    Esc(&c.name)
                );
                for (key, label) in [
                    ("target", "target"),
                    ("lower_bound", "lower bound"),
                    ("upper_bound", "upper bound"),
                ] {
                    if let Some(e) = r.explanations.get(key) {
                        let quantity = r.quantities.get(key).map_or("–", String::as_str);
                        let summary = format!("Why the {label} is {quantity}");
                        out.push_str(&explanation(&summary, &e));
                    }
                }
                let src = chart_url(
                    w,
                    &[
                        ("container", &c.name),
                        ("resource", resource),
                        ("width", "900"),
                    ],
                );
                let _ = write!(
                    out,
                    "<figure class=\"chart\"><img src=\"{}\" loading=\"lazy\" alt=\"{} {resource} usage against the recommendation\"></figure></div>",
                    Esc(&src),
                    Esc(&c.name)
                );
            }
        }
    }
    out.push_str("</section>\n");
}

/// The page's body for `report` at `now_ms`.
pub fn body(report: Option<&Report>, now_ms: i64) -> String {
    let mut out = String::new();
    let Some(report) = report else {
        out.push_str(
            "<p class=\"hint\">No recommendations yet: the recommender has not finished a refresh, \
             or no <code>autoscaler</code> workloads are configured.</p>\n",
        );
        return out;
    };
    let _ = writeln!(
        out,
        "<p class=\"muted\">Computed {} for {} workload(s). Raw data: \
         <a href=\"/api/v1/recommendations\">/api/v1/recommendations</a>.</p>",
        html::time(report.time_ms, now_ms),
        report.workloads.len()
    );
    if report.workloads.is_empty() {
        out.push_str("<p class=\"hint\">No workloads.</p>\n");
    }
    for w in &report.workloads {
        workload(&mut out, w, now_ms);
    }
    out
}

#[cfg(test)]
mod tests {

    use autoscaler::controller::WorkloadKind;
    use autoscaler::explain::Explanation;
    use autoscaler::recommender::{BoundExplanations, ContainerRecommendation, Inputs, Quantities};

    use super::*;

    fn resource() -> ResourceRecommendation {
        let mut why = Explanation::new("target = 90th percentile <of> usage");
        why.input("samples", 120).step("p90 × 1.15", "250m");
        ResourceRecommendation {
            unit: "core".into(),
            current_request: Some(0.5),
            lower_bound: 0.1,
            target: 0.25,
            upper_bound: 0.6,
            uncapped_target: 0.25,
            quantities: Quantities {
                current_request: Some("500m".into()),
                lower_bound: "100m".into(),
                target: "250m".into(),
                upper_bound: "600m".into(),
            },
            confidence: 2.5,
            explanations: BoundExplanations::written(
                Explanation::default(),
                why,
                Explanation::default(),
            ),
        }
    }

    #[test]
    fn workloads_show_requests_bounds_explanations_and_charts() {
        let report = Report {
            time_ms: 100_000,
            workloads: vec![WorkloadRecommendation {
                namespace: "shop".into(),
                kind: WorkloadKind::Deployment,
                name: "web<1>".into(),
                current_replicas: Some(3),
                hpa: None,
                containers: vec![ContainerRecommendation {
                    name: "nginx".into(),
                    cpu: Some(resource()),
                    memory: None,
                }],
                inputs: Inputs {
                    history_start_ms: Some(0),
                    history_end_ms: Some(90_000),
                    cpu_samples: 120,
                    memory_samples: 0,
                    dropped_samples: 0,
                    queries: Vec::new(),
                    requests_from: None,
                },
                errors: vec!["memory: no data <here>".into()],
            }],
        };
        let body = body(Some(&report), 160_000);
        assert!(
            body.contains("<h2>shop/Deployment/web&lt;1&gt;</h2>"),
            "{body}"
        );
        assert!(body.contains(">1m 0s ago</time> for 1 workload(s)"));
        assert!(body.contains(
            "<tr class=\"vpa-row\"><td>nginx</td><td>cpu</td><td>500m</td><td>100m</td><td><strong>250m</strong></td><td>600m</td><td>2.5 days</td></tr>"
        ));
        assert!(body.contains("<summary>Why the target is 250m</summary><p>target = 90th percentile &lt;of&gt; usage</p>"));
        assert!(body.contains("<dt>samples</dt><dd>120</dd>"));
        assert!(body.contains("<li>p90 × 1.15 = <strong>250m</strong></li>"));
        assert!(body.contains(
            "src=\"/api/v1/recommendations/chart?namespace=shop&amp;kind=Deployment&amp;name=web%3C1%3E&amp;container=nginx&amp;resource=cpu&amp;width=900\""
        ));
        assert!(body.contains("memory: no data &lt;here&gt;"));
        assert!(!body.contains("<here>") && !body.contains("<1>"));
        assert_eq!(body.matches("<tr class=\"vpa-row\">").count(), 1);
    }

    #[test]
    fn no_report_says_so() {
        assert!(body(None, 0).contains("No recommendations yet"));
        let empty = Report {
            time_ms: 0,
            workloads: Vec::new(),
        };
        assert!(body(Some(&empty), 0).contains("No workloads."));
    }
}
