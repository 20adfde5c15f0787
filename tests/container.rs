//! The container image and `docker-compose.yml`, for real: the image is built from the
//! repository's Dockerfile (`.ci/container-image.sh`: a base imported from Debian's packages,
//! the `prebuilt` stage with this build's binary), the compose cluster (two leaf nodes, each a
//! replica of both shards, and a root; mutual TLS) starts on the bundled corpus, and the test
//! searches it, writes to it, kills a leaf container (searches fail over, a write is
//! acknowledged by the live replica), starts it again (it is repaired: the replicas agree), then
//! kills the other leaf: every acknowledged document is still found.
//!
//! Needs Docker and docker-compose (or `docker compose`); without them the test says so and
//! passes, unless `SCATTER_REQUIRE_DOCKER=1` (CI sets it).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

const IMAGE: &str = "scatter:compose-test";

/// The compose command: `docker compose` when the plugin is there, else `docker-compose`.
fn compose_command() -> Option<Vec<&'static str>> {
    let works = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !works("docker", &["info"]) {
        return None;
    }
    if works("docker", &["compose", "version"]) {
        return Some(vec!["docker", "compose"]);
    }
    works("docker-compose", &["version"]).then(|| vec!["docker-compose"])
}

/// A compose project, taken down with its volumes when dropped.
struct Project {
    compose: Vec<&'static str>,
    name: String,
    port: u16,
}

impl Project {
    fn run(&self, args: &[&str]) -> String {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(self.compose[0])
            .args(&self.compose[1..])
            .args(["-f", "docker-compose.yml", "-p", &self.name])
            .args(args)
            .current_dir(root)
            .env("SCATTER_IMAGE", IMAGE)
            .env("SCATTER_PORT", self.port.to_string())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "compose {args:?}: {text}");
        text
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new(self.compose[0])
                .args(&self.compose[1..])
                .args(["-p", &self.name, "logs", "--tail", "30"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status();
        }
        let _ = Command::new(self.compose[0])
            .args(&self.compose[1..])
            .args(["-p", &self.name, "down", "-v", "-t", "2"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("SCATTER_IMAGE", IMAGE)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `GET url` until `ok` holds for the JSON answer (up to ~60 s); the last answer.
async fn until(http: &reqwest::Client, url: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..240 {
        if let Ok(answer) = http.get(url).send().await {
            if let Ok(body) = answer.json::<Value>().await {
                if ok(&body) {
                    return body;
                }
                last = body;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{url} never answered as wanted; last: {last}");
}

async fn write(http: &reqwest::Client, base: &str, line: &str) -> Value {
    http.post(format!("{base}/documents"))
        .header("content-type", "application/x-ndjson")
        .body(format!("{line}\n"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn replicas_agree(base: &str) -> bool {
    let out = Command::new(env!("CARGO_BIN_EXE_scatter"))
        .args(["index", "check-replicas", "--target", base])
        .output()
        .unwrap();
    out.status.success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_runs_a_compose_cluster() {
    let Some(compose) = compose_command() else {
        assert!(
            std::env::var("SCATTER_REQUIRE_DOCKER").is_err(),
            "Docker and compose are required (SCATTER_REQUIRE_DOCKER is set)"
        );
        eprintln!("SKIPPED: no Docker engine or compose tool");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = Command::new("bash")
        .arg(root.join(".ci/container-image.sh"))
        .args([env!("CARGO_BIN_EXE_scatter"), IMAGE])
        .status()
        .unwrap();
    assert!(built.success(), "the image did not build");

    let project = Project {
        compose,
        name: format!("scatter-test-{}", std::process::id()),
        port: common::free_port(),
    };
    project.run(&["up", "-d"]);
    let base = format!("http://127.0.0.1:{}", project.port);
    let http = reqwest::Client::new();
    let complete = |b: &Value| b["shards"]["successful"] == 2 && b["partial"] == false;

    // The bundled corpus, both shards answering.
    let search = format!("{base}/search?q=web+server&size=3");
    let body = until(&http, &search, complete).await;
    assert_eq!(body["total_hits"], 695, "{body}");

    // A write reaches both replicas.
    let a = write(
        &http,
        &base,
        r#"{"id":"c-one","title":"containerized frobnicator"}"#,
    )
    .await;
    assert_eq!(a["indexed"], 1, "{a}");
    let frob = format!("{base}/search?q=frobnicator&size=10");
    let has = |b: &Value, id: &str| common::hit_ids(b).iter().any(|h| h == id);
    until(&http, &frob, |b| complete(b) && has(b, "c-one")).await;

    // One leaf killed: searches fail over and stay complete; a write is acknowledged by the
    // live replica.
    project.run(&["kill", "leaf-a"]);
    let body = until(&http, &frob, complete).await;
    assert!(has(&body, "c-one"), "{body}");
    let b = write(
        &http,
        &base,
        r#"{"id":"c-two","title":"second frobnicator"}"#,
    )
    .await;
    assert_eq!(b["indexed"], 1, "{b}");

    // Back again: it is repaired before it counts, and the replicas agree.
    project.run(&["start", "leaf-a"]);
    let mut agreed = false;
    for _ in 0..120 {
        if replicas_agree(&base) {
            agreed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(agreed, "the replicas never agreed after leaf-a came back");

    // The other leaf killed: the repaired one serves every acknowledged document.
    project.run(&["kill", "leaf-b"]);
    let body = until(&http, &frob, complete).await;
    assert!(has(&body, "c-one") && has(&body, "c-two"), "{body}");
    let body = until(&http, &search, complete).await;
    assert_eq!(body["total_hits"], 695, "{body}");
}
