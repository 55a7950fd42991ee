//! Bearer tokens: admin tokens for the admin API, a separate data-plane token for admission.
//!
//! Comparison is constant-time (`subtle`) so response timing does not reveal how much of a
//! guess was right; only a token's length can leak, which says nothing useful about a random
//! token.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use crate::api::error::ApiError;
use crate::state::AppState;

/// Which API a token opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Budgets, prices, switches, usage.
    Admin,
    /// Reserve and settle.
    DataPlane,
}

/// The configured tokens.
#[derive(Clone, Default)]
pub struct Auth {
    admin: Vec<Vec<u8>>,
    dataplane: Vec<Vec<u8>>,
    disabled: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print tokens.
        f.debug_struct("Auth")
            .field("admin_tokens", &self.admin.len())
            .field("dataplane_tokens", &self.dataplane.len())
            .field("disabled", &self.disabled)
            .finish()
    }
}

fn any_matches(tokens: &[Vec<u8>], given: &[u8]) -> bool {
    // Check every token (no early exit) so timing does not tell which one matched.
    tokens
        .iter()
        .fold(subtle::Choice::from(0), |acc, t| {
            acc | t.as_slice().ct_eq(given)
        })
        .into()
}

impl Auth {
    /// Tokens for each role; empty strings are ignored.
    pub fn new(admin: Vec<String>, dataplane: Vec<String>) -> Auth {
        let keep = |v: Vec<String>| {
            v.into_iter()
                .map(|t| t.trim().as_bytes().to_vec())
                .filter(|t| !t.is_empty())
                .collect()
        };
        Auth {
            admin: keep(admin),
            dataplane: keep(dataplane),
            disabled: false,
        }
    }

    /// Lets every request through (local development only; logged loudly at start).
    pub fn disabled() -> Auth {
        Auth {
            disabled: true,
            ..Auth::default()
        }
    }

    /// Whether authentication is off.
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// Whether a role has at least one token.
    pub fn has_tokens(&self, role: Role) -> bool {
        match role {
            Role::Admin => !self.admin.is_empty(),
            Role::DataPlane => !self.dataplane.is_empty(),
        }
    }

    /// Checks an `Authorization` header value for `role`.
    pub fn check(&self, role: Role, header: Option<&str>) -> Result<(), ApiError> {
        if self.disabled {
            return Ok(());
        }
        let token = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::MissingToken)?;
        let (mine, other) = match role {
            Role::Admin => (&self.admin, &self.dataplane),
            Role::DataPlane => (&self.dataplane, &self.admin),
        };
        if any_matches(mine, token.as_bytes()) {
            Ok(())
        } else if any_matches(other, token.as_bytes()) {
            // A real token, for the other API.
            Err(ApiError::Forbidden)
        } else {
            Err(ApiError::InvalidToken)
        }
    }
}

async fn require(state: &AppState, role: Role, req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match state.auth.check(role, header) {
        Ok(()) => next.run(req).await,
        Err(e) => axum::response::IntoResponse::into_response(e),
    }
}

/// Middleware: the admin token is required.
pub async fn require_admin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    require(&state, Role::Admin, req, next).await
}

/// Middleware: the data-plane token is required.
pub async fn require_dataplane(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    require(&state, Role::DataPlane, req, next).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_open_only_their_own_api() {
        let a = Auth::new(vec!["adm1".into(), "adm2".into()], vec!["dp".into()]);
        assert!(a.check(Role::Admin, Some("Bearer adm2")).is_ok());
        assert!(a.check(Role::DataPlane, Some("Bearer dp")).is_ok());
        assert!(matches!(
            a.check(Role::Admin, Some("Bearer dp")),
            Err(ApiError::Forbidden)
        ));
        assert!(matches!(
            a.check(Role::Admin, Some("Bearer nope")),
            Err(ApiError::InvalidToken)
        ));
        assert!(matches!(
            a.check(Role::Admin, None),
            Err(ApiError::MissingToken)
        ));
        assert!(matches!(
            a.check(Role::Admin, Some("Basic x")),
            Err(ApiError::MissingToken)
        ));
    }

    #[test]
    fn debug_output_never_shows_tokens() {
        let a = Auth::new(vec!["secret-admin".into()], vec![]);
        assert!(!format!("{a:?}").contains("secret"));
    }
}
