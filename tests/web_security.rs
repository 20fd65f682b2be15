//! The web front door end to end: `sextant serve` with a `--web.config.file`
//! (TLS with client certificates and allowed SANs, basic auth with bcrypt
//! hashes, bearer tokens, an exempt `/metrics`, response headers), rotated
//! certificates and changed users picked up without a restart, failed logins
//! rate-limited; the lifecycle endpoints behind their flag; connection limits
//! (header read timeout, header size, connection count). Clients are reqwest
//! over rustls and raw TCP sockets, all on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use reqwest::StatusCode;
use sextant::server::{ServeOptions, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Cost 4 keeps the tests fast; the server takes any cost.
fn bcrypt_hash(secret: &str) -> String {
    bcrypt::hash(secret, 4).unwrap()
}

fn certificate_authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A certificate for `names` signed by `ca`: (certificate PEM, key PEM).
fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    purpose: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![purpose];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write_web_config(path: &Path, users: &[(&str, &str)]) {
    let mut users_yaml = String::new();
    for (user, password) in users {
        users_yaml.push_str(&format!("  {user}: '{}'\n", bcrypt_hash(password)));
    }
    let text = format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  client_allowed_sans: [client.example]\n  min_version: TLS12\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\nbasic_auth_users:\n{users_yaml}bearer_tokens:\n  grafana: '{}'\nauth_exempt_paths: [/metrics]\n",
        bcrypt_hash("grafana-token-1")
    );
    // Written beside and renamed, as a config management tool would, so a
    // reader never sees half a file.
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).unwrap();
    std::fs::rename(&partial, path).unwrap();
}

fn client(ca_pem: &str, identity: Option<&(String, String)>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_info(true)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(20));
    if let Some((cert, key)) = identity {
        builder = builder
            .identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// The DER of the certificate the server presented.
fn peer_certificate(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .unwrap()
        .to_vec()
}

/// `url` fetched with basic auth.
async fn get_as(
    client: &reqwest::Client,
    url: &str,
    user: &str,
    password: &str,
) -> reqwest::Response {
    client
        .get(url)
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap()
}

/// The text of `/metrics` (exempt from authentication in these tests).
async fn metrics_text(client: &reqwest::Client, base: &str) -> String {
    client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn tls_client_certificates_and_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let ca = certificate_authority("sextant test CA");
    let ca_pem = ca.pem();
    let server_pair = leaf(&ca, &["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::write(dir.path().join("ca.crt"), &ca_pem).unwrap();
    std::fs::write(dir.path().join("server.crt"), &server_pair.0).unwrap();
    std::fs::write(dir.path().join("server.key"), &server_pair.1).unwrap();
    let web_config = dir.path().join("web.yml");
    write_web_config(&web_config, &[("alice", "wonderland")]);

    let mut options = ServeOptions::new("127.0.0.1:0");
    options.storage_path = Some(dir.path().join("data"));
    options.web_config_file = Some(web_config.clone());
    let server = Server::start(options).await.unwrap();
    let base = format!("https://{}", server.addr());
    let query = format!("{base}/api/v1/query?query=1");

    let allowed = leaf(
        &ca,
        &["client.example"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let client_ok = client(&ca_pem, Some(&allowed));

    // No credentials: 401 with a Basic challenge.
    let response = client_ok.get(&query).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Basic");
    assert_eq!(response.headers()["x-frame-options"], "deny");
    let first_certificate = peer_certificate(&response);

    // Basic auth and bearer tokens.
    let response = get_as(&client_ok, &query, "alice", "wonderland").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "success");
    let response = client_ok
        .get(&query)
        .bearer_auth("grafana-token-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    for (user, password) in [("alice", "wrong"), ("mallory", "wonderland")] {
        let response = get_as(&client_ok, &query, user, password).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{user}");
    }
    let response = client_ok
        .get(&query)
        .bearer_auth("guessed")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // The UI and unknown paths are behind authentication too; /metrics is
    // exempt by the config.
    for path in ["/graph", "/api/v1/write", "/nonexistent"] {
        let response = client_ok.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let metrics = client_ok
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains(r#"sextant_http_auth_failures_total{reason="missing"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"sextant_http_auth_failures_total{reason="bad_credentials"} 3"#));

    // Client certificates: none, or one without an allowed SAN, or one from
    // another CA, end the handshake; so does plain HTTP.
    let no_certificate = client(&ca_pem, None);
    assert!(no_certificate.get(&query).send().await.is_err());
    let other_name = leaf(&ca, &["other.example"], ExtendedKeyUsagePurpose::ClientAuth);
    assert!(
        client(&ca_pem, Some(&other_name))
            .get(&query)
            .send()
            .await
            .is_err()
    );
    let stranger_ca = certificate_authority("another CA");
    let stranger = leaf(
        &stranger_ca,
        &["client.example"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    assert!(
        client(&ca_pem, Some(&stranger))
            .get(&query)
            .send()
            .await
            .is_err()
    );
    let plain = reqwest::get(format!("http://{}/api/v1/query?query=1", server.addr())).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    // A rotated certificate and a changed user list apply without a
    // restart (new connections see the new certificate).
    let rotated = leaf(&ca, &["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::write(dir.path().join("server.key.new"), &rotated.1).unwrap();
    std::fs::write(dir.path().join("server.crt.new"), &rotated.0).unwrap();
    std::fs::rename(
        dir.path().join("server.key.new"),
        dir.path().join("server.key"),
    )
    .unwrap();
    std::fs::rename(
        dir.path().join("server.crt.new"),
        dir.path().join("server.crt"),
    )
    .unwrap();
    write_web_config(&web_config, &[("alice", "wonderland"), ("bob", "builder")]);
    let fresh = client(&ca_pem, Some(&allowed));
    let response = get_as(&fresh, &query, "bob", "builder").await;
    assert_eq!(response.status(), StatusCode::OK);
    let second_certificate = peer_certificate(&response);
    assert_ne!(first_certificate, second_certificate);
    // A broken web config is refused; the last good one stays in force.
    std::fs::write(&web_config, "basic_auth_users:\n  bob: not-a-hash\n").unwrap();
    let response = get_as(
        &client(&ca_pem, Some(&allowed)),
        &query,
        "alice",
        "wonderland",
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let metrics = metrics_text(&client_ok, &base).await;
    assert!(metrics.contains("sextant_web_config_last_reload_successful 0"));
    write_web_config(&web_config, &[("alice", "wonderland")]);

    // Failed logins from one address are rate-limited: after the burst,
    // even the right password waits, and no bcrypt check is spent.
    let mut limited = None;
    for attempt in 0..20 {
        let response = get_as(&client_ok, &query, "alice", &format!("guess-{attempt}")).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(attempt);
            assert!(response.headers().contains_key("retry-after"));
            break;
        }
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // Three failures happened earlier in this test, from the same address.
    assert!(limited.is_some_and(|n| n <= 10), "{limited:?}");
    let response = get_as(&client_ok, &query, "alice", "wonderland").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let metrics = metrics_text(&client_ok, &base).await;
    assert!(metrics.contains(r#"sextant_http_auth_failures_total{reason="rate_limited"}"#));

    server.run_until(async {}).await.unwrap();
}

/// Reads from `stream` until the server closes it; returns what was read.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn connection_limits_and_lifecycle_flags() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServeOptions::new("127.0.0.1:0");
    options.storage_path = Some(dir.path().join("data"));
    options.connection_limits.header_read_timeout = Duration::from_millis(500);
    options.connection_limits.max_header_bytes = 16 * 1024;
    options.connection_limits.max_connections = 1;
    let server = Server::start(options).await.unwrap();
    let addr = server.addr();
    let base = format!("http://{addr}");

    // Lifecycle endpoints are off without --web.enable-lifecycle.
    let client = reqwest::Client::new();
    for path in ["/-/reload", "/-/quit"] {
        let response = client.post(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        assert_eq!(
            response.text().await.unwrap(),
            "Lifecycle API is not enabled.\n"
        );
    }

    // Slow loris: headers that never finish are cut off.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /api/v1/query?query=1 HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let answer = read_to_close(&mut slow).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );

    // Oversized headers: 431.
    let mut big = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(32 * 1024)
    );
    big.write_all(request.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut big).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    // One connection at a time: while a client holds the only one (its
    // request body still arriving), another waits; it is served once the
    // first goes away.
    let mut holder = TcpStream::connect(addr).await.unwrap();
    holder
        .write_all(b"POST /api/v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nquery=")
        .await
        .unwrap();
    let mut waiting = tokio::spawn(async move {
        reqwest::Client::new()
            .get(format!("http://{addr}/-/healthy"))
            .send()
            .await
            .map(|r| r.status())
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiting)
            .await
            .is_err(),
        "served beyond the connection limit"
    );
    drop(holder);
    let status = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(status.is_success());

    let keeper = reqwest::Client::new();
    let metrics = keeper
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for reason in ["header_timeout", "header_too_large"] {
        assert!(
            metrics.contains(&format!(
                r#"sextant_http_connection_errors_total{{listener="web",reason="{reason}"}}"#
            )),
            "{reason}: {metrics}"
        );
    }
    server.run_until(async {}).await.unwrap();
}

#[tokio::test]
async fn quit_stops_the_server_when_lifecycle_is_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServeOptions::new("127.0.0.1:0");
    options.storage_path = Some(dir.path().join("data"));
    options.enable_lifecycle = true;
    let server = Server::start(options).await.unwrap();
    let base = format!("http://{}", server.addr());
    let running = tokio::spawn(server.run_until(std::future::pending()));
    let response = reqwest::Client::new()
        .post(format!("{base}/-/quit"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(reqwest::get(format!("{base}/-/healthy")).await.is_err());
}

#[tokio::test]
async fn the_snapshot_admin_endpoint_needs_its_flag() {
    use tsdb::db::{Db, DbOptions};
    use tsdb::model::{Labels, Matcher, Sample, TimeRange};
    use tsdb::storage::{Appendable, Queryable, SelectHints};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let labels = Labels::from_pairs(&[("__name__", "snapshot_test"), ("job", "x")]);
    {
        let db = Db::open(&data, DbOptions::default()).unwrap();
        let mut app = db.appender();
        for i in 0..100 {
            app.append(
                None,
                &labels,
                Sample::new(now - 100_000 + i * 1000, i as f64),
            )
            .unwrap();
        }
        app.commit().unwrap();
        db.close().unwrap();
    }
    for enabled in [false, true] {
        let mut options = ServeOptions::new("127.0.0.1:0");
        options.storage_path = Some(data.clone());
        options.enable_admin_api = enabled;
        let server = Server::start(options).await.unwrap();
        let url = format!("http://{}/api/v1/admin/tsdb/snapshot", server.addr());
        let response = reqwest::Client::new().post(&url).send().await.unwrap();
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap();
        server.run_until(async {}).await.unwrap();
        if !enabled {
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(body["errorType"], "unavailable");
            assert_eq!(body["error"], "admin APIs disabled");
            continue;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        let name = body["data"]["name"].as_str().unwrap();
        assert!(
            name.len() == 16 + 1 + 16 && name.as_bytes()[8] == b'T',
            "{name}"
        );
        // The snapshot opens as a database holding every sample.
        let snapshot = Db::open(&data.join("snapshots").join(name), DbOptions::default()).unwrap();
        let querier = snapshot.querier(TimeRange::all()).unwrap();
        let mut set = querier
            .select(
                &[Matcher::equal("__name__", "snapshot_test")],
                &SelectHints::for_range(TimeRange::all()),
            )
            .unwrap();
        assert_eq!(set.series.len(), 1);
        let mut count = 0;
        while let Some(sample) = set.series[0].samples.next() {
            assert_eq!(sample.v, count as f64);
            count += 1;
        }
        assert_eq!(count, 100);
    }
}
