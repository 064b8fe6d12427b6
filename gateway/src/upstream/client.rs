//! The upstream chat client: hyper-util's pooled HTTP/1.1 client with rustls, one per
//! connection worker, without reqwest's per-request layers.
//!
//! Measured with callgrind on the plain path (README "The cost of one hop"): reqwest 0.12
//! parsed the upstream URL twice per request (its redirect layer runs `Url::parse` whatever
//! the policy, and its pending request parses it again) and wrapped every call in redirect
//! and retry futures, together about a sixth of the gateway's user-space instructions per
//! request. Here a request is built from the upstream's `Uri`, parsed once at start-up, and
//! the answer is handed on as an `UpstreamResponse` (its body read by the same code as
//! before). HTTP tools and the readiness probe keep reqwest.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::catalog::Code;
use crate::config::Config;
use crate::error::ApiError;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// An upstream's chat endpoint with the request headers that never change, built once at
/// start-up: hyper-util formats the `Host` value (`format!` of host and port) on every request
/// that has none, and the `Authorization` value was formatted per request as well, together
/// about 2 % of a plain request's instructions (callgrind, README "The cost of one hop").
#[derive(Clone, Debug)]
pub struct ChatTarget {
    pub uri: Uri,
    host: HeaderValue,
    /// `Bearer <api_key>`, marked sensitive; `Err` when the key is not a valid header value
    /// (every request then fails with `internal_error`, as before).
    authorization: Result<Option<HeaderValue>, ()>,
}

impl ChatTarget {
    /// `None` when `chat_url` is not an absolute URI with a host (start-up validation refuses
    /// one).
    pub fn new(chat_url: &str, api_key: Option<&str>) -> Option<ChatTarget> {
        let uri: Uri = chat_url.parse().ok()?;
        let host = host_value(&uri)?;
        let authorization = match api_key {
            None => Ok(None),
            Some(key) => HeaderValue::from_str(&format!("Bearer {key}"))
                .map(|mut v| {
                    v.set_sensitive(true);
                    Some(v)
                })
                .map_err(|_| ()),
        };
        Some(ChatTarget {
            uri,
            host,
            authorization,
        })
    }
}

/// The `Host` value hyper-util's client writes for `uri` (`client/legacy/client.rs`,
/// `send_request`: the host, and `:port` unless it is the scheme's default).
fn host_value(uri: &Uri) -> Option<HeaderValue> {
    let host = uri.host()?;
    let secure = matches!(uri.scheme_str(), Some("https" | "wss"));
    let value = match uri.port() {
        Some(p) if (p.as_u16() == 443 && secure) || (p.as_u16() == 80 && !secure) => {
            host.to_owned()
        }
        Some(p) => format!("{host}:{}", p.as_str()),
        None => host.to_owned(),
    };
    HeaderValue::from_str(&value).ok()
}

/// A pool of upstream connections (a clone is a handle to the same pool).
#[derive(Clone, Debug)]
pub struct UpstreamClient(Client<Connector, Full<Bytes>>);

impl UpstreamClient {
    /// The client the configuration asks for: TCP_NODELAY, up to 256 idle connections per
    /// host, TCP/TLS connect within min(10 s, HTTP_TOTAL_TIMEOUT_SECS), redirects never
    /// followed (hyper-util has no redirect layer: a 3xx is an answer, an `upstream_error`).
    pub fn new(config: &Config) -> Result<UpstreamClient, rustls::Error> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10).min(config.http_total_timeout)));
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        // The provider named, not the process default: other crates of a build may enable a
        // second one, and then no default exists.
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .build(https);
        Ok(UpstreamClient(client))
    }

    /// POSTs `body` (JSON) to `target` and waits at most `timeout` for the answer's headers.
    /// Its body is read by the caller, within the request's deadline.
    pub async fn post_json(
        &self,
        target: &ChatTarget,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<super::UpstreamResponse, ApiError> {
        let authorization = target.authorization.clone().map_err(|()| {
            ApiError::new(
                Code::InternalError,
                "the upstream's API key is not a valid header value",
            )
        })?;
        let mut req = Request::new(Full::new(Bytes::from(body)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = target.uri.clone();
        let headers = req.headers_mut();
        // Set here, so hyper-util does not format it per request; the same value it would.
        headers.insert(header::HOST, target.host.clone());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(value) = authorization {
            headers.insert(header::AUTHORIZATION, value);
        }
        match tokio::time::timeout(timeout, self.0.request(req)).await {
            Err(_) => Err(super::answer_timeout()),
            Ok(Err(e)) => Err(super::request_error(e)),
            Ok(Ok(resp)) => Ok(resp.map(reqwest::Body::wrap)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What hyper-util 0.1 writes as `Host` (`get_non_default_port` in
    /// `client/legacy/client.rs`): the scheme's default port is left out, any other is kept.
    #[test]
    fn the_host_value_is_what_hyper_util_would_write() {
        for (url, host) in [
            (
                "http://127.0.0.1:8000/v1/chat/completions",
                "127.0.0.1:8000",
            ),
            (
                "http://upstream.example/v1/chat/completions",
                "upstream.example",
            ),
            (
                "http://upstream.example:80/v1/chat/completions",
                "upstream.example",
            ),
            (
                "https://api.openai.com/v1/chat/completions",
                "api.openai.com",
            ),
            (
                "https://api.openai.com:443/v1/chat/completions",
                "api.openai.com",
            ),
            ("https://api.openai.com:80/v1", "api.openai.com:80"),
            ("http://upstream.example:443/v1", "upstream.example:443"),
            ("http://[::1]:9000/v1/chat/completions", "[::1]:9000"),
        ] {
            let t = ChatTarget::new(url, None).unwrap();
            assert_eq!(t.host, host, "{url}");
            assert_eq!(t.authorization, Ok(None));
        }
        assert!(ChatTarget::new("/no/host", None).is_none());
        assert!(ChatTarget::new("not a uri", None).is_none());
    }

    #[test]
    fn the_api_key_becomes_a_sensitive_bearer_value_or_a_refusal() {
        let t = ChatTarget::new("http://127.0.0.1:1/v1", Some("sk-key")).unwrap();
        let v = t.authorization.unwrap().unwrap();
        assert_eq!(v, "Bearer sk-key");
        assert!(v.is_sensitive());
        let bad = ChatTarget::new("http://127.0.0.1:1/v1", Some("line\nbreak")).unwrap();
        assert!(bad.authorization.is_err());
    }
}
