//! `scatter root --node ADDR --node ADDR ...`: the root learns the layout from the nodes
//! themselves — each leaf node's `Info` names the shards it serves and the cluster's shard
//! count — instead of one `--shard` list per shard in shard order. A root whose nodes do not
//! cover every shard refuses to start, saying which shards are missing; nodes that do not
//! answer within [`DISCOVERY_TIMEOUT`] are named in the error.

use std::collections::BTreeMap;
use std::time::Duration;

use scatter_core::limits::MAX_MESSAGE_BYTES;
use scatter_proto::leaf_api::{Grpc, LeafApi};
use scatter_proto::v1::InfoRequest;

/// Most shards a cluster learnt from its nodes may have.
pub const MAX_SHARDS: u32 = 65_536;

/// How long a starting root waits for every `--node` to answer.
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// What one node said: the cluster's shard count and the shards it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeServes {
    /// `num_shards` of its shards.
    pub num_shards: u32,
    /// The shards it serves.
    pub shards: Vec<u32>,
}

async fn ask(addr: &str) -> anyhow::Result<NodeServes> {
    let channel = scatter_proto::cluster_tls::endpoint(addr)?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await?;
    let leaf = Grpc::new(channel, MAX_MESSAGE_BYTES);
    let mut req = tonic::Request::new(InfoRequest { shard: None });
    req.set_timeout(Duration::from_secs(2));
    let info = leaf.info(req).await?.into_inner();
    let shards = match info.node_shards.is_empty() {
        true => vec![info.shard_id],
        false => info.node_shards,
    };
    Ok(NodeServes {
        num_shards: info.num_shards,
        shards,
    })
}

/// Asks every node in `nodes` (retrying until [`DISCOVERY_TIMEOUT`]) and returns the layout:
/// per shard, the nodes serving it.
pub async fn discover(nodes: &[String]) -> anyhow::Result<Vec<Vec<String>>> {
    let deadline = tokio::time::Instant::now() + DISCOVERY_TIMEOUT;
    let mut answers: BTreeMap<String, NodeServes> = BTreeMap::new();
    let mut last_errors: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let pending: Vec<&String> = nodes.iter().filter(|a| !answers.contains_key(*a)).collect();
        for addr in pending {
            match ask(addr).await {
                Ok(serves) => {
                    answers.insert(addr.clone(), serves);
                    last_errors.remove(addr);
                }
                Err(e) => {
                    last_errors.insert(addr.clone(), format!("{e:#}"));
                }
            }
        }
        if last_errors.is_empty() || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if !last_errors.is_empty() {
        let list: Vec<String> = last_errors
            .iter()
            .map(|(a, e)| format!("{a}: {e}"))
            .collect();
        anyhow::bail!(
            "--node did not answer within {DISCOVERY_TIMEOUT:?}: {}",
            list.join("; ")
        );
    }
    layout(nodes, &answers)
}

/// How long a starting root given `--shard` lists waits for their nodes before starting
/// anyway (a node that is down is the prober's business, not a reason to refuse).
pub const LIST_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Checks `--shard` lists against what their nodes say they serve: a node that answers and
/// reports another shard count than the number of lists, or does not serve the shard whose list
/// names it, is a layout that cannot work — refused with the missing shards named. Nodes that
/// do not answer within [`LIST_CHECK_TIMEOUT`] are left to the prober (logged).
pub async fn check_lists(lists: &[Vec<String>]) -> anyhow::Result<()> {
    let mut asks = tokio::task::JoinSet::new();
    let addrs: std::collections::BTreeSet<&String> =
        lists.iter().flatten().filter(|a| *a != "local").collect();
    for addr in addrs {
        let addr = addr.clone();
        asks.spawn(async move {
            let answer = tokio::time::timeout(LIST_CHECK_TIMEOUT, ask(&addr)).await;
            (addr, answer)
        });
    }
    let mut answers = BTreeMap::new();
    while let Some(joined) = asks.join_next().await {
        match joined? {
            (addr, Ok(Ok(serves))) => {
                answers.insert(addr, serves);
            }
            (addr, Ok(Err(e))) => tracing::warn!(%addr, "not checked at start: {e:#}"),
            (addr, Err(_)) => tracing::warn!(%addr, "not checked at start: no answer in time"),
        }
    }
    lists_agree(lists, &answers)
}

/// Whether `lists` (one per shard) agree with what the nodes in `answers` serve.
pub fn lists_agree(
    lists: &[Vec<String>],
    answers: &BTreeMap<String, NodeServes>,
) -> anyhow::Result<()> {
    let given = lists.len();
    for (addr, serves) in answers {
        let num_shards = serves.num_shards as usize;
        if num_shards != given {
            // Named one by one only when few: a node's word is not trusted with memory.
            let hint = match num_shards.saturating_sub(given) {
                0 => format!("{} --shard list(s) too many", given - num_shards),
                1..=16 => format!(
                    "no --shard list for shard(s) {:?}",
                    (given..num_shards).collect::<Vec<_>>()
                ),
                _ => format!("no --shard list for shards {given} to {}", num_shards - 1),
            };
            anyhow::bail!(
                "{addr} serves an index of {num_shards} shards, but {given} --shard list(s) \
                 were given: {hint} (one --shard list per shard, in shard order; or use --node)"
            );
        }
        for (k, list) in lists.iter().enumerate() {
            if list.contains(addr) && !serves.shards.contains(&(k as u32)) {
                anyhow::bail!(
                    "{addr} is in the --shard list of shard {k} but serves shard(s) {:?} \
                     (one --shard list per shard, in shard order; or use --node)",
                    serves.shards
                );
            }
        }
    }
    Ok(())
}

/// The layout `answers` describe, in `nodes` order within each shard; an error naming the
/// missing shards, or nodes that disagree on the shard count.
pub fn layout(
    nodes: &[String],
    answers: &BTreeMap<String, NodeServes>,
) -> anyhow::Result<Vec<Vec<String>>> {
    let counts: std::collections::BTreeSet<u32> = answers.values().map(|a| a.num_shards).collect();
    let Some(&num_shards) = counts.iter().next() else {
        anyhow::bail!("no --node given");
    };
    anyhow::ensure!(
        counts.len() == 1,
        "the nodes disagree on the shard count ({counts:?}): they are not one cluster"
    );
    // Checked before the layout is allocated: a node's word is not trusted with memory.
    anyhow::ensure!(
        (1..=MAX_SHARDS).contains(&num_shards),
        "a node reports {num_shards} shards; at most {MAX_SHARDS}"
    );
    let mut shards = vec![Vec::new(); num_shards as usize];
    for addr in nodes {
        for &k in &answers[addr].shards {
            let replicas = shards.get_mut(k as usize).ok_or_else(|| {
                anyhow::anyhow!("{addr} serves shard {k}, beyond the cluster's {num_shards}")
            })?;
            if !replicas.contains(addr) {
                replicas.push(addr.clone());
            }
        }
    }
    let missing: Vec<usize> = (0..shards.len())
        .filter(|&k| shards[k].is_empty())
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "the nodes do not cover the index: no node serves shard(s) {missing:?} of {num_shards} \
         (add the nodes serving them with --node)"
    );
    Ok(shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serves(num_shards: u32, shards: &[u32]) -> NodeServes {
        NodeServes {
            num_shards,
            shards: shards.to_vec(),
        }
    }

    #[test]
    fn the_layout_comes_from_what_nodes_serve() {
        let nodes = vec!["a:1".to_string(), "b:1".to_string()];
        let answers = BTreeMap::from([
            ("a:1".to_string(), serves(3, &[0, 1])),
            ("b:1".to_string(), serves(3, &[1, 2])),
        ]);
        let l = layout(&nodes, &answers).unwrap();
        assert_eq!(l, [vec!["a:1"], vec!["a:1", "b:1"], vec!["b:1"]]);
        let answers = BTreeMap::from([
            ("a:1".to_string(), serves(4, &[0, 1])),
            ("b:1".to_string(), serves(4, &[1])),
        ]);
        let e = layout(&nodes, &answers).unwrap_err().to_string();
        assert!(e.contains("[2, 3]") && e.contains("of 4"), "{e}");
        let answers = BTreeMap::from([
            ("a:1".to_string(), serves(4, &[0, 1, 2, 3])),
            ("b:1".to_string(), serves(2, &[0, 1])),
        ]);
        assert!(layout(&nodes, &answers).is_err());
        let answers = BTreeMap::from([
            ("a:1".to_string(), serves(u32::MAX, &[0])),
            ("b:1".to_string(), serves(u32::MAX, &[1])),
        ]);
        let e = layout(&nodes, &answers).unwrap_err().to_string();
        assert!(e.contains("at most"), "{e}");
    }

    #[test]
    fn shard_lists_must_match_what_nodes_serve() {
        let lists = vec![vec!["a:1".to_string()], vec!["b:1".to_string()]];
        let ok = BTreeMap::from([
            ("a:1".to_string(), serves(2, &[0])),
            ("b:1".to_string(), serves(2, &[1])),
        ]);
        lists_agree(&lists, &ok).unwrap();
        lists_agree(&lists, &BTreeMap::new()).unwrap();
        let more = BTreeMap::from([("a:1".to_string(), serves(4, &[0]))]);
        let e = lists_agree(&lists, &more).unwrap_err().to_string();
        assert!(e.contains("[2, 3]") && e.contains("4 shards"), "{e}");
        let swapped = BTreeMap::from([("a:1".to_string(), serves(2, &[1]))]);
        let e = lists_agree(&lists, &swapped).unwrap_err().to_string();
        assert!(e.contains("shard 0 but serves shard(s) [1]"), "{e}");
        let huge = BTreeMap::from([("a:1".to_string(), serves(u32::MAX, &[0]))]);
        let e = lists_agree(&lists, &huge).unwrap_err().to_string();
        assert!(e.contains("shards 2 to 4294967294"), "{e}");
        let fewer = BTreeMap::from([("a:1".to_string(), serves(1, &[0]))]);
        let e = lists_agree(&lists, &fewer).unwrap_err().to_string();
        assert!(e.contains("too many"), "{e}");
    }
}
