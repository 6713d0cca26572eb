//! `manage seal`: a drop-in for everyday kubeseal use (Secrets in, SealedSecrets out), plus the
//! certificate's fingerprint, `--fetch-cert` and the offline `--recovery-unseal`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use clap::Args;

use crate::Failure;
use crate::cli::Output;

/// Arguments of `manage seal` (kubeseal's names where they exist).
#[derive(Debug, Args)]
pub struct SealArgs {
    /// Scope: strict (bound to namespace and name), namespace-wide, or cluster-wide (default: what
    /// the Secret's annotations say, else strict).
    #[arg(long, value_name = "SCOPE")]
    pub scope: Option<seal::Scope>,
    /// Certificate: a PEM file or an http(s)/file URL (default: fetch it from the controller
    /// through the API server's service proxy).
    #[arg(long, value_name = "FILE|URL", env = "SEALED_SECRETS_CERT")]
    pub cert: Option<String>,
    /// Name of the controller's Service (default: sealed-secrets-controller, then Helm's
    /// sealed-secrets).
    #[arg(long, value_name = "NAME", env = "SEALED_SECRETS_CONTROLLER_NAME")]
    pub controller_name: Option<String>,
    /// Namespace of the controller (default: kube-system, then sealed-secrets).
    #[arg(long, value_name = "NS", env = "SEALED_SECRETS_CONTROLLER_NAMESPACE")]
    pub controller_namespace: Option<String>,
    /// Kubeconfig for the controller fetch (default: $KUBECONFIG, ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace for Secrets that have none (a different namespace in the Secret is an error).
    #[arg(short, long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Input file (default: stdin). Several YAML documents are allowed.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Output file (default: stdout).
    #[arg(short = 'w', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Seal a Secret without data or stringData.
    #[arg(long)]
    pub allow_empty_data: bool,
    /// Print the certificate (PEM) and exit.
    #[arg(long)]
    pub fetch_cert: bool,
    /// Unseal the SealedSecret read from the input with the controller's private keys (offline).
    #[arg(long, requires = "recovery_private_key")]
    pub recovery_unseal: bool,
    /// Private key files for --recovery-unseal (PEM, a Secret, or a List of Secrets), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "FILE,…")]
    pub recovery_private_key: Vec<PathBuf>,
}

/// Runs `manage seal`. `--output json` prints JSON; otherwise YAML.
pub fn run(args: &SealArgs, output: Output) -> Result<(), Failure> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow!("starting the async runtime: {e}"))?;
    rt.block_on(run_async(args, output))
}

async fn run_async(args: &SealArgs, output: Output) -> Result<(), Failure> {
    let render = |obj: &serde_json::Value| match output {
        Output::Json => seal::to_json(obj),
        Output::Text => seal::to_yaml(obj),
    };
    if args.recovery_unseal {
        let mut keys = seal::PrivateKeys::default();
        for path in &args.recovery_private_key {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            for k in seal::parse_private_keys(&text)
                .with_context(|| format!("reading keys from {}", path.display()))?
                .keys()
            {
                keys.push(k.clone());
            }
        }
        let sealed = seal::parse_sealed_secret(&read_input(args.input.as_deref())?)?;
        let secret = seal::unseal(&keys, &sealed)?;
        return Ok(write_output(args.out.as_deref(), &render(&secret)?)?);
    }

    let source = match &args.cert {
        Some(c) => seal::CertSource::from_flag(c),
        None => seal::CertSource::Controller {
            client: client(args.kubeconfig.as_deref()).await?,
            controller: seal::ControllerRef {
                name: args.controller_name.clone(),
                namespace: args.controller_namespace.clone(),
            },
        },
    };
    let cert = seal::fetch_certificate(&source).await?;
    eprintln!(
        "certificate {} (valid until {})",
        cert.fingerprint(),
        cert.not_after()
    );
    if args.fetch_cert {
        return Ok(write_output(args.out.as_deref(), cert.pem())?);
    }
    cert.check_not_expired()?;

    let text = read_input(args.input.as_deref())?;
    let secrets = seal::parse_secrets(&text)?;
    let namespace = match &args.namespace {
        Some(ns) => Some(ns.clone()),
        None if needs_namespace(&secrets) => {
            Some(kubeconfig_namespace(args.kubeconfig.as_deref()).await?)
        }
        None => None,
    };
    let opts = seal::SealOptions {
        scope: args.scope,
        namespace,
        allow_empty_data: args.allow_empty_data,
    };
    let mut out = String::new();
    for secret in &secrets {
        out.push_str(&render(&seal::seal_secret(&cert, secret, &opts)?)?);
    }
    Ok(write_output(args.out.as_deref(), &out)?)
}

fn needs_namespace(secrets: &[serde_json::Value]) -> bool {
    secrets.iter().any(|s| {
        s.pointer("/metadata/namespace")
            .and_then(|n| n.as_str())
            .is_none_or(str::is_empty)
    })
}

async fn kube_config(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Config> {
    seal::install_crypto_provider();
    Ok(match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .with_context(|| format!("loading {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig ($KUBECONFIG, ~/.kube/config); pass --kubeconfig or --cert")?,
    })
}

async fn client(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    kube::Client::try_from(kube_config(kubeconfig).await?).context("building the Kubernetes client")
}

/// The kubeconfig context's namespace, as kubeseal uses for Secrets without one.
async fn kubeconfig_namespace(kubeconfig: Option<&Path>) -> anyhow::Result<String> {
    Ok(kube_config(kubeconfig)
        .await
        .context("a Secret has no namespace and none was given with --namespace")?
        .default_namespace)
}

fn read_input(path: Option<&Path>) -> anyhow::Result<String> {
    match path {
        Some(p) if p != Path::new("-") => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
        }
        _ => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading stdin")?;
            Ok(s)
        }
    }
}

fn write_output(path: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match path {
        Some(p) if p != Path::new("-") => {
            std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))
        }
        _ => std::io::stdout()
            .write_all(text.as_bytes())
            .context("writing stdout"),
    }
}

impl From<seal::Error> for Failure {
    fn from(e: seal::Error) -> Self {
        Failure::Environment(anyhow!(e))
    }
}
