//! Relabeling: the `relabel_configs`, `metric_relabel_configs`,
//! `alert_relabel_configs` and `write_relabel_configs` rules of Prometheus,
//! with its defaults (separator `;`, regex `(.*)` fully anchored, replacement
//! `$1`), its validation, and its semantics action by action.
//!
//! [`process`] is a pure function over [`Labels`]; [`process_builder`] edits a
//! [`LabelsBuilder`] in place for callers that already hold one.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use tsdb::model::{Label, Labels, LabelsBuilder};

use crate::config::{NameValidationScheme, deserialize_checked};

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Match the joined source values against `regex`; on a match set
    /// `target_label` (expanded) to `replacement` (expanded).
    Replace,
    /// Drop the label set unless the joined source values match `regex`.
    Keep,
    /// Drop the label set if the joined source values match `regex`.
    Drop,
    /// Drop the label set unless the joined source values equal `target_label`'s value.
    KeepEqual,
    /// Drop the label set if the joined source values equal `target_label`'s value.
    DropEqual,
    /// Set `target_label` to the md5 of the joined source values modulo `modulus`.
    HashMod,
    /// Copy every label whose name matches `regex` to the name `replacement` expands to.
    LabelMap,
    /// Remove every label whose name matches `regex`.
    LabelDrop,
    /// Remove every label whose name does not match `regex`.
    LabelKeep,
    /// Set `target_label` to the joined source values in lower case.
    Lowercase,
    /// Set `target_label` to the joined source values in upper case.
    Uppercase,
}

impl Action {
    /// Prometheus's spelling, as accepted in YAML (case-insensitively).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }

    const ALL: [Action; 11] = [
        Action::Replace,
        Action::Keep,
        Action::Drop,
        Action::KeepEqual,
        Action::DropEqual,
        Action::HashMod,
        Action::LabelMap,
        Action::LabelDrop,
        Action::LabelKeep,
        Action::Lowercase,
        Action::Uppercase,
    ];
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::config::deserialize_parsed(d, |text| {
            let lower = text.to_lowercase();
            Action::ALL
                .into_iter()
                .find(|a| a.as_str() == lower)
                .ok_or_else(|| format!("unknown relabel action {text:?}"))
        })
    }
}

/// A relabeling regex: compiled fully anchored with `.` matching newlines,
/// `^(?s:<source>)$`, as Prometheus 3 does.
#[derive(Clone)]
pub struct Regex {
    source: String,
    compiled: regex::Regex,
}

impl Regex {
    /// # Errors
    /// The regex crate's message when `source` does not compile.
    pub fn new(source: &str) -> Result<Self, String> {
        let compiled = regex::Regex::new(&format!("^(?s:{source})$"))
            .map_err(|e| format!("invalid regex {source:?}: {e}"))?;
        Ok(Regex {
            source: source.to_string(),
            compiled,
        })
    }

    /// The regex as written in the config, without the anchoring.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.compiled.is_match(text)
    }

    fn default_regex() -> Regex {
        // A fixed, valid pattern.
        #[allow(clippy::expect_used)]
        Regex::new("(.*)").expect("the default relabel regex compiles")
    }
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// One relabeling rule, validated as Prometheus validates it.
#[derive(Debug, Clone, PartialEq)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` to form the input.
    pub source_labels: Vec<Arc<str>>,
    pub separator: String,
    pub regex: Regex,
    /// Whether `regex` was written in the config (keepequal and dropequal forbid it).
    pub regex_set: bool,
    pub modulus: u64,
    pub target_label: Arc<str>,
    pub replacement: String,
    pub action: Action,
}

/// The YAML shape, every field optional so that defaults and "was it set"
/// are both visible to validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelabelConfig {
    #[serde(default)]
    source_labels: Option<Vec<String>>,
    #[serde(default)]
    separator: Option<String>,
    #[serde(default, deserialize_with = "regex_or_null")]
    regex: Option<String>,
    #[serde(default)]
    modulus: Option<u64>,
    #[serde(default)]
    target_label: Option<String>,
    #[serde(default)]
    replacement: Option<String>,
    #[serde(default)]
    action: Option<Action>,
}

/// `regex:` with a null value means the empty regex, as in Prometheus.
fn regex_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?.unwrap_or_default()))
}

const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REPLACEMENT: &str = "$1";

impl Default for RelabelConfig {
    /// Prometheus's defaults: replace, separator `;`, regex `(.*)`,
    /// replacement `$1`, no source or target label.
    fn default() -> Self {
        RelabelConfig {
            source_labels: Vec::new(),
            separator: DEFAULT_SEPARATOR.to_string(),
            regex: Regex::default_regex(),
            regex_set: false,
            modulus: 0,
            target_label: Arc::from(""),
            replacement: DEFAULT_REPLACEMENT.to_string(),
            action: Action::Replace,
        }
    }
}

impl RelabelConfig {
    fn from_raw(raw: RawRelabelConfig) -> Result<Self, String> {
        let source_labels = raw.source_labels.unwrap_or_default();
        for name in &source_labels {
            if name.is_empty() {
                return Err(format!("{name:?} is not a valid label name"));
            }
        }
        let regex_set = raw.regex.is_some();
        let regex = match raw.regex {
            Some(source) => Regex::new(&source)?,
            None => Regex::default_regex(),
        };
        let config = RelabelConfig {
            source_labels: source_labels.into_iter().map(Arc::from).collect(),
            separator: raw
                .separator
                .unwrap_or_else(|| DEFAULT_SEPARATOR.to_string()),
            regex,
            regex_set,
            modulus: raw.modulus.unwrap_or(0),
            target_label: Arc::from(raw.target_label.unwrap_or_default()),
            replacement: raw
                .replacement
                .unwrap_or_else(|| DEFAULT_REPLACEMENT.to_string()),
            action: raw.action.unwrap_or(Action::Replace),
        };
        config.validate(NameValidationScheme::Utf8)?;
        Ok(config)
    }

    /// Checks the rule as Prometheus's `relabel.Config.Validate` does under
    /// the given label name validation scheme. Deserialization already
    /// checks under UTF-8 (the default); callers re-check under legacy when
    /// a scrape config asks for it.
    ///
    /// # Errors
    /// Prometheus's message for the first violated rule.
    pub fn validate(&self, scheme: NameValidationScheme) -> Result<(), String> {
        use Action::*;
        let action = self.action;
        let target = &*self.target_label;
        if self.modulus == 0 && action == HashMod {
            return Err("relabel configuration for hashmod requires non-zero modulus".into());
        }
        if matches!(
            action,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        ) && target.is_empty()
        {
            return Err(format!(
                "relabel configuration for {action} action requires 'target_label' value"
            ));
        }
        let invalid_target = || format!("{target:?} is invalid 'target_label' for {action} action");
        if action == Replace {
            let valid = if target.contains('$') {
                scheme.is_valid_label_name_with_vars(target)
            } else {
                scheme.is_valid_label_name(target)
            };
            if !valid {
                return Err(invalid_target());
            }
        }
        if matches!(action, Lowercase | Uppercase | KeepEqual | DropEqual) {
            if !scheme.is_valid_label_name(target) {
                return Err(invalid_target());
            }
            if self.replacement != DEFAULT_REPLACEMENT {
                return Err(format!("'replacement' can not be set for {action} action"));
            }
        }
        if action == LabelMap && !scheme.is_valid_label_name_with_vars(&self.replacement) {
            return Err(format!(
                "{:?} is invalid 'replacement' for {action} action",
                self.replacement
            ));
        }
        if action == HashMod && !scheme.is_valid_label_name(target) {
            return Err(invalid_target());
        }
        if matches!(action, DropEqual | KeepEqual)
            && (self.regex_set
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || self.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(format!(
                "{action} action requires only 'source_labels' and `target_label`, and no other fields"
            ));
        }
        if matches!(action, LabelDrop | LabelKeep)
            && (!self.source_labels.is_empty()
                || !target.is_empty()
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || self.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(format!(
                "{action} action requires only 'regex', and no other fields"
            ));
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for RelabelConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_checked(d, RelabelConfig::from_raw)
    }
}

/// Whether a label set survives relabeling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Keep,
    Drop,
}

/// Applies `configs` in order. `None` when a rule drops the label set.
pub fn process(labels: &Labels, configs: &[RelabelConfig]) -> Option<Labels> {
    if configs.is_empty() {
        return Some(labels.clone());
    }
    let mut builder = labels.builder();
    match process_builder(&mut builder, configs) {
        Keep::Keep => Some(builder.build()),
        Keep::Drop => None,
    }
}

/// Applies `configs` in order to a builder, as Prometheus's `ProcessBuilder`.
/// On [`Keep::Drop`] the builder holds a partially relabeled set.
pub fn process_builder(builder: &mut LabelsBuilder, configs: &[RelabelConfig]) -> Keep {
    for config in configs {
        if apply(builder, config) == Keep::Drop {
            return Keep::Drop;
        }
    }
    Keep::Keep
}

/// The source label values joined with the separator; borrowed when there is
/// at most one source label.
fn joined_source_values<'a>(builder: &'a LabelsBuilder, config: &RelabelConfig) -> Cow<'a, str> {
    match config.source_labels.as_slice() {
        [] => Cow::Borrowed(""),
        [only] => Cow::Borrowed(builder.get(only).unwrap_or("")),
        many => {
            let mut joined = String::new();
            for (i, name) in many.iter().enumerate() {
                if i > 0 {
                    joined.push_str(&config.separator);
                }
                joined.push_str(builder.get(name).unwrap_or(""));
            }
            Cow::Owned(joined)
        }
    }
}

fn apply(builder: &mut LabelsBuilder, config: &RelabelConfig) -> Keep {
    let value = joined_source_values(builder, config);
    let keep_if = |condition: bool| if condition { Keep::Keep } else { Keep::Drop };
    match config.action {
        Action::Drop => keep_if(!config.regex.is_match(&value)),
        Action::Keep => keep_if(config.regex.is_match(&value)),
        Action::DropEqual => keep_if(builder.get(&config.target_label).unwrap_or("") != value),
        Action::KeepEqual => keep_if(builder.get(&config.target_label).unwrap_or("") == value),
        Action::Replace => {
            let Some(captures) = config.regex.compiled.captures(&value) else {
                return Keep::Keep;
            };
            let target = expand(&config.target_label, &captures, &config.regex.compiled);
            // Prometheus skips targets that are not valid label names after
            // expansion; under UTF-8 validation only the empty name is invalid.
            if target.is_empty() {
                return Keep::Keep;
            }
            let replaced = expand(&config.replacement, &captures, &config.regex.compiled);
            let target: Arc<str> = match target {
                Cow::Borrowed(_) => config.target_label.clone(),
                Cow::Owned(name) => Arc::from(name),
            };
            let replaced: Arc<str> = Arc::from(replaced.as_ref());
            drop(captures);
            builder.set_mut(target, replaced);
            Keep::Keep
        }
        Action::Lowercase => {
            let lowered: Arc<str> = Arc::from(value.to_lowercase());
            builder.set_mut(config.target_label.clone(), lowered);
            Keep::Keep
        }
        Action::Uppercase => {
            let uppered: Arc<str> = Arc::from(value.to_uppercase());
            builder.set_mut(config.target_label.clone(), uppered);
            Keep::Keep
        }
        Action::HashMod => {
            let digest = md5::compute(value.as_bytes());
            let mut tail = [0u8; 8];
            tail.copy_from_slice(&digest.0[8..]);
            // Prometheus uses the last 8 bytes, big-endian, to stay
            // compatible with its earlier versions.
            let bucket = u64::from_be_bytes(tail) % config.modulus.max(1);
            builder.set_mut(
                config.target_label.clone(),
                Arc::<str>::from(bucket.to_string()),
            );
            Keep::Keep
        }
        Action::LabelMap => {
            drop(value);
            // Iterate over a snapshot: labels added here are not revisited.
            let snapshot: Vec<Label> = builder_labels(builder);
            for label in snapshot {
                if let Some(captures) = config.regex.compiled.captures(&label.name) {
                    let name = expand(&config.replacement, &captures, &config.regex.compiled);
                    let name: Arc<str> = Arc::from(name.as_ref());
                    builder.set_mut(name, label.value.clone());
                }
            }
            Keep::Keep
        }
        Action::LabelDrop => {
            drop(value);
            let regex = &config.regex;
            let kept = std::mem::take(builder).retain(|l| !regex.is_match(&l.name));
            *builder = kept;
            Keep::Keep
        }
        Action::LabelKeep => {
            drop(value);
            let regex = &config.regex;
            let kept = std::mem::take(builder).retain(|l| regex.is_match(&l.name));
            *builder = kept;
            Keep::Keep
        }
    }
}

/// The builder's current labels.
fn builder_labels(builder: &LabelsBuilder) -> Vec<Label> {
    builder.clone().build().iter().cloned().collect()
}

/// Expands `$1`, `${1}`, `$name`, `${name}` and `$$` in `template` exactly as
/// Go's `regexp.Expand`: a name is the longest run of letters, digits and
/// underscores (so `$1x` names group `1x`), unknown groups expand to nothing,
/// and a `$` not followed by a valid reference is kept literally.
fn expand<'t>(
    template: &'t str,
    captures: &regex::Captures<'_>,
    regex: &regex::Regex,
) -> Cow<'t, str> {
    if !template.contains('$') {
        return Cow::Borrowed(template);
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar..];
        if rest.as_bytes().get(1) == Some(&b'$') {
            out.push('$');
            rest = &rest[2..];
            continue;
        }
        match parse_reference(rest) {
            Some((name, consumed)) => {
                out.push_str(group_text(name, captures, regex));
                rest = &rest[consumed..];
            }
            None => {
                out.push('$');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Parses `$name` or `${name}` at the start of `text` (which starts with `$`),
/// returning the name and the bytes consumed.
fn parse_reference(text: &str) -> Option<(&str, usize)> {
    let is_name_byte = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let after = &text[1..];
    if let Some(braced) = after.strip_prefix('{') {
        let len = braced.bytes().take_while(is_name_byte).count();
        if len == 0 || braced.as_bytes().get(len) != Some(&b'}') {
            return None;
        }
        return Some((&braced[..len], len + 3));
    }
    let len = after.bytes().take_while(is_name_byte).count();
    if len == 0 {
        return None;
    }
    Some((&after[..len], len + 1))
}

/// The text of group `name` (a number without leading zeros, or a group
/// name), empty when the group does not exist or did not participate.
fn group_text<'h>(name: &str, captures: &regex::Captures<'h>, regex: &regex::Regex) -> &'h str {
    let is_number =
        name.bytes().all(|b| b.is_ascii_digit()) && !(name.len() > 1 && name.starts_with('0'));
    if is_number {
        return name
            .parse::<usize>()
            .ok()
            .and_then(|i| captures.get(i))
            .map_or("", |m| m.as_str());
    }
    // Go picks the first group with this name that participated.
    for (i, group_name) in regex.capture_names().enumerate() {
        if group_name == Some(name)
            && let Some(m) = captures.get(i)
        {
            return m.as_str();
        }
    }
    ""
}

#[cfg(test)]
mod tests;
