use super::*;

/// Errors as `line:column: message`, the way the config loader reports them.
fn scrape(yaml: &str) -> Result<ScrapeConfig, String> {
    serde_yaml::from_str(yaml).map_err(|e| match yaml_error_parts(&e) {
        (Some((line, column)), message) => format!("{line}:{column}: {message}"),
        (None, message) => message,
    })
}

fn resolved(yaml: &str, global: &ScrapeDefaults) -> Result<ScrapeConfig, String> {
    let mut config = scrape(yaml)?;
    config.apply_defaults(global)?;
    Ok(config)
}

#[track_caller]
fn check_error(yaml: &str, expect: &str) {
    let err = scrape(yaml).unwrap_err();
    assert_eq!(err, expect);
}

#[test]
fn minimal_config_gets_prometheus_defaults() {
    let config = resolved("job_name: node", &ScrapeDefaults::default()).unwrap();
    assert_eq!(config.job_name, "node");
    assert_eq!(config.interval(), Duration::from_secs(60));
    assert_eq!(config.timeout(), Duration::from_secs(10));
    assert_eq!(config.metrics_path, "/metrics");
    assert_eq!(config.scheme, Scheme::Http);
    assert!(config.honor_timestamps);
    assert!(!config.honor_labels);
    assert!(config.enable_compression);
    assert_eq!(config.protocols(), &DEFAULT_SCRAPE_PROTOCOLS);
    assert_eq!(
        config.metric_name_validation_scheme,
        Some(NameValidationScheme::Utf8)
    );
    assert_eq!(
        config.metric_name_escaping_scheme.as_deref(),
        Some("allow-utf-8")
    );
}

#[test]
fn globals_fill_unset_fields_and_timeout_is_capped_by_interval() {
    let global = ScrapeDefaults {
        scrape_interval: Duration::from_secs(5),
        scrape_timeout: Duration::from_secs(10),
        sample_limit: 100,
        body_size_limit: ByteSize(1024),
        ..ScrapeDefaults::default()
    };
    let config = resolved("job_name: a", &global).unwrap();
    assert_eq!(config.interval(), Duration::from_secs(5));
    // min(global timeout, interval)
    assert_eq!(config.timeout(), Duration::from_secs(5));
    assert_eq!(config.sample_limit, 100);
    assert_eq!(config.body_size_limit, ByteSize(1024));
    let config = resolved(
        "{job_name: a, scrape_interval: 1m, sample_limit: 7, body_size_limit: 10MB}",
        &global,
    )
    .unwrap();
    assert_eq!(config.interval(), Duration::from_secs(60));
    assert_eq!(config.timeout(), Duration::from_secs(10));
    assert_eq!(config.sample_limit, 7);
    assert_eq!(config.body_size_limit, ByteSize(10 << 20));
    assert_eq!(
        resolved(
            "{job_name: a, scrape_interval: 10s, scrape_timeout: 11s}",
            &global
        )
        .unwrap_err(),
        r#"scrape timeout greater than scrape interval for scrape config with job name "a""#
    );
}

#[test]
fn scrape_protocols_are_validated() {
    let global = ScrapeDefaults::default();
    let config = resolved(
        "{job_name: a, scrape_protocols: [PrometheusText0.0.4]}",
        &global,
    )
    .unwrap();
    assert_eq!(config.protocols(), &[ScrapeProtocol::PrometheusText0_0_4]);
    assert_eq!(
        config.protocols()[0].header_value(),
        "text/plain;version=0.0.4"
    );
    assert!(
        resolved(
            "{job_name: a, scrape_protocols: [PrometheusText0.0.4, PrometheusText0.0.4]}",
            &global
        )
        .unwrap_err()
        .starts_with("duplicated protocol in scrape_protocols")
    );
    assert!(
        resolved("{job_name: a, scrape_protocols: []}", &global)
            .unwrap_err()
            .starts_with("scrape_protocols cannot be empty")
    );
    assert!(
        scrape("{job_name: a, scrape_protocols: [Text]}")
            .unwrap_err()
            .contains("unknown variant `Text`")
    );
    let native = resolved("{job_name: a, scrape_native_histograms: true}", &global).unwrap();
    assert_eq!(native.protocols()[0], ScrapeProtocol::PrometheusProto);
}

#[test]
fn errors_carry_line_and_column() {
    let yaml = "job_name: a\nscrape_interval: 10s\nscrape_timeuot: 5s\n";
    let err = scrape(yaml).unwrap_err();
    assert!(
        err.starts_with("3:1: unknown field `scrape_timeuot`, expected one of `job_name`"),
        "{err}"
    );
    assert!(err.ends_with("`http_headers`"), "{err}");
    check_error(
        "job_name: a\nscrape_interval: 10x\n",
        r#"2:18: scrape_interval: not a valid duration string: "10x""#,
    );
    check_error(
        "job_name: a\nrelabel_configs:\n  - source_labels: [a]\n    action: hashmod\n    target_label: b\n",
        "3:5: relabel_configs[0]: relabel configuration for hashmod requires non-zero modulus",
    );
    check_error(
        "job_name: a\nbasic_auth: {username: u}\nauthorization: {credentials: x}\n",
        "1:1: at most one of basic_auth, oauth2 & authorization must be configured",
    );
    check_error("job_name: ''", "1:1: job_name is empty");
    check_error("scheme: http", "1:1: missing field `job_name`");
    check_error(
        "job_name: a\nstatic_configs: [{targets: ['http://x:1/metrics']}]",
        r#"1:1: "http://x:1/metrics" is not a valid hostname"#,
    );
    check_error(
        "job_name: a\nscheme: ftp",
        "2:9: scheme: unknown variant `ftp`, expected `http` or `https`",
    );
}

#[test]
fn service_discovery_sections_parse() {
    let config = scrape(
        r#"
job_name: sd
static_configs:
  - targets: ['localhost:9090', 'localhost:9100']
    labels: {env: prod}
file_sd_configs:
  - files: [targets/*.json, 'more.yml']
    refresh_interval: 30s
http_sd_configs:
  - url: http://127.0.0.1:8080/sd
    authorization: {credentials: token}
kubernetes_sd_configs:
  - role: pod
    namespaces: {names: [default, kube-system]}
    selectors:
      - role: pod
        label: "app=web,tier in (front,back),!canary"
        field: "spec.nodeName=node-1"
consul_sd_configs:
  - server: localhost:8500
"#,
    )
    .unwrap();
    let sd = config.service_discovery_configs();
    assert_eq!(sd.static_configs[0].targets.len(), 2);
    assert_eq!(sd.static_configs[0].labels["env"], "prod");
    assert_eq!(
        sd.file_sd_configs[0].refresh_interval,
        Duration::from_secs(30)
    );
    assert_eq!(
        sd.http_sd_configs[0].refresh_interval,
        Duration::from_secs(60)
    );
    assert_eq!(sd.kubernetes_sd_configs[0].role, KubernetesRole::Pod);
    assert_eq!(sd.unsupported, vec!["consul_sd_configs"]);
}

#[test]
fn service_discovery_sections_are_validated() {
    let err = |yaml: &str| scrape(&format!("job_name: a\n{yaml}")).unwrap_err();
    assert_eq!(
        err("file_sd_configs: [{files: ['targets.txt']}]"),
        r#"2:19: file_sd_configs[0]: path name "targets.txt" is not valid for file discovery"#
    );
    assert_eq!(
        err("file_sd_configs: [{files: ['*/t.json']}]"),
        r#"2:19: file_sd_configs[0]: path name "*/t.json" is not valid for file discovery"#
    );
    assert!(
        err("http_sd_configs: [{url: 'ftp://x/'}]")
            .contains("URL scheme must be 'http' or 'https'")
    );
    assert!(err("kubernetes_sd_configs: [{}]").contains("missing field `role`"));
    assert!(err("kubernetes_sd_configs: [{role: pods}]").contains("unknown variant `pods`"));
    assert!(
        err("kubernetes_sd_configs: [{role: pod, selectors: [{role: node}]}]")
            .contains("pod role supports only pod selectors")
    );
    assert!(
        err(
            "kubernetes_sd_configs: [{role: endpointslice, selectors: [{role: pod}, {role: pod}]}]"
        )
        .contains("duplicated selector role: pod")
    );
    assert!(
        err("kubernetes_sd_configs: [{role: pod, api_server: 'https://k:6443', namespaces: {own_namespace: true}}]")
            .contains("cannot use 'api_server' and 'namespaces.own_namespace' simultaneously")
    );
    assert!(
        err("kubernetes_sd_configs: [{role: pod, bearer_token: x}]").contains(
            "to use custom HTTP client configuration please provide the 'api_server' URL explicitly"
        )
    );
    assert!(
        err("kubernetes_sd_configs: [{role: pod, selectors: [{role: pod, label: 'a in b'}]}]")
            .contains("invalid label selector")
    );
}

#[test]
fn legacy_validation_rechecks_relabel_rules() {
    let global = ScrapeDefaults::default();
    let yaml = "{job_name: a, metric_name_validation_scheme: legacy, relabel_configs: [{target_label: 'a.b'}]}";
    assert_eq!(
        resolved(yaml, &global).unwrap_err(),
        r#""a.b" is invalid 'target_label' for replace action"#
    );
    let config = resolved(
        "{job_name: a, metric_name_validation_scheme: legacy}",
        &global,
    )
    .unwrap();
    assert_eq!(
        config.metric_name_escaping_scheme.as_deref(),
        Some("underscores")
    );
    assert_eq!(
        resolved("{job_name: a, metric_name_validation_scheme: legacy, metric_name_escaping_scheme: allow-utf-8}", &global)
            .unwrap_err(),
        "utf8 metric names requested but validation scheme is not set to UTF8"
    );
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let mut config = scrape(
        "{job_name: a, file_sd_configs: [{files: [t.json, /abs/u.json]}], tls_config: {ca_file: ca.pem}}",
    )
    .unwrap();
    config.resolve_paths(Path::new("/etc/sextant"));
    assert_eq!(
        config.file_sd_configs[0].files,
        vec!["/etc/sextant/t.json", "/abs/u.json"]
    );
    assert_eq!(
        config.tls_config.ca_file.as_deref(),
        Some("/etc/sextant/ca.pem")
    );
}
