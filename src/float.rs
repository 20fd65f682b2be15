//! Float formatting as Go's `strconv.FormatFloat` does it, because the wire
//! formats we speak (the HTTP API's JSON, the text exposition format) are
//! defined by what Prometheus's Go code writes, and clients such as Grafana
//! and promtool compare or parse those strings.
//!
//! Rust's `Display` and `LowerExp` already produce the shortest digits that
//! round-trip, as Go's `-1` precision does; only the layout differs.

/// A sample value in the HTTP API (vector, matrix): Go's `'f'` form when
/// `1e-6 <= |v| < 1e21` or `v == 0`, else the `'e'` form, as Prometheus's
/// `jsonutil.MarshalFloat` writes it (without the surrounding quotes).
pub fn api_value(v: f64) -> String {
    let abs = v.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        format_e(v)
    } else {
        format_f(v)
    }
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: plain decimal, never an
/// exponent; `NaN`, `+Inf`, `-Inf` for the specials.
pub fn format_f(v: f64) -> String {
    if let Some(special) = special(v) {
        return special.to_string();
    }
    // `Display` for f64 is the shortest round-trip decimal without exponent.
    v.to_string()
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`: `1e+21`, `-2.5e-10`; the
/// exponent has a sign and at least two digits.
pub fn format_e(v: f64) -> String {
    if let Some(special) = special(v) {
        return special.to_string();
    }
    let rust = format!("{v:e}");
    let (mantissa, exponent) = rust.split_once('e').unwrap_or((&rust, "0"));
    let (sign, digits) = match exponent.strip_prefix('-') {
        Some(digits) => ('-', digits),
        None => ('+', exponent),
    };
    format!("{mantissa}e{sign}{digits:0>2}")
}

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)` as the text exposition format
/// writes sample values: the exponent form when the decimal exponent is
/// below -4 or at least 6 (Go uses precision 6 for this decision when the
/// precision is "shortest"), else plain decimal: `5.105112e+06`, `0.0001`.
pub fn format_g(v: f64) -> String {
    if let Some(special) = special(v) {
        return special.to_string();
    }
    if v == 0.0 {
        return format_f(v);
    }
    let exponent = decimal_exponent(v);
    if !(-4..6).contains(&exponent) {
        format_e(v)
    } else {
        format_f(v)
    }
}

fn special(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("+Inf")
    } else if v == f64::NEG_INFINITY {
        Some("-Inf")
    } else {
        None
    }
}

/// The exponent of `v` in scientific notation with shortest digits.
fn decimal_exponent(v: f64) -> i32 {
    let rust = format!("{v:e}");
    rust.split_once('e')
        .and_then(|(_, exponent)| exponent.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(v: f64, f: &str, e: &str, g: &str, api: &str) {
        assert_eq!(format_f(v), f, "'f' of {v:?}");
        assert_eq!(format_e(v), e, "'e' of {v:?}");
        assert_eq!(format_g(v), g, "'g' of {v:?}");
        assert_eq!(api_value(v), api, "api value of {v:?}");
    }

    // Expected strings are what Go 1.22's strconv.FormatFloat prints.
    #[test]
    fn formats_like_go() {
        check(1.0, "1", "1e+00", "1", "1");
        check(0.0, "0", "0e+00", "0", "0");
        check(-0.0, "-0", "-0e+00", "-0", "-0");
        check(0.1, "0.1", "1e-01", "0.1", "0.1");
        check(
            123456789.0,
            "123456789",
            "1.23456789e+08",
            "1.23456789e+08",
            "123456789",
        );
        check(100000.0, "100000", "1e+05", "100000", "100000");
        check(
            5105112.0,
            "5105112",
            "5.105112e+06",
            "5.105112e+06",
            "5105112",
        );
        check(1e21, "1000000000000000000000", "1e+21", "1e+21", "1e+21");
        check(
            1.5e21,
            "1500000000000000000000",
            "1.5e+21",
            "1.5e+21",
            "1.5e+21",
        );
        check(
            1e20,
            "100000000000000000000",
            "1e+20",
            "1e+20",
            "100000000000000000000",
        );
        check(1e-6, "0.000001", "1e-06", "1e-06", "0.000001");
        check(1e-7, "0.0000001", "1e-07", "1e-07", "1e-07");
        check(
            -2.5e-10,
            "-0.00000000025",
            "-2.5e-10",
            "-2.5e-10",
            "-2.5e-10",
        );
        check(0.0001, "0.0001", "1e-04", "0.0001", "0.0001");
        check(
            1e100,
            &format!("1{}", "0".repeat(100)),
            "1e+100",
            "1e+100",
            "1e+100",
        );
        check(f64::NAN, "NaN", "NaN", "NaN", "NaN");
        check(f64::INFINITY, "+Inf", "+Inf", "+Inf", "+Inf");
        check(f64::NEG_INFINITY, "-Inf", "-Inf", "-Inf", "-Inf");
        check(
            0.30000000000000004,
            "0.30000000000000004",
            "3.0000000000000004e-01",
            "0.30000000000000004",
            "0.30000000000000004",
        );
    }
}
