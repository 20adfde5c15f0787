//! Writes and the replicas' agreement: live writes to every replica ([`ingest`],
//! [`shard_write`]), health probes and what they find ([`prober`]), repair by merge or copy
//! ([`repair`]), confirmation of restored histories ([`history`]) and the document-by-document
//! replica check ([`replica_check`]).

pub mod history;
pub mod ingest;
pub mod prober;
pub mod repair;
pub mod replica_check;
pub mod shard_write;
