//! Parsing: the `promql-parser` crate turns text into its AST, which is
//! converted here into our own [`Expr`] so that the third-party types stay
//! behind this module. The conversion also assigns every node the byte
//! offset where it starts in the query text (the crate keeps no positions;
//! annotations need them), numbers the selectors for the planner, and runs
//! the checks Prometheus does that the crate does not.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use promql_parser::label::MatchOp as ParserMatchOp;
use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_DIV, T_EQLC, T_GROUP, T_GTE,
    T_GTR, T_LAND, T_LIMIT_RATIO, T_LIMITK, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MAX, T_MIN, T_MOD,
    T_MUL, T_NEQ, T_POW, T_QUANTILE, T_STDDEV, T_STDVAR, T_SUB, T_SUM, T_TOPK,
};
use promql_parser::parser::value::ValueType as ParserValueType;
use promql_parser::parser::{self as pp, LabelModifier, VectorMatchCardinality};

mod extensions;

pub(crate) use extensions::{Extension, QueryTimes};

use super::error::{Error, Result};
use crate::model::{METRIC_NAME, MatchOp, Matcher};

/// The type of value an expression evaluates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueType {
    Scalar,
    String,
    Vector,
    Matrix,
}

impl ValueType {
    /// The name Prometheus uses in error messages.
    pub(crate) fn documented_name(self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::String => "string",
            ValueType::Vector => "instant vector",
            ValueType::Matrix => "range vector",
        }
    }
}

/// A node of the query and the byte offset where it starts in the text.
#[derive(Debug, Clone)]
pub(crate) struct Expr {
    pub kind: ExprKind,
    pub pos: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum ExprKind {
    Number(f64),
    String(String),
    /// An instant vector selector.
    Selector(Selector),
    /// A range vector selector such as `foo[5m]`.
    Range {
        selector: Selector,
        range_ms: i64,
    },
    Subquery(Box<Subquery>),
    Paren(Box<Expr>),
    Negate(Box<Expr>),
    Binary(Box<Binary>),
    Aggregate(Box<Aggregate>),
    Call(Call),
    /// `info(expr, {data label selector})`.
    Info(Box<Info>),
}

/// Which time an `@` modifier pins the evaluation to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum At {
    Time(i64),
    Start,
    End,
}

#[derive(Debug, Clone)]
pub(crate) struct Selector {
    /// Index into the plan's list of selectors.
    pub id: usize,
    pub matchers: Vec<Matcher>,
    pub offset_ms: i64,
    pub at: Option<At>,
    /// `anchored` or `smoothed`.
    pub extension: Option<Extension>,
}

#[derive(Debug, Clone)]
pub(crate) struct Subquery {
    pub expr: Expr,
    pub range_ms: i64,
    /// `None` when the query leaves the resolution out (`[5m:]`).
    pub step_ms: Option<i64>,
    pub offset_ms: i64,
    pub at: Option<At>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl BinOp {
    pub(crate) fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le
        )
    }

    pub(crate) fn is_set_operator(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }

    /// Arithmetic changes what a value means, so the metric name goes.
    pub(crate) fn changes_metric_schema(self) -> bool {
        matches!(
            self,
            BinOp::Add
                | BinOp::Sub
                | BinOp::Mul
                | BinOp::Div
                | BinOp::Mod
                | BinOp::Pow
                | BinOp::Atan2
        )
    }
}

/// How the two sides of a vector-vector operation pair up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cardinality {
    OneToOne,
    ManyToOne,
    OneToMany,
    ManyToMany,
}

#[derive(Debug, Clone)]
pub(crate) struct VectorMatching {
    pub card: Cardinality,
    /// The labels of `on(...)` or `ignoring(...)`.
    pub labels: Vec<String>,
    /// True for `on`, false for `ignoring` (and for no modifier).
    pub on: bool,
    /// The extra labels of `group_left(...)`/`group_right(...)`.
    pub include: Vec<String>,
    pub fill_lhs: Option<f64>,
    pub fill_rhs: Option<f64>,
}

#[derive(Debug, Clone)]
pub(crate) struct Binary {
    pub op: BinOp,
    pub lhs: Expr,
    pub rhs: Expr,
    pub return_bool: bool,
    pub matching: VectorMatching,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggOp {
    Sum,
    Avg,
    Count,
    Min,
    Max,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    CountValues,
    Quantile,
    Limitk,
    LimitRatio,
}

impl AggOp {
    pub(crate) fn name(self) -> &'static str {
        match self {
            AggOp::Sum => "sum",
            AggOp::Avg => "avg",
            AggOp::Count => "count",
            AggOp::Min => "min",
            AggOp::Max => "max",
            AggOp::Group => "group",
            AggOp::Stddev => "stddev",
            AggOp::Stdvar => "stdvar",
            AggOp::Topk => "topk",
            AggOp::Bottomk => "bottomk",
            AggOp::CountValues => "count_values",
            AggOp::Quantile => "quantile",
            AggOp::Limitk => "limitk",
            AggOp::LimitRatio => "limit_ratio",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Aggregate {
    pub op: AggOp,
    pub expr: Expr,
    pub param: Option<Expr>,
    /// Sorted label names of `by (...)` or `without (...)`.
    pub grouping: Vec<String>,
    pub without: bool,
}

/// `info()`: enriches series with the data labels of info metrics (by
/// default `target_info`) that share their identifying labels.
#[derive(Debug, Clone)]
pub(crate) struct Info {
    pub expr: Expr,
    /// The matchers on data labels of the second argument.
    pub data_matchers: Vec<Matcher>,
    /// The matchers on the info metrics' names: `__name__="target_info"`
    /// without any in the selector, plus `__name__=~".+_info"` when every
    /// given one also matches an empty name.
    pub name_matchers: Vec<Matcher>,
    /// Selects the candidate info series: data and name matchers.
    pub info_selector: Selector,
}

#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub name: &'static str,
    pub args: Vec<Expr>,
    pub return_type: ValueType,
}

impl Expr {
    pub(crate) fn value_type(&self) -> ValueType {
        match &self.kind {
            ExprKind::Number(_) => ValueType::Scalar,
            ExprKind::String(_) => ValueType::String,
            ExprKind::Selector(_) | ExprKind::Aggregate(_) | ExprKind::Info(_) => ValueType::Vector,
            ExprKind::Range { .. } | ExprKind::Subquery(_) => ValueType::Matrix,
            ExprKind::Paren(inner) | ExprKind::Negate(inner) => inner.value_type(),
            ExprKind::Binary(b) => {
                if b.lhs.value_type() == ValueType::Scalar
                    && b.rhs.value_type() == ValueType::Scalar
                {
                    ValueType::Scalar
                } else {
                    ValueType::Vector
                }
            }
            ExprKind::Call(call) => call.return_type,
        }
    }

    /// The expression without the parentheses around it.
    pub(crate) fn unparen(&self) -> &Expr {
        match &self.kind {
            ExprKind::Paren(inner) => inner.unparen(),
            _ => self,
        }
    }
}

/// A parsed query and the text its positions refer to: the query with the
/// experimental syntax the parser lacks rewritten (see [`extensions`]).
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub expr: Expr,
    pub text: String,
}

/// Parses a query into our AST. `times` give `step()` and `range()` in
/// duration expressions their values.
///
/// # Errors
/// [`Error::Parse`] with the parser's message for invalid PromQL.
pub(crate) fn parse(query: &str, times: QueryTimes) -> Result<Parsed> {
    let rewritten = extensions::rewrite(query, times)?;
    let text = rewritten.text;
    // The parser is third-party code on the input path; a panic inside it
    // must become an error, never take the caller down.
    let parsed = std::panic::catch_unwind(|| pp::parse(&text))
        .map_err(|_| Error::parse("invalid promql query"))?;
    let parsed = parsed.map_err(Error::parse)?;
    let mut converter = Converter { next_selector: 0 };
    let mut expr = converter.convert(parsed)?;
    let mut locator = Locator::new(&text, rewritten.extensions);
    locator.locate(&mut expr);
    if let Some((_, extension)) = locator.extensions.first() {
        return Err(Error::parse(format!(
            "unexpected {} modifier: it must follow a selector",
            extension.name()
        )));
    }
    Ok(Parsed { expr, text })
}

struct Converter {
    next_selector: usize,
}

impl Converter {
    fn convert(&mut self, expr: pp::Expr) -> Result<Expr> {
        let kind = match expr {
            pp::Expr::NumberLiteral(n) => ExprKind::Number(n.val),
            pp::Expr::StringLiteral(s) => ExprKind::String(s.val),
            pp::Expr::VectorSelector(vs) => ExprKind::Selector(self.selector(vs)?),
            pp::Expr::MatrixSelector(ms) => ExprKind::Range {
                selector: self.selector(ms.vs)?,
                range_ms: duration_ms(ms.range),
            },
            pp::Expr::Subquery(sq) => {
                let inner = self.convert(*sq.expr)?;
                ExprKind::Subquery(Box::new(Subquery {
                    expr: inner,
                    range_ms: duration_ms(sq.range),
                    step_ms: sq.step.map(duration_ms).filter(|&s| s > 0),
                    offset_ms: offset_ms(sq.offset.as_ref()),
                    at: sq.at.as_ref().map(at_modifier),
                }))
            }
            pp::Expr::Paren(p) => ExprKind::Paren(Box::new(self.convert(*p.expr)?)),
            pp::Expr::Unary(u) => ExprKind::Negate(Box::new(self.convert(*u.expr)?)),
            pp::Expr::Binary(b) => self.binary(b)?,
            pp::Expr::Aggregate(a) => self.aggregate(a)?,
            pp::Expr::Call(c) => self.call(c)?,
            pp::Expr::Extension(_) => return Err(Error::parse("unsupported expression")),
        };
        Ok(Expr { kind, pos: 0 })
    }

    fn info(&mut self, c: pp::Call) -> Result<ExprKind> {
        let mut args = c.args.args.into_iter();
        let Some(first) = args.next() else {
            return Err(Error::parse(
                "expected at least 1 argument(s) in call to \"info\", got 0",
            ));
        };
        let expr = self.convert(*first)?;
        let selector_matchers = match args.next().map(|a| *a) {
            Some(pp::Expr::VectorSelector(vs)) => {
                let mut matchers = matchers(vs)?;
                matchers.retain(|m| m.name() != extensions::INFO_SELECTOR_MARKER);
                matchers
            }
            Some(_) => {
                return Err(Error::parse(
                    "expected label selectors as the second argument to \"info\" function",
                ));
            }
            None => Vec::new(),
        };
        let (mut name_matchers, data_matchers): (Vec<Matcher>, Vec<Matcher>) = selector_matchers
            .into_iter()
            .partition(|m| m.name() == METRIC_NAME);
        if name_matchers.is_empty() {
            name_matchers.push(Matcher::equal(METRIC_NAME, "target_info"));
        } else if name_matchers.iter().all(Matcher::matches_empty) {
            let info_names = Matcher::new(MatchOp::RegexMatch, METRIC_NAME, ".+_info")
                .map_err(|e| Error::parse(e.to_string()))?;
            name_matchers.push(info_names);
        }
        let info_matchers = name_matchers
            .iter()
            .chain(&data_matchers)
            .cloned()
            .collect();
        let id = self.next_selector;
        self.next_selector += 1;
        Ok(ExprKind::Info(Box::new(Info {
            expr,
            data_matchers,
            name_matchers,
            info_selector: Selector {
                id,
                matchers: info_matchers,
                offset_ms: 0,
                at: None,
                extension: None,
            },
        })))
    }

    fn selector(&mut self, vs: pp::VectorSelector) -> Result<Selector> {
        let offset_ms = offset_ms(vs.offset.as_ref());
        let at = vs.at.as_ref().map(at_modifier);
        let matchers = matchers(vs)?;
        let id = self.next_selector;
        self.next_selector += 1;
        Ok(Selector {
            id,
            matchers,
            offset_ms,
            at,
            extension: None,
        })
    }
}

/// The matchers of a selector, the metric name first.
fn matchers(vs: pp::VectorSelector) -> Result<Vec<Matcher>> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(Error::parse("'or' in label matchers is not supported"));
    }
    let mut matchers = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = vs.name {
        matchers.push(Matcher::equal(METRIC_NAME, name));
    }
    for m in vs.matchers.matchers {
        let op = match m.op {
            ParserMatchOp::Equal => MatchOp::Equal,
            ParserMatchOp::NotEqual => MatchOp::NotEqual,
            ParserMatchOp::Re(_) => MatchOp::RegexMatch,
            ParserMatchOp::NotRe(_) => MatchOp::RegexNoMatch,
        };
        let matcher = Matcher::new(op, m.name, m.value).map_err(|e| Error::parse(e.to_string()))?;
        matchers.push(matcher);
    }
    Ok(matchers)
}

impl Converter {
    fn binary(&mut self, b: pp::BinaryExpr) -> Result<ExprKind> {
        let op = match b.op.id() {
            T_ADD => BinOp::Add,
            T_SUB => BinOp::Sub,
            T_MUL => BinOp::Mul,
            T_DIV => BinOp::Div,
            T_MOD => BinOp::Mod,
            T_POW => BinOp::Pow,
            T_ATAN2 => BinOp::Atan2,
            T_EQLC => BinOp::Eq,
            T_NEQ => BinOp::Ne,
            T_GTR => BinOp::Gt,
            T_LSS => BinOp::Lt,
            T_GTE => BinOp::Ge,
            T_LTE => BinOp::Le,
            T_LAND => BinOp::And,
            T_LOR => BinOp::Or,
            T_LUNLESS => BinOp::Unless,
            _ => {
                return Err(Error::parse(format!(
                    "unsupported binary operator '{}'",
                    b.op
                )));
            }
        };
        let mut matching = VectorMatching {
            card: if op.is_set_operator() {
                Cardinality::ManyToMany
            } else {
                Cardinality::OneToOne
            },
            labels: Vec::new(),
            on: false,
            include: Vec::new(),
            fill_lhs: None,
            fill_rhs: None,
        };
        let mut return_bool = false;
        if let Some(modifier) = b.modifier {
            return_bool = modifier.return_bool;
            match modifier.card {
                VectorMatchCardinality::OneToOne => {}
                VectorMatchCardinality::ManyToMany => matching.card = Cardinality::ManyToMany,
                VectorMatchCardinality::ManyToOne(labels) => {
                    matching.card = Cardinality::ManyToOne;
                    matching.include = labels.labels;
                }
                VectorMatchCardinality::OneToMany(labels) => {
                    matching.card = Cardinality::OneToMany;
                    matching.include = labels.labels;
                }
            }
            match modifier.matching {
                Some(LabelModifier::Include(labels)) => {
                    matching.on = true;
                    matching.labels = labels.labels;
                }
                Some(LabelModifier::Exclude(labels)) => matching.labels = labels.labels,
                None => {}
            }
            matching.fill_lhs = modifier.fill_values.lhs;
            matching.fill_rhs = modifier.fill_values.rhs;
        }
        let lhs = self.convert(*b.lhs)?;
        let rhs = self.convert(*b.rhs)?;
        Ok(ExprKind::Binary(Box::new(Binary {
            op,
            lhs,
            rhs,
            return_bool,
            matching,
        })))
    }

    fn aggregate(&mut self, a: pp::AggregateExpr) -> Result<ExprKind> {
        let op = match a.op.id() {
            T_SUM => AggOp::Sum,
            T_AVG => AggOp::Avg,
            T_COUNT => AggOp::Count,
            T_MIN => AggOp::Min,
            T_MAX => AggOp::Max,
            T_GROUP => AggOp::Group,
            T_STDDEV => AggOp::Stddev,
            T_STDVAR => AggOp::Stdvar,
            T_TOPK => AggOp::Topk,
            T_BOTTOMK => AggOp::Bottomk,
            T_COUNT_VALUES => AggOp::CountValues,
            T_QUANTILE => AggOp::Quantile,
            T_LIMITK => AggOp::Limitk,
            T_LIMIT_RATIO => AggOp::LimitRatio,
            _ => return Err(Error::parse(format!("unsupported aggregation '{}'", a.op))),
        };
        let (mut grouping, without) = match a.modifier {
            Some(LabelModifier::Include(labels)) => (labels.labels, false),
            Some(LabelModifier::Exclude(labels)) => (labels.labels, true),
            None => (Vec::new(), false),
        };
        grouping.sort();
        grouping.dedup();
        let expr = self.convert(*a.expr)?;
        let param = a.param.map(|p| self.convert(*p)).transpose()?;
        if let Some(param) = &param {
            let want = if op == AggOp::CountValues {
                ValueType::String
            } else {
                ValueType::Scalar
            };
            if param.value_type() != want {
                return Err(Error::parse(format!(
                    "expected type {} in aggregation parameter, got {}",
                    want.documented_name(),
                    param.value_type().documented_name()
                )));
            }
        }
        Ok(ExprKind::Aggregate(Box::new(Aggregate {
            op,
            expr,
            param,
            grouping,
            without,
        })))
    }

    fn call(&mut self, c: pp::Call) -> Result<ExprKind> {
        let name = c.func.name;
        if name == "info" {
            return self.info(c);
        }
        let return_type = match c.func.return_type {
            ParserValueType::Scalar => ValueType::Scalar,
            ParserValueType::String => ValueType::String,
            ParserValueType::Vector => ValueType::Vector,
            ParserValueType::Matrix => ValueType::Matrix,
        };
        let args = c
            .args
            .args
            .into_iter()
            .map(|a| self.convert(*a))
            .collect::<Result<Vec<_>>>()?;
        if !super::functions::is_supported(name) {
            return Err(Error::parse(format!("unknown function with name {name:?}")));
        }
        Ok(ExprKind::Call(Call {
            name,
            args,
            return_type,
        }))
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn offset_ms(offset: Option<&pp::Offset>) -> i64 {
    match offset {
        Some(pp::Offset::Pos(d)) => duration_ms(*d),
        Some(pp::Offset::Neg(d)) => -duration_ms(*d),
        None => 0,
    }
}

fn at_modifier(at: &pp::AtModifier) -> At {
    match at {
        pp::AtModifier::Start => At::Start,
        pp::AtModifier::End => At::End,
        pp::AtModifier::At(time) => At::Time(system_time_ms(*time)),
    }
}

fn system_time_ms(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => duration_ms(d),
        Err(e) => -duration_ms(e.duration()),
    }
}

/// Recovers where each node starts by walking the AST and the text side by
/// side. It only needs to skip over tokens, never to understand them; when
/// the text and the tree disagree it stops, leaving the remaining positions
/// at 0 (positions only decorate annotations).
struct Locator<'a> {
    text: &'a [u8],
    cursor: usize,
    lost: bool,
    /// Modifiers removed from the text, by the end of their selector; taken
    /// out as they are attached.
    extensions: Vec<(usize, Extension)>,
}

impl<'a> Locator<'a> {
    fn new(query: &'a str, extensions: Vec<(usize, Extension)>) -> Self {
        Locator {
            text: query.as_bytes(),
            cursor: 0,
            lost: false,
            extensions,
        }
    }

    /// The modifier written right after the selector that ends here.
    fn take_extension(&mut self) -> Option<Extension> {
        let mut end = self.cursor.min(self.text.len());
        while end > 0 && self.text[end - 1].is_ascii_whitespace() {
            end -= 1;
        }
        let i = self.extensions.iter().position(|(at, _)| *at == end)?;
        Some(self.extensions.remove(i).1)
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.cursor).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_ascii_whitespace() {
                self.cursor += 1;
            } else if c == b'#' {
                // A comment ends at a line end, `\r` included, as in
                // Prometheus's lexer.
                while let Some(c) = self.peek() {
                    if c == b'\n' || c == b'\r' {
                        break;
                    }
                    self.cursor += 1;
                }
            } else {
                break;
            }
        }
    }

    fn expect(&mut self, c: u8) {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.cursor += 1;
        } else {
            self.lost = true;
        }
    }

    fn word(&mut self) -> &'a [u8] {
        // A skip may have stepped past the end (an escape at the very end).
        self.cursor = self.cursor.min(self.text.len());
        let start = self.cursor;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == b'_' || c == b':' || c == b'.' {
                self.cursor += 1;
            } else {
                break;
            }
        }
        &self.text[start..self.cursor]
    }

    fn peek_word(&mut self) -> &'a [u8] {
        let start = self.cursor;
        let word = self.word();
        self.cursor = start;
        word
    }

    fn string(&mut self) {
        let Some(quote) = self.peek() else { return };
        self.cursor += 1;
        while let Some(c) = self.peek() {
            self.cursor += 1;
            if c == b'\\' && quote != b'`' {
                self.cursor += 1;
            } else if c == quote {
                return;
            }
        }
    }

    /// Skips a balanced `(...)`, `{...}` or `[...]` group, strings included.
    fn group(&mut self) {
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            match c {
                b'"' | b'\'' | b'`' => {
                    self.string();
                    continue;
                }
                b'(' | b'{' | b'[' => depth += 1,
                b')' | b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        self.cursor += 1;
                        return;
                    }
                }
                _ => {}
            }
            self.cursor += 1;
        }
    }

    fn number(&mut self) {
        while let Some(c) = self.peek() {
            let prev = self.cursor.checked_sub(1).and_then(|i| self.text.get(i));
            let exponent_sign = (c == b'+' || c == b'-') && matches!(prev, Some(b'e') | Some(b'E'));
            if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || exponent_sign {
                self.cursor += 1;
            } else {
                break;
            }
        }
    }

    /// Skips `@ ...` and `offset ...` modifiers after a selector or subquery.
    fn modifiers(&mut self) {
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'@') => {
                    self.cursor += 1;
                    self.skip_ws();
                    if matches!(self.peek(), Some(b'-') | Some(b'+')) {
                        self.cursor += 1;
                    }
                    self.skip_ws();
                    self.number();
                    self.skip_ws();
                    if self.peek() == Some(b'(') {
                        self.group();
                    }
                }
                _ if self.peek_word().eq_ignore_ascii_case(b"offset") => {
                    self.word();
                    self.skip_ws();
                    if matches!(self.peek(), Some(b'-') | Some(b'+')) {
                        self.cursor += 1;
                    }
                    self.skip_ws();
                    self.number();
                }
                _ => return,
            }
        }
    }

    fn selector_head(&mut self) {
        if self.peek().is_some_and(|c| c != b'{') {
            self.word();
        }
        self.skip_ws();
        if self.peek() == Some(b'{') {
            self.group();
        }
    }

    fn locate(&mut self, expr: &mut Expr) {
        if self.lost {
            return;
        }
        self.skip_ws();
        while self.peek() == Some(b'+') && !matches!(expr.kind, ExprKind::Number(_)) {
            self.cursor += 1;
            self.skip_ws();
        }
        expr.pos = self.cursor;
        match &mut expr.kind {
            ExprKind::Number(_) => {
                while matches!(self.peek(), Some(b'-') | Some(b'+')) {
                    self.cursor += 1;
                    self.skip_ws();
                }
                self.number();
            }
            ExprKind::String(_) => self.string(),
            ExprKind::Selector(selector) => {
                self.selector_head();
                self.modifiers();
                selector.extension = self.take_extension();
            }
            ExprKind::Range { selector, .. } => {
                self.selector_head();
                self.skip_ws();
                self.group();
                self.modifiers();
                selector.extension = self.take_extension();
            }
            ExprKind::Subquery(sq) => {
                self.locate(&mut sq.expr);
                expr.pos = sq.expr.pos;
                self.skip_ws();
                self.group();
                self.modifiers();
            }
            ExprKind::Paren(inner) => {
                self.expect(b'(');
                self.locate(inner);
                self.expect(b')');
            }
            ExprKind::Negate(inner) => {
                self.expect(b'-');
                self.locate(inner);
            }
            ExprKind::Binary(b) => {
                self.locate(&mut b.lhs);
                expr.pos = b.lhs.pos;
                self.skip_ws();
                // The operator: a keyword or one or two symbol characters.
                if self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                    self.word();
                } else {
                    self.cursor += 1;
                    if matches!(self.peek(), Some(b'=') | Some(b'~')) {
                        self.cursor += 1;
                    }
                }
                loop {
                    self.skip_ws();
                    let word = self.peek_word().to_ascii_lowercase();
                    let is_modifier = matches!(
                        word.as_slice(),
                        b"bool"
                            | b"on"
                            | b"ignoring"
                            | b"group_left"
                            | b"group_right"
                            | b"fill"
                            | b"fill_left"
                            | b"fill_right"
                    );
                    if !is_modifier {
                        break;
                    }
                    self.word();
                    self.skip_ws();
                    if self.peek() == Some(b'(') {
                        self.group();
                    }
                }
                self.locate(&mut b.rhs);
            }
            ExprKind::Aggregate(a) => {
                self.word();
                self.grouping_clause();
                self.expect(b'(');
                if let Some(param) = &mut a.param {
                    self.locate(param);
                    self.expect(b',');
                }
                self.locate(&mut a.expr);
                self.expect(b')');
                self.grouping_clause();
            }
            ExprKind::Info(info) => {
                self.word();
                self.expect(b'(');
                self.locate(&mut info.expr);
                self.skip_ws();
                if self.peek() == Some(b',') {
                    self.cursor += 1;
                    self.skip_ws();
                    self.selector_head();
                }
                self.expect(b')');
            }
            ExprKind::Call(call) => {
                self.word();
                self.expect(b'(');
                for (i, arg) in call.args.iter_mut().enumerate() {
                    if i > 0 {
                        self.expect(b',');
                    }
                    self.locate(arg);
                }
                self.skip_ws();
                if self.peek() == Some(b',') {
                    self.cursor += 1;
                }
                self.expect(b')');
            }
        }
    }

    fn grouping_clause(&mut self) {
        self.skip_ws();
        let word = self.peek_word().to_ascii_lowercase();
        if word == b"by" || word == b"without" {
            self.word();
            self.skip_ws();
            self.group();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positions(query: &str) -> Vec<usize> {
        fn walk(expr: &Expr, out: &mut Vec<usize>) {
            out.push(expr.pos);
            match &expr.kind {
                ExprKind::Subquery(sq) => walk(&sq.expr, out),
                ExprKind::Paren(e) | ExprKind::Negate(e) => walk(e, out),
                ExprKind::Binary(b) => {
                    walk(&b.lhs, out);
                    walk(&b.rhs, out);
                }
                ExprKind::Aggregate(a) => {
                    if let Some(p) = &a.param {
                        walk(p, out);
                    }
                    walk(&a.expr, out);
                }
                ExprKind::Call(c) => c.args.iter().for_each(|a| walk(a, out)),
                ExprKind::Info(i) => walk(&i.expr, out),
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(&parse(query, QueryTimes::default()).unwrap().expr, &mut out);
        out
    }

    /// Found by `tsdb/fuzz` (`promql`): a comment ended by `\r` made the
    /// locator run past the end of the text and panic.
    #[test]
    fn comments_end_at_carriage_returns_too() {
        assert_eq!(positions("#\rB-C#\t1"), vec![2, 2, 4]);
        for query in ["x{a=\"\\", "#\r\"\\", "a #\r+ b"] {
            let _ = parse(query, QueryTimes::default());
        }
    }

    #[test]
    fn positions_follow_the_text() {
        assert_eq!(positions("sort(rate(x[5m]))"), vec![0, 5, 10]);
        assert_eq!(
            positions("histogram_quantile(0.5, sum by (le) (rate(x_bucket[1m])))"),
            vec![0, 19, 24, 37, 42]
        );
        assert_eq!(positions("a + on(b) group_left c"), vec![0, 0, 21]);
        assert_eq!(positions("limitk(1.1, foo offset 5m)"), vec![0, 7, 12]);
        assert_eq!(positions("-(x) * -1"), vec![0, 0, 1, 2, 7]);
        assert_eq!(positions("max_over_time(x[5m:1m] @ 100)"), vec![0, 14, 14]);
    }

    #[test]
    fn selectors_are_numbered_and_named() {
        let expr = parse(r#"foo{job="a"} + bar"#, QueryTimes::default())
            .unwrap()
            .expr;
        let ExprKind::Binary(b) = expr.kind else {
            panic!("not binary")
        };
        let ExprKind::Selector(lhs) = &b.lhs.kind else {
            panic!("not selector")
        };
        assert_eq!(lhs.id, 0);
        assert_eq!(lhs.matchers[0].to_string(), r#"__name__="foo""#);
        let ExprKind::Selector(rhs) = &b.rhs.kind else {
            panic!("not selector")
        };
        assert_eq!(rhs.id, 1);
    }

    #[test]
    fn parse_errors_are_errors() {
        let times = QueryTimes::default();
        assert!(parse("rate(", times).is_err());
        assert!(parse("foo{", times).is_err());
        assert!(parse("", times).is_err());
        assert!(parse("abs(x) anchored", times).is_err());
    }
}
