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

    /// POSTs `body` (JSON) to `uri` and waits at most `timeout` for the answer's headers.
    /// Its body is read by the caller, within the request's deadline.
    pub async fn post_json(
        &self,
        uri: &Uri,
        bearer: Option<&str>,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<super::UpstreamResponse, ApiError> {
        let mut req = Request::new(Full::new(Bytes::from(body)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri.clone();
        let headers = req.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(key) = bearer {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                ApiError::new(
                    Code::InternalError,
                    "the upstream's API key is not a valid header value",
                )
            })?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        match tokio::time::timeout(timeout, self.0.request(req)).await {
            Err(_) => Err(super::answer_timeout()),
            Ok(Err(e)) => Err(super::request_error(e)),
            Ok(Ok(resp)) => Ok(resp.map(reqwest::Body::wrap)),
        }
    }
}
