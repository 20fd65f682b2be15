//! The runner's storage: an in-memory head plus the start timestamps of the
//! `@st` load lines. The head does not keep start timestamps, so they are
//! kept here per series and handed to the engine through
//! [`SampleIterator::start_timestamp`], the way a storage that stores them
//! does.

use std::collections::HashMap;
use std::sync::Arc;

use crate::Result;
use crate::head::{Head, HeadOptions};
use crate::model::{Labels, Matcher, Sample, TimeRange};
use crate::storage::{Querier, Queryable, SampleIterator, SelectHints, Series, SeriesSet};

/// `(timestamp, start timestamp)` pairs of one series, by timestamp.
type StartTimestamps = Arc<Vec<(i64, i64)>>;

pub(super) struct TestStorage {
    pub(super) head: Head,
    start_timestamps: HashMap<Labels, StartTimestamps>,
}

impl TestStorage {
    pub(super) fn new() -> Self {
        TestStorage {
            head: Head::new(HeadOptions::default()),
            start_timestamps: HashMap::new(),
        }
    }

    /// Records the start timestamps of samples of `labels` (loads only add
    /// newer samples, so the list stays sorted).
    pub(super) fn add_start_timestamps(&mut self, labels: &Labels, pairs: &[(i64, i64)]) {
        if pairs.is_empty() {
            return;
        }
        let entry = self.start_timestamps.entry(labels.clone()).or_default();
        let list = Arc::make_mut(entry);
        list.extend_from_slice(pairs);
        list.sort_by_key(|&(t, _)| t);
    }
}

impl Queryable for TestStorage {
    fn querier(&self, range: TimeRange) -> Result<Box<dyn Querier + '_>> {
        Ok(Box::new(TestQuerier {
            inner: self.head.querier(range)?,
            start_timestamps: &self.start_timestamps,
        }))
    }
}

struct TestQuerier<'a> {
    inner: Box<dyn Querier + 'a>,
    start_timestamps: &'a HashMap<Labels, StartTimestamps>,
}

impl Querier for TestQuerier<'_> {
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<SeriesSet> {
        let mut set = self.inner.select(matchers, hints)?;
        set.series = set
            .series
            .into_iter()
            .map(|series| match self.start_timestamps.get(&series.labels) {
                Some(pairs) => Series::new(
                    series.labels,
                    Box::new(WithStartTimestamps {
                        inner: series.samples,
                        pairs: Arc::clone(pairs),
                        current: 0,
                    }),
                ),
                None => series,
            })
            .collect();
        Ok(set)
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        self.inner.label_names(matchers)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>> {
        self.inner.label_values(name, matchers)
    }
}

/// A series' samples with the start timestamps recorded for them.
struct WithStartTimestamps {
    inner: Box<dyn SampleIterator>,
    pairs: StartTimestamps,
    current: i64,
}

impl WithStartTimestamps {
    fn found(&mut self, sample: Option<Sample>) -> Option<Sample> {
        self.current = sample
            .and_then(|s| {
                self.pairs
                    .binary_search_by_key(&s.t, |&(t, _)| t)
                    .ok()
                    .map(|i| self.pairs[i].1)
            })
            .unwrap_or(0);
        sample
    }
}

impl SampleIterator for WithStartTimestamps {
    fn next(&mut self) -> Option<Sample> {
        let sample = self.inner.next();
        self.found(sample)
    }

    fn seek(&mut self, t: i64) -> Option<Sample> {
        let sample = self.inner.seek(t);
        self.found(sample)
    }

    fn start_timestamp(&self) -> i64 {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Appendable;

    #[test]
    fn start_timestamps_travel_with_their_samples() {
        let mut storage = TestStorage::new();
        let labels = Labels::from_pairs(&[("__name__", "c")]);
        let mut appender = storage.head.appender();
        for t in [1000, 2000, 3000] {
            appender.append(None, &labels, Sample::new(t, 1.0)).unwrap();
        }
        appender.commit().unwrap();
        storage.add_start_timestamps(&labels, &[(1000, 500), (3000, 2500)]);
        let querier = storage.querier(TimeRange::new(0, 5000)).unwrap();
        let mut set = querier
            .select(
                &[Matcher::equal("__name__", "c")],
                &SelectHints::for_range(TimeRange::new(0, 5000)),
            )
            .unwrap();
        let it = &mut set.series[0].samples;
        let mut seen = Vec::new();
        while let Some(s) = it.next() {
            seen.push((s.t, it.start_timestamp()));
        }
        assert_eq!(seen, vec![(1000, 500), (2000, 0), (3000, 2500)]);
    }
}
