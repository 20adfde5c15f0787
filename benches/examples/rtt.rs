//! Round-trip time of gRPC calls to a running leaf: `cargo run --release -p scatter-bench
//! --example rtt -- HOST:PORT [N]`. Prints p50/p90/p99 of `Info` and `TermStats` calls made
//! one at a time, and of 4 concurrent `TermStats` calls. `GAP_MS` (third argument, default 0)
//! idles between rounds, as a lightly loaded root does: then every call pays thread wake-ups.
use std::time::Instant;

use scatter_proto::v1::{InfoRequest, TermStatsRequest};
use scatter_proto::LeafClient;
use tonic::transport::Endpoint;

fn pct(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
    format!(
        "p50 {:.1} µs  p90 {:.1} µs  p99 {:.1} µs",
        at(0.5),
        at(0.9),
        at(0.99)
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let addr = args.get(1).expect("HOST:PORT");
    let n: usize = args.get(2).map_or(2000, |s| s.parse().unwrap());
    let gap: u64 = args.get(3).map_or(0, |s| s.parse().unwrap());
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let mut client = LeafClient::new(channel);
    let mut info = Vec::new();
    let mut stats = Vec::new();
    let mut four = Vec::new();
    for _ in 0..n {
        if gap > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(gap)).await;
        }
        let t = Instant::now();
        client.info(InfoRequest::default()).await?;
        info.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        client
            .term_stats(TermStatsRequest {
                query: "what is the definition of cattle".into(),
                ..Default::default()
            })
            .await?;
        stats.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        let calls = (0..4).map(|_| {
            let mut c = client.clone();
            async move {
                c.term_stats(TermStatsRequest {
                    query: "cattle".into(),
                    ..Default::default()
                })
                .await
            }
        });
        futures::future::try_join_all(calls).await?;
        four.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!("Info:            {}", pct(info));
    println!("TermStats:       {}", pct(stats));
    println!("4 × TermStats:   {}", pct(four));
    Ok(())
}
