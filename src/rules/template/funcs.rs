//! The functions templates can call: Go's builtins (`and`, `or`, `not`,
//! `len`, `index`, `slice`, `print*`, `html`, `js`, `urlquery`, `eq`, `ne`,
//! `lt`, `le`, `gt`, `ge`, `call`) and Prometheus's (`template/template.go`
//! and `prometheus/common`'s `helpers/templates`).

use super::gofmt::{format_float, go_type_name, sprint, sprint_value, sprintf, sprintln};
use super::{QuerySample, Value};

/// Runs a template's `query` function: PromQL at the evaluation time.
pub type QueryFn<'a> = dyn FnMut(&str) -> std::result::Result<Vec<QuerySample>, String> + 'a;

/// What functions may see besides their arguments.
pub struct Context<'a> {
    /// `None` where queries are not possible (parse checks, tests without
    /// storage): `query` then fails.
    pub query: Option<&'a mut QueryFn<'a>>,
    pub external_url: String,
    /// The evaluation time (`now`), in milliseconds.
    pub time_ms: i64,
}

/// Every function name a template may use.
pub const NAMES: &[&str] = &[
    // Go builtins.
    "and",
    "or",
    "not",
    "len",
    "index",
    "slice",
    "print",
    "printf",
    "println",
    "html",
    "js",
    "urlquery",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "call",
    // Prometheus.
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "args",
    "reReplaceAll",
    "safeHtml",
    "match",
    "title",
    "toUpper",
    "toLower",
    "graphLink",
    "tableLink",
    "sortByLabel",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "toTime",
    "toDuration",
    "now",
    "pathPrefix",
    "externalURL",
    "parseDuration",
    "stripPort",
    "stripDomain",
    "urlQueryEscape",
];

pub fn is_defined(name: &str) -> bool {
    NAMES.contains(&name)
}

type Result<T> = std::result::Result<T, String>;

fn want_args(name: &str, args: &[Value], n: usize) -> Result<()> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn string_arg(value: &Value) -> Result<String> {
    match value {
        Value::String(s) | Value::Html(s) => Ok(s.clone()),
        other => Err(format!(
            "wrong type for value; expected string; got {}",
            go_type_name(other)
        )),
    }
}

fn sample_arg(value: &Value) -> Result<Option<QuerySample>> {
    match value {
        Value::Sample(s) => Ok(Some(s.clone())),
        Value::Nil => Ok(None),
        other => Err(format!(
            "wrong type for value; expected *template.sample; got {}",
            go_type_name(other)
        )),
    }
}

fn samples_arg(value: &Value) -> Result<Vec<QuerySample>> {
    match value {
        Value::Samples(s) => Ok(s.clone()),
        Value::Nil => Ok(Vec::new()),
        other => Err(format!(
            "wrong type for value; expected template.queryResult; got {}",
            go_type_name(other)
        )),
    }
}

/// `ConvertToFloat` of `prometheus/common`.
pub fn to_float(value: &Value) -> Result<f64> {
    match value {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::String(s) => parse_go_float(s),
        Value::Duration(ns) => Ok(*ns as f64 / 1e9),
        other => Err(format!("can't convert {} to float", go_type_name(other))),
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for the forms people write.
fn parse_go_float(s: &str) -> Result<f64> {
    let invalid = || format!("strconv.ParseFloat: parsing {s:?}: invalid syntax");
    let lower = s.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    let negative = lower.starts_with('-');
    let special = match unsigned {
        "inf" | "infinity" => Some(f64::INFINITY),
        "nan" => Some(f64::NAN),
        _ => None,
    };
    if let Some(v) = special {
        if lower.len() - unsigned.len() > 1 {
            return Err(invalid());
        }
        return Ok(if negative { -v } else { v });
    }
    if unsigned.is_empty()
        || !unsigned
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'))
    {
        return Err(invalid());
    }
    s.parse::<f64>().map_err(|_| invalid())
}

pub fn call(name: &str, args: Vec<Value>, ctx: &mut Context<'_>) -> Result<Value> {
    Ok(match name {
        "not" => {
            want_args(name, &args, 1)?;
            Value::Bool(!super::exec::truth(&args[0]))
        }
        "len" => {
            want_args(name, &args, 1)?;
            Value::Int(match &args[0] {
                Value::String(s) | Value::Html(s) => s.len(),
                Value::StrMap(m) => m.len(),
                Value::Map(m) => m.len(),
                Value::List(l) => l.len(),
                Value::Samples(s) => s.len(),
                other => return Err(format!("len of type {}", go_type_name(other))),
            } as i64)
        }
        "index" => index(args)?,
        "slice" => slice(args)?,
        "print" => Value::String(sprint(&args)),
        "println" => Value::String(sprintln(&args)),
        "printf" => {
            let Some(format) = args.first() else {
                return Err("wrong number of args for printf: want at least 1 got 0".into());
            };
            Value::String(sprintf(&string_arg(format)?, &args[1..]))
        }
        "html" => Value::String(html_escape(&eval_args(&args))),
        "js" => Value::String(js_escape(&eval_args(&args))),
        "urlquery" => Value::String(query_escape(&eval_args(&args))),
        "eq" => Value::Bool(eq(&args)?),
        "ne" => {
            want_args(name, &args, 2)?;
            Value::Bool(!eq(&args)?)
        }
        "lt" | "le" | "gt" | "ge" => {
            want_args(name, &args, 2)?;
            let ordering = compare(&args[0], &args[1])?;
            Value::Bool(match name {
                "lt" => ordering == std::cmp::Ordering::Less,
                "le" => ordering != std::cmp::Ordering::Greater,
                "gt" => ordering == std::cmp::Ordering::Greater,
                _ => ordering != std::cmp::Ordering::Less,
            })
        }
        "call" => {
            return Err(match args.first() {
                Some(v) => format!("non-function of type {}", go_type_name(v)),
                None => "wrong number of args for call: want at least 1 got 0".into(),
            });
        }
        "query" => {
            want_args(name, &args, 1)?;
            let q = string_arg(&args[0])?;
            let Some(query) = ctx.query.as_mut() else {
                return Err("queries are not available here".into());
            };
            Value::Samples(query(&q)?)
        }
        "first" => {
            want_args(name, &args, 1)?;
            match samples_arg(&args[0])?.into_iter().next() {
                Some(s) => Value::Sample(s),
                None => return Err("first() called on vector with no elements".into()),
            }
        }
        "label" => {
            want_args(name, &args, 2)?;
            let label = string_arg(&args[0])?;
            let sample = sample_arg(&args[1])?;
            Value::String(
                sample
                    .and_then(|s| s.labels.get(&label).cloned())
                    .unwrap_or_default(),
            )
        }
        "value" => {
            want_args(name, &args, 1)?;
            Value::Float(sample_arg(&args[0])?.map_or(0.0, |s| s.value))
        }
        "strvalue" => {
            want_args(name, &args, 1)?;
            Value::String(
                sample_arg(&args[0])?
                    .and_then(|s| s.labels.get("__value__").cloned())
                    .unwrap_or_default(),
            )
        }
        "args" => Value::Map(
            args.into_iter()
                .enumerate()
                .map(|(i, v)| (format!("arg{i}"), v))
                .collect(),
        ),
        "reReplaceAll" => {
            want_args(name, &args, 3)?;
            let pattern = string_arg(&args[0])?;
            let replacement = string_arg(&args[1])?;
            let text = string_arg(&args[2])?;
            let re = regex::Regex::new(&pattern).map_err(|e| {
                format!("regexp: Compile({}): {e}", super::gofmt::go_quote(&pattern))
            })?;
            Value::String(re.replace_all(&text, replacement.as_str()).into_owned())
        }
        "safeHtml" => {
            want_args(name, &args, 1)?;
            Value::Html(string_arg(&args[0])?)
        }
        "match" => {
            want_args(name, &args, 2)?;
            let pattern = string_arg(&args[0])?;
            let text = string_arg(&args[1])?;
            let re =
                regex::Regex::new(&pattern).map_err(|e| format!("error parsing regexp: {e}"))?;
            Value::Bool(re.is_match(&text))
        }
        "title" => {
            want_args(name, &args, 1)?;
            Value::String(title(&string_arg(&args[0])?))
        }
        "toUpper" => {
            want_args(name, &args, 1)?;
            Value::String(string_arg(&args[0])?.to_uppercase())
        }
        "toLower" => {
            want_args(name, &args, 1)?;
            Value::String(string_arg(&args[0])?.to_lowercase())
        }
        "graphLink" | "tableLink" => {
            want_args(name, &args, 1)?;
            let tab = if name == "graphLink" { 0 } else { 1 };
            Value::String(format!(
                "/graph?g0.expr={}&g0.tab={tab}",
                query_escape(&string_arg(&args[0])?)
            ))
        }
        "sortByLabel" => {
            want_args(name, &args, 2)?;
            let label = string_arg(&args[0])?;
            let mut samples = samples_arg(&args[1])?;
            samples.sort_by(|a, b| {
                let empty = String::new();
                a.labels
                    .get(&label)
                    .unwrap_or(&empty)
                    .cmp(b.labels.get(&label).unwrap_or(&empty))
            });
            Value::Samples(samples)
        }
        "humanize" => {
            want_args(name, &args, 1)?;
            Value::String(humanize(to_float(&args[0])?))
        }
        "humanize1024" => {
            want_args(name, &args, 1)?;
            Value::String(humanize1024(to_float(&args[0])?))
        }
        "humanizeDuration" => {
            want_args(name, &args, 1)?;
            Value::String(humanize_duration(to_float(&args[0])?))
        }
        "humanizePercentage" => {
            want_args(name, &args, 1)?;
            Value::String(format!(
                "{}%",
                format_float(to_float(&args[0])? * 100.0, 'g', Some(4))
            ))
        }
        "humanizeTimestamp" => {
            want_args(name, &args, 1)?;
            let v = to_float(&args[0])?;
            if !v.is_finite() {
                Value::String(format_float(v, 'g', Some(4)))
            } else {
                Value::String(go_time_string(float_to_time_ms(v)?))
            }
        }
        "toTime" => {
            want_args(name, &args, 1)?;
            let v = to_float(&args[0])?;
            if !v.is_finite() {
                return Err("value is NaN or Inf".into());
            }
            Value::Time(float_to_time_ms(v)?)
        }
        "toDuration" => {
            want_args(name, &args, 1)?;
            let v = to_float(&args[0])? * 1e9;
            Value::Duration(if v.is_nan() {
                i64::MIN
            } else {
                v.clamp(i64::MIN as f64, i64::MAX as f64) as i64
            })
        }
        "now" => {
            want_args(name, &args, 0)?;
            Value::Float(ctx.time_ms as f64 / 1000.0)
        }
        "pathPrefix" => {
            want_args(name, &args, 0)?;
            Value::String(
                url::Url::parse(&ctx.external_url)
                    .map(|u| u.path().trim_end_matches('/').to_string())
                    .unwrap_or_default(),
            )
        }
        "externalURL" => {
            want_args(name, &args, 0)?;
            Value::String(ctx.external_url.clone())
        }
        "parseDuration" => {
            want_args(name, &args, 1)?;
            let text = string_arg(&args[0])?;
            let (negative, body) = match text.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, text.as_str()),
            };
            let d = scraper::config::parse_duration(body)?;
            let seconds = d.as_secs_f64();
            Value::Float(if negative { -seconds } else { seconds })
        }
        "stripPort" => {
            want_args(name, &args, 1)?;
            let host_port = string_arg(&args[0])?;
            Value::String(split_host_port(&host_port).map_or(host_port, |(host, _)| host))
        }
        "stripDomain" => {
            want_args(name, &args, 1)?;
            Value::String(strip_domain(&string_arg(&args[0])?))
        }
        "urlQueryEscape" => {
            want_args(name, &args, 1)?;
            Value::String(query_escape(&string_arg(&args[0])?))
        }
        other => return Err(format!("function {other:?} not defined")),
    })
}

/// `evalArgs` of Go's builtins: one string argument as is, else `Sprint`.
fn eval_args(args: &[Value]) -> String {
    match args {
        [Value::String(s)] => s.clone(),
        _ => sprint(args),
    }
}

fn index(args: Vec<Value>) -> Result<Value> {
    let mut iter = args.into_iter();
    let Some(mut item) = iter.next() else {
        return Err("wrong number of args for index: want at least 1 got 0".into());
    };
    for key in iter {
        item = match (&item, &key) {
            (Value::StrMap(m), Value::String(k)) => {
                Value::String(m.get(k).cloned().unwrap_or_default())
            }
            (Value::Map(m), Value::String(k)) => m.get(k).cloned().unwrap_or(Value::Nil),
            (Value::List(l), Value::Int(i)) => usize::try_from(*i)
                .ok()
                .and_then(|i| l.get(i).cloned())
                .ok_or_else(|| format!("index out of range: {i}"))?,
            (Value::Samples(s), Value::Int(i)) => usize::try_from(*i)
                .ok()
                .and_then(|i| s.get(i).cloned())
                .map(Value::Sample)
                .ok_or_else(|| format!("index out of range: {i}"))?,
            (Value::String(s), Value::Int(i)) => usize::try_from(*i)
                .ok()
                .and_then(|i| s.as_bytes().get(i).copied())
                .map(|b| Value::Int(i64::from(b)))
                .ok_or_else(|| format!("index out of range: {i}"))?,
            (Value::Nil, _) => return Err("index of untyped nil".into()),
            (container, key) => {
                return Err(format!(
                    "cannot index {} with {}",
                    go_type_name(container),
                    go_type_name(key)
                ));
            }
        };
    }
    Ok(item)
}

fn slice(args: Vec<Value>) -> Result<Value> {
    let Some(item) = args.first() else {
        return Err("wrong number of args for slice: want at least 1 got 0".into());
    };
    let mut bounds = Vec::new();
    for arg in &args[1..] {
        match arg {
            Value::Int(i) => {
                bounds.push(usize::try_from(*i).map_err(|_| format!("index out of range: {i}"))?)
            }
            other => {
                return Err(format!(
                    "cannot index slice/array with type {}",
                    go_type_name(other)
                ));
            }
        }
    }
    let len = match item {
        Value::String(s) => s.len(),
        Value::List(l) => l.len(),
        other => return Err(format!("can't slice item of type {}", go_type_name(other))),
    };
    let start = bounds.first().copied().unwrap_or(0);
    let end = bounds.get(1).copied().unwrap_or(len);
    if start > end || end > len {
        return Err(format!("index out of range: {end}"));
    }
    Ok(match item {
        Value::String(s) => Value::String(
            s.get(start..end)
                .ok_or_else(|| format!("index out of range: {end}"))?
                .to_string(),
        ),
        Value::List(l) => Value::List(l[start..end].to_vec()),
        _ => Value::Nil,
    })
}

/// The comparable class of a value for `eq` and the ordering functions.
enum Basic<'a> {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

fn basic(value: &Value) -> Option<Basic<'_>> {
    match value {
        Value::Bool(b) => Some(Basic::Bool(*b)),
        Value::Int(i) => Some(Basic::Int(*i)),
        Value::Float(f) => Some(Basic::Float(*f)),
        Value::String(s) | Value::Html(s) => Some(Basic::Str(s)),
        _ => None,
    }
}

const BAD_COMPARISON: &str = "incompatible types for comparison";

fn eq(args: &[Value]) -> Result<bool> {
    let Some((first, rest)) = args.split_first() else {
        return Err("wrong number of args for eq: want at least 1 got 0".into());
    };
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    for other in rest {
        let equal = match (basic(first), basic(other)) {
            (Some(Basic::Bool(a)), Some(Basic::Bool(b))) => a == b,
            (Some(Basic::Int(a)), Some(Basic::Int(b))) => a == b,
            (Some(Basic::Float(a)), Some(Basic::Float(b))) => a == b,
            (Some(Basic::Str(a)), Some(Basic::Str(b))) => a == b,
            (Some(_), Some(_)) => return Err(BAD_COMPARISON.into()),
            _ => match (first, other) {
                (Value::Nil, Value::Nil) => true,
                (Value::Nil, _) | (_, Value::Nil) => false,
                _ => {
                    return Err(format!(
                        "non-comparable types {}: {}, {}: {}",
                        sprint_value(first),
                        go_type_name(first),
                        go_type_name(other),
                        sprint_value(other)
                    ));
                }
            },
        };
        if equal {
            return Ok(true);
        }
    }
    Ok(false)
}

fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering> {
    use std::cmp::Ordering;
    match (basic(a), basic(b)) {
        (Some(Basic::Int(x)), Some(Basic::Int(y))) => Ok(x.cmp(&y)),
        // NaN compares as neither less nor greater, as in Go.
        (Some(Basic::Float(x)), Some(Basic::Float(y))) => {
            Ok(x.partial_cmp(&y).unwrap_or(Ordering::Equal))
        }
        (Some(Basic::Str(x)), Some(Basic::Str(y))) => Ok(x.cmp(y)),
        (Some(Basic::Bool(_)), Some(Basic::Bool(_))) | (None, _) | (_, None) => {
            Err("invalid type for comparison".into())
        }
        _ => Err(BAD_COMPARISON.into()),
    }
}

/// Go's `template.HTMLEscapeString`.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's (deprecated) `strings.Title`: upper-cases the first letter of every
/// word.
fn title(s: &str) -> String {
    let is_separator = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            !(c.is_alphanumeric()) && c.is_whitespace()
        }
    };
    let mut out = String::with_capacity(s.len());
    let mut previous = ' ';
    for c in s.chars() {
        if is_separator(previous) {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        previous = c;
    }
    out
}

/// Go's `net.SplitHostPort`, for the forms addresses take.
fn split_host_port(host_port: &str) -> Option<(String, String)> {
    if let Some(rest) = host_port.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host.to_string(), port.to_string()));
    }
    let (host, port) = host_port.rsplit_once(':')?;
    if host.contains(':') {
        return None;
    }
    Some((host.to_string(), port.to_string()))
}

fn strip_domain(host_port: &str) -> String {
    let (host, port) = match split_host_port(host_port) {
        Some((host, port)) => (host, port),
        None => (host_port.to_string(), String::new()),
    };
    if host.parse::<std::net::IpAddr>().is_ok() {
        return host_port.to_string();
    }
    let short = host.split('.').next().unwrap_or_default().to_string();
    if port.is_empty() {
        short
    } else if short.contains(':') {
        format!("[{short}]:{port}")
    } else {
        format!("{short}:{port}")
    }
}

fn humanize(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format_float(v, 'g', Some(4));
    }
    let mut v = v;
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", format_float(v, 'g', Some(4)))
}

fn humanize1024(v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return format_float(v, 'g', Some(4));
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", format_float(v, 'g', Some(4)))
}

fn humanize_duration(v: f64) -> String {
    if !v.is_finite() {
        return format_float(v, 'g', Some(4));
    }
    if v == 0.0 {
        return format!("{}s", format_float(v, 'g', Some(4)));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        let v = v.abs();
        let duration = v as i64;
        let seconds = duration % 60;
        let minutes = (duration / 60) % 60;
        let hours = (duration / 60 / 60) % 24;
        let days = duration / 60 / 60 / 24;
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", format_float(v, 'g', Some(4)));
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", format_float(v, 'g', Some(4)))
}

/// Unix seconds to milliseconds, truncated as Prometheus's
/// `model.TimeFromUnixNano` does.
fn float_to_time_ms(v: f64) -> Result<i64> {
    let ns = v * 1e9;
    if ns > i64::MAX as f64 || ns < i64::MIN as f64 {
        return Err(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            super::gofmt::sprint_value(&Value::Float(v))
        ));
    }
    Ok((ns as i64) / 1_000_000)
}

/// Go's `time.Time.String()` of a UTC time:
/// `2006-01-02 15:04:05.999999999 +0000 UTC`.
pub fn go_time_string(ms: i64) -> String {
    let Some(time) = chrono::DateTime::from_timestamp_millis(ms) else {
        return format!("{ms}ms");
    };
    let mut out = time.format("%Y-%m-%d %H:%M:%S").to_string();
    let fraction = ms.rem_euclid(1000);
    if fraction != 0 {
        let digits = format!("{fraction:03}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

/// Go's `time.Duration.String()` of nanoseconds: `1h2m3.5s`, `1.5ms`.
pub fn go_duration_string(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs();
    let fraction = |value: u64, unit: u64| -> String {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let width = unit.ilog10() as usize;
        let digits = format!("{rest:0width$}");
        format!("{whole}.{}", digits.trim_end_matches('0'))
    };
    if u < 1_000 {
        return format!("{sign}{u}ns");
    }
    if u < 1_000_000 {
        return format!("{sign}{}µs", fraction(u, 1_000));
    }
    if u < 1_000_000_000 {
        return format!("{sign}{}ms", fraction(u, 1_000_000));
    }
    let hours = u / 3_600_000_000_000;
    let minutes = (u / 60_000_000_000) % 60;
    let seconds = fraction(u % 60_000_000_000, 1_000_000_000);
    let mut out = sign.to_string();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{seconds}s"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected strings are what Prometheus's template functions return
    // (template/template_test.go and prometheus/common's tests).
    #[test]
    fn humanizers_match_prometheus() {
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize(1.0), "1");
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(0.001234), "1.234m");
        assert_eq!(humanize(-1234.0), "-1.234k");
        assert_eq!(humanize(f64::INFINITY), "+Inf");
        assert_eq!(humanize1024(1.0), "1");
        assert_eq!(humanize1024(1048576.0), "1Mi");
        assert_eq!(humanize1024(1536.0), "1.5ki");
        assert_eq!(humanize_duration(0.0), "0s");
        assert_eq!(humanize_duration(1.0), "1s");
        assert_eq!(humanize_duration(90.5), "1m 30s");
        assert_eq!(humanize_duration(3661.0), "1h 1m 1s");
        assert_eq!(humanize_duration(90061.0), "1d 1h 1m 1s");
        assert_eq!(humanize_duration(0.0015), "1.5ms");
        assert_eq!(humanize_duration(1.5), "1.5s");
        assert_eq!(humanize_duration(-90.0), "-1m 30s");
        assert_eq!(
            go_time_string(1_435_065_584_128),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(go_time_string(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(go_duration_string(3_723_500_000_000), "1h2m3.5s");
        assert_eq!(go_duration_string(1_500_000), "1.5ms");
        assert_eq!(go_duration_string(60_000_000_000), "1m0s");
    }

    #[test]
    fn strings_and_hosts() {
        assert_eq!(title("hello world-foo"), "Hello World-Foo");
        assert_eq!(query_escape("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
        assert_eq!(strip_domain("foo.example.com:9100"), "foo:9100");
        assert_eq!(strip_domain("foo.example.com"), "foo");
        assert_eq!(strip_domain("10.0.0.1:9100"), "10.0.0.1:9100");
        assert_eq!(
            split_host_port("[::1]:80"),
            Some(("::1".into(), "80".into()))
        );
        assert_eq!(split_host_port("host"), None);
    }

    #[test]
    fn comparisons_follow_go() {
        let f = Value::Float(1.0);
        let i = Value::Int(1);
        assert_eq!(eq(&[f.clone(), i.clone()]), Err(BAD_COMPARISON.into()));
        assert_eq!(eq(&[i.clone(), Value::Int(2), Value::Int(1)]), Ok(true));
        assert!(compare(&f, &i).is_err());
        assert_eq!(
            compare(&Value::String("a".into()), &Value::String("b".into())),
            Ok(std::cmp::Ordering::Less)
        );
    }
}
