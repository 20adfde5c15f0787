//! Mutual TLS between the cluster's processes: the `--cluster-ca`, `--cluster-cert` and
//! `--cluster-key` flags (root, leaf, `scatter faults`), and `scatter certs`, which makes a
//! cluster CA and node certificates (rcgen). See `scatter_proto::cluster_tls`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

/// A process's cluster certificate: all three or none.
#[derive(Debug, Args)]
pub struct ClusterTlsArgs {
    /// The cluster CA (PEM): calls between roots and leaves use mutual TLS, and only
    /// processes with a certificate it signed take part (with --cluster-cert, --cluster-key).
    #[arg(long, env = "SCATTER_CLUSTER_CA", requires_all = ["cluster_cert", "cluster_key"])]
    cluster_ca: Option<PathBuf>,
    /// This process's certificate (PEM), signed by --cluster-ca (`scatter certs` makes them).
    #[arg(long, env = "SCATTER_CLUSTER_CERT", requires = "cluster_ca")]
    cluster_cert: Option<PathBuf>,
    /// The key of --cluster-cert (PEM).
    #[arg(long, env = "SCATTER_CLUSTER_KEY", requires = "cluster_ca")]
    cluster_key: Option<PathBuf>,
}

impl ClusterTlsArgs {
    /// Sets the process's cluster TLS from the files, if given.
    pub fn load(&self) -> anyhow::Result<()> {
        let (Some(ca), Some(cert), Some(key)) =
            (&self.cluster_ca, &self.cluster_cert, &self.cluster_key)
        else {
            return Ok(());
        };
        let read = |p: &Path| {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
        };
        scatter_proto::cluster_tls::set(&read(ca)?, &read(cert)?, &read(key)?)
            .map_err(|e| anyhow::anyhow!("cluster TLS: {e}"))
    }

    /// Whether the flags were given.
    pub fn given(&self) -> bool {
        self.cluster_ca.is_some()
    }
}

/// `scatter certs`: a cluster CA and node certificates.
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory to write into (created): ca.pem, ca-key.pem, and NAME.pem, NAME-key.pem per
    /// node.
    #[arg(long)]
    pub out: PathBuf,
    /// Node names, comma-separated: one certificate each (default: one named `node`).
    #[arg(long, value_delimiter = ',', default_value = "node")]
    pub nodes: Vec<String>,
    /// When --out already holds ca.pem and every node's certificate, keep them and succeed (a
    /// container's init step: running processes keep trusting each other after a restart).
    #[arg(long)]
    pub keep_existing: bool,
}

/// Whether `out` holds a CA and a certificate and key for every node in `nodes`; an error when
/// it holds a CA but not all of them (new certificates would need the old CA's key).
fn complete_set(out: &Path, nodes: &[String]) -> anyhow::Result<bool> {
    if !out.join("ca.pem").exists() {
        return Ok(false);
    }
    let missing: Vec<&String> = nodes
        .iter()
        .filter(|n| {
            !out.join(format!("{n}.pem")).exists() || !out.join(format!("{n}-key.pem")).exists()
        })
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "{} holds a CA but no certificate for {missing:?}: remove the directory to start over",
        out.display()
    );
    Ok(true)
}

/// Writes a new CA and one certificate per node. Every node
/// certificate carries the name `scatter-node` (what peers check), its own name, localhost and
/// 127.0.0.1, and may act as server and client.
pub fn certs(args: &CertsArgs) -> anyhow::Result<()> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };
    if args.keep_existing && complete_set(&args.out, &args.nodes)? {
        println!(
            "{} holds the certificates: kept (--keep-existing)",
            args.out.display()
        );
        return Ok(());
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "scatter cluster CA");
    let ca_cert = ca_params.self_signed(&ca_key)?;
    write_private(&args.out.join("ca-key.pem"), &ca_key.serialize_pem())?;
    std::fs::write(args.out.join("ca.pem"), ca_cert.pem())?;
    for name in &args.nodes {
        let key = KeyPair::generate()?;
        let names = vec![
            scatter_proto::cluster_tls::NODE_NAME.to_string(),
            name.clone(),
            "localhost".into(),
            "127.0.0.1".into(),
        ];
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, name.as_str());
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
        std::fs::write(args.out.join(format!("{name}.pem")), cert.pem())?;
        write_private(
            &args.out.join(format!("{name}-key.pem")),
            &key.serialize_pem(),
        )?;
    }
    println!(
        "wrote {}: ca.pem and {} node certificate(s); start every root and leaf with \
         --cluster-ca ca.pem --cluster-cert NAME.pem --cluster-key NAME-key.pem",
        args.out.display(),
        args.nodes.len()
    );
    Ok(())
}

/// Writes a key readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes())?;
    Ok(())
}
