//! Go's `fmt` as templates see it: how values print (`{{ $value }}`, `print`)
//! and `printf` with the verbs rule templates use (`%s %v %d %f %e %g %q %x
//! %t %c %%`, flags `+ - # 0 space`, width and precision). Mismatches print
//! Go's `%!verb(type=value)` notes instead of failing.

use super::Value;
use crate::float::format_g;

/// How `fmt.Sprint` prints one value (`%v`).
pub fn sprint_value(value: &Value) -> String {
    match value {
        Value::Nil => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format_g(*f),
        Value::String(s) | Value::Html(s) => s.clone(),
        Value::StrMap(map) => {
            let items: Vec<String> = map.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("map[{}]", items.join(" "))
        }
        Value::Map(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", sprint_value(v)))
                .collect();
            format!("map[{}]", items.join(" "))
        }
        Value::List(items) => {
            let items: Vec<String> = items.iter().map(sprint_value).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Sample(sample) => {
            let labels = sprint_value(&Value::StrMap(sample.labels.clone()));
            format!("{{{labels} {}}}", format_g(sample.value))
        }
        Value::Samples(samples) => {
            let items: Vec<String> = samples
                .iter()
                .map(|s| sprint_value(&Value::Sample(s.clone())))
                .collect();
            format!("[{}]", items.join(" "))
        }
        Value::Time(ms) => super::funcs::go_time_string(*ms),
        Value::Duration(ms) => super::funcs::go_duration_string(*ms),
        Value::Struct(_) => "{...}".to_string(),
    }
}

/// `fmt.Sprint(args...)`: spaces only between operands when neither is a
/// string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        let is_string = |v: &Value| matches!(v, Value::String(_) | Value::Html(_));
        if i > 0 && !is_string(arg) && !is_string(&args[i - 1]) {
            out.push(' ');
        }
        out.push_str(&sprint_value(arg));
    }
    out
}

/// `fmt.Sprintln(args...)`: always spaces, and a newline.
pub fn sprintln(args: &[Value]) -> String {
    let items: Vec<String> = args.iter().map(sprint_value).collect();
    format!("{}\n", items.join(" "))
}

#[derive(Debug, Default, Clone, Copy)]
struct Spec {
    plus: bool,
    minus: bool,
    sharp: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

/// `fmt.Sprintf(format, args...)`.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let chars: Vec<char> = format.chars().collect();
    let mut i = 0;
    let mut next_arg = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        let mut spec = Spec::default();
        while i < chars.len() {
            match chars[i] {
                '+' => spec.plus = true,
                '-' => spec.minus = true,
                '#' => spec.sharp = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                _ => break,
            }
            i += 1;
        }
        let mut width = String::new();
        while i < chars.len() && chars[i].is_ascii_digit() {
            width.push(chars[i]);
            i += 1;
        }
        spec.width = width.parse().ok();
        if i < chars.len() && chars[i] == '.' {
            i += 1;
            let mut precision = String::new();
            while i < chars.len() && chars[i].is_ascii_digit() {
                precision.push(chars[i]);
                i += 1;
            }
            spec.precision = Some(precision.parse().unwrap_or(0));
        }
        let Some(&verb) = chars.get(i) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next_arg) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next_arg += 1;
        out.push_str(&format_one(verb, spec, arg));
    }
    if next_arg < args.len() {
        let extra: Vec<String> = args[next_arg..]
            .iter()
            .map(|a| format!("{}={}", go_type_name(a), sprint_value(a)))
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

/// The Go type name of a value, for `%T` and bad-verb notes.
pub fn go_type_name(value: &Value) -> &'static str {
    match value {
        Value::Nil => "<nil>",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float64",
        Value::String(_) => "string",
        Value::Html(_) => "template.HTML",
        Value::StrMap(_) => "map[string]string",
        Value::Map(_) => "map[string]interface {}",
        Value::List(_) => "[]interface {}",
        Value::Sample(_) => "*template.sample",
        Value::Samples(_) => "template.queryResult",
        Value::Time(_) => "*time.Time",
        Value::Duration(_) => "*time.Duration",
        Value::Struct(_) => "template.tmplData",
    }
}

fn bad_verb(verb: char, arg: &Value) -> String {
    match arg {
        Value::Nil => format!("%!{verb}(<nil>)"),
        _ => format!("%!{verb}({}={})", go_type_name(arg), sprint_value(arg)),
    }
}

fn format_one(verb: char, spec: Spec, arg: &Value) -> String {
    let body = match (verb, arg) {
        ('T', _) => go_type_name(arg).to_string(),
        ('v', Value::Float(f)) => float(*f, 'g', spec.precision, spec),
        ('v', Value::Int(n)) => int(*n, 10, false, spec),
        ('v', _) => sprint_value(arg),
        ('s', Value::String(s) | Value::Html(s)) => truncate(s, spec.precision),
        ('s', Value::Time(_) | Value::Duration(_)) => truncate(&sprint_value(arg), spec.precision),
        ('s', Value::StrMap(_) | Value::Map(_) | Value::List(_) | Value::Samples(_)) => {
            sprint_value(arg)
        }
        ('q', Value::String(s) | Value::Html(s)) => {
            if spec.sharp && !s.contains('`') {
                format!("`{s}`")
            } else {
                go_quote(s)
            }
        }
        ('q', Value::Int(n)) => match u32::try_from(*n).ok().and_then(char::from_u32) {
            Some(c) => format!("'{}'", c.escape_default()),
            None => bad_verb(verb, arg),
        },
        ('d', Value::Int(n)) => int(*n, 10, false, spec),
        ('b', Value::Int(n)) => int(*n, 2, false, spec),
        ('o', Value::Int(n)) => int(*n, 8, false, spec),
        ('x', Value::Int(n)) => int(*n, 16, false, spec),
        ('X', Value::Int(n)) => int(*n, 16, true, spec),
        ('c', Value::Int(n)) => u32::try_from(*n)
            .ok()
            .and_then(char::from_u32)
            .unwrap_or('\u{fffd}')
            .to_string(),
        ('x', Value::String(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
        ('X', Value::String(s)) => s.bytes().map(|b| format!("{b:02X}")).collect(),
        ('e' | 'E' | 'f' | 'F' | 'g' | 'G', Value::Float(f)) => {
            float(*f, verb, spec.precision, spec)
        }
        ('t', Value::Bool(b)) => b.to_string(),
        _ => return bad_verb(verb, arg),
    };
    pad(body, spec, matches!(arg, Value::Int(_) | Value::Float(_)))
}

fn truncate(s: &str, precision: Option<usize>) -> String {
    match precision {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_string(),
    }
}

fn int(n: i64, radix: u32, upper: bool, spec: Spec) -> String {
    let magnitude = n.unsigned_abs();
    let mut digits = match radix {
        2 => format!("{magnitude:b}"),
        8 => format!("{magnitude:o}"),
        16 if upper => format!("{magnitude:X}"),
        16 => format!("{magnitude:x}"),
        _ => magnitude.to_string(),
    };
    if let Some(p) = spec.precision
        && digits.len() < p
    {
        digits = format!("{}{digits}", "0".repeat(p - digits.len()));
    }
    if spec.sharp {
        match radix {
            16 if upper => digits.insert_str(0, "0X"),
            16 => digits.insert_str(0, "0x"),
            8 => digits.insert(0, '0'),
            2 => digits.insert_str(0, "0b"),
            _ => {}
        }
    }
    sign(n < 0, spec) + &digits
}

fn sign(negative: bool, spec: Spec) -> String {
    if negative {
        "-".to_string()
    } else if spec.plus {
        "+".to_string()
    } else if spec.space {
        " ".to_string()
    } else {
        String::new()
    }
}

/// Pads to the width: spaces on the left (right with `-`), or zeros after
/// the sign for numbers with `0`.
fn pad(body: String, spec: Spec, numeric: bool) -> String {
    let Some(width) = spec.width else {
        return body;
    };
    let len = body.chars().count();
    if len >= width {
        return body;
    }
    let fill = width - len;
    if spec.minus {
        return format!("{body}{}", " ".repeat(fill));
    }
    let special = body.contains("Inf") || body.contains("NaN");
    if spec.zero && numeric && !special {
        let (sign, digits) = match body.strip_prefix(['-', '+', ' ']) {
            Some(rest) => (&body[..1], rest),
            None => ("", body.as_str()),
        };
        return format!("{sign}{}{digits}", "0".repeat(fill));
    }
    format!("{}{body}", " ".repeat(fill))
}

/// Go's float formatting for `verb` (`e E f F g G`) with an optional
/// precision (`None` = shortest for `g`/`e`, 6 for `f`).
fn float(v: f64, verb: char, precision: Option<usize>, spec: Spec) -> String {
    if v.is_nan() {
        return if spec.plus {
            "+NaN".into()
        } else if spec.space {
            " NaN".into()
        } else {
            "NaN".into()
        };
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let body = match verb {
        'f' | 'F' => format!("{:.*}", precision.unwrap_or(6), v.abs()),
        'e' | 'E' => {
            let s = format!("{:.*e}", precision.unwrap_or(6), v.abs());
            let s = go_exponent(&s);
            if verb == 'E' { s.to_uppercase() } else { s }
        }
        _ => {
            let s = format_general(v.abs(), precision);
            if verb == 'G' { s.to_uppercase() } else { s }
        }
    };
    sign(v.is_sign_negative(), spec) + &body
}

/// `fmt.Sprintf("%.<precision><verb>", v)` for a float.
pub fn format_float(v: f64, verb: char, precision: Option<usize>) -> String {
    float(v, verb, precision, Spec::default())
}

/// Rust's `1.5e3` exponent notation to Go's `1.5e+03`.
fn go_exponent(s: &str) -> String {
    match s.split_once('e') {
        Some((mantissa, exponent)) => {
            let (sign, digits) = match exponent.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exponent),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => s.to_string(),
    }
}

/// Go's `%g` for a non-negative finite value: shortest digits without a
/// precision, else rounded to `precision` significant digits; the exponent
/// form when the exponent is below -4 or at least the precision.
fn format_general(v: f64, precision: Option<usize>) -> String {
    let Some(p) = precision else {
        return format_g(v);
    };
    let p = p.max(1);
    // Digits rounded to p significant places, as d.ddde±x.
    let sci = format!("{:.*e}", p - 1, v);
    let Some((mantissa, exponent)) = sci.split_once('e') else {
        return sci;
    };
    let exp: i32 = exponent.parse().unwrap_or(0);
    let mut digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    if v == 0.0 {
        digits = "0".to_string();
    }
    let nd = digits.len() as i32;
    let dp = exp + 1;
    let mut eprec = p as i32;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    if exp < -4 || exp >= eprec {
        let prec = (p as i32).min(nd) - 1;
        let mut out = digits[..1].to_string();
        if prec > 0 {
            out.push('.');
            out.push_str(&digits[1..]);
            for _ in nd..=prec {
                out.push('0');
            }
        }
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{out}e{sign}{:02}", exp.abs());
    }
    let prec = if p as i32 > dp { nd } else { p as i32 };
    let decimals = (prec - dp).max(0) as usize;
    format!("{v:.decimals$}")
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_control() => {
                let n = c as u32;
                if n < 0x10000 {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(format: &str, v: f64) -> String {
        sprintf(format, &[Value::Float(v)])
    }

    // Expected strings are what Go's fmt prints.
    #[test]
    fn floats_format_like_go() {
        assert_eq!(f("%.4g", 2.5), "2.5");
        assert_eq!(f("%.4g", 1234.5), "1234");
        assert_eq!(f("%.4g", 12345.0), "1.234e+04");
        assert_eq!(f("%.4g", 0.00001234), "1.234e-05");
        assert_eq!(f("%.4g", 0.0), "0");
        assert_eq!(f("%.4g", 100.0), "100");
        assert_eq!(f("%.4g", f64::INFINITY), "+Inf");
        assert_eq!(f("%.4g", f64::NAN), "NaN");
        assert_eq!(f("%.2f", 2.71234), "2.71");
        assert_eq!(f("%f", 1.0), "1.000000");
        assert_eq!(f("%e", 1234.5678), "1.234568e+03");
        assert_eq!(f("%v", 1e6), "1e+06");
        assert_eq!(f("%g", 0.1), "0.1");
        assert_eq!(f("%6.2f", 2.71234), "  2.71");
        assert_eq!(f("%-6.1f|", 2.71234), "2.7   |");
        assert_eq!(f("%06.2f", -2.71234), "-02.71");
        assert_eq!(f("%.3g", 1e21), "1e+21");
    }

    #[test]
    fn other_verbs_and_mistakes() {
        let s = |v: &str| Value::String(v.to_string());
        assert_eq!(sprintf("%s=%d", &[s("a"), Value::Int(5)]), "a=5");
        assert_eq!(sprintf("%05d", &[Value::Int(-42)]), "-0042");
        assert_eq!(sprintf("%x", &[Value::Int(255)]), "ff");
        assert_eq!(sprintf("%q", &[s("a\"b")]), "\"a\\\"b\"");
        assert_eq!(sprintf("%d", &[Value::Float(1.5)]), "%!d(float64=1.5)");
        assert_eq!(sprintf("%s %s", &[s("a")]), "a %!s(MISSING)");
        assert_eq!(sprintf("%s", &[s("a"), Value::Int(1)]), "a%!(EXTRA int=1)");
        assert_eq!(sprintf("100%%", &[]), "100%");
        assert_eq!(sprintf("%5s|%-5s|", &[s("ab"), s("cd")]), "   ab|cd   |");
        assert_eq!(sprintf("%t", &[Value::Bool(true)]), "true");
        assert_eq!(
            sprint(&[s("a"), Value::Int(1), Value::Int(2), s("b")]),
            "a1 2b"
        );
    }
}
