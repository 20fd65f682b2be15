//! Series by the handle an append returns: a sharded slab indexed by the
//! handle itself, so an append with a hint needs no hashing.
//!
//! A handle is the [`SeriesRef`] appenders see. Its low 32 bits are a
//! position (4 bits of shard, 28 of index in the shard); its high 32 bits
//! are the generation of that position, bumped whenever a series leaves it.
//! Positions are reused, which keeps the slab as small as the live series,
//! and a handle kept by a scrape cache past its series' removal names an
//! old generation: lookups then find nothing, never another series.
//!
//! Handles are not the WAL's series references: those are never reused and
//! outlive the process, handles are neither (see `MemSeries::wal_ref`).

use std::sync::Arc;

use parking_lot::RwLock;

use super::series::MemSeries;
use crate::model::SeriesRef;

/// Shards of the slab. A power of two.
const N_SHARDS: usize = 16;
const SHARD_BITS: u32 = N_SHARDS.trailing_zeros();
/// Positions per shard: the low 32 bits of a handle minus the shard bits.
const MAX_INDEX: usize = 1 << (32 - SHARD_BITS);

pub(crate) struct SeriesTable {
    shards: Box<[RwLock<Shard>]>,
}

#[derive(Default)]
struct Shard {
    entries: Vec<Entry>,
    /// Indexes of empty entries.
    free: Vec<u32>,
}

struct Entry {
    /// Generation of the handle that names the current (or next) occupant;
    /// never 0, so that a handle is never 0.
    generation: u32,
    series: Option<Arc<MemSeries>>,
}

impl Default for SeriesTable {
    fn default() -> Self {
        SeriesTable {
            shards: (0..N_SHARDS).map(|_| RwLock::default()).collect(),
        }
    }
}

impl SeriesTable {
    /// Stores the series `make` builds from its new handle, in the shard
    /// picked by `spread` (any well-mixed number, such as a label hash).
    /// `None` when that shard is full (2^28 live series in it).
    pub(crate) fn insert(
        &self,
        spread: u64,
        make: impl FnOnce(SeriesRef) -> Arc<MemSeries>,
    ) -> Option<Arc<MemSeries>> {
        let shard_no = (spread % N_SHARDS as u64) as usize;
        let mut shard = self.shards[shard_no].write();
        let index = match shard.free.pop() {
            Some(index) => index as usize,
            None if shard.entries.len() < MAX_INDEX => {
                shard.entries.push(Entry {
                    generation: 1,
                    series: None,
                });
                shard.entries.len() - 1
            }
            None => return None,
        };
        let entry = &mut shard.entries[index];
        let handle = handle(entry.generation, shard_no, index)?;
        let series = make(handle);
        entry.series = Some(Arc::clone(&series));
        Some(series)
    }

    /// The series `handle` names, unless it left the table.
    pub(crate) fn get(&self, handle: SeriesRef) -> Option<Arc<MemSeries>> {
        let (generation, shard, index) = split(handle);
        let shard = self.shards[shard].read();
        let entry = shard.entries.get(index)?;
        if entry.generation != generation {
            return None;
        }
        entry.series.clone()
    }

    /// Removes the series `handle` names; its handle is dead from now on.
    pub(crate) fn remove(&self, handle: SeriesRef) {
        let (generation, shard, index) = split(handle);
        let mut shard = self.shards[shard].write();
        let Some(entry) = shard.entries.get_mut(index) else {
            return;
        };
        if entry.generation != generation || entry.series.is_none() {
            return;
        }
        entry.series = None;
        // Wrapping after four billion reuses of one position is harmless:
        // a handle that old is long gone from every cache.
        entry.generation = entry.generation.checked_add(1).unwrap_or(1);
        shard.free.push(index as u32);
    }

    /// Calls `f` with every series (shard by shard, each under its read
    /// lock).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Arc<MemSeries>)) {
        for shard in self.shards.iter() {
            for series in shard
                .read()
                .entries
                .iter()
                .filter_map(|e| e.series.as_ref())
            {
                f(series);
            }
        }
    }
}

fn handle(generation: u32, shard: usize, index: usize) -> Option<SeriesRef> {
    let position = (index << SHARD_BITS) | shard;
    SeriesRef::new((u64::from(generation) << 32) | position as u64)
}

/// `(generation, shard, index)` of a handle.
fn split(handle: SeriesRef) -> (u32, usize, usize) {
    let raw = handle.get();
    let position = (raw & u64::from(u32::MAX)) as usize;
    (
        (raw >> 32) as u32,
        position % N_SHARDS,
        position >> SHARD_BITS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn series(handle: SeriesRef, wal_ref: u64) -> Arc<MemSeries> {
        let labels = Labels::from_pairs(&[("__name__", format!("s{wal_ref}"))]);
        Arc::new(MemSeries::new(
            SeriesRef::new(wal_ref).unwrap(),
            handle,
            labels,
            0,
        ))
    }

    #[test]
    fn handles_find_their_series_until_removed_and_are_never_reused() {
        let table = SeriesTable::default();
        let a = table.insert(3, |h| series(h, 1)).unwrap();
        let b = table.insert(3, |h| series(h, 2)).unwrap();
        let c = table.insert(4, |h| series(h, 3)).unwrap();
        for s in [&a, &b, &c] {
            assert!(Arc::ptr_eq(&table.get(s.handle).unwrap(), s));
        }
        table.remove(a.handle);
        assert!(table.get(a.handle).is_none());
        // The freed position is reused under a new generation: the old
        // handle still finds nothing.
        let d = table.insert(3, |h| series(h, 4)).unwrap();
        let position = |h| {
            let (_, shard, index) = split(h);
            (shard, index)
        };
        assert_eq!(position(d.handle), position(a.handle));
        assert_ne!(d.handle, a.handle);
        assert!(table.get(a.handle).is_none());
        assert!(Arc::ptr_eq(&table.get(d.handle).unwrap(), &d));
        // Removing through a dead handle does nothing.
        table.remove(a.handle);
        assert!(table.get(d.handle).is_some());
        let mut n = 0;
        table.for_each(|_| n += 1);
        assert_eq!(n, 3);
        // A handle the table never gave out.
        assert!(table.get(SeriesRef::new(u64::MAX).unwrap()).is_none());
        assert!(table.get(SeriesRef::new(9999).unwrap()).is_none());
    }
}
