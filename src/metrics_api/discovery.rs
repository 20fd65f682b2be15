//! The catalog of served metrics: what each rule's `seriesQuery` finds (run
//! every `relist_interval` through the [`QueryBackend`]) plus the short-form
//! metrics, keyed as the API asks for them.
//!
//! prometheus-adapter lists series with `/api/v1/series` over the last
//! `--metrics-max-age`; `QueryBackend` only runs PromQL, so the same set is
//! `last_over_time(<seriesQuery>[<max_age>])`, which keeps the metric name and
//! every label of each series with a sample in that window.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use tsdb::model::Labels;
use tsdb::promql::{QueryBackend, Value};

use super::resources::GroupResource;
use super::rules::{Discovery, Rule, RuleSet};
use super::wire::ApiResource;

/// Where a custom metric comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomEntry {
    /// Index into `RuleSet::custom`.
    pub rule: usize,
    /// `<<.Series>>`: the series' metric name (the API name for short forms).
    pub series: String,
    /// Listed as namespaced in discovery.
    pub namespaced: bool,
}

/// Where an external metric comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalEntry {
    /// Index into `RuleSet::external`.
    pub rule: usize,
    pub series: String,
}

/// Every metric the APIs serve now. The first rule to claim a name wins, as in
/// prometheus-adapter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    custom: BTreeMap<(GroupResource, String), CustomEntry>,
    external: BTreeMap<String, ExternalEntry>,
}

impl Catalog {
    pub fn custom(&self, resource: &GroupResource, metric: &str) -> Option<&CustomEntry> {
        self.custom.get(&(resource.clone(), metric.to_string()))
    }

    pub fn external(&self, metric: &str) -> Option<&ExternalEntry> {
        self.external.get(metric)
    }

    /// The custom API's `APIResourceList` entries: `<resource>/<metric>`.
    /// Sorted by name.
    pub fn custom_resources(&self) -> Vec<ApiResource> {
        let mut resources: Vec<ApiResource> = self
            .custom
            .iter()
            .map(|((resource, metric), entry)| {
                ApiResource::new(
                    format!("{resource}/{metric}"),
                    entry.namespaced,
                    "MetricValueList",
                )
            })
            .collect();
        resources.sort_by(|a, b| a.name.cmp(&b.name));
        resources
    }

    /// The external API's `APIResourceList` entries: one per metric.
    pub fn external_resources(&self) -> Vec<ApiResource> {
        self.external
            .keys()
            .map(|metric| ApiResource::new(metric.clone(), true, "ExternalMetricValueList"))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.custom.len() + self.external.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn add_custom(&mut self, resource: GroupResource, metric: String, entry: CustomEntry) {
        self.custom.entry((resource, metric)).or_insert(entry);
    }

    /// A custom rule's series: one entry per resource its labels name.
    fn add_custom_series(&mut self, index: usize, rule: &Rule, labels: &Labels) {
        let Some(series) = labels.metric_name() else {
            return;
        };
        let Some(metric) = rule.api_name(series) else {
            return;
        };
        let resources: BTreeSet<GroupResource> = labels
            .iter()
            .filter(|l| &*l.name != "__name__")
            .filter_map(|l| rule.resources.resource_for_label(&l.name))
            .collect();
        let namespaces = GroupResource::namespaces();
        let namespaced = resources.contains(&namespaces);
        for resource in resources {
            let namespaced = namespaced && resource != namespaces;
            let key = (resource, metric.clone());
            match self.custom.get_mut(&key) {
                // Another series of the same rule and name with a namespace.
                Some(entry) if entry.rule == index && entry.series == series => {
                    entry.namespaced |= namespaced;
                }
                Some(_) => {}
                None => {
                    self.custom.insert(
                        key,
                        CustomEntry {
                            rule: index,
                            series: series.to_string(),
                            namespaced,
                        },
                    );
                }
            }
        }
    }

    fn add_external_series(&mut self, index: usize, rule: &Rule, labels: &Labels) {
        let Some(series) = labels.metric_name() else {
            return;
        };
        if let Some(metric) = rule.api_name(series) {
            self.external.entry(metric).or_insert(ExternalEntry {
                rule: index,
                series: series.to_string(),
            });
        }
    }
}

/// Runs every rule's discovery at `now_ms`. A rule whose query fails is left
/// out and named in the returned errors; the others still count.
pub async fn discover<B: QueryBackend>(
    rules: &RuleSet,
    backend: &B,
    now_ms: i64,
    max_age: Duration,
) -> (Catalog, Vec<String>) {
    let mut catalog = Catalog::default();
    let mut errors = Vec::new();
    // The default adapter config runs one selector for several rules.
    let mut results: HashMap<String, Result<Vec<Labels>, String>> = HashMap::new();
    let window = autoscaler::controller::queries::duration(max_age);
    for (external, list) in [(false, &rules.custom), (true, &rules.external)] {
        for (index, rule) in list.iter().enumerate() {
            match &rule.discovery {
                Discovery::Fixed { name, resources } => {
                    if external {
                        catalog
                            .external
                            .entry(name.clone())
                            .or_insert(ExternalEntry {
                                rule: index,
                                series: name.clone(),
                            });
                        continue;
                    }
                    let namespaces = GroupResource::namespaces();
                    for resource in resources {
                        let namespaced = rule.namespaced && *resource != namespaces;
                        catalog.add_custom(
                            resource.clone(),
                            name.clone(),
                            CustomEntry {
                                rule: index,
                                series: name.clone(),
                                namespaced,
                            },
                        );
                    }
                }
                Discovery::Series { selector, .. } => {
                    if !results.contains_key(selector) {
                        let query = format!("last_over_time({selector}[{window}])");
                        let outcome = match backend.instant(&query, now_ms).await {
                            Ok(result) => match result.value {
                                Value::Vector(samples) => {
                                    Ok(samples.into_iter().map(|s| s.labels).collect())
                                }
                                other => Err(format!("unexpected {} result", other.type_name())),
                            },
                            Err(e) => Err(e.to_string()),
                        };
                        results.insert(selector.clone(), outcome);
                    }
                    match results.get(selector) {
                        Some(Ok(series)) => {
                            for labels in series {
                                if external {
                                    catalog.add_external_series(index, rule, labels);
                                } else {
                                    catalog.add_custom_series(index, rule, labels);
                                }
                            }
                        }
                        Some(Err(e)) => errors.push(format!("{}: {e}", rule.origin)),
                        None => {}
                    }
                }
            }
        }
    }
    (catalog, errors)
}
