//! Postings lists as roaring bitmaps of series ids, the set operations the
//! matcher evaluation needs, and [`MemPostings`], the in-memory inverted
//! index the head keeps.

use std::borrow::{Borrow, Cow};
use std::collections::BTreeMap;
use std::sync::Arc;

use roaring::{MultiOps, RoaringBitmap};
use rustc_hash::FxHashMap;

use crate::Result;
use crate::index::PostingsSource;
use crate::model::Labels;

/// The series in every list. Starts from the smallest list and stops early
/// once the result is empty. No lists means no series.
pub fn intersect<P: Borrow<RoaringBitmap>>(lists: &[P]) -> RoaringBitmap {
    let mut by_len: Vec<&RoaringBitmap> = lists.iter().map(Borrow::borrow).collect();
    by_len.sort_by_key(|p| p.len());
    let mut out = match by_len.as_slice() {
        [] => return RoaringBitmap::new(),
        [only] => return (*only).clone(),
        // Intersecting two references allocates only the result.
        [smallest, next, ..] => *smallest & *next,
    };
    for list in &by_len[2..] {
        if out.is_empty() {
            break;
        }
        out &= *list;
    }
    out
}

/// The series in any list.
pub fn union<P: Borrow<RoaringBitmap>>(lists: &[P]) -> RoaringBitmap {
    lists.iter().map(Borrow::borrow).union()
}

/// The series of `base` that are in none of `remove`.
pub fn subtract<P: Borrow<RoaringBitmap>>(mut base: RoaringBitmap, remove: &[P]) -> RoaringBitmap {
    for list in remove {
        if base.is_empty() {
            break;
        }
        base -= list.borrow();
    }
    base
}

/// The head's inverted index: for every label pair the ids of the series
/// carrying it, plus the set of all series. Ids are `u32` so that postings
/// are plain roaring bitmaps.
#[derive(Debug, Default, Clone)]
pub struct MemPostings {
    all: RoaringBitmap,
    /// Label name -> value -> series ids. Values are kept sorted for the
    /// label values API.
    by_label: FxHashMap<Arc<str>, BTreeMap<Arc<str>, RoaringBitmap>>,
}

impl MemPostings {
    pub fn new() -> Self {
        MemPostings::default()
    }

    /// Adds series `id` under each of its labels.
    pub fn add(&mut self, id: u32, labels: &Labels) {
        self.all.insert(id);
        for label in labels {
            self.by_label
                .entry(label.name.clone())
                .or_default()
                .entry(label.value.clone())
                .or_default()
                .insert(id);
        }
    }

    /// Removes series `id`, which was added with `labels`. Label pairs and
    /// names left without series disappear.
    pub fn remove(&mut self, id: u32, labels: &Labels) {
        self.all.remove(id);
        for label in labels {
            let Some(values) = self.by_label.get_mut(&*label.name) else {
                continue;
            };
            if let Some(ids) = values.get_mut(&*label.value) {
                ids.remove(id);
                if ids.is_empty() {
                    values.remove(&*label.value);
                }
            }
            if values.is_empty() {
                self.by_label.remove(&*label.name);
            }
        }
    }

    pub fn num_series(&self) -> u64 {
        self.all.len()
    }

    /// Every series id.
    pub fn all(&self) -> &RoaringBitmap {
        &self.all
    }

    /// The ids of the series with `name="value"`, if any.
    pub fn get(&self, name: &str, value: &str) -> Option<&RoaringBitmap> {
        self.by_label.get(name)?.get(value)
    }

    /// Sorted names of all labels.
    pub fn label_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_label.keys().map(|n| n.to_string()).collect();
        names.sort_unstable();
        names
    }

    /// Sorted values of label `name`.
    pub fn label_values(&self, name: &str) -> Vec<String> {
        self.by_label
            .get(name)
            .map(|values| values.keys().map(|v| v.to_string()).collect())
            .unwrap_or_default()
    }
}

impl PostingsSource for MemPostings {
    fn postings(&self, name: &str, value: &str) -> Result<Cow<'_, RoaringBitmap>> {
        Ok(match self.get(name, value) {
            Some(ids) => Cow::Borrowed(ids),
            None => Cow::Owned(RoaringBitmap::new()),
        })
    }

    fn postings_matching(
        &self,
        name: &str,
        accept: &mut dyn FnMut(&str) -> bool,
    ) -> Result<RoaringBitmap> {
        let Some(values) = self.by_label.get(name) else {
            return Ok(RoaringBitmap::new());
        };
        Ok(values
            .iter()
            .filter(|(value, _)| accept(value))
            .map(|(_, ids)| ids)
            .union())
    }

    fn all_postings(&self) -> Result<Cow<'_, RoaringBitmap>> {
        Ok(Cow::Borrowed(&self.all))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bitmap(ids: &[u32]) -> RoaringBitmap {
        ids.iter().copied().collect()
    }

    #[test]
    fn set_operations() {
        let a = bitmap(&[1, 2, 3, 4]);
        let b = bitmap(&[2, 4, 6]);
        let c = bitmap(&[4, 2]);
        assert_eq!(intersect(&[&a, &b, &c]), bitmap(&[2, 4]));
        assert_eq!(intersect::<RoaringBitmap>(&[]), bitmap(&[]));
        assert_eq!(union(&[&a, &b]), bitmap(&[1, 2, 3, 4, 6]));
        assert_eq!(subtract(a.clone(), &[&c]), bitmap(&[1, 3]));
        assert_eq!(subtract(a, &[b, c]), bitmap(&[1, 3]));
    }

    #[test]
    fn mem_postings_add_and_remove() {
        let mut p = MemPostings::new();
        let up_a = Labels::from_pairs(&[("__name__", "up"), ("job", "a")]);
        let up_b = Labels::from_pairs(&[("__name__", "up"), ("job", "b")]);
        p.add(1, &up_a);
        p.add(2, &up_b);
        assert_eq!(p.get("__name__", "up"), Some(&bitmap(&[1, 2])));
        assert_eq!(p.label_values("job"), vec!["a", "b"]);
        assert_eq!(p.label_names(), vec!["__name__", "job"]);
        p.remove(1, &up_a);
        assert_eq!(p.get("job", "a"), None);
        assert_eq!(p.label_values("job"), vec!["b"]);
        assert_eq!(p.all(), &bitmap(&[2]));
        p.remove(2, &up_b);
        assert!(p.label_names().is_empty());
        assert_eq!(p.num_series(), 0);
    }
}
