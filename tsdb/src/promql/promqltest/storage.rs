//! A minimal in-memory storage for loading test data: implements
//! `Appendable` and `Queryable` over sorted sample vectors.
//! TODO(head-wal-db): replace with `tsdb::head::Head` once it lands, so that
//! there is one storage implementation.

use std::collections::BTreeMap;
use std::sync::RwLock;

use crate::Result;
use crate::error::AppendError;
use crate::model::{Labels, Matcher, Sample, SeriesRef, TimeRange};
use crate::storage::{Appendable, Appender, Querier, Queryable, SelectHints, Series, SeriesSet};

/// Series by labels, each with samples in time order.
#[derive(Debug, Default)]
pub struct MemStorage {
    series: RwLock<BTreeMap<Labels, Vec<Sample>>>,
}

impl MemStorage {
    pub fn new() -> Self {
        MemStorage::default()
    }

    /// Drops all data (the script's `clear`).
    pub fn clear(&self) {
        if let Ok(mut series) = self.series.write() {
            series.clear();
        }
    }
}

impl Appendable for MemStorage {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(MemAppender {
            storage: self,
            pending: Vec::new(),
        })
    }
}

struct MemAppender<'a> {
    storage: &'a MemStorage,
    pending: Vec<(Labels, Sample)>,
}

impl Appender for MemAppender<'_> {
    fn append(
        &mut self,
        _hint: Option<SeriesRef>,
        labels: &Labels,
        sample: Sample,
    ) -> Result<SeriesRef, AppendError> {
        if labels.is_empty() {
            return Err(AppendError::InvalidSeries {
                labels: labels.clone(),
                reason: "empty label set".to_string(),
            });
        }
        self.pending.push((labels.clone(), sample));
        SeriesRef::new(1).ok_or(AppendError::UnknownSeriesRef(0))
    }

    fn commit(self: Box<Self>) -> Result<()> {
        let Ok(mut series) = self.storage.series.write() else {
            return Ok(());
        };
        for (labels, sample) in self.pending {
            let samples = series.entry(labels).or_default();
            match samples.binary_search_by_key(&sample.t, |s| s.t) {
                Ok(i) => samples[i] = sample,
                Err(i) => samples.insert(i, sample),
            }
        }
        Ok(())
    }

    fn rollback(self: Box<Self>) {}
}

impl Queryable for MemStorage {
    fn querier(&self, range: TimeRange) -> Result<Box<dyn Querier + '_>> {
        Ok(Box::new(MemQuerier {
            storage: self,
            range,
        }))
    }
}

struct MemQuerier<'a> {
    storage: &'a MemStorage,
    range: TimeRange,
}

impl MemQuerier<'_> {
    fn matching(&self, matchers: &[Matcher]) -> Vec<(Labels, Vec<Sample>)> {
        let Ok(series) = self.storage.series.read() else {
            return Vec::new();
        };
        series
            .iter()
            .filter(|(labels, _)| matchers.iter().all(|m| m.matches_labels(labels)))
            .map(|(labels, samples)| (labels.clone(), samples.clone()))
            .collect()
    }
}

impl Querier for MemQuerier<'_> {
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<SeriesSet> {
        let start = hints.start.max(self.range.start);
        let end = hints.end.min(self.range.end);
        let series = self
            .matching(matchers)
            .into_iter()
            .filter_map(|(labels, samples)| {
                let in_range: Vec<Sample> = samples
                    .into_iter()
                    .filter(|s| start <= s.t && s.t <= end)
                    .collect();
                (!in_range.is_empty()).then(|| Series::from_samples(labels, in_range))
            })
            .collect();
        Ok(SeriesSet {
            series,
            warnings: Vec::new(),
        })
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .matching(matchers)
            .iter()
            .flat_map(|(labels, _)| labels.iter().map(|l| l.name.to_string()))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>> {
        let mut values: Vec<String> = self
            .matching(matchers)
            .iter()
            .filter_map(|(labels, _)| labels.get(name).map(str::to_string))
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }
}
