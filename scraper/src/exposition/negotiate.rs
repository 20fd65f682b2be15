//! Content negotiation as Prometheus 3 does it: the `Accept` header a scrape
//! sends, and the parser chosen from the response's `Content-Type`.

use super::Format;
use crate::config::ScrapeProtocol;

/// The `Accept` header of a Prometheus 3 scrape with the default
/// `scrape_protocols` (OpenMetrics 1.0.0, OpenMetrics 0.0.1, text 1.0.0, text
/// 0.0.4), asking for UTF-8 names unescaped.
pub const ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,\
application/openmetrics-text;version=0.0.1;q=0.5,\
text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,\
text/plain;version=0.0.4;q=0.3,\
*/*;q=0.2";

/// The scrape protocols Prometheus knows; the weights of the `Accept` header
/// count all of them, including the protobuf one Sextant does not parse.
const KNOWN_PROTOCOLS: usize = 5;

/// Builds the `Accept` header for `protocols` (`scrape_protocols`, most
/// preferred first), as Prometheus does: each gets a descending `q`, the
/// 1.0.0 versions ask for UTF-8 names unescaped, and `*/*` comes last.
pub fn accept_header(protocols: &[ScrapeProtocol]) -> String {
    let mut weight = KNOWN_PROTOCOLS + 1;
    let mut parts = Vec::with_capacity(protocols.len() + 1);
    for protocol in protocols {
        let escaping = match protocol {
            ScrapeProtocol::OpenMetricsText1_0_0 | ScrapeProtocol::PrometheusText1_0_0 => {
                ";escaping=allow-utf-8"
            }
            _ => "",
        };
        parts.push(format!(
            "{}{escaping};q=0.{weight}",
            protocol.header_value()
        ));
        weight = weight.saturating_sub(1);
    }
    parts.push(format!("*/*;q=0.{weight}"));
    parts.join(",")
}

/// Why no parser fits a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentTypeError {
    #[error(
        "non-compliant scrape target sending blank Content-Type and no fallback_scrape_protocol specified for target"
    )]
    Blank,
    #[error("cannot parse Content-Type {0:?} and no fallback_scrape_protocol for target")]
    Unparsable(String),
    #[error(
        "received unsupported Content-Type {0:?} and no fallback_scrape_protocol specified for target"
    )]
    Unsupported(String),
}

/// Picks the parser for a response's `Content-Type`, as Prometheus 3 does: the
/// media type decides (`application/openmetrics-text` or `text/plain`); a
/// missing, malformed or unknown one falls back to `fallback`
/// (`fallback_scrape_protocol`) or fails the scrape. Sextant never asks for
/// protobuf, so a protobuf answer is unsupported.
///
/// # Errors
/// A [`ContentTypeError`] when there is neither a usable media type nor a
/// fallback.
pub fn format_for_content_type(
    content_type: Option<&str>,
    fallback: Option<Format>,
) -> Result<Format, ContentTypeError> {
    let content_type = content_type.map(str::trim).unwrap_or_default();
    if content_type.is_empty() {
        return fallback.ok_or(ContentTypeError::Blank);
    }
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = media_type.split_once('/') else {
        return fallback.ok_or_else(|| ContentTypeError::Unparsable(content_type.to_string()));
    };
    if !is_token(kind) || !is_token(subtype) {
        return fallback.ok_or_else(|| ContentTypeError::Unparsable(content_type.to_string()));
    }
    if media_type.eq_ignore_ascii_case("application/openmetrics-text") {
        Ok(Format::OpenMetrics)
    } else if media_type.eq_ignore_ascii_case("text/plain") {
        Ok(Format::Text)
    } else {
        fallback.ok_or_else(|| ContentTypeError::Unsupported(content_type.to_string()))
    }
}

/// An RFC 9110 token.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_SCRAPE_PROTOCOLS;

    #[test]
    fn default_accept_header_matches_prometheus() {
        assert_eq!(accept_header(&DEFAULT_SCRAPE_PROTOCOLS), ACCEPT_HEADER);
        assert_eq!(
            accept_header(&[ScrapeProtocol::PrometheusText0_0_4]),
            "text/plain;version=0.0.4;q=0.6,*/*;q=0.5"
        );
    }

    #[test]
    fn content_type_picks_the_parser() {
        let om = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        assert_eq!(
            format_for_content_type(Some(om), None),
            Ok(Format::OpenMetrics)
        );
        let text = "text/plain; version=0.0.4; charset=utf-8";
        assert_eq!(format_for_content_type(Some(text), None), Ok(Format::Text));
        assert_eq!(
            format_for_content_type(Some("TEXT/PLAIN"), None),
            Ok(Format::Text)
        );
        assert_eq!(
            format_for_content_type(None, None),
            Err(ContentTypeError::Blank)
        );
        assert_eq!(
            format_for_content_type(Some(""), Some(Format::Text)),
            Ok(Format::Text)
        );
        assert!(matches!(
            format_for_content_type(Some("application/json"), None),
            Err(ContentTypeError::Unsupported(_))
        ));
        assert!(matches!(
            format_for_content_type(Some("garbage"), None),
            Err(ContentTypeError::Unparsable(_))
        ));
        assert_eq!(
            format_for_content_type(Some("application/json"), Some(Format::OpenMetrics)),
            Ok(Format::OpenMetrics)
        );
        let proto = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily";
        assert!(format_for_content_type(Some(proto), None).is_err());
    }
}
