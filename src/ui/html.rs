//! HTML building blocks shared by the pages: escaping, the page layout with
//! its navigation, label badges, times and query-string links.
//!
//! Everything that comes from outside the binary (labels, values, queries,
//! errors, annotations, configuration) goes through [`escape`] before it is
//! written into a page; attribute values are always double-quoted.

use std::fmt::{self, Write as _};

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// `text` with the five HTML-special characters replaced by entities, safe
/// in element content and in double- or single-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Displays its text escaped, for `write!` and `format!`.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(self.0))
    }
}

/// `path?k=v&...` with the pairs form-encoded (for `href`/`src`, still to be
/// escaped when written into an attribute).
pub fn url(path: &str, pairs: &[(&str, &str)]) -> String {
    match serde_urlencoded::to_string(pairs) {
        Ok(query) if !query.is_empty() => format!("{path}?{query}"),
        _ => path.to_string(),
    }
}

/// The pages of the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Graph,
    Targets,
    Rules,
    Recommendations,
    Status,
}

const NAV: [(Nav, &str, &str); 5] = [
    (Nav::Graph, "/graph", "Query"),
    (Nav::Targets, "/targets", "Targets"),
    (Nav::Rules, "/rules", "Rules &amp; alerts"),
    (Nav::Recommendations, "/recommendations", "Recommendations"),
    (Nav::Status, "/status", "Status"),
];

/// A whole page: `title` (escaped here) and `body`, already HTML.
pub fn page(title: &str, active: Nav, body: &str) -> Response {
    html(page_html(title, active, body))
}

/// The text of [`page`].
pub fn page_html(title: &str, active: Nav, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · Sextant</title>\n<link rel=\"stylesheet\" href=\"/ui/style.css\">\n\
         <script src=\"/ui/app.js\" defer></script>\n</head>\n<body>\n\
         <header class=\"top\"><a class=\"brand\" href=\"/graph\">Sextant</a><nav>",
        Esc(title)
    );
    for (nav, href, label) in NAV {
        let current = if nav == active {
            " class=\"active\" aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(out, "<a href=\"{href}\"{current}>{label}</a>");
    }
    let _ = write!(
        out,
        "</nav></header>\n<main id=\"page-{}\">\n<h1>{}</h1>\n{body}</main>\n</body>\n</html>\n",
        nav_id(active),
        Esc(title)
    );
    out
}

fn nav_id(nav: Nav) -> &'static str {
    match nav {
        Nav::Graph => "graph",
        Nav::Targets => "targets",
        Nav::Rules => "rules",
        Nav::Recommendations => "recommendations",
        Nav::Status => "status",
    }
}

/// An HTML response that is never cached (pages show live state).
pub fn html(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// Labels as badges `name="value"`, in the order given.
pub fn labels<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::from("<span class=\"labels\">");
    for (name, value) in pairs {
        let _ = write!(
            out,
            "<span class=\"label\">{}=&quot;{}&quot;</span>",
            Esc(name),
            Esc(value)
        );
    }
    out.push_str("</span>");
    out
}

/// A `<time>` with the UTC time and how long ago it was (`now_ms`).
pub fn time(t_ms: i64, now_ms: i64) -> String {
    let iso = crate::api::json::rfc3339(t_ms);
    format!(
        "<time datetime=\"{iso}\" title=\"{iso}\">{}</time>",
        ago(now_ms.saturating_sub(t_ms))
    )
}

/// A duration in milliseconds as people read it: `850ms ago`, `12s ago`,
/// `3m 5s ago`, `2h 10m ago`, `4d 1h ago`; negative is `in ...`.
pub fn ago(ms: i64) -> String {
    let (prefix, suffix, ms) = if ms < 0 {
        ("in ", "", ms.saturating_neg())
    } else {
        ("", " ago", ms)
    };
    format!("{prefix}{}{suffix}", duration(ms))
}

/// A duration in milliseconds, two units at most: `850ms`, `12.3s`, `3m 5s`.
pub fn duration(ms: i64) -> String {
    const S: i64 = 1000;
    const M: i64 = 60 * S;
    const H: i64 = 60 * M;
    const D: i64 = 24 * H;
    if ms < S {
        format!("{ms}ms")
    } else if ms < M && ms % S == 0 {
        format!("{}s", ms / S)
    } else if ms < M {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < H {
        format!("{}m {}s", ms / M, ms % M / S)
    } else if ms < D {
        format!("{}h {}m", ms / H, ms % H / M)
    } else {
        format!("{}d {}h", ms / D, ms % D / H)
    }
}

/// A state badge: `class` picks the colour (`ok`, `warn`, `bad`, `muted`).
pub fn badge(class: &str, text: &str) -> String {
    format!("<span class=\"badge {}\">{}</span>", Esc(class), Esc(text))
}

/// A link to the expression browser running `expr`.
pub fn query_link(expr: &str) -> String {
    format!(
        "<a class=\"expr\" href=\"{}\"><code>{}</code></a>",
        Esc(&url("/graph", &[("expr", expr)])),
        Esc(expr)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(
            escape(r#"<script>alert("x&y's")</script>"#),
            "&lt;script&gt;alert(&quot;x&amp;y&#39;s&quot;)&lt;/script&gt;"
        );
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
        assert_eq!(format!("{}", Esc("a<b")), "a&lt;b");
    }

    #[test]
    fn labels_and_links_are_escaped() {
        let html = labels([("job", "<b>\"x\"</b>")]);
        assert_eq!(
            html,
            "<span class=\"labels\"><span class=\"label\">job=&quot;&lt;b&gt;&quot;x&quot;&lt;/b&gt;&quot;</span></span>"
        );
        let link = query_link(r#"up{job="a&b"}"#);
        assert!(
            link.contains("href=\"/graph?expr=up%7Bjob%3D%22a%26b%22%7D\""),
            "{link}"
        );
        assert!(link.contains("<code>up{job=&quot;a&amp;b&quot;}</code>"));
        assert_eq!(url("/graph", &[]), "/graph");
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(12_000), "12s");
        assert_eq!(duration(12_345), "12.3s");
        assert_eq!(duration(185_000), "3m 5s");
        assert_eq!(duration(7_800_000), "2h 10m");
        assert_eq!(duration(90_000_000), "1d 1h");
        assert_eq!(ago(2_000), "2s ago");
        assert_eq!(ago(-2_000), "in 2s");
        assert_eq!(
            time(1_000, 3_000),
            "<time datetime=\"1970-01-01T00:00:01Z\" title=\"1970-01-01T00:00:01Z\">2s ago</time>"
        );
    }

    #[test]
    fn a_page_has_the_layout_and_marks_the_current_section() {
        let text = page_html("Targets <x>", Nav::Targets, "<p>body</p>");
        assert!(text.starts_with("<!DOCTYPE html>"));
        assert!(text.contains("<title>Targets &lt;x&gt; · Sextant</title>"));
        assert!(text.contains("<meta name=\"viewport\""));
        assert!(
            text.contains(
                "<a href=\"/targets\" class=\"active\" aria-current=\"page\">Targets</a>"
            )
        );
        assert!(text.contains("<a href=\"/graph\">Query</a>"));
        assert!(text.contains(
            "<main id=\"page-targets\">\n<h1>Targets &lt;x&gt;</h1>\n<p>body</p></main>"
        ));
        let response = page("T", Nav::Status, "");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
    }
}
