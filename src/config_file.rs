//! Configuration files: `scatter leaf --config leaf.toml`, `scatter root --config root.toml`
//! (or `SCATTER_CONFIG=FILE`). A file's keys are the subcommand's long flag names (`-` or
//! `_`); its values become the flags' defaults, so the order of precedence is
//! **flag > environment variable > file > built-in default**. Unknown keys are an error.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Command;

/// Environment variable naming a configuration file (when `--config` is not given).
pub const CONFIG_ENV: &str = "SCATTER_CONFIG";

/// Applies the configuration file named on the command line (or in [`CONFIG_ENV`]) to the
/// subcommand it configures; returns `cmd` unchanged when there is none.
pub fn apply(cmd: Command, args: &[OsString]) -> anyhow::Result<Command> {
    let Some(at) = subcommand_position(&cmd, args) else {
        return Ok(cmd);
    };
    let sub = args[at].to_str().unwrap_or_default().to_string();
    let sub = sub.as_str();
    if !matches!(sub, "leaf" | "root") {
        return Ok(cmd);
    }
    let Some(path) = config_path(&args[at..]) else {
        return Ok(cmd);
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let defaults = defaults_for(&cmd, sub, &table, &path)?;
    Ok(cmd.mut_subcommand(sub, move |mut sc| {
        for (id, values) in defaults {
            sc = sc.mut_arg(id, |a| a.default_values(values).required(false));
        }
        sc
    }))
}

/// Where the subcommand is in `args`: the first argument after the program that is neither
/// an option nor the value of a global option (`scatter --log-format json root ...`).
fn subcommand_position(cmd: &Command, args: &[OsString]) -> Option<usize> {
    let mut i = 1;
    while let Some(arg) = args.get(i).and_then(|a| a.to_str()) {
        let Some(long) = arg.strip_prefix("--") else {
            return (!arg.starts_with('-')).then_some(i);
        };
        let takes_value = !long.contains('=')
            && cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .is_some_and(|a| a.get_action().takes_values());
        i += if takes_value { 2 } else { 1 };
    }
    None
}

/// `--config FILE`, `--config=FILE` (after the subcommand, `args[0]`) or `$SCATTER_CONFIG`.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    std::env::var_os(CONFIG_ENV).map(PathBuf::from)
}

/// Per file key: the argument id and its default values (leaked: parsed once per process).
fn defaults_for(
    cmd: &Command,
    sub: &str,
    table: &toml::Table,
    path: &Path,
) -> anyhow::Result<Vec<(String, Vec<&'static str>)>> {
    let sc = cmd.find_subcommand(sub).expect("known subcommand");
    let mut out = Vec::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let Some(arg) = sc
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && long != "config")
        else {
            let known: Vec<_> = sc
                .get_arguments()
                .filter_map(|a| a.get_long())
                .filter(|l| *l != "config" && *l != "help")
                .collect();
            bail!(
                "{}: unknown setting {key:?} for `scatter {sub}` (known: {})",
                path.display(),
                known.join(", ")
            );
        };
        let values = match value {
            toml::Value::Array(items) => items.iter().map(scalar).collect::<Result<_, _>>(),
            v => scalar(v).map(|s| vec![s]),
        }
        .map_err(|e| anyhow::anyhow!("{}: {key}: {e}", path.display()))?;
        let leaked = values
            .into_iter()
            .map(|s| &*Box::leak(s.into_boxed_str()))
            .collect();
        out.push((arg.get_id().to_string(), leaked));
    }
    Ok(out)
}

fn scalar(v: &toml::Value) -> Result<String, String> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!("unsupported value {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn cmd() -> Command {
        Command::new("scatter")
            .arg(Arg::new("log_format").long("log-format").global(true))
            .subcommand(
                Command::new("root")
                    .arg(Arg::new("config").long("config"))
                    .arg(
                        Arg::new("listen")
                            .long("listen")
                            .env("T_LISTEN")
                            .default_value("a"),
                    )
                    .arg(Arg::new("timeout_ms").long("timeout-ms").default_value("1"))
                    .arg(Arg::new("shards").long("shard").action(ArgAction::Append))
                    .arg(
                        Arg::new("no_hedge")
                            .long("no-hedge")
                            .action(ArgAction::SetTrue),
                    ),
            )
    }

    fn matches(file: &str, extra: &[&str]) -> anyhow::Result<clap::ArgMatches> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("root.toml");
        std::fs::write(&path, file)?;
        let mut args: Vec<OsString> = vec!["scatter".into(), "root".into(), "--config".into()];
        args.push(path.into_os_string());
        args.extend(extra.iter().map(OsString::from));
        let m = apply(cmd(), &args)?.try_get_matches_from(args)?;
        Ok(m.subcommand_matches("root").unwrap().clone())
    }

    #[test]
    fn file_values_are_defaults_and_flags_win() {
        let file = "listen = \"b\"\ntimeout_ms = 5\nshard = [\"x:1\", \"y:2\"]\nno-hedge = true\n";
        let m = matches(file, &[]).unwrap();
        assert_eq!(m.get_one::<String>("listen").unwrap(), "b");
        assert_eq!(m.get_one::<String>("timeout_ms").unwrap(), "5");
        let shards: Vec<_> = m.get_many::<String>("shards").unwrap().collect();
        assert_eq!(shards, ["x:1", "y:2"]);
        assert!(m.get_flag("no_hedge"));
        let m = matches(file, &["--listen", "c"]).unwrap();
        assert_eq!(m.get_one::<String>("listen").unwrap(), "c");
    }

    #[test]
    fn a_global_flag_before_the_subcommand_keeps_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.toml");
        std::fs::write(&path, "listen = \"b\"\n").unwrap();
        for global in [&["--log-format", "json"][..], &["--log-format=json"][..]] {
            let mut args: Vec<OsString> = vec!["scatter".into()];
            args.extend(global.iter().map(OsString::from));
            args.extend([
                "root".into(),
                "--config".into(),
                path.clone().into_os_string(),
            ]);
            let m = apply(cmd(), &args)
                .unwrap()
                .try_get_matches_from(args)
                .unwrap();
            let root = m.subcommand_matches("root").unwrap();
            assert_eq!(root.get_one::<String>("listen").unwrap(), "b", "{global:?}");
        }
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = matches("lisen = \"b\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("unknown setting \"lisen\""), "{err}");
        assert!(err.contains("listen"), "{err}");
    }
}
