//! An in-memory `Queryable`: series given up front, filtered by matchers
//! and time.

use tsdb::model::{Labels, Matcher, Sample, TimeRange};
use tsdb::storage::{Querier, Queryable, SelectHints, Series, SeriesSet};

/// Series in memory; `select` filters by matchers and time.
pub struct MemoryStorage {
    pub series: Vec<(Labels, Vec<Sample>)>,
}

impl Queryable for MemoryStorage {
    fn querier(&self, range: TimeRange) -> tsdb::Result<Box<dyn Querier + '_>> {
        Ok(Box::new(MemoryQuerier {
            storage: self,
            range,
        }))
    }
}

struct MemoryQuerier<'a> {
    storage: &'a MemoryStorage,
    range: TimeRange,
}

impl MemoryQuerier<'_> {
    fn matching<'s>(
        &'s self,
        matchers: &'s [Matcher],
    ) -> impl Iterator<Item = &'s (Labels, Vec<Sample>)> {
        self.storage.series.iter().filter(move |(labels, samples)| {
            matchers.iter().all(|m| m.matches_labels(labels))
                && samples.iter().any(|s| self.range.contains(s.t))
        })
    }
}

impl Querier for MemoryQuerier<'_> {
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> tsdb::Result<SeriesSet> {
        let mut series: Vec<Series> = self
            .matching(matchers)
            .map(|(labels, samples)| {
                let samples = samples
                    .iter()
                    .filter(|s| s.t >= hints.start && s.t <= hints.end)
                    .copied()
                    .collect();
                Series::from_samples(labels.clone(), samples)
            })
            .collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(SeriesSet {
            series,
            warnings: Vec::new(),
        })
    }

    fn label_names(&self, matchers: &[Matcher]) -> tsdb::Result<Vec<String>> {
        let mut names: Vec<String> = self
            .matching(matchers)
            .flat_map(|(labels, _)| labels.iter().map(|l| l.name.to_string()))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> tsdb::Result<Vec<String>> {
        let mut values: Vec<String> = self
            .matching(matchers)
            .filter_map(|(labels, _)| labels.get(name).map(str::to_string))
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }
}
