//! Where the sealing certificate comes from: a file, a URL, or the controller itself through the
//! API server's service proxy (kubeseal's default path).

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Service;
use kube::{Api, Client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Certificate, Error};

/// kubeseal's default controller Service name.
pub const DEFAULT_CONTROLLER_NAME: &str = "sealed-secrets-controller";
/// kubeseal's default controller namespace.
pub const DEFAULT_CONTROLLER_NAMESPACE: &str = "kube-system";
/// The Service name the Helm chart usually gives the controller.
pub const HELM_CONTROLLER_NAME: &str = "sealed-secrets";

/// Which controller to ask; unset parts are tried with kubeseal's defaults and the Helm naming.
#[derive(Debug, Clone, Default)]
pub struct ControllerRef {
    /// `--controller-name`.
    pub name: Option<String>,
    /// `--controller-namespace`.
    pub namespace: Option<String>,
}

impl ControllerRef {
    /// The (namespace, name) pairs to try, in order: exactly what was given, else the defaults
    /// (`kube-system/sealed-secrets-controller`), then Helm's (`sealed-secrets` in the same
    /// namespace, then in namespace `sealed-secrets`).
    pub fn candidates(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut add = |ns: &str, name: &str| {
            let pair = (ns.to_owned(), name.to_owned());
            if !out.contains(&pair) {
                out.push(pair);
            }
        };
        match (&self.namespace, &self.name) {
            (Some(ns), Some(name)) => add(ns, name),
            (Some(ns), None) => {
                add(ns, DEFAULT_CONTROLLER_NAME);
                add(ns, HELM_CONTROLLER_NAME);
            }
            (None, Some(name)) => {
                add(DEFAULT_CONTROLLER_NAMESPACE, name);
                add(HELM_CONTROLLER_NAME, name);
            }
            (None, None) => {
                add(DEFAULT_CONTROLLER_NAMESPACE, DEFAULT_CONTROLLER_NAME);
                add(DEFAULT_CONTROLLER_NAMESPACE, HELM_CONTROLLER_NAME);
                add(HELM_CONTROLLER_NAME, HELM_CONTROLLER_NAME);
                add(HELM_CONTROLLER_NAME, DEFAULT_CONTROLLER_NAME);
            }
        }
        out
    }
}

/// A source of the sealing certificate.
#[derive(Clone)]
pub enum CertSource {
    /// A local PEM file.
    File(PathBuf),
    /// `http://…`, `https://…` or `file://…`.
    Url(String),
    /// The controller's `/v1/cert.pem` through the API server's service proxy.
    Controller {
        /// A client of the cluster's API server.
        client: Client,
        /// Which controller.
        controller: ControllerRef,
    },
}

impl CertSource {
    /// `--cert` as kubeseal reads it: a URL when it has a scheme, else a file path.
    pub fn from_flag(value: &str) -> CertSource {
        if value.contains("://") {
            CertSource::Url(value.to_owned())
        } else {
            CertSource::File(PathBuf::from(value))
        }
    }
}

/// The API path of the controller's Service.
pub fn service_path(namespace: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/services/{name}")
}

/// The service-proxy path kubeseal GETs the certificate from
/// (`…/services/http:<name>:<portName>/proxy/v1/cert.pem`).
pub fn cert_proxy_path(namespace: &str, name: &str, port: &str) -> String {
    format!("{}/proxy/v1/cert.pem", proxy_base(namespace, name, port))
}

fn proxy_base(namespace: &str, name: &str, port: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/services/http:{name}:{port}")
}

/// Fetches and parses the certificate (not checked for expiry: see
/// [`Certificate::check_not_expired`]).
pub async fn fetch_certificate(source: &CertSource) -> Result<Certificate, Error> {
    let pem = match source {
        CertSource::File(path) => read_file(path)?,
        CertSource::Url(url) => fetch_url(url).await?,
        CertSource::Controller { client, controller } => {
            fetch_from_controller(client, controller).await?
        }
    };
    Certificate::from_pem(&pem)
}

fn read_file(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::ReadFile {
        path: path.display().to_string(),
        source,
    })
}

async fn fetch_url(url: &str) -> Result<Vec<u8>, Error> {
    let fail = |reason: String| Error::FetchUrl {
        url: url.to_owned(),
        reason,
    };
    if let Some(path) = url.strip_prefix("file://") {
        return read_file(std::path::Path::new(path));
    }
    let rest = if let Some(rest) = url.strip_prefix("http://") {
        rest
    } else if url.starts_with("https://") {
        return Err(fail(
            "https URLs are not supported yet; download the certificate and pass the file".into(),
        ));
    } else {
        return Err(fail("unsupported scheme (http, https or file)".into()));
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host = hostport.rsplit_once(':').map_or(hostport, |(h, _)| h);
    let addr = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:80")
    };
    let timeout = std::time::Duration::from_secs(30);
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| fail(format!("connect: {e}")))?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/x-pem-file, */*\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| fail(format!("send: {e}")))?;
        let mut buf = Vec::new();
        stream
            .read_to_end(&mut buf)
            .await
            .map_err(|e| fail(format!("read: {e}")))?;
        Ok::<_, Error>(buf)
    };
    let buf = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| fail(format!("no answer within {timeout:?}")))??;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| fail("malformed HTTP response".into()))?;
    let head = String::from_utf8_lossy(&buf[..split]);
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(fail(format!("HTTP status {status:?}")));
    }
    let body = buf[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return dechunk(&body).ok_or_else(|| fail("malformed chunked body".into()));
    }
    Ok(body)
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

async fn fetch_from_controller(
    client: &Client,
    controller: &ControllerRef,
) -> Result<Vec<u8>, Error> {
    let candidates = controller.candidates();
    for (ns, name) in &candidates {
        let services: Api<Service> = Api::namespaced(client.clone(), ns);
        let svc = match services.get_opt(name).await {
            Ok(Some(svc)) => svc,
            Ok(None) => continue,
            Err(e) => return Err(Error::kube(format!("reading Service {ns}/{name}"), e)),
        };
        let port = svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .and_then(|p| p.first())
            .map(|p| p.name.clone().unwrap_or_else(|| p.port.to_string()))
            .ok_or_else(|| Error::Certificate(format!("Service {ns}/{name} has no ports")))?;
        tracing::debug!(namespace = %ns, name = %name, port = %port, "fetching the certificate through the service proxy");
        let mut req = kube::core::Request::new(format!("{}/proxy/v1", proxy_base(ns, name, &port)))
            .get("cert.pem", &Default::default())
            .map_err(|e| Error::Certificate(format!("building the proxy request: {e}")))?;
        if let Ok(v) = "application/x-pem-file, */*".parse() {
            req.headers_mut().insert("accept", v);
        }
        let text = client.request_text(req).await.map_err(|e| {
            Error::kube(
                format!(
                    "fetching the certificate through the API server's service proxy ({})",
                    cert_proxy_path(ns, name, &port)
                ),
                e,
            )
        })?;
        return Ok(text.into_bytes());
    }
    Err(Error::ControllerNotFound {
        tried: candidates
            .iter()
            .map(|(ns, n)| format!("{ns}/{n}"))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_kubeseal_then_helm() {
        let all = ControllerRef::default().candidates();
        assert_eq!(
            all[0],
            ("kube-system".into(), "sealed-secrets-controller".into())
        );
        assert!(all.contains(&("kube-system".into(), "sealed-secrets".into())));
        let exact = ControllerRef {
            name: Some("a".into()),
            namespace: Some("b".into()),
        };
        assert_eq!(exact.candidates(), vec![("b".into(), "a".into())]);
    }

    #[test]
    fn proxy_path_is_kubeseals() {
        assert_eq!(
            cert_proxy_path("kube-system", "sealed-secrets-controller", "http"),
            "/api/v1/namespaces/kube-system/services/http:sealed-secrets-controller:http/proxy/v1/cert.pem"
        );
    }

    #[test]
    fn flag_is_url_or_file() {
        assert!(matches!(
            CertSource::from_flag("http://127.0.0.1:1/v1/cert.pem"),
            CertSource::Url(_)
        ));
        assert!(matches!(
            CertSource::from_flag("cert.pem"),
            CertSource::File(_)
        ));
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").as_deref(),
            Some(&b"abcde"[..])
        );
    }
}
