//! `bare-proxy`: the floor of the gateway's stack for the hop table — hyper's HTTP/1 server and
//! hyper-util's pooled client on one single-threaded tokio runtime per core (the gateway's
//! connection-worker shape), forwarding each request's bytes to one upstream and the answer's
//! bytes back, with nothing in between: no parse, no checks, no log line.
//!
//! Why: "gateway CPU per request ≤ 1.5 × nginx's" mixes two costs, the stack the gateway is
//! built on (tokio, hyper, hyper-util) and the gateway's own work. This row measures the first
//! alone, in the same run, so the table says how much of the gap is which
//! (`load --scenario hop`, README "The cost of one hop").
//!
//! Usage: `bare-proxy --bind 127.0.0.1:0 --upstream http://127.0.0.1:PORT`; prints
//! `listening on ADDR`. Only loopback binds are accepted (load runs stay on loopback); it
//! stops after `--ttl-secs` (default 600) whatever happens.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The largest request body forwarded (the hop's bodies are a few hundred bytes).
const MAX_BODY_BYTES: usize = 1 << 20;
/// Each upstream answer's headers must come within this.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

type Upstream = Client<HttpConnector, Full<Bytes>>;

struct Args {
    bind: SocketAddr,
    upstream: Uri,
    ttl: Duration,
}

fn args(argv: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut bind = None;
    let mut upstream = None;
    let mut ttl = Duration::from_secs(600);
    let mut it = argv.into_iter();
    while let Some(a) = it.next() {
        let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--bind" => {
                bind = Some(
                    v.parse::<SocketAddr>()
                        .map_err(|e| format!("--bind: {e}"))?,
                )
            }
            "--upstream" => {
                upstream = Some(v.parse::<Uri>().map_err(|e| format!("--upstream: {e}"))?)
            }
            "--ttl-secs" => {
                ttl = Duration::from_secs(v.parse().map_err(|e| format!("--ttl-secs: {e}"))?)
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    let bind = bind.ok_or("--bind is required")?;
    if !bind.ip().is_loopback() {
        return Err(format!("--bind {bind}: only loopback addresses"));
    }
    let upstream = upstream.ok_or("--upstream is required")?;
    let loopback = upstream.host().is_some_and(|h| {
        h == "localhost"
            || h.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    if !loopback || upstream.scheme_str() != Some("http") {
        return Err(format!("--upstream {upstream}: only http:// on loopback"));
    }
    Ok(Args {
        bind,
        upstream,
        ttl,
    })
}

fn main() {
    let args = match args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bare-proxy: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args) {
        eprintln!("bare-proxy: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> std::io::Result<()> {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut workers = Vec::with_capacity(n);
    for _ in 0..n {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        std::thread::spawn(move || rt.block_on(std::future::pending::<()>()));
        workers.push(handle);
    }
    let accept = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    accept.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.bind).await?;
        println!("listening on {}", listener.local_addr()?);
        let serve = async {
            let mut next = 0usize;
            loop {
                let (tcp, _) = match listener.accept().await {
                    Ok(c) => c,
                    Err(_) => continue,
                };
                let _ = tcp.set_nodelay(true);
                let Ok(std_tcp) = tcp.into_std() else {
                    continue;
                };
                let upstream = args.upstream.clone();
                // Round robin: the hop's connections all stay open for the whole run.
                workers[next % workers.len()].spawn(async move {
                    let Ok(tcp) = tokio::net::TcpStream::from_std(std_tcp) else {
                        return;
                    };
                    serve(tcp, upstream).await;
                });
                next += 1;
            }
        };
        tokio::select! {
            () = serve => Ok(()),
            () = tokio::time::sleep(args.ttl) => Ok(()),
        }
    })
}

thread_local! {
    /// One pool per worker, as the gateway has.
    static CLIENT: Upstream = {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .build(http)
    };
}

async fn serve(tcp: tokio::net::TcpStream, upstream: Uri) {
    let client = CLIENT.with(Clone::clone);
    let host = upstream
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let client = client.clone();
        let host = host.clone();
        let base = upstream.clone();
        async move { Ok::<_, Infallible>(forward(&client, &base, host, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(tcp), svc)
        .await;
}

async fn forward(
    client: &Upstream,
    base: &Uri,
    host: Option<HeaderValue>,
    req: Request<Incoming>,
) -> Response<http_body_util::combinators::BoxBody<Bytes, hyper::Error>> {
    let (parts, body) = req.into_parts();
    let Ok(body) = Limited::new(body, MAX_BODY_BYTES).collect().await else {
        return status(StatusCode::PAYLOAD_TOO_LARGE);
    };
    let mut uri = Uri::builder()
        .scheme("http")
        .authority(base.authority().map_or("", |a| a.as_str()));
    if let Some(pq) = parts.uri.path_and_query() {
        uri = uri.path_and_query(pq.as_str());
    }
    let Ok(uri) = uri.build() else {
        return status(StatusCode::BAD_REQUEST);
    };
    let mut out = Request::new(Full::new(body.to_bytes()));
    *out.method_mut() = parts.method;
    *out.uri_mut() = uri;
    let headers = out.headers_mut();
    if let Some(h) = host {
        headers.insert(header::HOST, h);
    }
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        headers.insert(header::CONTENT_TYPE, ct.clone());
    }
    match tokio::time::timeout(UPSTREAM_TIMEOUT, client.request(out)).await {
        Ok(Ok(resp)) => {
            let (p, body) = resp.into_parts();
            let mut back = Response::new(body.boxed());
            *back.status_mut() = p.status;
            if let Some(ct) = p.headers.get(header::CONTENT_TYPE) {
                back.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
            }
            back
        }
        _ => status(StatusCode::BAD_GATEWAY),
    }
}

fn status(s: StatusCode) -> Response<http_body_util::combinators::BoxBody<Bytes, hyper::Error>> {
    let mut r = Response::new(
        Full::new(Bytes::new())
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *r.status_mut() = s;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(a: &[&str]) -> Result<Args, String> {
        args(a.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn only_loopback_on_both_sides() {
        let ok = parse(&["--bind", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9"]).unwrap();
        assert_eq!(ok.upstream.authority().unwrap().as_str(), "127.0.0.1:9");
        assert_eq!(ok.ttl, Duration::from_secs(600));
        assert!(parse(&["--bind", "0.0.0.0:0", "--upstream", "http://127.0.0.1:9"]).is_err());
        assert!(parse(&["--bind", "127.0.0.1:0", "--upstream", "http://10.0.0.1:9"]).is_err());
        assert!(parse(&["--bind", "127.0.0.1:0", "--upstream", "https://127.0.0.1:9"]).is_err());
        assert!(parse(&["--bind", "127.0.0.1:0"]).is_err());
        assert!(parse(&[
            "--bind",
            "127.0.0.1:0",
            "--upstream",
            "http://localhost:9",
            "--ttl-secs",
            "5"
        ])
        .is_ok_and(|a| a.ttl == Duration::from_secs(5)));
    }
}
