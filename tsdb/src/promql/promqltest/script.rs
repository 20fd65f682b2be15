//! Parsing the promqltest script language (`load`, `clear`, `eval` and
//! their blocks) into commands. Expressions are kept as text: the engine
//! parses them when the eval runs, so a bad expression fails one eval.

use crate::model::{Label, Labels};

/// One value slot of a series description.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Slot {
    /// `_`: no sample at this slot.
    Omitted,
    Float(f64),
    /// `stale`: the staleness marker.
    Stale,
    /// `{{...}}`: a native histogram, which this engine does not store.
    Histogram,
}

#[derive(Debug, Clone)]
pub(crate) struct SeriesDescription {
    pub labels: Labels,
    pub slots: Vec<Slot>,
    /// From the `@st` line before the series line: per slot, the start
    /// timestamp's offset from the sample's timestamp; empty without one.
    pub start_offsets: Vec<Option<i64>>,
}

/// How an expectation matches a message.
#[derive(Debug, Clone)]
pub(crate) enum MessageMatch {
    Any,
    Exact(String),
    Regex(String),
}

impl MessageMatch {
    pub(crate) fn matches(&self, message: &str) -> Result<bool, String> {
        match self {
            MessageMatch::Any => Ok(true),
            MessageMatch::Exact(text) => Ok(text == message),
            MessageMatch::Regex(pattern) => regex::Regex::new(pattern)
                .map(|re| re.is_match(message))
                .map_err(|e| format!("invalid regex {pattern:?}: {e}")),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum EvalTime {
    Instant {
        at_ms: i64,
    },
    Range {
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    },
}

#[derive(Debug, Clone)]
pub(crate) enum Expected {
    /// Series lines (possibly none: an empty result).
    Series(Vec<SeriesDescription>),
    Scalar(f64),
    String(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Eval {
    pub line: usize,
    pub expr: String,
    pub time: EvalTime,
    pub fail: Option<MessageMatch>,
    pub warn: Vec<MessageMatch>,
    pub info: Vec<MessageMatch>,
    pub no_warn: bool,
    pub no_info: bool,
    /// `eval_warn`/`eval_info`: at least one, each not checked.
    pub any_warn: bool,
    pub any_info: bool,
    pub ordered: bool,
    /// `expect range vector from A to B step S`.
    pub range_vector: Option<(i64, i64, i64)>,
    pub expected: Expected,
    /// The expected output contains native histograms.
    pub expects_histograms: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Command {
    Load {
        series: Vec<SeriesDescription>,
        step_ms: i64,
        /// `load_with_nhcb`: classic histograms also become native ones.
        with_nhcb: bool,
    },
    Clear,
    Eval(Box<Eval>),
    /// An eval (or other command) that could not be parsed; it counts as a
    /// failed eval at its line.
    Broken {
        line: usize,
        message: String,
    },
}

/// Splits a script into commands.
pub(crate) fn parse_script(text: &str) -> Vec<Command> {
    let lines: Vec<String> = text
        .split('\n')
        .map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                String::new()
            } else {
                l.to_string()
            }
        })
        .collect();
    let mut commands = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = &lines[i];
        if line.is_empty() {
            i += 1;
            continue;
        }
        let word = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let line_number = i + 1;
        // The block: following non-empty lines.
        let mut end = i + 1;
        while end < lines.len() && !lines[end].is_empty() {
            end += 1;
        }
        if word == "clear" {
            commands.push(Command::Clear);
            i += 1;
            continue;
        }
        if word.starts_with("load") {
            match parse_load(line, &lines[i + 1..end]) {
                Ok(command) => commands.push(command),
                Err(message) => commands.push(Command::Broken {
                    line: line_number,
                    message,
                }),
            }
            i = end;
            continue;
        }
        if word.starts_with("eval") {
            let (command, consumed) = parse_eval(line_number, line, &lines[i + 1..end]);
            commands.push(command);
            i += 1 + consumed;
            continue;
        }
        commands.push(Command::Broken {
            line: line_number,
            message: format!("invalid command {line:?}"),
        });
        i += 1;
    }
    commands
}

fn parse_load(header: &str, body: &[String]) -> Result<Command, String> {
    let mut parts = header.splitn(2, char::is_whitespace);
    let word = parts.next().unwrap_or("");
    if word != "load" && word != "load_with_nhcb" {
        return Err(format!("invalid load command {header:?}"));
    }
    let step_ms = parse_duration(parts.next().unwrap_or("").trim())?;
    let mut series: Vec<SeriesDescription> = Vec::new();
    // A start-timestamp line waiting for its series line.
    let mut pending: Option<StartTimestampLine> = None;
    for line in body {
        if let Some(start_line) = parse_start_timestamp_line(line)? {
            if pending.is_some() {
                return Err(format!("start timestamp line {line:?} follows another one"));
            }
            pending = Some(start_line);
            continue;
        }
        let mut description = parse_series_description(line)?;
        if let Some((labels, offsets)) = pending.take() {
            if labels != description.labels {
                return Err(format!(
                    "start timestamp line for {labels:?} is followed by series {:?}",
                    description.labels
                ));
            }
            if offsets.len() != description.slots.len() {
                return Err(format!(
                    "start timestamp line for {labels:?} has {} values, its series {}",
                    offsets.len(),
                    description.slots.len()
                ));
            }
            description.start_offsets = offsets;
        }
        // A later definition of the same series replaces the earlier one.
        series.retain(|s| s.labels != description.labels);
        series.push(description);
    }
    if pending.is_some() {
        return Err("start timestamp line not followed by a series line".to_string());
    }
    Ok(Command::Load {
        series,
        step_ms,
        with_nhcb: word == "load_with_nhcb",
    })
}

/// Parses an eval header and its block; returns the command and the number
/// of block lines it consumed (a scalar expectation ends the block).
fn parse_eval(line_number: usize, header: &str, body: &[String]) -> (Command, usize) {
    let broken = |message: String| Command::Broken {
        line: line_number,
        message,
    };
    let mut words = header.split_whitespace();
    let command = words.next().unwrap_or("");
    let modifier = command.strip_prefix("eval").unwrap_or("");
    let modifier = modifier.strip_prefix('_').unwrap_or(modifier);
    if !matches!(modifier, "" | "fail" | "warn" | "info" | "ordered") {
        return (
            broken(format!("invalid eval command {command:?}")),
            body.len(),
        );
    }
    let rest = header[command.len()..].trim_start();
    let (time, expr) = match parse_eval_time(rest) {
        Ok(parsed) => parsed,
        Err(message) => return (broken(message), body.len()),
    };
    let mut eval = Eval {
        line: line_number,
        expr: expr.to_string(),
        time,
        fail: (modifier == "fail").then_some(MessageMatch::Any),
        warn: Vec::new(),
        info: Vec::new(),
        no_warn: false,
        no_info: false,
        any_warn: modifier == "warn",
        any_info: modifier == "info",
        ordered: modifier == "ordered",
        range_vector: None,
        expected: Expected::Series(Vec::new()),
        expects_histograms: false,
    };
    let mut series = Vec::new();
    let mut consumed = 0;
    for line in body {
        consumed += 1;
        if modifier == "fail" {
            if let Some(message) = line.strip_prefix("expected_fail_message") {
                eval.fail = Some(MessageMatch::Exact(message.trim().to_string()));
                break;
            }
            if let Some(pattern) = line.strip_prefix("expected_fail_regexp") {
                eval.fail = Some(MessageMatch::Regex(pattern.trim().to_string()));
                break;
            }
        }
        if let Some(rest) = line.strip_prefix("expect range vector") {
            match parse_range_vector(rest) {
                Ok(range) => eval.range_vector = Some(range),
                Err(message) => return (broken(message), body.len()),
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("expect string") {
            match unquote(rest.trim()) {
                Some(s) => eval.expected = Expected::String(s),
                None => {
                    return (
                        broken(format!("invalid expected string {rest:?}")),
                        body.len(),
                    );
                }
            }
            continue;
        }
        if line.split_whitespace().next() == Some("expect") {
            if let Err(message) = parse_expect(&mut eval, line) {
                return (broken(message), body.len());
            }
            continue;
        }
        if let Some(v) = parse_scalar_line(line) {
            eval.expected = Expected::Scalar(v);
            break;
        }
        match parse_series_description(line) {
            Ok(description) => {
                if description.slots.contains(&Slot::Histogram) {
                    eval.expects_histograms = true;
                }
                if matches!(eval.time, EvalTime::Instant { .. })
                    && eval.range_vector.is_none()
                    && description.slots.len() > 1
                {
                    return (
                        broken(format!(
                            "expected exactly one value for an instant query: {line:?}"
                        )),
                        body.len(),
                    );
                }
                series.push(description);
            }
            Err(message) => return (broken(message), body.len()),
        }
    }
    if !series.is_empty() {
        eval.expected = Expected::Series(series);
    }
    if let Some((_, end, _)) = eval.range_vector
        && let EvalTime::Instant { at_ms } = &mut eval.time
    {
        // The expected grid ends at the evaluation time.
        *at_ms = end;
    }
    (Command::Eval(Box::new(eval)), consumed)
}

fn parse_eval_time(rest: &str) -> Result<(EvalTime, &str), String> {
    let (kind, rest) = split_word(rest);
    match kind {
        "instant" => {
            let (at, rest) = split_word(rest);
            if at != "at" {
                return Err("expected 'at' in instant eval".to_string());
            }
            let (time, expr) = split_word(rest);
            let at_ms = parse_duration(time)?;
            Ok((EvalTime::Instant { at_ms }, expr))
        }
        "range" => {
            let (from, rest) = split_word(rest);
            let (start, rest) = split_word(rest);
            let (to, rest) = split_word(rest);
            let (end, rest) = split_word(rest);
            let (step_word, rest) = split_word(rest);
            let (step, expr) = split_word(rest);
            if from != "from" || to != "to" || step_word != "step" {
                return Err("expected 'from ... to ... step ...' in range eval".to_string());
            }
            let start_ms = parse_duration(start)?;
            let end_ms = parse_duration(end)?;
            let step_ms = parse_duration(step)?;
            if end_ms < start_ms {
                return Err("end timestamp must not be before start time".to_string());
            }
            Ok((
                EvalTime::Range {
                    start_ms,
                    end_ms,
                    step_ms,
                },
                expr,
            ))
        }
        _ => Err(format!("invalid eval kind {kind:?}")),
    }
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

fn parse_range_vector(rest: &str) -> Result<(i64, i64, i64), String> {
    let (from, rest) = split_word(rest);
    let (start, rest) = split_word(rest);
    let (to, rest) = split_word(rest);
    let (end, rest) = split_word(rest);
    let (step_word, rest) = split_word(rest);
    let (step, _) = split_word(rest);
    if from != "from" || to != "to" || step_word != "step" {
        return Err("invalid 'expect range vector' line".to_string());
    }
    Ok((
        parse_duration(start)?,
        parse_duration(end)?,
        parse_duration(step)?,
    ))
}

fn parse_expect(eval: &mut Eval, line: &str) -> Result<(), String> {
    let rest = line.trim_start_matches("expect").trim_start();
    let (kind, rest) = split_word(rest);
    let rest = rest.trim();
    let message = if let Some(text) = rest.strip_prefix("msg:") {
        MessageMatch::Exact(text.trim().to_string())
    } else if let Some(pattern) = rest.strip_prefix("regex:") {
        MessageMatch::Regex(pattern.trim().to_string())
    } else if rest.is_empty() {
        MessageMatch::Any
    } else {
        return Err(format!("invalid expect line {line:?}"));
    };
    match kind {
        "fail" => {
            if eval.fail.is_some() && !matches!(eval.fail, Some(MessageMatch::Any)) {
                return Err("more than one 'expect fail'".to_string());
            }
            eval.fail = Some(message);
        }
        "warn" => eval.warn.push(message),
        "info" => eval.info.push(message),
        "no_warn" => eval.no_warn = true,
        "no_info" => eval.no_info = true,
        "ordered" => eval.ordered = true,
        _ => return Err(format!("invalid expectation {kind:?}")),
    }
    if (eval.no_warn && !eval.warn.is_empty()) || (eval.no_info && !eval.info.is_empty()) {
        return Err("contradicting warn/info expectations".to_string());
    }
    Ok(())
}

/// A line that is entirely a number: a scalar expectation.
fn parse_scalar_line(line: &str) -> Option<f64> {
    if line.contains(char::is_whitespace) {
        return None;
    }
    if let Some(v) = parse_go_int(line) {
        return Some(v as f64);
    }
    parse_number(line)
}

/// Go's `strconv.ParseInt(s, 0, 64)`: base prefixes `0x`, `0o`, `0b` and a
/// leading `0` for octal.
fn parse_go_int(s: &str) -> Option<i64> {
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(b) = lower.strip_prefix("0x") {
        (16, b.to_string())
    } else if let Some(b) = lower.strip_prefix("0o") {
        (8, b.to_string())
    } else if let Some(b) = lower.strip_prefix("0b") {
        (2, b.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower.clone())
    };
    let body = body.replace('_', "");
    if body.is_empty() {
        return None;
    }
    let v = i64::from_str_radix(&body, radix).ok()?;
    Some(if negative { -v } else { v })
}

/// A PromQL float literal without hexadecimal: digits, a dot, an exponent,
/// `Inf` and `NaN` in any case, with an optional sign.
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    let (negative, unsigned) = match lower.as_bytes().first() {
        Some(b'-') => (true, &lower[1..]),
        Some(b'+') => (false, &lower[1..]),
        _ => (false, lower.as_str()),
    };
    let v = match unsigned {
        "inf" | "infinity" => f64::INFINITY,
        "nan" => f64::NAN,
        _ => {
            if unsigned.is_empty()
                || !unsigned
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.' || b == b'e' || b == b'+' || b == b'-')
                || !unsigned.as_bytes()[0].is_ascii_digit() && unsigned.as_bytes()[0] != b'.'
            {
                return None;
            }
            unsigned.parse::<f64>().ok()?
        }
    };
    Some(if negative { -v } else { v })
}

/// Prometheus durations: `<digits><unit>` pairs with units y, w, d, h, m,
/// s, ms in descending order, or a bare `0`.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    if s == "0" {
        return Ok(0);
    }
    let invalid = || format!("invalid duration {s:?}");
    if s.is_empty() {
        return Err(invalid());
    }
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: i64 = 0;
    let mut last_unit = 0usize;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(invalid());
        }
        let n: i64 = s[start..i].parse().map_err(|_| invalid())?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[unit_start..i];
        let (position, &(_, ms)) = UNITS
            .iter()
            .enumerate()
            .find(|(_, (u, _))| *u == unit)
            .ok_or_else(invalid)?;
        if position < last_unit || (total > 0 && position == last_unit) {
            return Err(invalid());
        }
        last_unit = position;
        total = total
            .checked_add(n.checked_mul(ms).ok_or_else(invalid)?)
            .ok_or_else(invalid)?;
    }
    Ok(total)
}

/// Parses `<labels> <item> <item> ...`.
pub(crate) fn parse_series_description(line: &str) -> Result<SeriesDescription, String> {
    let (labels, rest) = parse_labels(line)?;
    let mut slots = Vec::new();
    for item in split_items(rest) {
        expand_item(&item, &mut slots)?;
    }
    Ok(SeriesDescription {
        labels,
        slots,
        start_offsets: Vec::new(),
    })
}

/// The labels of an `@st` line and its offsets, one per slot.
type StartTimestampLine = (Labels, Vec<Option<i64>>);

/// Parses a start-timestamp line, `<labels>@st <item> <item> ...`, into
/// its labels and one offset per slot (`None` for `_`); `None` for any
/// other line. Items: `_`, `_xN`, `D`, `DxN`, `D+ExN`, `D-ExN` with signed
/// durations `D` and `E`.
fn parse_start_timestamp_line(line: &str) -> Result<Option<StartTimestampLine>, String> {
    let Ok((labels, rest)) = parse_labels(line) else {
        return Ok(None);
    };
    let Some(items) = rest.strip_prefix("@st") else {
        return Ok(None);
    };
    if !items.is_empty() && !items.starts_with(char::is_whitespace) {
        return Ok(None);
    }
    let mut offsets = Vec::new();
    for item in items.split_whitespace() {
        let invalid = || format!("invalid start timestamp {item:?}");
        if item == "_" {
            offsets.push(None);
            continue;
        }
        if let Some(n) = item.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| invalid())?;
            offsets.extend(std::iter::repeat_n(None, n));
            continue;
        }
        // Duration units have no `x`: the first one ends the durations.
        let (head, times) = match item.split_once('x') {
            Some((head, n)) => (head, n.parse::<usize>().map_err(|_| invalid())?),
            None => (item, 0),
        };
        let bytes = head.as_bytes();
        let (start, delta) = match (1..bytes.len()).find(|&i| matches!(bytes[i], b'+' | b'-')) {
            Some(i) => (
                parse_signed_duration(&head[..i]).ok_or_else(invalid)?,
                parse_signed_duration(&head[i..]).ok_or_else(invalid)?,
            ),
            None => (parse_signed_duration(head).ok_or_else(invalid)?, 0),
        };
        let mut offset = start;
        for _ in 0..=times {
            offsets.push(Some(offset));
            offset = offset.checked_add(delta).ok_or_else(invalid)?;
        }
    }
    Ok(Some((labels, offsets)))
}

/// A duration with an optional leading `+` or `-`, in milliseconds.
fn parse_signed_duration(s: &str) -> Option<i64> {
    match s.as_bytes().first()? {
        b'-' => parse_duration(&s[1..]).ok().map(|ms| -ms),
        b'+' => parse_duration(&s[1..]).ok(),
        _ => parse_duration(s).ok(),
    }
}

/// Splits the values part on whitespace, keeping `{{ ... }}` together.
fn split_items(s: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '{' && chars.get(i + 1) == Some(&'{') {
            depth += 1;
            current.push_str("{{");
            i += 2;
            continue;
        }
        if c == '}' && chars.get(i + 1) == Some(&'}') && depth > 0 {
            depth -= 1;
            current.push_str("}}");
            i += 2;
            continue;
        }
        if c.is_whitespace() && depth == 0 {
            if !current.is_empty() {
                items.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
        i += 1;
    }
    if !current.is_empty() {
        items.push(current);
    }
    items
}

fn expand_item(item: &str, slots: &mut Vec<Slot>) -> Result<(), String> {
    let invalid = || format!("invalid value {item:?}");
    if item == "_" {
        slots.push(Slot::Omitted);
        return Ok(());
    }
    if let Some(n) = item.strip_prefix("_x") {
        let n: usize = n.parse().map_err(|_| invalid())?;
        slots.extend(std::iter::repeat_n(Slot::Omitted, n));
        return Ok(());
    }
    if item == "stale" {
        slots.push(Slot::Stale);
        return Ok(());
    }
    if item.starts_with("{{") {
        // `{{H}}`, `{{H}}xN`, `{{H}}+{{I}}xN`: count the values only.
        let count = match item.rfind("}}") {
            Some(end) => match item[end + 2..].strip_prefix('x') {
                Some(n) => n.parse::<usize>().map_err(|_| invalid())? + 1,
                None if item[end + 2..].is_empty() => 1,
                None => return Err(invalid()),
            },
            None => return Err(invalid()),
        };
        slots.extend(std::iter::repeat_n(Slot::Histogram, count));
        return Ok(());
    }
    if let Some(v) = parse_number(item) {
        slots.push(Slot::Float(v));
        return Ok(());
    }
    // `VxN`, `V+DxN`, `V-DxN`.
    let x = item.rfind('x').ok_or_else(invalid)?;
    let times: usize = item[x + 1..].parse().map_err(|_| invalid())?;
    let head = &item[..x];
    let bytes = head.as_bytes();
    let split = (1..bytes.len())
        .rev()
        .find(|&i| (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E'));
    let (start, delta) = match split {
        Some(i) => {
            let start = parse_number(&head[..i]).ok_or_else(invalid)?;
            let delta = parse_number(&head[i..]).ok_or_else(invalid)?;
            (start, delta)
        }
        None => (parse_number(head).ok_or_else(invalid)?, 0.0),
    };
    // Repeated addition, as the Go runner does, for bit-identical values.
    let mut v = start;
    for _ in 0..=times {
        slots.push(Slot::Float(v));
        v += delta;
    }
    Ok(())
}

/// Parses a label set in selector syntax: `name`, `name{a="b"}`,
/// `{__name__="name", a="b"}` or `{"name", a="b"}`; returns the rest.
pub(crate) fn parse_labels(line: &str) -> Result<(Labels, &str), String> {
    let line = line.trim_start();
    let mut labels = Vec::new();
    let name_end = line
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    if name_end > 0 {
        labels.push(Label::new("__name__", &line[..name_end]));
    }
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut cursor = inner;
        loop {
            cursor = cursor.trim_start();
            if let Some(after) = cursor.strip_prefix('}') {
                rest = after;
                break;
            }
            let (name, after_name) = if cursor.starts_with(['"', '\'', '`']) {
                let (quoted, after) = take_quoted(cursor)?;
                (quoted, after)
            } else {
                let end = cursor
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':' || c == '.'))
                    .unwrap_or(cursor.len());
                if end == 0 {
                    return Err(format!("invalid labels in {line:?}"));
                }
                (cursor[..end].to_string(), &cursor[end..])
            };
            let after_name = after_name.trim_start();
            if let Some(after_eq) = after_name.strip_prefix('=') {
                let (value, after_value) = take_quoted(after_eq.trim_start())?;
                labels.push(Label::new(name, value));
                cursor = after_value.trim_start();
            } else {
                // A quoted name on its own is the metric name.
                labels.push(Label::new("__name__", name));
                cursor = after_name;
            }
            cursor = cursor.trim_start();
            if let Some(after) = cursor.strip_prefix(',') {
                cursor = after;
            } else if !cursor.starts_with('}') {
                return Err(format!("invalid labels in {line:?}"));
            }
        }
    }
    if labels.is_empty() && !line.starts_with('{') {
        return Err(format!("invalid series description {line:?}"));
    }
    Ok((Labels::new(labels), rest))
}

/// Takes a quoted string from the start of `s`; returns it unquoted and the
/// rest.
fn take_quoted(s: &str) -> Result<(String, &str), String> {
    let quote = s.chars().next().ok_or("expected a quoted string")?;
    if !matches!(quote, '"' | '\'' | '`') {
        return Err(format!("expected a quoted string at {s:?}"));
    }
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' && quote != '`' {
            escaped = true;
            continue;
        }
        if c == quote {
            let literal = &s[..i + 1];
            let value = unquote(literal).ok_or_else(|| format!("invalid string {literal}"))?;
            return Ok((value, &s[i + 1..]));
        }
    }
    Err(format!("unterminated string {s:?}"))
}

/// Go's `strconv.Unquote` for `"..."`, `'...'` and raw `` `...` `` strings.
pub(crate) fn unquote(s: &str) -> Option<String> {
    let quote = s.chars().next()?;
    if s.len() < 2 || !s.ends_with(quote) {
        return None;
    }
    let body = &s[1..s.len() - 1];
    if quote == '`' {
        return Some(body.to_string());
    }
    if !matches!(quote, '"' | '\'') {
        return None;
    }
    let mut out = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let escape = chars.next()?;
        match escape {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            '\\' | '\'' | '"' => out.push(escape),
            'x' => {
                let hex: String = chars.by_ref().take(2).collect();
                let byte = u8::from_str_radix(&hex, 16).ok()?;
                out.push(char::from(byte));
            }
            'u' | 'U' => {
                let n = if escape == 'u' { 4 } else { 8 };
                let hex: String = chars.by_ref().take(n).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            '0'..='7' => {
                let mut octal = escape.to_string();
                octal.extend(chars.by_ref().take(2));
                let byte = u8::from_str_radix(&octal, 8).ok()?;
                out.push(char::from(byte));
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("1m30s"), Ok(90_000));
        assert_eq!(parse_duration("10s53ms"), Ok(10_053));
        assert!(parse_duration("1.5m").is_err());
        assert!(parse_duration("90").is_err());
        assert!(parse_duration("1s1m").is_err());
    }

    #[test]
    fn series_descriptions_expand() {
        let d =
            parse_series_description(r#"metric{a="b", c='d'} 1+1x2 _ stale _x2 1e-5-1x1 -2+1x1"#)
                .unwrap();
        assert_eq!(d.labels.to_string(), r#"{__name__="metric", a="b", c="d"}"#);
        assert_eq!(
            d.slots,
            vec![
                Slot::Float(1.0),
                Slot::Float(2.0),
                Slot::Float(3.0),
                Slot::Omitted,
                Slot::Stale,
                Slot::Omitted,
                Slot::Omitted,
                Slot::Float(1e-5),
                Slot::Float(1e-5 - 1.0),
                Slot::Float(-2.0),
                Slot::Float(-1.0),
            ]
        );
        let h = parse_series_description("h {{schema:1 sum:3 count:22 buckets:[5 10 7]}}x2 {{}}")
            .unwrap();
        assert_eq!(h.slots.len(), 4);
        let empty = parse_series_description("{} 3").unwrap();
        assert!(empty.labels.is_empty());
    }

    #[test]
    fn scripts_split_into_commands() {
        let script = "load 5m\n  x 1 2\n\n# comment\neval instant at 5m x\n  x 2\n\neval range from 0 to 5m step 5m x\n  expect warn msg: boom\n  x 1 2\n\nclear\neval instant at 0 1\n  1\n";
        let commands = parse_script(script);
        assert_eq!(commands.len(), 5);
        let Command::Eval(eval) = &commands[1] else {
            panic!("not an eval")
        };
        assert_eq!(eval.line, 5);
        assert_eq!(eval.expr, "x");
        let Command::Eval(range) = &commands[2] else {
            panic!("not an eval")
        };
        assert!(matches!(range.warn[0], MessageMatch::Exact(ref m) if m == "boom"));
        let Command::Eval(scalar) = &commands[4] else {
            panic!("not an eval")
        };
        assert!(matches!(scalar.expected, Expected::Scalar(v) if v == 1.0));
    }

    #[test]
    fn go_unquote() {
        assert_eq!(unquote(r#""a\"b\n""#).as_deref(), Some("a\"b\n"));
        assert_eq!(unquote("`raw\\n`").as_deref(), Some("raw\\n"));
        assert_eq!(unquote("'x'").as_deref(), Some("x"));
        assert_eq!(unquote(r#""bad"#), None);
    }
}
