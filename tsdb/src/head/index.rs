//! The head's in-memory inverted index: interned label strings, the
//! postings ([`MemPostings`]: label pair -> roaring bitmap of series slots,
//! evaluated by [`postings_for_matchers`]), and the slot table that maps a
//! slot back to its series.
//!
//! Slots are dense `u32` ids private to the head and reused after a series
//! is removed, which keeps the bitmaps small; [`SeriesRef`]s are never
//! reused and are what the WAL and appenders see.
//!
//! [`SeriesRef`]: crate::model::SeriesRef

use std::collections::BTreeSet;
use std::sync::Arc;

use roaring::RoaringBitmap;
use rustc_hash::FxHashSet;

use super::series::MemSeries;
use crate::Result;
use crate::index::{MemPostings, postings_for_matchers};
use crate::model::{Label, Labels, Matcher};

#[derive(Default)]
pub(crate) struct MemIndex {
    /// Every label name and value of a live series, once.
    strings: FxHashSet<Arc<str>>,
    /// Label pair -> slots of the series carrying it.
    postings: MemPostings,
    slots: Vec<Option<Arc<MemSeries>>>,
    free_slots: Vec<u32>,
}

impl MemIndex {
    /// The same labels, built from this index's shared strings (adding the
    /// new ones), so that a million series with `job="node"` hold one
    /// `"node"`. Labels whose strings are all the shared ones already (the
    /// scraper interns its labels, see `scraper`'s series cache) are
    /// returned as they are: the caller's cache and the head then share one
    /// allocation per series.
    pub(crate) fn intern(&mut self, labels: &Labels) -> Labels {
        let interned: Vec<Label> = labels
            .iter()
            .map(|l| Label {
                name: intern_str(&mut self.strings, &l.name),
                value: intern_str(&mut self.strings, &l.value),
            })
            .collect();
        let shared = interned
            .iter()
            .zip(labels.iter())
            .all(|(a, b)| Arc::ptr_eq(&a.name, &b.name) && Arc::ptr_eq(&a.value, &b.value));
        if shared {
            return labels.clone();
        }
        Labels::from_sorted(interned)
    }

    /// A free slot for a new series. `None` when all `u32` slots are live.
    pub(crate) fn allocate_slot(&mut self) -> Option<u32> {
        if let Some(slot) = self.free_slots.pop() {
            return Some(slot);
        }
        let slot = u32::try_from(self.slots.len()).ok()?;
        self.slots.push(None);
        Some(slot)
    }

    /// Gives back a slot no series was added at.
    pub(crate) fn release_slot(&mut self, slot: u32) {
        if self.slots.get(slot as usize).is_some_and(Option::is_none) {
            self.free_slots.push(slot);
        }
    }

    /// Adds a series (with interned labels) at its slot.
    pub(crate) fn add(&mut self, series: &Arc<MemSeries>) {
        self.postings.add(series.slot, &series.labels);
        if let Some(entry) = self.slots.get_mut(series.slot as usize) {
            *entry = Some(Arc::clone(series));
        }
    }

    /// Removes a series and frees its slot.
    pub(crate) fn remove(&mut self, series: &MemSeries) {
        self.postings.remove(series.slot, &series.labels);
        if let Some(entry) = self.slots.get_mut(series.slot as usize)
            && entry.take().is_some()
        {
            self.free_slots.push(series.slot);
        }
    }

    /// Drops interned strings no live series uses any more.
    pub(crate) fn sweep_strings(&mut self) {
        // The set's own reference is the only one left for unused strings.
        self.strings.retain(|s| Arc::strong_count(s) > 1);
        self.strings.shrink_to_fit();
    }

    /// The series matching every matcher (all series for none).
    pub(crate) fn select(&self, matchers: &[Matcher]) -> Result<Vec<Arc<MemSeries>>> {
        Ok(self
            .matching(matchers)?
            .iter()
            .filter_map(|slot| self.series(slot))
            .collect())
    }

    /// Sorted label names of the series matching `matchers`.
    pub(crate) fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        if matchers.is_empty() {
            return Ok(self.postings.label_names());
        }
        let mut names = BTreeSet::new();
        for slot in &self.matching(matchers)? {
            if let Some(series) = self.series(slot) {
                names.extend(series.labels.iter().map(|l| Arc::clone(&l.name)));
            }
        }
        Ok(names.into_iter().map(|n| n.to_string()).collect())
    }

    /// Sorted values of label `name` among the series matching `matchers`.
    pub(crate) fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>> {
        let values = self.postings.label_values(name);
        if matchers.is_empty() {
            return Ok(values);
        }
        let matching = self.matching(matchers)?;
        Ok(values
            .into_iter()
            .filter(|v| {
                self.postings
                    .get(name, v)
                    .is_some_and(|slots| !slots.is_disjoint(&matching))
            })
            .collect())
    }

    pub(crate) fn n_strings(&self) -> usize {
        self.strings.len()
    }

    fn matching(&self, matchers: &[Matcher]) -> Result<RoaringBitmap> {
        postings_for_matchers(&self.postings, matchers)
    }

    fn series(&self, slot: u32) -> Option<Arc<MemSeries>> {
        self.slots.get(slot as usize).cloned().flatten()
    }
}

fn intern_str(strings: &mut FxHashSet<Arc<str>>, s: &Arc<str>) -> Arc<str> {
    if let Some(existing) = strings.get(&**s) {
        return Arc::clone(existing);
    }
    // The caller's string itself rather than a copy: a caller that keeps
    // its labels (a scrape cache) then holds no second copy. Such a string
    // outlives its last series in the set until the caller drops it too,
    // costing nothing extra.
    strings.insert(Arc::clone(s));
    Arc::clone(s)
}
