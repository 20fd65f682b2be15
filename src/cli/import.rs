//! `sextant import openmetrics FILE|- [--storage.path DIR]`: backfills the
//! samples of an OpenMetrics text file into blocks of a data directory, as
//! `promtool tsdb create-blocks-from openmetrics` does for Prometheus.
//!
//! The input is what promtool takes: OpenMetrics text ending in `# EOF`,
//! every sample with a timestamp in seconds. Samples are grouped into
//! windows of 2 h aligned to multiples of 2 h since the epoch (promtool's
//! default `--max-block-duration`), one block per window that holds data,
//! the block spanning its first to its last sample as promtool's blocks do.
//! `_created` samples are stored as ordinary series, as promtool stores them.
//!
//! The whole input is parsed and validated before anything is written, so a
//! bad line (reported with its line number) leaves the directory untouched;
//! a failure while writing removes the blocks this run already wrote. The
//! directory's lock (`<dir>/lock`, held by a running server) is taken for
//! the whole import, so importing under a running server is refused.

use std::collections::BTreeMap;
use std::collections::hash_map::Entry as MapEntry;
use std::fmt;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rustc_hash::FxHashMap;
use scraper::exposition::{Entry, Format, MetricType, Parser};
use scraper::scrape_loop::{check_labels, sample_labels};
use tsdb::block::{BlockId, BlockMeta, BlockWriter, EncodedChunk, delete_block_dir};
use tsdb::chunk::{MAX_CHUNK_BYTES, MAX_SAMPLE_BYTES, XorChunk};
use tsdb::model::Labels;

/// Width of the time windows blocks are cut at: promtool's default (and
/// smallest) block duration, Prometheus's head block range.
pub const BLOCK_DURATION_MS: i64 = 2 * 60 * 60 * 1000;
/// Samples per chunk, as the head cuts them.
const SAMPLES_PER_CHUNK: usize = 120;
/// Inputs at least this large get a progress bar (on a terminal).
const PROGRESS_MIN_BYTES: usize = 16 << 20;

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub format: ImportFormat,
}

#[derive(Debug, Subcommand)]
pub enum ImportFormat {
    /// OpenMetrics text with a timestamp (in seconds) on every sample, ending
    /// in `# EOF`: the input of `promtool tsdb create-blocks-from openmetrics`.
    Openmetrics(OpenMetricsArgs),
}

#[derive(Debug, Args)]
pub struct OpenMetricsArgs {
    /// The input file, or `-` for standard input.
    pub file: PathBuf,
    /// Data directory to write the blocks into (created if missing). It
    /// must not be in use by a running server.
    #[arg(
        long = "storage.path",
        visible_alias = "storage.tsdb.path",
        value_name = "DIR",
        default_value = "data"
    )]
    pub storage_path: PathBuf,
}

/// Why an import failed. Nothing of the import is left in the directory.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "refusing to import into {dir}: the directory is locked, a running server (or another import) is using it; stop it or import into another directory and move the blocks in while the server is stopped"
    )]
    Locked { dir: PathBuf },
    #[error("line {line}: {message}")]
    BadLine { line: usize, message: String },
    #[error("the input holds no samples")]
    Empty,
    #[error(transparent)]
    Storage(#[from] tsdb::Error),
}

/// What an import wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportSummary {
    pub samples: u64,
    pub series: usize,
    /// The blocks written, oldest first.
    pub blocks: Vec<BlockMeta>,
    /// Timestamps of the oldest and newest sample, in milliseconds.
    pub min_t: i64,
    pub max_t: i64,
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "imported {} samples of {} series into {} block(s), {} to {}",
            self.samples,
            self.series,
            self.blocks.len(),
            format_time(self.min_t),
            format_time(self.max_t)
        )?;
        writeln!(
            f,
            "{:<26}  {:<24}  {:<24}  {:>10}  {:>8}",
            "BLOCK", "MIN TIME", "MAX TIME", "SAMPLES", "SERIES"
        )?;
        for block in &self.blocks {
            writeln!(
                f,
                "{:<26}  {:<24}  {:<24}  {:>10}  {:>8}",
                block.ulid.to_string(),
                format_time(block.min_time),
                format_time(block.max_time),
                block.stats.num_samples,
                block.stats.num_series
            )?;
        }
        Ok(())
    }
}

fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    )
}

/// Runs `sextant import`.
///
/// # Errors
/// See [`ImportError`].
pub fn run(args: &ImportArgs) -> anyhow::Result<()> {
    let ImportFormat::Openmetrics(args) = &args.format;
    let input = Input::open(&args.file)?;
    let progress = if std::io::stderr().is_terminal() && input.len() >= PROGRESS_MIN_BYTES {
        Progress::Bar
    } else {
        Progress::Hidden
    };
    let summary = import_openmetrics(&input, &args.storage_path, progress)?;
    print!("{summary}");
    Ok(())
}

/// The input's bytes: a mapped file, or standard input read to the end.
enum Input {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl Input {
    fn open(path: &Path) -> Result<Input, ImportError> {
        let read_error = |source| ImportError::Read {
            path: path.to_path_buf(),
            source,
        };
        if path.as_os_str() == "-" {
            let mut bytes = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .map_err(read_error)?;
            return Ok(Input::Read(bytes));
        }
        let file = std::fs::File::open(path).map_err(read_error)?;
        // SAFETY: the mapping is read-only; the file is an input the user
        // names and is not expected to change while it is imported (as with
        // promtool, which reads it whole).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(read_error)?;
        Ok(Input::Mapped(map))
    }
}

impl std::ops::Deref for Input {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Input::Mapped(map) => map,
            Input::Read(bytes) => bytes,
        }
    }
}

/// Whether to draw a progress bar on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Bar,
    Hidden,
}

impl Progress {
    fn bar(self, len: u64, what: &'static str) -> ProgressBar {
        if self == Progress::Hidden {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len).with_message(what);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>8} [{elapsed_precise}] [{wide_bar}] {percent:>3}% eta {eta}",
        ) {
            bar.set_style(style);
        }
        bar
    }
}

/// One series' samples in one 2 h window, as chunks.
struct WindowChunks {
    window: i64,
    chunks: Vec<XorChunk>,
    last_t: i64,
    last_v: f64,
}

struct SeriesBuild {
    labels: Labels,
    /// By window; usually appended in order, sorted before writing.
    windows: Vec<WindowChunks>,
}

/// Per window: the time span of its samples and their count.
#[derive(Debug, Clone, Copy)]
struct WindowStats {
    min_t: i64,
    max_t: i64,
}

/// Parses `input` as OpenMetrics, then writes one block per 2 h window into
/// `dir` (created if missing) while holding the directory's lock.
///
/// # Errors
/// [`ImportError::Locked`] when a server has the directory open,
/// [`ImportError::BadLine`] for the first bad line (nothing is written),
/// [`ImportError::Empty`], [`ImportError::Storage`] for write failures (the
/// blocks written so far are removed).
pub fn import_openmetrics(
    input: &[u8],
    dir: &Path,
    progress: Progress,
) -> Result<ImportSummary, ImportError> {
    std::fs::create_dir_all(dir).map_err(|source| ImportError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let _lock = tsdb::db::lock_dir(dir).map_err(|e| match e {
        tsdb::Error::Locked { path } => ImportError::Locked { dir: path },
        other => ImportError::Storage(other),
    })?;
    let parsed = parse(input, progress)?;
    let blocks = write_blocks(dir, &parsed, progress)?;
    Ok(ImportSummary {
        samples: parsed.samples,
        series: parsed.series.len(),
        blocks,
        min_t: parsed.min_t,
        max_t: parsed.max_t,
    })
}

struct Parsed {
    series: Vec<SeriesBuild>,
    windows: BTreeMap<i64, WindowStats>,
    samples: u64,
    min_t: i64,
    max_t: i64,
}

/// The first pass: every line parsed and checked, samples encoded into
/// chunks per series and window.
fn parse(input: &[u8], progress: Progress) -> Result<Parsed, ImportError> {
    let bar = progress.bar(input.len() as u64, "parsing");
    let mut series: Vec<SeriesBuild> = Vec::new();
    // Series by their text as written (the fast path) and by label set (a
    // series written two ways is one series).
    let mut by_text: FxHashMap<(&str, MetricType), usize> = FxHashMap::default();
    let mut by_labels: FxHashMap<Labels, usize> = FxHashMap::default();
    let mut windows: BTreeMap<i64, WindowStats> = BTreeMap::new();
    let (mut samples, mut min_t, mut max_t) = (0u64, i64::MAX, i64::MIN);
    let no_target = Labels::empty();
    for entry in Parser::new(input, Format::OpenMetrics) {
        let entry = entry.map_err(|e| ImportError::BadLine {
            line: e.line,
            message: e.message,
        })?;
        let Entry::Sample(sample) = entry else {
            continue;
        };
        let line = sample.line;
        let bad = |message: String| ImportError::BadLine { line, message };
        let Some(t) = sample.timestamp else {
            return Err(bad(format!(
                "sample of {} has no timestamp; backfilling needs one on every sample",
                sample.series()
            )));
        };
        let id = match by_text.entry((sample.series(), sample.metric_type)) {
            MapEntry::Occupied(e) => *e.get(),
            MapEntry::Vacant(e) => {
                let labels =
                    sample_labels(&sample, &no_target, true).map_err(|e| bad(e.to_string()))?;
                check_labels(&labels).map_err(|e| bad(e.to_string()))?;
                let id = *by_labels.entry(labels.clone()).or_insert_with(|| {
                    series.push(SeriesBuild {
                        labels,
                        windows: Vec::new(),
                    });
                    series.len() - 1
                });
                *e.insert(id)
            }
        };
        let build = &mut series[id];
        let window = t.div_euclid(BLOCK_DURATION_MS) * BLOCK_DURATION_MS;
        let chunks = match build.windows.iter().rposition(|w| w.window == window) {
            Some(i) => &mut build.windows[i],
            None => {
                build.windows.push(WindowChunks {
                    window,
                    chunks: Vec::new(),
                    last_t: i64::MIN,
                    last_v: 0.0,
                });
                let last = build.windows.len() - 1;
                &mut build.windows[last]
            }
        };
        if t == chunks.last_t {
            // Prometheus's head takes an identical sample again as a no-op.
            if sample.value.to_bits() == chunks.last_v.to_bits() {
                continue;
            }
            return Err(bad(format!(
                "duplicate sample for {} at timestamp {}: value {} after {}",
                build.labels, t, sample.value, chunks.last_v
            )));
        }
        if t < chunks.last_t {
            return Err(bad(format!(
                "out of order sample for {}: timestamp {} after {}",
                build.labels, t, chunks.last_t
            )));
        }
        let need_cut = chunks.chunks.last().is_none_or(|c| {
            c.num_samples() >= SAMPLES_PER_CHUNK
                || c.bytes().len() + MAX_SAMPLE_BYTES > MAX_CHUNK_BYTES
        });
        if need_cut {
            chunks.chunks.push(XorChunk::new());
        }
        if let Some(chunk) = chunks.chunks.last_mut() {
            chunk.append(t, sample.value);
        }
        chunks.last_t = t;
        chunks.last_v = sample.value;
        windows
            .entry(window)
            .and_modify(|w| {
                w.min_t = w.min_t.min(t);
                w.max_t = w.max_t.max(t);
            })
            .or_insert(WindowStats { min_t: t, max_t: t });
        samples += 1;
        min_t = min_t.min(t);
        max_t = max_t.max(t);
        if samples % 65_536 == 0 {
            bar.set_position(sample.series().as_ptr() as u64 - input.as_ptr() as u64);
        }
    }
    bar.finish_and_clear();
    if samples == 0 {
        return Err(ImportError::Empty);
    }
    for build in &mut series {
        build.windows.sort_by_key(|w| w.window);
    }
    Ok(Parsed {
        series,
        windows,
        samples,
        min_t,
        max_t,
    })
}

/// The second pass: one block per window, series in label order. On
/// failure the blocks already written are deleted again.
fn write_blocks(
    dir: &Path,
    parsed: &Parsed,
    progress: Progress,
) -> Result<Vec<BlockMeta>, ImportError> {
    let mut order: Vec<usize> = (0..parsed.series.len()).collect();
    order.sort_unstable_by(|&a, &b| parsed.series[a].labels.cmp(&parsed.series[b].labels));
    let mut cursors = vec![0usize; parsed.series.len()];
    let bar = progress.bar(parsed.windows.len() as u64, "writing");
    let mut written: Vec<BlockMeta> = Vec::new();
    for (&window, stats) in &parsed.windows {
        let result = write_block(dir, window, *stats, parsed, &order, &mut cursors);
        match result {
            Ok(Some(meta)) => written.push(meta),
            Ok(None) => {}
            Err(e) => {
                for meta in &written {
                    let block_dir = dir.join(meta.ulid.to_string());
                    if let Err(error) = delete_block_dir(&block_dir) {
                        tracing::error!(
                            path = %block_dir.display(),
                            %error,
                            "Failed to remove a block of the failed import"
                        );
                    }
                }
                return Err(e.into());
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(written)
}

fn write_block(
    dir: &Path,
    window: i64,
    stats: WindowStats,
    parsed: &Parsed,
    order: &[usize],
    cursors: &mut [usize],
) -> tsdb::Result<Option<BlockMeta>> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut writer = BlockWriter::new(dir, BlockId::new(now_ms), stats.min_t, stats.max_t + 1)?;
    let mut encoded: Vec<EncodedChunk<'_>> = Vec::new();
    for &id in order {
        let build = &parsed.series[id];
        let Some(chunks) = build.windows.get(cursors[id]) else {
            continue;
        };
        if chunks.window != window {
            continue;
        }
        cursors[id] += 1;
        encoded.clear();
        encoded.extend(
            chunks
                .chunks
                .iter()
                .filter(|c| !c.is_empty())
                .map(|c| EncodedChunk {
                    min_t: c.min_t(),
                    max_t: c.max_t(),
                    bytes: c.bytes(),
                }),
        );
        writer.add_series(&build.labels, &encoded)?;
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import(text: &str, dir: &Path) -> Result<ImportSummary, ImportError> {
        import_openmetrics(text.as_bytes(), dir, Progress::Hidden)
    }

    fn block_dirs(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "lock")
            .collect();
        names.sort();
        names
    }

    #[test]
    fn splits_into_blocks_at_two_hour_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        // 7199.5 s is in the first window [0, 2h), 7200 s starts the second.
        let text = "# TYPE a counter\n\
                    a_total{x=\"1\"} 1 10\n\
                    a_total{x=\"1\"} 2 7199.5\n\
                    a_total{x=\"1\"} 3 7200\n\
                    a_total{x=\"2\"} 5 20000\n\
                    # EOF\n";
        let summary = import(text, dir.path()).unwrap();
        assert_eq!(summary.samples, 4);
        assert_eq!(summary.series, 2);
        assert_eq!((summary.min_t, summary.max_t), (10_000, 20_000_000));
        let spans: Vec<(i64, i64, u64, u64)> = summary
            .blocks
            .iter()
            .map(|b| {
                (
                    b.min_time,
                    b.max_time,
                    b.stats.num_samples,
                    b.stats.num_series,
                )
            })
            .collect();
        assert_eq!(
            spans,
            vec![
                (10_000, 7_199_501, 2, 1),
                (7_200_000, 7_200_001, 1, 1),
                (20_000_000, 20_000_001, 1, 1)
            ]
        );
        assert_eq!(block_dirs(dir.path()).len(), 3);
        let shown = summary.to_string();
        assert!(
            shown.starts_with(
                "imported 4 samples of 2 series into 3 block(s), \
                 1970-01-01T00:00:10.000Z to 1970-01-01T05:33:20.000Z\n"
            ),
            "{shown}"
        );
    }

    #[test]
    fn a_series_written_two_ways_is_one_series() {
        let dir = tempfile::tempdir().unwrap();
        let text = "m{a=\"1\",b=\"2\"} 1 1\nm{b=\"2\",a=\"1\"} 2 2\nm{b=\"2\",a=\"1\",c=\"\"} 3 3\n# EOF\n";
        let summary = import(text, dir.path()).unwrap();
        assert_eq!((summary.samples, summary.series), (3, 1));
    }

    #[test]
    fn bad_lines_fail_with_their_line_number_and_write_nothing() {
        let cases = [
            ("m 1 1\nm{ 2 2\n# EOF\n", 2, ""),
            ("m 1 1\nm 2\n# EOF\n", 2, "has no timestamp"),
            ("m 1 5\nm 2 4\n# EOF\n", 2, "out of order sample"),
            ("m 1 5\nm 2 5\n# EOF\n", 2, "duplicate sample"),
            ("m{a=\"1\",a=\"2\"} 1 5\n# EOF\n", 1, "not unique"),
            ("m 1 1\nm 2 2\n", 3, "EOF"),
        ];
        for (text, line, needle) in cases {
            let dir = tempfile::tempdir().unwrap();
            let err = import(text, dir.path()).unwrap_err();
            match &err {
                ImportError::BadLine { line: got, message } => {
                    assert_eq!(*got, line, "{text:?}: {err}");
                    assert!(message.contains(needle), "{text:?}: {err}");
                }
                other => panic!("{text:?}: {other}"),
            }
            assert!(block_dirs(dir.path()).is_empty(), "{text:?}");
        }
    }

    #[test]
    fn an_identical_repeated_sample_is_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let summary = import("m 1 5\nm 1 5\n# EOF\n", dir.path()).unwrap();
        assert_eq!(summary.samples, 1);
    }

    #[test]
    fn an_empty_input_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = import("# TYPE m gauge\n# EOF\n", dir.path()).unwrap_err();
        assert!(matches!(err, ImportError::Empty), "{err}");
    }

    #[test]
    fn refuses_a_directory_an_open_database_holds() {
        let dir = tempfile::tempdir().unwrap();
        let db = tsdb::db::Db::open(dir.path(), tsdb::db::DbOptions::default()).unwrap();
        let err = import("m 1 1\n# EOF\n", dir.path()).unwrap_err();
        assert!(matches!(err, ImportError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("running server"), "{err}");
        db.close().unwrap();
        import("m 1 1\n# EOF\n", dir.path()).unwrap();
    }

    #[test]
    fn round_trip_through_the_database_and_the_engine() {
        use tsdb::promql::{Engine, Value};
        let dir = tempfile::tempdir().unwrap();
        // Five hours of a counter every 30 s (three blocks), and a gauge.
        let mut text = String::from("# TYPE req counter\n");
        for i in 0..600 {
            text.push_str(&format!(
                "req_total{{job=\"api\"}} {} {}.25\n",
                i * 3,
                1000 + i * 30
            ));
        }
        text.push_str("# TYPE temp gauge\n");
        for i in 0..600 {
            text.push_str(&format!(
                "temp{{room=\"hall\"}} {} {}\n",
                20 + i % 7,
                1000 + i * 30
            ));
        }
        text.push_str("# EOF\n");
        let summary = import(&text, dir.path()).unwrap();
        assert_eq!((summary.samples, summary.series), (1200, 2));
        assert_eq!(summary.blocks.len(), 3);

        let db = tsdb::db::Db::open(dir.path(), tsdb::db::DbOptions::default()).unwrap();
        let engine = Engine::default();
        // 7300.25 s: the 5 m window reaches back over the block boundary at 7200 s.
        let at = (1000 + 210 * 30) * 1000 + 250;
        let run = |q: &str| {
            engine
                .instant_query(q, at)
                .unwrap()
                .exec(&db)
                .unwrap()
                .value
        };
        let Value::Vector(v) = run("req_total") else {
            panic!()
        };
        assert_eq!((v.len(), v[0].v), (1, 630.0));
        assert_eq!(
            v[0].labels.to_string(),
            r#"{__name__="req_total", job="api"}"#
        );
        // 0.1 per second, from samples of both blocks.
        let Value::Vector(v) = run("rate(req_total[5m])") else {
            panic!()
        };
        assert!((v[0].v - 0.1).abs() < 1e-12, "{v:?}");
        let Value::Matrix(m) = run("temp[1m]") else {
            panic!()
        };
        let points: Vec<(i64, f64)> = m[0].points.iter().map(|p| (p.t, p.v)).collect();
        assert_eq!(points, vec![(7_270_000, 26.0), (7_300_000, 20.0)]);
        db.close().unwrap();
    }

    #[test]
    fn long_series_are_stored_in_block_chunks_of_480_samples() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for i in 0..1000 {
            text.push_str(&format!("m {i} {i}\n"));
        }
        text.push_str("# EOF\n");
        let summary = import(&text, dir.path()).unwrap();
        assert_eq!(summary.blocks.len(), 1);
        // 480 + 480 + 40 (`tsdb::block::BLOCK_CHUNK_SAMPLES`).
        assert_eq!(summary.blocks[0].stats.num_chunks, 3);
        assert_eq!(summary.blocks[0].stats.num_samples, 1000);
    }
}
