//! `scatter`: one binary for every role of a Scatter cluster (leaf, root, index tools, a local
//! cluster). The command line lives in [`cli`]; each role is a library crate.

mod bench;
mod cli;
mod config_file;
mod up;

fn main() -> std::process::ExitCode {
    cli::main()
}
