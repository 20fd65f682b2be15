//! Reading figures: a process's CPU time and memory from `/proc`, counters
//! from a `/metrics` page, directory sizes, and timed `query_range` calls.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::Error;

/// CPU time and memory of one process at one moment.
#[derive(Debug, Clone, Copy)]
pub struct ProcStat {
    /// utime + stime.
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    /// The peak resident set size so far (`VmHWM`).
    pub peak_rss_bytes: u64,
}

/// Clock ticks per second of `/proc/PID/stat` times.
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status` (`pid` "self" works).
pub fn proc_stat(pid: &str, ticks: f64) -> Result<ProcStat, Error> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'. utime and stime are fields 14 and 15 of the line, so
    // 12th and 13th after the name.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| -> Result<f64, Error> {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| Error::Peer(format!("/proc/{pid}/stat: field {i} missing")))
    };
    let cpu_seconds = (field(11)? + field(12)?) / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Ok(ProcStat {
        cpu_seconds,
        rss_bytes: kib("VmRSS:"),
        peak_rss_bytes: kib("VmHWM:"),
    })
}

/// The sum over all series named `name` on a text-format metrics page.
pub fn metric_sum(page: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in page.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        // The value follows the labels; no timestamps on these pages.
        let value = match rest.rfind('}') {
            Some(end) => &rest[end + 1..],
            None => rest,
        };
        if let Some(v) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// Bytes of the files under `dir`, recursively (0 when it does not exist).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&entry.path()),
            Ok(t) if t.is_file() => entry.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// GETs `url` and returns the body of a 2xx answer.
pub async fn get_text(client: &reqwest::Client, url: &str) -> Result<String, Error> {
    let response = client.get(url).send().await?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        return Err(Error::Peer(format!("GET {url}: {status}: {body}")));
    }
    Ok(body)
}

/// One timed `query_range` call: its latency and how many series it returned.
pub async fn query_range(
    client: &reqwest::Client,
    base: &str,
    query: &str,
    (start, end, step): (f64, f64, f64),
) -> Result<(Duration, usize), Error> {
    let began = Instant::now();
    let response = client
        .post(format!("{base}/api/v1/query_range"))
        .form(&[
            ("query", query.to_string()),
            ("start", format!("{start:.3}")),
            ("end", format!("{end:.3}")),
            ("step", format!("{step}")),
        ])
        .send()
        .await?;
    let status = response.status();
    let body = response.bytes().await?;
    let elapsed = began.elapsed();
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    if !status.is_success() || json["status"] != "success" {
        return Err(Error::Peer(format!(
            "query {query}: {status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    let series = json["data"]["result"].as_array().map_or(0, Vec::len);
    Ok((elapsed, series))
}

/// An instant query's single scalar-like result (the first series' value).
pub async fn query_number(client: &reqwest::Client, base: &str, query: &str) -> Option<f64> {
    let response = client
        .post(format!("{base}/api/v1/query"))
        .form(&[("query", query)])
        .send()
        .await
        .ok()?;
    let json: serde_json::Value = response.json().await.ok()?;
    json["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
}

/// The `q`-quantile (0..=1) of `values` by nearest rank; NaN when empty.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sum_adds_every_series_of_the_name_only() {
        let page = "# TYPE a_total counter\n\
                    a_total{type=\"float\"} 10\n\
                    a_total{type=\"histogram\"} 5\n\
                    a_total_other 100\n\
                    b 1e3\n";
        assert_eq!(metric_sum(page, "a_total"), Some(15.0));
        assert_eq!(metric_sum(page, "b"), Some(1000.0));
        assert_eq!(metric_sum(page, "c"), None);
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 0.9), 5.0);
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn own_process_stat_reads() {
        let stat = proc_stat("self", clock_ticks()).unwrap();
        assert!(stat.rss_bytes > 0);
        assert!(stat.peak_rss_bytes >= stat.rss_bytes);
        assert!(stat.cpu_seconds >= 0.0);
    }
}
