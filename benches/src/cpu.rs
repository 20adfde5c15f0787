//! Server CPU per request: the CPU seconds the measured servers used during a run, read
//! from their `/metrics` (`process_cpu_seconds_total`) or, for local processes, from
//! `/proc/PID/stat`, summed over every process of the system under test.

use std::time::Duration;

/// Where a run's server CPU is read.
#[derive(Debug, Clone, Default)]
pub struct CpuSources {
    /// Metrics pages carrying `process_cpu_seconds_total` (a Scatter root's `/metrics`, a
    /// leaf's `--metrics-listen` page).
    pub metrics_urls: Vec<String>,
    /// Local process ids (any server: a peer, leaves without a metrics listener).
    pub pids: Vec<u32>,
}

impl CpuSources {
    /// Nothing to read.
    pub fn is_empty(&self) -> bool {
        self.metrics_urls.is_empty() && self.pids.is_empty()
    }

    /// CPU seconds used so far, summed over every source; `None` if any source failed.
    pub async fn sample(&self, http: &reqwest::Client) -> Option<f64> {
        let mut total = 0.0;
        for pid in &self.pids {
            total += scatter_core::cpu::process_cpu_seconds(Some(*pid))?;
        }
        for url in &self.metrics_urls {
            let text = http
                .get(url)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            total += cpu_of_metrics(&text)?;
        }
        Some(total)
    }
}

/// The value of `process_cpu_seconds_total` in a Prometheus text page.
pub fn cpu_of_metrics(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix("process_cpu_seconds_total "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_counter() {
        let page = "# TYPE x counter\nx 1\nprocess_cpu_seconds_total 12.5\n";
        assert_eq!(super::cpu_of_metrics(page), Some(12.5));
        assert_eq!(super::cpu_of_metrics("x 1\n"), None);
    }
}
