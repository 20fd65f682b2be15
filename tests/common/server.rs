//! Sextant's HTTP surface started in-process on a free loopback port.

use std::collections::BTreeMap;
use std::sync::Arc;

use sextant::api::{Api, HeadStatus, ServerInfo, Sources, TargetsSnapshot};
use sextant::backend::LocalBackend;
use sextant::metrics::Registry;
use sextant::server::http::{self, Lifecycle};
use tokio::net::TcpListener;
use tsdb::clock::ManualClock;
use tsdb::promql::EngineOptions;
use tsdb::storage::Queryable;

/// Serves the API over `storage` with the clock at `now_ms` and nothing
/// scraped; returns the base URL.
pub async fn serve_storage(storage: Arc<dyn Queryable>, now_ms: i64) -> String {
    let backend = LocalBackend::new(storage, EngineOptions::default(), 4, &Registry::new());
    let info = Arc::new(ServerInfo::new(
        now_ms,
        BTreeMap::new(),
        "15d".into(),
        String::new(),
    ));
    let sources = Sources {
        head_status: Box::new(HeadStatus::default),
        targets: Box::new(TargetsSnapshot::default),
        metadata: Box::new(Vec::new),
    };
    let api = Arc::new(Api::new(
        Arc::new(backend),
        info,
        Arc::new(ManualClock::new(now_ms)),
        sources,
    ));
    let (reloads, _) = tokio::sync::mpsc::channel(1);
    let registry = Arc::new(Registry::new());
    let lifecycle = Arc::new(Lifecycle::new(Arc::clone(&registry), reloads, true));
    let serving = http::WebServing::plain(&registry);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(http::serve(
        listener,
        http::router(api, lifecycle),
        serving,
        std::future::pending(),
    ));
    format!("http://{addr}")
}
