//! One generic REST call through the authenticated session, with our retry policy.
//!
//! openstack_sdk brings the parts that are hard to get right (clouds.yaml, Keystone auth, the
//! service catalog with version discovery and `<service>_endpoint_override`, token renewal,
//! microversion headers). Its generated per-call builders are not used: each of our ~30 calls is a
//! JSON body and a path, and one `Call` type with one retry loop keeps the error handling uniform
//! (every request retried on 5xx/429/no answer, never on 4xx).

use std::borrow::Cow;
use std::time::Duration;

use openstack_sdk::api::rest_endpoint_prelude::*;
// `raw(ep).skip_error_check(true)`, the suggested replacement, implements QueryAsync only with the
// crate's `sync` feature (0.22.8), which we do not build.
#[allow(deprecated)]
use openstack_sdk::api::RawQueryAsync;
use openstack_sdk::api::{ApiError, RestEndpoint};
use openstack_sdk::types::{ApiVersion, ServiceType};
use serde_json::Value;

use crate::connect::Session;
use crate::error::{Error, Result};

/// The services we call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Keystone v3.
    Identity,
    /// Nova v2.1.
    Compute,
    /// Neutron v2.0.
    Network,
    /// Glance v2.
    Image,
    /// Cinder v3.
    BlockStorage,
    /// Octavia v2.
    LoadBalancer,
}

impl Service {
    fn service_type(self) -> ServiceType {
        match self {
            Service::Identity => ServiceType::Identity,
            Service::Compute => ServiceType::Compute,
            Service::Network => ServiceType::Network,
            Service::Image => ServiceType::Image,
            Service::BlockStorage => ServiceType::BlockStorage,
            Service::LoadBalancer => ServiceType::LoadBalancer,
        }
    }

    /// The catalog type name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Service::Identity => "identity",
            Service::Compute => "compute",
            Service::Network => "network",
            Service::Image => "image",
            Service::BlockStorage => "block-storage",
            Service::LoadBalancer => "load-balancer",
        }
    }
}

/// One request.
#[derive(Debug, Clone)]
pub struct Call {
    method: http::Method,
    service: Service,
    path: String,
    query: Vec<(String, String)>,
    body: Option<(&'static str, Vec<u8>)>,
    microversion: Option<ApiVersion>,
    headers: http::HeaderMap,
}

impl Call {
    /// A request with `method` to `path` (below the service's versioned endpoint).
    pub fn new(method: http::Method, service: Service, path: impl Into<String>) -> Self {
        Self {
            method,
            service,
            path: path.into(),
            query: Vec::new(),
            body: None,
            microversion: None,
            headers: http::HeaderMap::new(),
        }
    }
    /// GET.
    pub fn get(service: Service, path: impl Into<String>) -> Self {
        Self::new(http::Method::GET, service, path)
    }
    /// POST with a JSON body.
    pub fn post(service: Service, path: impl Into<String>, body: Value) -> Self {
        Self::new(http::Method::POST, service, path).json(body)
    }
    /// PUT with a JSON body.
    pub fn put(service: Service, path: impl Into<String>, body: Value) -> Self {
        Self::new(http::Method::PUT, service, path).json(body)
    }
    /// DELETE.
    pub fn delete(service: Service, path: impl Into<String>) -> Self {
        Self::new(http::Method::DELETE, service, path)
    }
    /// Adds a query parameter.
    pub fn query(mut self, key: &str, value: impl Into<String>) -> Self {
        self.query.push((key.to_string(), value.into()));
        self
    }
    /// Sets a JSON body.
    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(("application/json", body.to_string().into_bytes()));
        self
    }
    /// Sets a raw body with its content type.
    pub fn body(mut self, content_type: &'static str, data: Vec<u8>) -> Self {
        self.body = Some((content_type, data));
        self
    }
    /// Asks for a Nova microversion.
    pub fn microversion(mut self, major: u8, minor: u8) -> Self {
        self.microversion = Some(ApiVersion::new(major, minor));
        self
    }
    /// Adds a request header.
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Ok(v) = http::HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    fn describe(&self) -> String {
        format!("{} {} {}", self.service.name(), self.method, self.path)
    }
}

impl RestEndpoint for Call {
    fn method(&self) -> http::Method {
        self.method.clone()
    }
    fn endpoint(&self) -> Cow<'static, str> {
        self.path.clone().into()
    }
    fn service_type(&self) -> ServiceType {
        self.service.service_type()
    }
    fn parameters(&self) -> QueryParams<'_> {
        let mut q = QueryParams::default();
        for (k, v) in &self.query {
            q.push(k.as_str(), v.as_str());
        }
        q
    }
    fn body(&self) -> Result<Option<(&'static str, Vec<u8>)>, BodyError> {
        Ok(self.body.clone())
    }
    fn request_headers(&self) -> Option<&http::HeaderMap> {
        (!self.headers.is_empty()).then_some(&self.headers)
    }
    fn api_version(&self) -> Option<ApiVersion> {
        match self.service {
            Service::Network => Some(ApiVersion::new(2, 0)),
            _ => None,
        }
    }
    fn min_version(&self) -> Option<ApiVersion> {
        self.microversion
    }
}

/// How often and how long a call is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all (the first one included).
    pub attempts: u32,
    /// First pause; doubled after each failure.
    pub first_delay: Duration,
    /// Longest pause.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 8,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl Session {
    /// Sends `call`, retrying transient failures (5xx, 429, no answer) with backoff — a POST only
    /// when the service certainly did not act on it ([`Error::is_unprocessed`]). Returns the
    /// JSON body (`Value::Null` when empty). A 401 is an [`Error::Auth`] and never retried.
    pub async fn request(&self, call: &Call) -> Result<Value> {
        let (status, body) = self.request_raw(call).await?;
        let _ = status;
        if body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|e| Error::Response {
            what: call.describe(),
            message: format!("not JSON: {e}"),
        })
    }

    /// Like [`Session::request`], returning the status and raw body of the successful answer.
    pub async fn request_raw(&self, call: &Call) -> Result<(u16, bytes::Bytes)> {
        let policy = self.retry;
        let mut delay = policy.first_delay;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.once(call).await {
                Ok(ok) => return Ok(ok),
                Err(e)
                    if e.is_transient()
                        && (call.method != http::Method::POST || e.is_unprocessed())
                        && attempt < policy.attempts =>
                {
                    tracing::debug!(call = %call.describe(), attempt, error = %e, "transient failure, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(policy.max_delay);
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn once(&self, call: &Call) -> Result<(u16, bytes::Bytes)> {
        let transport = |message: String| Error::Transport {
            service: call.service.name().into(),
            method: call.method.to_string(),
            path: call.path.clone(),
            message,
        };
        #[allow(deprecated)]
        let answer = call.raw_query_async_ll(&self.os, Some(false)).await;
        let rsp = match answer {
            Ok(rsp) => rsp,
            Err(ApiError::Client { source }) => {
                return Err(transport(crate::error::chain(&source)));
            }
            Err(e) => {
                let text = crate::error::chain(&e);
                // catalog/discovery failures behind a fault proxy arrive as session errors
                if text.contains("503")
                    || text.contains("502")
                    || text.contains("504")
                    || text.contains("500")
                {
                    return Err(transport(text));
                }
                return Err(Error::Response {
                    what: call.describe(),
                    message: text,
                });
            }
        };
        let status = rsp.status().as_u16();
        let body = rsp.into_body();
        if (200..300).contains(&status) {
            return Ok((status, body));
        }
        let message = error_message(&body);
        if status == 401 {
            return Err(Error::Auth {
                cloud: self.label.clone(),
                message: format!(
                    "{} answered 401 ({message}); the token or credential is no longer valid",
                    call.describe()
                ),
            });
        }
        if status == 403 {
            return Err(Error::Forbidden {
                action: call.describe(),
                message,
                hint: String::new(),
            });
        }
        Err(Error::Api {
            service: call.service.name().into(),
            method: call.method.to_string(),
            path: call.path.clone(),
            status,
            message,
        })
    }

    /// GET returning JSON.
    pub async fn get(&self, service: Service, path: &str) -> Result<Value> {
        self.request(&Call::get(service, path)).await
    }

    /// GET of a list: `key` of the answer as an array.
    pub async fn list(&self, call: Call, key: &str) -> Result<Vec<Value>> {
        let v = self.request(&call).await?;
        match v.get(key) {
            Some(Value::Array(items)) => Ok(items.clone()),
            _ => Err(Error::Response {
                what: call.describe(),
                message: format!("no `{key}` list in the answer"),
            }),
        }
    }

    /// DELETE, where 404 counts as done (someone else, or an earlier attempt, got there first).
    pub async fn delete_if_exists(&self, service: Service, path: &str) -> Result<bool> {
        match self.request_raw(&Call::delete(service, path)).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The human part of an OpenStack error body. Services disagree on the shape:
/// `{"NeutronError": {"message"}}`, `{"itemNotFound": {"message"}}`, `{"error": {"message"}}`,
/// `{"faultstring"}`, `{"message"}`, or plain text.
pub(crate) fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return text.trim().chars().take(300).collect();
    };
    fn find(v: &Value) -> Option<String> {
        match v {
            Value::Object(m) => {
                for k in ["message", "faultstring", "detail", "title"] {
                    if let Some(Value::String(s)) = m.get(k) {
                        return Some(s.clone());
                    }
                }
                m.values().find_map(find)
            }
            _ => None,
        }
    }
    find(&v).unwrap_or_else(|| text.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_of_each_service_shape() {
        assert_eq!(
            error_message(
                br#"{"NeutronError": {"type": "X", "message": "quota exceeded", "detail": ""}}"#
            ),
            "quota exceeded"
        );
        assert_eq!(
            error_message(
                br#"{"itemNotFound": {"code": 404, "message": "Flavor m9 could not be found."}}"#
            ),
            "Flavor m9 could not be found."
        );
        assert_eq!(
            error_message(br#"{"faultstring": "Load Balancer not found"}"#),
            "Load Balancer not found"
        );
        assert_eq!(error_message(b"<html>503</html>"), "<html>503</html>");
    }

    #[test]
    fn only_5xx_429_and_silence_are_transient() {
        let api = |status| Error::Api {
            service: "network".into(),
            method: "GET".into(),
            path: "ports".into(),
            status,
            message: String::new(),
        };
        for s in [429, 500, 502, 503, 504] {
            assert!(api(s).is_transient(), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 413] {
            assert!(!api(s).is_transient(), "{s}");
        }
        let auth = Error::Auth {
            cloud: "x".into(),
            message: "401".into(),
        };
        assert!(!auth.is_transient());
    }
}
