//! What `serve` queries: the local database merged with every `remote_read`
//! endpoint, as Prometheus's fanout storage.
//!
//! - Without `read_recent`, an endpoint is asked only for the part of a
//!   query's range before the local database's oldest sample (nothing when
//!   the range starts after it): the local store is preferred where it has
//!   data.
//! - `required_matchers`: an endpoint is asked only by selectors carrying
//!   every one of them as an equality matcher.
//! - `filter_external_labels` (default true): the external labels are added
//!   as equality matchers, and removed from the series that come back, so
//!   that they merge with the local series (stored without them).
//! - Series are merged by labels; where two sources share a timestamp the
//!   local sample wins. An endpoint that fails turns into a warning on the
//!   answer, never into a failed query (the local answer stands).

use std::sync::Arc;

use tsdb::db::merge_series_sets;
use tsdb::model::{Labels, MatchOp, Matcher, TimeRange};
use tsdb::storage::{Querier, Queryable, SelectHints, Series, SeriesSet};

use crate::config::RemoteReadConfig;

/// One `remote_read` endpoint and how to ask it.
pub struct RemoteReadSource {
    pub name: String,
    pub storage: Arc<dyn Queryable>,
    pub read_recent: bool,
    pub required_matchers: Vec<(String, String)>,
    /// Added as matchers and removed from results (empty when
    /// `filter_external_labels` is false).
    pub external_labels: Vec<(String, String)>,
}

impl RemoteReadSource {
    /// From a config section, with the server's external labels.
    pub fn new(
        config: &RemoteReadConfig,
        storage: Arc<dyn Queryable>,
        external_labels: &[(String, String)],
    ) -> Self {
        RemoteReadSource {
            name: if config.name.is_empty() {
                config.url.clone()
            } else {
                config.name.clone()
            },
            storage,
            read_recent: config.read_recent,
            required_matchers: config
                .required_matchers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            external_labels: if config.filter_external_labels {
                external_labels.to_vec()
            } else {
                Vec::new()
            },
        }
    }

    /// The matchers to send, or `None` when the selector lacks a required
    /// matcher.
    fn matchers(&self, matchers: &[Matcher]) -> Option<Vec<Matcher>> {
        let has = |name: &str, value: &str| {
            matchers
                .iter()
                .any(|m| m.op() == MatchOp::Equal && m.name() == name && m.value() == value)
        };
        if !self
            .required_matchers
            .iter()
            .all(|(name, value)| has(name, value))
        {
            return None;
        }
        let mut out = matchers.to_vec();
        for (name, value) in &self.external_labels {
            out.push(Matcher::equal(name, value));
        }
        Some(out)
    }

    /// The part of `range` to ask for, given where local data starts.
    fn range(&self, range: TimeRange, local_start: i64) -> Option<TimeRange> {
        if self.read_recent {
            return Some(range);
        }
        if range.start > local_start {
            return None;
        }
        Some(TimeRange::new(range.start, range.end.min(local_start)))
    }

    fn strip_external_labels(&self, labels: Labels) -> Labels {
        if self.external_labels.is_empty() {
            return labels;
        }
        let mut builder = labels.builder();
        for (name, _) in &self.external_labels {
            builder.remove_mut(name);
        }
        builder.build()
    }
}

/// The local storage and the remote read endpoints as one [`Queryable`].
pub struct Fanout {
    local: Arc<dyn Queryable>,
    /// The oldest time the local storage holds (`i64::MAX` when empty).
    local_start: Box<dyn Fn() -> i64 + Send + Sync>,
    remotes: Vec<RemoteReadSource>,
}

impl Fanout {
    pub fn new(
        local: Arc<dyn Queryable>,
        local_start: Box<dyn Fn() -> i64 + Send + Sync>,
        remotes: Vec<RemoteReadSource>,
    ) -> Self {
        Fanout {
            local,
            local_start,
            remotes,
        }
    }
}

/// What queries read when a configuration has `remote_read` sections: `local`
/// merged with each endpoint, or `local` alone when there are none. `serve` and
/// `sextant recommend --config` both read through it, so PromQL runs in Sextant's
/// engine over the raw samples of the remote server (never in the server's own
/// dialect, such as VictoriaMetrics's MetricsQL). Call within a tokio runtime.
///
/// # Errors
/// An endpoint whose HTTP client cannot be built (bad certificates, headers).
pub fn from_config(
    config: &crate::config::Config,
    local: Arc<dyn Queryable>,
    local_start: Box<dyn Fn() -> i64 + Send + Sync>,
) -> anyhow::Result<Arc<dyn Queryable>> {
    use anyhow::Context as _;
    if config.remote_read.is_empty() {
        return Ok(local);
    }
    let external_labels: Vec<(String, String)> = config
        .global
        .external_labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut remotes = Vec::new();
    for remote in &config.remote_read {
        let storage = super::read::RemoteStorage::from_config(remote)
            .with_context(|| format!("remote_read {}", remote.url))?;
        remotes.push(RemoteReadSource::new(
            remote,
            Arc::new(storage),
            &external_labels,
        ));
    }
    Ok(Arc::new(Fanout::new(local, local_start, remotes)))
}

impl Queryable for Fanout {
    fn querier(&self, range: TimeRange) -> tsdb::Result<Box<dyn Querier + '_>> {
        let local_start = (self.local_start)();
        let mut remotes = Vec::new();
        for remote in &self.remotes {
            if let Some(remote_range) = remote.range(range, local_start) {
                remotes.push((remote, remote.storage.querier(remote_range)?));
            }
        }
        Ok(Box::new(FanoutQuerier {
            local: self.local.querier(range)?,
            remotes,
        }))
    }
}

struct FanoutQuerier<'a> {
    local: Box<dyn Querier + 'a>,
    remotes: Vec<(&'a RemoteReadSource, Box<dyn Querier + 'a>)>,
}

impl Querier for FanoutQuerier<'_> {
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> tsdb::Result<SeriesSet> {
        let mut local = self.local.select(matchers, hints)?;
        if self.remotes.is_empty() {
            return Ok(local);
        }
        local.series.sort_by(|a, b| a.labels.cmp(&b.labels));
        let mut sets = vec![local];
        for (remote, querier) in &self.remotes {
            let Some(remote_matchers) = remote.matchers(matchers) else {
                continue;
            };
            match querier.select(&remote_matchers, hints) {
                Ok(set) => {
                    let mut series: Vec<Series> = set
                        .series
                        .into_iter()
                        .map(|s| Series::new(remote.strip_external_labels(s.labels), s.samples))
                        .collect();
                    series.sort_by(|a, b| a.labels.cmp(&b.labels));
                    sets.push(SeriesSet {
                        series,
                        warnings: set.warnings,
                    });
                }
                Err(error) => sets.push(SeriesSet {
                    series: Vec::new(),
                    warnings: vec![format!("remote_read {}: {error}", remote.name)],
                }),
            }
        }
        Ok(merge_series_sets(sets))
    }

    fn label_names(&self, matchers: &[Matcher]) -> tsdb::Result<Vec<String>> {
        let mut names = self.local.label_names(matchers)?;
        for (remote, querier) in &self.remotes {
            let Some(remote_matchers) = remote.matchers(matchers) else {
                continue;
            };
            match querier.label_names(&remote_matchers) {
                Ok(more) => names.extend(
                    more.into_iter()
                        .filter(|name| !remote.external_labels.iter().any(|(n, _)| n == name)),
                ),
                Err(error) => {
                    tracing::warn!(remote = %remote.name, %error, "remote_read label names failed");
                }
            }
        }
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> tsdb::Result<Vec<String>> {
        let mut values = self.local.label_values(name, matchers)?;
        for (remote, querier) in &self.remotes {
            let Some(remote_matchers) = remote.matchers(matchers) else {
                continue;
            };
            if remote.external_labels.iter().any(|(n, _)| n == name) {
                continue;
            }
            match querier.label_values(name, &remote_matchers) {
                Ok(more) => values.extend(more),
                Err(error) => {
                    tracing::warn!(remote = %remote.name, %error, "remote_read label values failed");
                }
            }
        }
        values.sort_unstable();
        values.dedup();
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsdb::head::{Head, HeadOptions};
    use tsdb::model::Sample;
    use tsdb::storage::Appendable;

    /// Label pairs and `(t, v)` samples of one test series.
    type TestSeries<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);

    fn head(series: &[TestSeries<'_>]) -> Arc<Head> {
        let head = Head::new(HeadOptions::default());
        let mut app = head.appender();
        for (labels, samples) in series {
            let labels = Labels::from_pairs(labels);
            for (t, v) in *samples {
                app.append(None, &labels, Sample::new(*t, *v)).unwrap();
            }
        }
        app.commit().unwrap();
        Arc::new(head)
    }

    /// A storage that fails every select.
    struct Down;
    impl Queryable for Down {
        fn querier(&self, _: TimeRange) -> tsdb::Result<Box<dyn Querier + '_>> {
            Ok(Box::new(Down))
        }
    }
    impl Querier for Down {
        fn select(&self, _: &[Matcher], _: &SelectHints) -> tsdb::Result<SeriesSet> {
            Err(tsdb::Error::Io {
                path: "http://remote".into(),
                source: std::io::Error::other("connection refused"),
            })
        }
        fn label_names(&self, _: &[Matcher]) -> tsdb::Result<Vec<String>> {
            Ok(Vec::new())
        }
        fn label_values(&self, _: &str, _: &[Matcher]) -> tsdb::Result<Vec<String>> {
            Ok(Vec::new())
        }
    }

    fn source(storage: Arc<dyn Queryable>, read_recent: bool) -> RemoteReadSource {
        RemoteReadSource {
            name: "r".into(),
            storage,
            read_recent,
            required_matchers: Vec::new(),
            external_labels: vec![("cluster".into(), "c1".into())],
        }
    }

    fn select(fanout: &Fanout, range: TimeRange, name: &str) -> SeriesSet {
        let querier = fanout.querier(range).unwrap();
        querier
            .select(
                &[Matcher::equal("__name__", name)],
                &SelectHints::for_range(range),
            )
            .unwrap()
    }

    fn collect(series: Series) -> (String, Vec<(i64, f64)>) {
        let mut samples = Vec::new();
        let mut it = series.samples;
        while let Some(s) = it.next() {
            samples.push((s.t, s.v));
        }
        (series.labels.to_string(), samples)
    }

    #[test]
    fn remote_history_merges_with_local_data_the_local_sample_winning() {
        let local = head(&[(
            &[("__name__", "m"), ("job", "a")],
            &[(100, 1.0), (200, 2.0)],
        )]);
        let remote = head(&[
            (
                &[("__name__", "m"), ("job", "a"), ("cluster", "c1")],
                &[(10, 0.1), (100, 9.0)],
            ),
            // Another cluster's series: filtered out by the external label.
            (
                &[("__name__", "m"), ("job", "a"), ("cluster", "c2")],
                &[(10, 5.0)],
            ),
        ]);
        let local_start = Arc::clone(&local);
        let fanout = Fanout::new(
            local,
            Box::new(move || local_start.min_time().unwrap_or(i64::MAX)),
            vec![source(remote, false)],
        );
        let set = select(&fanout, TimeRange::new(0, 1000), "m");
        let series: Vec<_> = set.series.into_iter().map(collect).collect();
        assert_eq!(
            series,
            [(
                r#"{__name__="m", job="a"}"#.to_string(),
                vec![(10, 0.1), (100, 1.0), (200, 2.0)]
            )]
        );
        // A range after local data starts does not reach the remote.
        let set = select(&fanout, TimeRange::new(150, 1000), "m");
        let series: Vec<_> = set.series.into_iter().map(collect).collect();
        assert_eq!(series[0].1, vec![(200, 2.0)]);
    }

    #[test]
    fn read_recent_and_required_matchers_decide_who_is_asked() {
        let local = head(&[]);
        let remote = head(&[(&[("__name__", "m"), ("cluster", "c1")], &[(500, 1.0)])]);
        let mut recent = source(remote, true);
        recent.required_matchers = vec![("__name__".into(), "m".into())];
        let fanout = Fanout::new(local, Box::new(|| 100), vec![recent]);
        assert_eq!(
            select(&fanout, TimeRange::new(200, 1000), "m").series.len(),
            1
        );
        assert_eq!(
            select(&fanout, TimeRange::new(200, 1000), "x").series.len(),
            0
        );
        let querier = fanout.querier(TimeRange::new(0, 1000)).unwrap();
        // Label queries obey the required matchers too.
        assert!(querier.label_names(&[]).unwrap().is_empty());
        assert_eq!(
            querier
                .label_names(&[Matcher::equal("__name__", "m")])
                .unwrap(),
            ["__name__"]
        );
    }

    #[test]
    fn a_failing_remote_is_a_warning_not_an_error() {
        let local = head(&[(&[("__name__", "m")], &[(100, 1.0)])]);
        let fanout = Fanout::new(
            local,
            Box::new(|| i64::MAX),
            vec![source(Arc::new(Down), false)],
        );
        let set = select(&fanout, TimeRange::new(0, 1000), "m");
        assert_eq!(set.series.len(), 1);
        assert_eq!(set.warnings.len(), 1);
        assert!(
            set.warnings[0].contains("connection refused"),
            "{:?}",
            set.warnings
        );
    }
}
