//! prometheus-adapter's rules, compiled: discovery (`seriesQuery`,
//! `seriesFilters`), association (`resources`), naming (`name`) and querying
//! (`metricsQuery`), plus Sextant's short form, which names one metric and
//! its resources directly instead of discovering them.
//!
//! `metricsQuery` templates take the fields prometheus-adapter documents:
//! `<<.Series>>`, `<<.LabelMatchers>>` and `<<.GroupBy>>`. Other template
//! actions (`range`, `.LabelValuesByName`) are rejected when the config loads.

use std::collections::BTreeMap;

use regex::Regex;

use super::resources::{GroupResource, Part, ResourceMapper, split_template};
use crate::config::metrics_api::{AdapterRule, ShortMetric};

/// Every rule, custom and external, in config order.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub custom: Vec<Rule>,
    pub external: Vec<Rule>,
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub discovery: Discovery,
    pub resources: ResourceMapper,
    /// External rules: add the namespace matcher (`resources.namespaced`,
    /// default true).
    pub namespaced: bool,
    pub query: QueryTemplate,
    /// Where the rule comes from (`rules[2]`, `metrics[0]`), for messages.
    pub origin: String,
}

/// How a rule's metrics are found.
#[derive(Debug, Clone)]
pub enum Discovery {
    /// prometheus-adapter: series matching the selector, filtered and renamed.
    Series {
        selector: String,
        filters: Vec<SeriesFilter>,
        naming: Naming,
    },
    /// The short form: one metric, always listed, for these resources.
    Fixed {
        name: String,
        resources: Vec<GroupResource>,
    },
}

/// `seriesFilters[]` entry.
#[derive(Debug, Clone)]
pub enum SeriesFilter {
    Is(Regex),
    IsNot(Regex),
}

impl SeriesFilter {
    fn keeps(&self, name: &str) -> bool {
        match self {
            SeriesFilter::Is(re) => re.is_match(name),
            SeriesFilter::IsNot(re) => !re.is_match(name),
        }
    }
}

/// `name`: `matches` and `as`.
#[derive(Debug, Clone)]
pub struct Naming {
    matches: Regex,
    as_: String,
}

impl Naming {
    /// prometheus-adapter's defaults: `matches` `.*`; `as` `$1` with one
    /// capture group, `$0` with none.
    ///
    /// # Errors
    /// A bad regex; more than one capture group and no `as`.
    pub fn new(matches: &str, as_: &str) -> Result<Naming, String> {
        let pattern = if matches.is_empty() { ".*" } else { matches };
        let matches = Regex::new(pattern).map_err(|e| format!("name.matches {pattern:?}: {e}"))?;
        let as_ = if as_.is_empty() {
            match matches.captures_len() - 1 {
                0 => "$0".to_string(),
                1 => "$1".to_string(),
                _ => {
                    return Err(format!(
                        "name.matches {pattern:?} has several capture groups: name.as is required"
                    ));
                }
            }
        } else {
            as_.to_string()
        };
        Ok(Naming { matches, as_ })
    }

    /// The API name of a series name, or `None` when it does not match.
    pub fn name_for(&self, series: &str) -> Option<String> {
        let captures = self.matches.captures(series)?;
        let mut out = String::new();
        captures.expand(&self.as_, &mut out);
        Some(out)
    }
}

/// A `metricsQuery` template.
#[derive(Debug, Clone)]
pub struct QueryTemplate {
    text: String,
}

/// What a template is rendered with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryFields {
    pub series: String,
    /// `name="value"` matchers, joined with `,` in `<<.LabelMatchers>>`.
    pub matchers: Vec<String>,
    /// Labels joined with `,` in `<<.GroupBy>>`.
    pub group_by: Vec<String>,
}

impl QueryTemplate {
    /// # Errors
    /// An action other than the documented fields, or a template whose
    /// rendering is not valid PromQL.
    pub fn new(text: &str) -> Result<QueryTemplate, String> {
        for part in split_template(text)? {
            if let Part::Field(field) = part
                && !matches!(field, "Series" | "LabelMatchers" | "GroupBy")
            {
                return Err(format!(
                    "metricsQuery {text:?}: unsupported field .{field} (supported: .Series, .LabelMatchers, .GroupBy)"
                ));
            }
        }
        let template = QueryTemplate {
            text: text.to_string(),
        };
        let example = template.render(&QueryFields {
            series: "some_series".into(),
            matchers: vec![r#"namespace="default""#.into(), r#"pod=~"a|b""#.into()],
            group_by: vec!["pod".into()],
        });
        promql_parser::parser::parse(&example)
            .map_err(|e| format!("metricsQuery {text:?} is not valid PromQL: {e}"))?;
        Ok(template)
    }

    pub fn render(&self, fields: &QueryFields) -> String {
        let mut out = String::new();
        // Checked in `new`.
        for part in split_template(&self.text).unwrap_or_default() {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field("Series") => out.push_str(&fields.series),
                Part::Field("LabelMatchers") => out.push_str(&fields.matchers.join(",")),
                Part::Field(_) => out.push_str(&fields.group_by.join(",")),
            }
        }
        out
    }
}

impl RuleSet {
    /// Compiles prometheus-adapter rules and short-form metrics.
    ///
    /// # Errors
    /// The first invalid rule, named by its list and index.
    pub fn compile(
        custom: &[AdapterRule],
        external: &[AdapterRule],
        short: &[ShortMetric],
    ) -> Result<RuleSet, String> {
        let mut set = RuleSet::default();
        for (i, rule) in custom.iter().enumerate() {
            let origin = format!("rules[{i}]");
            set.custom
                .push(compile_adapter_rule(rule, &origin).map_err(|e| format!("{origin}: {e}"))?);
        }
        for (i, rule) in external.iter().enumerate() {
            let origin = format!("externalRules[{i}]");
            set.external
                .push(compile_adapter_rule(rule, &origin).map_err(|e| format!("{origin}: {e}"))?);
        }
        for (i, metric) in short.iter().enumerate() {
            let origin = format!("metrics[{i}] ({})", metric.name);
            let rule = compile_short(metric, &origin).map_err(|e| format!("{origin}: {e}"))?;
            if metric.external {
                set.external.push(rule);
            } else {
                set.custom.push(rule);
            }
        }
        Ok(set)
    }
}

fn compile_adapter_rule(rule: &AdapterRule, origin: &str) -> Result<Rule, String> {
    match promql_parser::parser::parse(&rule.series_query) {
        Ok(promql_parser::parser::Expr::VectorSelector(_)) => {}
        Ok(_) => {
            return Err(format!(
                "seriesQuery {:?} must be a series selector",
                rule.series_query
            ));
        }
        Err(e) => return Err(format!("seriesQuery {:?}: {e}", rule.series_query)),
    }
    let filters = rule
        .series_filters
        .iter()
        .map(|f| match (&f.is, &f.is_not) {
            (Some(re), None) => Regex::new(re)
                .map(SeriesFilter::Is)
                .map_err(|e| format!("seriesFilters is {re:?}: {e}")),
            (None, Some(re)) => Regex::new(re)
                .map(SeriesFilter::IsNot)
                .map_err(|e| format!("seriesFilters isNot {re:?}: {e}")),
            _ => Err("each seriesFilters entry needs exactly one of is and isNot".to_string()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let naming = match &rule.name {
        Some(name) => Naming::new(&name.matches, &name.as_)?,
        None => Naming::new("", "")?,
    };
    let overrides = rule
        .resources
        .overrides
        .iter()
        .map(|(label, r)| {
            if r.resource.is_empty() {
                return Err(format!("resources.overrides.{label}: resource is required"));
            }
            Ok((label.clone(), GroupResource::resolve(&r.group, &r.resource)))
        })
        .collect::<Result<BTreeMap<_, _>, String>>()?;
    Ok(Rule {
        discovery: Discovery::Series {
            selector: rule.series_query.clone(),
            filters,
            naming,
        },
        resources: ResourceMapper::new(overrides, rule.resources.template.as_deref())?,
        namespaced: rule.resources.namespaced.unwrap_or(true),
        query: QueryTemplate::new(&rule.metrics_query)?,
        origin: origin.to_string(),
    })
}

fn compile_short(metric: &ShortMetric, origin: &str) -> Result<Rule, String> {
    if metric.name.is_empty() || metric.name.contains('/') {
        return Err(format!("invalid metric name {:?}", metric.name));
    }
    let mut overrides = BTreeMap::new();
    for (label, resource) in &metric.resources {
        overrides.insert(label.clone(), GroupResource::parse(resource));
    }
    let resources: Vec<GroupResource> = overrides.values().cloned().collect();
    if !metric.external && resources.is_empty() {
        return Err("a custom metric needs at least one entry in resources".into());
    }
    let namespaced = resources.contains(&GroupResource::namespaces());
    Ok(Rule {
        discovery: Discovery::Fixed {
            name: metric.name.clone(),
            resources,
        },
        resources: ResourceMapper::new(overrides, None)?,
        namespaced,
        query: QueryTemplate::new(&metric.query)?,
        origin: origin.to_string(),
    })
}

impl Rule {
    /// The series this rule lists: keeps those passing the filters, and
    /// returns the API name; `None` for short-form rules and filtered names.
    pub fn api_name(&self, series_name: &str) -> Option<String> {
        match &self.discovery {
            Discovery::Series {
                filters, naming, ..
            } => {
                if !filters.iter().all(|f| f.keeps(series_name)) {
                    return None;
                }
                naming.name_for(series_name)
            }
            Discovery::Fixed { .. } => None,
        }
    }

    /// The label naming namespaces, if the rule maps one.
    pub fn namespace_label(&self) -> Option<String> {
        self.resources
            .label_for_resource(&GroupResource::namespaces())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::metrics_api::{AdapterConfigFile, parse_adapter_config};

    /// prometheus-adapter's documented default rules (docs/config.md and the
    /// Helm chart's defaults), unchanged.
    pub const ADAPTER_DEFAULT: &str = include_str!("testdata/adapter-default.yaml");

    fn adapter() -> AdapterConfigFile {
        parse_adapter_config(ADAPTER_DEFAULT, "adapter-default.yaml").unwrap()
    }

    #[test]
    fn compiles_the_adapter_default_config() {
        let file = adapter();
        assert!(file.resource_rules.is_some());
        let set = RuleSet::compile(&file.rules, &file.external_rules, &[]).unwrap();
        assert_eq!(set.custom.len(), file.rules.len());
        assert!(!set.external.is_empty());
        // The cAdvisor counter rule: `_seconds_total` dropped, `_total` dropped.
        let names: Vec<Option<String>> = set
            .custom
            .iter()
            .map(|r| r.api_name("container_cpu_usage_seconds_total"))
            .collect();
        assert!(names.contains(&Some("cpu_usage".to_string())), "{names:?}");
    }

    #[test]
    fn naming_defaults_follow_the_adapter() {
        assert_eq!(
            Naming::new("^(.*)_total$", "")
                .unwrap()
                .name_for("http_requests_total"),
            Some("http_requests".into())
        );
        assert_eq!(
            Naming::new("^(.*)_total$", "${1}_per_second")
                .unwrap()
                .name_for("http_requests_total"),
            Some("http_requests_per_second".into())
        );
        assert_eq!(
            Naming::new("", "").unwrap().name_for("up"),
            Some("up".into())
        );
        assert_eq!(
            Naming::new("^(.*)_total$", "").unwrap().name_for("up"),
            None
        );
        assert!(Naming::new("^(a)(b)$", "").is_err());
    }

    #[test]
    fn renders_queries() {
        let template =
            QueryTemplate::new("sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)")
                .unwrap();
        let query = template.render(&QueryFields {
            series: "http_requests_total".into(),
            matchers: vec![r#"namespace="default""#.into(), r#"pod=~"a|b""#.into()],
            group_by: vec!["pod".into()],
        });
        assert_eq!(
            query,
            r#"sum(rate(http_requests_total{namespace="default",pod=~"a|b"}[2m])) by (pod)"#
        );
        assert!(QueryTemplate::new("sum(<<.LabelValuesByName>>)").is_err());
        assert!(QueryTemplate::new("sum(<<.Series>>{<<.LabelMatchers>>}").is_err());
    }

    #[test]
    fn rejects_bad_rules() {
        let bad = |yaml: &str| {
            let file = parse_adapter_config(yaml, "x").unwrap();
            RuleSet::compile(&file.rules, &file.external_rules, &[]).unwrap_err()
        };
        let e = bad("rules:\n- seriesQuery: 'sum(up)'\n  metricsQuery: '<<.Series>>'\n");
        assert!(
            e.contains("rules[0]") && e.contains("series selector"),
            "{e}"
        );
        let e = bad(
            "rules:\n- seriesQuery: up\n  seriesFilters: [{is: '('}]\n  metricsQuery: '<<.Series>>'\n",
        );
        assert!(e.contains("seriesFilters"), "{e}");
        let e = bad("externalRules:\n- seriesQuery: up\n  metricsQuery: '<<.Nope>>'\n");
        assert!(e.contains("externalRules[0]") && e.contains(".Nope"), "{e}");
    }
}
