//! The web page in a real browser: headless Chromium driven through chromedriver (WebDriver,
//! the `fantoccini` crate) loads `/` from a real root over 2 shards, types a query, waits for
//! the hits, checks the DOM (hits, snippets, facets, one timing bar per shard, paging, a facet
//! filter), opens the cluster page, and saves a screenshot (`target/web-page.png`).
//!
//! Needs `chromedriver` and `chromium` (Debian: `chromium-driver`, `chromium`). Without them
//! the test says so and passes, unless `SCATTER_REQUIRE_BROWSER=1` (CI sets it).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{build, sample_corpus, Cluster};
use fantoccini::{ClientBuilder, Locator};

/// Kills chromedriver when dropped.
struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `css` matches at least `n` elements; their count.
async fn wait_for(c: &fantoccini::Client, css: &str, n: usize) -> usize {
    for _ in 0..200 {
        let found = c.find_all(Locator::Css(css)).await.unwrap().len();
        if found >= n {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {n} elements match {css:?}");
}

async fn text(c: &fantoccini::Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_page_works_in_a_real_browser() {
    let port = free_port();
    let spawned = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = spawned else {
        assert!(
            std::env::var("SCATTER_REQUIRE_BROWSER").is_err(),
            "chromedriver is required (SCATTER_REQUIRE_BROWSER is set)"
        );
        eprintln!("SKIPPED: chromedriver not found (Debian: apt install chromium chromium-driver)");
        return;
    };
    let _driver = Driver(child);
    let dir = tempfile::tempdir().unwrap();
    build(&sample_corpus(), 2, dir.path());
    let cluster = Cluster::start(dir.path(), 1, &[]).await;

    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                    "--disable-dev-shm-usage", "--window-size=1400,1000"]}),
    );
    let mut client = None;
    for _ in 0..100 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let c = client.expect("chromedriver answers");
    c.goto(&cluster.url("/")).await.unwrap();
    // A search box: lenient, so text with syntax characters answers too.
    let q = c.find(Locator::Css("#q")).await.unwrap();
    q.send_keys("web server (").await.unwrap();
    c.find(Locator::Css("#form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(wait_for(&c, ".hit", 10).await, 10, "a page of 10 hits");
    let total: u64 = text(&c, "#total").await.parse().unwrap();
    assert!(total > 10, "{total}");
    assert!(text(&c, "#summary").await.contains("shards 2/2"));
    let snippets = text(&c, "#hits").await;
    assert!(snippets.to_lowercase().contains("server"), "{snippets}");
    assert!(
        !c.find_all(Locator::Css(".hit .s b"))
            .await
            .unwrap()
            .is_empty(),
        "matches are highlighted"
    );
    // The per-shard view: one timing bar per shard, naming the replica that answered.
    assert_eq!(wait_for(&c, "#shards .shard", 2).await, 2);
    let shards = text(&c, "#shards").await;
    assert!(
        shards.contains("leaf") && shards.contains("127.0.0.1:"),
        "{shards}"
    );
    // Facets from the terms aggregation on `section`; clicking one filters.
    wait_for(&c, ".facet a", 3).await;
    let facet = c.find(Locator::Css(".facet a")).await.unwrap();
    let count: u64 = facet
        .find(Locator::Css("span:last-child"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .parse()
        .unwrap();
    facet.click().await.unwrap();
    wait_for(&c, "#filters .chip", 1).await;
    for _ in 0..100 {
        if text(&c, "#total").await == count.to_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        text(&c, "#total").await,
        count.to_string(),
        "the facet's count"
    );
    std::fs::create_dir_all("target").unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write("target/web-page.png", &png).unwrap();
    // Paging.
    c.find(Locator::Css(".chip"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, ".hit", 10).await;
    // The page re-renders its results (and the pager) when the filtered answer arrives: a
    // button found just before is then stale; find it again.
    for attempt in 0.. {
        let clicked = match c.find(Locator::Css("#next")).await {
            Ok(next) => next.click().await.is_ok(),
            Err(_) => false,
        };
        if clicked {
            break;
        }
        assert!(attempt < 100, "#next never clickable");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..100 {
        if text(&c, "#pager").await.contains("11–20") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(text(&c, "#pager").await.contains("11–20"));
    // The cluster page.
    c.goto(&cluster.url("/#cluster")).await.unwrap();
    assert_eq!(
        wait_for(&c, "#replicas tr", 3).await,
        3,
        "a header and 2 replicas"
    );
    assert!(text(&c, "#replicas").await.contains("up"));
    let png = c.screenshot().await.unwrap();
    std::fs::write("target/web-page-cluster.png", &png).unwrap();
    c.close().await.unwrap();
}
