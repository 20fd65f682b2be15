//! The storage boundary: the write side ([`Appendable`]/[`Appender`]) and the
//! read side ([`Queryable`]/[`Querier`]).
//!
//! API boundary: the scraper and rules only see `Appender`; the PromQL engine
//! only sees `Querier`. The local database and remote Prometheus-compatible
//! backends implement the same traits, so the engine cannot tell them apart.
//! Everything here is synchronous; async callers use `spawn_blocking`.

use crate::Result;
use crate::error::AppendError;
use crate::model::{Labels, Matcher, Sample, SeriesRef, TimeRange};

/// Non-fatal problems met while answering a read (for example a remote
/// secondary that failed). They travel with results up to the API.
pub type Warnings = Vec<String>;

/// Something that hands out appenders.
pub trait Appendable: Send + Sync {
    fn appender(&self) -> Box<dyn Appender + '_>;
}

/// A batch of appends that becomes visible and durable on [`Appender::commit`].
pub trait Appender: Send {
    /// Adds one sample. `hint` is the [`SeriesRef`] an earlier append of the
    /// same series returned; with it the labels are not looked up again.
    ///
    /// # Errors
    /// An [`AppendError`] rejects this sample only; the batch stays usable.
    fn append(
        &mut self,
        hint: Option<SeriesRef>,
        labels: &Labels,
        sample: Sample,
    ) -> Result<SeriesRef, AppendError>;

    /// Makes every accepted sample of the batch durable (per the WAL's sync
    /// policy) and visible to queriers.
    ///
    /// # Errors
    /// IO errors of the write-ahead log; nothing of the batch is visible then.
    fn commit(self: Box<Self>) -> Result<()>;

    /// Drops the batch.
    fn rollback(self: Box<Self>);
}

/// Something that hands out queriers scoped to a time range.
pub trait Queryable: Send + Sync {
    /// # Errors
    /// Storage errors while opening the data of `range`.
    fn querier(&self, range: TimeRange) -> Result<Box<dyn Querier + '_>>;
}

/// Reads series within the querier's time range.
pub trait Querier {
    /// The series matching all `matchers`, sorted by labels, with their
    /// samples in `[hints.start, hints.end]` (clamped to the querier's range).
    ///
    /// # Errors
    /// Storage errors, including corrupted data.
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<SeriesSet>;

    /// Sorted label names of the series matching `matchers` (all series when
    /// empty).
    ///
    /// # Errors
    /// Storage errors.
    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>>;

    /// Sorted values of label `name` among the series matching `matchers`.
    ///
    /// # Errors
    /// Storage errors.
    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>>;
}

/// What a select is for, so an implementation can load less.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SelectHints {
    /// First timestamp needed, inclusive.
    pub start: i64,
    /// Last timestamp needed, inclusive.
    pub end: i64,
    /// Query resolution step in milliseconds; 0 for instant queries.
    pub step_ms: i64,
    /// Range of the range selector in milliseconds; 0 for instant selectors.
    pub range_ms: i64,
    /// The function the selector feeds, such as `rate`.
    pub func: Option<String>,
    /// Only labels are needed, not samples (series and labels APIs).
    pub series_only: bool,
}

impl SelectHints {
    pub fn for_range(range: TimeRange) -> Self {
        SelectHints {
            start: range.start,
            end: range.end,
            ..SelectHints::default()
        }
    }
}

/// The answer to a select: series sorted by labels, plus warnings.
#[derive(Default)]
pub struct SeriesSet {
    pub series: Vec<Series>,
    pub warnings: Warnings,
}

/// One series and a lazy iterator over its samples, in time order.
pub struct Series {
    pub labels: Labels,
    pub samples: Box<dyn SampleIterator>,
}

impl Series {
    pub fn new(labels: Labels, samples: Box<dyn SampleIterator>) -> Self {
        Series { labels, samples }
    }

    /// A series over samples already in memory.
    pub fn from_samples(labels: Labels, samples: Vec<Sample>) -> Self {
        Series {
            labels,
            samples: Box::new(VecSampleIterator::new(samples)),
        }
    }
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Series")
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

/// Iterates the samples of one series in increasing timestamp order.
/// Implementations validate their data before handing out an iterator, so
/// iteration itself cannot fail.
pub trait SampleIterator: Send {
    /// The next sample, or `None` at the end.
    fn next(&mut self) -> Option<Sample>;

    /// Advances to the first sample with timestamp `>= t` and returns it.
    /// Never moves backwards: after seeking past `t`, seeking to an earlier
    /// time returns the next sample instead.
    fn seek(&mut self, t: i64) -> Option<Sample> {
        loop {
            let sample = self.next()?;
            if sample.t >= t {
                return Some(sample);
            }
        }
    }

    /// Appends the samples with timestamps in `[start, end]` from the
    /// iterator's position on to `out`, as [`seek`](Self::seek) to `start`
    /// then [`next`](Self::next) up to `end` would return them, and leaves
    /// the iterator exhausted or past `end`. `start_timestamps` (empty on
    /// entry, as `out` should be) stays empty while every sample's
    /// [`start_timestamp`](Self::start_timestamp) is unknown; otherwise it
    /// gets one entry per sample of `out`.
    ///
    /// The default goes sample by sample; storages override it to decode
    /// whole chunks into `out` at once (the PromQL engine loads series with
    /// it).
    fn load_range(
        &mut self,
        start: i64,
        end: i64,
        out: &mut Vec<Sample>,
        start_timestamps: &mut Vec<i64>,
    ) {
        let mut next = self.seek(start);
        while let Some(sample) = next {
            if sample.t > end {
                break;
            }
            let st = self.start_timestamp();
            if st != 0 && start_timestamps.is_empty() {
                start_timestamps.resize(out.len(), 0);
            }
            if st != 0 || !start_timestamps.is_empty() {
                start_timestamps.push(st);
            }
            out.push(sample);
            next = self.next();
        }
    }

    /// The start (created) timestamp of the sample last returned by
    /// [`next`](Self::next) or [`seek`](Self::seek): when the counter it
    /// belongs to started counting, as OpenTelemetry and Prometheus 3 carry
    /// it. 0 means unknown, as for storages that do not keep start
    /// timestamps.
    fn start_timestamp(&self) -> i64 {
        0
    }
}

/// A [`SampleIterator`] over owned samples.
#[derive(Debug, Clone)]
pub struct VecSampleIterator {
    samples: std::vec::IntoIter<Sample>,
}

impl VecSampleIterator {
    pub fn new(samples: Vec<Sample>) -> Self {
        VecSampleIterator {
            samples: samples.into_iter(),
        }
    }
}

impl SampleIterator for VecSampleIterator {
    fn next(&mut self) -> Option<Sample> {
        self.samples.next()
    }

    fn seek(&mut self, t: i64) -> Option<Sample> {
        let rest = self.samples.as_slice();
        let skip = rest.partition_point(|s| s.t < t);
        self.samples.nth(skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_iterator_seeks_forward_only() {
        let samples = (0..10).map(|i| Sample::new(i * 10, i as f64)).collect();
        let mut it = VecSampleIterator::new(samples);
        assert_eq!(it.seek(35), Some(Sample::new(40, 4.0)));
        assert_eq!(it.next(), Some(Sample::new(50, 5.0)));
        assert_eq!(it.seek(0), Some(Sample::new(60, 6.0)));
        assert_eq!(it.seek(1000), None);
    }
}
