//! Bulk build: read a JSONL corpus, route each document to its shard by consistent hashing
//! of its id, and write the N shard indexes in parallel (one writer thread per shard).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use scatter_core::document::{ConvertedDoc, DocConverter};
use scatter_core::manifest::{shard_dir_name, ShardEntry, FORMAT_VERSION};
use scatter_core::{Manifest, Router, RoutingParams, ScatterSchema, ShardMeta};
use tantivy::schema::Field;
use tantivy::{Index, IndexWriter, Term};

use crate::jsonl::JsonlReader;
use crate::report::BuildReport;

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// JSONL input (optionally gzip).
    pub input: PathBuf,
    /// Number of shards.
    pub shards: u32,
    /// Output directory (gets `manifest.json` and `shard-K/`).
    pub out: PathBuf,
    /// Schema of the documents.
    pub schema: ScatterSchema,
    /// Total indexing memory budget over all shards, in MB.
    pub memory_mb: usize,
    /// Stop at the first bad line instead of skipping it.
    pub strict: bool,
    /// Replace an existing build in `out`.
    pub force: bool,
    /// Draw a progress bar (when stderr is a terminal).
    pub progress: bool,
}

/// Smallest per-thread indexing budget tantivy accepts.
const MIN_THREAD_BUDGET: usize = 15_000_000;

/// One shard's writer thread: its input channel and its handle.
struct ShardWorker {
    tx: SyncSender<ConvertedDoc>,
    handle: JoinHandle<anyhow::Result<ShardOutcome>>,
}

#[derive(Default)]
struct ShardOutcome {
    docs: u64,
    duplicates: u64,
}

/// Builds the sharded index described by `opts` and returns the report.
pub fn build(opts: &BuildOptions) -> anyhow::Result<BuildReport> {
    let start = Instant::now();
    anyhow::ensure!(opts.shards >= 1, "--shards must be at least 1");
    opts.schema.validate()?;
    prepare_out_dir(&opts.out, opts.force)?;
    let routing = RoutingParams::new(opts.shards);
    let router = Router::new(routing.clone())?;
    let tantivy_schema = opts.schema.tantivy_schema();
    let converter = DocConverter::new(&opts.schema, &tantivy_schema);
    let mut workers = Vec::with_capacity(opts.shards as usize);
    for k in 0..opts.shards {
        workers.push(spawn_shard(opts, k, &tantivy_schema)?);
    }
    let mut reader = JsonlReader::open(&opts.input)?;
    let bar = progress_bar(opts.progress, reader.file_len());
    let bytes = reader.bytes_read();
    let mut report = BuildReport::default();
    let mut last_tick = Instant::now();
    let read_result = (|| -> anyhow::Result<()> {
        while let Some(line) = reader.next_line()? {
            report.lines += 1;
            let converted = line
                .text
                .and_then(|t| converter.convert_str(&t).map_err(|e| e.to_string()));
            match converted {
                Ok(doc) => {
                    report.ignored_fields += doc.ignored_fields as u64;
                    let shard = router.shard_for(&doc.id) as usize;
                    if workers[shard].tx.send(doc).is_err() {
                        bail!("shard-{shard} writer stopped");
                    }
                }
                Err(reason) if opts.strict => bail!("line {}: {reason}", line.no),
                Err(reason) => report.bad_line(line.no, reason),
            }
            if last_tick.elapsed() > Duration::from_millis(100) {
                last_tick = Instant::now();
                bar.set_position(bytes.load(Ordering::Relaxed));
                let rate = report.lines as f64 / start.elapsed().as_secs_f64().max(1e-3);
                bar.set_message(format!("{} docs, {rate:.0} docs/s", report.lines));
            }
        }
        Ok(())
    })();
    bar.finish_and_clear();
    // Closing the channels lets every writer commit (or, on error, roll back).
    let (txs, handles): (Vec<_>, Vec<_>) = workers.into_iter().map(|w| (w.tx, w.handle)).unzip();
    drop(txs);
    if let Err(e) = read_result {
        return Err(e.context("build aborted; the output directory is incomplete"));
    }
    let mut entries = Vec::new();
    for (k, handle) in handles.into_iter().enumerate() {
        let outcome = handle
            .join()
            .map_err(|_| anyhow::anyhow!("shard-{k} writer panicked"))??;
        report.docs += outcome.docs;
        report.duplicate_ids += outcome.duplicates;
        report.docs_per_shard.push(outcome.docs);
        entries.push(ShardEntry {
            shard: k as u32,
            dir: shard_dir_name(k as u32),
            docs: outcome.docs,
        });
    }
    report.input_bytes = bytes.load(Ordering::Relaxed);
    report.seconds = start.elapsed().as_secs_f64();
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        num_shards: opts.shards,
        schema: opts.schema.clone(),
        routing,
        shards: entries,
    };
    manifest.save(&opts.out)?;
    std::fs::write(
        opts.out.join("build-report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    Ok(report)
}

fn prepare_out_dir(out: &Path, force: bool) -> anyhow::Result<()> {
    if out.join(scatter_core::manifest::MANIFEST_FILE).exists() || has_shard_dirs(out) {
        if !force {
            bail!(
                "{} already holds a build; remove it or pass --force",
                out.display()
            );
        }
        for entry in std::fs::read_dir(out)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("shard-") && path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            }
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))
}

fn has_shard_dirs(out: &Path) -> bool {
    std::fs::read_dir(out).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("shard-"))
    })
}

fn spawn_shard(
    opts: &BuildOptions,
    k: u32,
    schema: &tantivy::schema::Schema,
) -> anyhow::Result<ShardWorker> {
    let dir = opts.out.join(shard_dir_name(k));
    std::fs::create_dir_all(&dir)?;
    let index = Index::builder()
        .schema(schema.clone())
        .settings(opts.schema.index_settings())
        .create_in_dir(&dir)
        .with_context(|| format!("creating index in {}", dir.display()))?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads = (cores / opts.shards as usize).clamp(1, 8);
    let budget =
        (opts.memory_mb * 1_000_000 / opts.shards as usize).max(MIN_THREAD_BUDGET * threads);
    let writer: IndexWriter = index.writer_with_num_threads(threads, budget)?;
    let meta = ShardMeta {
        shard: k,
        num_shards: opts.shards,
        schema: opts.schema.clone(),
        routing: RoutingParams::new(opts.shards),
    };
    let id_field = schema.get_field(&opts.schema.id_field)?;
    let (tx, rx) = sync_channel::<ConvertedDoc>(1024);
    let handle = std::thread::Builder::new()
        .name(format!("shard-{k}-writer"))
        .spawn(move || write_shard(writer, rx, id_field, &dir, &meta))?;
    Ok(ShardWorker { tx, handle })
}

fn write_shard(
    mut writer: IndexWriter,
    rx: Receiver<ConvertedDoc>,
    id_field: Field,
    dir: &Path,
    meta: &ShardMeta,
) -> anyhow::Result<ShardOutcome> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut outcome = ShardOutcome::default();
    for doc in rx {
        if !seen.insert(doc.id.clone()) {
            // Last one wins: delete the earlier version, then add this one.
            writer.delete_term(Term::from_field_text(id_field, &doc.id));
            outcome.duplicates += 1;
        } else {
            outcome.docs += 1;
        }
        writer.add_document(doc.doc)?;
    }
    writer.commit()?;
    writer.wait_merging_threads()?;
    meta.save(dir)?;
    Ok(outcome)
}

pub(crate) fn progress_bar(enabled: bool, len: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}) {msg} ETA {eta}",
        )
        .expect("valid template"),
    );
    bar
}
