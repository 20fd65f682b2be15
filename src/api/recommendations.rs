//! `GET /api/v1/recommendations`: the recommender's latest report, per workload and
//! container, with current and recommended values, bounds, replicas, confidence, the
//! inputs used and an explanation of every number. Shape and fields:
//! `docs/format/recommendations-api.md` (pinned by `tests/recommendations.rs`).
//!
//! Optional filters `namespace`, `kind` and `name` keep only matching workloads.
//! Before the first refresh finishes the answer is `"ready": false` with no
//! workloads.

use std::sync::Arc;

use autoscaler::recommender::Report;
use axum::extract::State;
use axum::response::Response;
use parking_lot::RwLock;
use serde::Serialize;

use super::Api;
use super::error::ApiError;
use super::json::Envelope;
use super::params::Params;

/// The latest report, written by the recommender service.
pub type Latest = Arc<RwLock<Option<Arc<Report>>>>;

/// `data` of the answer.
#[derive(Debug, Serialize)]
pub struct Data<'a> {
    /// Whether a refresh has completed.
    pub ready: bool,
    /// When the report was computed (ms since the epoch).
    pub time_ms: Option<i64>,
    pub workloads: Vec<&'a autoscaler::recommender::WorkloadRecommendation>,
}

/// The `data` JSON of `report` keeping the workloads that match the filters (an
/// empty filter matches all).
///
/// # Errors
/// When serialization fails (it does not for these types).
pub fn data_json(
    report: Option<&Report>,
    namespace: &str,
    kind: &str,
    name: &str,
) -> Result<String, ApiError> {
    let data = Data {
        ready: report.is_some(),
        time_ms: report.map(|r| r.time_ms),
        workloads: report
            .map(|r| {
                r.workloads
                    .iter()
                    .filter(|w| {
                        (namespace.is_empty() || w.namespace == namespace)
                            && (kind.is_empty() || format!("{:?}", w.kind) == kind)
                            && (name.is_empty() || w.name == name)
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    serde_json::to_string(&data).map_err(|e| ApiError::Internal(e.to_string()))
}

pub(super) async fn recommendations(
    State(api): State<Arc<Api>>,
    params: Params,
) -> Result<Response, ApiError> {
    let report = api.recommendations.read().clone();
    let data = data_json(
        report.as_deref(),
        params.get("namespace"),
        params.get("kind"),
        params.get("name"),
    )?;
    Ok(super::ok(Envelope::success(&data, &[], &[])))
}
