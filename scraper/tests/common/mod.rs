//! Test helpers: an in-memory storage and a scriptable exporter on loopback.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parking_lot::Mutex;
use tsdb::error::AppendError;
use tsdb::model::{Labels, Sample, SeriesRef, is_stale_nan};
use tsdb::storage::{Appendable, Appender};

/// Storage that keeps every committed sample in memory, with the head's
/// rules for out-of-order and duplicate samples, and checks that every hint
/// it gets names the series it is given with.
#[derive(Default)]
pub struct MemStorage {
    inner: Mutex<MemInner>,
    /// Samples older than this are out of bounds, as in a head whose
    /// oldest appendable time has passed them.
    min_time: Option<i64>,
}

#[derive(Default)]
struct MemInner {
    series: BTreeMap<Labels, Vec<Sample>>,
    ids: HashMap<Labels, u64>,
    labels_by_id: HashMap<u64, Labels>,
    commits: usize,
    rollbacks: usize,
}

impl MemStorage {
    /// A storage refusing samples older than `min_time`.
    pub fn with_min_time(min_time: i64) -> Self {
        MemStorage {
            min_time: Some(min_time),
            ..MemStorage::default()
        }
    }

    /// Every series with its samples.
    pub fn series(&self) -> BTreeMap<Labels, Vec<Sample>> {
        self.inner.lock().series.clone()
    }

    /// The samples of the series with exactly these labels.
    pub fn samples(&self, pairs: &[(&str, &str)]) -> Vec<Sample> {
        self.inner
            .lock()
            .series
            .get(&Labels::from_pairs(pairs))
            .cloned()
            .unwrap_or_default()
    }

    /// The value at `t` of the series with these labels, if any.
    pub fn value_at(&self, pairs: &[(&str, &str)], t: i64) -> Option<f64> {
        self.samples(pairs).iter().find(|s| s.t == t).map(|s| s.v)
    }

    /// Series (labels as text) with a sample at `t`, and whether it is a
    /// staleness marker.
    pub fn at(&self, t: i64) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (labels, samples) in &self.inner.lock().series {
            if let Some(s) = samples.iter().find(|s| s.t == t) {
                let v = if is_stale_nan(s.v) {
                    "stale".to_string()
                } else {
                    s.v.to_string()
                };
                out.insert(labels.to_string(), v);
            }
        }
        out
    }

    pub fn commits(&self) -> usize {
        self.inner.lock().commits
    }

    pub fn rollbacks(&self) -> usize {
        self.inner.lock().rollbacks
    }
}

impl Appendable for MemStorage {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(MemAppender {
            storage: self,
            pending: Vec::new(),
        })
    }
}

struct MemAppender<'a> {
    storage: &'a MemStorage,
    pending: Vec<(Labels, Sample)>,
}

impl Appender for MemAppender<'_> {
    fn append(
        &mut self,
        hint: Option<SeriesRef>,
        labels: &Labels,
        sample: Sample,
    ) -> Result<SeriesRef, AppendError> {
        let mut inner = self.storage.inner.lock();
        if let Some(hint) = hint {
            let known = inner.labels_by_id.get(&hint.get()).cloned();
            assert_eq!(
                known.as_ref(),
                Some(labels),
                "hint {hint:?} names another series"
            );
        }
        if let Some(min_t) = self.storage.min_time.filter(|&m| sample.t < m) {
            return Err(AppendError::OutOfBounds {
                labels: labels.clone(),
                t: sample.t,
                min_t,
            });
        }
        let next = inner.ids.len() as u64 + 1;
        let id = *inner.ids.entry(labels.clone()).or_insert(next);
        inner.labels_by_id.insert(id, labels.clone());
        let last = self
            .pending
            .iter()
            .rev()
            .find(|(l, _)| l == labels)
            .map(|(_, s)| *s)
            .or_else(|| inner.series.get(labels).and_then(|s| s.last().copied()));
        if let Some(last) = last {
            if sample.t < last.t {
                return Err(AppendError::OutOfOrderSample {
                    labels: labels.clone(),
                    t: sample.t,
                    last_t: last.t,
                });
            }
            if sample.t == last.t {
                if sample.v.to_bits() == last.v.to_bits() {
                    return Ok(SeriesRef::new(id).unwrap());
                }
                return Err(AppendError::DuplicateSample {
                    labels: labels.clone(),
                    t: sample.t,
                    stored: last.v,
                    new: sample.v,
                });
            }
        }
        self.pending.push((labels.clone(), sample));
        Ok(SeriesRef::new(id).unwrap())
    }

    fn commit(self: Box<Self>) -> tsdb::Result<()> {
        let mut inner = self.storage.inner.lock();
        for (labels, sample) in self.pending {
            inner.series.entry(labels).or_default().push(sample);
        }
        inner.commits += 1;
        Ok(())
    }

    fn rollback(self: Box<Self>) {
        self.storage.inner.lock().rollbacks += 1;
    }
}

/// What the test exporter answers next.
#[derive(Debug, Clone)]
pub struct Exposed {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// Send the body with `Content-Encoding: gzip` (it must already be gzip).
    pub gzip: bool,
}

impl Exposed {
    pub fn text(body: &str) -> Self {
        Exposed {
            status: StatusCode::OK,
            content_type: Some("text/plain; version=0.0.4; charset=utf-8".into()),
            body: body.as_bytes().to_vec(),
            gzip: false,
        }
    }

    pub fn openmetrics(body: &str) -> Self {
        Exposed {
            content_type: Some("application/openmetrics-text; version=1.0.0; charset=utf-8".into()),
            ..Exposed::text(body)
        }
    }
}

/// An exporter on 127.0.0.1 whose answer the test sets; `/hang` never
/// answers, `/endless` streams valid lines forever.
#[derive(Clone)]
pub struct Exporter {
    pub addr: SocketAddr,
    exposed: Arc<Mutex<Exposed>>,
    requests: Arc<AtomicUsize>,
    last_accept: Arc<Mutex<Option<String>>>,
}

impl Exporter {
    pub async fn start(exposed: Exposed) -> Exporter {
        let exporter = Exporter {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            exposed: Arc::new(Mutex::new(exposed)),
            requests: Arc::default(),
            last_accept: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/metrics", get(serve))
            .route("/hang", get(std::future::pending::<()>))
            .route("/endless", get(endless))
            .with_state(exporter.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Exporter { addr, ..exporter }
    }

    pub fn expose(&self, exposed: Exposed) {
        *self.exposed.lock() = exposed;
    }

    pub fn url(&self, path: &str) -> reqwest::Url {
        format!("http://{}{path}", self.addr).parse().unwrap()
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn last_accept(&self) -> Option<String> {
        self.last_accept.lock().clone()
    }
}

async fn serve(State(exporter): State<Exporter>, headers: HeaderMap) -> Response {
    exporter.requests.fetch_add(1, Ordering::SeqCst);
    *exporter.last_accept.lock() = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let exposed = exporter.exposed.lock().clone();
    let mut response = (exposed.status, exposed.body).into_response();
    if let Some(ct) = exposed.content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, ct.parse().unwrap());
    } else {
        response.headers_mut().remove(header::CONTENT_TYPE);
    }
    if exposed.gzip {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
    }
    response
}

/// A text body that never ends: the same valid line, streamed forever.
async fn endless() -> Response {
    let line = axum::body::Bytes::from_static(b"endless_total{i=\"1\"} 1\n");
    let lines =
        futures::stream::repeat_with(move || Ok::<_, std::convert::Infallible>(line.clone()));
    let mut response = axum::body::Body::from_stream(lines).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
