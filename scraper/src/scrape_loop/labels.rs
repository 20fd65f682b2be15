//! From a parsed sample to the label set storage receives, as Prometheus's
//! `mutateSampleLabels` builds it: target labels merged under the
//! `honor_labels` rule, empty values dropped, invalid sets rejected.

use std::borrow::Cow;

use tsdb::model::{Label, Labels, METRIC_NAME};

use crate::exposition::Sample;

/// Why a sample's label set cannot be stored; fails the whole scrape, as in
/// Prometheus.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeriesError {
    #[error("label name {name:?} is not unique in {series}")]
    DuplicateLabel { name: String, series: String },
    #[error("invalid metric name or label names: {0}")]
    InvalidNames(String),
    #[error("no metric name (__name__ label) left after relabeling: {0}")]
    NoMetricName(String),
}

/// The sample's labels, `__name__` first, in written order, empty values
/// included.
fn scraped_pairs<'a>(sample: &'a Sample<'_>) -> Vec<(Cow<'a, str>, Cow<'a, str>)> {
    let mut pairs = Vec::with_capacity(8);
    pairs.push((Cow::Borrowed(METRIC_NAME), Cow::Borrowed(sample.name())));
    pairs.extend(sample.labels());
    pairs
}

/// Builds the labels of a scraped sample before metric relabeling:
/// - the sample's own labels (`le`/`quantile` normalized, see
///   [`Sample::labels`]); a repeated name fails;
/// - with `honor_labels`, each target label is added unless the sample has
///   that label (even with an empty value);
/// - without it, target labels win and a conflicting scraped label is kept
///   as `exported_<name>` (prefixed again while that name is taken; shorter
///   names are placed first);
/// - labels with empty values are dropped.
///
/// # Errors
/// [`SeriesError::DuplicateLabel`] for a repeated label name.
pub fn sample_labels(
    sample: &Sample<'_>,
    target: &Labels,
    honor_labels: bool,
) -> Result<Labels, SeriesError> {
    let mut pairs = scraped_pairs(sample);
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(SeriesError::DuplicateLabel {
            name: w[0].0.to_string(),
            series: sample.series().to_string(),
        });
    }
    let has = |pairs: &[(Cow<'_, str>, Cow<'_, str>)], name: &str| {
        pairs.binary_search_by(|(n, _)| n.as_ref().cmp(name)).ok()
    };
    let mut labels: Vec<Label> = Vec::with_capacity(pairs.len() + target.len());
    if honor_labels {
        for target_label in target {
            if has(&pairs, &target_label.name).is_none() {
                labels.push(target_label.clone());
            }
        }
        labels.extend(
            pairs
                .iter()
                .map(|(n, v)| Label::new(n.as_ref(), v.as_ref())),
        );
        return Ok(Labels::new(labels));
    }
    let mut conflicts: Vec<(&str, &str)> = Vec::new();
    for target_label in target {
        if let Some(i) = has(&pairs, &target_label.name)
            && !pairs[i].1.is_empty()
        {
            conflicts.push((&target_label.name, &pairs[i].1));
        }
    }
    let mut builder = Labels::new(
        pairs
            .iter()
            .map(|(n, v)| Label::new(n.as_ref(), v.as_ref()))
            .collect(),
    )
    .builder();
    for target_label in target {
        builder.set_mut(target_label.name.clone(), target_label.value.clone());
    }
    conflicts.sort_by_key(|(name, _)| name.len());
    for (name, value) in conflicts {
        let mut exported = format!("exported_{name}");
        while builder.get(&exported).is_some_and(|v| !v.is_empty()) {
            exported.insert_str(0, "exported_");
        }
        builder.set_mut(exported, value);
    }
    Ok(builder.build())
}

/// Prometheus's check on a final label set: a non-empty metric name and
/// non-empty label names (UTF-8 validity holds by construction).
///
/// # Errors
/// [`SeriesError::NoMetricName`] or [`SeriesError::InvalidNames`].
pub fn check_labels(labels: &Labels) -> Result<(), SeriesError> {
    if labels.metric_name().is_none() {
        return Err(SeriesError::NoMetricName(labels.to_string()));
    }
    if labels.iter().any(|l| l.name.is_empty()) {
        return Err(SeriesError::InvalidNames(labels.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::{Entry, Format, Parser};

    fn labels_of(line: &str, target: &Labels, honor: bool) -> Result<String, SeriesError> {
        let mut parser = Parser::new(line.as_bytes(), Format::Text);
        let Some(Ok(Entry::Sample(sample))) = parser.next() else {
            panic!("not a sample: {line}");
        };
        sample_labels(&sample, target, honor).map(|l| l.to_string())
    }

    fn target() -> Labels {
        Labels::from_pairs(&[("instance", "h:9100"), ("job", "node")])
    }

    #[test]
    fn target_labels_win_and_scraped_ones_are_exported() {
        let got = labels_of(
            r#"m{job="app",exported_job="old",instance="",x=""} 1"#,
            &target(),
            false,
        );
        assert_eq!(
            got.unwrap(),
            r#"{__name__="m", exported_exported_job="app", exported_job="old", instance="h:9100", job="node"}"#
        );
    }

    #[test]
    fn honor_labels_keeps_scraped_labels_even_empty_ones() {
        let got = labels_of(r#"m{job="app",instance=""} 1"#, &target(), true);
        assert_eq!(got.unwrap(), r#"{__name__="m", job="app"}"#);
        let got = labels_of("m 1", &target(), true);
        assert_eq!(
            got.unwrap(),
            r#"{__name__="m", instance="h:9100", job="node"}"#
        );
    }

    #[test]
    fn repeated_label_names_fail() {
        let err = labels_of(r#"m{a="1",a="2"} 1"#, &Labels::empty(), false).unwrap_err();
        assert!(matches!(err, SeriesError::DuplicateLabel { name, .. } if name == "a"));
        let err = labels_of(r#"m{__name__="x"} 1"#, &Labels::empty(), false).unwrap_err();
        assert!(matches!(err, SeriesError::DuplicateLabel { name, .. } if name == "__name__"));
    }

    #[test]
    fn empty_names_are_invalid() {
        let labels = labels_of(r#"{"", a="b"} 1"#, &Labels::empty(), false).unwrap();
        assert_eq!(labels, r#"{a="b"}"#);
        let labels = Labels::from_pairs(&[("a", "b")]);
        assert!(matches!(
            check_labels(&labels),
            Err(SeriesError::NoMetricName(_))
        ));
        let labels = Labels::from_pairs(&[("__name__", "m"), ("", "b")]);
        assert!(matches!(
            check_labels(&labels),
            Err(SeriesError::InvalidNames(_))
        ));
    }
}
