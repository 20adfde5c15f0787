//! Test harness: real `scatter` processes (leaves and roots) on loopback ports, real indexes
//! built from the bundled Debian sample, and an HTTP client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use scatter_core::ScatterSchema;
use scatter_index_tools::BuildOptions;
use serde_json::{json, Value};

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The bundled sample corpus.
pub fn sample_corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/debian-sample.jsonl.gz")
}

/// The schema of the bundled sample.
pub fn sample_schema() -> ScatterSchema {
    ScatterSchema::from_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/debian-schema.toml"))
        .unwrap()
}

/// The test queries (real package-search queries of every kind the parser accepts).
pub fn queries() -> Vec<String> {
    let text = include_str!("../data/queries.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Builds `input` into `shards` shards under `out`.
pub fn build(input: &Path, shards: u32, out: &Path) -> scatter_index_tools::BuildReport {
    scatter_index_tools::build(&BuildOptions {
        input: input.to_path_buf(),
        shards,
        out: out.to_path_buf(),
        schema: sample_schema(),
        memory_mb: 64,
        strict: false,
        force: false,
        progress: false,
    })
    .unwrap()
}

/// A running `scatter` process that printed `listening on ADDR`.
pub struct Proc {
    child: Child,
    /// The bound address.
    pub addr: String,
    _stdout: BufReader<ChildStdout>,
}

impl Proc {
    /// Starts `scatter ARGS` and waits for its `listening on` line.
    pub fn start(args: &[&str]) -> Proc {
        Proc::start_via(&[], args)
    }

    /// Starts `PREFIX... scatter ARGS` (e.g. `ip netns exec NS`) and waits for its
    /// `listening on` line.
    pub fn start_via(prefix: &[&str], args: &[&str]) -> Proc {
        let scatter = env!("CARGO_BIN_EXE_scatter");
        let (program, rest): (&str, Vec<&str>) = match prefix.split_first() {
            Some((first, more)) => (first, more.iter().copied().chain([scatter]).collect()),
            None => (scatter, Vec::new()),
        };
        let mut child = Command::new(program)
            .args(rest)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn scatter");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read listening line");
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        Proc {
            child,
            addr,
            _stdout: stdout,
        }
    }

    /// Starts a leaf on shard directory `dir`.
    pub fn leaf(dir: &Path) -> Proc {
        Proc::leaf_with(dir, &[])
    }

    /// Starts a leaf on shard directory `dir` with extra arguments.
    pub fn leaf_with(dir: &Path, extra: &[String]) -> Proc {
        let mut args = vec![
            "leaf",
            "--index",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ];
        args.extend(extra.iter().map(String::as_str));
        Proc::start(&args)
    }

    /// Starts a leaf on shard directory `dir` listening on `listen`, with one environment
    /// setting (`NAME=VALUE`, e.g. a testing aid's fault).
    pub fn leaf_env(dir: &Path, listen: &str, env: &str) -> Proc {
        let args = ["leaf", "--index", dir.to_str().unwrap(), "--listen", listen];
        Proc::start_via(&["env", env], &args)
    }

    /// Starts a leaf node serving every shard directory in `dirs`.
    pub fn node(dirs: &[PathBuf]) -> Proc {
        let mut args = vec!["leaf".to_string(), "--listen".into(), "127.0.0.1:0".into()];
        for d in dirs {
            args.push("--index".into());
            args.push(d.to_str().unwrap().into());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Proc::start(&refs)
    }

    /// Starts a root over `shards` (replica addresses per shard).
    pub fn root(shards: &[Vec<String>], extra: &[&str]) -> Proc {
        let mut args = vec!["root".to_string(), "--listen".into(), "127.0.0.1:0".into()];
        for replicas in shards {
            args.push("--shard".into());
            args.push(replicas.join(","));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Proc::start(&refs)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`KILL`, `STOP`, `CONT`, ...) to the process.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{sig} failed");
    }

    /// kill -9 and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        self.kill();
    }
}

/// A cluster of real processes: `replicas` leaves per shard (each on its own copy of the
/// shard) and one root.
pub struct Cluster {
    /// Leaves: `leaves[shard][replica]`.
    pub leaves: Vec<Vec<Proc>>,
    /// Index directory of each leaf: `paths[shard][replica]`.
    pub paths: Vec<Vec<PathBuf>>,
    /// The root.
    pub root: Proc,
    /// HTTP client.
    pub http: reqwest::Client,
}

impl Cluster {
    /// Starts leaves over the build in `dir` and a root over them.
    pub async fn start(dir: &Path, replicas: u32, root_args: &[&str]) -> Cluster {
        Cluster::start_with(dir, replicas, root_args, |_, _| Vec::new()).await
    }

    /// Like [`Cluster::start`], with `leaf_args(shard, replica)` added to each leaf.
    pub async fn start_with(
        dir: &Path,
        replicas: u32,
        root_args: &[&str],
        leaf_args: impl Fn(u32, u32) -> Vec<String>,
    ) -> Cluster {
        let manifest = scatter_core::Manifest::load(dir).unwrap();
        let mut leaves = Vec::new();
        let mut paths = Vec::new();
        for k in 0..manifest.num_shards {
            let src = manifest.shard_path(dir, k);
            let mut group = Vec::new();
            let mut group_paths = Vec::new();
            for r in 0..replicas {
                let path = if r == 0 {
                    src.clone()
                } else {
                    let copy = dir.join(format!("replica-{r}")).join(format!("shard-{k}"));
                    copy_dir(&src, &copy);
                    copy
                };
                group.push(Proc::leaf_with(&path, &leaf_args(k, r)));
                group_paths.push(path);
            }
            leaves.push(group);
            paths.push(group_paths);
        }
        let addrs: Vec<Vec<String>> = leaves
            .iter()
            .map(|g| g.iter().map(|p| p.addr.clone()).collect())
            .collect();
        let root = Proc::root(&addrs, root_args);
        let cluster = Cluster {
            leaves,
            paths,
            root,
            http: reqwest::Client::new(),
        };
        cluster.wait_ready().await;
        cluster
    }

    /// One leaf node serving every shard of the build in `dir`, and a root over it.
    pub async fn start_node(dir: &Path, root_args: &[&str]) -> Cluster {
        let manifest = scatter_core::Manifest::load(dir).unwrap();
        let paths: Vec<PathBuf> = (0..manifest.num_shards)
            .map(|k| manifest.shard_path(dir, k))
            .collect();
        let node = Proc::node(&paths);
        let addrs: Vec<Vec<String>> = paths.iter().map(|_| vec![node.addr.clone()]).collect();
        let root = Proc::root(&addrs, root_args);
        let cluster = Cluster {
            leaves: vec![vec![node]],
            paths: vec![paths],
            root,
            http: reqwest::Client::new(),
        };
        cluster.wait_ready().await;
        cluster
    }

    /// `POST /search` with this JSON body: (status, body).
    pub async fn post_search(&self, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url("/search"))
            .json(body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// Replica addresses per shard.
    pub fn leaf_addrs(&self) -> Vec<Vec<String>> {
        self.leaves
            .iter()
            .map(|g| g.iter().map(|p| p.addr.clone()).collect())
            .collect()
    }

    /// kill -9 leaf `r` of shard `k`.
    pub fn kill_leaf(&mut self, k: usize, r: usize) {
        self.leaves[k][r].kill();
    }

    /// Starts leaf `r` of shard `k` again, on its directory and its old address.
    pub fn restart_leaf(&mut self, k: usize, r: usize) {
        self.restart_leaf_with(k, r, &[]);
    }

    /// [`Cluster::restart_leaf`] with extra leaf arguments.
    pub fn restart_leaf_with(&mut self, k: usize, r: usize, extra: &[String]) {
        let addr = self.leaves[k][r].addr.clone();
        self.leaves[k][r].kill();
        let path = self.paths[k][r].clone();
        let mut args = vec!["leaf", "--index", path.to_str().unwrap(), "--listen", &addr];
        args.extend(extra.iter().map(String::as_str));
        self.leaves[k][r] = Proc::start(&args);
    }

    /// `POST /documents` with an NDJSON body: (status, body).
    pub async fn post_documents(&self, ndjson: String) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url("/documents"))
            .header("content-type", "application/x-ndjson")
            .body(ndjson)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// `DELETE /documents/{id}`: (status, body).
    pub async fn delete_document(&self, id: &str) -> (u16, Value) {
        let resp = self.http.delete(self.url(&format!("/documents/{id}")));
        let resp = resp.send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// `GET /documents/{id}`: (status, body).
    pub async fn get_document(&self, id: &str) -> (u16, Value) {
        let resp = self.http.get(self.url(&format!("/documents/{id}")));
        let resp = resp.send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// `/cluster` state of replica `r` of shard `k`.
    pub async fn replica_state(&self, k: usize, r: usize) -> Value {
        self.state().await["shards"][k]["replicas"][r]["state"].clone()
    }

    /// `GET /cluster`.
    pub async fn state(&self) -> Value {
        self.http
            .get(self.url("/cluster"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Base URL of the root.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.root.addr, path)
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(r) = self.http.get(self.url("/readyz")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("cluster did not become ready");
    }

    /// `GET /search` with these query parameters: (status, body).
    pub async fn search(&self, params: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .http
            .get(self.url("/search"))
            .query(params)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }
}

/// Copies the files of a shard directory (a replica of its own).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// `GET url?params` as JSON.
pub async fn get_json(http: &reqwest::Client, url: &str, params: &[(&str, &str)]) -> Value {
    let resp = http.get(url).query(params).send().await.unwrap();
    resp.json().await.unwrap()
}

/// Ids of the hits of a search response.
pub fn hit_ids(body: &Value) -> Vec<String> {
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect()
}

/// The bundled sample with derived fast fields — `words` (u64: words in the body),
/// `released` (date: a deterministic day in 2000–2023 drawn from the id), `rating` (f64),
/// `offset` (i64), `team` (keyword: the maintainer, 880 values) and `tag` (keyword, several
/// per document: the Debian tags) — built into `shards` shards under `out`.
pub fn build_with_numbers(dir: &std::path::Path, shards: u32, out: &std::path::Path) {
    use std::io::{BufRead, Write};
    let corpus = dir.join("numbers.jsonl");
    if !corpus.exists() {
        let input = flate2::read::GzDecoder::new(std::fs::File::open(sample_corpus()).unwrap());
        let mut w = std::fs::File::create(&corpus).unwrap();
        for line in std::io::BufReader::new(input).lines() {
            let mut doc: Value = serde_json::from_str(&line.unwrap()).unwrap();
            let words = doc["body"]
                .as_str()
                .unwrap_or("")
                .split_whitespace()
                .count();
            let id = doc["id"].as_str().unwrap().to_string();
            let day = xxhash_rust::xxh3::xxh3_64(id.as_bytes()) % (24 * 365);
            doc["words"] = json!(words);
            doc["released"] = json!(946_684_800 + day * 86_400); // from 2000-01-01
            doc["rating"] = json!((day % 1000) as f64 / 100.0);
            doc["offset"] = json!(words as i64 - 50);
            doc["team"] = doc["maintainer"].clone();
            let tags: Vec<&str> = doc["tags"]
                .as_str()
                .unwrap_or("")
                .split(", ")
                .filter(|t| !t.is_empty())
                .collect();
            doc["tag"] = json!(tags);
            writeln!(w, "{doc}").unwrap();
        }
    }
    let mut schema = sample_schema();
    let extra: scatter_core::ScatterSchema = toml::from_str(
        r#"
        default_fields = ["title"]
        [[fields]]
        name = "words"
        type = "u64"
        fast = true
        [[fields]]
        name = "released"
        type = "date"
        fast = true
        [[fields]]
        name = "rating"
        type = "f64"
        fast = true
        [[fields]]
        name = "offset"
        type = "i64"
        fast = true
        [[fields]]
        name = "team"
        type = "keyword"
        fast = true
        [[fields]]
        name = "tag"
        type = "keyword"
        fast = true
        "#,
    )
    .unwrap();
    schema.fields.extend(extra.fields);
    scatter_index_tools::build(&scatter_index_tools::BuildOptions {
        input: corpus,
        shards,
        out: out.to_path_buf(),
        schema,
        memory_mb: 64,
        strict: false,
        force: false,
        progress: false,
    })
    .unwrap();
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
