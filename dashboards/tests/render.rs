#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Rendered charts, checked by structure: SVG elements (axes, one path per
//! series run, legend and tick text) and decoded PNG pixels. Every chart is
//! also written to `$CARGO_TARGET_TMPDIR/charts/` to look at.

use std::path::PathBuf;

use dashboards::chart::{
    Chart, Format, MIN_HEIGHT, MIN_WIDTH, PALETTE, Rgb, Series, Size, Unit, render, render_panels,
};
use dashboards::recommendation::{
    HpaBacktest, MetricTimeline, Resource, VpaHistory, constant, hpa_backtest_charts, vpa_chart,
};
use tsdb::model::{STALE_NAN, TimeRange};

/// 2024-01-02T10:00:00Z.
const START: i64 = 1_704_189_600_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const SERIES_WIDTH: &str = "2";
const SWATCH_WIDTH: &str = "3";
const AXIS: &str = "#808080";
const GRID: &str = "#E2E2E2";

fn six_hours() -> TimeRange {
    TimeRange::new(START, START + 6 * HOUR)
}

/// A smooth per-minute series.
fn wave(phase: f64, scale: f64) -> Vec<(i64, f64)> {
    (0..=360)
        .map(|i| {
            (
                START + i * MINUTE,
                scale * (2.0 + (i as f64 / 40.0 + phase).sin()),
            )
        })
        .collect()
}

fn save(name: &str, bytes: &[u8]) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("charts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn svg(name: &str, chart: &Chart) -> String {
    let bytes = render(chart, Format::Svg, Size::default()).unwrap();
    save(&format!("{name}.svg"), &bytes);
    String::from_utf8(bytes).unwrap()
}

fn attribute<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    let start = element.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = element[start..].find('"')? + start;
    Some(&element[start..end])
}

/// `(stroke, stroke-width)` of every polyline.
fn polylines(svg: &str) -> Vec<(String, String)> {
    svg.split("<polyline")
        .skip(1)
        .map(|rest| {
            let element = &rest[..rest.find("/>").unwrap()];
            (
                attribute(element, "stroke").unwrap().to_string(),
                attribute(element, "stroke-width").unwrap().to_string(),
            )
        })
        .collect()
}

fn count(svg: &str, stroke: &str, width: &str) -> usize {
    polylines(svg)
        .iter()
        .filter(|(s, w)| s == stroke && w == width)
        .count()
}

/// The content of every `<text>` element, trimmed (still XML-escaped).
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .map(|rest| {
            let content = &rest[rest.find('>').unwrap() + 1..rest.find("</text>").unwrap()];
            content.trim().to_string()
        })
        .collect()
}

fn has_text(svg: &str, text: &str) -> bool {
    texts(svg).iter().any(|t| t == text)
}

struct Image {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Image {
    fn pixels(&self) -> impl Iterator<Item = (u8, u8, u8)> + '_ {
        self.rgb.chunks_exact(3).map(|p| (p[0], p[1], p[2]))
    }

    fn luminance_variance(&self) -> f64 {
        let values: Vec<f64> = self
            .pixels()
            .map(|(r, g, b)| 0.299 * f64::from(r) + 0.587 * f64::from(g) + 0.114 * f64::from(b))
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64
    }

    fn pixels_of(&self, color: Rgb) -> usize {
        self.pixels()
            .filter(|&(r, g, b)| (r, g, b) == (color.0, color.1, color.2))
            .count()
    }
}

fn png(name: &str, chart: &Chart, size: Size) -> Image {
    let bytes = render(chart, Format::Png, size).unwrap();
    save(&format!("{name}.png"), &bytes);
    decode(&bytes)
}

fn decode(bytes: &[u8]) -> Image {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut buffer).unwrap();
    assert_eq!(frame.color_type, png::ColorType::Rgb);
    assert_eq!(frame.bit_depth, png::BitDepth::Eight);
    buffer.truncate(frame.buffer_size());
    Image {
        width: frame.width,
        height: frame.height,
        rgb: buffer,
    }
}

fn three_waves() -> Chart {
    let gib = 1024.0 * 1024.0 * 1024.0;
    Chart::new("process_resident_memory_bytes", Unit::Bytes, six_hours())
        .step_ms(MINUTE)
        .series(Series::new(r#"{job="sextant"}"#, wave(0.0, 0.5 * gib)))
        .series(Series::new(r#"{job="node"}"#, wave(1.0, 0.3 * gib)))
        .series(Series::new(r#"{job="prometheus"}"#, wave(2.0, 0.2 * gib)))
}

#[test]
fn svg_has_title_axes_one_path_per_series_and_the_legend() {
    let svg = svg("three_waves", &three_waves());
    assert!(
        svg.starts_with(r#"<svg width="800" height="400""#),
        "{}",
        &svg[..80]
    );
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(count(&svg, AXIS, "1"), 1, "one polyline draws both axes");
    let grid = count(&svg, GRID, "1");
    assert!(grid >= 8, "{grid} grid lines");
    for (index, label) in [
        r#"{job="sextant"}"#,
        r#"{job="node"}"#,
        r#"{job="prometheus"}"#,
    ]
    .iter()
    .enumerate()
    {
        let color = PALETTE[index].hex();
        assert_eq!(count(&svg, &color, SERIES_WIDTH), 1, "series {index}");
        assert_eq!(
            count(&svg, &color, SWATCH_WIDTH),
            1,
            "legend swatch {index}"
        );
        let escaped = label.replace('"', "&quot;");
        assert!(
            has_text(&svg, label) || has_text(&svg, &escaped),
            "legend {label}"
        );
    }
    assert!(has_text(&svg, "process_resident_memory_bytes"));
    for time in ["10:00", "11:00", "12:00", "16:00"] {
        assert!(has_text(&svg, time), "x tick {time}: {:?}", texts(&svg));
    }
    assert!(has_text(&svg, "2024-01-02 10:00:00 – 16:00:00 UTC"));
    assert!(has_text(&svg, "0 B"));
    assert!(has_text(&svg, "1.0 GiB"), "{:?}", texts(&svg));
}

#[test]
fn nan_inf_and_stale_markers_break_the_line() {
    let mut points = wave(0.0, 1.0);
    points[60].1 = f64::NAN;
    points[120].1 = STALE_NAN;
    points[180].1 = f64::INFINITY;
    points[181].1 = f64::NEG_INFINITY;
    let chart = Chart::new("gaps", Unit::Plain, six_hours()).series(Series::new("gappy", points));
    let svg = svg("gaps", &chart);
    assert_eq!(count(&svg, &PALETTE[0].hex(), SERIES_WIDTH), 4);
}

#[test]
fn missing_steps_break_the_line_and_lone_points_are_dots() {
    let points: Vec<(i64, f64)> = wave(0.0, 1.0)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !(100..110).contains(i) && *i != 201 && *i != 203)
        .map(|(_, p)| p)
        .collect();
    let chart = Chart::new("holes", Unit::Plain, six_hours())
        .step_ms(MINUTE)
        .series(Series::new("holey", points));
    let svg = svg("holes", &chart);
    // Runs: 0..=99, 110..=200, 202 alone, 204..=360.
    assert_eq!(count(&svg, &PALETTE[0].hex(), SERIES_WIDTH), 3);
    assert_eq!(svg.matches("<circle").count(), 1);
}

#[test]
fn empty_results_render_a_no_data_chart() {
    let chart = Chart::new(r#"up{job="nothing"}"#, Unit::Plain, six_hours());
    let svg = svg("empty", &chart);
    assert!(has_text(&svg, "No data"));
    assert!(has_text(&svg, "the query returned no series"));
    assert!(has_text(&svg, "2024-01-02 10:00:00 – 16:00:00 UTC"));
    assert!(polylines(&svg).iter().all(|(_, width)| width == "1"));
    let image = png("empty", &chart, Size::default());
    assert_eq!((image.width, image.height), (800, 400));
    assert!(image.luminance_variance() > 10.0, "the text is drawn");
}

#[test]
fn nan_and_inf_only_render_a_no_data_chart() {
    let range = six_hours();
    let chart = Chart::new("all bad", Unit::Seconds, range)
        .series(Series::new(
            "nan",
            vec![(START, f64::NAN), (START + HOUR, STALE_NAN)],
        ))
        .series(Series::new(
            "inf",
            vec![(START, f64::INFINITY), (START + HOUR, f64::NEG_INFINITY)],
        ))
        .series(Series::new(
            "outside",
            vec![(START - HOUR, 1.0), (START + 7 * HOUR, 2.0)],
        ));
    let svg = svg("all_bad", &chart);
    assert!(has_text(&svg, "No data"));
    assert!(has_text(
        &svg,
        "3 series, none with a finite value in range"
    ));
    let image = png("all_bad", &chart, Size::default());
    assert!(image.luminance_variance() > 10.0);
    // No panels at all: one "No data".
    let nothing = render_panels(&[], Format::Svg, Size::default()).unwrap();
    assert!(has_text(&String::from_utf8(nothing).unwrap(), "No data"));
}

#[test]
fn many_series_truncate_the_legend_with_plus_n_more() {
    let mut chart = Chart::new("many", Unit::Plain, six_hours());
    for i in 0..60 {
        let label = format!(
            r#"{{instance="host-{i:02}.example.org:9100", job="node", mode="a-rather-long-mode-name"}}"#
        );
        chart = chart.series(Series::new(label, wave(i as f64 / 10.0, 1.0 + i as f64)));
    }
    let svg = svg("many", &chart);
    let series_paths: usize = (0..60)
        .map(|i| PALETTE[i % PALETTE.len()].hex())
        .collect::<std::collections::BTreeSet<_>>()
        .iter()
        .map(|color| count(&svg, color, SERIES_WIDTH))
        .sum();
    assert_eq!(series_paths, 60, "every series is drawn");
    let texts = texts(&svg);
    let more = texts
        .iter()
        .find(|t| t.starts_with('+') && t.ends_with(" more"))
        .unwrap();
    let hidden: usize = more[1..more.len() - 5].parse().unwrap();
    let swatches: usize = PALETTE
        .iter()
        .map(|c| count(&svg, &c.hex(), SWATCH_WIDTH))
        .sum();
    assert_eq!(swatches + hidden, 60, "shown + hidden = all");
    assert!(swatches >= 2, "{swatches}");
    assert!(
        texts.iter().any(|t| t.ends_with('…')),
        "long labels are truncated"
    );
    png("many", &chart, Size::default());
}

#[test]
fn labels_are_escaped_in_svg() {
    let chart = Chart::new("a < b & c", Unit::Plain, six_hours())
        .series(Series::new("x<y> & \"z\"", wave(0.0, 1.0)));
    let svg = svg("escaped", &chart);
    assert!(svg.contains("a &lt; b &amp; c"));
    assert!(svg.contains("x&lt;y&gt; &amp;"));
    assert!(!svg.contains("<y>"));
}

#[test]
fn png_decodes_to_the_requested_size_and_is_not_blank() {
    for (width, height) in [(800, 400), (MIN_WIDTH, MIN_HEIGHT), (1200, 700)] {
        let image = png(
            &format!("three_waves_{width}x{height}"),
            &three_waves(),
            Size::new(width, height),
        );
        assert_eq!((image.width, image.height), (width, height));
        assert_eq!(image.rgb.len(), (width * height * 3) as usize);
        let variance = image.luminance_variance();
        assert!(variance > 100.0, "{width}x{height}: variance {variance}");
        assert!(
            image.pixels_of(PALETTE[0]) > 50,
            "{width}x{height}: series 0 is drawn"
        );
        assert!(
            image.pixels_of(PALETTE[2]) > 50,
            "{width}x{height}: series 2 is drawn"
        );
    }
}

#[test]
fn rendering_is_deterministic() {
    for format in [Format::Png, Format::Svg] {
        let a = render(&three_waves(), format, Size::default()).unwrap();
        let b = render(&three_waves(), format, Size::default()).unwrap();
        assert!(a == b, "{format}");
    }
}

#[test]
fn recommendation_charts_render() {
    let range = six_hours();
    let mib = 1024.0 * 1024.0;
    let vpa = vpa_chart(&VpaHistory {
        container: "shop/frontend/nginx".into(),
        resource: Resource::Memory,
        range,
        step_ms: Some(MINUTE),
        usage: wave(0.0, 100.0 * mib),
        lower_bound: constant(range, 120.0 * mib),
        target: vec![(START, 250.0 * mib), (START + 3 * HOUR, 280.0 * mib)],
        upper_bound: constant(range, 400.0 * mib),
        request: constant(range, 256.0 * mib),
    });
    let svg = svg("vpa", &vpa);
    for label in ["usage", "request", "target", "lower bound", "upper bound"] {
        assert!(has_text(&svg, label), "{label}");
    }
    assert!(has_text(
        &svg,
        "shop/frontend/nginx: memory usage vs recommendation"
    ));
    let image = png("vpa", &vpa, Size::default());
    assert!(image.luminance_variance() > 100.0);

    let backtest = HpaBacktest {
        workload: "shop/Deployment/frontend".into(),
        range,
        step_ms: Some(15_000),
        actual_replicas: constant(range, 4.0),
        desired_replicas: vec![
            (START, 4.0),
            (START + 2 * HOUR, 6.0),
            (START + 4 * HOUR, 3.0),
        ],
        min_replicas: Some(2),
        max_replicas: Some(8),
        metrics: vec![MetricTimeline {
            name: "cpu utilization".into(),
            unit: Unit::Percent,
            values: wave(0.0, 25.0),
            target: constant(range, 60.0),
        }],
    };
    let panels = hpa_backtest_charts(&backtest);
    let bytes = render_panels(&panels, Format::Svg, Size::new(800, 700)).unwrap();
    save("hpa_backtest.svg", &bytes);
    let svg = String::from_utf8(bytes).unwrap();
    assert!(has_text(&svg, "shop/Deployment/frontend: replicas"));
    assert!(has_text(
        &svg,
        "shop/Deployment/frontend: cpu utilization vs target"
    ));
    assert_eq!(count(&svg, AXIS, "1"), 2, "two panels, two pairs of axes");
    assert!(
        has_text(&svg, "60%") && has_text(&svg, "80%"),
        "{:?}",
        texts(&svg)
    );
    let bytes = render_panels(&panels, Format::Png, Size::new(800, 700)).unwrap();
    save("hpa_backtest.png", &bytes);
    let image = decode(&bytes);
    assert_eq!((image.width, image.height), (800, 700));
    assert!(image.luminance_variance() > 100.0);
}

/// xorshift64*: fixed-seed inputs without a dependency.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn value(&mut self) -> f64 {
        match self.below(12) {
            0 => f64::NAN,
            1 => STALE_NAN,
            2 => f64::INFINITY,
            3 => f64::NEG_INFINITY,
            4 => f64::MAX,
            5 => -f64::MAX,
            6 => f64::MIN_POSITIVE,
            7 => 0.0,
            _ => {
                (self.next() as f64 / u64::MAX as f64 - 0.3)
                    * 10f64.powi(self.below(40) as i32 - 20)
            }
        }
    }
}

#[test]
fn arbitrary_data_never_fails_to_render() {
    let mut random = Random(0x5EED_CAFE_F00D_0001);
    let units = [
        Unit::Plain,
        Unit::Bytes,
        Unit::Seconds,
        Unit::Percent,
        Unit::PercentUnit,
    ];
    for case in 0..120 {
        let start = random.below(4_000_000_000_000) as i64 - 1_000_000_000_000;
        let span = [0, 1, 999, 60_000, 86_400_000, 400 * 86_400_000][random.below(6) as usize];
        let range = TimeRange::new(start, start + span);
        let mut chart = Chart::new(
            format!("case {case}"),
            units[random.below(5) as usize],
            range,
        );
        if random.below(3) == 0 {
            chart.step_ms = Some(random.below(100_000) as i64 - 10);
        }
        if random.below(4) == 0 {
            chart.y_min = Some(random.value());
        }
        if random.below(4) == 0 {
            chart.y_max = Some(random.value());
        }
        for s in 0..random.below(6) {
            let points = (0..random.below(50))
                .map(|_| {
                    let t = start - span / 4 + random.below(span as u64 * 3 / 2 + 1) as i64;
                    (t, random.value())
                })
                .collect();
            let mut series = Series::new(format!("s{s}"), points);
            series.style.steps = random.below(2) == 0;
            series.style.dashed = random.below(2) == 0;
            chart = chart.series(series);
        }
        let format = if case % 4 == 0 {
            Format::Png
        } else {
            Format::Svg
        };
        let size = Size::new(
            MIN_WIDTH + random.below(300) as u32,
            MIN_HEIGHT + random.below(300) as u32,
        );
        let bytes =
            render(&chart, format, size).unwrap_or_else(|e| panic!("case {case}: {e}\n{chart:?}"));
        assert!(!bytes.is_empty());
    }
}
