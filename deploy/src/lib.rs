//! Tests of the Kubernetes manifests and Grafana provisioning files in this folder.
