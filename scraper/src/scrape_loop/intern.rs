//! Label strings shared by the series caches of every target.
//!
//! A target's cached series keep their labels for staleness markers and for
//! appending again when storage forgot a series. Built from the scraped text,
//! each label would own its strings: the metric name and `job="..."` once
//! per series. Interned here, the series of all targets share one copy of
//! each string, and the head, which interns the same way and adopts a
//! caller's strings, then keeps the cache's label set itself instead of a
//! copy (`tsdb::head`'s `MemIndex::intern`): one allocation per series for
//! both.
//!
//! One process-wide set, because the sharing across targets is the point;
//! it is touched only when a series enters a cache.

use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use rustc_hash::FxHashSet;
use tsdb::model::{Label, Labels};

/// Sweeping starts at this many strings.
const MIN_SWEEP_AT: usize = 4096;

struct Strings {
    set: FxHashSet<Arc<str>>,
    /// Strings no label set uses any more are dropped once the set reaches
    /// this size, which then becomes twice the live size: amortized O(1)
    /// per insertion.
    sweep_at: usize,
}

static STRINGS: LazyLock<Mutex<Strings>> = LazyLock::new(|| {
    Mutex::new(Strings {
        set: FxHashSet::default(),
        sweep_at: MIN_SWEEP_AT,
    })
});

/// The same labels built from the shared strings.
pub(crate) fn intern_labels(labels: &Labels) -> Labels {
    // A panic elsewhere while holding the lock leaves a valid set.
    let mut strings = STRINGS.lock().unwrap_or_else(PoisonError::into_inner);
    if strings.set.len() >= strings.sweep_at {
        strings.set.retain(|s| Arc::strong_count(s) > 1);
        strings.set.shrink_to_fit();
        strings.sweep_at = (2 * strings.set.len()).max(MIN_SWEEP_AT);
    }
    let interned = labels
        .iter()
        .map(|l| Label {
            name: intern(&mut strings.set, &l.name),
            value: intern(&mut strings.set, &l.value),
        })
        .collect();
    Labels::from_sorted(interned)
}

fn intern(set: &mut FxHashSet<Arc<str>>, s: &Arc<str>) -> Arc<str> {
    if let Some(existing) = set.get(&**s) {
        return Arc::clone(existing);
    }
    set.insert(Arc::clone(s));
    Arc::clone(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_of_different_label_sets_share_one_allocation() {
        let a = intern_labels(&Labels::from_pairs(&[
            ("__name__", "intern_test_metric"),
            ("job", "intern_test_job"),
        ]));
        let b = intern_labels(&Labels::from_pairs(&[
            ("__name__", "intern_test_metric"),
            ("job", "intern_test_other"),
        ]));
        let (a, b): (Vec<_>, Vec<_>) = (a.iter().collect(), b.iter().collect());
        assert!(Arc::ptr_eq(&a[0].name, &b[0].name));
        assert!(Arc::ptr_eq(&a[0].value, &b[0].value));
        assert!(Arc::ptr_eq(&a[1].name, &b[1].name));
        assert!(!Arc::ptr_eq(&a[1].value, &b[1].value));
        assert_eq!(&*a[1].value, "intern_test_job");
    }
}
