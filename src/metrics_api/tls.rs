//! The metrics APIs' certificate: the aggregator only talks TLS to
//! APIService backends, so without a configured PEM pair Sextant makes a
//! self-signed one at start (for APIServices with
//! `insecureSkipTLSVerify: true`) for the names below. Serving is the shared
//! connection loop ([`crate::web::serve`]).

/// The names a self-signed certificate is made for: the in-cluster Service
/// names a deployment uses, plus loopback.
pub fn default_hosts() -> Vec<String> {
    let mut hosts = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let (Ok(service), Ok(namespace)) = (
        std::env::var("SEXTANT_SERVICE_NAME"),
        std::env::var("SEXTANT_NAMESPACE"),
    ) {
        hosts.push(format!("{service}.{namespace}.svc"));
        hosts.push(format!("{service}.{namespace}.svc.cluster.local"));
    }
    hosts
}
