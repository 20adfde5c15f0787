//! The command line: parses arguments and hands each subcommand to its library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use scatter_core::ScatterSchema;
use scatter_index_tools::verify::{verify, VerifyOptions};
use scatter_index_tools::BuildOptions;
use scatter_leaf::server::BoundLeaf;
use scatter_leaf::LeafConfig;
use scatter_root::config::{parse_shard_flag, ClusterFile};
use scatter_root::{BoundRoot, RootConfig};

/// Scatter: sharded scatter/gather full-text search.
#[derive(Debug, Parser)]
#[command(name = "scatter", version, about)]
struct Cli {
    /// Log format on stderr: `text` or `json` (one JSON object per line). Level: SCATTER_LOG.
    #[arg(long, global = true, env = "SCATTER_LOG_FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve one or more shards over gRPC (a leaf node).
    Leaf(LeafArgs),
    /// Serve the HTTP search API over a cluster of leaves.
    Root(RootArgs),
    /// Build and inspect indexes.
    #[command(subcommand)]
    Index(IndexCommand),
    /// Start a whole local cluster (index build, leaves, root) with one command.
    Up(crate::up::UpArgs),
    /// Measure search latency: open-loop load, percentiles, plots, baselines.
    Bench(crate::bench::BenchArgs),
    /// Testing aid: show or change a running leaf's fault injection (gRPC SetFaults).
    Faults(FaultsArgs),
    /// Make a cluster CA and node certificates for mutual TLS between roots and leaves.
    Certs(crate::cluster_tls_args::CertsArgs),
}

#[derive(Debug, Args)]
struct LeafArgs {
    #[command(flatten)]
    cluster_tls: crate::cluster_tls_args::ClusterTlsArgs,
    /// TOML file of settings (keys: these flags' long names); flags and env vars win.
    #[arg(long, env = "SCATTER_CONFIG")]
    config: Option<PathBuf>,
    /// File holding the cluster's shared secret (≥ 16 characters): calls to leaves carry it,
    /// and a leaf given one refuses every call without it. See docs/operations.md.
    #[arg(long, env = "SCATTER_CLUSTER_SECRET_FILE")]
    cluster_secret_file: Option<PathBuf>,
    /// Shard directory (DIR/shard-K of `scatter index build`); repeat it to serve several
    /// shards from one node (env: comma-separated).
    #[arg(
        long,
        env = "SCATTER_LEAF_INDEX",
        required = true,
        value_delimiter = ','
    )]
    index: Vec<PathBuf>,
    /// Address to listen on (port 0: any free port; the bound address is printed).
    #[arg(long, env = "SCATTER_LEAF_LISTEN", default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// Serve Prometheus metrics over HTTP at this address (`/metrics`).
    #[arg(long, env = "SCATTER_LEAF_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Async worker threads (gRPC I/O; searches run on them and on the blocking pool).
    /// Default: one per core.
    #[arg(long, env = "SCATTER_LEAF_WORKER_THREADS")]
    worker_threads: Option<usize>,
    /// Most MB of ingest calls queued per shard; beyond it writes are refused
    /// (RESOURCE_EXHAUSTED; the root answers 429 with Retry-After).
    #[arg(long, env = "SCATTER_LEAF_MAX_WRITE_QUEUE_MB", default_value_t = 256)]
    max_write_queue_mb: usize,
    /// Seconds a tombstone (a live delete) is kept in the version log; after that, and once
    /// no peer is known to lack a write, compaction drops it (a write of that id older than
    /// the delete arriving later could then bring the document back).
    #[arg(
        long,
        env = "SCATTER_LEAF_TOMBSTONE_RETENTION_SECS",
        default_value_t = 3600
    )]
    tombstone_retention_secs: u64,
    /// If --index holds no shard: create an empty one (needs --shard-id and --num-shards;
    /// with several --index, each directory's name `shard-K` gives its shard id). A new
    /// replica of a shard with data is then repaired from a peer by the root.
    #[arg(long, env = "SCATTER_LEAF_CREATE")]
    create: bool,
    /// Shard number of a shard created with --create.
    #[arg(long, env = "SCATTER_LEAF_SHARD_ID", requires = "create")]
    shard_id: Option<u32>,
    /// Shard count of the cluster, for a shard created with --create.
    #[arg(long, env = "SCATTER_LEAF_NUM_SHARDS", requires = "create")]
    num_shards: Option<u32>,
    /// Schema (TOML or JSON) of a shard created with --create (default: title + body).
    #[arg(long, env = "SCATTER_LEAF_SCHEMA", requires = "create")]
    schema: Option<PathBuf>,
    #[command(flatten)]
    faults: FaultArgs,
}

impl LeafArgs {
    /// The identity of a shard to create, with --create.
    fn create_meta(&self) -> anyhow::Result<Option<scatter_core::ShardMeta>> {
        if !self.create {
            return Ok(None);
        }
        // With several --index, each directory's name gives its shard id.
        let shard = self.shard_id.or((self.index.len() > 1).then_some(0));
        let (Some(shard), Some(num_shards)) = (shard, self.num_shards) else {
            anyhow::bail!("--create needs --num-shards, and --shard-id with a single --index");
        };
        anyhow::ensure!(
            shard < num_shards,
            "--shard-id {shard} must be below --num-shards {num_shards}"
        );
        let schema = match &self.schema {
            Some(path) => scatter_core::ScatterSchema::from_file(path)?,
            None => scatter_core::ScatterSchema::default(),
        };
        Ok(Some(scatter_core::ShardMeta {
            shard,
            num_shards,
            schema,
            routing: scatter_core::RoutingParams::new(num_shards),
        }))
    }
}

/// Fault injection into a leaf's data calls (Search, Fetch, TermStats): a testing aid.
#[derive(Debug, Clone, Args)]
pub struct FaultArgs {
    /// Testing aid: delay added to a delayed data call, in milliseconds.
    #[arg(long, env = "SCATTER_LEAF_FAULT_DELAY_MS", default_value_t = 0)]
    fault_delay_ms: u64,
    /// Testing aid: fraction (0..1) of data calls delayed by --fault-delay-ms.
    #[arg(long, env = "SCATTER_LEAF_FAULT_DELAY_RATE", default_value_t = 0.0)]
    fault_delay_rate: f64,
    /// Testing aid: fraction (0..1) of data calls failed with UNAVAILABLE.
    #[arg(long, env = "SCATTER_LEAF_FAULT_ERROR_RATE", default_value_t = 0.0)]
    fault_error_rate: f64,
}

impl FaultArgs {
    /// The settings these flags ask for.
    pub fn settings(&self) -> scatter_proto::v1::FaultSettings {
        scatter_proto::v1::FaultSettings {
            set: true,
            delay_ms: self.fault_delay_ms,
            delay_rate: self.fault_delay_rate,
            error_rate: self.fault_error_rate,
        }
    }
}

#[derive(Debug, Args)]
struct RootArgs {
    #[command(flatten)]
    cluster_tls: crate::cluster_tls_args::ClusterTlsArgs,
    #[command(flatten)]
    local_shards: crate::local_shards::LocalShardsArgs,
    #[command(flatten)]
    front_door: crate::front_door_args::FrontDoorArgs,
    /// TOML file of settings (keys: these flags' long names); flags and env vars win.
    #[arg(long, env = "SCATTER_CONFIG")]
    config: Option<PathBuf>,
    /// HTTP address to listen on.
    #[arg(long, env = "SCATTER_ROOT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Async worker threads. Default: one per core. A root sharing its cores with leaves
    /// (or a small machine) costs less per query with 1: no request crosses threads
    /// (docs/benchmarks.md, session 4).
    #[arg(long, env = "SCATTER_ROOT_WORKER_THREADS")]
    worker_threads: Option<usize>,
    /// Replica addresses of one shard, comma-separated; repeat once per shard, in shard order
    /// (in the environment variable: shards separated by `;`).
    #[arg(
        long = "shard",
        value_name = "ADDR[,ADDR...]",
        env = "SCATTER_ROOT_SHARDS",
        value_delimiter = ';'
    )]
    shards: Vec<String>,
    /// Cluster file (JSON or TOML: `shards = [["host:port", ...], ...]`) instead of --shard.
    #[arg(long, env = "SCATTER_ROOT_CLUSTER", conflicts_with = "shards")]
    cluster: Option<PathBuf>,
    /// A leaf node (`host:port`), repeated: the root asks each which shards it serves
    /// (instead of --shard lists) and refuses to start if some shard has no node.
    #[arg(
        long = "node",
        value_name = "ADDR",
        env = "SCATTER_ROOT_NODES",
        value_delimiter = ',',
        conflicts_with_all = ["shards", "cluster"]
    )]
    nodes: Vec<String>,
    /// Deadline of a search that gives no timeout_ms.
    #[arg(long, env = "SCATTER_ROOT_TIMEOUT_MS", default_value_t = 1000)]
    timeout_ms: u64,
    /// Largest timeout_ms a request may ask for.
    #[arg(long, env = "SCATTER_ROOT_MAX_TIMEOUT_MS", default_value_t = 60_000)]
    max_timeout_ms: u64,
    /// How often every replica is probed, in milliseconds.
    #[arg(long, env = "SCATTER_ROOT_PROBE_INTERVAL_MS", default_value_t = 500)]
    probe_interval_ms: u64,
    /// Hedges allowed per shard call, long-run (0.05 = 5%).
    #[arg(long, env = "SCATTER_ROOT_HEDGE_BUDGET", default_value_t = 0.05)]
    hedge_budget: f64,
    /// Smallest hedge delay in milliseconds (the delay is the shard's recent p95, at least this).
    #[arg(long, env = "SCATTER_ROOT_HEDGE_MIN_DELAY_MS", default_value_t = 2.0)]
    hedge_min_delay_ms: f64,
    /// Never hedge (failover on error still happens).
    #[arg(long, env = "SCATTER_ROOT_NO_HEDGE")]
    no_hedge: bool,
    /// Result cache size in MB (0: no cache).
    #[arg(long, env = "SCATTER_ROOT_RESULT_CACHE_MB", default_value_t = 64)]
    result_cache_mb: usize,
    /// Deadline of one write to the replicas of a shard, in milliseconds.
    #[arg(long, env = "SCATTER_ROOT_WRITE_TIMEOUT_MS", default_value_t = 30_000)]
    write_timeout_ms: u64,
    /// Largest `POST /documents` body, in MB.
    #[arg(long, env = "SCATTER_ROOT_MAX_BULK_MB", default_value_t = 64)]
    max_bulk_mb: usize,
    /// Most MB of bulk bodies being written at once; a bulk beyond it is refused with 429
    /// and Retry-After (memory stays bounded under write overload).
    #[arg(long, env = "SCATTER_ROOT_MAX_INGEST_MB", default_value_t = 512)]
    max_ingest_mb: usize,
    /// File holding the cluster's shared secret (≥ 16 characters): calls to leaves carry it,
    /// and a leaf given one refuses every call without it. See docs/operations.md.
    #[arg(long, env = "SCATTER_CLUSTER_SECRET_FILE")]
    cluster_secret_file: Option<PathBuf>,
    /// TLS certificate chain (PEM): serve HTTPS (with --tls-key).
    #[arg(long, env = "SCATTER_ROOT_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of --tls-cert.
    #[arg(long, env = "SCATTER_ROOT_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// API keys: one per line with its scopes (`KEY search,write,admin`); requests carry
    /// `Authorization: Bearer KEY`. Without it every endpoint is open (a warning is logged).
    #[arg(long, env = "SCATTER_ROOT_API_KEY_FILE")]
    api_key_file: Option<PathBuf>,
    /// Most searches in flight at once; one more is refused at once with 429 and
    /// Retry-After (load shedding: admitted searches keep their latency under overload).
    #[arg(long, env = "SCATTER_ROOT_MAX_CONCURRENT_SEARCHES", default_value_t = scatter_root::config::DEFAULT_MAX_CONCURRENT_SEARCHES)]
    max_concurrent_searches: usize,
    /// Query-and-fetch (one round trip less) when (from + size) × shards is at most this;
    /// 0: always fetch the final page in a separate phase.
    #[arg(long, env = "SCATTER_ROOT_FUSE_FETCH_MAX_DOCS", default_value_t = 100)]
    fuse_fetch_max_docs: usize,
    /// Hold each shard's whole term dictionary (document frequencies) when it has at most
    /// this many terms, so queries need no statistics round trip; 0: never.
    #[arg(long, env = "SCATTER_ROOT_STATS_TABLE_MAX_TERMS", default_value_t = scatter_root::query::stats_table::DEFAULT_MAX_TERMS)]
    stats_table_max_terms: u64,
    /// Fewest milliseconds between two downloads of one shard's dictionary (a shard whose
    /// index keeps changing is served by per-query statistics meanwhile).
    #[arg(
        long,
        env = "SCATTER_ROOT_STATS_TABLE_REFRESH_MS",
        default_value_t = 10_000
    )]
    stats_table_refresh_ms: u64,
}

#[derive(Debug, Args)]
struct FaultsArgs {
    #[command(flatten)]
    cluster_tls: crate::cluster_tls_args::ClusterTlsArgs,
    /// The leaf's gRPC address (host:port).
    #[arg(long)]
    leaf: String,
    /// File holding the cluster's shared secret (≥ 16 characters): calls to leaves carry it,
    /// and a leaf given one refuses every call without it. See docs/operations.md.
    #[arg(long, env = "SCATTER_CLUSTER_SECRET_FILE")]
    cluster_secret_file: Option<PathBuf>,
    /// Only show the current settings.
    #[arg(long)]
    show: bool,
    #[command(flatten)]
    faults: FaultArgs,
}

#[derive(Debug, Subcommand)]
enum IndexCommand {
    /// Bulk-load a JSONL corpus into N shard indexes.
    Build(BuildArgs),
    /// Check that a sharded cluster ranks exactly like one index on a set of queries.
    Verify(VerifyArgs),
    /// Stream a JSONL corpus into a live cluster through the root (`POST /documents`).
    Push(PushArgs),
    /// Compare every replica of every shard document by document; exit 1 on any difference.
    CheckReplicas(CheckReplicasArgs),
}

#[derive(Debug, Args)]
struct CheckReplicasArgs {
    /// Root URL (http://host:port).
    #[arg(long)]
    target: String,
    /// Print the root's whole JSON answer instead of the summary.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct PushArgs {
    /// JSONL corpus (optionally gzip-compressed), one document per line.
    #[arg(long)]
    input: PathBuf,
    /// Root URL (http://host:port).
    #[arg(long)]
    target: String,
    /// Documents per request.
    #[arg(long, default_value_t = 500)]
    batch_docs: usize,
    /// Largest request body in MB.
    #[arg(long, default_value_t = 8)]
    batch_mb: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Retries of a request that failed (or of its documents no replica committed).
    #[arg(long, default_value_t = 8)]
    retries: u32,
    /// First retry delay in milliseconds (doubles per retry, at most 10 s).
    #[arg(long, default_value_t = 100)]
    backoff_ms: u64,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Write the report as JSON to this file.
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The cluster: a root URL (http://host:port) or a build directory (searched in-process).
    #[arg(long)]
    cluster: String,
    /// The single-index build (`scatter index build --shards 1`) of the same corpus.
    #[arg(long)]
    reference: PathBuf,
    /// Queries: plain text, TSV (id<TAB>query) or JSONL with a "query" field.
    #[arg(long)]
    queries: PathBuf,
    /// Depth compared.
    #[arg(long, default_value_t = 10)]
    k: usize,
}

#[derive(Debug, Args)]
struct BuildArgs {
    /// JSONL input, one document per line (optionally .gz).
    #[arg(long)]
    input: PathBuf,
    /// Number of shards.
    #[arg(long, default_value_t = 1)]
    shards: u32,
    /// Output directory: gets manifest.json and shard-0 .. shard-{N-1}.
    #[arg(long)]
    out: PathBuf,
    /// Schema file (TOML or JSON); default: inferred from the documents, printed and saved as
    /// OUT/schema.toml.
    #[arg(long)]
    schema: Option<PathBuf>,
    /// Indexing memory budget over all shards, in MB.
    #[arg(long, default_value_t = 256)]
    memory_mb: usize,
    /// Fail on the first bad line instead of skipping it.
    #[arg(long)]
    strict: bool,
    /// Replace an existing build in --out.
    #[arg(long)]
    force: bool,
    /// When --out already holds a finished build (its manifest.json), keep it and succeed
    /// without reading the input (a container's init step: a restart never drops live
    /// writes); an unfinished build is redone.
    #[arg(long, conflicts_with = "force")]
    keep_existing: bool,
    /// Do not draw a progress bar.
    #[arg(long)]
    no_progress: bool,
}

/// Entry point: runs the command, prints any error, maps it to the exit code.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cmd = match crate::config_file::apply(Cli::command(), &args) {
        Ok(cmd) => cmd,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let cli = match Cli::from_arg_matches(&cmd.get_matches_from(args)) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    init_tracing(&cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SCATTER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().with_current_span(true).init();
    } else {
        builder.init();
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Index(IndexCommand::Build(args)) => index_build(args),
        Command::Index(IndexCommand::Verify(args)) => runtime()?.block_on(index_verify(args)),
        Command::Index(IndexCommand::CheckReplicas(args)) => {
            runtime()?.block_on(index_check_replicas(args))
        }
        Command::Index(IndexCommand::Push(args)) => runtime()?.block_on(index_push(args)),
        Command::Leaf(args) => runtime_with(args.worker_threads)?.block_on(leaf(args)),
        Command::Root(args) => runtime_with(args.worker_threads)?.block_on(root(args)),
        Command::Up(args) => runtime()?.block_on(crate::up::up(args)),
        Command::Bench(args) => runtime()?.block_on(crate::bench::run(args)),
        Command::Faults(args) => runtime()?.block_on(faults(args)),
        Command::Certs(args) => crate::cluster_tls_args::certs(&args),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    runtime_with(None)
}

/// A multi-threaded runtime with `workers` worker threads (default: one per core).
fn runtime_with(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        anyhow::ensure!(n >= 1, "--worker-threads must be at least 1");
        builder.worker_threads(n);
    }
    Ok(builder.enable_all().build()?)
}

fn index_build(args: BuildArgs) -> anyhow::Result<()> {
    let manifest = args.out.join(scatter_core::manifest::MANIFEST_FILE);
    if args.keep_existing && manifest.exists() {
        println!(
            "{} holds a build: kept (--keep-existing)",
            args.out.display()
        );
        return Ok(());
    }
    let schema = match &args.schema {
        Some(path) => ScatterSchema::from_file(path)?,
        None => inferred_schema(&args.input, &args.out)?,
    };
    let report = scatter_index_tools::build(&BuildOptions {
        input: args.input,
        shards: args.shards,
        out: args.out.clone(),
        schema,
        memory_mb: args.memory_mb,
        strict: args.strict,
        force: args.force || args.keep_existing,
        progress: !args.no_progress,
    })?;
    print!("{report}");
    println!("wrote {}", args.out.join("manifest.json").display());
    Ok(())
}

async fn index_verify(args: VerifyArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.k >= 1 && args.k <= 1000,
        "--k must be between 1 and 1000"
    );
    let report = verify(&VerifyOptions {
        cluster: args.cluster,
        reference: args.reference,
        queries: args.queries,
        k: args.k,
    })
    .await?;
    print!("{report}");
    anyhow::ensure!(
        report.all_identical(),
        "{} queries rank differently",
        report.verdicts.len() - report.identical()
    );
    Ok(())
}

async fn index_check_replicas(args: CheckReplicasArgs) -> anyhow::Result<()> {
    let report = scatter_index_tools::check_replicas::check_replicas(&args.target).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.body)?);
    } else {
        print!("{}", report.summary());
    }
    anyhow::ensure!(report.consistent(), "replicas differ");
    Ok(())
}

async fn index_push(args: PushArgs) -> anyhow::Result<()> {
    let mut opts = scatter_index_tools::PushOptions::new(args.input, args.target);
    opts.batch_docs = args.batch_docs.max(1);
    opts.batch_bytes = args.batch_mb.max(1) << 20;
    opts.concurrency = args.concurrency.max(1);
    opts.retries = args.retries;
    opts.backoff = Duration::from_millis(args.backoff_ms);
    opts.progress = !args.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = scatter_index_tools::push(&opts).await?;
    print!("{report}");
    if let Some(path) = args.report {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    anyhow::ensure!(
        report.failed == 0,
        "{} documents were not acknowledged",
        report.failed
    );
    Ok(())
}

async fn faults(args: FaultsArgs) -> anyhow::Result<()> {
    load_cluster_secret(args.cluster_secret_file.as_deref())?;
    args.cluster_tls.load()?;
    let channel = scatter_proto::cluster_tls::endpoint(&args.leaf)?
        .connect()
        .await
        .with_context(|| format!("connecting to leaf {}", args.leaf))?;
    let mut client = scatter_proto::cluster_auth::client(channel);
    let mut settings = args.faults.settings();
    settings.set = !args.show;
    let now = client.set_faults(settings).await?.into_inner();
    println!(
        "leaf {}: delay {} ms on {:.4} of data calls, errors on {:.4}",
        args.leaf, now.delay_ms, now.delay_rate, now.error_rate
    );
    Ok(())
}

/// Warns when calls inside the cluster are plain on an address others can reach.
fn warn_plain(tls: &crate::cluster_tls_args::ClusterTlsArgs, listen: std::net::SocketAddr) {
    if !tls.given() && !listen.ip().is_loopback() {
        tracing::warn!(
            "no --cluster-ca: calls between roots and leaves are plain and unauthenticated on \
             {listen} (make certificates with `scatter certs`; docs/operations.md, Security)"
        );
    }
}

/// Sets the process's cluster secret from `path`, if given.
fn load_cluster_secret(path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let Some(path) = path else { return Ok(()) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading cluster secret {}", path.display()))?;
    scatter_proto::cluster_auth::set_secret(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

async fn leaf(args: LeafArgs) -> anyhow::Result<()> {
    load_cluster_secret(args.cluster_secret_file.as_deref())?;
    args.cluster_tls.load()?;
    warn_plain(&args.cluster_tls, args.listen);
    // One process per shard directory, held until this process ends.
    let _locks = args
        .index
        .iter()
        .map(|dir| crate::dir_lock::lock(dir))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut config = LeafConfig::new(args.index.clone(), args.listen);
    config.faults = args.faults.settings();
    config.metrics_listen = args.metrics_listen;
    config.create = args.create_meta()?;
    config.max_write_queue_bytes = args.max_write_queue_mb.max(1) << 20;
    config.tombstone_retention = std::time::Duration::from_secs(args.tombstone_retention_secs);
    let bound = BoundLeaf::bind(&config).await?;
    let node = bound.node();
    let shard = node.any();
    let dirs: Vec<String> = args.index.iter().map(|p| p.display().to_string()).collect();
    println!(
        "listening on {} (shards {:?} of {}, {})",
        bound.local_addr(),
        node.ids(),
        shard.meta().num_shards,
        dirs.join(", ")
    );
    bound.serve(shutdown_signal()).await
}

async fn root(args: RootArgs) -> anyhow::Result<()> {
    args.cluster_tls.load()?;
    load_cluster_secret(args.cluster_secret_file.as_deref())?;
    let shards = match &args.cluster {
        Some(path) => ClusterFile::load(path)?.shards,
        None if !args.nodes.is_empty() => crate::node_discovery::discover(&args.nodes).await?,
        None => {
            let lists: Vec<Vec<String>> = args.shards.iter().map(|s| parse_shard_flag(s)).collect();
            crate::node_discovery::check_lists(&lists).await?;
            lists
        }
    };
    let shards = args.local_shards.start(shards, shutdown_signal()).await?;
    let mut config = RootConfig::new(args.listen, shards);
    config.default_timeout = Duration::from_millis(args.timeout_ms);
    config.max_timeout = Duration::from_millis(args.max_timeout_ms);
    config.probe_interval = Duration::from_millis(args.probe_interval_ms.max(10));
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.hedge_budget),
        "--hedge-budget must be between 0 and 1"
    );
    config.result_cache_bytes = args.result_cache_mb << 20;
    config.write_timeout = Duration::from_millis(args.write_timeout_ms.max(1));
    config.max_bulk_bytes = args.max_bulk_mb.max(1) << 20;
    config.max_ingest_bytes = args.max_ingest_mb.max(1) << 20;
    config.fuse_fetch_max_docs = args.fuse_fetch_max_docs;
    config.max_concurrent_searches = args.max_concurrent_searches.max(1);
    args.front_door.apply(&mut config);
    config.tls = args.tls_cert.clone().zip(args.tls_key.clone());
    match &args.api_key_file {
        Some(path) => config.api_keys = Some(scatter_root::api::auth::ApiKeys::load(path)?),
        None => tracing::warn!(
            "no --api-key-file: the HTTP API is open to anyone who can reach {}",
            args.listen
        ),
    }
    config.stats_table_max_terms = args.stats_table_max_terms;
    config.stats_table_min_interval = Duration::from_millis(args.stats_table_refresh_ms);
    config.hedge = scatter_root::cluster::hedge::HedgeConfig {
        enabled: !args.no_hedge,
        budget_ratio: args.hedge_budget,
        min_delay: Duration::from_secs_f64(args.hedge_min_delay_ms.max(0.0) / 1000.0),
    };
    let bound = BoundRoot::bind(config).await.context("starting root")?;
    println!("listening on {}", bound.local_addr());
    bound.serve(shutdown_signal()).await
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Without `--schema`: the schema inferred from `input`'s documents (see
/// `scatter_index_tools::infer`), printed and saved as `OUT/schema.toml` to edit.
pub fn inferred_schema(
    input: &std::path::Path,
    out: &std::path::Path,
) -> anyhow::Result<ScatterSchema> {
    let inferred = scatter_index_tools::infer::infer(input)?;
    std::fs::create_dir_all(out)?;
    let saved = out.join("schema.toml");
    std::fs::write(&saved, inferred.to_string())?;
    println!(
        "schema inferred from {} documents (saved as {}; edit it and rebuild with --schema):",
        inferred.sampled,
        saved.display()
    );
    print!("{inferred}");
    Ok(inferred.schema)
}
