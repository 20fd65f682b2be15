//! Experimental Prometheus 3 syntax that promql-parser 0.11 does not know,
//! handled at our edge by rewriting the text before it is parsed:
//! - duration expressions in range brackets and after `offset`
//!   (`[5m+30s]`, `[step()*2:1m]`, `offset min_of(step(), 1s)`), evaluated to
//!   plain millisecond durations;
//! - the `anchored` and `smoothed` selector modifiers, removed from the text
//!   and returned with their positions, for the parser to attach to the
//!   selectors they follow;
//! - `\xNN` escapes of bytes from 0x80 in string literals: in Go (and so in
//!   Prometheus) each is one byte, in promql-parser one code point. Runs of
//!   them are decoded here as bytes: valid UTF-8 becomes its characters,
//!   anything else U+FFFD, which label name checks then refuse as the invalid
//!   UTF-8 it stands for (a Rust string cannot hold the bytes themselves).

use super::super::error::{Error, Result};

/// A modifier of a selector's range or lookback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extension {
    /// The window extends back to the last sample before its start.
    Anchored,
    /// Values are interpolated at the window edges.
    Smoothed,
}

impl Extension {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Extension::Anchored => "anchored",
            Extension::Smoothed => "smoothed",
        }
    }
}

/// The rewritten text and where the removed modifiers were: each at the end
/// (trailing whitespace excluded) of the selector it belongs to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rewritten {
    pub text: String,
    pub extensions: Vec<(usize, Extension)>,
}

/// What `step()` and `range()` mean: the query's step and `end - start`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct QueryTimes {
    pub step_ms: i64,
    pub range_ms: i64,
}

/// A matcher added to the label selector of `info()`, whose matchers may
/// all match the empty string (the parser refuses such a selector
/// elsewhere); the parser's caller removes it again.
pub(crate) const INFO_SELECTOR_MARKER: &str = "__info_selector__";

/// Rewrites the experimental syntax; text without it comes back unchanged.
///
/// # Errors
/// A duration expression that does not evaluate to a valid duration.
pub(crate) fn rewrite(query: &str, times: QueryTimes) -> Result<Rewritten> {
    let mut rewritten = rewrite_syntax(query, times)?;
    rewritten.text = mark_info_selectors(&rewritten.text);
    Ok(rewritten)
}

/// Adds [`INFO_SELECTOR_MARKER`] to the label selector argument of every
/// `info(...)` call. The text only grows after the selectors, so the
/// positions of removed modifiers before them stay valid; those after shift,
/// which `info()` arguments make rare enough to accept.
fn mark_info_selectors(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if matches!(bytes[i], b'"' | b'\'' | b'`') {
            let end = string_end(bytes, i);
            out.push_str(&text[i..end]);
            i = end;
            continue;
        }
        if is_word_start(bytes, i) && text[i..].starts_with("info") && word_end(bytes, i) == i + 4 {
            let mut open = i + 4;
            while open < bytes.len() && bytes[open].is_ascii_whitespace() {
                open += 1;
            }
            if bytes.get(open) == Some(&b'(')
                && let Some(close) = group_end(bytes, open)
                && let Some(selector) = info_selector_span(bytes, open + 1, close - 1)
            {
                out.push_str(&text[i..selector.1]);
                let inner = text[selector.0 + 1..selector.1].trim_end();
                if !inner.is_empty() && !inner.ends_with(',') {
                    out.push(',');
                }
                out.push_str(INFO_SELECTOR_MARKER);
                out.push_str("=\"1\"");
                i = selector.1;
                continue;
            }
        }
        let width = text[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&text[i..i + width]);
        i += width;
    }
    out
}

/// The span `({, })` of a second argument that is a bare label selector.
fn info_selector_span(bytes: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    let mut depth = 0i32;
    let mut i = start;
    while i < end {
        match bytes[i] {
            b'"' | b'\'' | b'`' => {
                i = string_end(bytes, i);
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b',' if depth == 0 => {
                let mut open = i + 1;
                while open < end && bytes[open].is_ascii_whitespace() {
                    open += 1;
                }
                if bytes.get(open) != Some(&b'{') {
                    return None;
                }
                let mut close = open;
                while close < end && bytes[close] != b'}' {
                    if matches!(bytes[close], b'"' | b'\'' | b'`') {
                        close = string_end(bytes, close);
                        continue;
                    }
                    close += 1;
                }
                return (close < end).then_some((open, close));
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn rewrite_syntax(query: &str, times: QueryTimes) -> Result<Rewritten> {
    let bytes = query.as_bytes();
    let mut out = Rewritten::default();
    let mut i = 0;
    let mut brace_depth = 0usize;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'"' | b'\'' | b'`' => {
                let end = string_end(bytes, i);
                if c == b'`' {
                    out.text.push_str(&query[i..end]);
                } else {
                    out.text.push_str(&decode_byte_escapes(&query[i..end]));
                }
                i = end;
                continue;
            }
            b'#' => {
                let end = query[i..].find('\n').map_or(bytes.len(), |n| i + n);
                out.text.push_str(&query[i..end]);
                i = end;
                continue;
            }
            b'{' => brace_depth += 1,
            b'}' => brace_depth = brace_depth.saturating_sub(1),
            b'[' if brace_depth == 0 => {
                if let Some(close) = matching_bracket(bytes, i) {
                    out.text.push('[');
                    out.text
                        .push_str(&rewrite_brackets(&query[i + 1..close], times)?);
                    out.text.push(']');
                    i = close + 1;
                    continue;
                }
            }
            _ if brace_depth == 0 && is_word_start(bytes, i) => {
                let end = word_end(bytes, i);
                let word = query[i..end].to_ascii_lowercase();
                match word.as_str() {
                    "offset" => {
                        let (rewritten, consumed) = rewrite_offset(&query[end..], times)?;
                        // The parser rejects a zero duration; no offset is
                        // the same thing.
                        if rewritten.trim() != "0ms" {
                            out.text.push_str(&query[i..end]);
                            out.text.push_str(&rewritten);
                        }
                        i = end + consumed;
                        continue;
                    }
                    "anchored" | "smoothed" if follows_selector(&out.text) => {
                        let kept = out.text.trim_end().len();
                        out.text.truncate(kept);
                        let extension = if word == "anchored" {
                            Extension::Anchored
                        } else {
                            Extension::Smoothed
                        };
                        out.extensions.push((kept, extension));
                        i = end;
                        continue;
                    }
                    _ => {
                        out.text.push_str(&query[i..end]);
                        i = end;
                        continue;
                    }
                }
            }
            _ => {}
        }
        // Copy one character (not one byte).
        let width = query[i..].chars().next().map_or(1, char::len_utf8);
        out.text.push_str(&query[i..i + width]);
        i += width;
    }
    Ok(out)
}

/// The value of hex escape `\xNN` at the start of `s` when it is a byte
/// from 0x80 (below, it is ASCII and means the same code point).
fn high_byte_escape(s: &str) -> Option<u8> {
    let hex = s.strip_prefix("\\x")?.get(..2)?;
    u8::from_str_radix(hex, 16).ok().filter(|&b| b >= 0x80)
}

/// A quoted string literal with its runs of high `\xNN` escapes decoded as
/// bytes (see the module documentation).
fn decode_byte_escapes(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len());
    let mut i = 0;
    while i < literal.len() {
        let rest = &literal[i..];
        if high_byte_escape(rest).is_some() {
            let mut bytes = Vec::new();
            while let Some(byte) = high_byte_escape(&literal[i..]) {
                bytes.push(byte);
                i += 4;
            }
            out.push_str(&String::from_utf8_lossy(&bytes));
            continue;
        }
        let mut chars = rest.chars();
        let Some(c) = chars.next() else { break };
        out.push(c);
        i += c.len_utf8();
        // An escaped character is copied with its backslash.
        if c == '\\'
            && let Some(escaped) = chars.next()
        {
            out.push(escaped);
            i += escaped.len_utf8();
        }
    }
    out
}

fn string_end(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == b'\\' && quote != b'`' {
            i += 2;
            continue;
        }
        if bytes[i] == quote {
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

fn matching_bracket(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' | b'`' => {
                i = string_end(bytes, i);
                continue;
            }
            b'[' => depth += 1,
            b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

fn is_word_start(bytes: &[u8], i: usize) -> bool {
    bytes[i].is_ascii_alphabetic() && (i == 0 || !is_ident(bytes[i - 1]))
}

fn word_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < bytes.len() && is_ident(bytes[i]) {
        i += 1;
    }
    i
}

/// Whether the text so far ends like a selector (name, matchers, range,
/// `@` time or offset), which `anchored`/`smoothed` may follow.
fn follows_selector(text: &str) -> bool {
    text.trim_end()
        .bytes()
        .last()
        .is_some_and(|c| is_ident(c) || matches!(c, b'}' | b']' | b')'))
}

/// A duration or number literal the parser understands as it is.
fn is_plain_duration(s: &str) -> bool {
    let s = s.trim();
    if s.is_empty() {
        return true;
    }
    if s.parse::<f64>().is_ok() && !s.contains(['e', 'E', 'x', 'X', 'i', 'I', 'n', 'N']) {
        return true;
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut units = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return false;
        }
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        if !matches!(&s[unit_start..i], "ms" | "s" | "m" | "h" | "d" | "w" | "y") {
            return false;
        }
        units += 1;
    }
    units > 0
}

fn rewrite_brackets(inner: &str, times: QueryTimes) -> Result<String> {
    // A subquery `[range:step]`: split at the top-level colon.
    let mut depth = 0i32;
    let mut colon = None;
    for (i, c) in inner.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ':' if depth == 0 => {
                colon = Some(i);
                break;
            }
            _ => {}
        }
    }
    let parts: Vec<&str> = match colon {
        Some(i) => vec![&inner[..i], &inner[i + 1..]],
        None => vec![inner],
    };
    let mut rewritten = Vec::with_capacity(parts.len());
    for part in parts {
        if is_plain_duration(part) {
            rewritten.push(part.to_string());
        } else {
            let seconds = DurationParser::new(part, times).parse_all()?;
            rewritten.push(duration_literal(seconds, false)?);
        }
    }
    Ok(rewritten.join(":"))
}

/// Rewrites the operand of `offset` when it is more than a literal: a
/// parenthesized expression or a function call, with an optional sign.
/// Returns the rewritten operand and how many bytes of `rest` it replaces.
fn rewrite_offset(rest: &str, times: QueryTimes) -> Result<(String, usize)> {
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
        i += 1;
    }
    let operand_start = i;
    let mut negative = false;
    while i < bytes.len() && matches!(bytes[i], b'-' | b'+') {
        negative ^= bytes[i] == b'-';
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
    }
    let term_start = i;
    let term_end = if bytes.get(i) == Some(&b'(') {
        group_end(bytes, i)
    } else if bytes.get(i).is_some_and(u8::is_ascii_alphabetic) {
        let name_end = word_end(bytes, i);
        let mut j = name_end;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if bytes.get(j) == Some(&b'(') {
            group_end(bytes, j)
        } else {
            return Ok((String::new(), 0));
        }
    } else {
        // A literal: the parser handles it.
        return Ok((String::new(), 0));
    };
    let Some(term_end) = term_end else {
        return Ok((String::new(), 0));
    };
    let mut seconds = DurationParser::new(&rest[term_start..term_end], times).parse_all()?;
    if negative {
        seconds = -seconds;
    }
    let literal = duration_literal(seconds, true)?;
    Ok((format!("{}{literal}", &rest[..operand_start]), term_end))
}

fn group_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &c) in bytes.iter().enumerate().skip(open) {
        match c {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Seconds as a millisecond literal; negative only where allowed (offsets).
fn duration_literal(seconds: f64, allow_negative: bool) -> Result<String> {
    if !seconds.is_finite() {
        return Err(Error::parse(format!("invalid duration: {seconds}")));
    }
    let ms = (seconds * 1000.0).round();
    if ms < 0.0 && !allow_negative {
        return Err(Error::parse(format!(
            "duration must be greater than 0, got {seconds}s"
        )));
    }
    if ms.abs() > 9.0e15 {
        return Err(Error::parse(format!("duration out of range: {seconds}s")));
    }
    let ms = ms as i64;
    Ok(if ms < 0 {
        format!("-{}ms", -ms)
    } else {
        format!("{ms}ms")
    })
}

/// Evaluates a duration expression in seconds: numbers (seconds) and
/// durations, `+ - * / % ^`, parentheses, `step()`, `range()`, `min_of`,
/// `max_of`. `^` binds tighter than a sign, which binds tighter than `*`.
struct DurationParser<'a> {
    text: &'a str,
    pos: usize,
    times: QueryTimes,
}

impl<'a> DurationParser<'a> {
    fn new(text: &'a str, times: QueryTimes) -> Self {
        DurationParser {
            text,
            pos: 0,
            times,
        }
    }

    fn error(&self) -> Error {
        Error::parse(format!("invalid duration expression {:?}", self.text))
    }

    fn skip_ws(&mut self) {
        while self.text[self.pos..].starts_with(|c: char| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.text[self.pos..].starts_with(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn parse_all(mut self) -> Result<f64> {
        let v = self.sum()?;
        self.skip_ws();
        if self.pos != self.text.len() {
            return Err(self.error());
        }
        Ok(v)
    }

    fn sum(&mut self) -> Result<f64> {
        let mut v = self.product()?;
        loop {
            if self.eat('+') {
                v += self.product()?;
            } else if self.eat('-') {
                v -= self.product()?;
            } else {
                return Ok(v);
            }
        }
    }

    fn product(&mut self) -> Result<f64> {
        let mut v = self.unary()?;
        loop {
            if self.eat('*') {
                v *= self.unary()?;
            } else if self.eat('/') {
                v /= self.unary()?;
            } else if self.eat('%') {
                v %= self.unary()?;
            } else {
                return Ok(v);
            }
        }
    }

    fn unary(&mut self) -> Result<f64> {
        if self.eat('-') {
            return Ok(-self.unary()?);
        }
        if self.eat('+') {
            return self.unary();
        }
        self.power()
    }

    fn power(&mut self) -> Result<f64> {
        let base = self.primary()?;
        if self.eat('^') {
            // Right-associative, and the exponent may carry a sign.
            let exponent = self.unary()?;
            return Ok(base.powf(exponent));
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<f64> {
        self.skip_ws();
        if self.eat('(') {
            let v = self.sum()?;
            if !self.eat(')') {
                return Err(self.error());
            }
            return Ok(v);
        }
        let rest = &self.text[self.pos..];
        let bytes = rest.as_bytes();
        if bytes.first().is_some_and(u8::is_ascii_alphabetic) {
            let name_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = rest[..name_len].to_ascii_lowercase();
            self.pos += name_len;
            if !self.eat('(') {
                return Err(self.error());
            }
            let mut args = Vec::new();
            if !self.eat(')') {
                loop {
                    args.push(self.sum()?);
                    if self.eat(')') {
                        break;
                    }
                    if !self.eat(',') {
                        return Err(self.error());
                    }
                }
            }
            return match (name.as_str(), args.as_slice()) {
                ("step", []) => Ok(self.times.step_ms as f64 / 1000.0),
                ("range", []) => Ok(self.times.range_ms as f64 / 1000.0),
                ("min_of", [a, b]) => Ok(if a.is_nan() || b.is_nan() {
                    f64::NAN
                } else {
                    a.min(*b)
                }),
                ("max_of", [a, b]) => Ok(if a.is_nan() || b.is_nan() {
                    f64::NAN
                } else {
                    a.max(*b)
                }),
                _ => Err(self.error()),
            };
        }
        // A number, or a duration such as `1h30m`.
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
            .unwrap_or(rest.len());
        let token = &rest[..len];
        if token.is_empty() {
            return Err(self.error());
        }
        self.pos += len;
        if let Ok(v) = token.parse::<f64>() {
            return Ok(v);
        }
        parse_duration_seconds(token).ok_or_else(|| self.error())
    }
}

fn parse_duration_seconds(token: &str) -> Option<f64> {
    const UNITS: [(&str, f64); 7] = [
        ("y", 365.0 * 86_400.0),
        ("w", 7.0 * 86_400.0),
        ("d", 86_400.0),
        ("h", 3_600.0),
        ("m", 60.0),
        ("s", 1.0),
        ("ms", 0.001),
    ];
    let bytes = token.as_bytes();
    let mut i = 0;
    let mut total = 0.0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let n: f64 = token[start..i].parse().ok()?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &token[unit_start..i];
        let (_, seconds) = UNITS.iter().find(|(u, _)| *u == unit)?;
        total += n * seconds;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: &str, expected: &str) {
        let times = QueryTimes {
            step_ms: 5_000,
            range_ms: 10_000,
        };
        assert_eq!(rewrite(query, times).unwrap().text, expected);
    }

    #[test]
    fn high_byte_escapes_are_bytes() {
        check(r#"f("\xc3\xbf", '\xff')"#, "f(\"\u{ff}\", '\u{fffd}')");
        check(r#"f("\\xff", "\x41")"#, r#"f("\\xff", "\x41")"#);
        check(r#"f(`\xff`)"#, r#"f(`\xff`)"#);
    }

    #[test]
    fn plain_queries_are_unchanged() {
        check("rate(x[5m]) offset 1m", "rate(x[5m]) offset 1m");
        check(r#"x{a="[1+1]"}[1m:30s]"#, r#"x{a="[1+1]"}[1m:30s]"#);
        check("x offset -5m + 2", "x offset -5m + 2");
    }

    #[test]
    fn duration_expressions_become_literals() {
        check("changes(x[26m+4m])", "changes(x[1800000ms])");
        check("x[60*30]", "x[1800000ms]");
        check("x[1h30m % 1h]", "x[1800000ms]");
        check("x[29s+1s:20*500ms]", "x[30000ms:10000ms]");
        check("x[step()+1ms]", "x[5001ms]");
        check("x[min_of(step()+1,1h)]", "x[6000ms]");
        check("x[range()]", "x[10000ms]");
        check("x offset (100 + 2)", "x offset 102000ms");
        check("x offset -step()*2", "x offset -5000ms*2");
        check("x offset min_of(step(), 1s)+8000", "x offset 1000ms+8000");
        check("x offset (-2 ^ 2)", "x offset -4000ms");
        check("x offset range() + 1", "x offset 10000ms + 1");
        let instant = rewrite("x offset range() + 1", QueryTimes::default()).unwrap();
        assert_eq!(instant.text, "x  + 1");
        check(
            r#"info(x, {data=~".*"})"#,
            r#"info(x, {data=~".*",__info_selector__="1"})"#,
        );
        check("info(x)", "info(x)");
    }

    #[test]
    fn modifiers_are_removed_and_located() {
        let r = rewrite("rate(x[1m] anchored) + y smoothed", QueryTimes::default()).unwrap();
        assert_eq!(r.text, "rate(x[1m]) + y");
        assert_eq!(
            r.extensions,
            vec![(10, Extension::Anchored), (15, Extension::Smoothed)]
        );
    }
}
