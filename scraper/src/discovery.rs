//! Service discovery: the mechanisms that produce [`TargetGroup`]s for a
//! scrape config (static lists, files, HTTP endpoints, the Kubernetes API).
//!
//! A target group is a set of targets (label sets holding at least
//! `__address__`) sharing common labels, identified by a `source` string
//! unique within its mechanism. A mechanism reports a group again whenever it
//! changes; a group with no targets removes the targets its source had.

use tsdb::model::{Label, Labels};

use crate::config::StaticConfig;
use crate::target::ADDRESS_LABEL;

/// Targets sharing labels, from one source of one mechanism.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TargetGroup {
    /// Identifies the group within its mechanism (a file name and index, a
    /// URL and index, a Kubernetes object).
    pub source: String,
    /// One label set per target; `__address__` is the address to scrape.
    pub targets: Vec<Labels>,
    /// Labels of every target in the group, under the targets' own.
    pub labels: Labels,
}

/// The groups of `static_configs`, with Prometheus's sources `"0"`, `"1"`, ...
pub fn static_groups(configs: &[StaticConfig]) -> Vec<TargetGroup> {
    configs
        .iter()
        .enumerate()
        .map(|(i, config)| TargetGroup {
            source: i.to_string(),
            targets: config
                .targets
                .iter()
                .map(|address| Labels::new(vec![Label::new(ADDRESS_LABEL, address.as_str())]))
                .collect(),
            labels: Labels::new(
                config
                    .labels
                    .iter()
                    .map(|(name, value)| Label::new(name.as_str(), value.as_str()))
                    .collect(),
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_groups_are_numbered() {
        let configs: Vec<StaticConfig> = serde_yaml::from_str(
            "[{targets: ['a:1', 'b:2'], labels: {env: prod}}, {targets: ['c:3']}]",
        )
        .unwrap();
        let groups = static_groups(&configs);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].source, "0");
        assert_eq!(groups[1].source, "1");
        assert_eq!(groups[0].targets[1].to_string(), r#"{__address__="b:2"}"#);
        assert_eq!(groups[0].labels.to_string(), r#"{env="prod"}"#);
        assert!(groups[1].labels.is_empty());
    }
}
