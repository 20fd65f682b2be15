//! Positions for PromQL parse errors. Prometheus prefixes every parse error
//! with `<line>:<column>:`; the `promql-parser` crate reports none, so the
//! API edge finds one from the text:
//!
//! - lexer errors are exact: the shortest prefix of the query that fails
//!   the same way ends at the offending character; unclosed brackets and
//!   strings point past the end of the input, as in Prometheus;
//! - grammar errors point at the first character after the longest prefix
//!   that parses on its own (`foo bar` → `1:5`), or past the end of the input
//!   when an operand at the end completes it (`rate(x[5m]) +` → `1:16`).
//!
//! Grammar-error columns can differ from Prometheus's where its parser knows
//! better (it sees the token it could not shift); the message text is the
//! parser's own.

/// Queries longer than this get no position: the search parses every
/// prefix.
const MAX_SEARCHED_LEN: usize = 4096;

/// `<line>:<column>: parse error: <message>` for a query that failed to
/// parse with `message`.
pub fn describe_parse_error(query: &str, message: &str) -> String {
    if query.trim().is_empty() {
        return "1:1: parse error: no expression found in input".to_string();
    }
    match error_offset(query) {
        Some(offset) => {
            let (line, column) = line_column(query, offset);
            format!("{line}:{column}: parse error: {message}")
        }
        None => format!("parse error: {message}"),
    }
}

/// The byte offset the error points at (`query.len()` is the end of input).
fn error_offset(query: &str) -> Option<usize> {
    if query.len() > MAX_SEARCHED_LEN {
        return None;
    }
    let boundaries = || {
        query
            .char_indices()
            .map(|(i, c)| i + c.len_utf8())
            .chain(std::iter::once(query.len()))
    };
    if let Err(lex_error) = lex(query) {
        // Unclosed brackets and strings are found at the end of the input.
        if lex_error.contains("end of input")
            || lex_error.contains("unclosed")
            || lex_error.contains("unterminated")
        {
            return Some(query.len());
        }
        // The lexer reads left to right: the first prefix that fails the
        // same way ends right after the offending character.
        let end =
            boundaries().find(|&end| lex(&query[..end]).err().as_deref() == Some(&lex_error))?;
        let last_char = query[..end].chars().next_back().map_or(0, char::len_utf8);
        return Some(end - last_char);
    }
    // The lexer accepted the text, so its brackets balance; when an operand
    // at the end completes it (a trailing operator), the input ended too
    // early.
    if parse(&format!("{query} 1")).is_ok() {
        return Some(query.len());
    }
    let after = boundaries()
        .rev()
        .find(|&end| parse(&query[..end]).is_ok())
        .unwrap_or(0);
    // Skip the blanks after the valid prefix.
    let rest = &query[after..];
    Some(after + rest.len() - rest.trim_start().len())
}

/// `promql_parser::parser::parse`, with a panic inside the third-party
/// parser (it is on the input path) turned into an error.
pub fn parse(query: &str) -> Result<promql_parser::parser::Expr, String> {
    std::panic::catch_unwind(|| promql_parser::parser::parse(query))
        .unwrap_or_else(|_| Err("invalid promql query".to_string()))
}

/// Whether the lexer accepts `query`, and its error if not.
fn lex(query: &str) -> Result<(), String> {
    std::panic::catch_unwind(|| promql_parser::parser::lexer(query).map(drop))
        .unwrap_or_else(|_| Err("invalid promql query".to_string()))
}

/// 1-based line and column (in bytes, as Prometheus counts) of `offset`.
fn line_column(query: &str, offset: usize) -> (usize, usize) {
    let before = &query.as_bytes()[..offset.min(query.len())];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    (line, before.len() - line_start + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(query: &str, want: &str) {
        let message = parse(query).unwrap_err();
        assert_eq!(describe_parse_error(query, &message), want);
    }

    #[test]
    fn lexer_errors_point_at_the_character() {
        check(
            "foo{",
            "1:5: parse error: unexpected end of input inside braces",
        );
        check("up + $", "1:6: parse error: unexpected character: '$'");
        check(
            "up{a=\"b\"} +\n  foo{x!#}",
            "2:9: parse error: unexpected character after '!' inside braces: '#'",
        );
    }

    #[test]
    fn grammar_errors_point_after_the_longest_valid_prefix() {
        check("foo bar", "1:5: parse error: invalid promql query");
        check("sum(foo", "1:8: parse error: unclosed left parenthesis");
        check("rate(foo[5m]) +", "1:16: parse error: invalid promql query");
        check(
            "sum(rate(x[5m])) by (job",
            "1:25: parse error: unclosed left parenthesis",
        );
        check(
            "foo{a=\")\"} )",
            "1:12: parse error: unexpected right parenthesis ')'",
        );
    }

    #[test]
    fn empty_queries() {
        assert_eq!(
            describe_parse_error("", "whatever"),
            "1:1: parse error: no expression found in input"
        );
        assert_eq!(
            describe_parse_error("  \n", "whatever"),
            "1:1: parse error: no expression found in input"
        );
    }
}
