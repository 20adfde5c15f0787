//! `scatter bench` against a real local root: open-loop runs send the offered load, the report
//! and plot are written, the in-process baseline and closed-loop mode work.

mod common;

use std::path::Path;
use std::process::Command;

use common::{build, sample_corpus, Cluster};
use serde_json::Value;

fn scatter(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_scatter"))
        .args(args)
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reports_plots_and_baselines() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 2, &dir.path().join("s2"));
    build(&sample_corpus(), 1, &dir.path().join("s1"));
    let c = Cluster::start(&dir.path().join("s2"), 1, &[]).await;
    let url = format!("http://{}", c.root.addr);
    let queries = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/queries.txt");
    let (out, plot) = (dir.path().join("r.json"), dir.path().join("p.svg"));
    let run = scatter(&[
        "bench",
        "--target",
        &url,
        "--queries",
        s(&queries),
        "--rate",
        "50",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--connections",
        "8",
        "--shuffle",
        "3",
        "--baseline-index",
        s(&dir.path().join("s1")),
        "--out",
        s(&out),
        "--plot",
        s(&plot),
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("ratio target/baseline"), "{stdout}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let r = &report["runs"][0];
    assert_eq!(r["mode"], "open");
    let requests = r["requests"].as_u64().unwrap();
    assert!(
        (45..=55).contains(&requests),
        "{requests} requests at 50/s for 1s"
    );
    assert_eq!(r["outcomes"]["ok"].as_u64().unwrap(), requests);
    assert!(
        r["outcomes"]["errors"].as_object().unwrap().is_empty(),
        "{r}"
    );
    let lat = &r["latency"];
    let p = |k: &str| lat[k].as_u64().unwrap();
    assert!(p("p50_us") > 0 && p("p50_us") <= p("p99_us") && p("p99_us") <= p("max_us"));
    assert!(r["distribution"].as_array().unwrap().len() > 10);
    // The tool's own launch lag is reported, and it is part of (so below) the latencies.
    let lag = &r["send_lag"];
    assert!(lag["p50_us"].as_u64().unwrap() <= p("p50_us"), "{r}");
    assert!(
        stdout.contains("send lag of the load generator"),
        "{stdout}"
    );
    assert_eq!(report["baseline"].as_array().unwrap().len(), 1);
    assert!(report["ratios"][0]["p50"].as_f64().unwrap() > 0.0);
    assert!(std::fs::read_to_string(&plot).unwrap().contains("<svg"));

    let cmp = dir.path().join("cmp.svg");
    let overlay = scatter(&["bench", "plot", s(&out), s(&out), "-o", s(&cmp)]);
    assert!(
        overlay.status.success(),
        "{}",
        String::from_utf8_lossy(&overlay.stderr)
    );
    assert!(std::fs::read_to_string(&cmp).unwrap().contains("<svg"));

    let closed = scatter(&[
        "bench",
        "--target",
        &url,
        "--queries",
        s(&queries),
        "--rate",
        "max",
        "--connections",
        "2",
        "--duration",
        "500ms",
        "--warmup",
        "0s",
        "--sweep",
        "max",
    ]);
    let stdout = String::from_utf8_lossy(&closed.stdout);
    assert!(closed.status.success(), "{stdout}");
    assert!(stdout.contains("closed"), "{stdout}");

    // Errors are counted by kind, not hidden: a dead target.
    drop(c);
    let dead = scatter(&[
        "bench",
        "--target",
        &url,
        "--queries",
        s(&queries),
        "--rate",
        "20",
        "--duration",
        "500ms",
        "--warmup",
        "0s",
        "--out",
        s(&out),
    ]);
    assert!(dead.status.success());
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let errors = report["runs"][0]["outcomes"]["errors"].as_object().unwrap();
    assert!(
        errors.get("connect").and_then(Value::as_u64).unwrap_or(0) >= 8,
        "{errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_compares_two_endpoints_with_server_cpu() {
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 2, &dir.path().join("s2"));
    build(&sample_corpus(), 1, &dir.path().join("s1"));
    let two = Cluster::start(&dir.path().join("s2"), 1, &[]).await;
    let one = Cluster::start(&dir.path().join("s1"), 1, &[]).await;
    let queries = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/queries.txt");
    let out = dir.path().join("cmp.json");
    let leaf_pids: Vec<String> = two
        .leaves
        .iter()
        .flatten()
        .map(|p| p.pid().to_string())
        .collect();
    let mut args = vec![
        "bench".to_string(),
        "--target".into(),
        format!("http://{}", two.root.addr),
        "--queries".into(),
        s(&queries).into(),
        "--rate".into(),
        "40".into(),
        "--duration".into(),
        "1s".into(),
        "--warmup".into(),
        "200ms".into(),
        "--compare".into(),
        format!("http://{}/search?size=10&q={{q}}", one.root.addr),
        "--compare-cpu-pid".into(),
        one.root.pid().to_string(),
        "--cpu-metrics".into(),
        format!("http://{}/metrics", two.root.addr),
        "--out".into(),
        s(&out).into(),
    ];
    for pid in &leaf_pids {
        args.push("--cpu-pid".into());
        args.push(pid.clone());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = scatter(&refs);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("ratio target/compare"), "{stdout}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    for side in ["runs", "compared"] {
        let r = &report[side][0];
        assert!(r["outcomes"]["ok"].as_u64().unwrap() >= 30, "{side}: {r}");
        assert!(
            r["outcomes"]["errors"].as_object().unwrap().is_empty(),
            "{r}"
        );
        assert!(r["server_cpu_s"].as_f64().unwrap() > 0.0, "{side}: {r}");
    }
}
