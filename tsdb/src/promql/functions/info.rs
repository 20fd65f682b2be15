//! `info()`: adds the data labels of info metrics (by default
//! `target_info`) to the series that share their identifying labels
//! (`instance`, `job`), as Prometheus 3's experimental function does.

use std::collections::{HashMap, HashSet};

use super::super::error::{Error, Result};
use super::super::eval::{Assembler, Elem, Evaluated, Evaluator, Stepper};
use super::super::parse::{Info, Selector, Subquery};
use super::super::plan::first_selector;
use crate::model::{Labels, LabelsBuilder, METRIC_NAME, is_stale_nan};

/// The labels that tie a series to its info series.
const IDENTIFYING_LABELS: [&str; 2] = ["instance", "job"];

pub(crate) fn eval(ev: &mut Evaluator<'_>, info: &Info) -> Result<Evaluated> {
    let base = ev.eval_vector(&info.expr)?;
    let name_matchers = &info.name_matchers;
    let data_label_matchers = &info.data_matchers;
    // Info series themselves are not enriched.
    let ignored: Vec<bool> = base
        .iter()
        .map(|s| {
            let name = s.labels.metric_name().unwrap_or("");
            !name_matchers.is_empty() && name_matchers.iter().all(|m| m.matches(name))
        })
        .collect();
    let mut identifying_values: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (series, _) in base.iter().zip(&ignored).filter(|(_, ignored)| !**ignored) {
        for label in IDENTIFYING_LABELS {
            if let Some(value) = series.labels.get(label) {
                identifying_values.entry(label).or_default().insert(value);
            }
        }
    }
    let candidates: Vec<&Labels> = if identifying_values.is_empty() {
        Vec::new()
    } else {
        ev.loaded(info.info_selector.id)
            .iter()
            .filter(|s| {
                identifying_values
                    .iter()
                    .all(|(label, values)| values.contains(s.labels.get(label).unwrap_or("")))
            })
            .map(|s| &s.labels)
            .collect()
    };
    let reference = Reference::of(info);
    let lookback = ev.context.lookback_ms;
    let grid = ev.grid;
    // The original timestamp of each candidate's sample at each step.
    let mut info_samples: Vec<Vec<Option<i64>>> = Vec::with_capacity(candidates.len());
    for (i, _) in candidates.iter().enumerate() {
        let points = &ev.loaded(info.info_selector.id)[index_of(ev, info, &candidates, i)].points;
        let samples = grid
            .times()
            .map(|t| {
                let at = reference.time(ev, t);
                let newest = points.partition_point(|p| p.t <= at);
                let point = newest.checked_sub(1).and_then(|i| points.get(i))?;
                (point.t > at.saturating_sub(lookback) && !is_stale_nan(point.v)).then_some(point.t)
            })
            .collect();
        info_samples.push(samples);
    }
    let info_names: HashSet<&str> = candidates
        .iter()
        .zip(&info_samples)
        .filter(|(_, samples)| samples.iter().any(Option::is_some))
        .filter_map(|(labels, _)| labels.metric_name())
        .collect();
    let mut info_names: Vec<&str> = info_names.into_iter().collect();
    info_names.sort_unstable();

    let mut assembler = Assembler::new(&grid);
    let mut stepper = Stepper::new(&base);
    let mut now = Vec::new();
    for (step, t) in grid.times().enumerate() {
        ev.check()?;
        stepper.step(t, &mut now);
        // The newest info sample per info metric and identifying labels.
        let mut by_signature: HashMap<(&str, Labels), (usize, i64)> = HashMap::new();
        for (i, labels) in candidates.iter().enumerate() {
            let Some(orig_t) = info_samples[i][step] else {
                continue;
            };
            let key = (labels.metric_name().unwrap_or(""), identifying(labels));
            match by_signature.get(&key) {
                Some(&(_, existing_t)) if existing_t > orig_t => {}
                Some(&(existing, existing_t)) if existing_t == orig_t => {
                    return Err(Error::eval(format!(
                        "found duplicate series for info metric: existing {} @ {existing_t}, new {labels} @ {orig_t}",
                        candidates[existing]
                    )));
                }
                _ => {
                    by_signature.insert(key, (i, orig_t));
                }
            }
        }
        for &(i, v) in &now {
            let series = &base[i];
            if ignored[i] {
                assembler.push(
                    t,
                    Elem {
                        labels: series.labels.clone(),
                        v,
                        drop_name: series.drop_name,
                    },
                )?;
                continue;
            }
            let mut added = LabelsBuilder::default();
            let mut matched_any = false;
            let base_identity = identifying(&series.labels);
            for name in &info_names {
                let Some(&(j, _)) = by_signature.get(&(*name, base_identity.clone())) else {
                    continue;
                };
                for label in candidates[j] {
                    if *label.name == *METRIC_NAME {
                        continue;
                    }
                    if !data_label_matchers.is_empty()
                        && !data_label_matchers.iter().any(|m| m.name() == &*label.name)
                    {
                        continue;
                    }
                    if let Some(existing) = added.get(&label.name)
                        && existing != &*label.value
                    {
                        return Err(Error::eval(format!("conflicting label: {}", label.name)));
                    }
                    if series.labels.get(&label.name).is_some() {
                        continue;
                    }
                    added.set_mut(label.name.clone(), label.value.clone());
                }
                matched_any = true;
            }
            if !matched_any && data_label_matchers.iter().any(|m| !m.matches_empty()) {
                // Required data labels are missing: drop the sample.
                continue;
            }
            let mut labels = series.labels.builder();
            for label in &added.build() {
                labels.set_mut(label.name.clone(), label.value.clone());
            }
            assembler.push(
                t,
                Elem {
                    labels: labels.build(),
                    v,
                    drop_name: series.drop_name,
                },
            )?;
        }
    }
    Ok(Evaluated::Vector(assembler.finish()))
}

/// The position of candidate `i` among the loaded info series.
fn index_of(ev: &Evaluator<'_>, info: &Info, candidates: &[&Labels], i: usize) -> usize {
    ev.loaded(info.info_selector.id)
        .iter()
        .position(|s| s.labels == *candidates[i])
        .unwrap_or(0)
}

/// The identifying labels of a series.
fn identifying(labels: &Labels) -> Labels {
    labels
        .builder()
        .retain(|l| IDENTIFYING_LABELS.contains(&&*l.name))
        .build()
}

/// How the time info series are read at follows from the argument's first
/// selector: the `@` and offsets of its enclosing subqueries, then its own.
struct Reference<'e> {
    subqueries: Vec<&'e Subquery>,
    selector: Option<&'e Selector>,
}

impl<'e> Reference<'e> {
    fn of(info: &'e Info) -> Self {
        match first_selector(&info.expr) {
            Some((subqueries, selector)) => Reference {
                subqueries,
                selector: Some(selector),
            },
            None => Reference {
                subqueries: Vec::new(),
                selector: None,
            },
        }
    }

    fn time(&self, ev: &Evaluator<'_>, t: i64) -> i64 {
        let mut time = t;
        for subquery in &self.subqueries {
            if let Some(at) = subquery.at {
                time = ev.context.resolve_at(at);
            }
            time = time.saturating_sub(subquery.offset_ms);
        }
        if let Some(selector) = self.selector {
            if let Some(at) = selector.at {
                time = ev.context.resolve_at(at);
            }
            time = time.saturating_sub(selector.offset_ms);
        }
        time
    }
}
