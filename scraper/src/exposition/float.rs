//! Sample values as Prometheus reads and writes them: Go's `strconv.ParseFloat`
//! syntax (minus hexadecimal floats and `_` digit separators, which Prometheus
//! rejects), and the canonical OpenMetrics rendering Prometheus 3 uses for `le`
//! and `quantile` label values.

/// Why a float did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FloatError {
    /// Not a number in Go's syntax.
    Syntax,
    /// A finite literal too large for `f64` (Go reports `ErrRange`).
    Range,
}

/// Parses `s` as Prometheus's text parsers do: Go's `ParseFloat` grammar
/// (`[+-]?digits[.digits][e[+-]digits]`, `[+-]?Inf`, `[+-]?Infinity` and `NaN`,
/// case-insensitive), without hexadecimal floats and `_` separators, and with
/// overflow an error. NaN comes back as the one canonical quiet NaN, so a
/// scraped value can never be mistaken for the staleness marker.
pub(crate) fn parse_go_float(s: &[u8]) -> Result<f64, FloatError> {
    if s.is_empty() {
        return Err(FloatError::Syntax);
    }
    if let Some(v) = fast_decimal(s) {
        return Ok(v);
    }
    let unsigned = match s[0] {
        b'+' | b'-' => &s[1..],
        _ => s,
    };
    if unsigned.eq_ignore_ascii_case(b"inf") || unsigned.eq_ignore_ascii_case(b"infinity") {
        return Ok(if s[0] == b'-' {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if unsigned.eq_ignore_ascii_case(b"nan") {
        // Go accepts no sign on NaN.
        return if unsigned.len() == s.len() {
            Ok(f64::NAN)
        } else {
            Err(FloatError::Syntax)
        };
    }
    // Only the decimal grammar is left: digits, one dot, one exponent.
    if !is_decimal_float(unsigned) {
        return Err(FloatError::Syntax);
    }
    // The grammar check above guarantees ASCII.
    let text = std::str::from_utf8(s).map_err(|_| FloatError::Syntax)?;
    let v: f64 = text.parse().map_err(|_| FloatError::Syntax)?;
    if v.is_infinite() {
        return Err(FloatError::Range);
    }
    Ok(v)
}

/// Exact powers of ten up to 10^15.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// The common case, fast: `[+-]digits[.digits]` with at most 15 digits and
/// no exponent. The mantissa and the power of ten are then exact, so one
/// division rounds correctly (Clinger's fast path).
fn fast_decimal(s: &[u8]) -> Option<f64> {
    let (negative, rest) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest.len() > 16 {
        return None;
    }
    let mut mantissa: u64 = 0;
    let mut digits = 0;
    let mut fraction_digits: Option<usize> = None;
    for &b in rest {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                digits += 1;
                if let Some(f) = fraction_digits.as_mut() {
                    *f += 1;
                }
            }
            b'.' if fraction_digits.is_none() => fraction_digits = Some(0),
            _ => return None,
        }
    }
    if digits == 0 || digits > 15 {
        return None;
    }
    let value = mantissa as f64 / POW10[fraction_digits.unwrap_or(0)];
    Some(if negative { -value } else { value })
}

/// Go's `strconv.ParseFloat` as Prometheus 3 applies it when normalizing `le`
/// and `quantile` label values: [`parse_go_float`] plus `_` separators between
/// digits. `None` when Go would report an error (the value is then kept as
/// written).
pub(crate) fn parse_go_float_label(s: &str) -> Option<f64> {
    if !s.contains('_') {
        return parse_go_float(s.as_bytes()).ok();
    }
    if !underscores_ok(s.as_bytes()) {
        return None;
    }
    let cleaned: Vec<u8> = s.bytes().filter(|&b| b != b'_').collect();
    parse_go_float(&cleaned).ok()
}

/// Go's rule for `_` in decimal literals: only between two digits.
fn underscores_ok(s: &[u8]) -> bool {
    let s = match s.first() {
        Some(b'+' | b'-') => &s[1..],
        _ => s,
    };
    // What the previous byte was: start, digit, underscore or other.
    #[derive(PartialEq)]
    enum Saw {
        Start,
        Digit,
        Underscore,
        Other,
    }
    let mut saw = Saw::Start;
    for &b in s {
        if b.is_ascii_digit() {
            saw = Saw::Digit;
        } else if b == b'_' {
            if saw != Saw::Digit {
                return false;
            }
            saw = Saw::Underscore;
        } else {
            if saw == Saw::Underscore {
                return false;
            }
            saw = Saw::Other;
        }
    }
    saw != Saw::Underscore
}

/// `digits [. digits] [(e|E) [+-] digits]` with at least one mantissa digit.
fn is_decimal_float(s: &[u8]) -> bool {
    let mut i = 0;
    let mut mantissa_digits = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
        mantissa_digits += 1;
    }
    if i < s.len() && s[i] == b'.' {
        i += 1;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
            mantissa_digits += 1;
        }
    }
    if mantissa_digits == 0 {
        return false;
    }
    if i < s.len() && (s[i] == b'e' || s[i] == b'E') {
        i += 1;
        if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == s.len()
}

/// Renders `f` as OpenMetrics canonical text, as Prometheus 3 normalizes
/// `le` and `quantile` label values: `1.0`, `0.0`, `+Inf`, `NaN`, Go's
/// shortest `%g` otherwise, with `.0` appended when that has neither a dot nor
/// an exponent.
pub fn format_openmetrics_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if f == 0.0 {
        return "0.0".to_string();
    }
    let mut s = format_go_g(f);
    if !s.contains(['e', '.']) {
        s.push_str(".0");
    }
    s
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)` for finite non-zero `f`: the
/// shortest round-trip digits, in exponent form when the decimal exponent is
/// below -4 or at least 6 (Go decides with precision 6 when formatting the
/// shortest representation), with a signed exponent of at least two digits.
fn format_go_g(f: f64) -> String {
    // Rust's `{:e}` yields the shortest round-trip digits, e.g. `-1.25e-7`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::with_capacity(digits.len() + 8);
    if neg {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let abs = exp.unsigned_abs();
        if abs < 10 {
            out.push('0');
        }
        out.push_str(&abs.to_string());
        return out;
    }
    // Plain notation: the decimal point sits after `exp + 1` digits.
    let point = exp + 1;
    if point <= 0 {
        out.push_str("0.");
        for _ in 0..(-point) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let point = point as usize;
        if digits.len() <= point {
            out.push_str(&digits);
            for _ in digits.len()..point {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<f64, FloatError> {
        parse_go_float(s.as_bytes())
    }

    #[test]
    fn parses_go_syntax() {
        assert_eq!(parse("0"), Ok(0.0));
        assert_eq!(parse("123456789012345"), Ok(123_456_789_012_345.0));
        assert_eq!(
            parse("1234567890123456789"),
            Ok(1_234_567_890_123_456_789.0)
        );
        assert_eq!(parse("-3e3"), Ok(-3000.0));
        assert_eq!(parse("1.7560473e+06"), Ok(1_756_047.3));
        assert_eq!(parse(".5"), Ok(0.5));
        assert_eq!(parse("5."), Ok(5.0));
        assert_eq!(parse("+.5E-1"), Ok(0.05));
        assert_eq!(parse("08"), Ok(8.0));
        assert_eq!(parse("+Inf"), Ok(f64::INFINITY));
        assert_eq!(parse("-inf"), Ok(f64::NEG_INFINITY));
        assert_eq!(parse("Infinity"), Ok(f64::INFINITY));
        assert_eq!(parse("iNf"), Ok(f64::INFINITY));
        assert!(parse("NaN").is_ok_and(f64::is_nan));
        assert!(parse("nan").is_ok_and(f64::is_nan));
        assert_eq!(parse("1e-400"), Ok(0.0));
        assert_eq!(parse("-0").map(f64::is_sign_negative), Ok(true));
    }

    #[test]
    fn fast_path_agrees_with_the_full_parser() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..100_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let digits = (state % 15 + 1) as usize;
            let text = format!("{}", state % 10u64.pow(digits as u32));
            let point = (state >> 40) as usize % (text.len() + 1);
            let text = format!("{}.{}", &text[..point], &text[point..]);
            let fast = fast_decimal(text.as_bytes());
            let full: Option<f64> = text.parse().ok();
            assert_eq!(fast.map(f64::to_bits), full.map(f64::to_bits), "{text}");
        }
    }

    #[test]
    fn rejects_what_prometheus_rejects() {
        for bad in [
            "",
            "+",
            "-",
            ".",
            "e5",
            "1e",
            "1e+",
            "1.2.3",
            "1_000",
            "0x1p-3",
            "0x10",
            "0b1",
            "0o1",
            "+NaN",
            "-nan",
            "infin",
            "Infinityy",
            "1 ",
            " 1",
            "1\r",
            "blubb",
            "1,5",
        ] {
            assert_eq!(parse(bad), Err(FloatError::Syntax), "{bad:?}");
        }
        assert_eq!(parse("1e400"), Err(FloatError::Range));
        assert_eq!(parse("-1e400"), Err(FloatError::Range));
    }

    #[test]
    fn label_values_accept_go_digit_separators() {
        assert_eq!(parse_go_float_label("1_000"), Some(1000.0));
        assert_eq!(parse_go_float_label("1_2.5_0"), Some(12.5));
        assert_eq!(parse_go_float_label("0.25"), Some(0.25));
        for bad in ["_1", "1_", "1__0", "1_.5", "1._5", "bla", "1e400"] {
            assert_eq!(parse_go_float_label(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn nan_is_never_the_staleness_marker() {
        let v = parse("NaN").unwrap();
        assert_ne!(v.to_bits(), tsdb::model::STALE_NAN_BITS);
    }

    #[test]
    fn formats_like_prometheus_normalizes_le_and_quantile() {
        let cases = [
            (1.0, "1.0"),
            (0.0, "0.0"),
            (-0.0, "0.0"),
            (-1.0, "-1.0"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (0.5, "0.5"),
            (0.25, "0.25"),
            (2.5, "2.5"),
            (100.0, "100.0"),
            (100_000.0, "100000.0"),
            (1_000_000.0, "1e+06"),
            (3_600_000.0, "3.6e+06"),
            (1.1e23, "1.1e+23"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.1e-4, "0.00011"),
            (1e-10, "1e-10"),
            (172.8, "172.8"),
            (-12.34, "-12.34"),
            (0.005, "0.005"),
            (123_456.7, "123456.7"),
            (1_234_567.0, "1.234567e+06"),
        ];
        for (f, want) in cases {
            assert_eq!(format_openmetrics_float(f), want, "{f}");
        }
    }
}
