//! Authentication: bearer token → tenant, by constant-time comparison of SHA-256 hashes.

use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::catalog::Code;
use crate::config::{sha256, Tenant};
use crate::error::ApiError;

/// Who is calling: the tenant index and the SHA-256 of the bearer (the rate-limit key).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Principal {
    pub tenant: usize,
    /// Index of the matched token in the tenant's `token_hashes` / `token_rules`.
    pub token: usize,
    pub key: [u8; 32],
}

/// The optional second place a token may come in (seed 002's clients send it).
pub(crate) const X_API_KEY: &str = "x-api-key";

/// Authentication proper; with `accept_x_api_key` a request without `Authorization` may send
/// the bare token in `X-API-Key` (when both are present, `Authorization` wins).
pub(crate) fn authenticate_with(
    headers: &HeaderMap,
    tenants: &[Tenant],
    accept_x_api_key: bool,
) -> Result<Principal, ApiError> {
    if accept_x_api_key && headers.get(axum::http::header::AUTHORIZATION).is_none() {
        if let Some(v) = headers.get(X_API_KEY) {
            let token = v.to_str().ok().map(str::trim).unwrap_or_default();
            return match_token(token, headers, tenants, "headers.x-api-key");
        }
    }
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
    match_token(token, headers, tenants, "headers.authorization")
}

fn match_token(
    token: &str,
    headers: &HeaderMap,
    tenants: &[Tenant],
    param: &str,
) -> Result<Principal, ApiError> {
    let invalid =
        || ApiError::new(Code::InvalidAuthorization, "the bearer token is not valid").param(param);
    if token.is_empty() {
        return Err(invalid());
    }
    let key = sha256(token);
    // Compare against every hash, without an early exit, so timing says nothing about
    // which (or whether a) token matched.
    let mut found: Option<(usize, usize)> = None;
    for (i, tenant) in tenants.iter().enumerate() {
        for (j, hash) in tenant.token_hashes.iter().enumerate() {
            if bool::from(hash.ct_eq(&key)) {
                found = Some((i, j));
            }
        }
    }
    let (tenant, token) = found.ok_or_else(invalid)?;
    if let Some(claimed) = headers.get(crate::contract::TENANT_ID) {
        if claimed.as_bytes() != tenants[tenant].id.as_bytes() {
            return Err(ApiError::new(
                Code::InvalidAuthorization,
                "the token is not bound to the tenant named in X-Tenant-Id",
            )
            .param("headers.x-tenant-id"));
        }
    }
    Ok(Principal { tenant, token, key })
}

/// The standing of an authenticated caller, in SPEC §3 order: key expiry, then tenant
/// disabled. `now_unix` is the gateway clock.
pub(crate) fn standing(p: &Principal, tenants: &[Tenant], now_unix: u64) -> Result<(), ApiError> {
    let tenant = &tenants[p.tenant];
    if tenant
        .token_rule(p.token)
        .expires_at
        .is_some_and(|at| now_unix >= at)
    {
        return Err(ApiError::new(
            Code::KeyExpired,
            "this token has expired; ask the operator for a new one",
        )
        .param("headers.authorization"));
    }
    if tenant.disabled {
        return Err(ApiError::new(
            Code::TenantDisabled,
            "this token's tenant is disabled; contact the operator",
        ));
    }
    Ok(())
}

/// Who is calling, and whether their token and tenant are in good standing: the first step of
/// the bearer routes' one layer, [`crate::admission::bearer`].
pub(crate) fn principal(
    state: &crate::state::AppState,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    let p = authenticate_with(
        headers,
        &state.config.tenants,
        state.config.accept_x_api_key,
    )?;
    standing(&p, &state.config.tenants, state.clock.now_unix())?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Allowed;

    fn authenticate(headers: &HeaderMap, tenants: &[Tenant]) -> Result<Principal, ApiError> {
        authenticate_with(headers, tenants, false)
    }

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
    fn expiry_then_disabled_in_that_order() {
        let mut t = tenants();
        t[0].token_rules = vec![crate::config::TokenRule {
            expires_at: Some(100),
            max_concurrent: None,
        }];
        let p = authenticate(&headers(&[("authorization", "Bearer tok-a")]), &t).unwrap();
        assert!(standing(&p, &t, 99).is_ok());
        assert_eq!(standing(&p, &t, 100).unwrap_err().code, Code::KeyExpired);
        t[0].disabled = true;
        assert_eq!(standing(&p, &t, 100).unwrap_err().code, Code::KeyExpired);
        assert_eq!(standing(&p, &t, 99).unwrap_err().code, Code::TenantDisabled);
    }

    #[test]
    fn x_api_key_only_when_enabled() {
        let t = tenants();
        let h = headers(&[("x-api-key", "tok-b")]);
        assert_eq!(
            authenticate_with(&h, &t, false).unwrap_err().code,
            Code::MissingAuthorization
        );
        assert_eq!(authenticate_with(&h, &t, true).unwrap().tenant, 1);
        let bad = headers(&[("x-api-key", "nope")]);
        let e = authenticate_with(&bad, &t, true).unwrap_err();
        assert_eq!(e.code, Code::InvalidAuthorization);
        assert_eq!(e.param.as_deref(), Some("headers.x-api-key"));
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
