//! Prometheus metrics: one process-wide recorder (the `metrics` facade with
//! metrics-exporter-prometheus), rendered by the root's and the leaves' `/metrics`. In
//! `scatter up`, where the root and all leaves share one process, one page carries them all,
//! told apart by labels.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets in seconds: 100 µs to 10 s.
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Installs the process-wide recorder on first use; returns its handle (`None` if another
/// recorder was installed first).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// The metrics page in Prometheus text format, with the process's CPU time
/// (`process_cpu_seconds_total`, the standard process collector's name).
pub fn render() -> String {
    let mut page = prometheus().map(|h| h.render()).unwrap_or_default();
    if let Some(cpu) = crate::cpu::process_cpu_seconds(None) {
        page.push_str(&format!(
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
             # TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {cpu}\n"
        ));
    }
    page
}
