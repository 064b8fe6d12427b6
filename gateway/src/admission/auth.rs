//! Authentication: bearer token → tenant, by constant-time comparison of SHA-256 hashes.

use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::catalog::Code;
use crate::config::{sha256, Tenant};
use crate::error::ApiError;

/// Who is calling: the tenant index and the SHA-256 of the bearer (the rate-limit key).
#[derive(Clone, Copy, Debug)]
pub struct Principal {
    pub tenant: usize,
    pub key: [u8; 32],
}

pub fn authenticate(headers: &HeaderMap, tenants: &[Tenant]) -> Result<Principal, ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Err(ApiError::new(
            Code::MissingAuthorization,
            "Authorization header is missing; send `Authorization: Bearer <token>`",
        )
        .param("headers.authorization"));
    };
    let invalid = || {
        ApiError::new(Code::InvalidAuthorization, "the bearer token is not valid")
            .param("headers.authorization")
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(invalid)?;
    let key = sha256(token);
    // Compare against every hash, without an early exit, so timing says nothing about
    // which (or whether a) token matched.
    let mut found: Option<usize> = None;
    for (i, tenant) in tenants.iter().enumerate() {
        for hash in &tenant.token_hashes {
            if bool::from(hash.ct_eq(&key)) {
                found = Some(i);
            }
        }
    }
    let tenant = found.ok_or_else(invalid)?;
    if let Some(claimed) = headers.get(crate::contract::TENANT_ID) {
        if claimed.as_bytes() != tenants[tenant].id.as_bytes() {
            return Err(ApiError::new(
                Code::InvalidAuthorization,
                "the token is not bound to the tenant named in X-Tenant-Id",
            )
            .param("headers.x-tenant-id"));
        }
    }
    Ok(Principal { tenant, key })
}

/// Middleware for every bearer route: authenticate and hand the [`Principal`] on. Admission
/// (rate limits) is the next stage, [`crate::admission::admit`].
pub async fn require(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match authenticate(req.headers(), &state.config.tenants) {
        Ok(p) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Allowed;

    fn tenants() -> Vec<Tenant> {
        ["a", "b"]
            .iter()
            .map(|id| Tenant {
                id: id.to_string(),
                token_hashes: vec![sha256(&format!("tok-{id}"))],
                allowed: Allowed::All,
                rate_limit: None,
                budgets: vec![],
                ..Default::default()
            })
            .collect()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn bearer_resolves_to_its_tenant() {
        let p = authenticate(&headers(&[("authorization", "Bearer tok-b")]), &tenants()).unwrap();
        assert_eq!(p.tenant, 1);
        let p = authenticate(&headers(&[("authorization", "bearer  tok-a ")]), &tenants()).unwrap();
        assert_eq!(p.tenant, 0);
    }

    #[test]
    fn missing_wrong_and_foreign_tenant() {
        let t = tenants();
        assert_eq!(
            authenticate(&headers(&[]), &t).unwrap_err().code,
            Code::MissingAuthorization
        );
        for bad in ["Bearer nope", "Basic dG9rLWE=", "Bearer ", "tok-a"] {
            let e = authenticate(&headers(&[("authorization", bad)]), &t).unwrap_err();
            assert_eq!(e.code, Code::InvalidAuthorization, "{bad}");
        }
        let e = authenticate(
            &headers(&[("authorization", "Bearer tok-a"), ("x-tenant-id", "b")]),
            &t,
        )
        .unwrap_err();
        assert_eq!(e.code, Code::InvalidAuthorization);
        assert_eq!(e.param.as_deref(), Some("headers.x-tenant-id"));
        assert!(authenticate(
            &headers(&[("authorization", "Bearer tok-a"), ("x-tenant-id", "a")]),
            &t
        )
        .is_ok());
    }
}
