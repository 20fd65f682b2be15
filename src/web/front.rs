//! The request guard in front of every route: the web config's request rate
//! limit, authentication (basic auth with bcrypt hashes, bearer tokens),
//! rate-limited failed logins, and the configured response headers.
//!
//! A bcrypt check costs tens of milliseconds by design, so it runs off the
//! async threads and a success is cached (as exporter-toolkit does); a
//! client that keeps failing is answered 429 without another check, which
//! bounds what guessing passwords costs the server. Unknown users are checked
//! against a fixed hash so their answer takes as long as a wrong password's.
//! Logs name the client address and user, never a password or token.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use parking_lot::Mutex;

use super::WebConfigSource;
use super::config::RateLimit;
use crate::metrics::{Counter, Family, Registry};

/// Failed logins one client address may make in a burst...
const FAILED_LOGIN_BURST: f64 = 10.0;
/// ...and how fast that allowance comes back (one per 6 s: 10 a minute).
const FAILED_LOGIN_REFILL: Duration = Duration::from_secs(6);
/// Client addresses tracked for failed logins; beyond it, recovered ones are
/// forgotten first.
const MAX_TRACKED_CLIENTS: usize = 10_000;
/// Successful checks remembered (the cache is emptied when full).
const MAX_CACHED_LOGINS: usize = 1_000;
/// Checked when the user is unknown, so the answer takes as long as for a
/// wrong password (cost 10, the usual `htpasswd -B` cost).
static UNKNOWN_USER_HASH: LazyLock<String> =
    LazyLock::new(|| bcrypt::hash("unknown user", 10).unwrap_or_default());

/// The guard's state, shared by all connections of a listener.
pub struct WebFront {
    source: Arc<WebConfigSource>,
    logins: Mutex<HashSet<String>>,
    failures: Mutex<HashMap<IpAddr, Bucket>>,
    requests: Mutex<Option<(RateLimit, Bucket)>>,
    auth_failures: Arc<Family<Counter>>,
    rate_limited: Arc<Family<Counter>>,
}

impl WebFront {
    /// A guard over `source`, registering its metrics in `registry`.
    pub fn new(source: Arc<WebConfigSource>, registry: &Registry) -> Self {
        let reload_source = Arc::clone(&source);
        registry.register(move |c| {
            c.gauge(
                "sextant_web_config_last_reload_successful",
                "Whether the last re-read of the web config file succeeded.",
                if reload_source.last_reload_successful() {
                    1.0
                } else {
                    0.0
                },
            );
        });
        WebFront {
            source,
            logins: Mutex::new(HashSet::new()),
            failures: Mutex::new(HashMap::new()),
            requests: Mutex::new(None),
            auth_failures: registry.counter(
                "sextant_http_auth_failures_total",
                "Requests refused for missing or wrong credentials, or for too many failed logins from the client.",
                &["reason"],
            ),
            rate_limited: registry.counter(
                "sextant_http_rate_limited_requests_total",
                "Requests refused by the web config's rate_limit.",
                &[],
            ),
        }
    }

    /// The source this guard reads.
    pub fn source(&self) -> &Arc<WebConfigSource> {
        &self.source
    }

    fn take_request_token(&self, limit: &RateLimit) -> bool {
        if limit.interval.is_zero() {
            return true;
        }
        let mut requests = self.requests.lock();
        let now = Instant::now();
        // A changed limit starts a full bucket.
        if requests.as_ref().is_none_or(|(l, _)| l != limit) {
            *requests = Some((limit.clone(), Bucket::full(f64::from(limit.burst), now)));
        }
        let Some((_, bucket)) = requests.as_mut() else {
            return true;
        };
        bucket.take(f64::from(limit.burst), limit.interval, now)
    }

    fn login_blocked(&self, client: IpAddr) -> Option<Duration> {
        let failures = self.failures.lock();
        let bucket = failures.get(&client)?;
        let now = Instant::now();
        let mut probe = bucket.clone();
        probe.refill(FAILED_LOGIN_BURST, FAILED_LOGIN_REFILL, now);
        (probe.tokens < 1.0).then(|| FAILED_LOGIN_REFILL.mul_f64(1.0 - probe.tokens))
    }

    fn record_failure(&self, client: IpAddr) {
        let now = Instant::now();
        let mut failures = self.failures.lock();
        if failures.len() >= MAX_TRACKED_CLIENTS && !failures.contains_key(&client) {
            failures.retain(|_, b| {
                b.refill(FAILED_LOGIN_BURST, FAILED_LOGIN_REFILL, now);
                b.tokens < FAILED_LOGIN_BURST
            });
            if failures.len() >= MAX_TRACKED_CLIENTS {
                failures.clear();
            }
        }
        failures
            .entry(client)
            .or_insert_with(|| Bucket::full(FAILED_LOGIN_BURST, now))
            .take(FAILED_LOGIN_BURST, FAILED_LOGIN_REFILL, now);
    }

    /// Checks `credentials` against the config's users and tokens.
    async fn verify(&self, credentials: Credentials, users: Vec<(String, String)>) -> Verdict {
        let key = credentials.cache_key(&users);
        if self.logins.lock().contains(&key) {
            return Verdict::Ok;
        }
        let ok = tokio::task::spawn_blocking(move || credentials.check(&users))
            .await
            .unwrap_or(false);
        if ok {
            let mut logins = self.logins.lock();
            if logins.len() >= MAX_CACHED_LOGINS {
                logins.clear();
            }
            logins.insert(key);
            Verdict::Ok
        } else {
            Verdict::Wrong
        }
    }
}

enum Verdict {
    Ok,
    Wrong,
}

/// What a request presented.
enum Credentials {
    Basic { user: String, password: String },
    Bearer { token: String },
}

impl Credentials {
    fn from_header(value: &HeaderValue) -> Option<Credentials> {
        let value = value.to_str().ok()?;
        let (scheme, rest) = value.split_once(' ')?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (user, password) = decoded.split_once(':')?;
            Some(Credentials::Basic {
                user: user.to_string(),
                password: password.to_string(),
            })
        } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
            Some(Credentials::Bearer {
                token: rest.to_string(),
            })
        } else {
            None
        }
    }

    fn user(&self) -> &str {
        match self {
            Credentials::Basic { user, .. } => user,
            Credentials::Bearer { .. } => "(bearer token)",
        }
    }

    /// Names the secret together with the hashes it was checked against, so
    /// a changed hash is checked anew.
    fn cache_key(&self, hashes: &[(String, String)]) -> String {
        let mut key = match self {
            Credentials::Basic { user, password } => format!("basic\0{user}\0{password}"),
            Credentials::Bearer { token } => format!("bearer\0{token}"),
        };
        for (name, hash) in hashes {
            key.push('\0');
            key.push_str(name);
            key.push('\0');
            key.push_str(hash);
        }
        key
    }

    /// The bcrypt checks (slow by design).
    fn check(&self, hashes: &[(String, String)]) -> bool {
        match self {
            Credentials::Basic { password, .. } => {
                let hash = hashes
                    .first()
                    .map_or(UNKNOWN_USER_HASH.as_str(), |(_, h)| h.as_str());
                let ok = bcrypt::verify(password, hash).unwrap_or(false);
                ok && !hashes.is_empty()
            }
            Credentials::Bearer { token } => hashes
                .iter()
                .any(|(_, hash)| bcrypt::verify(token, hash).unwrap_or(false)),
        }
    }
}

/// A token bucket.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn full(capacity: f64, now: Instant) -> Self {
        Bucket {
            tokens: capacity,
            updated: now,
        }
    }

    fn refill(&mut self, capacity: f64, every: Duration, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated);
        self.tokens = (self.tokens + elapsed.as_secs_f64() / every.as_secs_f64()).min(capacity);
        self.updated = now;
    }

    fn take(&mut self, capacity: f64, every: Duration, now: Instant) -> bool {
        self.refill(capacity, every, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The middleware: `axum::middleware::from_fn_with_state(front, guard)`.
pub async fn guard(State(front): State<Arc<WebFront>>, request: Request, next: Next) -> Response {
    let active = front.source.current();
    let config = &active.config;
    if let Some(limit) = &config.rate_limit
        && !front.take_request_token(limit)
    {
        front.rate_limited.with(&[]).inc();
        return with_headers(
            (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n").into_response(),
            config,
        );
    }
    if config.requires_auth()
        && !config
            .auth_exempt_paths
            .iter()
            .any(|p| p == request.uri().path())
    {
        let client = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let credentials = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(Credentials::from_header);
        if let Err(refusal) = authenticate(&front, config, client, credentials).await {
            return with_headers(refusal, config);
        }
    }
    let response = next.run(request).await;
    with_headers(response, config)
}

async fn authenticate(
    front: &WebFront,
    config: &super::WebConfig,
    client: IpAddr,
    credentials: Option<Credentials>,
) -> Result<(), Response> {
    if let Some(retry) = front.login_blocked(client) {
        front.auth_failures.with(&["rate_limited"]).inc();
        tracing::debug!(%client, "Refused a login: too many failed logins from this client.");
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed logins, try again later\n",
        )
            .into_response();
        let seconds = retry.as_secs().max(1).to_string();
        if let Ok(value) = HeaderValue::from_str(&seconds) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Err(response);
    }
    let Some(credentials) = credentials else {
        front.auth_failures.with(&["missing"]).inc();
        return Err(unauthorized());
    };
    let hashes: Vec<(String, String)> = match &credentials {
        Credentials::Basic { user, .. } => config
            .basic_auth_users
            .get(user)
            .map(|h| vec![(user.clone(), h.clone())])
            .unwrap_or_default(),
        Credentials::Bearer { .. } => config
            .bearer_tokens
            .iter()
            .map(|(n, h)| (n.clone(), h.clone()))
            .collect(),
    };
    let user = credentials.user().to_string();
    match front.verify(credentials, hashes).await {
        Verdict::Ok => Ok(()),
        Verdict::Wrong => {
            front.record_failure(client);
            front.auth_failures.with(&["bad_credentials"]).inc();
            tracing::warn!(%client, user = %user, "Failed login.");
            Err(unauthorized())
        }
    }
}

fn unauthorized() -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
    response
}

fn with_headers(mut response: Response, config: &super::WebConfig) -> Response {
    for (name, value) in &config.http_server_config.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unknown_user_hash_is_a_valid_bcrypt_hash() {
        assert!(bcrypt::verify("unknown user", &UNKNOWN_USER_HASH).unwrap());
    }

    #[test]
    fn parses_basic_and_bearer_credentials() {
        let basic = HeaderValue::from_static("Basic YWxpY2U6czNjcjN0Ojo=");
        match Credentials::from_header(&basic) {
            Some(Credentials::Basic { user, password }) => {
                assert_eq!((user.as_str(), password.as_str()), ("alice", "s3cr3t::"));
            }
            _ => panic!("not basic"),
        }
        match Credentials::from_header(&HeaderValue::from_static("bearer abc.def")) {
            Some(Credentials::Bearer { token }) => assert_eq!(token, "abc.def"),
            _ => panic!("not bearer"),
        }
        for bad in [
            "Basic !!!",
            "Basic bm9jb2xvbg==",
            "Bearer ",
            "Digest x",
            "Basic",
        ] {
            assert!(
                Credentials::from_header(&HeaderValue::from_static(bad)).is_none(),
                "{bad}"
            );
        }
    }

    #[test]
    fn buckets_refill_over_time() {
        let start = Instant::now();
        let mut bucket = Bucket::full(2.0, start);
        let second = Duration::from_secs(1);
        assert!(bucket.take(2.0, second, start));
        assert!(bucket.take(2.0, second, start));
        assert!(!bucket.take(2.0, second, start));
        assert!(bucket.take(2.0, second, start + second));
        assert!(!bucket.take(2.0, second, start + second));
        // Never above the capacity.
        bucket.refill(2.0, second, start + second * 100);
        assert!((bucket.tokens - 2.0).abs() < 1e-9);
    }
}
