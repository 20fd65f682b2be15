//! Kubernetes label selectors in their string form (`app=web,tier!=db`,
//! `env in (a,b)`, `!canary`), as the HPA sends them in `labelSelector` and
//! `metricLabelSelector`; parsed as apimachinery's `labels.Parse` does, and
//! turned into PromQL label matchers.

use serde_json::json;

/// One requirement's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// `key op values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: Vec<String>,
}

/// A parsed selector: all requirements must hold. Empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

impl Selector {
    /// Parses the string form.
    ///
    /// # Errors
    /// A syntax error or an invalid key or value, worded for a 400 reply.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut parser = Parser { text, pos: 0 };
        let mut requirements = Vec::new();
        parser.skip_space();
        if parser.at_end() {
            return Ok(Selector::default());
        }
        loop {
            requirements.push(parser.requirement()?);
            parser.skip_space();
            if parser.at_end() {
                break;
            }
            parser.expect(",")?;
        }
        Ok(Selector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// PromQL matchers, one per requirement, on the label `label(key)`.
    ///
    /// # Errors
    /// `label` refuses a key (not a valid Prometheus label name).
    pub fn promql_matchers(
        &self,
        label: impl Fn(&str) -> Result<String, String>,
    ) -> Result<Vec<String>, String> {
        self.requirements
            .iter()
            .map(|r| {
                let name = label(&r.key)?;
                let alternatives = || {
                    let escaped: Vec<String> = r.values.iter().map(|v| quote_meta(v)).collect();
                    quote(&escaped.join("|"))
                };
                Ok(match r.op {
                    Op::Equals => format!("{name}={}", quote(&r.values[0])),
                    Op::NotEquals => format!("{name}!={}", quote(&r.values[0])),
                    Op::In => format!("{name}=~{}", alternatives()),
                    Op::NotIn => format!("{name}!~{}", alternatives()),
                    Op::Exists => format!("{name}!=\"\""),
                    Op::DoesNotExist => format!("{name}=\"\""),
                })
            })
            .collect()
    }

    /// The `metav1.LabelSelector` object (`matchLabels` for equalities,
    /// `matchExpressions` for the rest), or null when empty.
    pub fn to_json(&self) -> serde_json::Value {
        if self.is_empty() {
            return serde_json::Value::Null;
        }
        let mut labels = serde_json::Map::new();
        let mut expressions = Vec::new();
        for r in &self.requirements {
            let (operator, values) = match r.op {
                Op::Equals => {
                    labels.insert(r.key.clone(), json!(r.values[0]));
                    continue;
                }
                Op::NotEquals | Op::NotIn => ("NotIn", Some(&r.values)),
                Op::In => ("In", Some(&r.values)),
                Op::Exists => ("Exists", None),
                Op::DoesNotExist => ("DoesNotExist", None),
            };
            let mut expression = json!({"key": r.key, "operator": operator});
            if let Some(values) = values {
                expression["values"] = json!(values);
            }
            expressions.push(expression);
        }
        let mut out = serde_json::Map::new();
        if !labels.is_empty() {
            out.insert("matchLabels".into(), serde_json::Value::Object(labels));
        }
        if !expressions.is_empty() {
            out.insert("matchExpressions".into(), json!(expressions));
        }
        serde_json::Value::Object(out)
    }
}

/// A PromQL string literal. The recommender's quoting, reused.
pub fn quote(value: &str) -> String {
    autoscaler::controller::queries::quote(value)
}

/// `value` as a regex matching exactly it (Go's `regexp.QuoteMeta`).
pub fn quote_meta(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A valid Prometheus label name, or an error naming the selector key.
///
/// # Errors
/// The key has characters a label name cannot have.
pub fn prometheus_label(key: &str) -> Result<String, String> {
    let mut chars = key.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(key.to_string())
    } else {
        Err(format!(
            "label selector key {key:?} is not a valid Prometheus label name"
        ))
    }
}

/// kube-state-metrics' name for a Kubernetes label in `kube_<kind>_labels`:
/// `label_` plus the key with every other character than `[a-zA-Z0-9_]`
/// made `_`.
pub fn kube_state_metrics_label(key: &str) -> String {
    let sanitized: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("label_{sanitized}")
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn skip_space(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.text.len() - trimmed.len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &str) -> Result<(), String> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.error(&format!("expected {token:?}")))
        }
    }

    fn error(&self, what: &str) -> String {
        format!(
            "unable to parse requirement: {what} at position {} of {:?}",
            self.pos, self.text
        )
    }

    /// A key or value: everything up to a delimiter.
    fn word(&mut self) -> &str {
        self.skip_space();
        let rest = self.rest();
        let len = rest
            .find(|c: char| c.is_whitespace() || "=!,()<>".contains(c))
            .unwrap_or(rest.len());
        let start = self.pos;
        self.pos += len;
        &self.text[start..start + len]
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        if self.eat("!") {
            let key = self.key()?;
            return Ok(Requirement {
                key,
                op: Op::DoesNotExist,
                values: Vec::new(),
            });
        }
        let key = self.key()?;
        self.skip_space();
        if self.at_end() || self.rest().starts_with(',') {
            return Ok(Requirement {
                key,
                op: Op::Exists,
                values: Vec::new(),
            });
        }
        let op = if self.eat("==") || self.eat("=") {
            Op::Equals
        } else if self.eat("!=") {
            Op::NotEquals
        } else if self.eat("<") || self.eat(">") {
            return Err(self.error("the operators < and > are not supported on labels"));
        } else {
            match self.word() {
                "in" => Op::In,
                "notin" => Op::NotIn,
                other => {
                    let other = other.to_string();
                    return Err(self.error(&format!("unknown operator {other:?}")));
                }
            }
        };
        let values = match op {
            Op::In | Op::NotIn => {
                self.expect("(")?;
                let mut values = Vec::new();
                loop {
                    values.push(self.value()?);
                    if self.eat(")") {
                        break;
                    }
                    self.expect(",")?;
                }
                values
            }
            _ => vec![self.value()?],
        };
        Ok(Requirement { key, op, values })
    }

    fn key(&mut self) -> Result<String, String> {
        let key = self.word().to_string();
        validate_key(&key).map_err(|e| self.error(&e))?;
        Ok(key)
    }

    fn value(&mut self) -> Result<String, String> {
        let value = self.word().to_string();
        if !value.is_empty() && !is_label_value(&value) {
            return Err(self.error(&format!("invalid label value {value:?}")));
        }
        Ok(value)
    }
}

/// `[prefix/]name`: prefix a DNS subdomain (at most 253), name at most 63
/// alphanumerics with `-_.` inside.
fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let valid = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            });
        if !valid {
            return Err(format!("invalid label key {key:?}: bad prefix"));
        }
    }
    if name.is_empty() || !is_label_value(name) {
        return Err(format!("invalid label key {key:?}"));
    }
    Ok(())
}

/// At most 63 characters, alphanumeric at both ends, `-_.` inside.
fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    value.len() <= 63
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_operator() {
        let s =
            Selector::parse("app=web, tier != db,env in (a, b),x notin (c),canary,!legacy,k==v")
                .unwrap();
        let ops: Vec<Op> = s.requirements.iter().map(|r| r.op).collect();
        assert_eq!(
            ops,
            [
                Op::Equals,
                Op::NotEquals,
                Op::In,
                Op::NotIn,
                Op::Exists,
                Op::DoesNotExist,
                Op::Equals
            ]
        );
        assert_eq!(s.requirements[2].values, ["a", "b"]);
        let matchers = s.promql_matchers(prometheus_label).unwrap();
        assert_eq!(
            matchers,
            [
                r#"app="web""#,
                r#"tier!="db""#,
                r#"env=~"a|b""#,
                r#"x!~"c""#,
                r#"canary!="""#,
                r#"legacy="""#,
                r#"k="v""#,
            ]
        );
        assert_eq!(
            s.to_json(),
            json!({
                "matchLabels": {"app": "web", "k": "v"},
                "matchExpressions": [
                    {"key": "tier", "operator": "NotIn", "values": ["db"]},
                    {"key": "env", "operator": "In", "values": ["a", "b"]},
                    {"key": "x", "operator": "NotIn", "values": ["c"]},
                    {"key": "canary", "operator": "Exists"},
                    {"key": "legacy", "operator": "DoesNotExist"},
                ]
            })
        );
        assert!(Selector::parse("").unwrap().is_empty());
        assert_eq!(
            Selector::parse("").unwrap().to_json(),
            serde_json::Value::Null
        );
        assert_eq!(Selector::parse("a=").unwrap().requirements[0].values, [""]);
    }

    #[test]
    fn rejects_bad_selectors() {
        for bad in [
            "app=web=x",
            "app in web",
            "app in (a",
            "=web",
            "app>1",
            "app=we b",
            "-app=web",
            "app=web,",
            "Bad_Prefix/x=y",
            "x=-y",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad} parsed");
        }
        let dotted = Selector::parse("app.kubernetes.io/name=web").unwrap();
        assert!(dotted.promql_matchers(prometheus_label).is_err());
        assert_eq!(
            dotted
                .promql_matchers(|k| Ok(kube_state_metrics_label(k)))
                .unwrap(),
            [r#"label_app_kubernetes_io_name="web""#]
        );
    }

    #[test]
    fn escapes_regex_values() {
        let s = Selector::parse("pod in (web-1.a,web-2)").unwrap();
        assert_eq!(
            s.promql_matchers(prometheus_label).unwrap(),
            [r#"pod=~"web-1\\.a|web-2""#]
        );
    }
}
