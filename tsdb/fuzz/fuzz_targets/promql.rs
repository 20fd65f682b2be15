//! Any text as a PromQL query, instant and range, over a small head: parsing
//! and evaluation end in a value or an error, never a panic. Limits keep each
//! run small (samples, steps, time).
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tsdb::head::{Head, HeadOptions};
use tsdb::model::{Labels, Sample};
use tsdb::promql::{Engine, EngineOptions};
use tsdb::storage::Appendable;

fn head() -> &'static Head {
    static HEAD: OnceLock<Head> = OnceLock::new();
    HEAD.get_or_init(|| {
        let head = Head::new(HeadOptions::default());
        let mut app = head.appender();
        for (i, job) in ["api", "db"].iter().enumerate() {
            for instance in ["a", "b"] {
                let counter = Labels::from_pairs(&[
                    ("__name__", "http_requests_total"),
                    ("job", job),
                    ("instance", instance),
                ]);
                let bucket = |le: &str| {
                    Labels::from_pairs(&[
                        ("__name__", "latency_seconds_bucket"),
                        ("job", job),
                        ("instance", instance),
                        ("le", le),
                    ])
                };
                for step in 0..40i64 {
                    let t = step * 15_000;
                    let v = (step * (i as i64 + 1)) as f64;
                    let _ = app.append(None, &counter, Sample::new(t, v));
                    for (le, share) in [("0.1", 0.5), ("1", 0.9), ("+Inf", 1.0)] {
                        let _ = app.append(None, &bucket(le), Sample::new(t, v * share));
                    }
                }
            }
        }
        let _ = app.commit();
        head
    })
}

/// promql-parser panics on duration literals too large for a `Duration`
/// (`Duration::from_secs_f64`); `tsdb` catches panics around the parser and
/// answers a parse error, and no code of ours converts float seconds, so
/// that panic is not a finding. Every other panic still reaches libFuzzer's
/// hook, which aborts.
fn ignore_the_parsers_duration_panic() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !message.contains("float seconds to Duration") {
                fuzzer_hook(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    ignore_the_parsers_duration_panic();
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let engine = Engine::new(EngineOptions {
        timeout: Duration::from_secs(1),
        max_samples: 100_000,
        ..EngineOptions::default()
    });
    if let Ok(q) = engine.instant_query(query, 300_000) {
        let _ = q.exec(head());
    }
    if let Ok(q) = engine.range_query(query, 0, 600_000, Duration::from_secs(30)) {
        let _ = q.exec(head());
    }
});
