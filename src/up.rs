//! `scatter up`: a whole cluster on this machine with one command. Builds the bundled sample
//! corpus (or `--input`) into shards if the data directory holds no build yet, gives every
//! replica its own copy of its shard, starts the leaves and a root on real loopback sockets,
//! and stops them all cleanly on Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use scatter_core::manifest::{shard_dir_name, MANIFEST_FILE};
use scatter_core::{Manifest, ScatterSchema};
use scatter_index_tools::BuildOptions;
use scatter_leaf::server::BoundLeaf;
use scatter_leaf::LeafConfig;
use scatter_root::{BoundRoot, RootConfig};
use tokio::sync::watch;

use crate::up_source::{self, BuildSource};

/// The bundled sample corpus: 5,326 Debian package descriptions (every 12th package of
/// Debian bookworm), gzip-compressed JSONL.
const SAMPLE_CORPUS: &[u8] = include_bytes!("../data/debian-sample.jsonl.gz");
/// Schema of the bundled sample (title, body, section, version, maintainer, homepage, tags).
const SAMPLE_SCHEMA: &str = include_str!("../data/debian-schema.toml");

/// Arguments of `scatter up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where the indexes live; built there on first start, reused afterwards.
    #[arg(long, default_value = ".scatter/up")]
    data_dir: PathBuf,
    /// Corpus to build from (JSONL, optionally .gz); default: the bundled Debian sample, or
    /// with --schema alone an empty cluster (fill it with `POST /documents`).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Schema file for the build (TOML or JSON); without it, the schema is inferred from the
    /// input's documents and saved as DATA_DIR/schema.toml.
    #[arg(long)]
    schema: Option<PathBuf>,
    /// Number of shards of a new build.
    #[arg(long, default_value_t = 4)]
    shards: u32,
    /// Replicas per shard.
    #[arg(long, default_value_t = 2)]
    replicas: u32,
    /// Leaf nodes (processes' worth of leaves, here tasks of this process) the replicas are
    /// spread over: replica r of shard k goes to node (k + r) mod N, so no node holds two
    /// replicas of a shard. Default: as many nodes as replicas (2 nodes for 4 shards × 2
    /// replicas, each serving 4 shards); shards × replicas gives one shard per node.
    #[arg(long)]
    nodes: Option<u32>,
    /// HTTP address of the root.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// First leaf port (leaves take consecutive ports); 0: any free ports.
    #[arg(long, default_value_t = 0)]
    leaf_base_port: u16,
    /// Rebuild the indexes even if the data directory holds a build.
    #[arg(long)]
    rebuild: bool,
    /// Faults injected into every node holding a first replica of a shard.
    #[command(flatten)]
    faults: crate::cli::FaultArgs,
    /// Never hedge (failover on error still happens).
    #[arg(long)]
    no_hedge: bool,
    /// Result cache size of the root in MB (0: no cache).
    #[arg(long, default_value_t = 64)]
    result_cache_mb: usize,
    /// Query-and-fetch when (from + size) × shards is at most this (0: never).
    #[arg(long, default_value_t = 100)]
    fuse_fetch_max_docs: usize,
    /// Largest shard dictionary (terms) the root holds as a statistics table (0: none).
    #[arg(long, default_value_t = scatter_root::query::stats_table::DEFAULT_MAX_TERMS)]
    stats_table_max_terms: u64,
    /// Plain gRPC between the root and the leaves (loopback only) instead of mutual TLS
    /// with certificates made once in DATA_DIR/certs.
    #[arg(long)]
    plain: bool,
}

/// Mutual TLS for the cluster's calls: a CA and a node certificate made once in
/// `DATA_DIR/certs` (`scatter certs`), used by every node of this process.
fn cluster_tls(args: &UpArgs) -> anyhow::Result<()> {
    if args.plain {
        eprintln!("warning: --plain: calls between root and leaves are not authenticated");
        return Ok(());
    }
    let dir = args.data_dir.join("certs");
    if !dir.join("ca.pem").exists() || !dir.join("node-key.pem").exists() {
        crate::cluster_tls_args::certs(&crate::cluster_tls_args::CertsArgs {
            out: dir.clone(),
            nodes: vec!["node".to_string()],
            keep_existing: false,
        })?;
    }
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .with_context(|| format!("reading {}", dir.join(name).display()))
    };
    scatter_proto::cluster_tls::set(&read("ca.pem")?, &read("node.pem")?, &read("node-key.pem")?)
        .map_err(|e| anyhow::anyhow!("cluster TLS: {e}"))?;
    println!(
        "cluster calls use mutual TLS (certificates in {})",
        dir.display()
    );
    Ok(())
}

/// Runs the local cluster until Ctrl-C.
pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.replicas >= 1, "--replicas must be at least 1");
    // One `scatter up` per data directory, held until this process ends.
    let _lock = crate::dir_lock::lock(&args.data_dir)?;
    let manifest = ensure_build(&args).await?;
    cluster_tls(&args)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let nodes = args.nodes.unwrap_or(args.replicas);
    anyhow::ensure!(
        nodes >= args.replicas,
        "--nodes {nodes} cannot hold {} replicas of a shard on different nodes",
        args.replicas
    );
    let mut placed: Vec<Vec<(u32, u32)>> = vec![Vec::new(); nodes as usize];
    for k in 0..manifest.num_shards {
        for r in 0..args.replicas {
            placed[((k + r) % nodes) as usize].push((k, r));
        }
    }
    let mut shards = vec![Vec::new(); manifest.num_shards as usize];
    let mut port = args.leaf_base_port;
    for (n, replicas) in placed.iter().enumerate().filter(|(_, p)| !p.is_empty()) {
        let listen = SocketAddr::from(([127, 0, 0, 1], port));
        if port != 0 {
            port += 1;
        }
        let dirs = replicas
            .iter()
            .map(|&(k, r)| replica_dir(&args.data_dir, &manifest, k, r))
            .collect::<anyhow::Result<_>>()?;
        let mut config = LeafConfig::new(dirs, listen);
        if replicas.iter().any(|&(_, r)| r == 0) {
            config.faults = args.faults.settings();
        }
        let leaf = BoundLeaf::bind(&config).await?;
        let addr = leaf.local_addr().to_string();
        for &(k, _) in replicas {
            shards[k as usize].push(addr.clone());
        }
        let held: Vec<u32> = replicas.iter().map(|(k, _)| *k).collect();
        println!("node {n}: {addr}, shards {held:?}");
        tasks.push(tokio::spawn(leaf.serve(stopped(stop_rx.clone()))));
    }
    let mut config = RootConfig::new(args.listen, shards);
    config.hedge.enabled = !args.no_hedge;
    config.result_cache_bytes = args.result_cache_mb << 20;
    config.fuse_fetch_max_docs = args.fuse_fetch_max_docs;
    config.stats_table_max_terms = args.stats_table_max_terms;
    let root = BoundRoot::bind(config).await?;
    let url = format!("http://{}", root.local_addr());
    tasks.push(tokio::spawn(root.serve(stopped(stop_rx.clone()))));
    println!("root listening on {url}");
    println!("try: curl '{url}/search?q=web+server&size=5'");
    println!("Ctrl-C stops the cluster.");
    crate::cli::shutdown_signal().await;
    println!("stopping...");
    let _ = stop_tx.send(true);
    for task in tasks {
        if let Ok(Err(e)) = task.await {
            eprintln!("warning: {e:#}");
        }
    }
    Ok(())
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Builds the corpus into `data_dir` unless a build is already there.
async fn ensure_build(args: &UpArgs) -> anyhow::Result<Manifest> {
    let dir = &args.data_dir;
    if dir.join(MANIFEST_FILE).exists() && !args.rebuild {
        let built = BuildSource::load(dir);
        up_source::check(
            dir,
            built.as_ref(),
            args.input.as_deref(),
            args.schema.as_deref(),
        )?;
        let manifest = Manifest::load(dir)?;
        println!(
            "using the build in {} ({} shards)",
            dir.display(),
            manifest.num_shards
        );
        return Ok(manifest);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let input = match (&args.input, &args.schema) {
        (Some(path), _) => path.clone(),
        // A schema alone: an empty cluster, ready for `POST /documents`.
        (None, Some(_)) => {
            let path = dir.join("empty.jsonl");
            std::fs::write(&path, b"")?;
            path
        }
        (None, None) => {
            let path = dir.join("debian-sample.jsonl.gz");
            std::fs::write(&path, SAMPLE_CORPUS)?;
            path
        }
    };
    let schema = match (&args.schema, &args.input) {
        (Some(path), _) => ScatterSchema::from_file(path)?,
        (None, Some(input)) => crate::cli::inferred_schema(input, dir)?,
        (None, None) => ScatterSchema::from_toml(SAMPLE_SCHEMA)?,
    };
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir()
            && path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("replica-"))
        {
            std::fs::remove_dir_all(&path)?;
        }
    }
    let opts = BuildOptions {
        input,
        shards: args.shards,
        out: dir.clone(),
        schema,
        memory_mb: 256,
        strict: false,
        force: true,
        progress: true,
    };
    println!("building {} shards in {} ...", args.shards, dir.display());
    let source = BuildSource::of(args.input.as_deref(), args.schema.as_deref())?;
    let report = tokio::task::spawn_blocking(move || scatter_index_tools::build(&opts)).await??;
    print!("{report}");
    source.save(dir)?;
    Manifest::load(dir)
}

/// The directory replica `r` of shard `k` serves: the build itself for replica 0, a copy of
/// it (made on first use) for the others, so that replicas share no files.
fn replica_dir(data_dir: &Path, manifest: &Manifest, k: u32, r: u32) -> anyhow::Result<PathBuf> {
    let source = manifest.shard_path(data_dir, k);
    if r == 0 {
        return Ok(source);
    }
    let target = data_dir
        .join(format!("replica-{r}"))
        .join(shard_dir_name(k));
    if !target.exists() {
        copy_dir(&source, &target)?;
    }
    Ok(target)
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    let tmp = to.with_extension("tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let name = entry.file_name();
            if name != ".tantivy-writer.lock" && name != ".tantivy-meta.lock" {
                std::fs::copy(entry.path(), tmp.join(&name))?;
            }
        }
    }
    std::fs::rename(&tmp, to).with_context(|| format!("copying shard to {}", to.display()))?;
    Ok(())
}
