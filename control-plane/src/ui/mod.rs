//! The web dashboard at `/ui` (docs/dashboard.md): static files compiled into the binary
//! ([`assets`]), served without auth. The pages hold no data of their own: they call the
//! public admin API with the token the user enters, kept in the browser's session storage.

pub mod assets;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::api::error::ApiError;
use crate::state::AppState;

/// What the pages may load and call: only this origin (no CDN, no inline script), plus the
/// calculator's WebAssembly compilation. The API's own answers are JSON and set none.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; \
base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The dashboard's routes: `/ui` redirects to `/ui/`, which is the single page; every other
/// `/ui/<file>` is an embedded asset or a 404.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { serve("index.html") }))
        .route(
            "/ui/{*file}",
            get(|Path(file): Path<String>| async move { serve(&file) }),
        )
}

fn serve(file: &str) -> Response {
    let Some(asset) = assets::find(file) else {
        return ApiError::NotFound(format!("dashboard file {file:?}")).into_response();
    };
    let mut resp = (StatusCode::OK, asset.bytes).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // Assets change with the binary: a browser asks again on each load (they are small and
    // served by the same host), so an upgraded control plane never meets stale pages.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}
