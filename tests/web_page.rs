//! The web page in a real browser: headless Chromium driven through chromedriver (WebDriver,
//! the `fantoccini` crate) against a real root over 2 shards, at 1400 px and at 400 px. It
//! checks what a user *sees* — elements displayed, with a size, on screen, no sideways
//! scrolling — not mere presence: the landing summary, search as you type, the query and
//! filters in the URL (a reload shows the same), terms and histogram facets (a click filters to
//! the bar's count), sort and page-size controls (the order the API gives), the document view
//! (every stored field and its JSON), the shard bars with their legend, and the cluster view.
//! Screenshots: `target/web-page-{1400,400}-{landing,search,doc,cluster}.png`.
//!
//! Needs `chromedriver` and `chromium` (Debian: `chromium-driver`, `chromium`). Without them
//! the test says so and passes, unless `SCATTER_REQUIRE_BROWSER=1` (CI sets it).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{build, free_port, sample_corpus, Cluster};
use fantoccini::{ClientBuilder, Locator};

/// Kills chromedriver when dropped.
struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `expr` (a JavaScript expression) in the page; its value.
async fn js(c: &fantoccini::Client, expr: &str) -> serde_json::Value {
    let script = format!("{VISIBLE} return ({expr});");
    c.execute(&script, vec![]).await.unwrap()
}

/// `v(css)`: the element is displayed, with a size (not `hidden`, not `display: none`).
/// `onScreen(css)`: and its top is inside the window.
const VISIBLE: &str = "const v = (css) => { const el = document.querySelector(css); \
    return !!el && el.getClientRects().length > 0 && el.getBoundingClientRect().width > 0 \
    && el.getBoundingClientRect().height > 0 && getComputedStyle(el).visibility !== 'hidden'; }; \
    const onScreen = (css) => v(css) && document.querySelector(css).getBoundingClientRect().top < innerHeight; \
    const n = (css) => document.querySelectorAll(css).length; \
    const t = (css) => (document.querySelector(css) || {}).textContent || ''; \
    const noSideways = () => document.documentElement.scrollWidth <= innerWidth;";

/// Waits until `expr` is true in the page (10 s).
async fn until(c: &fantoccini::Client, expr: &str) {
    for _ in 0..200 {
        if js(c, expr).await == serde_json::Value::Bool(true) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never true in the page: {expr}");
}

async fn shot(c: &fantoccini::Client, width: u32, name: &str) {
    std::fs::create_dir_all("target").unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(format!("target/web-page-{width}-{name}.png"), &png).unwrap();
}

/// Clicks the first element matching `css` (scrolled into view by WebDriver); retried while
/// the page re-renders it.
async fn click(c: &fantoccini::Client, css: &str) {
    for attempt in 0.. {
        let clicked = match c.find(Locator::Css(css)).await {
            Ok(el) => el.click().await.is_ok(),
            Err(_) => false,
        };
        if clicked {
            return;
        }
        assert!(attempt < 100, "{css} never clickable");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clicks the first `css` and waits until the total is the count it showed.
async fn filter_by(c: &fantoccini::Client, css: &str) {
    let count = js(
        c,
        &format!("document.querySelector('{css}').lastElementChild.textContent"),
    )
    .await;
    let count = count.as_str().unwrap().to_string();
    click(c, css).await;
    until(
        c,
        &format!("t('#total') === '{count}' && n('#filters .chip') >= 1"),
    )
    .await;
}

async fn exercise(c: &fantoccini::Client, base: &str, width: u32) {
    c.set_window_size(width, 900).await.unwrap();
    c.goto(&format!("{base}/")).await.unwrap();
    // The landing summary: the documents, the shards, the fields, examples to click.
    until(
        c,
        "v('#landing') && t('#landing').includes('documents in 2 shards')",
    )
    .await;
    until(
        c,
        "n('#fields tr') > 5 && n('#landing [data-example]') >= 2 && noSideways()",
    )
    .await;
    shot(c, width, "landing").await;

    // Search as you type (no submit), the query in the URL, and a reload shows the same.
    c.find(Locator::Css("#q"))
        .await
        .unwrap()
        .send_keys("web serv")
        .await
        .unwrap();
    until(c, "n('.hit') === 10 && v('.hit') && !v('#landing')").await;
    until(
        c,
        "new URLSearchParams(location.search).get('q') === 'web serv'",
    )
    .await;
    c.refresh().await.unwrap();
    until(
        c,
        "document.querySelector('#q').value === 'web serv' && n('.hit') === 10",
    )
    .await;
    until(
        c,
        "t('#summary').includes('shards 2/2') && n('.hit .s b') > 0",
    )
    .await;
    // The shard bars, one per shard, with their legend.
    until(
        c,
        "n('#shards .shard') === 2 && t('#shards').includes('127.0.0.1:')",
    )
    .await;
    js(c, "document.querySelector('#legend').scrollIntoView()").await;
    until(c, "onScreen('#legend') && v('#phases')").await;

    // Facets: terms and histogram bars are shown; each click filters to its count, in the URL.
    js(c, "document.querySelector('#facets').scrollIntoView()").await;
    until(
        c,
        "v('.facet:not(.hist) a') && v('.hist a') && noSideways()",
    )
    .await;
    filter_by(c, ".facet:not(.hist) a").await;
    filter_by(c, ".hist a").await;
    until(
        c,
        "new URLSearchParams(location.search).getAll('filter').length === 2",
    )
    .await;
    shot(c, width, "search").await;
    click(c, "#filters .chip").await;
    until(c, "n('#filters .chip') === 1").await;
    click(c, "#filters .chip").await;
    until(c, "n('#filters .chip') === 0 && n('.hit') === 10").await;

    // Sort and page size: the page shows the order the API gives.
    let api: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/search"))
        .json(
            &serde_json::json!({"q": "web serv", "query_mode": "lenient", "size": 20,
                                  "sort": "installed_size:desc", "fields": []}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let want = common::hit_ids(&api);
    c.find(Locator::Css("#sort"))
        .await
        .unwrap()
        .select_by_value("installed_size:desc")
        .await
        .unwrap();
    c.find(Locator::Css("#size"))
        .await
        .unwrap()
        .select_by_value("20")
        .await
        .unwrap();
    let ids = serde_json::to_string(&want).unwrap();
    until(
        c,
        &format!("JSON.stringify([...document.querySelectorAll('.hit')].map((h) => h.dataset.id)) === '{ids}'"),
    )
    .await;
    until(
        c,
        "location.search.includes('sort=installed_size') && location.search.includes('size=20')",
    )
    .await;

    // The document view: every stored field and the JSON, on screen.
    let id = js(c, "document.querySelector('.hit').dataset.id").await;
    click(c, ".hit").await;
    until(
        c,
        "onScreen('#doc-view .panel') && v('#doc-fields') && n('#doc-fields tr') > 8",
    )
    .await;
    until(c, "t('#doc-json').startsWith('{')").await;
    let doc: serde_json::Value =
        serde_json::from_str(js(c, "t('#doc-json')").await.as_str().unwrap()).unwrap();
    assert_eq!(doc["id"], id, "{doc}");
    assert!(doc["fields"]["installed_size"].is_u64(), "{doc}");
    until(
        c,
        "t('#doc-fields').includes('section') && t('#doc-fields').includes('installed_size')",
    )
    .await;
    shot(c, width, "doc").await;
    click(c, "#doc-close").await;
    until(c, "!v('#doc-view')").await;

    // Paging.
    click(c, "#next").await;
    until(c, "t('#pager').includes('21–40')").await;

    // The cluster view: on screen at the top, readable tables (no raw JSON).
    c.goto(&format!("{base}/#cluster")).await.unwrap();
    until(
        c,
        "onScreen('#replicas') && n('#replicas tr') === 3 && !v('#search-view')",
    )
    .await;
    until(
        c,
        "t('#replicas').includes('up') && v('#stats-tables') && v('#caches')",
    )
    .await;
    until(c, "n('#cluster-view pre') === 0 && noSideways()").await;
    shot(c, width, "cluster").await;
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
                                    "--disable-dev-shm-usage", "--window-size=1400,900"]}),
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
    let base = cluster.url("").trim_end_matches('/').to_string();
    for width in [1400, 400] {
        exercise(&c, &base, width).await;
    }
    c.close().await.unwrap();
}
