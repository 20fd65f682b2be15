//! `sextant check metrics`: validation with the reference parsers' rules, plus
//! the naming lints of Prometheus's `promlint` (what `promtool check metrics`
//! reports).
//!
//! The family rules are those of the Go `expfmt` text parser (text format)
//! and of the OpenMetrics reference parser (OpenMetrics): metadata placement
//! and repetition, clashing names, sample names per type, counter-like values
//! that must not be negative or NaN, histogram bucket order and `+Inf`,
//! summary quantiles, grouping of a family's metric points, and exemplar
//! placement and size. They are stricter than what a scrape accepts; see
//! `docs/format/exposition.md`.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::parser::{LabelPairs, Parser, Sample};
use super::{Entry, Format, MetricType, ParseError};

/// Longest exemplar label set OpenMetrics allows, in code points of names
/// and values together.
const EXEMPLAR_MAX_CODE_POINTS: usize = 128;

/// A naming or metadata problem `promlint` would report.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub metric: String,
    pub text: String,
}

/// Does the body end with an OpenMetrics `# EOF` line? (A text-format body
/// may too: there it is a comment.)
fn ends_with_eof(body: &[u8]) -> bool {
    let trimmed = body.strip_suffix(b"\n").unwrap_or(body);
    let last_line = trimmed.rsplit(|&b| b == b'\n').next().unwrap_or_default();
    last_line == b"# EOF"
}

/// Validates `body` with the reference parsers' rules.
///
/// # Errors
/// The first syntax or family-rule violation, with its line.
pub fn validate(body: &[u8], format: Format) -> Result<(), ParseError> {
    families(body, format).map(|_| ())
}

/// Validates `body` and lints it like `promtool check metrics`: an error for
/// an invalid exposition, otherwise the problems sorted by metric and text
/// (empty when the exposition is clean).
///
/// # Errors
/// The first syntax or family-rule violation, with its line.
pub fn check(body: &[u8], format: Format) -> Result<Vec<Problem>, ParseError> {
    let families = families(body, format)?;
    let mut problems = Vec::new();
    for family in &families {
        lint_family(family, format, &mut problems);
    }
    // Sorted like promlint's output; like it, one problem per offending
    // metric, repeats included.
    problems.sort();
    Ok(problems)
}

/// [`check`] for a body of unknown format, such as a file: OpenMetrics when
/// it ends with `# EOF` and is valid OpenMetrics, otherwise the text format
/// (where `# EOF` is just a comment). Returns the format used.
///
/// # Errors
/// The first violation; for a body ending with `# EOF` that is valid in
/// neither format, the OpenMetrics one.
pub fn check_detected(body: &[u8]) -> Result<(Format, Vec<Problem>), ParseError> {
    if ends_with_eof(body) {
        match check(body, Format::OpenMetrics) {
            Ok(problems) => return Ok((Format::OpenMetrics, problems)),
            Err(om_error) => {
                return check(body, Format::Text)
                    .map(|problems| (Format::Text, problems))
                    .map_err(|_| om_error);
            }
        }
    }
    check(body, Format::Text).map(|problems| (Format::Text, problems))
}

/// What the lints need to know about a family.
#[derive(Debug, Default)]
struct FamilySummary {
    name: String,
    kind: MetricType,
    has_help: bool,
    /// The label names of each metric of the family (a metric is a label set
    /// without `le` for buckets and `quantile` for summary quantiles, as in
    /// `expfmt`'s metric families); `promlint` reports per metric.
    metrics: Vec<Vec<String>>,
}

/// The metrics of a family: identity labels -> label names.
type Metrics = HashMap<Vec<(String, String)>, Vec<String>>;

/// Files a sample's labels under its metric.
fn add_metric(metrics: &mut Metrics, labels: &[(String, String)], point_label: Option<&str>) {
    let identity: Vec<(String, String)> = labels
        .iter()
        .filter(|(n, _)| Some(n.as_str()) != point_label)
        .cloned()
        .collect();
    metrics
        .entry(identity)
        .or_insert_with_key(|identity| identity.iter().map(|(n, _)| n.clone()).collect());
}

fn families(body: &[u8], format: Format) -> Result<Vec<FamilySummary>, ParseError> {
    let mut parser = Parser::strict(body, format);
    match format {
        Format::Text => TextChecker::default().run(&mut parser),
        Format::OpenMetrics => OpenMetricsChecker::default().run(&mut parser),
    }
}

fn rule_error(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

/// The label pairs of a sample, sorted by name, rejecting repeated names.
fn sorted_labels(line: usize, pairs: LabelPairs<'_>) -> Result<Vec<(String, String)>, ParseError> {
    let mut labels: Vec<(String, String)> = pairs
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    labels.sort();
    if let Some(w) = labels.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(rule_error(
            line,
            format!("label name {:?} is repeated", w[0].0),
        ));
    }
    Ok(labels)
}

fn label<'l>(labels: &'l [(String, String)], name: &str) -> Option<&'l str> {
    labels
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The family rules of the Go `expfmt` text parser.
#[derive(Default)]
struct TextChecker {
    families: BTreeMap<String, TextFamily>,
}

#[derive(Default)]
struct TextFamily {
    kind: Option<MetricType>,
    has_help: bool,
    metrics: Metrics,
}

impl TextChecker {
    fn run(mut self, parser: &mut Parser<'_>) -> Result<Vec<FamilySummary>, ParseError> {
        loop {
            let line = parser.line();
            let Some(entry) = parser.next() else { break };
            match entry? {
                Entry::Help { metric, .. } => {
                    let family = self.families.entry(metric.to_string()).or_default();
                    if family.has_help {
                        return Err(rule_error(
                            line,
                            format!("second HELP line for metric name {metric:?}"),
                        ));
                    }
                    family.has_help = true;
                }
                Entry::Type { metric, kind } => {
                    let family = self.families.entry(metric.to_string()).or_default();
                    if family.kind.is_some() {
                        return Err(rule_error(
                            line,
                            format!(
                                "second TYPE line for metric name {metric:?}, or TYPE reported after samples"
                            ),
                        ));
                    }
                    family.kind = Some(kind);
                }
                Entry::Unit { .. } | Entry::Comment(_) => {}
                Entry::Sample(sample) => self.sample(&sample)?,
            }
        }
        Ok(self
            .families
            .into_iter()
            .map(|(name, f)| FamilySummary {
                name,
                kind: f.kind.unwrap_or_default(),
                has_help: f.has_help,
                metrics: f.metrics.into_values().collect(),
            })
            .collect())
    }

    fn sample(&mut self, sample: &Sample<'_>) -> Result<(), ParseError> {
        let line = sample.line;
        let labels = sorted_labels(line, sample.raw_labels())?;
        if label(&labels, "__name__").is_some() {
            return Err(rule_error(line, "label name \"__name__\" is reserved"));
        }
        let name = sample.name();
        // `expfmt` files `x_sum`, `x_count` and `x_bucket` under `x` when `x`
        // is a summary or histogram.
        let mut family_name = name;
        let mut suffix = "";
        for candidate in ["_sum", "_count", "_bucket"] {
            if let Some(base) = name.strip_suffix(candidate) {
                let kind = self.families.get(base).and_then(|f| f.kind);
                let fits = match candidate {
                    "_bucket" => kind == Some(MetricType::Histogram),
                    _ => matches!(kind, Some(MetricType::Histogram | MetricType::Summary)),
                };
                if fits {
                    family_name = base;
                    suffix = candidate;
                }
            }
        }
        let family = self.families.entry(family_name.to_string()).or_default();
        let kind = *family.kind.get_or_insert(MetricType::Unknown);
        let float_label = match (kind, suffix) {
            (MetricType::Summary, "") => Some("quantile"),
            (MetricType::Histogram, "_bucket") => Some("le"),
            _ => None,
        };
        add_metric(&mut family.metrics, &labels, float_label);
        if let Some(float_label) = float_label
            && let Some(value) = label(&labels, float_label)
            && super::float::parse_go_float_label(value).is_none()
        {
            return Err(rule_error(
                line,
                format!("expected float as value for {float_label:?} label, got {value:?}"),
            ));
        }
        Ok(())
    }
}

/// The family rules of the OpenMetrics reference parser.
#[derive(Default)]
struct OpenMetricsChecker {
    /// Sample names every finished family has claimed.
    seen_names: HashSet<String>,
    current: Option<OmFamily>,
    summaries: Vec<FamilySummary>,
}

struct OmFamily {
    name: String,
    kind: Option<MetricType>,
    help: bool,
    unit: Option<String>,
    /// The line of the family's first entry.
    line: usize,
    samples: Vec<OmSample>,
    /// Grouping state: the current group, its timestamp, groups seen.
    group: Option<Vec<(String, String)>>,
    group_timestamp: Option<i64>,
    seen_groups: HashSet<Vec<(String, String)>>,
    metrics: Metrics,
}

/// What the histogram checks need of a sample.
struct OmSample {
    line: usize,
    suffix: String,
    group: Vec<(String, String)>,
    timestamp: Option<i64>,
    le: Option<f64>,
    value: f64,
}

impl OmFamily {
    fn new(name: &str, line: usize) -> Self {
        OmFamily {
            name: name.to_string(),
            kind: None,
            help: false,
            unit: None,
            line,
            samples: Vec::new(),
            group: None,
            group_timestamp: None,
            seen_groups: HashSet::new(),
            metrics: Metrics::new(),
        }
    }

    fn kind(&self) -> MetricType {
        self.kind.unwrap_or_default()
    }

    /// The sample names this family's type allows.
    fn suffixes(&self) -> &'static [&'static str] {
        match self.kind() {
            MetricType::Counter => &["_total", "_created"],
            MetricType::Summary => &["_count", "_sum", "_created", ""],
            MetricType::Histogram => &["_count", "_sum", "_bucket", "_created"],
            MetricType::GaugeHistogram => &["_gcount", "_gsum", "_bucket"],
            MetricType::Info => &["_info"],
            MetricType::Gauge | MetricType::StateSet | MetricType::Unknown => &[""],
        }
    }

    fn suffix_of<'n>(&self, sample_name: &'n str) -> Option<&'n str> {
        let suffix = sample_name.strip_prefix(self.name.as_str())?;
        self.suffixes().contains(&suffix).then_some(suffix)
    }
}

impl OpenMetricsChecker {
    fn run(mut self, parser: &mut Parser<'_>) -> Result<Vec<FamilySummary>, ParseError> {
        loop {
            let line = parser.line();
            let Some(entry) = parser.next() else { break };
            match entry? {
                Entry::Help { metric, .. } => {
                    let family = self.metadata_family(&metric, line)?;
                    if family.help {
                        return Err(rule_error(
                            line,
                            format!("more than one HELP for metric {metric:?}"),
                        ));
                    }
                    family.help = true;
                }
                Entry::Type { metric, kind } => {
                    let family = self.metadata_family(&metric, line)?;
                    if family.kind.is_some() {
                        return Err(rule_error(
                            line,
                            format!("more than one TYPE for metric {metric:?}"),
                        ));
                    }
                    family.kind = Some(kind);
                }
                Entry::Unit { metric, unit } => {
                    let family = self.metadata_family(&metric, line)?;
                    if family.unit.is_some() {
                        return Err(rule_error(
                            line,
                            format!("more than one UNIT for metric {metric:?}"),
                        ));
                    }
                    family.unit = Some(unit.into_owned());
                }
                Entry::Comment(_) => {}
                Entry::Sample(sample) => self.sample(&sample)?,
            }
        }
        if let Some(family) = self.current.take() {
            self.finish(family)?;
        }
        Ok(self.summaries)
    }

    /// The family a metadata line belongs to, starting a new one when the name
    /// changes.
    fn metadata_family(&mut self, name: &str, line: usize) -> Result<&mut OmFamily, ParseError> {
        if self.current.as_ref().is_none_or(|f| f.name != name) {
            if let Some(done) = self.current.take() {
                self.finish(done)?;
            }
            self.current = Some(OmFamily::new(name, line));
        }
        let family = self
            .current
            .get_or_insert_with(|| OmFamily::new(name, line));
        if !family.samples.is_empty() {
            return Err(rule_error(
                line,
                format!("metadata for {name:?} after its samples"),
            ));
        }
        Ok(family)
    }

    fn sample(&mut self, sample: &Sample<'_>) -> Result<(), ParseError> {
        let line = sample.line;
        let name = sample.name();
        if self
            .current
            .as_ref()
            .is_none_or(|f| f.suffix_of(name).is_none())
        {
            if let Some(done) = self.current.take() {
                self.finish(done)?;
            }
            self.current = Some(OmFamily::new(name, line));
        }
        let Some(family) = self.current.as_mut() else {
            return Ok(());
        };
        let suffix = family.suffix_of(name).unwrap_or_default().to_string();
        let kind = family.kind();
        let labels = sorted_labels(line, sample.raw_labels())?;
        let point_label = match (kind, suffix.as_str()) {
            (MetricType::Summary, "") => Some("quantile"),
            (MetricType::Histogram | MetricType::GaugeHistogram, "_bucket") => Some("le"),
            _ => None,
        };
        add_metric(&mut family.metrics, &labels, point_label);
        let value = sample.value;

        // Values by type and sample name.
        let counter_like = match kind {
            MetricType::Counter => suffix == "_total",
            MetricType::Histogram => matches!(suffix.as_str(), "_bucket" | "_count" | "_sum"),
            MetricType::Summary => matches!(suffix.as_str(), "_count" | "_sum"),
            MetricType::GaugeHistogram => {
                matches!(suffix.as_str(), "_bucket" | "_gcount" | "_gsum")
            }
            _ => false,
        };
        if counter_like && value.is_nan() {
            return Err(rule_error(
                line,
                format!("counter-like sample {name} cannot be NaN"),
            ));
        }
        if counter_like && suffix != "_gsum" && value < 0.0 {
            return Err(rule_error(
                line,
                format!("counter-like sample {name} cannot be negative"),
            ));
        }
        let mut le = None;
        match (kind, suffix.as_str()) {
            (MetricType::Info, _) if value != 1.0 => {
                return Err(rule_error(
                    line,
                    format!("info metric {name} must have value 1"),
                ));
            }
            (MetricType::StateSet, _) => {
                if value != 0.0 && value != 1.0 {
                    return Err(rule_error(
                        line,
                        format!("stateset {name} must have value 0 or 1"),
                    ));
                }
                if label(&labels, &family.name).is_none() {
                    return Err(rule_error(
                        line,
                        format!("stateset {name} lacks the label {:?}", family.name),
                    ));
                }
            }
            (MetricType::Summary, "") => {
                let quantile = label(&labels, "quantile")
                    .and_then(super::float::parse_go_float_label)
                    .filter(|q| (0.0..=1.0).contains(q));
                if quantile.is_none() {
                    return Err(rule_error(
                        line,
                        format!("summary {name} needs a quantile label between 0 and 1"),
                    ));
                }
                if value < 0.0 {
                    return Err(rule_error(
                        line,
                        format!("quantile value of {name} cannot be negative"),
                    ));
                }
            }
            (MetricType::Histogram | MetricType::GaugeHistogram, "_bucket") => {
                let bound = label(&labels, "le")
                    .ok_or_else(|| rule_error(line, format!("bucket {name} lacks an le label")))?;
                let parsed = super::float::parse_go_float_label(bound)
                    .filter(|b| !b.is_infinite() || matches!(bound, "+Inf" | "-Inf"));
                match parsed {
                    Some(b) if !b.is_nan() => le = Some(b),
                    _ => return Err(rule_error(line, format!("invalid le label {bound:?}"))),
                }
            }
            _ => {}
        }

        // Exemplars: only on counter totals and buckets, and small.
        if let Some(exemplar) = &sample.exemplar {
            let allowed = matches!(
                (kind, suffix.as_str()),
                (MetricType::Counter, "_total")
                    | (
                        MetricType::Histogram | MetricType::GaugeHistogram,
                        "_bucket"
                    )
            );
            if !allowed {
                return Err(rule_error(line, format!("exemplar not allowed on {name}")));
            }
            let code_points: usize = exemplar
                .labels()
                .map(|(n, v)| n.chars().count() + v.chars().count())
                .sum();
            if code_points > EXEMPLAR_MAX_CODE_POINTS {
                return Err(rule_error(
                    line,
                    format!(
                        "exemplar labels have {code_points} code points, more than {EXEMPLAR_MAX_CODE_POINTS}"
                    ),
                ));
            }
            sorted_labels(line, exemplar.labels())?;
        }

        // Grouping: a metric's points are contiguous, timestamps never go
        // back within a metric, and a metric either always or never has them.
        let group = group_for_sample(kind, &family.name, &suffix, &labels);
        if family.group.as_ref().is_some_and(|g| *g != group) && family.seen_groups.contains(&group)
        {
            return Err(rule_error(
                line,
                format!("invalid metric grouping: {name} interleaved with other metrics"),
            ));
        }
        if family.group.as_ref() == Some(&group)
            && family.group_timestamp.is_some() != sample.timestamp.is_some()
        {
            return Err(rule_error(
                line,
                format!("mix of timestamp presence within a metric of {name}"),
            ));
        }
        if family.group.as_ref() == Some(&group)
            && kind != MetricType::Info
            && let (Some(before), Some(now)) = (family.group_timestamp, sample.timestamp)
            && now < before
        {
            return Err(rule_error(
                line,
                format!("timestamps went backwards within a metric of {name}"),
            ));
        }
        family.seen_groups.insert(group.clone());
        family.group = Some(group.clone());
        family.group_timestamp = sample.timestamp;
        family.samples.push(OmSample {
            line,
            suffix,
            group,
            timestamp: sample.timestamp,
            le,
            value,
        });
        Ok(())
    }

    fn finish(&mut self, family: OmFamily) -> Result<(), ParseError> {
        let line = family.samples.first().map_or(family.line, |s| s.line);
        let mut suffixes: Vec<&str> = family.suffixes().to_vec();
        if !suffixes.contains(&"") {
            suffixes.push("");
        }
        for suffix in suffixes {
            let claimed = format!("{}{suffix}", family.name);
            if !self.seen_names.insert(claimed.clone()) {
                return Err(rule_error(line, format!("clashing name: {claimed}")));
            }
        }
        if let Some(unit) = family.unit.as_deref().filter(|u| !u.is_empty()) {
            if !family.name.ends_with(&format!("_{unit}")) {
                return Err(rule_error(
                    line,
                    format!("unit {unit:?} does not match metric name {:?}", family.name),
                ));
            }
            if matches!(family.kind(), MetricType::Info | MetricType::StateSet) {
                return Err(rule_error(
                    line,
                    format!("units are not allowed for {:?}", family.name),
                ));
            }
        }
        if matches!(
            family.kind(),
            MetricType::Histogram | MetricType::GaugeHistogram
        ) {
            check_histogram(&family)?;
        }
        self.summaries.push(FamilySummary {
            name: family.name,
            kind: family.kind.unwrap_or_default(),
            has_help: family.help,
            metrics: family.metrics.into_values().collect(),
        });
        Ok(())
    }
}

/// The labels that identify a metric (as opposed to one point of it) in
/// OpenMetrics: without `le` for buckets, `quantile` for summary quantiles,
/// the state label for statesets; info metrics are one group.
fn group_for_sample(
    kind: MetricType,
    family: &str,
    suffix: &str,
    labels: &[(String, String)],
) -> Vec<(String, String)> {
    let without = |drop: &str| labels.iter().filter(|(n, _)| n != drop).cloned().collect();
    match (kind, suffix) {
        (MetricType::Info, _) => Vec::new(),
        (MetricType::Summary, "") => without("quantile"),
        (MetricType::StateSet, _) => without(family),
        (MetricType::Histogram | MetricType::GaugeHistogram, "_bucket") => without("le"),
        _ => labels.to_vec(),
    }
}

/// The OpenMetrics histogram rules, per metric point: buckets ascending with
/// non-decreasing counts ending at `+Inf`, `_count` equal to the `+Inf`
/// bucket, `_sum`/`_gsum` only together with `_count`/`_gcount`, no `_sum`
/// with negative buckets, and a negative `_gsum` only with negative buckets.
fn check_histogram(family: &OmFamily) -> Result<(), ParseError> {
    /// One metric point: its identity and what was seen of it.
    #[derive(Default)]
    struct Point<'g> {
        group: &'g [(String, String)],
        timestamp: Option<i64>,
        line: usize,
        bucket: Option<f64>,
        bucket_value: f64,
        count: Option<f64>,
        has_sum: bool,
        has_gsum: bool,
        negative_gsum: bool,
        negative_buckets: bool,
    }
    let name = &family.name;
    let finish = |p: &Point<'_>| -> Result<(), ParseError> {
        let fail = |msg: String| Err(rule_error(p.line, msg));
        if p.bucket != Some(f64::INFINITY) {
            return fail(format!("+Inf bucket missing: {name}"));
        }
        if p.count.is_some_and(|c| c != p.bucket_value) {
            return fail(format!("count does not match the +Inf bucket: {name}"));
        }
        if p.has_sum && p.count.is_none() {
            return fail(format!("_count must be present if _sum is present: {name}"));
        }
        if p.has_gsum && p.count.is_none() {
            return fail(format!(
                "_gcount must be present if _gsum is present: {name}"
            ));
        }
        if !(p.has_sum || p.has_gsum) && p.count.is_some() {
            return fail(format!(
                "_sum/_gsum must be present if _count is present: {name}"
            ));
        }
        if p.negative_buckets && p.has_sum {
            return fail(format!("cannot have _sum with negative buckets: {name}"));
        }
        if !p.negative_buckets && p.negative_gsum {
            return fail(format!(
                "cannot have negative _gsum with non-negative buckets: {name}"
            ));
        }
        Ok(())
    };
    let mut point: Option<Point<'_>> = None;
    for s in &family.samples {
        if s.suffix.is_empty() || s.suffix == "_created" {
            continue;
        }
        let same = point
            .as_ref()
            .is_some_and(|p| p.group == s.group.as_slice() && p.timestamp == s.timestamp);
        if !same {
            if let Some(p) = &point {
                finish(p)?;
            }
            point = Some(Point {
                group: &s.group,
                timestamp: s.timestamp,
                line: s.line,
                ..Point::default()
            });
        }
        let Some(p) = point.as_mut() else { continue };
        match s.suffix.as_str() {
            "_bucket" => {
                let b = s.le.unwrap_or(f64::NAN);
                if b < 0.0 {
                    p.negative_buckets = true;
                }
                if p.bucket.is_some_and(|prev| b <= prev) {
                    return Err(rule_error(s.line, format!("buckets out of order: {name}")));
                }
                if s.value < p.bucket_value {
                    return Err(rule_error(
                        s.line,
                        format!("bucket values out of order: {name}"),
                    ));
                }
                p.bucket = Some(b);
                p.bucket_value = s.value;
            }
            "_count" | "_gcount" => p.count = Some(s.value),
            "_sum" => p.has_sum = true,
            "_gsum" => {
                p.has_gsum = true;
                p.negative_gsum |= s.value < 0.0;
            }
            _ => {}
        }
    }
    if let Some(p) = &point {
        finish(p)?;
    }
    Ok(())
}

/// Units `promlint` knows, with their base unit.
const UNITS: &[(&str, &str)] = &[
    ("amperes", "amperes"),
    ("bytes", "bytes"),
    ("celsius", "celsius"),
    ("grams", "grams"),
    ("joules", "joules"),
    ("kelvin", "kelvin"),
    ("meters", "meters"),
    ("metres", "metres"),
    ("seconds", "seconds"),
    ("volts", "volts"),
    ("minutes", "seconds"),
    ("hours", "seconds"),
    ("days", "seconds"),
    ("weeks", "seconds"),
    ("kelvins", "kelvin"),
    ("fahrenheit", "celsius"),
    ("rankine", "celsius"),
    ("inches", "meters"),
    ("yards", "meters"),
    ("miles", "meters"),
    ("bits", "bytes"),
    ("calories", "joules"),
    ("pounds", "grams"),
    ("ounces", "grams"),
];

const UNIT_PREFIXES: &[&str] = &[
    "pico", "nano", "micro", "milli", "centi", "deci", "deca", "hecto", "kilo", "kibi", "mega",
    "mibi", "giga", "gibi", "tera", "tebi", "peta", "pebi",
];

const UNIT_ABBREVIATIONS: &[&str] = &[
    "s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d",
];

/// The first `_`-separated part of `name` that is a known unit, possibly
/// prefixed: `(unit, base unit)`.
fn metric_unit(name: &str) -> Option<(&str, &'static str)> {
    for part in name.split('_') {
        if let Some((_, base)) = UNITS.iter().find(|(u, _)| *u == part) {
            return Some((part, base));
        }
        for prefix in UNIT_PREFIXES {
            if let Some(rest) = part.strip_prefix(prefix)
                && let Some((_, base)) = UNITS.iter().find(|(u, _)| *u == rest)
            {
                return Some((part, base));
            }
        }
    }
    None
}

/// `[a-z][A-Z]` somewhere in `s`.
fn is_camel_case(s: &str) -> bool {
    s.as_bytes()
        .windows(2)
        .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase())
}

fn has_part(lower_name: &str, part: &str) -> bool {
    lower_name.contains(&format!("_{part}_")) || lower_name.ends_with(&format!("_{part}"))
}

/// `promlint`'s rules for one family.
fn lint_family(family: &FamilySummary, format: Format, problems: &mut Vec<Problem>) {
    let name = family.name.as_str();
    let mut report = |text: String| {
        problems.push(Problem {
            metric: name.to_string(),
            text,
        });
    };
    if !family.has_help {
        report("no help text".into());
    }
    if let Some((unit, base)) = metric_unit(name)
        && unit != base
    {
        report(format!("use base unit {base:?} instead of {unit:?}"));
    }
    let kind = family.kind;
    let untyped = kind == MetricType::Unknown;
    let has_total = name.ends_with("_total");
    // OpenMetrics counter families are named without `_total`; their samples
    // carry it.
    if kind == MetricType::Counter && !has_total && format == Format::Text {
        report("counter metrics should have \"_total\" suffix".into());
    }
    if !untyped && kind != MetricType::Counter && has_total {
        report("non-counter metrics should not have \"_total\" suffix".into());
    }
    if !untyped {
        let histogram = matches!(kind, MetricType::Histogram | MetricType::GaugeHistogram);
        let summary = kind == MetricType::Summary;
        if !histogram && name.ends_with("_bucket") {
            report("non-histogram metrics should not have \"_bucket\" suffix".into());
        }
        if !histogram && !summary && name.ends_with("_count") {
            report(
                "non-histogram and non-summary metrics should not have \"_count\" suffix".into(),
            );
        }
        if !histogram && !summary && name.ends_with("_sum") {
            report("non-histogram and non-summary metrics should not have \"_sum\" suffix".into());
        }
        for label in family.metrics.iter().flatten() {
            if !histogram && label == "le" {
                report("non-histogram metrics should not have \"le\" label".into());
            }
            if !summary && label == "quantile" {
                report("non-summary metrics should not have \"quantile\" label".into());
            }
        }
    }
    let lower = name.to_ascii_lowercase();
    for typename in [
        "counter",
        "gauge",
        "summary",
        "histogram",
        "gauge_histogram",
    ] {
        if has_part(&lower, typename) {
            report(format!("metric name should not include type '{typename}'"));
        }
    }
    if name.contains(':') {
        report("metric names should not contain ':'".into());
    }
    if is_camel_case(name) {
        report("metric names should be written in 'snake_case' not 'camelCase'".into());
    }
    for label in family.metrics.iter().flatten() {
        if is_camel_case(label) {
            report("label names should be written in 'snake_case' not 'camelCase'".into());
        }
    }
    if UNIT_ABBREVIATIONS.iter().any(|a| has_part(&lower, a)) {
        report("metric names should not contain abbreviated units".into());
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn check_lint(body: &str, expect: Expect) {
        let out = match check_detected(body.as_bytes()) {
            Ok((_, problems)) => problems
                .iter()
                .map(|p| format!("{} {}\n", p.metric, p.text))
                .collect::<String>(),
            Err(e) => format!("error: {e}\n"),
        };
        expect.assert_eq(&out);
    }

    #[test]
    fn promlint_rules() {
        check_lint(
            r#"# HELP requests Requests.
# TYPE requests counter
requests{camelLabel="x"} 1
# TYPE latency_ms gauge
latency_ms 1
# HELP job:up:sum Recorded.
# TYPE job:up:sum gauge
job:up:sum 1
# HELP thing_total Not a counter.
# TYPE thing_total gauge
thing_total 1
# HELP disk_kilobits Size.
# TYPE disk_kilobits gauge
disk_kilobits{le="1"} 1
# HELP queueSize Size.
# TYPE queueSize untyped
queueSize 1
# HELP my_gauge_count A gauge.
# TYPE my_gauge_count gauge
my_gauge_count{quantile="0.5"} 1
"#,
            expect![[r#"
                disk_kilobits non-histogram metrics should not have "le" label
                disk_kilobits use base unit "bytes" instead of "kilobits"
                job:up:sum metric names should not contain ':'
                latency_ms metric names should not contain abbreviated units
                latency_ms no help text
                my_gauge_count metric name should not include type 'gauge'
                my_gauge_count non-histogram and non-summary metrics should not have "_count" suffix
                my_gauge_count non-summary metrics should not have "quantile" label
                queueSize metric names should be written in 'snake_case' not 'camelCase'
                requests counter metrics should have "_total" suffix
                requests label names should be written in 'snake_case' not 'camelCase'
                thing_total non-counter metrics should not have "_total" suffix
            "#]],
        );
    }

    #[test]
    fn text_family_rules_follow_expfmt() {
        check_lint(
            "# HELP m one\n# HELP m two\n",
            expect![[r#"
                error: line 2: second HELP line for metric name "m"
            "#]],
        );
        check_lint(
            "m 1\n# TYPE m counter\n",
            expect![[r#"
                error: line 2: second TYPE line for metric name "m", or TYPE reported after samples
            "#]],
        );
        check_lint(
            "# TYPE h histogram\nh_bucket{le=\"x\"} 1\n",
            expect![[r#"
                error: line 2: expected float as value for "le" label, got "x"
            "#]],
        );
        // Summaries collect their _sum and _count; the HELP after samples is
        // fine for expfmt.
        check_lint(
            "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n# HELP s Latency.\n",
            expect![""],
        );
    }

    #[test]
    fn openmetrics_family_rules() {
        let cases = [
            "# TYPE a counter\na_total 1\na_created 1\n# TYPE b counter\nb_total 1 # {x=\"y\"} 1\n# EOF\n",
            "# TYPE a counter\na_total -1\n# EOF\n",
            "# TYPE a histogram\na_bucket{le=\"1\"} 2\na_bucket{le=\"+Inf\"} 1\n# EOF\n",
            "# TYPE a histogram\na_bucket{le=\"+Inf\"} 1\na_count 1\n# EOF\n",
            "# TYPE a gauge\na{x=\"1\"} 1\na{x=\"2\"} 1\na{x=\"1\"} 1\n# EOF\n",
            "# TYPE a gauge\na 1\n# TYPE a gauge\n# EOF\n",
            "# TYPE a info\na_info 2\n# EOF\n",
            "# TYPE a stateset\na{b=\"x\"} 1\n# EOF\n",
        ];
        let out: String = cases
            .iter()
            .map(|c| match validate(c.as_bytes(), Format::OpenMetrics) {
                Ok(()) => "ok\n".to_string(),
                Err(e) => format!("{e}\n"),
            })
            .collect();
        expect![[r#"
            ok
            line 2: counter-like sample a_total cannot be negative
            line 3: bucket values out of order: a
            line 2: _sum/_gsum must be present if _count is present: a
            line 4: invalid metric grouping: a interleaved with other metrics
            line 3: metadata for "a" after its samples
            line 2: info metric a_info must have value 1
            line 2: stateset a lacks the label "a"
        "#]]
        .assert_eq(&out);
    }

    #[test]
    fn detects_openmetrics_by_its_eof_and_validity() {
        let detect = |body: &[u8]| check_detected(body).map(|(f, _)| f);
        assert_eq!(
            detect(b"# HELP a A.\na 1\n# EOF\n"),
            Ok(Format::OpenMetrics)
        );
        assert_eq!(detect(b"# HELP a A.\na 1\n# EOF"), Ok(Format::OpenMetrics));
        assert_eq!(detect(b"# HELP a A.\na 1\n"), Ok(Format::Text));
        assert_eq!(detect(b""), Ok(Format::Text));
        // Not OpenMetrics (a family split by another), fine as text.
        assert_eq!(detect(b"a 1\nb 1\na{x=\"y\"} 1\n# EOF\n"), Ok(Format::Text));
        // Invalid either way: the OpenMetrics error.
        let err = detect(b"a{x=y} 1\n# EOF\n").unwrap_err();
        assert_eq!(err.line, 1);
    }
}
