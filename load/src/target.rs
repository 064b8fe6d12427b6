//! Which hosts a load run may target: loopback only, unless the operator says they own it.

use std::net::IpAddr;

/// Why a `--host` was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused(pub String);

/// Accepts `http(s)://HOST[:PORT][/...]` when HOST is `localhost`, in 127.0.0.0/8 or `::1`;
/// any other host only with `own_it` (`--i-own-this-host`). Returns the URL without a
/// trailing slash.
pub fn check_host(url: &str, own_it: bool) -> Result<String, Refused> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| Refused(format!("`{url}` is not an http(s) URL")))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    if host.is_empty() {
        return Err(Refused(format!("`{url}` has no host")));
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback && !own_it {
        return Err(Refused(format!(
            "`{host}` is not a loopback address; load runs only target 127.0.0.0/8, ::1 or \
             localhost unless --i-own-this-host is given"
        )));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only_by_default() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.9.9.9/",
            "http://[::1]:80",
            "https://localhost",
        ] {
            assert!(check_host(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:8080",
            "http://192.168.1.2",
            "http://172.16.0.1",
            "http://8.8.8.8",
            "http://example.com",
            "http://[2001:db8::1]:80",
            "ftp://127.0.0.1",
            "http://",
        ] {
            assert!(check_host(bad, false).is_err(), "{bad}");
        }
        assert_eq!(
            check_host("http://example.com/", true).unwrap(),
            "http://example.com"
        );
    }
}
