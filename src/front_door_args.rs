//! The root's front-door flags (limits on what clients may hold), flattened into
//! `scatter root`'s arguments; docs/operations.md "Limits" lists each with its default.

use std::time::Duration;

use clap::Args;
use scatter_root::config::RootConfig;

/// Limits a root puts on its clients.
#[derive(Debug, Args)]
pub struct FrontDoorArgs {
    /// Memory budget for requests, in MB, shared by every request of the process: search
    /// state (hit lists, documents, snippets, aggregations) and bulk bodies. A request that
    /// cannot get its share now gets 429; one larger than the whole budget 413.
    #[arg(long, env = "SCATTER_ROOT_MEMORY_BUDGET_MB", default_value_t = scatter_root::api::memory::DEFAULT_MEMORY_BUDGET_MB)]
    memory_budget_mb: usize,
    /// Most open client connections; one more is closed at once.
    #[arg(long, env = "SCATTER_ROOT_MAX_CONNECTIONS", default_value_t = scatter_root::api::connections::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Longest a client may take to send a request's headers, and longest an HTTP/1
    /// connection may stay idle between requests, in milliseconds.
    #[arg(
        long,
        env = "SCATTER_ROOT_HEADER_READ_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    header_read_timeout_ms: u64,
    /// Origins allowed to call the API from a browser (CORS), comma-separated, or `*`.
    /// Without it CORS is off: browsers on other origins cannot read answers.
    #[arg(long, env = "SCATTER_ROOT_CORS_ORIGIN", value_delimiter = ',')]
    cors_origin: Vec<String>,
    /// Host names the API answers to (the `Host` header, port aside), comma-separated, or
    /// `*` for any; a request for another host gets 421 (DNS rebinding). Default: a root on
    /// a loopback address answers to localhost, 127.0.0.1 and ::1 only; elsewhere to any.
    #[arg(long, env = "SCATTER_ROOT_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Vec<String>,
    /// Most points in time one client (its API key, or its address without keys) holds
    /// open at once; one more gets 429 `too_many_pits`.
    #[arg(long, env = "SCATTER_ROOT_MAX_PITS_PER_CLIENT", default_value_t = scatter_root::api::front_door::DEFAULT_MAX_PITS_PER_CLIENT)]
    max_pits_per_client: usize,
}

impl FrontDoorArgs {
    /// Sets these limits in `config`.
    pub fn apply(&self, config: &mut RootConfig) {
        config.memory_budget_bytes = self.memory_budget_mb.max(1) << 20;
        // Each connection is a file descriptor; leave room for leaves, peers and files.
        let fds = raise_fd_limit();
        let fit = fds.saturating_sub(512).max(64) as usize;
        if self.max_connections > fit {
            tracing::warn!(
                "--max-connections {} lowered to {fit}: the open-file limit is {fds}",
                self.max_connections
            );
        }
        config.connections.max_connections = self.max_connections.clamp(1, fit);
        config.connections.header_read_timeout =
            Duration::from_millis(self.header_read_timeout_ms.max(100));
        config.cors_origins = self.cors_origin.clone();
        config.allowed_hosts = (!self.allowed_hosts.is_empty()).then(|| self.allowed_hosts.clone());
        config.max_pits_per_client = self.max_pits_per_client.max(1);
    }
}

/// Raises this process's open-file limit to its hard limit (at most 1,048,576) and returns
/// the limit in force: a root must run out of connection slots (and refuse politely) before
/// it runs out of file descriptors (and fails to accept, or to reach its leaves).
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        let want = lim.rlim_max.min(1 << 20);
        if want > lim.rlim_cur {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return want;
            }
        }
        lim.rlim_cur
    }
}
