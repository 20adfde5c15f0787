//! The fan-out's call logic with a fake transport and paused time: one call per node,
//! per-shard failover when a node fails or a shard fails inside it, hedging, cancellation,
//! exhaustion and the deadline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use tonic::Status;

use super::*;
use crate::cluster::hedge::HedgeConfig;

/// What a fake node does with a call.
#[derive(Clone)]
enum Behaviour {
    /// Answers every shard after this long.
    Answer(Duration),
    /// Fails the whole call (unreachable).
    Down,
    /// Answers, but this shard fails inside the node.
    ShardFails(usize),
    /// Never answers.
    Hang,
}

/// `shards` shards, each with a replica on every node in `nodes`, all marked up.
fn cluster(shards: usize, nodes: &[&str]) -> Arc<Cluster> {
    let layout: Vec<Vec<String>> = (0..shards)
        .map(|_| nodes.iter().map(|n| n.to_string()).collect())
        .collect();
    let cluster = Cluster::new(&layout, Duration::from_secs(1)).unwrap();
    for g in &cluster.shards {
        for r in &g.replicas {
            r.probe_ok(&Default::default(), tokio::time::Instant::now());
        }
    }
    cluster
}

fn hedging(enabled: bool) -> Hedging {
    Hedging::new(HedgeConfig {
        enabled,
        min_delay: Duration::from_millis(5),
        budget_ratio: 1.0,
    })
}

/// Runs one scatter over every shard against fake nodes; returns the outcomes and the calls
/// made (node, shards).
async fn run(
    cluster: &Cluster,
    behaviour: HashMap<&'static str, Behaviour>,
    hedging: &Hedging,
    budget: Duration,
) -> (Vec<ShardOutcome<String>>, Vec<(String, Vec<usize>)>) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let all: Vec<usize> = (0..cluster.shards.len()).collect();
    let outcomes = scatter(
        cluster,
        &all,
        Instant::now() + budget,
        hedging,
        |node, shards, _budget| {
            calls
                .lock()
                .unwrap()
                .push((node.addr.clone(), shards.to_vec()));
            let b = behaviour[node.addr.as_str()].clone();
            let (addr, shards) = (node.addr.clone(), shards.to_vec());
            async move {
                let parts = |bad: Option<usize>| {
                    shards
                        .iter()
                        .map(|&s| {
                            let r = match bad {
                                Some(b) if b == s => Err("broken shard".to_string()),
                                _ => Ok(addr.clone()),
                            };
                            (s, r)
                        })
                        .collect::<Vec<_>>()
                };
                match b {
                    Behaviour::Answer(d) => {
                        tokio::time::sleep(d).await;
                        Ok(parts(None))
                    }
                    Behaviour::Down => Err(Status::unavailable("transport error")),
                    Behaviour::ShardFails(s) => Ok(parts(Some(s))),
                    Behaviour::Hang => std::future::pending().await,
                }
            }
        },
    )
    .await;
    let calls = calls.lock().unwrap().clone();
    (outcomes, calls)
}

fn answered_by(outcomes: &[ShardOutcome<String>]) -> Vec<Option<String>> {
    outcomes
        .iter()
        .map(|o| o.result.as_ref().ok().map(|a| a.value.clone()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn one_call_per_node_covers_its_shards() {
    let c = cluster(4, &["a:1", "b:1"]);
    let fast = Behaviour::Answer(Duration::from_millis(1));
    let behaviour = HashMap::from([("a:1", fast.clone()), ("b:1", fast)]);
    let (outcomes, calls) = run(&c, behaviour, &hedging(false), Duration::from_secs(1)).await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].1, vec![0, 1, 2, 3]);
    let node = calls[0].0.clone();
    assert!(answered_by(&outcomes)
        .iter()
        .all(|a| a.as_deref() == Some(&node)));
    assert!(outcomes.iter().all(|o| o.attempts_failed.is_empty()));
}

#[tokio::test(start_paused = true)]
async fn a_failed_node_fails_every_shard_over_in_one_call() {
    let c = cluster(3, &["a:1", "b:1"]);
    for _ in 0..20 {
        let behaviour = HashMap::from([
            ("a:1", Behaviour::Down),
            ("b:1", Behaviour::Answer(Duration::from_millis(1))),
        ]);
        let (outcomes, calls) = run(&c, behaviour, &hedging(false), Duration::from_secs(1)).await;
        assert!(answered_by(&outcomes)
            .iter()
            .all(|a| a.as_deref() == Some("b:1")));
        // At most: one call to a (all shards), one failover call to b (all shards).
        assert!(calls.len() <= 2, "{calls:?}");
        if calls[0].0 == "a:1" {
            assert_eq!(calls[1], ("b:1".to_string(), vec![0, 1, 2]));
            for o in &outcomes {
                assert_eq!(o.attempts_failed.len(), 1);
                assert_eq!(o.attempts_failed[0].replica.as_deref(), Some("a:1"));
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_shard_failing_inside_a_node_alone_fails_over() {
    let c = cluster(3, &["a:1", "b:1"]);
    let behaviour = HashMap::from([
        ("a:1", Behaviour::ShardFails(1)),
        ("b:1", Behaviour::ShardFails(1)),
    ]);
    let (outcomes, calls) = run(&c, behaviour, &hedging(false), Duration::from_secs(1)).await;
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[1].1, vec![1], "only the failed shard is retried");
    assert!(outcomes[0].result.is_ok() && outcomes[2].result.is_ok());
    assert_eq!(
        outcomes[1].result.as_ref().err(),
        Some(&ShardError::Exhausted)
    );
    assert_eq!(outcomes[1].attempts_failed.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_slow_node_is_hedged_and_its_call_cancelled() {
    let c = cluster(2, &["a:1", "b:1"]);
    let behaviour = HashMap::from([
        ("a:1", Behaviour::Answer(Duration::from_millis(500))),
        ("b:1", Behaviour::Answer(Duration::from_millis(500))),
    ]);
    // Whichever node goes first is slow; the hedge to the other is equally slow but later:
    // the first answer wins. Make the second node fast to see the hedge win.
    let (outcomes, calls) = run(&c, behaviour, &hedging(true), Duration::from_secs(2)).await;
    assert_eq!(calls.len(), 2, "first call and one hedge: {calls:?}");
    assert_eq!(
        calls[1].1,
        vec![0, 1],
        "the hedge carries both shards in one call"
    );
    assert!(outcomes.iter().all(|o| o.profile.hedged));
    let first = calls[0].0.clone();
    // A fresh cluster: the first run taught `c` which node was slow (in paused time), and
    // the choice would now avoid it. Fresh, the choice is the first run's again.
    let c = cluster(2, &["a:1", "b:1"]);
    let behaviour = HashMap::from([
        (if first == "a:1" { "a:1" } else { "b:1" }, Behaviour::Hang),
        (
            if first == "a:1" { "b:1" } else { "a:1" },
            Behaviour::Answer(Duration::from_millis(1)),
        ),
    ]);
    let (outcomes, calls) = run(&c, behaviour, &hedging(true), Duration::from_secs(2)).await;
    let hedge_node = calls.last().unwrap().0.clone();
    assert!(answered_by(&outcomes)
        .iter()
        .all(|a| a.as_deref() == Some(hedge_node.as_str())));
    let cancelled = &outcomes[0].profile.attempts[0];
    assert_eq!(cancelled.outcome, "cancelled");
}

#[tokio::test(start_paused = true)]
async fn no_replica_left_or_no_time_left() {
    let c = cluster(2, &["a:1"]);
    let (outcomes, _) = run(
        &c,
        HashMap::from([("a:1", Behaviour::Down)]),
        &hedging(true),
        Duration::from_secs(1),
    )
    .await;
    for o in &outcomes {
        assert_eq!(o.result.as_ref().err(), Some(&ShardError::Exhausted));
        assert_eq!(o.attempts_failed[0].shard, o.shard);
    }
    let (outcomes, _) = run(
        &c,
        HashMap::from([("a:1", Behaviour::Hang)]),
        &hedging(true),
        Duration::from_millis(100),
    )
    .await;
    for o in &outcomes {
        assert_eq!(o.result.as_ref().err(), Some(&ShardError::TimedOut));
        assert_eq!(o.attempts_failed[0].reason, "timed out");
    }
}

#[test]
fn the_retry_policy_reads_statuses() {
    let later = Instant::now() + Duration::from_secs(10);
    let r: CallResult<()> = classify(Ok(Err(Status::invalid_argument("bad"))), later);
    assert!(matches!(r, CallResult::Rejected(m) if m == "bad"));
    let r: CallResult<()> = classify(Ok(Err(Status::unavailable("transport error"))), later);
    assert!(matches!(r, CallResult::Failed(_, true)));
    let r: CallResult<()> = classify(Ok(Err(Status::internal("disk"))), later);
    assert!(matches!(r, CallResult::Failed(_, false)));
    let r: CallResult<()> = classify(Ok(Err(Status::deadline_exceeded("late"))), later);
    assert!(matches!(r, CallResult::TimedOut));
}
