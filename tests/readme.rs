//! The README's examples (and those of docs/api.md), run as printed against `scatter up` on the
//! bundled corpus, so they cannot go stale: every `sh` block that calls `curl` (and no `scatter`/`cargo`) runs in bash
//! with `localhost:8080` pointed at the live cluster; every `curl` must answer 2xx — except a
//! line marked `# → 4xx`, which must answer that status — and every answer with hits must have
//! some (an example on a field the corpus lacks would silently find nothing). The Python and
//! JavaScript client snippets run too (skipped when `python3`/`node` is missing).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Kills the cluster when dropped.
struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `scatter up` in `dir`; its root address.
fn start_up(dir: &Path) -> (Up, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scatter"))
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("up"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("scatter up ended").unwrap();
        if let Some(url) = line.strip_prefix("root listening on http://") {
            break url.trim().to_string();
        }
    };
    // Keep draining stdout so the cluster never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (Up(child), addr)
}

/// The README's fenced blocks of `lang`, in order.
fn blocks(readme: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_end()) {
            (None, l) if l == format!("```{lang}") => current = Some(String::new()),
            (Some(_), "```") => out.push(current.take().unwrap()),
            (Some(block), l) => {
                block.push_str(l);
                block.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// Bash that runs `block` with every curl checked and its answer kept in `answers/N.json`.
fn checked_script(block: &str, addr: &str, answers: &Path) -> String {
    let mut script = format!(
        r#"set -euo pipefail
n=0
answers={answers}
curl() {{
  n=$((n + 1))
  local want=${{WANT:-2}} code
  code=$(command curl -sS -o "$answers/$n.json" -w '%{{http_code}}' "$@")
  if [[ "$code" != "$want"* ]]; then
    echo "example $n answered $code, wanted ${{want}}xx: curl $*" >&2
    cat "$answers/$n.json" >&2
    exit 1
  fi
}}
"#,
        answers = answers.display()
    );
    // A `# → 4xx` marker applies to the command it ends (which may start lines above, after
    // a line ending in `\`).
    let mut lines: Vec<String> = Vec::new();
    let mut start = 0;
    for line in block.replace("localhost:8080", addr).lines() {
        let continues = lines.last().is_some_and(|l| l.trim_end().ends_with('\\'));
        if !continues {
            start = lines.len();
        }
        match line.split_once("# → ") {
            Some((command, status)) => {
                let want = &status.trim()[..1];
                lines.push(command.to_string());
                lines[start] = format!("WANT={want} {}", lines[start]);
            }
            None => lines.push(line.to_string()),
        }
    }
    script.push_str(&lines.join("\n"));
    script.push('\n');
    script
}

fn run(program: &str, args: &[&str]) -> Option<String> {
    let out = match Command::new(program).args(args).output() {
        Ok(out) => out,
        Err(_) => {
            eprintln!("SKIPPED: {program} not found");
            return None;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{program} failed: {stdout}\n{stderr}");
    Some(stdout)
}

/// Every answer kept in `answers` parses, and one with `hits` found some.
fn check_answers(answers: &Path) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(answers).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let body: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {text}", path.display()));
        if body.get("hits").is_some() {
            let total = body["total_hits"].as_u64().unwrap();
            assert!(total > 0, "an example found nothing: {text}");
        }
        count += 1;
    }
    count
}

#[test]
fn every_readme_example_runs_against_scatter_up() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_up, addr) = start_up(dir.path());

    let mut ran = 0;
    let api =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md")).unwrap();
    for (doc, text) in [("readme", &readme), ("api", &api)] {
        for (k, block) in blocks(text, "sh").iter().enumerate() {
            let runs_here = block.contains("curl ")
                && !block.lines().any(|l| {
                    let l = l.trim_start();
                    l.starts_with("scatter ") || l.starts_with("cargo ")
                });
            if !runs_here {
                continue;
            }
            let answers = dir.path().join(format!("answers-{doc}-{k}"));
            std::fs::create_dir_all(&answers).unwrap();
            let script = checked_script(block, &addr, &answers);
            run("bash", &["-c", &script]).expect("bash");
            let count = check_answers(&answers);
            if doc == "readme" {
                ran += count;
            }
        }
    }
    assert!(ran >= 15, "only {ran} curl examples ran");

    // The client snippets print the total, then the ids.
    let clients: [(&str, &str, &[&str]); 2] = [
        ("python", "python3", &["-c"]),
        ("javascript", "node", &["--input-type=module", "-e"]),
    ];
    for (lang, program, args) in clients {
        for block in blocks(&readme, lang) {
            let code = block.replace("localhost:8080", &addr);
            let args: Vec<&str> = args.iter().copied().chain([code.as_str()]).collect();
            if let Some(out) = run(program, &args) {
                let total = out
                    .split_whitespace()
                    .next()
                    .and_then(|t| t.parse::<u64>().ok());
                assert!(total.is_some_and(|t| t > 0), "{lang}: {out}");
            }
        }
    }
}
