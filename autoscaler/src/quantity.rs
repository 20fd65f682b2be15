//! Kubernetes resource quantities (`500m`, `1k`, `2Gi`, `1e3`), parsed exactly and
//! printed in canonical form the way apimachinery's `resource.Quantity` does.
//!
//! Grammar: `<sign>?<digits>[.<digits>]<suffix>` where the suffix is a binary SI
//! suffix (`Ki`..`Ei`, powers of 1024), a decimal SI suffix (`n u m "" k M G T P E`) or
//! a decimal exponent (`e3`, `E-2`). Values are exact decimals: no floats on the way in.
//!
//! Rules kept from upstream:
//! - values finer than a nano are rounded up (away from zero) to the next nano;
//! - binary SI values are capped at 2^63-1, and a binary SI value strictly between 0 and 1
//!   becomes decimal SI;
//! - [`Quantity::milli_value`] and [`Quantity::value`] round up, as `MilliValue()` and
//!   `Value()` do, so `1n` reads as 1m;
//! - the canonical form loses no precision, has no fraction, and uses the largest
//!   exponent that is a multiple of 3 (or of 1024 for binary SI): `1.5` prints as
//!   `1500m`, `1.5Gi` as `1536Mi`, `1000M` as `1G`.
//!
//! Limit of this port: magnitudes must fit in 38 decimal digits once scaled to nanos
//! (about 1e29); larger inputs are rejected instead of being held as big integers.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseQuantityError {
    #[error("quantity {0:?} does not match <sign>?<digits>[.<digits>]<suffix>")]
    FormatWrong(String),
    #[error("quantity {0:?} has an unknown suffix")]
    Suffix(String),
    #[error("quantity {0:?} is too large for this implementation (more than 38 digits)")]
    OutOfRange(String),
}

/// How a quantity prints, remembered from how it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Format {
    /// `12M`, `500m`: powers of 1000.
    DecimalSi,
    /// `12Mi`: powers of 1024.
    BinarySi,
    /// `12e6`.
    DecimalExponent,
}

/// An exact decimal amount, `mantissa * 10^exp10`, plus its print format.
///
/// The mantissa and exponent are kept as upstream stores them (so that
/// [`Quantity::as_approximate_f64`] rounds the same way); comparisons use the value.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    mantissa: i128,
    exp10: i32,
    format: Format,
}

/// Upper bound on a mantissa's magnitude, so that aligning two of them never overflows.
const MAX_MANTISSA: i128 = 10i128.pow(38);

impl Quantity {
    /// Zero, printed as `0`.
    pub const ZERO: Quantity = Quantity {
        mantissa: 0,
        exp10: 0,
        format: Format::DecimalSi,
    };

    /// `value * 10^exp10` (upstream `NewScaledQuantity` with a format).
    pub fn from_scaled(value: i64, exp10: i32, format: Format) -> Quantity {
        Quantity {
            mantissa: i128::from(value),
            exp10,
            format,
        }
    }

    /// An integer amount (upstream `NewQuantity`), e.g. bytes with [`Format::BinarySi`].
    pub fn from_int(value: i64, format: Format) -> Quantity {
        Quantity::from_scaled(value, 0, format)
    }

    /// A milli amount (upstream `NewMilliQuantity`), e.g. millicores.
    pub fn from_milli(milli: i64, format: Format) -> Quantity {
        Quantity::from_scaled(milli, -3, format)
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// -1, 0 or 1.
    pub fn signum(&self) -> i32 {
        match self.mantissa.cmp(&0) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        }
    }

    /// The value in thousandths, rounded away from zero, saturating at the `i64` range
    /// (what the HPA reads through `MilliValue()`).
    pub fn milli_value(&self) -> i64 {
        self.scaled_value(-3)
    }

    /// The value rounded away from zero to an integer, saturating (upstream `Value()`).
    pub fn value(&self) -> i64 {
        self.scaled_value(0)
    }

    /// The value in units of `10^exp10`, rounded away from zero, saturating.
    pub fn scaled_value(&self, exp10: i32) -> i64 {
        let shift = self.exp10 - exp10;
        let scaled = if shift >= 0 {
            match checked_pow10(shift).and_then(|p| self.mantissa.checked_mul(p)) {
                Some(v) => v,
                None => return saturate_sign(self.mantissa),
            }
        } else {
            match checked_pow10(-shift) {
                Some(p) => {
                    let quotient = self.mantissa / p;
                    let remainder = self.mantissa % p;
                    quotient + remainder.signum()
                }
                // Dividing by more than 10^38: anything nonzero rounds away to +-1.
                None => self.mantissa.signum(),
            }
        };
        i64::try_from(scaled).unwrap_or_else(|_| saturate_sign(scaled))
    }

    /// A float approximation computed as upstream `AsApproximateFloat64` does: the stored
    /// mantissa times a power of ten.
    pub fn as_approximate_f64(&self) -> f64 {
        let base = self.mantissa as f64;
        if self.exp10 == 0 {
            return base;
        }
        base * go_pow10(self.exp10)
    }

    /// Parses a quantity string (upstream `ParseQuantity`).
    ///
    /// # Errors
    /// When the text does not follow the grammar, has an unknown suffix, or is too large.
    pub fn parse(text: &str) -> Result<Quantity, ParseQuantityError> {
        parse(text)
    }

    /// The canonical text, e.g. `1500m`, `1536Mi`, `1G`, `80e-3`.
    pub fn to_canonical(&self) -> String {
        canonical(self)
    }

    /// True when the value is an integer.
    fn is_integer(&self) -> bool {
        if self.exp10 >= 0 || self.mantissa == 0 {
            return true;
        }
        match checked_pow10(-self.exp10) {
            Some(p) => self.mantissa % p == 0,
            None => false,
        }
    }

    /// The exact integer value, if it is an integer that fits.
    fn as_integer(&self) -> Option<i128> {
        if self.exp10 >= 0 {
            checked_pow10(self.exp10).and_then(|p| self.mantissa.checked_mul(p))
        } else if self.is_integer() {
            checked_pow10(-self.exp10).map(|p| self.mantissa / p)
        } else {
            None
        }
    }
}

fn saturate_sign(v: i128) -> i64 {
    if v < 0 { i64::MIN } else { i64::MAX }
}

fn checked_pow10(exp: i32) -> Option<i128> {
    u32::try_from(exp).ok().and_then(|e| 10i128.checked_pow(e))
}

/// Go's `math.Pow10` for the exponents a quantity can carry: exact powers for
/// `0..=22`, and `1 / 10^n` (one correctly rounded division) for `-22..0`.
fn go_pow10(exp: i32) -> f64 {
    fn exact(n: i32) -> f64 {
        // Integral powers of ten up to 1e22 are exact in binary64.
        let mut v = 1.0f64;
        for _ in 0..n {
            v *= 10.0;
        }
        v
    }
    match exp {
        0..=22 => exact(exp),
        -22..=-1 => 1.0 / exact(-exp),
        _ => 10f64.powi(exp),
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp_value(other) == Ordering::Equal
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.cmp_value(other)
    }
}

impl Quantity {
    /// Compares values exactly, whatever the formats.
    fn cmp_value(&self, other: &Quantity) -> Ordering {
        let (sa, sb) = (self.signum(), other.signum());
        if sa != sb {
            return sa.cmp(&sb);
        }
        if sa == 0 {
            return Ordering::Equal;
        }
        let magnitude = cmp_magnitude(
            (self.mantissa.unsigned_abs(), self.exp10),
            (other.mantissa.unsigned_abs(), other.exp10),
        );
        if sa < 0 {
            magnitude.reverse()
        } else {
            magnitude
        }
    }
}

/// Compares `a.0 * 10^a.1` with `b.0 * 10^b.1` for nonzero mantissas below 10^38.
fn cmp_magnitude(a: (u128, i32), b: (u128, i32)) -> Ordering {
    let (ma, ea) = strip_tens(a.0, a.1);
    let (mb, eb) = strip_tens(b.0, b.1);
    let order_a = i64::from(digits(ma)) + i64::from(ea);
    let order_b = i64::from(digits(mb)) + i64::from(eb);
    if order_a != order_b {
        return order_a.cmp(&order_b);
    }
    // Same order of magnitude: align the exponents; the shift is below 39 digits.
    if ea >= eb {
        let shifted = ma.saturating_mul(10u128.pow((ea - eb).unsigned_abs()));
        shifted.cmp(&mb)
    } else {
        let shifted = mb.saturating_mul(10u128.pow((eb - ea).unsigned_abs()));
        ma.cmp(&shifted)
    }
}

fn strip_tens(mut m: u128, mut e: i32) -> (u128, i32) {
    while m != 0 && m.is_multiple_of(10) {
        m /= 10;
        e += 1;
    }
    (m, e)
}

fn digits(mut m: u128) -> u32 {
    let mut n = 0;
    while m != 0 {
        m /= 10;
        n += 1;
    }
    n
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&canonical(self))
    }
}

impl FromStr for Quantity {
    type Err = ParseQuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&canonical(self))
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(QuantityVisitor)
    }
}

/// Accepts a string, or a YAML/JSON number (read through its decimal text, as
/// upstream's `UnmarshalJSON` does).
struct QuantityVisitor;

impl Visitor<'_> for QuantityVisitor {
    type Value = Quantity;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes quantity such as \"500m\", \"2Gi\" or 3")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
        parse(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
        Ok(Quantity::from_int(v, Format::DecimalSi))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
        parse(&v.to_string()).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
        if !v.is_finite() {
            return Err(E::custom(format!("quantity {v} is not finite")));
        }
        // Rust prints the shortest text that reads back as the same float, without an
        // exponent, which is what the user most likely typed.
        parse(&format!("{v}")).map_err(E::custom)
    }
}

/// The parts of a quantity string, as upstream's scanner splits them.
struct Scanned<'a> {
    positive: bool,
    /// Integer digits with leading zeros stripped; "0" when there are none.
    num: &'a str,
    /// Fraction digits (may be empty).
    denom: &'a str,
    suffix: &'a str,
}

fn scan(text: &str) -> Result<Scanned<'_>, ParseQuantityError> {
    let bytes = text.as_bytes();
    let wrong = || ParseQuantityError::FormatWrong(text.to_string());
    let mut pos = 0;
    let mut positive = true;
    match bytes.first() {
        Some(b'-') => {
            positive = false;
            pos = 1;
        }
        Some(b'+') => pos = 1,
        _ => {}
    }
    while pos < bytes.len() && bytes[pos] == b'0' {
        pos += 1;
    }
    if pos >= bytes.len() {
        // Only a sign and zeros: zero, with no suffix.
        return Ok(Scanned {
            positive,
            num: "0",
            denom: "",
            suffix: "",
        });
    }
    let num_start = pos;
    while pos < bytes.len() && bytes[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = if pos == num_start {
        "0"
    } else {
        &text[num_start..pos]
    };
    let mut denom = "";
    if pos < bytes.len() && bytes[pos] == b'.' {
        pos += 1;
        let denom_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &text[denom_start..pos];
    }
    let suffix_start = pos;
    while pos < bytes.len() && b"eEinumkKMGTP".contains(&bytes[pos]) {
        pos += 1;
    }
    if pos < bytes.len() && (bytes[pos] == b'-' || bytes[pos] == b'+') {
        pos += 1;
    }
    while pos < bytes.len() && bytes[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < bytes.len() {
        return Err(wrong());
    }
    Ok(Scanned {
        positive,
        num,
        denom,
        suffix: &text[suffix_start..],
    })
}

/// `(base, exponent, format)` for a suffix.
fn interpret_suffix(suffix: &str) -> Option<(u32, i32, Format)> {
    let decimal = match suffix {
        "n" => Some(-9),
        "u" => Some(-6),
        "m" => Some(-3),
        "" => Some(0),
        "k" => Some(3),
        "M" => Some(6),
        "G" => Some(9),
        "T" => Some(12),
        "P" => Some(15),
        "E" => Some(18),
        _ => None,
    };
    if let Some(e) = decimal {
        return Some((10, e, Format::DecimalSi));
    }
    let binary = match suffix {
        "Ki" => Some(10),
        "Mi" => Some(20),
        "Gi" => Some(30),
        "Ti" => Some(40),
        "Pi" => Some(50),
        "Ei" => Some(60),
        _ => None,
    };
    if let Some(e) = binary {
        return Some((2, e, Format::BinarySi));
    }
    let rest = suffix
        .strip_prefix('e')
        .or_else(|| suffix.strip_prefix('E'))?;
    if rest.is_empty() {
        return None;
    }
    // Exponents this large cannot be represented anyway; reject rather than wrap.
    let e: i32 = rest.parse().ok()?;
    if !(-1000..=1000).contains(&e) {
        return None;
    }
    Some((10, e, Format::DecimalExponent))
}

fn parse(text: &str) -> Result<Quantity, ParseQuantityError> {
    if text.is_empty() {
        return Err(ParseQuantityError::FormatWrong(String::new()));
    }
    if text == "0" {
        return Ok(Quantity::ZERO);
    }
    let scanned = scan(text)?;
    let (base, exponent, mut format) = interpret_suffix(scanned.suffix)
        .ok_or_else(|| ParseQuantityError::Suffix(text.to_string()))?;
    let too_large = || ParseQuantityError::OutOfRange(text.to_string());

    let n_digits = scanned.num.len() + scanned.denom.len();
    if n_digits > 38 {
        return Err(too_large());
    }
    let mut digits: i128 = 0;
    for b in scanned.num.bytes().chain(scanned.denom.bytes()) {
        digits = digits * 10 + i128::from(b - b'0');
    }
    let denom_len = i32::try_from(scanned.denom.len()).map_err(|_| too_large())?;
    let sign = if scanned.positive { 1 } else { -1 };

    // Upstream's int64 fast path: the value is kept as (digits, scale) exactly as written.
    let fast = match format {
        Format::DecimalSi | Format::DecimalExponent => {
            let scale = exponent - denom_len;
            (n_digits <= 18 && scale >= -9).then_some((digits, scale))
        }
        Format::BinarySi => {
            let precision =
                15 - scanned.num.len() as i64 - (exponent as f32 * 3.0 / 10.0) as i64 - 1;
            if scanned.denom.is_empty() && precision >= 0 {
                i64::try_from(digits)
                    .ok()
                    .and_then(|d| d.checked_mul(1i64 << exponent))
                    .map(|v| (i128::from(v), 0))
            } else {
                None
            }
        }
    };
    if let Some((mantissa, exp10)) = fast {
        return Ok(Quantity {
            mantissa: sign * mantissa,
            exp10,
            format,
        });
    }

    // The exact path: value = digits * 10^-denom_len * base^exponent, rounded up to nanos.
    let (mut unscaled, mut scale) = (digits, denom_len); // value = unscaled * 10^-scale
    if base == 10 {
        scale -= exponent;
    } else {
        unscaled = unscaled
            .checked_mul(1i128 << exponent)
            .ok_or_else(too_large)?;
    }
    if unscaled != 0 {
        // Round the magnitude up to scale 9 (nanos).
        if scale > 9 {
            let divisor = checked_pow10(scale - 9);
            unscaled = match divisor {
                Some(d) => unscaled / d + i128::from(unscaled % d != 0),
                None => 1,
            };
        } else {
            let factor = checked_pow10(9 - scale).ok_or_else(too_large)?;
            unscaled = unscaled.checked_mul(factor).ok_or_else(too_large)?;
        }
        scale = 9;
    }
    if unscaled >= MAX_MANTISSA {
        return Err(too_large());
    }
    if format == Format::BinarySi {
        let max = i128::from(i64::MAX) * 1_000_000_000;
        if scale == 9 && unscaled > max {
            unscaled = max;
        }
        if unscaled != 0 && scale == 9 && unscaled < 1_000_000_000 {
            format = Format::DecimalSi;
        }
    }
    Ok(Quantity {
        mantissa: sign * unscaled,
        exp10: -scale,
        format,
    })
}

fn canonical(q: &Quantity) -> String {
    if q.is_zero() {
        return "0".to_string();
    }
    let mut format = q.format;
    if format == Format::BinarySi {
        let small = q.cmp_value(&Quantity::from_int(-1024, Format::DecimalSi)) == Ordering::Greater
            && q.cmp_value(&Quantity::from_int(1024, Format::DecimalSi)) == Ordering::Less;
        if small || !q.is_integer() {
            format = Format::DecimalSi;
        }
    }
    if format == Format::BinarySi {
        if let Some(mut v) = q.as_integer() {
            let mut power = 0;
            while v % 1024 == 0 && power < 6 {
                v /= 1024;
                power += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
            return format!("{v}{suffix}");
        }
        format = Format::DecimalSi;
    }
    // Move every factor of ten into the exponent, then lower the exponent to a multiple
    // of three.
    let mut mantissa = q.mantissa;
    let mut exp = q.exp10;
    while mantissa % 10 == 0 {
        mantissa /= 10;
        exp += 1;
    }
    while exp % 3 != 0 {
        mantissa *= 10;
        exp -= 1;
    }
    match format {
        Format::DecimalExponent => {
            if exp == 0 {
                format!("{mantissa}")
            } else {
                format!("{mantissa}e{exp}")
            }
        }
        _ => {
            let suffix = match exp {
                -9 => "n",
                -6 => "u",
                -3 => "m",
                0 => "",
                3 => "k",
                6 => "M",
                9 => "G",
                12 => "T",
                15 => "P",
                18 => "E",
                _ => {
                    // Beyond exa: keep the value exact with an exponent instead of the
                    // (wrong) bare mantissa upstream would print.
                    return format!("{mantissa}e{exp}");
                }
            };
            format!("{mantissa}{suffix}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, canonical: &str) {
        let q: Quantity = input.parse().unwrap();
        assert_eq!(q.to_string(), canonical, "canonical form of {input:?}");
        let again: Quantity = canonical.parse().unwrap();
        assert_eq!(again, q, "{canonical:?} reads back as the same value");
    }

    #[test]
    fn canonical_forms_from_upstream_tests() {
        check("1.5", "1500m");
        check("0.5", "500m");
        check("1080m", "1080m");
        check("1.08", "1080m");
        check("3000", "3k");
        check("1500", "1500");
        check("1000M", "1G");
        check("1e9", "1e9");
        check("1G", "1G");
        check("1u", "1u");
        check("1n", "1n");
        check("1.5Gi", "1536Mi");
        check("1024Mi", "1Gi");
        check("1025", "1025");
        check("5Ki", "5Ki");
        check(".001Ki", "1024m");
        check("80e-3", "80e-3");
        check("0", "0");
        check("-500m", "-500m");
        check("+1k", "1k");
        check("2Gi", "2Gi");
        check("1k", "1k");
        check("500m", "500m");
        check("1E", "1E");
        check("12e6", "12e6");
    }

    #[test]
    fn binary_si_rules() {
        // Below 1024, binary SI prints as decimal.
        assert_eq!(Quantity::from_int(5, Format::BinarySi).to_string(), "5");
        assert_eq!(
            Quantity::from_int(1025, Format::BinarySi).to_string(),
            "1025"
        );
        assert_eq!(
            Quantity::from_int(268_435_456, Format::BinarySi).to_string(),
            "256Mi"
        );
        assert_eq!(
            Quantity::from_int(587_804_717, Format::BinarySi).to_string(),
            "587804717"
        );
        // Fractional binary SI falls back to decimal SI.
        assert_eq!(
            Quantity::from_milli(500, Format::BinarySi).to_string(),
            "500m"
        );
        // 0.5Ki = 512 is an integer but below 1024.
        check("0.5Ki", "512");
        // The cap at 2^63-1.
        let big: Quantity = "9Ei".parse().unwrap();
        assert_eq!(big.value(), i64::MAX);
    }

    #[test]
    fn sub_nano_values_round_up() {
        check(".000000000001Ki", "2n");
        check("0.0000000001", "1n");
        check("-0.0000000001", "-1n");
        check("1.0000000001", "1000000001n");
    }

    #[test]
    fn milli_value_rounds_up() {
        let q: Quantity = "1n".parse().unwrap();
        assert_eq!(q.milli_value(), 1);
        let q: Quantity = "2.5".parse().unwrap();
        assert_eq!(q.milli_value(), 2500);
        assert_eq!(q.value(), 3);
        let q: Quantity = "100Mi".parse().unwrap();
        assert_eq!(q.value(), 104_857_600);
        assert_eq!(q.milli_value(), 104_857_600_000);
        let q: Quantity = "10E".parse().unwrap();
        assert_eq!(q.milli_value(), i64::MAX);
    }

    #[test]
    fn odd_inputs_follow_upstream() {
        // A bare sign or only zeros reads as zero; "1." is allowed.
        // Upstream also reads a bare suffix such as "Mi" as zero.
        for zero in ["+", "-", "000", "-0", "0.0", "0Mi", "Mi"] {
            assert!(Quantity::parse(zero).unwrap().is_zero(), "{zero}");
        }
        check("1.G", "1G");
        check(".5", "500m");
        for bad in ["", "abc", "1.5.5", "1 ", "1Mi5", "1e", "1x", "--1", "1e1.5"] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} must be rejected");
        }
        assert!(matches!(
            Quantity::parse("1Q"),
            Err(ParseQuantityError::FormatWrong(_))
        ));
        assert!(matches!(
            Quantity::parse("1ki"),
            Err(ParseQuantityError::Suffix(_))
        ));
    }

    #[test]
    fn compares_values_across_formats() {
        let a: Quantity = "1Ki".parse().unwrap();
        let b: Quantity = "1024".parse().unwrap();
        let c: Quantity = "1.024k".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert!("999m".parse::<Quantity>().unwrap() < "1".parse::<Quantity>().unwrap());
        assert!("-2".parse::<Quantity>().unwrap() < "-1".parse::<Quantity>().unwrap());
        assert!("1e100".parse::<Quantity>().unwrap() > "9E".parse::<Quantity>().unwrap());
    }

    #[test]
    fn approximate_float_matches_upstream_arithmetic() {
        let q: Quantity = "0.05".parse().unwrap();
        assert_eq!(q.as_approximate_f64(), 0.05);
        let q: Quantity = "0.1".parse().unwrap();
        assert_eq!(q.as_approximate_f64(), 0.1);
        let q: Quantity = "2Gi".parse().unwrap();
        assert_eq!(q.as_approximate_f64(), 2_147_483_648.0);
        let q: Quantity = "1.5".parse().unwrap();
        assert_eq!(q.as_approximate_f64(), 1.5);
    }

    #[test]
    fn serde_reads_strings_and_numbers() {
        let q: Quantity = serde_json::from_str("\"250Mi\"").unwrap();
        assert_eq!(q.value(), 262_144_000);
        let q: Quantity = serde_json::from_str("3").unwrap();
        assert_eq!(q.to_string(), "3");
        let q: Quantity = serde_json::from_str("0.5").unwrap();
        assert_eq!(q.to_string(), "500m");
        assert_eq!(serde_json::to_string(&q).unwrap(), "\"500m\"");
        assert!(serde_json::from_str::<Quantity>("\"x\"").is_err());
    }
}
