//! Lexing and parsing Go `text/template` source into a tree, with the
//! checks Go's parser makes (unknown functions, undefined variables,
//! unbalanced `{{end}}`, `{{break}}` outside `{{range}}`, ...), so that a
//! rules file Prometheus rejects is rejected here too.

use std::collections::BTreeMap;

/// A parse failure, worded as Go's `template: NAME:LINE: message`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError(pub String);

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Text(String),
    Action(Pipe),
    If(Branch),
    Range(Branch),
    With(Branch),
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break(usize),
    Continue(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pipe {
    pub pos: usize,
    pub decl: Vec<String>,
    /// `=` rather than `:=`.
    pub is_assign: bool,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cmd {
    pub pos: usize,
    pub args: Vec<Arg>,
    /// The command's source text, for error context.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Dot,
    Nil,
    Bool(bool),
    /// An integer literal (Go's ideal integer constant).
    Int(i64),
    /// A float literal (has `.`, `e` or `p`).
    Float(f64),
    String(String),
    /// `.A.B`
    Field(Vec<String>),
    /// `$x.A.B`
    Variable(String, Vec<String>),
    /// A function name.
    Ident(String),
    /// `(pipeline).A.B`
    Chain(Box<Arg>, Vec<String>),
    Pipe(Box<Pipe>),
}

/// A parsed template: its body and the templates it `define`s.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tree {
    pub root: Vec<Node>,
    pub defines: BTreeMap<String, Vec<Node>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Text(String),
    Left,
    Right,
    Space,
    Ident(String),
    Keyword(&'static str),
    Field(String),
    Variable(String),
    Dot,
    Str(String),
    Char(i64),
    Number(String),
    Bool(bool),
    Nil,
    Pipe,
    LeftParen,
    RightParen,
    Declare,
    Assign,
    Comma,
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: usize,
    line: usize,
}

const KEYWORDS: [&str; 10] = [
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
];

struct Lexer<'a> {
    name: &'a str,
    src: &'a str,
    pos: usize,
    line: usize,
    tokens: Vec<Token>,
    paren_depth: usize,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

impl<'a> Lexer<'a> {
    fn error(&self, line: usize, message: impl std::fmt::Display) -> ParseError {
        ParseError(format!("template: {}:{}: {}", self.name, line, message))
    }

    fn push(&mut self, tok: Tok, pos: usize, line: usize) {
        self.tokens.push(Token { tok, pos, line });
    }

    fn lex(mut self) -> Result<Vec<Token>, ParseError> {
        let mut trim_next_text = false;
        loop {
            let rest = &self.src[self.pos..];
            let Some(start) = rest.find("{{") else {
                let mut text = rest;
                if trim_next_text {
                    text = text.trim_start_matches(is_space);
                }
                if !text.is_empty() {
                    self.push(Tok::Text(text.to_string()), self.pos, self.line);
                }
                self.line += rest.matches('\n').count();
                self.pos = self.src.len();
                let (pos, line) = (self.pos, self.line);
                self.push(Tok::Eof, pos, line);
                return Ok(self.tokens);
            };
            let after_delim = &rest[start + 2..];
            let trim_left =
                after_delim.starts_with('-') && after_delim[1..].starts_with(|c: char| is_space(c));
            let mut text = &rest[..start];
            if trim_next_text {
                text = text.trim_start_matches(is_space);
            }
            if trim_left {
                text = text.trim_end_matches(is_space);
            }
            if !text.is_empty() {
                self.push(Tok::Text(text.to_string()), self.pos, self.line);
            }
            self.line += rest[..start].matches('\n').count();
            self.pos += start;
            let action_start = self.pos;
            self.pos += 2;
            if trim_left {
                self.pos += 2;
            }
            // A comment must follow the delimiter directly.
            if self.src[self.pos..].starts_with("/*") {
                let Some(end) = self.src[self.pos..].find("*/") else {
                    return Err(self.error(self.line, "unclosed comment"));
                };
                let comment_end = self.pos + end + 2;
                self.line += self.src[self.pos..comment_end].matches('\n').count();
                self.pos = comment_end;
                let tail = &self.src[self.pos..];
                if tail.starts_with(" -}}") {
                    self.pos += 4;
                    trim_next_text = true;
                } else if tail.starts_with("}}") {
                    self.pos += 2;
                    trim_next_text = false;
                } else {
                    return Err(self.error(self.line, "comment ends before closing delimiter"));
                }
                continue;
            }
            let line = self.line;
            self.push(Tok::Left, action_start, line);
            trim_next_text = self.lex_action()?;
        }
    }

    /// Lexes inside an action up to `}}`; returns whether it was `-}}`.
    fn lex_action(&mut self) -> Result<bool, ParseError> {
        self.paren_depth = 0;
        loop {
            let rest = &self.src[self.pos..];
            if rest.starts_with(" -}}") || rest.starts_with("\t-}}") || rest.starts_with("\n-}}") {
                if self.paren_depth > 0 {
                    return Err(self.error(self.line, "unclosed left paren"));
                }
                let (pos, line) = (self.pos + 1, self.line);
                self.line += rest[..1].matches('\n').count();
                self.push(Tok::Right, pos, line);
                self.pos += 4;
                return Ok(true);
            }
            if rest.starts_with("}}") {
                if self.paren_depth > 0 {
                    return Err(self.error(self.line, "unclosed left paren"));
                }
                let (pos, line) = (self.pos, self.line);
                self.push(Tok::Right, pos, line);
                self.pos += 2;
                return Ok(false);
            }
            let Some(c) = rest.chars().next() else {
                return Err(self.error(self.line, "unclosed action"));
            };
            let (pos, line) = (self.pos, self.line);
            if is_space(c) {
                let len = rest.len() - rest.trim_start_matches(is_space).len();
                let spaces = &rest[..len];
                // `-}}` after spaces is handled at the next turn.
                let stop = if rest[len..].starts_with("-}}") {
                    len - 1
                } else {
                    len
                };
                if stop > 0 {
                    self.line += spaces[..stop].matches('\n').count();
                    self.push(Tok::Space, pos, line);
                    self.pos += stop;
                }
                if stop == len {
                    continue;
                }
                continue;
            }
            match c {
                '|' => {
                    self.push(Tok::Pipe, pos, line);
                    self.pos += 1;
                }
                '(' => {
                    self.paren_depth += 1;
                    self.push(Tok::LeftParen, pos, line);
                    self.pos += 1;
                }
                ')' => {
                    if self.paren_depth == 0 {
                        return Err(self.error(line, "unexpected right paren"));
                    }
                    self.paren_depth -= 1;
                    self.push(Tok::RightParen, pos, line);
                    self.pos += 1;
                }
                ',' => {
                    self.push(Tok::Comma, pos, line);
                    self.pos += 1;
                }
                ':' => {
                    if !rest.starts_with(":=") {
                        return Err(self.error(line, "expected :="));
                    }
                    self.push(Tok::Declare, pos, line);
                    self.pos += 2;
                }
                '=' => {
                    self.push(Tok::Assign, pos, line);
                    self.pos += 1;
                }
                '"' => {
                    let (value, len) = self.quoted(rest, '"')?;
                    self.push(Tok::Str(value), pos, line);
                    self.pos += len;
                }
                '`' => {
                    let Some(end) = rest[1..].find('`') else {
                        return Err(self.error(line, "unterminated raw quoted string"));
                    };
                    let value = rest[1..1 + end].to_string();
                    self.line += value.matches('\n').count();
                    self.push(Tok::Str(value), pos, line);
                    self.pos += end + 2;
                }
                '\'' => {
                    let (value, len) = self.quoted(rest, '\'')?;
                    let mut chars = value.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) => self.push(Tok::Char(c as i64), pos, line),
                        _ => {
                            return Err(self.error(
                                line,
                                format!("malformed character constant: {}", &rest[..len]),
                            ));
                        }
                    }
                    self.pos += len;
                }
                '$' => {
                    let len = 1 + rest[1..]
                        .find(|c: char| !is_alnum(c))
                        .unwrap_or(rest.len() - 1);
                    self.push(Tok::Variable(rest[..len].to_string()), pos, line);
                    self.pos += len;
                }
                '.' => {
                    let next = rest[1..].chars().next();
                    match next {
                        Some(d) if d.is_ascii_digit() => self.number(rest)?,
                        Some(a) if is_alnum(a) => {
                            let len = 1 + rest[1..]
                                .find(|c: char| !is_alnum(c))
                                .unwrap_or(rest.len() - 1);
                            self.push(Tok::Field(rest[1..len].to_string()), pos, line);
                            self.pos += len;
                        }
                        _ => {
                            self.push(Tok::Dot, pos, line);
                            self.pos += 1;
                        }
                    }
                }
                '+' | '-' | '0'..='9' => self.number(rest)?,
                c if is_alnum(c) => {
                    let len = rest.find(|c: char| !is_alnum(c)).unwrap_or(rest.len());
                    let word = &rest[..len];
                    let tok = match word {
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        "nil" => Tok::Nil,
                        w => match KEYWORDS.iter().find(|k| **k == w) {
                            Some(k) => Tok::Keyword(k),
                            None => Tok::Ident(w.to_string()),
                        },
                    };
                    self.push(tok, pos, line);
                    self.pos += len;
                }
                c => {
                    return Err(self.error(
                        line,
                        format!(
                            "unexpected bad character U+{:04X} '{c}' in command",
                            c as u32
                        ),
                    ));
                }
            }
        }
    }

    /// A Go-quoted string at the start of `rest`; returns the value and the
    /// quoted length.
    fn quoted(&self, rest: &str, quote: char) -> Result<(String, usize), ParseError> {
        let mut escaped = false;
        for (i, c) in rest.char_indices().skip(1) {
            if c == '\n' {
                break;
            }
            if escaped {
                escaped = false;
                continue;
            }
            if c == '\\' {
                escaped = true;
                continue;
            }
            if c == quote {
                let literal = &rest[..i + 1];
                return go_unquote(literal)
                    .map(|v| (v, i + 1))
                    .ok_or_else(|| self.error(self.line, format!("invalid syntax: {literal}")));
            }
        }
        Err(self.error(
            self.line,
            if quote == '"' {
                "unterminated quoted string"
            } else {
                "unterminated character constant"
            },
        ))
    }

    fn number(&mut self, rest: &str) -> Result<(), ParseError> {
        let (pos, line) = (self.pos, self.line);
        let bytes = rest.as_bytes();
        let mut i = 0;
        if matches!(bytes.first(), Some(b'+' | b'-')) {
            i += 1;
        }
        let hex = rest[i..].starts_with("0x") || rest[i..].starts_with("0X");
        while i < bytes.len() {
            let b = bytes[i];
            let exponent_sign = matches!(b, b'+' | b'-')
                && i > 0
                && matches!(bytes[i - 1], b'e' | b'E' | b'p' | b'P')
                && !(hex && matches!(bytes[i - 1], b'e' | b'E'));
            if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || exponent_sign {
                i += 1;
            } else {
                break;
            }
        }
        let text = &rest[..i];
        if text == "+" || text == "-" {
            return Err(self.error(line, format!("bad number syntax: {text:?}")));
        }
        self.push(Tok::Number(text.to_string()), pos, line);
        self.pos += i;
        Ok(())
    }
}

/// Go's `strconv.Unquote` for double- and single-quoted literals.
pub fn go_unquote(s: &str) -> Option<String> {
    let quote = s.chars().next()?;
    let body = s.get(1..s.len().checked_sub(1)?)?;
    if !s.ends_with(quote) || s.len() < 2 {
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
            '\\' => out.push('\\'),
            '"' if quote == '"' => out.push('"'),
            '\'' if quote == '\'' => out.push('\''),
            'x' | 'u' | 'U' => {
                let n = match escape {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = (0..n).filter_map(|_| chars.next()).collect();
                if hex.len() != n {
                    return None;
                }
                let code = u32::from_str_radix(&hex, 16).ok()?;
                out.push(char::from_u32(code)?);
            }
            '0'..='7' => {
                let mut oct = escape.to_string();
                for _ in 0..2 {
                    oct.push(chars.next()?);
                }
                let code = u32::from_str_radix(&oct, 8).ok()?;
                out.push(char::from_u32(code)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Parses `text` named `name`; `funcs` are the function names in scope.
///
/// # Errors
/// The first syntax or scoping error, worded as Go words it.
pub fn parse(name: &str, text: &str, funcs: &dyn Fn(&str) -> bool) -> Result<Tree, ParseError> {
    let tokens = Lexer {
        name,
        src: text,
        pos: 0,
        line: 1,
        tokens: Vec::new(),
        paren_depth: 0,
    }
    .lex()?;
    let mut parser = Parser {
        name,
        src: text,
        tokens,
        next: 0,
        vars: vec!["$".to_string()],
        range_depth: 0,
        funcs,
        defines: BTreeMap::new(),
    };
    let (root, end) = parser.item_list(true)?;
    if end.is_some() {
        return Err(parser.error_at(parser.last_line(), "unexpected {{end}}"));
    }
    Ok(Tree {
        root,
        defines: parser.defines,
    })
}

struct Parser<'a> {
    name: &'a str,
    src: &'a str,
    tokens: Vec<Token>,
    next: usize,
    vars: Vec<String>,
    range_depth: usize,
    funcs: &'a dyn Fn(&str) -> bool,
    defines: BTreeMap<String, Vec<Node>>,
}

/// What ended an item list.
#[derive(Debug, PartialEq)]
enum ListEnd {
    End,
    Else,
}

impl Parser<'_> {
    fn error_at(&self, line: usize, message: impl std::fmt::Display) -> ParseError {
        ParseError(format!("template: {}:{}: {}", self.name, line, message))
    }

    fn last_line(&self) -> usize {
        self.tokens
            .get(self.next.saturating_sub(1))
            .map_or(1, |t| t.line)
    }

    fn peek(&self) -> &Token {
        // The lexer always ends the list with Eof, which is never consumed.
        &self.tokens[self.next.min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if token.tok != Tok::Eof {
            self.next += 1;
        }
        token
    }

    fn skip_space(&mut self) {
        while self.peek().tok == Tok::Space {
            self.next += 1;
        }
    }

    /// The next token that is not a space.
    fn next_non_space(&mut self) -> Token {
        self.skip_space();
        self.advance()
    }

    fn peek_non_space(&mut self) -> Token {
        self.skip_space();
        self.peek().clone()
    }

    fn unexpected(&self, token: &Token, context: &str) -> ParseError {
        let what = match &token.tok {
            Tok::Eof => "EOF".to_string(),
            Tok::Right => "\"}}\"".to_string(),
            Tok::Left => "\"{{\"".to_string(),
            Tok::RightParen => "\")\"".to_string(),
            Tok::Ident(s) | Tok::Field(s) | Tok::Variable(s) | Tok::Number(s) => format!("{s:?}"),
            Tok::Keyword(k) => format!("<{k}>"),
            other => format!("{other:?}"),
        };
        self.error_at(token.line, format!("unexpected {what} in {context}"))
    }

    /// Items until EOF (`top`) or an `{{end}}`/`{{else}}`; returns what
    /// ended the list.
    fn item_list(&mut self, top: bool) -> Result<(Vec<Node>, Option<ListEnd>), ParseError> {
        let mut nodes = Vec::new();
        loop {
            let token = self.advance();
            match token.tok {
                Tok::Eof => {
                    if top {
                        return Ok((nodes, None));
                    }
                    return Err(self.error_at(token.line, "unexpected EOF"));
                }
                Tok::Text(text) => nodes.push(Node::Text(text)),
                Tok::Left => {
                    let keyword = self.peek_non_space();
                    match keyword.tok {
                        Tok::Keyword("end") => {
                            self.next_non_space();
                            self.expect_right("end")?;
                            if top {
                                return Err(self.error_at(keyword.line, "unexpected {{end}}"));
                            }
                            return Ok((nodes, Some(ListEnd::End)));
                        }
                        Tok::Keyword("else") => {
                            if top {
                                return Err(self.error_at(keyword.line, "unexpected {{else}}"));
                            }
                            self.next_non_space();
                            return Ok((nodes, Some(ListEnd::Else)));
                        }
                        _ => {
                            if let Some(node) = self.action()? {
                                nodes.push(node);
                            }
                        }
                    }
                }
                _ => return Err(self.unexpected(&token, "input")),
            }
        }
    }

    fn expect_right(&mut self, context: &str) -> Result<(), ParseError> {
        let token = self.next_non_space();
        if token.tok != Tok::Right {
            return Err(self.unexpected(&token, context));
        }
        Ok(())
    }

    /// After `{{`: a control structure or a pipeline action.
    fn action(&mut self) -> Result<Option<Node>, ParseError> {
        let token = self.peek_non_space();
        match token.tok {
            Tok::Keyword("if") => {
                self.next_non_space();
                Ok(Some(Node::If(self.branch("if")?)))
            }
            Tok::Keyword("with") => {
                self.next_non_space();
                Ok(Some(Node::With(self.branch("with")?)))
            }
            Tok::Keyword("range") => {
                self.next_non_space();
                self.range_depth += 1;
                let branch = self.branch("range");
                self.range_depth -= 1;
                Ok(Some(Node::Range(branch?)))
            }
            Tok::Keyword("break") | Tok::Keyword("continue") => {
                self.next_non_space();
                let keyword = if token.tok == Tok::Keyword("break") {
                    "break"
                } else {
                    "continue"
                };
                if self.range_depth == 0 {
                    return Err(self.error_at(
                        token.line,
                        format!("{{{{{keyword}}}}} outside {{{{range}}}}"),
                    ));
                }
                let end = self.next_non_space();
                if end.tok != Tok::Right {
                    return Err(self.unexpected(&end, &format!("{{{{{keyword}}}}}")));
                }
                Ok(Some(if keyword == "break" {
                    Node::Break(token.pos)
                } else {
                    Node::Continue(token.pos)
                }))
            }
            Tok::Keyword("template") => {
                self.next_non_space();
                let (name, pipe) = self.template_call("template")?;
                Ok(Some(Node::Template {
                    pos: token.pos,
                    name,
                    pipe,
                }))
            }
            Tok::Keyword("block") => {
                self.next_non_space();
                let (name, pipe) = self.template_call("block")?;
                let saved = self.vars.clone();
                self.vars = vec!["$".to_string()];
                let (body, end) = self.item_list(false)?;
                self.vars = saved;
                if end != Some(ListEnd::End) {
                    return Err(self.error_at(token.line, "unexpected {{else}} in block clause"));
                }
                self.defines.insert(name.clone(), body);
                Ok(Some(Node::Template {
                    pos: token.pos,
                    name,
                    pipe,
                }))
            }
            Tok::Keyword("define") => {
                self.next_non_space();
                let name_token = self.next_non_space();
                let Tok::Str(name) = name_token.tok else {
                    return Err(self.unexpected(&name_token, "define clause"));
                };
                self.expect_right("define clause")?;
                let saved = self.vars.clone();
                self.vars = vec!["$".to_string()];
                let (body, end) = self.item_list(false)?;
                self.vars = saved;
                if end != Some(ListEnd::End) {
                    return Err(self.error_at(token.line, "unexpected {{else}} in define clause"));
                }
                self.defines.insert(name, body);
                Ok(None)
            }
            Tok::Keyword(k) => {
                Err(self.error_at(token.line, format!("unexpected <{k}> in command")))
            }
            _ => Ok(Some(Node::Action(self.pipeline("command", Tok::Right)?))),
        }
    }

    fn template_call(&mut self, context: &str) -> Result<(String, Option<Pipe>), ParseError> {
        let name_token = self.next_non_space();
        let Tok::Str(name) = name_token.tok else {
            return Err(self.unexpected(&name_token, &format!("{context} clause")));
        };
        let next = self.peek_non_space();
        let pipe = if next.tok == Tok::Right {
            self.next_non_space();
            None
        } else {
            Some(self.pipeline(context, Tok::Right)?)
        };
        Ok((name, pipe))
    }

    /// `if`/`with`/`range`: pipeline, list, optional else (or else-if).
    fn branch(&mut self, context: &'static str) -> Result<Branch, ParseError> {
        let saved_vars = self.vars.len();
        let pipe = self.pipeline(context, Tok::Right)?;
        let (list, end) = self.item_list(false)?;
        let else_list = match end {
            Some(ListEnd::End) | None => None,
            Some(ListEnd::Else) => {
                // `{{else if ...}}` / `{{else with ...}}` nest a branch that
                // shares the outer `{{end}}`.
                let next = self.peek_non_space();
                let chained = matches!(
                    (&next.tok, context),
                    (Tok::Keyword("if"), "if") | (Tok::Keyword("with"), "with")
                );
                if chained {
                    self.next_non_space();
                    let inner = self.branch(context)?;
                    Some(vec![if context == "if" {
                        Node::If(inner)
                    } else {
                        Node::With(inner)
                    }])
                } else {
                    self.expect_right("else")?;
                    if context == "range" {
                        // `{{break}}` in a range's else belongs to an outer range.
                        self.range_depth -= 1;
                    }
                    let listed = self.item_list(false);
                    if context == "range" {
                        self.range_depth += 1;
                    }
                    let (list, end) = listed?;
                    if end != Some(ListEnd::End) {
                        return Err(self.error_at(self.last_line(), "expected end; found {{else}}"));
                    }
                    Some(list)
                }
            }
        };
        self.vars.truncate(saved_vars);
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    /// A pipeline up to `end` (`}}` or `)`), with optional declarations.
    fn pipeline(&mut self, context: &str, end: Tok) -> Result<Pipe, ParseError> {
        let start = self.peek_non_space();
        let mut decl = Vec::new();
        let mut is_assign = false;
        // `$x :=`, `$x =`, `$i, $e :=` (range only).
        if let Tok::Variable(first) = &start.tok {
            let save = self.next;
            self.next_non_space();
            let after = self.peek_non_space();
            match after.tok {
                Tok::Declare | Tok::Assign => {
                    self.next_non_space();
                    is_assign = after.tok == Tok::Assign;
                    decl.push(first.clone());
                }
                Tok::Comma if context == "range" => {
                    self.next_non_space();
                    let second = self.next_non_space();
                    let Tok::Variable(second_name) = second.tok else {
                        return Err(
                            self.error_at(second.line, "range can only initialize variables")
                        );
                    };
                    let op = self.next_non_space();
                    if !matches!(op.tok, Tok::Declare | Tok::Assign) {
                        return Err(self.unexpected(&op, "range"));
                    }
                    is_assign = op.tok == Tok::Assign;
                    decl.push(first.clone());
                    decl.push(second_name);
                }
                _ => self.next = save,
            }
        }
        if is_assign {
            for var in &decl {
                if !self.vars.contains(var) {
                    return Err(self.error_at(start.line, format!("undefined variable {var:?}")));
                }
            }
        }
        let mut cmds = Vec::new();
        loop {
            let token = self.peek_non_space();
            if token.tok == end {
                self.next_non_space();
                if cmds.is_empty() {
                    return Err(self.error_at(token.line, format!("missing value for {context}")));
                }
                break;
            }
            match token.tok {
                Tok::Eof | Tok::Right | Tok::RightParen => {
                    return Err(self.unexpected(&token, context));
                }
                _ => {}
            }
            let cmd = self.command(&end)?;
            cmds.push(cmd);
            // A trailing `|` before the end is accepted, as Go does.
            if self.peek_non_space().tok == Tok::Pipe {
                self.next_non_space();
            }
        }
        if !is_assign {
            self.vars.extend(decl.iter().cloned());
        }
        for (i, cmd) in cmds.iter().enumerate().skip(1) {
            if matches!(
                cmd.args.first(),
                Some(
                    Arg::Bool(_)
                        | Arg::Dot
                        | Arg::Nil
                        | Arg::Int(_)
                        | Arg::Float(_)
                        | Arg::String(_)
                )
            ) {
                return Err(self.error_at(
                    start.line,
                    format!("non executable command in pipeline stage {}", i + 1),
                ));
            }
        }
        Ok(Pipe {
            pos: start.pos,
            decl,
            is_assign,
            cmds,
        })
    }

    /// Operands up to `|` or the end token.
    fn command(&mut self, end: &Tok) -> Result<Cmd, ParseError> {
        let start = self.peek_non_space();
        let mut args = Vec::new();
        let mut last_end = start.pos;
        loop {
            let token = self.peek_non_space();
            if token.tok == *end || token.tok == Tok::Pipe {
                break;
            }
            let operand = self.operand()?;
            last_end = self.peek().pos;
            args.push(operand);
            // Operands are separated by spaces; anything else here is an error.
            let next = self.peek().clone();
            match next.tok {
                Tok::Space => {}
                Tok::Pipe | Tok::Right | Tok::RightParen => {}
                _ if next.tok == *end => {}
                _ => return Err(self.unexpected(&next, "operand")),
            }
        }
        if args.is_empty() {
            return Err(self.error_at(start.line, "empty command"));
        }
        if args.len() == 1 && args[0] == Arg::Nil {
            return Err(self.error_at(start.line, "nil is not a command"));
        }
        let text = self
            .src
            .get(start.pos..last_end)
            .unwrap_or_default()
            .trim()
            .to_string();
        Ok(Cmd {
            pos: start.pos,
            args,
            text,
        })
    }

    fn operand(&mut self) -> Result<Arg, ParseError> {
        let term = self.term()?;
        let mut fields = Vec::new();
        while let Tok::Field(name) = &self.peek().tok {
            fields.push(name.clone());
            self.next += 1;
        }
        if fields.is_empty() {
            return Ok(term);
        }
        Ok(match term {
            Arg::Field(mut base) => {
                base.extend(fields);
                Arg::Field(base)
            }
            Arg::Variable(name, mut base) => {
                base.extend(fields);
                Arg::Variable(name, base)
            }
            Arg::Bool(_) | Arg::String(_) | Arg::Int(_) | Arg::Float(_) | Arg::Nil | Arg::Dot => {
                return Err(self.error_at(
                    self.last_line(),
                    format!("unexpected . after term {:?}", term_text(&term)),
                ));
            }
            other => Arg::Chain(Box::new(other), fields),
        })
    }

    fn term(&mut self) -> Result<Arg, ParseError> {
        let token = self.advance();
        Ok(match token.tok {
            Tok::Ident(name) => {
                if !(self.funcs)(&name) {
                    return Err(self.error_at(token.line, format!("function {name:?} not defined")));
                }
                Arg::Ident(name)
            }
            Tok::Dot => Arg::Dot,
            Tok::Nil => Arg::Nil,
            Tok::Variable(name) => {
                if !self.vars.contains(&name) {
                    return Err(self.error_at(token.line, format!("undefined variable {name:?}")));
                }
                Arg::Variable(name, Vec::new())
            }
            Tok::Field(name) => Arg::Field(vec![name]),
            Tok::Bool(b) => Arg::Bool(b),
            Tok::Char(c) => Arg::Int(c),
            Tok::Number(text) => self.number(&text, token.line)?,
            Tok::Str(s) => Arg::String(s),
            Tok::LeftParen => {
                let pipe = self.pipeline("parenthesized pipeline", Tok::RightParen)?;
                Arg::Pipe(Box::new(pipe))
            }
            _ => return Err(self.unexpected(&token, "operand")),
        })
    }

    fn number(&self, text: &str, line: usize) -> Result<Arg, ParseError> {
        let bad = || self.error_at(line, format!("bad number syntax: {text:?}"));
        let clean: String = text.chars().filter(|&c| c != '_').collect();
        let (negative, digits) = match clean.strip_prefix('-') {
            Some(d) => (true, d.to_string()),
            None => (false, clean.trim_start_matches('+').to_string()),
        };
        let lower = digits.to_ascii_lowercase();
        let int = if let Some(hex) = lower.strip_prefix("0x") {
            i64::from_str_radix(hex, 16).ok()
        } else if let Some(oct) = lower.strip_prefix("0o") {
            i64::from_str_radix(oct, 8).ok()
        } else if let Some(bin) = lower.strip_prefix("0b") {
            i64::from_str_radix(bin, 2).ok()
        } else if lower.len() > 1
            && lower.starts_with('0')
            && lower.bytes().all(|b| b.is_ascii_digit())
        {
            i64::from_str_radix(&lower[1..], 8).ok()
        } else if lower.bytes().all(|b| b.is_ascii_digit()) {
            lower.parse().ok()
        } else {
            None
        };
        if let Some(n) = int {
            return Ok(Arg::Int(if negative { -n } else { n }));
        }
        let is_hex = lower.starts_with("0x");
        if !is_hex && lower.contains(['.', 'e']) {
            let f: f64 = lower.parse().map_err(|_| bad())?;
            return Ok(Arg::Float(if negative { -f } else { f }));
        }
        if lower.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.error_at(line, format!("integer overflow: {text:?}")));
        }
        Err(bad())
    }
}

fn term_text(arg: &Arg) -> String {
    match arg {
        Arg::Bool(b) => b.to_string(),
        Arg::String(s) => format!("{s:?}"),
        Arg::Int(n) => n.to_string(),
        Arg::Float(f) => f.to_string(),
        Arg::Nil => "nil".to_string(),
        _ => ".".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(name: &str) -> bool {
        matches!(
            name,
            "printf" | "humanize" | "eq" | "len" | "query" | "first" | "value"
        )
    }

    fn ok(text: &str) -> Tree {
        parse("t", text, &known).unwrap_or_else(|e| panic!("{text:?}: {}", e.0))
    }

    fn err(text: &str) -> String {
        match parse("t", text, &known) {
            Ok(tree) => panic!("{text:?} parsed: {tree:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn accepts_what_go_accepts() {
        ok("plain text");
        ok("{{ $labels := .Labels }}{{ $labels.instance }} is {{ .Value | humanize }}");
        ok("{{ if eq .A \"x\" }}a{{ else if .B }}b{{ else }}c{{ end }}");
        ok("{{ range $i, $e := .List }}{{ $i }}={{ $e }}{{ break }}{{ end }}");
        ok("{{ with query \"up\" }}{{ . | first | value }}{{ end }}");
        ok("{{- /* a comment */ -}} x {{ printf \"%.2f\" 1.5 }}");
        ok("{{ (len .A) }} {{ (.A).B }} {{ 'a' }} {{ -1 }} {{ 0x1F }} {{ 1e3 }}");
        ok("{{ define \"x\" }}y{{ end }}{{ template \"x\" . }}");
        ok("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}");
        ok("{{ `raw` }}");
        ok("{{ .A | }}");
    }

    #[test]
    fn rejects_what_go_rejects() {
        assert_eq!(
            err("{{ nosuch }}"),
            "template: t:1: function \"nosuch\" not defined"
        );
        assert_eq!(err("{{ $x }}"), "template: t:1: undefined variable \"$x\"");
        assert!(err("{{ if .A }}").contains("unexpected EOF"));
        assert!(err("a\n{{ end }}").starts_with("template: t:2: unexpected {{end}}"));
        assert!(err("{{ .A ").contains("unclosed action"));
        assert!(err("{{ \"abc }}").contains("unterminated quoted string"));
        assert!(err("{{ break }}").contains("{{break}} outside {{range}}"));
        assert!(err("{{ }}").contains("missing value for command"));
        assert!(err("{{ .A | 1 }}").contains("non executable command in pipeline stage 2"));
        assert!(err("{{ nil }}").contains("nil is not a command"));
        assert!(err("{{ if .A }}{{ $y := 1 }}{{ end }}{{ $y }}").contains("undefined variable"));
        assert!(err("{{ # }}").contains("bad character"));
        assert!(err("{{ $x = 1 }}").contains("undefined variable"));
        assert!(err("{{ (.A }}").contains("unclosed left paren"));
    }

    #[test]
    fn trim_markers_trim_spaces() {
        let tree = ok("a  {{- 1 -}}  b");
        assert_eq!(tree.root[0], Node::Text("a".into()));
        assert_eq!(tree.root[2], Node::Text("b".into()));
    }
}
