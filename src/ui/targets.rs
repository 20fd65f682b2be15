//! `/targets`: every scrape pool's targets with their health, labels, last
//! scrape and last error, as the scrape manager reports them now.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;

use super::html::{self, Esc, Nav};
use crate::api::{ActiveTarget, Api, Health, TargetsSnapshot};

/// `GET /targets`.
pub async fn page(State(api): State<Arc<Api>>) -> Response {
    let body = body(&api.targets_snapshot(), api.clock.now_ms());
    html::page("Targets", Nav::Targets, &body)
}

/// The page's body for `snapshot` at `now_ms`.
pub fn body(snapshot: &TargetsSnapshot, now_ms: i64) -> String {
    let mut pools: BTreeMap<&str, Vec<&ActiveTarget>> = BTreeMap::new();
    for target in &snapshot.active {
        pools.entry(target.pool.as_str()).or_default().push(target);
    }
    let dropped = &snapshot.dropped_counts;
    let mut out = String::new();
    if pools.is_empty() {
        out.push_str(
            "<p class=\"hint\">No targets. Add <code>scrape_configs</code> to the configuration.</p>\n",
        );
    }
    for (pool, targets) in &pools {
        let up = targets.iter().filter(|t| t.health == Health::Up).count();
        let _ = write!(
            out,
            "<section class=\"pool\"><h2>{} <span class=\"count {}\">{up}/{} up</span></h2>",
            Esc(pool),
            if up == targets.len() { "ok" } else { "bad" },
            targets.len()
        );
        if let Some(n) = dropped.get(*pool).filter(|&&n| n > 0) {
            let _ = write!(
                out,
                "<p class=\"muted\">{n} discovered target(s) dropped by relabeling.</p>"
            );
        }
        out.push_str(
            "<div class=\"table-wrap\"><table class=\"targets\"><thead><tr><th>Endpoint</th>\
             <th>State</th><th>Labels</th><th>Last scrape</th><th>Duration</th><th>Error</th>\
             </tr></thead><tbody>\n",
        );
        for target in targets {
            let (class, state) = match target.health {
                Health::Up => ("ok", "up"),
                Health::Down => ("bad", "down"),
                Health::Unknown => ("muted", "unknown"),
            };
            let labels = html::labels(
                target
                    .labels
                    .iter()
                    .filter(|l| !l.name.starts_with("__"))
                    .map(|l| (&*l.name, &*l.value)),
            );
            let last = target
                .last_scrape_ms
                .map_or_else(|| "never".to_string(), |t| html::time(t, now_ms));
            let duration = if target.last_scrape_ms.is_some() {
                html::duration(
                    i64::try_from(target.last_scrape_duration.as_millis()).unwrap_or(i64::MAX),
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "<tr class=\"target\"><td><a href=\"{0}\">{0}</a></td><td>{1}</td><td>{labels}</td>\
                 <td>{last}</td><td>{duration}</td><td class=\"error-text\">{2}</td></tr>",
                Esc(&target.scrape_url),
                html::badge(class, state),
                Esc(&target.last_error)
            );
        }
        out.push_str("</tbody></table></div></section>\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tsdb::model::Labels;

    use super::*;
    use crate::api::DroppedTarget;

    fn target(pool: &str, instance: &str, health: Health, error: &str) -> ActiveTarget {
        ActiveTarget {
            pool: pool.into(),
            discovered_labels: Labels::default(),
            labels: Labels::from_pairs(&[
                ("__address__", instance),
                ("instance", instance),
                ("job", pool),
            ]),
            scrape_url: format!("http://{instance}/metrics"),
            health,
            last_error: error.into(),
            last_scrape_ms: (health != Health::Unknown).then_some(9_000),
            last_scrape_duration: Duration::from_millis(12),
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn targets_are_grouped_by_pool_with_health_and_errors() {
        let snapshot = TargetsSnapshot {
            active: vec![
                target("node", "a:9100", Health::Up, ""),
                target("node", "b:9100", Health::Down, "connection <refused>"),
                target("app", "c:80", Health::Unknown, ""),
            ],
            dropped: vec![DroppedTarget {
                pool: "node".into(),
                discovered_labels: Labels::default(),
            }],
            dropped_counts: [("node".to_string(), 1), ("app".to_string(), 0)].into(),
        };
        let body = body(&snapshot, 10_000);
        let app = body.find("<h2>app ").unwrap();
        let node = body.find("<h2>node ").unwrap();
        assert!(app < node, "pools are sorted");
        assert!(body.contains("<span class=\"count bad\">1/2 up</span>"));
        assert!(body.contains("<span class=\"count bad\">0/1 up</span>"));
        assert!(body.contains("1 discovered target(s) dropped"));
        assert!(body.contains("<span class=\"badge ok\">up</span>"));
        assert!(body.contains("<span class=\"badge bad\">down</span>"));
        assert!(body.contains("connection &lt;refused&gt;"));
        assert!(body.contains("instance=&quot;a:9100&quot;"));
        assert!(!body.contains("__address__"));
        assert!(body.contains(">1s ago</time>"));
        assert!(body.contains("<td>never</td>"));
        assert_eq!(body.matches("<tr class=\"target\">").count(), 3);
    }

    #[test]
    fn no_targets_says_so() {
        assert!(body(&TargetsSnapshot::default(), 0).contains("No targets"));
    }
}
