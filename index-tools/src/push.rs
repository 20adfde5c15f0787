//! `scatter index push`: streams a JSONL corpus into a live cluster through the root's bulk
//! endpoint (`POST /documents`), in batches, with bounded concurrency, retries with
//! exponential backoff (upserts by id are idempotent, so a retry never duplicates), a
//! progress bar, and a per-line report of what was refused, like `index build`.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinSet;

use crate::jsonl::JsonlReader;
use crate::report::{BadLine, MAX_BAD_LINE_SAMPLES};

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// JSONL input (plain or gzip).
    pub input: PathBuf,
    /// Root URL, e.g. `http://127.0.0.1:8080`.
    pub target: String,
    /// Documents per request.
    pub batch_docs: usize,
    /// Most bytes per request.
    pub batch_bytes: usize,
    /// Requests in flight.
    pub concurrency: usize,
    /// Retries of a failed request (or of its documents no replica committed).
    pub retries: u32,
    /// First backoff; doubles per retry, capped at 10 s.
    pub backoff: Duration,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

impl PushOptions {
    /// Defaults: 500 documents or 8 MB per request, 4 in flight, 8 retries from 100 ms.
    pub fn new(input: PathBuf, target: String) -> Self {
        PushOptions {
            input,
            target,
            batch_docs: 500,
            batch_bytes: 8 << 20,
            concurrency: 4,
            retries: 8,
            backoff: Duration::from_millis(100),
            progress: true,
        }
    }
}

/// What a push did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PushReport {
    /// Non-empty lines read.
    pub lines: u64,
    /// Documents acknowledged (committed by at least one replica).
    pub indexed: u64,
    /// Lines refused as invalid (not retried).
    pub bad_lines: u64,
    /// Documents still not acknowledged after every retry.
    pub failed: u64,
    /// The first refused or failed lines, with reasons.
    pub samples: Vec<BadLine>,
    /// Requests retried.
    pub retries: u64,
    /// Replica write failures the root reported (those replicas are repaired by the root).
    pub replica_failures: u64,
    /// Wall time in seconds.
    pub seconds: f64,
}

impl PushReport {
    fn sample(&mut self, line: u64, reason: String) {
        if self.samples.len() < MAX_BAD_LINE_SAMPLES {
            self.samples.push(BadLine { line, reason });
        }
    }

    fn merge(&mut self, other: PushReport) {
        self.indexed += other.indexed;
        self.bad_lines += other.bad_lines;
        self.failed += other.failed;
        self.retries += other.retries;
        self.replica_failures += other.replica_failures;
        for s in other.samples {
            self.sample(s.line, s.reason);
        }
    }
}

/// One request's documents: (line number, JSON text).
type Batch = Vec<(u64, String)>;

/// Pushes the whole input.
pub async fn push(opts: &PushOptions) -> anyhow::Result<PushReport> {
    let start = Instant::now();
    let mut reader = JsonlReader::open(&opts.input)?;
    let bar = crate::build::progress_bar(opts.progress, reader.file_len());
    let bytes = reader.bytes_read();
    let client = reqwest::Client::new();
    let url = format!("{}/documents", opts.target.trim_end_matches('/'));
    let mut report = PushReport::default();
    let mut tasks = JoinSet::new();
    loop {
        let (batch, done) =
            tokio::task::block_in_place(|| next_batch(&mut reader, opts, &mut report))?;
        if !batch.is_empty() {
            while tasks.len() >= opts.concurrency.max(1) {
                report.merge(tasks.join_next().await.expect("a task")?);
            }
            let (client, url, opts) = (client.clone(), url.clone(), opts.clone());
            tasks.spawn(async move { send_batch(&client, &url, batch, &opts).await });
        }
        bar.set_position(bytes.load(Ordering::Relaxed));
        bar.set_message(format!("{} indexed", report.indexed));
        if done {
            break;
        }
    }
    while let Some(done) = tasks.join_next().await {
        report.merge(done?);
    }
    bar.finish_and_clear();
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// Reads up to one batch; `true` when the input is exhausted.
fn next_batch(
    reader: &mut JsonlReader,
    opts: &PushOptions,
    report: &mut PushReport,
) -> anyhow::Result<(Batch, bool)> {
    let mut batch = Vec::new();
    let mut size = 0;
    while batch.len() < opts.batch_docs && size < opts.batch_bytes {
        let Some(line) = reader.next_line()? else {
            return Ok((batch, true));
        };
        report.lines += 1;
        match line.text {
            Ok(text) => {
                size += text.len() + 1;
                batch.push((line.no, text));
            }
            Err(reason) => {
                report.bad_lines += 1;
                report.sample(line.no, reason);
            }
        }
    }
    Ok((batch, false))
}

/// Sends one batch until every document is acknowledged, refused, or out of retries.
async fn send_batch(
    client: &reqwest::Client,
    url: &str,
    batch: Batch,
    opts: &PushOptions,
) -> PushReport {
    let mut report = PushReport::default();
    let mut pending = batch;
    let mut attempt = 0;
    loop {
        let (retry, last_error) = match post(client, url, &pending).await {
            Ok(body) => settle(&body, pending, &mut report),
            Err((retryable, reason)) if retryable => (pending, reason),
            Err((_, reason)) => {
                fail_all(&mut report, &pending, &reason);
                return report;
            }
        };
        if retry.is_empty() {
            return report;
        }
        if attempt >= opts.retries {
            fail_all(
                &mut report,
                &retry,
                &format!("gave up after {attempt} retries: {last_error}"),
            );
            return report;
        }
        let delay = opts
            .backoff
            .saturating_mul(1 << attempt.min(16))
            .min(Duration::from_secs(10));
        tracing::warn!(docs = retry.len(), ?delay, "retrying: {last_error}");
        tokio::time::sleep(delay).await;
        attempt += 1;
        report.retries += 1;
        pending = retry;
    }
}

/// One request: its body, or (retryable, reason).
async fn post(client: &reqwest::Client, url: &str, batch: &Batch) -> Result<Value, (bool, String)> {
    let body: String = batch
        .iter()
        .map(|(_, t)| t.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let resp = client
        .post(url)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .map_err(|e| (true, format!("request failed: {e}")))?;
    let status = resp.status();
    let text = resp
        .text()
        .await
        .map_err(|e| (true, format!("reading the answer: {e}")))?;
    if status.is_success() {
        return serde_json::from_str(&text).map_err(|e| (false, format!("bad answer: {e}")));
    }
    let retryable = status.is_server_error() || status.as_u16() == 429;
    Err((retryable, format!("HTTP {status}: {text}")))
}

/// Books a bulk answer: acknowledged, refused; returns the documents to retry (no replica
/// committed them) and why.
fn settle(body: &Value, batch: Batch, report: &mut PushReport) -> (Batch, String) {
    report.replica_failures += body["replica_failures"].as_array().map_or(0, |a| a.len()) as u64;
    let items = body["items"].as_array().cloned().unwrap_or_default();
    let mut retry = Vec::new();
    let mut reason = String::new();
    // Items are in line order; `line` is 1-based within the request body.
    for item in items {
        let Some(pos) = item["line"].as_u64().and_then(|l| l.checked_sub(1)) else {
            continue;
        };
        let Some((no, _)) = batch.get(pos as usize) else {
            continue;
        };
        let why = || item["error"]["reason"].as_str().unwrap_or("").to_string();
        match item["status"].as_u64() {
            Some(200) => report.indexed += 1,
            Some(400) => {
                report.bad_lines += 1;
                report.sample(*no, why());
            }
            _ => {
                reason = why();
                retry.push(batch[pos as usize].clone());
            }
        }
    }
    (retry, reason)
}

fn fail_all(report: &mut PushReport, batch: &Batch, reason: &str) {
    for (no, _) in batch {
        report.failed += 1;
        report.sample(*no, reason.to_string());
    }
}

impl fmt::Display for PushReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "pushed {} lines in {:.1} s: {} indexed ({:.0} docs/s), {} bad, {} failed, {} retries, {} replica write failures",
            self.lines,
            self.seconds,
            self.indexed,
            self.indexed as f64 / self.seconds.max(1e-9),
            self.bad_lines,
            self.failed,
            self.retries,
            self.replica_failures
        )?;
        for s in &self.samples {
            writeln!(f, "  line {}: {}", s.line, s.reason)?;
        }
        Ok(())
    }
}
