//! The inverted index: postings (series ids per label pair, as roaring
//! bitmaps), the evaluation of label matchers into postings, and the
//! on-disk index file of a block.
//!
//! Matcher evaluation is written once against [`PostingsSource`], which the
//! head's [`MemPostings`] and a block's index reader both implement.
//!
//! The index file layout is documented in
//! [`tsdb/docs/format/index.md`](../../docs/format/index.md) and pinned by
//! the golden block in `tsdb/tests/format.rs`.

pub(crate) mod encoding;
pub mod postings;
mod reader;
mod writer;

use std::borrow::Cow;

use roaring::RoaringBitmap;

use crate::Result;
use crate::model::{Labels, MatchOp, Matcher};

pub use postings::{MemPostings, intersect, subtract, union};
pub use reader::IndexReader;
pub(crate) use reader::{FileBytes, map_file};
pub use writer::write_index;

/// First bytes of an index file ("SXIX").
pub(crate) const MAGIC: u32 = 0x5358_4958;
/// Version of the index format this code writes and reads.
pub(crate) const FORMAT_VERSION: u8 = 1;

/// Where one chunk of a series lives and which time it spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    /// Timestamp of the first sample.
    pub min_t: i64,
    /// Timestamp of the last sample.
    pub max_t: i64,
    /// Position of the chunk in the block's segment files: the segment
    /// number in the upper 32 bits, the byte offset in the lower 32.
    pub chunk_ref: u64,
}

/// One series entry of an index: its labels and its chunks in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSeries {
    pub labels: Labels,
    pub chunks: Vec<ChunkMeta>,
}

/// Where matcher evaluation looks up postings: a label pair → series ids
/// map with enumerable values.
pub trait PostingsSource {
    /// The series with label `name` equal to `value` (empty when none).
    ///
    /// # Errors
    /// Storage errors, such as a corrupted index.
    fn postings(&self, name: &str, value: &str) -> Result<Cow<'_, RoaringBitmap>>;

    /// The union of the postings of every value of label `name` for which
    /// `accept` returns true. Only values some series carries are offered,
    /// so the empty value never is.
    ///
    /// # Errors
    /// Storage errors, such as a corrupted index.
    fn postings_matching(
        &self,
        name: &str,
        accept: &mut dyn FnMut(&str) -> bool,
    ) -> Result<RoaringBitmap>;

    /// Every series.
    ///
    /// # Errors
    /// Storage errors, such as a corrupted index.
    fn all_postings(&self) -> Result<Cow<'_, RoaringBitmap>>;
}

/// The series matching all `matchers`, with Prometheus's semantics
/// (`tsdb/querier.go`, `PostingsForMatchers`): a missing label has the empty
/// value, so a matcher that matches the empty string also selects series
/// without the label. Such matchers subtract the series they reject instead
/// of intersecting; when every matcher matches the empty string, the result
/// starts from all series. No matchers select every series.
///
/// Equality matchers and regexes that are plain alternations of literals
/// (`a|b|c`) look up their values directly; other regexes enumerate the
/// label's values.
///
/// # Errors
/// Storage errors of `source`.
pub fn postings_for_matchers(
    source: &(impl PostingsSource + ?Sized),
    matchers: &[Matcher],
) -> Result<RoaringBitmap> {
    let mut keep: Vec<Cow<'_, RoaringBitmap>> = Vec::new();
    let mut remove: Vec<Cow<'_, RoaringBitmap>> = Vec::new();
    for m in matchers {
        let name = m.name();
        if m.matches_empty() {
            // Selects series without the label too: remove the series whose
            // value the matcher rejects.
            let rejected = match m.op() {
                MatchOp::NotEqual => source.postings(name, m.value())?,
                _ => Cow::Owned(source.postings_matching(name, &mut |v| !m.matches(v))?),
            };
            remove.push(rejected);
        } else {
            // Only series carrying an accepted value.
            let accepted = match (m.op(), literal_alternatives(m)) {
                (MatchOp::Equal, _) => source.postings(name, m.value())?,
                (MatchOp::RegexMatch, Some(values)) => {
                    let mut lists = Vec::with_capacity(values.len());
                    for value in values {
                        lists.push(source.postings(name, value)?);
                    }
                    Cow::Owned(union(&lists))
                }
                _ => Cow::Owned(source.postings_matching(name, &mut |v| m.matches(v))?),
            };
            if accepted.is_empty() {
                return Ok(RoaringBitmap::new());
            }
            keep.push(accepted);
        }
    }
    let base = if keep.is_empty() {
        source.all_postings()?.into_owned()
    } else {
        intersect(&keep)
    };
    Ok(subtract(base, &remove))
}

/// The alternatives of a `=~` regex that is only literals separated by `|`
/// (such as Grafana's multi-value variables `a|b|c`), or `None`.
fn literal_alternatives(m: &Matcher) -> Option<Vec<&str>> {
    if m.op() != MatchOp::RegexMatch {
        return None;
    }
    const META: &[char] = &[
        '\\', '.', '+', '*', '?', '(', ')', '[', ']', '{', '}', '^', '$',
    ];
    if m.value().contains(META) {
        return None;
    }
    Some(m.value().split('|').collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    /// Series 1.. in this order.
    fn index() -> MemPostings {
        let series: &[&[(&str, &str)]] = &[
            &[("n", "1")],
            &[("n", "1"), ("i", "a")],
            &[("n", "1"), ("i", "b")],
            &[("n", "2")],
            &[("n", "2.5")],
            &[("n", "1"), ("i", "\n")],
        ];
        let mut p = MemPostings::new();
        for (id, labels) in series.iter().enumerate() {
            p.add(id as u32 + 1, &Labels::from_pairs(labels));
        }
        p
    }

    #[track_caller]
    fn check(matchers: &[(&str, MatchOp, &str)], expected: &[u32]) {
        let matchers: Vec<Matcher> = matchers
            .iter()
            .map(|&(name, op, value)| Matcher::new(op, name, value).unwrap())
            .collect();
        let got: Vec<u32> = postings_for_matchers(&index(), &matchers)
            .unwrap()
            .iter()
            .collect();
        assert_eq!(got, expected, "{matchers:?}");
    }

    use MatchOp::{Equal as Eq, NotEqual as Ne, RegexMatch as Re, RegexNoMatch as Nre};

    // Cases follow Prometheus's `TestPostingsForMatchers`.
    #[test]
    fn equality_and_absent_labels() {
        check(&[], &[1, 2, 3, 4, 5, 6]);
        check(&[("n", Eq, "1")], &[1, 2, 3, 6]);
        check(&[("n", Eq, "1"), ("i", Eq, "a")], &[2]);
        check(&[("n", Eq, "1"), ("i", Eq, "missing")], &[]);
        check(&[("missing", Eq, "")], &[1, 2, 3, 4, 5, 6]);
        check(&[("n", Eq, "1"), ("i", Eq, "")], &[1]);
        check(&[("n", Eq, "1"), ("i", Ne, "")], &[2, 3, 6]);
        check(&[("n", Ne, "1")], &[4, 5]);
        check(&[("i", Ne, "a")], &[1, 3, 4, 5, 6]);
        check(&[("n", Eq, "1"), ("i", Ne, "a")], &[1, 3, 6]);
    }

    #[test]
    fn regex_matchers() {
        check(&[("n", Re, "^1$")], &[1, 2, 3, 6]); // redundant anchors are harmless
        check(&[("n", Re, "1")], &[1, 2, 3, 6]);
        check(&[("n", Re, "2.*")], &[4, 5]);
        check(&[("n", Re, "1|2")], &[1, 2, 3, 4, 6]);
        check(&[("n", Re, "1|2.5")], &[1, 2, 3, 5, 6]);
        check(&[("n", Eq, "1"), ("i", Re, "a|b")], &[2, 3]);
        check(&[("n", Eq, "1"), ("i", Re, "")], &[1]);
        check(&[("n", Eq, "1"), ("i", Re, "a|")], &[1, 2]);
        check(&[("n", Eq, "1"), ("i", Re, ".*")], &[1, 2, 3, 6]);
        check(&[("n", Eq, "1"), ("i", Re, ".+")], &[2, 3, 6]);
        check(&[("n", Eq, "1"), ("i", Nre, "")], &[2, 3, 6]);
        check(&[("n", Eq, "1"), ("i", Nre, "a")], &[1, 3, 6]);
        check(&[("n", Eq, "1"), ("i", Nre, "a|")], &[3, 6]);
        check(&[("n", Eq, "1"), ("i", Nre, ".*")], &[]);
        check(&[("n", Eq, "1"), ("i", Nre, ".+")], &[1]);
        check(&[("i", Re, "a|b"), ("i", Ne, "b")], &[2]);
        check(&[("i", Nre, "a"), ("n", Nre, "2.*")], &[1, 3, 6]);
    }

    #[test]
    fn literal_alternatives_only_for_plain_strings() {
        let m = |v: &str| Matcher::new(Re, "x", v).unwrap();
        assert_eq!(literal_alternatives(&m("a|b")), Some(vec!["a", "b"]));
        assert_eq!(literal_alternatives(&m("a.b")), None);
        assert_eq!(literal_alternatives(&m("a\\|b")), None);
    }
}
