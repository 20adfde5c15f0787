//! `scatter`: one binary for every role of a Scatter cluster (leaf, root, index tools, a local
//! cluster). The command line lives in [`cli`]; each role is a library crate.

mod bench;
mod cli;
mod cluster_tls_args;
mod config_file;
mod dir_lock;
mod front_door_args;
mod local_shards;
mod node_discovery;
mod up;
mod up_source;

/// mimalloc instead of the system allocator: search and gRPC allocate many short-lived
/// buffers across threads, where glibc malloc spent about a fifth of a saturated root's CPU
/// (perf, docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
