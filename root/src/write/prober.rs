//! Health probing: every probe interval each replica gets an `Info` call naming its shard;
//! the answer refreshes its state (generation, documents, operations) and is checked
//! against the cluster (shard id, shard count, schema, routing).

use std::sync::Arc;
use std::time::Duration;

use scatter_proto::v1::{InfoRequest, InfoResponse};

use crate::cluster::replica::Replica;
use crate::cluster::{Cluster, ClusterSchema};

impl Cluster {
    /// Probes every replica once, concurrently.
    pub async fn probe_all(&self) {
        let probes = self
            .shards
            .iter()
            .flat_map(|g| g.replicas.iter().map(move |r| self.probe(g.shard, r)));
        futures::future::join_all(probes).await;
    }

    pub(crate) async fn probe(&self, shard: usize, replica: &Replica) {
        let info = InfoRequest {
            shard: replica.shard_id(),
        };
        let req = crate::cluster::request_id::request(info, Duration::from_secs(1));
        let client = replica.client();
        let sent = tokio::time::Instant::now();
        let call = client.info(req);
        let info = match tokio::time::timeout(Duration::from_secs(1), call).await {
            Ok(Ok(resp)) => resp.into_inner(),
            Ok(Err(status)) => {
                return replica.record_failure(format!("probe: {}", status.message()), false)
            }
            Err(_) => return replica.record_failure("probe: timed out".to_string(), false),
        };
        match self.check_info(shard, &info) {
            Ok(()) => {
                self.clock.observe(info.max_version);
                let shared = self.shards[shard].replicas.len() > 1;
                if info.unverified && shared && replica.is_unconfirmed(info.incarnation) {
                    // Stale before it is up: the round's assessment may confirm it.
                    replica.set_stale(Some(crate::write::history::UNVERIFIED_REASON.to_string()));
                }
                replica.probe_ok(&info, sent)
            }
            Err(reason) => {
                tracing::error!(replica = %replica.addr, shard, "{reason}");
                replica.mark_misconfigured(reason);
            }
        }
    }

    /// Rejects a replica that serves another shard, was built for another shard count, or
    /// has another schema: routing and scoring would silently go wrong with it.
    fn check_info(&self, shard: usize, info: &InfoResponse) -> Result<(), String> {
        if info.shard_id as usize != shard || info.num_shards as usize != self.shards.len() {
            return Err(format!(
                "misconfigured: replica serves shard {} of {}, configured as shard {} of {}",
                info.shard_id,
                info.num_shards,
                shard,
                self.shards.len()
            ));
        }
        let mut slot = self.schema.write().expect("schema lock");
        match &*slot {
            Some(s) if s.fingerprint != info.schema_fingerprint => Err(format!(
                "misconfigured: schema fingerprint {} differs from the cluster's {}",
                info.schema_fingerprint, s.fingerprint
            )),
            Some(s) if s.routing_json != info.routing_json => Err(format!(
                "misconfigured: routing {} differs from the cluster's {}",
                info.routing_json, s.routing_json
            )),
            Some(_) => Ok(()),
            None => {
                *slot = Some(Arc::new(ClusterSchema::from_info(info)?));
                Ok(())
            }
        }
    }

    /// Probes all replicas every probe interval until `stop` fires.
    pub fn spawn_prober(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let cluster = Arc::downgrade(self);
        let interval = self.probe_interval;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(cluster) = cluster.upgrade() else {
                    return;
                };
                let round = tokio::time::Instant::now();
                cluster.probe_all().await;
                crate::write::repair::after_probe(&cluster, round);
            }
        })
    }
}
