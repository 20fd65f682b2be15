//! A Kubernetes API server on loopback (plain HTTP, reached with
//! `api_server: http://...`): objects and lists served by path, and
//! `SubjectAccessReview`s answered by a decision function. Every request is
//! recorded (method, path and body).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{OriginalUri, State};
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use parking_lot::Mutex;

/// A review's spec -> `Some((allowed, reason))`, or `None` for a 500.
pub type Decide = dyn Fn(&serde_json::Value) -> Option<(bool, String)> + Send + Sync;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Asked {
    pub method: Method,
    pub path: String,
    pub body: serde_json::Value,
}

pub struct FakeKubeApi {
    pub url: String,
    pub asked: Arc<Mutex<Vec<Asked>>>,
}

impl FakeKubeApi {
    /// Paths asked so far, in order.
    pub fn paths(&self) -> Vec<String> {
        self.asked.lock().iter().map(|a| a.path.clone()).collect()
    }

    /// The specs of the reviews posted so far.
    pub fn reviews(&self) -> Vec<serde_json::Value> {
        self.asked
            .lock()
            .iter()
            .filter(|a| a.path == REVIEWS)
            .map(|a| a.body["spec"].clone())
            .collect()
    }
}

const REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

struct Fake {
    objects: HashMap<String, serde_json::Value>,
    decide: Option<Box<Decide>>,
    asked: Arc<Mutex<Vec<Asked>>>,
}

/// `GET <path>` answers `objects[path]` (404 otherwise); with `decide`,
/// `POST` of a review answers it as kube-apiserver does (201, the review with
/// its `status`).
pub async fn start(
    objects: HashMap<String, serde_json::Value>,
    decide: Option<Box<Decide>>,
) -> FakeKubeApi {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let fake = Arc::new(Fake {
        objects,
        decide,
        asked: Arc::clone(&asked),
    });
    let app = axum::Router::new()
        .fallback(
            async |State(fake): State<Arc<Fake>>,
                   method: Method,
                   OriginalUri(uri): OriginalUri,
                   body: axum::body::Bytes| {
                let body: serde_json::Value =
                    serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                fake.asked.lock().push(Asked {
                    method: method.clone(),
                    path: uri.path().to_string(),
                    body: body.clone(),
                });
                match (&method, uri.path(), &fake.decide) {
                    (&Method::POST, REVIEWS, Some(decide)) => match decide(&body["spec"]) {
                        Some((allowed, reason)) => {
                            let mut review = body;
                            review["status"] = serde_json::json!({
                                "allowed": allowed, "reason": reason
                            });
                            (StatusCode::CREATED, axum::Json(review)).into_response()
                        }
                        None => (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            axum::Json(serde_json::json!({
                                "kind": "Status", "apiVersion": "v1", "metadata": {},
                                "status": "Failure", "message": "etcd is down",
                                "reason": "InternalError", "code": 500
                            })),
                        )
                            .into_response(),
                    },
                    (&Method::GET, path, _) => match fake.objects.get(path) {
                        Some(object) => axum::Json(object.clone()).into_response(),
                        None => StatusCode::NOT_FOUND.into_response(),
                    },
                    _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
                }
            },
        )
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeKubeApi {
        url: format!("http://{addr}"),
        asked,
    }
}
