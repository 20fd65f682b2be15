//! The scanner: one pass over the body bytes, one entry per `next`.
//!
//! Every rule below mirrors a rule of Prometheus's lexers
//! (`model/textparse/promlex.l` and `openmetricslex.l`) in scrape mode, or of
//! the reference parsers in strict mode; `docs/format/exposition.md` lists
//! them.

use std::borrow::Cow;

use super::float::{FloatError, format_openmetrics_float, parse_go_float, parse_go_float_label};
use super::{Entry, Format, MetricType, ParseError};

/// Longest line excerpt quoted in an error message.
const EXCERPT_LEN: usize = 80;

/// Bytes of a metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
const fn name_table(colon: bool, digits: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphabetic()
            || b == b'_'
            || (colon && b == b':')
            || (digits && b.is_ascii_digit());
        c += 1;
    }
    t
}
const METRIC_START: [bool; 256] = name_table(true, false);
const METRIC_CHAR: [bool; 256] = name_table(true, true);
const LABEL_START: [bool; 256] = name_table(false, false);
const LABEL_CHAR: [bool; 256] = name_table(false, true);

/// Bytes that end a run inside a quoted string: quote, backslash, line feed.
const QUOTED_STOP: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'\n' as usize] = true;
    t
};

/// Parses an exposition body entry by entry; an iterator of
/// `Result<Entry, ParseError>` that ends after the first error.
#[derive(Debug, Clone)]
pub struct Parser<'a> {
    body: &'a [u8],
    /// The body as text when it is all valid UTF-8 (checked once, up front):
    /// then slices need no further validation.
    text: Option<&'a str>,
    pos: usize,
    /// Line number (1-based) at `pos`.
    line: usize,
    format: Format,
    strict: bool,
    /// The type of the last `# TYPE` line, whatever family it named: this is
    /// what Prometheus uses to normalize `le` and `quantile`.
    metric_type: MetricType,
    done: bool,
}

impl<'a> Parser<'a> {
    /// A parser that accepts what Prometheus's scrape parsers accept.
    pub fn new(body: &'a [u8], format: Format) -> Self {
        Parser {
            body,
            text: std::str::from_utf8(body).ok(),
            pos: 0,
            line: 1,
            format,
            strict: false,
            metric_type: MetricType::Unknown,
            done: false,
        }
    }

    /// A parser with the reference parsers' lexical rules (see the module
    /// documentation); [`super::lint::check`] uses it.
    pub fn strict(body: &'a [u8], format: Format) -> Self {
        Parser {
            strict: true,
            ..Parser::new(body, format)
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The line number (1-based) the next entry starts on.
    pub fn line(&self) -> usize {
        self.line
    }

    fn peek(&self) -> Option<u8> {
        self.body.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.body.get(self.pos + offset).copied()
    }

    #[inline]
    fn skip_blanks(&mut self) {
        // Usually there is nothing to skip: check one byte before looping.
        if matches!(self.peek(), Some(b' ' | b'\t')) {
            self.skip_while(|b| b == b' ' || b == b'\t');
        }
    }

    /// Advances past the bytes matching `pred`.
    #[inline]
    fn skip_while(&mut self, pred: impl Fn(u8) -> bool) {
        let rest = &self.body[self.pos..];
        self.pos += rest.iter().position(|&b| !pred(b)).unwrap_or(rest.len());
    }

    /// Skips blanks where the format allows them (the text format, between
    /// any two tokens).
    #[inline]
    fn skip_text_blanks(&mut self) {
        if self.format == Format::Text {
            self.skip_blanks();
        }
    }

    /// The rest of the current line, from `pos`, without its line feed.
    fn rest_of_line(&self) -> &'a [u8] {
        let rest = &self.body[self.pos.min(self.body.len())..];
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        &rest[..end]
    }

    /// An error at `pos`: `expected ...`, what was found, and the line.
    fn error(&self, expected: &str) -> ParseError {
        let found = match self.peek() {
            None => "end of input".to_string(),
            Some(b'\n') => "end of line".to_string(),
            Some(_) => format!("{:?}", excerpt(self.rest_of_line())),
        };
        self.error_msg(format!("expected {expected}, found {found}"))
    }

    /// An error on the current line with a free-form message; the line's
    /// text is appended.
    fn error_msg(&self, message: String) -> ParseError {
        let pos = self.pos.min(self.body.len());
        let line_start = memchr::memrchr(b'\n', &self.body[..pos]).map_or(0, |i| i + 1);
        let line_end =
            memchr::memchr(b'\n', &self.body[pos..]).map_or(self.body.len(), |i| pos + i);
        let text = excerpt(&self.body[line_start..line_end]);
        ParseError {
            line: self.line,
            message: format!("{message} in {text:?}"),
        }
    }

    /// Consumes the line feed that ends an entry (or accepts the end of the
    /// input where the format allows it).
    fn end_line(&mut self) -> Result<(), ParseError> {
        match self.peek() {
            Some(b'\n') => {
                self.pos += 1;
                self.line += 1;
                Ok(())
            }
            None if self.format == Format::Text && !self.strict => Ok(()),
            None if self.format == Format::Text => {
                Err(self.error_msg("expected a line feed at the end of the last line".into()))
            }
            None => Err(self.error("a line feed, and '# EOF' as the last line")),
            Some(_) => Err(self.error("end of line")),
        }
    }

    fn next_entry(&mut self) -> Result<Option<Entry<'a>>, ParseError> {
        match self.format {
            Format::Text => self.next_text(),
            Format::OpenMetrics => self.next_openmetrics(),
        }
    }

    fn next_text(&mut self) -> Result<Option<Entry<'a>>, ParseError> {
        loop {
            self.skip_blanks();
            match self.peek() {
                None => return Ok(None),
                Some(b'\n') => {
                    self.pos += 1;
                    self.line += 1;
                }
                // Prometheus's lexer reads a NUL at the start of a line as the
                // end of the input.
                Some(0) if !self.strict => return Ok(None),
                Some(b'#') => return self.text_comment().map(Some),
                Some(b) if b == b'{' || METRIC_START[b as usize] => {
                    return self.sample().map(|s| Some(Entry::Sample(s)));
                }
                Some(_) => return Err(self.error("a metric name, '{' or '#'")),
            }
        }
    }

    fn next_openmetrics(&mut self) -> Result<Option<Entry<'a>>, ParseError> {
        match self.peek() {
            None => Err(self.error_msg("expected '# EOF' as the last line".into())),
            Some(b'#') => {
                if self.peek_at(1) != Some(b' ') {
                    return Err(self.error("'# ' followed by HELP, TYPE, UNIT or EOF"));
                }
                let rest = &self.body[self.pos + 2..];
                if rest.starts_with(b"EOF") {
                    self.pos += 5;
                    if self.peek() == Some(b'\n') {
                        self.pos += 1;
                        self.line += 1;
                    }
                    if self.pos != self.body.len() {
                        return Err(self.error("nothing after '# EOF'"));
                    }
                    return Ok(None);
                }
                let keyword = if rest.starts_with(b"HELP ") {
                    Keyword::Help
                } else if rest.starts_with(b"TYPE ") {
                    Keyword::Type
                } else if rest.starts_with(b"UNIT ") {
                    Keyword::Unit
                } else {
                    self.pos += 2;
                    return Err(self.error("HELP, TYPE, UNIT or EOF after '# '"));
                };
                self.pos += 7;
                self.metadata(keyword).map(Some)
            }
            Some(b'\n') => Err(self.error_msg("expected an entry, found an empty line".into())),
            Some(b) if b == b'{' || METRIC_START[b as usize] => {
                self.sample().map(|s| Some(Entry::Sample(s)))
            }
            Some(_) => Err(self.error("a metric name, '{' or '#'")),
        }
    }

    /// A text-format line starting with `#`: HELP, TYPE or a comment.
    fn text_comment(&mut self) -> Result<Entry<'a>, ParseError> {
        self.pos += 1;
        if let Some(b' ' | b'\t') = self.peek() {
            self.skip_blanks();
            let rest = &self.body[self.pos..];
            let keyword = if rest.starts_with(b"HELP") {
                Some(Keyword::Help)
            } else if rest.starts_with(b"TYPE") {
                Some(Keyword::Type)
            } else {
                None
            };
            if let Some(keyword) = keyword
                && matches!(rest.get(4), Some(b' ' | b'\t'))
            {
                let save = (self.pos, self.line);
                self.pos += 4;
                self.skip_blanks();
                // expfmt reads `# HELP` with nothing after it as a comment.
                if self.strict && matches!(self.peek(), None | Some(b'\n')) {
                    (self.pos, self.line) = save;
                } else {
                    return self.metadata(keyword);
                }
            }
        }
        let text = self.rest_of_line();
        self.pos += text.len();
        self.end_line()?;
        Ok(Entry::Comment(String::from_utf8_lossy(text)))
    }

    /// The metric name and text of a HELP, TYPE or UNIT line, `pos` just
    /// after the keyword and its blank(s).
    fn metadata(&mut self, keyword: Keyword) -> Result<Entry<'a>, ParseError> {
        let name_start = self.pos;
        let metric: Cow<'a, str> = match self.peek() {
            Some(b'"') => {
                let (raw, _) = self.quoted(Quoted::Name)?;
                self.checked_str(raw, "metric name")
                    .map(|s| unescape(s, Escapes::LabelValue))?
            }
            Some(b) if METRIC_START[b as usize] => {
                self.skip_while(|b| METRIC_CHAR[b as usize]);
                self.checked_str(&self.body[name_start..self.pos], "metric name")?
                    .into()
            }
            _ => return Err(self.error(&format!("a metric name after {}", keyword.as_str()))),
        };
        let text = match self.format {
            Format::Text => {
                let rest = self.rest_of_line();
                self.pos += rest.len();
                if self.strict {
                    // expfmt skips the blanks before the text and ignores a
                    // HELP or TYPE line with nothing after the name; a type
                    // keyword may be followed by blanks.
                    let Some(start) = rest.iter().position(|b| !matches!(b, b' ' | b'\t')) else {
                        self.end_line()?;
                        return Ok(Entry::Comment(String::from_utf8_lossy(rest)));
                    };
                    let rest = &rest[start..];
                    match keyword {
                        Keyword::Type => trim_blanks_end(rest),
                        _ => rest,
                    }
                } else if rest.iter().all(|b| matches!(b, b' ' | b'\t')) {
                    &rest[..0]
                } else {
                    // Prometheus drops exactly one byte, the separator.
                    &rest[1..]
                }
            }
            Format::OpenMetrics => {
                if self.peek() != Some(b' ') {
                    return Err(self.error(&format!(
                        "' ' and the {} after the metric name",
                        keyword.text_name()
                    )));
                }
                self.pos += 1;
                let rest = self.rest_of_line();
                self.pos += rest.len();
                rest
            }
        };
        let text = self.checked_str(text, keyword.text_name())?;
        let entry = match keyword {
            Keyword::Help => {
                let escapes = match (self.format, self.strict) {
                    (Format::OpenMetrics, _) => Escapes::LabelValue,
                    (Format::Text, false) => Escapes::Help,
                    (Format::Text, true) => {
                        self.check_escapes(text, Escapes::Help)?;
                        Escapes::Help
                    }
                };
                Entry::Help {
                    metric,
                    text: unescape(text, escapes),
                }
            }
            Keyword::Type => {
                let Some(kind) = MetricType::parse(text, self.format) else {
                    return Err(self.error_msg(format!("invalid metric type {text:?}")));
                };
                self.metric_type = kind;
                Entry::Type { metric, kind }
            }
            Keyword::Unit => {
                if !text.is_empty() && !unit_is_suffix(&metric, text) {
                    return Err(self.error_msg(format!(
                        "unit {text:?} is not a suffix of metric {metric:?}"
                    )));
                }
                Entry::Unit {
                    metric,
                    unit: text.into(),
                }
            }
        };
        self.end_line()?;
        Ok(entry)
    }

    /// A sample line, `pos` on its first byte (a name start or `{`).
    fn sample(&mut self) -> Result<Sample<'a>, ParseError> {
        let line = self.line;
        let start = self.pos;
        // Byte range of the metric name, and whether it was quoted.
        let mut name: Option<(usize, usize, bool)> = None;
        if self.peek() != Some(b'{') {
            self.skip_while(|b| METRIC_CHAR[b as usize]);
            name = Some((start, self.pos, false));
            self.skip_text_blanks();
        }
        let mut labels = (start, start);
        let mut series_end = name.map_or(start, |(_, end, _)| end);
        if self.peek() == Some(b'{') {
            self.pos += 1;
            let labels_start = self.pos;
            self.label_set(&mut name, false)?;
            labels = (labels_start, self.pos - 1);
            series_end = self.pos;
        }
        let Some((name_start, name_end, name_quoted)) = name else {
            return Err(
                self.error_msg("expected a metric name, found a label set without one".into())
            );
        };
        let series = self.checked_str(&self.body[start..series_end], "series")?;
        let token = self.value_token()?;
        let value =
            parse_go_float(token).map_err(|e| self.float_error(e, "sample value", token))?;
        let timestamp = self.timestamp()?;
        let mut exemplar = None;
        if self.format == Format::OpenMetrics && self.peek() == Some(b' ') {
            exemplar = Some(Box::new(self.exemplar()?));
        }
        self.end_line()?;
        // The name and label ranges lie inside `series` and start and end at
        // ASCII bytes, so slicing cannot fail; `get` keeps that unchecked
        // assumption from ever panicking.
        let name = series
            .get(name_start - start..name_end - start)
            .unwrap_or_default();
        let labels = series
            .get(labels.0 - start..labels.1 - start)
            .unwrap_or_default();
        Ok(Sample {
            line,
            series,
            name: if name_quoted {
                unescape(name, Escapes::LabelValue)
            } else {
                Cow::Borrowed(name)
            },
            labels,
            value,
            timestamp,
            exemplar,
            metric_type: self.metric_type,
        })
    }

    /// The label pairs after `{` up to and including `}`. A quoted string
    /// followed by `,` or `}` is the metric name (the UTF-8 syntax).
    fn label_set(
        &mut self,
        name: &mut Option<(usize, usize, bool)>,
        exemplar: bool,
    ) -> Result<(), ParseError> {
        let text = self.format == Format::Text;
        loop {
            self.skip_text_blanks();
            let label_start = self.pos;
            let quoted = match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'"') => {
                    self.quoted(Quoted::Name)?;
                    true
                }
                Some(b) if LABEL_START[b as usize] => {
                    self.skip_while(|b| LABEL_CHAR[b as usize]);
                    false
                }
                _ => return Err(self.error("a label name or '}'")),
            };
            let label_end = self.pos;
            self.skip_text_blanks();
            if quoted && matches!(self.peek(), Some(b',' | b'}')) {
                if exemplar {
                    return Err(self.error("'=' after the exemplar label name"));
                }
                if name.is_some() {
                    return Err(self.error_msg("metric name given twice".into()));
                }
                *name = Some((label_start + 1, label_end - 1, true));
                if self.peek() == Some(b',') {
                    self.pos += 1;
                }
                continue;
            }
            if self.peek() != Some(b'=') {
                return Err(self.error("'=' after the label name"));
            }
            self.pos += 1;
            self.skip_text_blanks();
            if self.peek() != Some(b'"') {
                return Err(self.error("a label value in double quotes"));
            }
            let (value, has_escape) = self.quoted(Quoted::Value)?;
            // expfmt rejects unknown escapes; the OpenMetrics reference keeps
            // them as written, as Prometheus does.
            if self.strict && has_escape && self.format == Format::Text {
                let value = self.checked_str(value, "label value")?;
                self.check_escapes(value, Escapes::LabelValue)?;
            }
            self.skip_text_blanks();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    if self.strict && self.format == Format::OpenMetrics {
                        // OpenMetrics has no trailing comma.
                        if self.peek() == Some(b'}') {
                            return Err(self.error("a label name after ','"));
                        }
                    }
                }
                Some(b'}') => {}
                // Prometheus's text parser does not insist on the comma.
                _ if text && !self.strict => {}
                _ => return Err(self.error("',' or '}' after the label value")),
            }
        }
    }

    /// A double-quoted string at `pos`: returns its raw content (between the
    /// quotes) and whether it has a backslash escape.
    fn quoted(&mut self, kind: Quoted) -> Result<(&'a [u8], bool), ParseError> {
        let open_line = self.line;
        self.pos += 1;
        let start = self.pos;
        let mut has_escape = false;
        loop {
            let rest = &self.body[self.pos..];
            let Some(i) = rest.iter().position(|&b| QUOTED_STOP[b as usize]) else {
                // Report at the opening quote.
                self.pos = start - 1;
                self.line = open_line;
                return Err(self.error_msg(format!("unterminated {} (missing '\"')", kind.what())));
            };
            self.pos += i;
            match self.body[self.pos] {
                b'"' => {
                    let raw = &self.body[start..self.pos];
                    self.pos += 1;
                    return Ok((raw, has_escape));
                }
                b'\\' => {
                    has_escape = true;
                    // Prometheus's lexer pairs a backslash with any byte but a
                    // line feed.
                    match self.peek_at(1) {
                        None | Some(b'\n') => {
                            self.pos += 1;
                            return Err(
                                self.error(&format!("an escaped character in the {}", kind.what()))
                            );
                        }
                        Some(_) => self.pos += 2,
                    }
                }
                _ => {
                    // A raw line feed: allowed by Prometheus's text lexer in
                    // label values and quoted names; not in OpenMetrics label
                    // values, and not by the reference parsers.
                    let allowed =
                        !self.strict && (self.format == Format::Text || kind == Quoted::Name);
                    if !allowed {
                        return Err(self.error_msg(format!("line feed inside a {}", kind.what())));
                    }
                    self.pos += 1;
                    self.line += 1;
                }
            }
        }
    }

    /// The sample value token.
    fn value_token(&mut self) -> Result<&'a [u8], ParseError> {
        let start;
        match self.format {
            Format::Text => {
                self.skip_blanks();
                start = self.pos;
                self.skip_while(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'{'));
            }
            Format::OpenMetrics => {
                if self.peek() != Some(b' ') {
                    return Err(self.error("' ' and a sample value"));
                }
                self.pos += 1;
                start = self.pos;
                self.skip_om_token();
            }
        }
        if self.pos == start {
            return Err(self.error("a sample value"));
        }
        Ok(&self.body[start..self.pos])
    }

    /// Advances over `[^ \n]*`.
    fn skip_om_token(&mut self) {
        let rest = &self.body[self.pos..];
        self.pos += memchr::memchr2(b' ', b'\n', rest).unwrap_or(rest.len());
    }

    /// The optional timestamp after the value, in milliseconds.
    fn timestamp(&mut self) -> Result<Option<i64>, ParseError> {
        match self.format {
            Format::Text => {
                self.skip_blanks();
                let start = self.pos;
                // expfmt accepts a sign; Prometheus's lexer only digits.
                if self.strict && matches!(self.peek(), Some(b'-' | b'+')) {
                    self.pos += 1;
                }
                self.skip_while(|b| b.is_ascii_digit());
                if self.pos == start {
                    return match self.peek() {
                        None | Some(b'\n') => Ok(None),
                        _ => Err(self.error("a timestamp (integer milliseconds) or end of line")),
                    };
                }
                let token = &self.body[start..self.pos];
                let ts = std::str::from_utf8(token)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or_else(|| {
                        self.error_msg(format!("timestamp {:?} is out of range", excerpt(token)))
                    })?;
                self.skip_blanks();
                Ok(Some(ts))
            }
            Format::OpenMetrics => {
                if self.peek() != Some(b' ') || self.body[self.pos + 1..].starts_with(b"# {") {
                    return Ok(None);
                }
                self.pos += 1;
                let start = self.pos;
                self.skip_om_token();
                let token = &self.body[start..self.pos];
                if token.is_empty() {
                    return Err(self.error("a timestamp after ' '"));
                }
                let seconds =
                    parse_go_float(token).map_err(|e| self.float_error(e, "timestamp", token))?;
                if !seconds.is_finite() {
                    return Err(self.error_msg(format!("invalid timestamp {:?}", excerpt(token))));
                }
                // Go's float-to-integer conversion truncates, as here.
                Ok(Some((seconds * 1000.0) as i64))
            }
        }
    }

    /// An OpenMetrics exemplar, `pos` on the space before `# {`.
    fn exemplar(&mut self) -> Result<Exemplar<'a>, ParseError> {
        if !self.body[self.pos..].starts_with(b" # {") {
            self.pos += 1;
            return Err(self.error("'# {' to start an exemplar, or end of line"));
        }
        self.pos += 4;
        let labels_start = self.pos;
        let mut no_name = None;
        self.label_set(&mut no_name, true)?;
        let labels = self.checked_str(&self.body[labels_start..self.pos - 1], "exemplar labels")?;
        let token = self.value_token()?;
        let value =
            parse_go_float(token).map_err(|e| self.float_error(e, "exemplar value", token))?;
        let mut timestamp = None;
        if self.peek() == Some(b' ') {
            self.pos += 1;
            let start = self.pos;
            self.skip_om_token();
            let token = &self.body[start..self.pos];
            if token.is_empty() {
                return Err(self.error("an exemplar timestamp after ' '"));
            }
            let seconds = parse_go_float(token)
                .map_err(|e| self.float_error(e, "exemplar timestamp", token))?;
            if !seconds.is_finite() {
                return Err(
                    self.error_msg(format!("invalid exemplar timestamp {:?}", excerpt(token)))
                );
            }
            timestamp = Some((seconds * 1000.0) as i64);
        }
        Ok(Exemplar {
            labels,
            value,
            timestamp,
        })
    }

    fn float_error(&self, e: FloatError, what: &str, token: &[u8]) -> ParseError {
        let why = match e {
            FloatError::Syntax => "is not a number",
            FloatError::Range => "is out of range",
        };
        self.error_msg(format!("{what} {:?} {why}", excerpt(token)))
    }

    /// `bytes`, a slice of the body, as text.
    fn checked_str(&self, bytes: &'a [u8], what: &str) -> Result<&'a str, ParseError> {
        if let Some(text) = self.text {
            let start = (bytes.as_ptr() as usize).wrapping_sub(self.body.as_ptr() as usize);
            if let Some(s) = start
                .checked_add(bytes.len())
                .and_then(|end| text.get(start..end))
            {
                return Ok(s);
            }
        }
        std::str::from_utf8(bytes).map_err(|_| self.utf8_error(what))
    }

    fn utf8_error(&self, what: &str) -> ParseError {
        self.error_msg(format!("invalid UTF-8 in {what}"))
    }

    /// The reference parsers accept only `\\`, `\n` and (in label values)
    /// `\"` escapes.
    fn check_escapes(&self, text: &str, escapes: Escapes) -> Result<(), ParseError> {
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                continue;
            }
            match chars.next() {
                Some('\\' | 'n') => {}
                Some('"') if escapes == Escapes::LabelValue => {}
                Some(other) => {
                    return Err(self.error_msg(format!("invalid escape sequence '\\{other}'")));
                }
                None => return Err(self.error_msg("backslash at the end of the text".into())),
            }
        }
        Ok(())
    }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Entry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_entry() {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    Help,
    Type,
    Unit,
}

impl Keyword {
    fn as_str(self) -> &'static str {
        match self {
            Keyword::Help => "HELP",
            Keyword::Type => "TYPE",
            Keyword::Unit => "UNIT",
        }
    }

    fn text_name(self) -> &'static str {
        match self {
            Keyword::Help => "help text",
            Keyword::Type => "metric type",
            Keyword::Unit => "unit",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoted {
    Name,
    Value,
}

impl Quoted {
    fn what(self) -> &'static str {
        match self {
            Quoted::Name => "quoted name",
            Quoted::Value => "label value",
        }
    }
}

/// Which escapes a text undergoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escapes {
    /// `\\`, `\"`, `\n` (label values, quoted names, OpenMetrics HELP).
    LabelValue,
    /// `\\`, `\n` (text-format HELP).
    Help,
}

/// Replaces escapes left to right, keeping unknown ones as written, as Go's
/// `strings.Replacer` does in Prometheus. Borrows when there is nothing to do.
fn unescape(s: &str, escapes: Escapes) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if escapes == Escapes::LabelValue => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// Prometheus's check: a non-empty unit must be the name's last
/// `_`-separated part(s).
fn unit_is_suffix(metric: &str, unit: &str) -> bool {
    metric.len() > unit.len()
        && metric.ends_with(unit)
        && metric.as_bytes()[metric.len() - unit.len() - 1] == b'_'
}

fn trim_blanks_end(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(0, |i| i + 1);
    &s[..end]
}

/// A printable excerpt of at most [`EXCERPT_LEN`] characters.
fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(EXCERPT_LEN).collect();
    if text.chars().count() > EXCERPT_LEN {
        out.push('…');
    }
    out
}

/// One sample line. Borrows the body; [`Sample::series`] is the exact text of
/// name and labels, the key under which the scrape loop caches the series.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// Line number (1-based).
    pub line: usize,
    series: &'a str,
    name: Cow<'a, str>,
    /// The text between the braces, validated.
    labels: &'a str,
    pub value: f64,
    /// Milliseconds since the epoch (OpenMetrics seconds are converted).
    pub timestamp: Option<i64>,
    /// Boxed: rare, and samples stay small to move.
    pub exemplar: Option<Box<Exemplar<'a>>>,
    /// The type of the last `# TYPE` line before this sample.
    pub metric_type: MetricType,
}

impl<'a> Sample<'a> {
    /// Name and label set exactly as written, e.g. `up{job="node"}`.
    pub fn series(&self) -> &'a str {
        self.series
    }

    /// The metric name, unescaped.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The label pairs in written order, unescaped, empty values included
    /// (they mean "absent" to storage, but matter for `honor_labels`). As in
    /// Prometheus 3, `le` under a histogram `# TYPE` and `quantile` under a
    /// summary `# TYPE` are rewritten in canonical OpenMetrics float form
    /// (`1` becomes `1.0`).
    pub fn labels(&self) -> LabelPairs<'a> {
        LabelPairs {
            text: self.labels,
            pos: 0,
            metric_type: self.metric_type,
            normalize: true,
        }
    }

    /// The label pairs as written, without `le`/`quantile` normalization.
    pub fn raw_labels(&self) -> LabelPairs<'a> {
        LabelPairs {
            normalize: false,
            ..self.labels()
        }
    }

    /// True for an OpenMetrics `_created` sample of a counter, summary or
    /// histogram: a creation time, which Prometheus 3 stores as an ordinary
    /// series unless told otherwise.
    pub fn is_created(&self) -> bool {
        matches!(
            self.metric_type,
            MetricType::Counter | MetricType::Summary | MetricType::Histogram
        ) && self.name.ends_with("_created")
    }
}

/// An OpenMetrics exemplar: `# {labels} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar<'a> {
    labels: &'a str,
    pub value: f64,
    /// Milliseconds since the epoch.
    pub timestamp: Option<i64>,
}

impl<'a> Exemplar<'a> {
    pub fn labels(&self) -> LabelPairs<'a> {
        LabelPairs {
            text: self.labels,
            pos: 0,
            metric_type: MetricType::Unknown,
            normalize: false,
        }
    }
}

/// Iterates `(name, value)` pairs of a validated label set.
#[derive(Debug, Clone)]
pub struct LabelPairs<'a> {
    text: &'a str,
    pos: usize,
    metric_type: MetricType,
    normalize: bool,
}

impl<'a> LabelPairs<'a> {
    fn skip(&mut self, pred: impl Fn(u8) -> bool) {
        let bytes = self.text.as_bytes();
        while self.pos < bytes.len() && pred(bytes[self.pos]) {
            self.pos += 1;
        }
    }

    /// A quoted string at `pos`; its raw content.
    fn quoted(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        let start = self.pos + 1;
        let mut i = start;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    self.pos = i + 1;
                    return self.text.get(start..i);
                }
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
        None
    }
}

impl<'a> Iterator for LabelPairs<'a> {
    type Item = (Cow<'a, str>, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        let blank_or_comma = |b: u8| matches!(b, b' ' | b'\t' | b',');
        loop {
            self.skip(blank_or_comma);
            let bytes = self.text.as_bytes();
            let name = match bytes.get(self.pos)? {
                b'"' => unescape(self.quoted()?, Escapes::LabelValue),
                _ => {
                    let start = self.pos;
                    self.skip(|b| LABEL_CHAR[b as usize]);
                    Cow::Borrowed(self.text.get(start..self.pos)?)
                }
            };
            self.skip(|b| matches!(b, b' ' | b'\t'));
            if bytes.get(self.pos) != Some(&b'=') {
                // A quoted metric name; the parser has taken it already.
                continue;
            }
            self.pos += 1;
            self.skip(|b| matches!(b, b' ' | b'\t'));
            let mut value = unescape(self.quoted()?, Escapes::LabelValue);
            if self.normalize
                && ((self.metric_type == MetricType::Histogram && name == "le")
                    || (self.metric_type == MetricType::Summary && name == "quantile"))
                && let Some(f) = parse_go_float_label(&value)
            {
                value = Cow::Owned(format_openmetrics_float(f));
            }
            return Some((name, value));
        }
    }
}
