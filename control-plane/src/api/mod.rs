//! The HTTP API: routes, auth layers, the OpenAPI document, and helpers shared by handlers.

pub mod admission;
pub mod alerts;
pub mod anomalies;
pub mod budgets;
pub mod channels;
pub mod emergency;
pub mod error;
pub mod forecasts;
pub mod json;
pub mod lease;
pub mod ledger;
pub mod ops;
pub mod path;
pub mod price_import;
pub mod prices;
pub mod profiles;
pub mod recommendations;
pub mod reports;
pub mod views;

use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::http::header::IF_MATCH;
use axum::routing::{get, post, put};
use axum::{Json, Router, middleware};
use utoipa::OpenApi;

use crate::auth::{require_admin, require_dataplane};
use crate::state::AppState;
use crate::store::{Expect, WriteConflict};
use error::ApiError;

/// The OpenAPI document, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(title = "Tollgate control plane", description = "Budgets, prices and admission for LLM traffic. Money is integer nano-USD (1e-9 USD)."),
    paths(
        admission::reserve, admission::settle, admission::prices,
        lease::lease, lease::return_lease, lease::list,
        budgets::create, budgets::list, budgets::get, budgets::update, budgets::delete,
        budgets::reset, budgets::reopen, budgets::usage,
        prices::put, prices::get, price_import::import,
        emergency::put, emergency::delete, emergency::list,
        ops::healthz, ops::readyz, ops::metrics, ops::alerts, ops::audit,
        profiles::list, profiles::get, profiles::put, profiles::delete,
        reports::spend, reports::chargeback, reports::invoice,
        channels::create, channels::list, channels::get, channels::update, channels::delete,
        channels::test,
        alerts::deliveries, alerts::dead_letters, anomalies::list,
        ledger::records, ledger::rollups, ledger::import,
        forecasts::list, forecasts::get, recommendations::list,
    ),
    components(schemas(lease::LeaseList, crate::store::LeaseView, crate::store::LeaseMeta,
        crate::store::LeaseAmounts, tollgate_model::wire::v1::Lease,
        tollgate_model::wire::v1::NoLeaseReason, ledger::ImportSummary, crate::ledger::RequestRecord,
        crate::ledger::RollupRow, crate::ledger::TokenCounts, crate::ledger::CostParts,
        crate::ledger::CallOutcome, crate::ledger::RecordSource, crate::ledger::Granularity,
        views::BudgetView, views::BudgetPage, views::UsageView, views::PriceView,
        price_import::PriceImport, crate::prices::merge::MergeReport,
        views::SwitchView, views::ReopenView, error::ErrorBody, error::ErrorDetail,
        crate::catalog::Switch, crate::catalog::SwitchMode, crate::alerts::Alert,
        profiles::ProfileView, crate::profiles::ProfileUse, crate::profiles::ProfileOrigin,
        tollgate_model::profile::ProfileSpec, tollgate_model::profile::Settings,
        tollgate_model::profile::ProfiledBudgetSpec, tollgate_model::profile::SettingSource,
        budgets::BudgetBody, reports::SpendReport, reports::ChargebackReport,
        reports::source::Source, crate::analytics::report::Report,
        crate::analytics::report::ReportRow, crate::analytics::Totals, crate::analytics::Tokens,
        crate::analytics::buckets::Bucket, crate::analytics::chargeback::Chargeback,
        crate::analytics::chargeback::ChargebackRow, crate::analytics::chargeback::Allocation,
        crate::analytics::invoice::Invoice, crate::analytics::invoice::InvoiceLine,
        crate::alerts::Severity,
        crate::alerts::AlertKind, crate::alerts::channel::ChannelSpec,
        crate::alerts::channel::Target, crate::alerts::channel::SmtpTls,
        crate::alerts::channel::ChannelView, crate::alerts::channel::TargetView,
        crate::alerts::record::DeliveryRecord, crate::alerts::record::DeliveryState,
        crate::alerts::record::Attempt, crate::alerts::events::AnomalyDetail,
        crate::alerts::events::EmergencyDetail, crate::alerts::events::FailOpenDetail,
        crate::analytics::anomaly::Metric, crate::analytics::anomaly::Detector,
        crate::analytics::anomaly::Direction, crate::alerts::anomaly_pass::PassReport,
        crate::alerts::anomaly_pass::Anomaly,
        forecasts::BudgetForecast, forecasts::ForecastList, forecasts::ScopeForecast,
        crate::analytics::forecast::Forecast, crate::analytics::forecast::EndOfPeriod,
        crate::analytics::forecast::Interval, crate::analytics::forecast::Runout,
        crate::analytics::forecast::RunoutStatus, crate::analytics::forecast::BurnRate,
        crate::analytics::forecast::Backtest, crate::analytics::forecast::Candidate,
        crate::analytics::forecast::Step, crate::analytics::forecast::methods::Method,
        recommendations::Recommendations, recommendations::BudgetRunningOut,
        recommendations::UnusedBudget, crate::analytics::recommend::CheaperModel,
        crate::analytics::recommend::PromptCache)),
    modifiers(&Security),
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let bearer =
            || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme("admin", bearer());
        components.add_security_scheme("dataplane", bearer());
    }
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Every route, with its auth layer, body limit and metrics.
pub fn router(state: AppState) -> Router {
    let admin = Router::new()
        .route("/v1/budgets", post(budgets::create).get(budgets::list))
        .route(
            "/v1/budgets/{id}",
            get(budgets::get)
                .put(budgets::update)
                .delete(budgets::delete),
        )
        .route("/v1/budgets/{id}/reset", post(budgets::reset))
        .route("/v1/budgets/{id}/reopen", post(budgets::reopen))
        .route("/v1/usage/{scope}", get(budgets::usage))
        .route("/v1/prices/import", post(price_import::import))
        .route("/v1/prices/{model}", put(prices::put).get(prices::get))
        .route("/v1/emergency", get(emergency::list))
        .route(
            "/v1/emergency/{scope}",
            put(emergency::put).delete(emergency::delete),
        )
        .route("/v1/profiles", get(profiles::list))
        .route(
            "/v1/profiles/{id}",
            get(profiles::get)
                .put(profiles::put)
                .delete(profiles::delete),
        )
        .route("/v1/forecasts", get(forecasts::list))
        .route("/v1/forecasts/{budget}", get(forecasts::get))
        .route("/v1/recommendations", get(recommendations::list))
        .route("/v1/reports/spend", get(reports::spend))
        .route("/v1/reports/chargeback", get(reports::chargeback))
        .route("/v1/reports/invoice", get(reports::invoice))
        .route("/v1/alerts", get(ops::alerts))
        .route("/v1/alerts/dead-letters", get(alerts::dead_letters))
        .route("/v1/alerts/{id}/deliveries", get(alerts::deliveries))
        .route("/v1/anomalies", get(anomalies::list))
        .route("/v1/channels", post(channels::create).get(channels::list))
        .route(
            "/v1/channels/{id}",
            get(channels::get)
                .put(channels::update)
                .delete(channels::delete),
        )
        .route("/v1/channels/{id}/test", post(channels::test))
        .route("/v1/audit", get(ops::audit))
        .route("/v1/leases", get(lease::list))
        .route("/v1/ledger/records", get(ledger::records))
        .route("/v1/ledger/rollups", get(ledger::rollups))
        .route(
            "/v1/ledger/import",
            post(ledger::import).layer(DefaultBodyLimit::max(ledger::MAX_IMPORT_BYTES)),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    let dataplane = Router::new()
        .route(
            tollgate_model::wire::v1::RESERVE_PATH,
            post(admission::reserve),
        )
        .route(
            tollgate_model::wire::v1::SETTLE_PATH,
            post(admission::settle),
        )
        .route(
            tollgate_model::wire::v1::PRICES_PATH,
            get(admission::prices),
        )
        .route(tollgate_model::wire::v1::LEASE_PATH, post(lease::lease))
        .route(
            tollgate_model::wire::v1::LEASE_RETURN_PATH,
            post(lease::return_lease),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_dataplane,
        ));
    let open = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/v1/openapi.json", get(openapi));
    Router::new()
        .merge(admin)
        .merge(dataplane)
        .merge(open)
        .merge(crate::ui::router())
        // After every route: it applies to the routes already added. axum keeps its `Allow`.
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .fallback(|| async { ApiError::NotFound("route".into()) })
        .layer(DefaultBodyLimit::max(state.body_limit_bytes))
        .layer(middleware::from_fn(crate::metrics::track))
        .with_state(state)
}

/// `If-Match: "<version>"` → the version expected; `*` or absent → must exist.
pub(crate) fn if_match(headers: &HeaderMap) -> Result<Expect, ApiError> {
    let Some(raw) = headers.get(IF_MATCH) else {
        return Ok(Expect::Exists);
    };
    let raw = raw
        .to_str()
        .map_err(|_| ApiError::BadRequest("If-Match is not ASCII".into()))?
        .trim();
    if raw == "*" {
        return Ok(Expect::Exists);
    }
    raw.trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .map(Expect::Version)
        .map_err(|_| ApiError::BadRequest(format!("If-Match {raw:?} is not a version ETag")))
}

/// A write conflict as the API reports it.
pub(crate) fn conflict(c: WriteConflict, what: &str) -> ApiError {
    match c {
        WriteConflict::AlreadyExists => ApiError::AlreadyExists(what.to_owned()),
        WriteConflict::Missing => ApiError::NotFound(what.to_owned()),
        WriteConflict::VersionMismatch { current } => ApiError::PreconditionFailed { current },
    }
}

/// `DELETE` of a stored document under `If-Match`, audited as `action`: the one sequence the
/// budget, profile and channel routes share. `what` names it in a 404 or 412.
pub(crate) async fn delete_doc(
    state: &AppState,
    coll: crate::store::Collection,
    id: &str,
    headers: &HeaderMap,
    what: &str,
    action: &str,
) -> Result<(), ApiError> {
    let expect = if_match(headers)?;
    state
        .store
        .delete_doc(coll, id, expect)
        .await?
        .map_err(|c| conflict(c, &format!("{what} {id:?}")))?;
    audit(state, action, id, serde_json::Value::Null).await;
    Ok(())
}

/// Records an admin change. A failed audit write is logged, not fatal: the change is done.
pub(crate) async fn audit(state: &AppState, action: &str, target: &str, detail: serde_json::Value) {
    let record = views::AuditRecord {
        at: state.now().to_rfc3339(),
        action: action.to_owned(),
        target: target.to_owned(),
        detail,
    };
    tracing::info!(action, target, "audit");
    let Ok(json) = serde_json::to_string(&record) else {
        tracing::error!(action, target, "audit record not serializable");
        return;
    };
    if let Err(e) = state.store.audit(&json).await {
        tracing::error!(error = %e, action, target, "audit record not written");
    }
}
