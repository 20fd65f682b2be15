//! Warnings and infos that travel with a query result, worded exactly as
//! Prometheus words them so that clients and the upstream test corpus see the
//! same text.

/// Non-fatal findings of a query, deduplicated, in the order first seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    warnings: Vec<String>,
    infos: Vec<String>,
}

impl Annotations {
    /// Messages starting `PromQL warning: `, plus storage warnings as given.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Messages starting `PromQL info: `.
    pub fn infos(&self) -> &[String] {
        &self.infos
    }

    pub fn is_empty(&self) -> bool {
        self.warnings.is_empty() && self.infos.is_empty()
    }

    pub fn add_warning(&mut self, message: String) {
        if !self.warnings.contains(&message) {
            self.warnings.push(message);
        }
    }

    pub fn add_info(&mut self, message: String) {
        if !self.infos.contains(&message) {
            self.infos.push(message);
        }
    }

    pub fn merge(&mut self, other: Annotations) {
        for warning in other.warnings {
            self.add_warning(warning);
        }
        for info in other.infos {
            self.add_info(info);
        }
    }
}

/// Where in the query text an annotation points: Prometheus appends
/// ` (line:column)` of the expression that caused it, both 1-based, the
/// column counted in bytes.
pub(crate) fn position_suffix(query: &str, offset: usize) -> String {
    let offset = offset.min(query.len());
    let before = &query.as_bytes()[..offset];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    format!("({line}:{})", offset - line_start + 1)
}

/// Formats a float the way Go's `%g` verb does, which Prometheus uses in
/// annotation texts (`got 1.1, capping to 1`, `got NaN`).
pub(crate) fn format_go_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // %g uses the shortest representation, in exponent form when the
    // decimal exponent is < -4 or >= 6 (Go's threshold for shortest %g).
    let exponent = v.abs().log10().floor() as i32;
    if (-4..6).contains(&exponent) {
        format!("{v}")
    } else {
        let s = format!("{v:e}");
        // Rust prints `1e-5`; Go prints `1e-05`.
        match s.split_once('e') {
            Some((mantissa, exp)) => {
                let (sign, digits) = match exp.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', exp),
                };
                let digits = if digits.len() < 2 {
                    format!("0{digits}")
                } else {
                    digits.to_string()
                };
                format!("{mantissa}e{sign}{digits}")
            }
            None => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_line_and_byte_column() {
        assert_eq!(position_suffix("sort(x)", 0), "(1:1)");
        assert_eq!(position_suffix("a +\n  b", 6), "(2:3)");
    }

    #[test]
    fn go_g_formatting() {
        assert_eq!(format_go_g(1.1), "1.1");
        assert_eq!(format_go_g(-1.0), "-1");
        assert_eq!(format_go_g(f64::NAN), "NaN");
        assert_eq!(format_go_g(0.00001), "1e-05");
        assert_eq!(format_go_g(1e21), "1e+21");
        assert_eq!(format_go_g(1234567.0), "1.234567e+06");
        assert_eq!(format_go_g(100000.0), "100000");
        assert_eq!(format_go_g(f64::NEG_INFINITY), "-Inf");
    }
}
