//! The synchronous half of a scrape: from a fetched body to one committed
//! appender batch, with the series cache and staleness bookkeeping.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;
use tsdb::error::AppendError;
use tsdb::model::{Labels, STALE_NAN, Sample, SeriesRef};
use tsdb::storage::{Appendable, Appender};

use super::intern::intern_labels;
use super::labels::{check_labels, sample_labels};
use super::{Fetched, ScrapeError, TargetOptions};
use crate::exposition::{Entry, Parser, format_for_content_type};

/// The synthetic series written after every scrape, in this order.
const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// The outcome of one scrape, as the synthetic series and the targets API
/// report it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeReport {
    /// Scrape start, in milliseconds since the epoch: the timestamp of every
    /// sample without an explicit one.
    pub time_ms: i64,
    pub duration: Duration,
    /// Samples in the body (up to a parse error).
    pub samples_scraped: usize,
    /// Samples left after metric relabeling, duplicates included.
    pub samples_post_metric_relabeling: usize,
    /// Series new to this target's cache.
    pub series_added: usize,
    /// Samples the storage refused without failing the scrape.
    pub out_of_order: usize,
    pub duplicates: usize,
    pub out_of_bounds: usize,
    /// `None` for a healthy scrape (`up` 1).
    pub error: Option<ScrapeError>,
}

impl ScrapeReport {
    /// The report of a target that could not be scraped at all.
    pub fn failed(error: ScrapeError) -> Self {
        ScrapeReport {
            time_ms: 0,
            duration: Duration::ZERO,
            samples_scraped: 0,
            samples_post_metric_relabeling: 0,
            series_added: 0,
            out_of_order: 0,
            duplicates: 0,
            out_of_bounds: 0,
            error: Some(error),
        }
    }
}

/// A cached series of a target.
#[derive(Debug)]
struct CachedSeries {
    labels: Labels,
    series_ref: Option<SeriesRef>,
    /// The scrape attempt that last appended it.
    last_seen: u64,
    /// Appended by the previous successful scrape without an explicit
    /// timestamp: it gets a staleness marker when it disappears.
    stale_tracked: bool,
    /// Whether the current attempt's sample had no explicit timestamp;
    /// becomes `stale_tracked` when the attempt succeeds.
    tracked_now: bool,
}

/// What a series' text as written maps to.
#[derive(Debug, Clone, Copy)]
enum RawTarget {
    Series(usize),
    /// Dropped by metric relabeling.
    Dropped,
}

/// A series text as written in a body.
#[derive(Debug)]
struct CachedText {
    text: Arc<str>,
    target: RawTarget,
    /// The scrape attempt that last met it.
    last_seen: u64,
}

/// The per-target series cache: series text as written -> series, so a
/// steady-state scrape skips label building, relabeling and hashing.
#[derive(Debug, Default)]
struct SeriesCache {
    /// Incremented per scrape attempt.
    iteration: u64,
    /// Slab of series; `None` slots are free.
    series: Vec<Option<CachedSeries>>,
    free: Vec<usize>,
    /// Label set -> slot, so two spellings of one series share a slot.
    by_labels: HashMap<Labels, usize>,
    texts: TextCache,
}

/// Series texts as written -> what they map to.
///
/// Targets list their series in the same order scrape after scrape, so the
/// text of a body's `k`-th sample is first compared with the `k`-th text of
/// the previous scrape: in the steady state a line costs one comparison of
/// its series text and no hashing. Other lines are looked up by text.
#[derive(Debug, Default)]
struct TextCache {
    /// Slab of texts; `None` slots are free.
    slots: Vec<Option<CachedText>>,
    free: Vec<usize>,
    by_text: FxHashMap<Arc<str>, usize>,
    /// Text slots of the last successful scrape's samples, in body order.
    order: Vec<usize>,
    /// The same for the scrape in progress.
    next_order: Vec<usize>,
}

impl TextCache {
    /// The `position`-th sample's series `text`, if cached; marks it seen
    /// by attempt `iteration`.
    fn find(&mut self, position: usize, text: &str, iteration: u64) -> Option<&mut CachedText> {
        let predicted = self.order.get(position).copied().filter(|&slot| {
            self.slots
                .get(slot)
                .and_then(Option::as_ref)
                .is_some_and(|cached| *cached.text == *text)
        });
        let slot = match predicted {
            Some(slot) => slot,
            None => *self.by_text.get(text)?,
        };
        self.next_order.push(slot);
        let cached = self.slots.get_mut(slot)?.as_mut()?;
        cached.last_seen = iteration;
        Some(cached)
    }

    /// Caches a series text met by attempt `iteration`.
    fn insert(&mut self, text: &str, target: RawTarget, iteration: u64) {
        let text: Arc<str> = Arc::from(text);
        let cached = CachedText {
            text: Arc::clone(&text),
            target,
            last_seen: iteration,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(cached);
                slot
            }
            None => {
                self.slots.push(Some(cached));
                self.slots.len() - 1
            }
        };
        self.by_text.insert(text, slot);
        self.next_order.push(slot);
    }

    /// Forgets a series text.
    fn remove(&mut self, text: &str) {
        if let Some(slot) = self.by_text.remove(text) {
            self.slots[slot] = None;
            self.free.push(slot);
        }
    }

    /// After a successful attempt `iteration`: texts it did not meet leave,
    /// and its order predicts the next scrape.
    fn finish_success(&mut self, iteration: u64) {
        for slot in 0..self.slots.len() {
            if let Some(cached) = &self.slots[slot]
                && cached.last_seen != iteration
            {
                self.by_text.remove(&cached.text);
                self.slots[slot] = None;
                self.free.push(slot);
            }
        }
        std::mem::swap(&mut self.order, &mut self.next_order);
    }
}

impl SeriesCache {
    /// Starts a scrape attempt.
    fn begin(&mut self) {
        self.iteration += 1;
        self.texts.next_order.clear();
    }

    fn insert(&mut self, labels: Labels) -> usize {
        if let Some(&slot) = self.by_labels.get(&labels) {
            return slot;
        }
        // Shared strings: the head keeps this very label set (see
        // `intern`), so a series' labels are held once.
        let labels = intern_labels(&labels);
        let entry = CachedSeries {
            labels: labels.clone(),
            series_ref: None,
            last_seen: 0,
            stale_tracked: false,
            tracked_now: false,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.series[slot] = Some(entry);
                slot
            }
            None => {
                self.series.push(Some(entry));
                self.series.len() - 1
            }
        };
        self.by_labels.insert(labels, slot);
        slot
    }

    /// After a successful scrape: series not seen get a staleness marker if
    /// they were tracked, and leave the cache (as do unseen spellings).
    fn finish_success(&mut self, app: &mut dyn Appender, t: i64) {
        let iteration = self.iteration;
        for slot in 0..self.series.len() {
            let Some(series) = &mut self.series[slot] else {
                continue;
            };
            if series.last_seen == iteration {
                series.stale_tracked = series.tracked_now;
                continue;
            }
            if series.stale_tracked {
                append_stale(app, series, t);
            }
            self.by_labels.remove(&series.labels);
            self.series[slot] = None;
            self.free.push(slot);
        }
        self.texts.finish_success(iteration);
    }

    /// After a failed scrape: every series of the last successful scrape gets
    /// a staleness marker and is no longer tracked.
    fn mark_all_stale(&mut self, app: &mut dyn Appender, t: i64) {
        for series in self.series.iter_mut().flatten() {
            if series.stale_tracked {
                append_stale(app, series, t);
                series.stale_tracked = false;
            }
        }
    }
}

/// Writes a staleness marker; storage refusing it (an out-of-order or
/// duplicate timestamp) is not an error, as in Prometheus.
fn append_stale(app: &mut dyn Appender, series: &CachedSeries, t: i64) {
    if let Err(error) = app.append(series.series_ref, &series.labels, Sample::new(t, STALE_NAN)) {
        tracing::debug!(labels = %series.labels, %error, "staleness marker not appended");
    }
}

/// Counts of one body's append.
#[derive(Debug, Default)]
struct Counts {
    scraped: usize,
    post_relabel: usize,
    series_added: usize,
    appended: usize,
    out_of_order: usize,
    duplicates: usize,
    out_of_bounds: usize,
}

/// Everything that outlives one scrape of a target: options, series cache,
/// and the references of its synthetic series.
pub struct TargetState {
    options: TargetOptions,
    cache: SeriesCache,
    report_series: Vec<(Labels, Option<SeriesRef>)>,
}

impl TargetState {
    pub fn new(options: TargetOptions) -> Self {
        let report_series = REPORT_NAMES
            .iter()
            .map(|name| {
                let labels = options
                    .labels
                    .builder()
                    .set(tsdb::model::METRIC_NAME, *name)
                    .build();
                (labels, None)
            })
            .collect();
        TargetState {
            options,
            cache: SeriesCache::default(),
            report_series,
        }
    }

    pub fn options(&self) -> &TargetOptions {
        &self.options
    }

    /// Appends one scrape that started at `t` (ms) and took `duration`: the
    /// fetched body (or the failure), staleness markers, the synthetic
    /// series; then commits. A failed scrape keeps nothing of its body.
    pub fn append_scrape(
        &mut self,
        storage: &dyn Appendable,
        fetched: Result<Fetched, ScrapeError>,
        t: i64,
        duration: Duration,
    ) -> ScrapeReport {
        self.cache.begin();
        let mut app = storage.appender();
        let mut counts = Counts::default();
        let outcome = fetched.and_then(|f| self.append_body(&mut *app, &f, t, &mut counts));
        if outcome.is_err() {
            app.rollback();
            app = storage.appender();
            self.cache.mark_all_stale(&mut *app, t);
        }
        let report = ScrapeReport {
            time_ms: t,
            duration,
            samples_scraped: counts.scraped,
            samples_post_metric_relabeling: counts.post_relabel,
            series_added: counts.series_added,
            out_of_order: counts.out_of_order,
            duplicates: counts.duplicates,
            out_of_bounds: counts.out_of_bounds,
            error: outcome.err(),
        };
        let values = [
            if report.error.is_none() { 1.0 } else { 0.0 },
            duration.as_secs_f64(),
            report.samples_scraped as f64,
            report.samples_post_metric_relabeling as f64,
            report.series_added as f64,
        ];
        for ((labels, series_ref), value) in self.report_series.iter_mut().zip(values) {
            match app.append(*series_ref, labels, Sample::new(t, value)) {
                Ok(r) => *series_ref = Some(r),
                Err(error) => tracing::debug!(%labels, %error, "report sample not appended"),
            }
        }
        if let Err(error) = app.commit() {
            tracing::warn!(target = %self.options.labels, %error, "committing a scrape failed");
        }
        report
    }

    /// Staleness markers for every series of the target, the synthetic ones
    /// included: the target is gone.
    ///
    /// # Errors
    /// The storage's commit error.
    pub fn append_end_of_run(&mut self, storage: &dyn Appendable, t: i64) -> tsdb::Result<()> {
        let mut app = storage.appender();
        self.cache.mark_all_stale(&mut *app, t);
        for (labels, series_ref) in &self.report_series {
            if let Err(error) = app.append(*series_ref, labels, Sample::new(t, STALE_NAN)) {
                tracing::debug!(%labels, %error, "staleness marker not appended");
            }
        }
        app.commit()
    }

    /// Parses `fetched` and appends its samples; `Err` fails the scrape.
    fn append_body(
        &mut self,
        app: &mut dyn Appender,
        fetched: &Fetched,
        t: i64,
        counts: &mut Counts,
    ) -> Result<(), ScrapeError> {
        let format = format_for_content_type(
            fetched.content_type.as_deref(),
            self.options.fallback_format,
        )?;
        let iteration = self.cache.iteration;
        let limits = self.options.limits;
        let mut sample_limit_exceeded = false;
        for entry in Parser::new(&fetched.body, format) {
            let entry = entry.map_err(|error| ScrapeError::Parse { format, error })?;
            let Entry::Sample(sample) = entry else {
                continue;
            };
            counts.scraped += 1;
            let timestamp = if self.options.honor_timestamps {
                sample.timestamp
            } else {
                None
            };
            let position = counts.scraped - 1;
            let cached = self.cache.texts.find(position, sample.series(), iteration);
            let (slot, new_text) = match cached {
                Some(entry) => match entry.target {
                    RawTarget::Dropped => continue,
                    RawTarget::Series(slot) => (slot, false),
                },
                None => {
                    let labels =
                        sample_labels(&sample, &self.options.labels, self.options.honor_labels)?;
                    let relabeled = match &self.options.metric_relabel {
                        Some(relabel) => relabel(&labels).filter(|l| !l.is_empty()),
                        None => Some(labels),
                    };
                    let Some(labels) = relabeled else {
                        let target = RawTarget::Dropped;
                        self.cache.texts.insert(sample.series(), target, iteration);
                        continue;
                    };
                    check_labels(&labels)?;
                    check_label_limits(&labels, &self.options)?;
                    let slot = self.cache.insert(labels);
                    let target = RawTarget::Series(slot);
                    self.cache.texts.insert(sample.series(), target, iteration);
                    (slot, true)
                }
            };
            counts.post_relabel += 1;
            let Some(series) = self.cache.series.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            // The same series again in this body, without a timestamp of
            // its own: the first sample wins.
            if series.last_seen == iteration && timestamp.is_none() {
                counts.duplicates += 1;
                // Prometheus counts a new spelling of a series as added.
                if new_text {
                    counts.series_added += 1;
                }
                continue;
            }
            if limits.sample_limit > 0 && counts.appended >= limits.sample_limit {
                // Keep parsing, so the report counts every sample.
                sample_limit_exceeded = true;
                continue;
            }
            let value = Sample::new(timestamp.unwrap_or(t), sample.value);
            let mut result = app.append(series.series_ref, &series.labels, value);
            if matches!(result, Err(AppendError::UnknownSeriesRef(_))) {
                result = app.append(None, &series.labels, value);
            }
            if new_text && result.is_err() {
                // As Prometheus: a series text enters the cache only once a
                // sample of it was accepted, so a later line of the same
                // series is not taken for a duplicate.
                self.cache.texts.remove(sample.series());
            } else {
                series.last_seen = iteration;
            }
            series.tracked_now = timestamp.is_none() || self.options.track_timestamps_staleness;
            match result {
                Ok(series_ref) => {
                    series.series_ref = Some(series_ref);
                    counts.appended += 1;
                    // As Prometheus: a series text new to the cache.
                    if new_text {
                        counts.series_added += 1;
                    }
                }
                Err(AppendError::OutOfOrderSample { .. }) => counts.out_of_order += 1,
                Err(AppendError::DuplicateSample { .. }) => counts.duplicates += 1,
                Err(AppendError::OutOfBounds { .. }) => counts.out_of_bounds += 1,
                // The storage's cap on active series: the new series is
                // left out (the head counts it), the known ones go on.
                Err(AppendError::SeriesLimitExceeded { .. }) => {}
                Err(other) => return Err(ScrapeError::Append(other)),
            }
        }
        if sample_limit_exceeded {
            return Err(ScrapeError::SampleLimit {
                samples: counts.post_relabel,
                limit: limits.sample_limit,
            });
        }
        self.cache.finish_success(app, t);
        Ok(())
    }
}

/// `label_limit`, `label_name_length_limit` and `label_value_length_limit`,
/// with Prometheus's messages.
fn check_label_limits(labels: &Labels, options: &TargetOptions) -> Result<(), ScrapeError> {
    let limits = options.limits;
    let metric: String = labels.to_string().chars().take(50).collect();
    if limits.label_limit > 0 && labels.len() > limits.label_limit {
        return Err(ScrapeError::LabelLimit(format!(
            "label_limit exceeded (metric: {metric}, number of labels: {}, limit: {})",
            labels.len(),
            limits.label_limit
        )));
    }
    for label in labels {
        if limits.label_name_length_limit > 0 && label.name.len() > limits.label_name_length_limit {
            return Err(ScrapeError::LabelLimit(format!(
                "label_name_length_limit exceeded (metric: {metric}, label name: {}, length: {}, limit: {})",
                label.name,
                label.name.len(),
                limits.label_name_length_limit
            )));
        }
        if limits.label_value_length_limit > 0
            && label.value.len() > limits.label_value_length_limit
        {
            return Err(ScrapeError::LabelLimit(format!(
                "label_value_length_limit exceeded (metric: {metric}, label name: {}, value: {:?}, length: {}, limit: {})",
                label.name,
                label.value,
                label.value.len(),
                limits.label_value_length_limit
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One attempt over `lines`: the target each finds, inserting misses as
    /// new series numbered by their text.
    fn attempt(cache: &mut TextCache, iteration: u64, lines: &[&str]) -> Vec<(usize, bool)> {
        let found = lines
            .iter()
            .enumerate()
            .map(
                |(position, text)| match cache.find(position, text, iteration) {
                    Some(cached) => match cached.target {
                        RawTarget::Series(slot) => (slot, false),
                        RawTarget::Dropped => (usize::MAX, false),
                    },
                    None => {
                        let slot = text.len();
                        cache.insert(text, RawTarget::Series(slot), iteration);
                        (slot, true)
                    }
                },
            )
            .collect();
        cache.finish_success(iteration);
        found
    }

    #[test]
    fn texts_are_found_in_any_order_and_unseen_ones_leave() {
        let mut cache = TextCache::default();
        let first = attempt(&mut cache, 1, &["a", "bb", "ccc"]);
        assert_eq!(first, [(1, true), (2, true), (3, true)]);
        // Same order: found by position.
        assert_eq!(
            attempt(&mut cache, 2, &["a", "bb", "ccc"]),
            [(1, false), (2, false), (3, false)]
        );
        // Reordered, repeated, new and missing texts: found by text.
        assert_eq!(
            attempt(&mut cache, 3, &["ccc", "a", "ccc", "dddd"]),
            [(3, false), (1, false), (3, false), (4, true)]
        );
        // "bb" was not met by attempt 3, so it is new again.
        assert_eq!(
            attempt(&mut cache, 4, &["bb", "a", "ccc", "dddd"]),
            [(2, true), (1, false), (3, false), (4, false)]
        );
        assert_eq!(cache.by_text.len(), 4);
        // A removed text whose slot a position still names is not found.
        cache.remove("bb");
        assert!(cache.find(0, "bb", 5).is_none());
        cache.insert("ee", RawTarget::Dropped, 5);
        assert!(cache.find(0, "bb", 5).is_none());
        assert!(matches!(
            cache.find(0, "ee", 5).map(|c| c.target),
            Some(RawTarget::Dropped)
        ));
    }
}
