//! Legend layout: columns of "line sample + label" entries under the plot,
//! labels truncated with "…" to fit, and "+N more" when the series do not.
//! Pure: text widths come from a `measure` function.

/// Width of the line sample in front of a label, pixels.
pub(crate) const SWATCH: u32 = 22;
/// Space between the sample and the label.
pub(crate) const GAP: u32 = 6;
/// Space between columns.
pub(crate) const COLUMN_PAD: u32 = 18;
/// Labels measured to size the columns; more series than this never fit.
const MEASURED: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub text: String,
    /// The series drawn in front of the text; `None` for "+N more".
    pub series: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Legend {
    /// Row by row, `columns` per row.
    pub entries: Vec<Entry>,
    pub columns: usize,
    pub column_width: u32,
}

impl Legend {
    pub fn rows(&self) -> usize {
        self.entries.len().div_ceil(self.columns.max(1))
    }
}

/// Lays out `labels` in `width` pixels and at most `max_rows` rows.
pub(crate) fn layout(
    labels: &[&str],
    width: u32,
    max_rows: usize,
    measure: impl Fn(&str) -> u32,
) -> Legend {
    let max_rows = max_rows.max(1);
    let widest = labels
        .iter()
        .take(MEASURED)
        .map(|label| measure(label))
        .max()
        .unwrap_or(0);
    let mut text_width = widest.min(width.saturating_sub(SWATCH + GAP)).max(1);
    if labels.len() > max_rows {
        // More series than rows: prefer two columns of truncated labels to
        // one column of whole ones.
        text_width = text_width.min((width / 2).saturating_sub(SWATCH + GAP + COLUMN_PAD).max(1));
    }
    let column_width = SWATCH + GAP + text_width + COLUMN_PAD;
    let columns = (((width + COLUMN_PAD) / column_width) as usize).max(1);
    let capacity = columns * max_rows;
    let shown = if labels.len() <= capacity {
        labels.len()
    } else {
        capacity - 1
    };
    let mut entries: Vec<Entry> = labels[..shown]
        .iter()
        .enumerate()
        .map(|(index, label)| Entry {
            text: truncate(label, text_width, &measure),
            series: Some(index),
        })
        .collect();
    if shown < labels.len() {
        entries.push(Entry {
            text: format!("+{} more", labels.len() - shown),
            series: None,
        });
    }
    Legend {
        entries,
        columns,
        column_width,
    }
}

/// `text` cut at a character boundary with "…" so it measures at most
/// `max_width`.
pub(crate) fn truncate(text: &str, max_width: u32, measure: impl Fn(&str) -> u32) -> String {
    if measure(text) <= max_width {
        return text.to_string();
    }
    let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    let with_ellipsis = |chars: usize| {
        let end = boundaries.get(chars).copied().unwrap_or(text.len());
        format!("{}…", &text[..end])
    };
    // The longest prefix that fits: binary search over the character count.
    let (mut fits, mut too_long) = (0, boundaries.len());
    while too_long - fits > 1 {
        let middle = (fits + too_long) / 2;
        if measure(&with_ellipsis(middle)) <= max_width {
            fits = middle;
        } else {
            too_long = middle;
        }
    }
    with_ellipsis(fits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seven_px(text: &str) -> u32 {
        7 * text.chars().count() as u32
    }

    #[test]
    fn few_short_labels_share_a_row() {
        let legend = layout(&["a", "bb", "ccc"], 600, 3, seven_px);
        assert_eq!(legend.entries.len(), 3);
        assert_eq!(
            legend.columns,
            ((600 + COLUMN_PAD) / (SWATCH + GAP + 21 + COLUMN_PAD)) as usize
        );
        assert_eq!(legend.rows(), 1);
        assert_eq!(
            legend.entries[2],
            Entry {
                text: "ccc".into(),
                series: Some(2)
            }
        );
    }

    #[test]
    fn too_many_series_end_with_plus_n_more() {
        let labels: Vec<String> = (0..100).map(|i| format!("series {i:03}")).collect();
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let legend = layout(&labels, 400, 2, seven_px);
        let capacity = legend.columns * 2;
        assert_eq!(legend.entries.len(), capacity);
        assert_eq!(legend.entries[capacity - 2].series, Some(capacity - 2));
        assert_eq!(
            legend.entries.last().unwrap(),
            &Entry {
                text: format!("+{} more", 100 - (capacity - 1)),
                series: None
            }
        );
    }

    #[test]
    fn long_labels_are_truncated_to_the_width() {
        let long = "x".repeat(500);
        let legend = layout(&[&long], 300, 3, seven_px);
        let text = &legend.entries[0].text;
        assert!(text.ends_with('…'));
        assert!(seven_px(text) <= 300 - SWATCH - GAP, "{text}");
        assert!(
            seven_px(text) + 7 > 300 - SWATCH - GAP,
            "{text} is not as long as fits"
        );
    }

    #[test]
    fn many_long_labels_get_two_columns() {
        let long: Vec<String> = (0..10).map(|i| format!("{i}{}", "y".repeat(200))).collect();
        let labels: Vec<&str> = long.iter().map(String::as_str).collect();
        let legend = layout(&labels, 800, 3, seven_px);
        assert_eq!(legend.columns, 2);
        assert_eq!(legend.entries.len(), 6);
        assert_eq!(legend.entries[5].text, "+5 more");
    }

    #[test]
    fn truncation_respects_multibyte_characters() {
        assert_eq!(truncate("αβγδε", 21, seven_px), "αβ…");
        assert_eq!(truncate("αβγ", 21, seven_px), "αβγ");
        assert_eq!(truncate("αβγδ", 3, seven_px), "…");
    }

    #[test]
    fn no_labels_no_entries() {
        let legend = layout(&[], 300, 3, seven_px);
        assert!(legend.entries.is_empty());
        assert_eq!(legend.rows(), 0);
    }
}
