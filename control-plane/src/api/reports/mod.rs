//! Reports over the ledger: `GET /v1/reports/spend`, `/v1/reports/chargeback` and
//! `/v1/reports/invoice` (JSON, HTML or PDF). Each parses its query (errors name the
//! parameter), reads the ledger through [`source`], and hands the facts to the pure
//! functions of `crate::analytics`.

pub mod query;
pub mod source;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorBody};
use crate::analytics::chargeback::{self, Allocation, ChargeBy, Chargeback};
use crate::analytics::invoice::{self, Billing, Invoice, InvoiceTerms};
use crate::analytics::report::{self, Filter, GroupKey, Report, ReportQuery};
use crate::analytics::{AnalyticsError, buckets};
use crate::state::AppState;
use query::{Common, list, parse_usd};
use source::{Need, Source};

/// Most buckets a report may have.
pub const MAX_BUCKETS: usize = 2_000;
/// Most rows a report may have.
pub const MAX_ROWS: usize = 10_000;

impl From<AnalyticsError> for ApiError {
    fn from(e: AnalyticsError) -> ApiError {
        match e {
            AnalyticsError::Invalid { field, message } => ApiError::invalid(field, message),
            AnalyticsError::Overflow => {
                tracing::error!("a report total passed i64 nano-USD");
                ApiError::Internal
            }
        }
    }
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

/// Query of `GET /v1/reports/spend`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SpendQuery {
    /// Range start: RFC 3339, or a date (`2026-03-01`, midnight in `tz`). Required.
    from: Option<String>,
    /// Range end (exclusive), same forms. Required.
    to: Option<String>,
    /// IANA time zone of dates and buckets (default `UTC`).
    tz: Option<String>,
    /// `hour`, `day`, `week` or `month`; absent: one row per group over the whole range.
    bucket: Option<String>,
    /// Comma-separated keys: `org`, `team`, `project`, `user`, `key`, `tag`, `model`, `provider`.
    group_by: Option<String>,
    /// Comma-separated scopes the calls must all carry (`team:a,user:bob`).
    scope: Option<String>,
    /// Comma-separated models (any).
    model: Option<String>,
    /// Comma-separated providers (any).
    provider: Option<String>,
    /// Keep the N costliest groups and sum the rest into one `other` row per bucket.
    top: Option<usize>,
}

/// A spend report with the parameters it answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SpendReport {
    /// Range start, RFC 3339 in `timezone`.
    pub from: String,
    /// Range end (exclusive).
    pub to: String,
    /// The zone.
    pub timezone: String,
    /// The bucket, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<buckets::Bucket>,
    /// The grouping keys, in order.
    pub group_by: Vec<String>,
    /// Which ledger reads answered it.
    pub source: Source,
    /// Rows and total.
    #[serde(flatten)]
    pub report: Report,
}

/// Spend grouped by scope kinds, model and provider, in calendar buckets of a time zone.
#[utoipa::path(get, path = "/v1/reports/spend", tag = "reports", params(SpendQuery),
    responses((status = 200, body = SpendReport),
        (status = 400, body = ErrorBody, description = "A parameter at fault, named in `field`")),
    security(("admin" = [])))]
pub async fn spend(
    State(state): State<AppState>,
    q: Result<Query<SpendQuery>, QueryRejection>,
) -> Result<Json<SpendReport>, ApiError> {
    let q = query(q)?;
    let c = Common::parse(q.from.as_deref(), q.to.as_deref(), q.tz.as_deref())?;
    let bucket = q
        .bucket
        .as_deref()
        .map(str::parse::<buckets::Bucket>)
        .transpose()?;
    if let Some(b) = bucket {
        buckets::count_within(c.range, b, c.tz, MAX_BUCKETS)?;
    }
    let group_by = GroupKey::parse_list(q.group_by.as_deref().unwrap_or(""))?;
    let filter = Filter {
        scopes: query::scopes(q.scope.as_deref())?,
        models: list(q.model.as_deref()),
        providers: list(q.provider.as_deref()),
    };
    if q.top == Some(0) {
        return Err(ApiError::invalid("top", "must be at least 1"));
    }
    let need = Need {
        range: c.range,
        tz: c.tz,
        bucket,
        kinds: group_by
            .iter()
            .filter_map(|k| match k {
                GroupKey::Scope(kind) => Some(*kind),
                _ => None,
            })
            .collect(),
        scopes: filter.scopes.clone(),
        models: filter.models.clone(),
        providers: filter.providers.clone(),
    };
    let (facts, source) = source::load(state.store.as_ref(), &need, state.now()).await?;
    let rq = ReportQuery {
        range: c.range,
        tz: c.tz,
        bucket,
        group_by: group_by.clone(),
        filter,
        top: q.top,
        max_rows: MAX_ROWS,
    };
    // The grouping of a million facts is CPU work: off the async workers, so admission
    // calls on this replica are not held up behind it.
    let report = tokio::task::spawn_blocking(move || report::spend_report(&facts, &rq))
        .await
        .map_err(|_| ApiError::Internal)??;
    Ok(Json(SpendReport {
        from: c.local(c.range.from),
        to: c.local(c.range.to),
        timezone: c.tz.name().to_owned(),
        bucket,
        group_by: group_by.iter().map(|k| k.as_str().to_owned()).collect(),
        source,
        report,
    }))
}

/// Query of `GET /v1/reports/chargeback`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ChargebackQuery {
    /// Period start (RFC 3339 or date). Required.
    from: Option<String>,
    /// Period end (exclusive). Required.
    to: Option<String>,
    /// IANA time zone of dates (default `UTC`).
    tz: Option<String>,
    /// `team`, `project`, `department` (tags `department=<name>`), `tag`, `org`, `user` or `key`. Required.
    by: Option<String>,
    /// With `by=tag`: only tags with this prefix, cut from the key.
    tag_prefix: Option<String>,
    /// `unallocated` (default: a row of its own) or `proportional` (shared out).
    allocation: Option<String>,
}

/// A chargeback with the parameters it answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChargebackReport {
    /// Period start, RFC 3339 in `timezone`.
    pub from: String,
    /// Period end (exclusive).
    pub to: String,
    /// The zone.
    pub timezone: String,
    /// What rows are keyed by.
    pub by: String,
    /// How unallocated spend was treated.
    pub allocation: Allocation,
    /// Which ledger reads answered it.
    pub source: Source,
    /// Rows and total.
    #[serde(flatten)]
    pub chargeback: Chargeback,
}

/// Spend per team / project / department / tag for a period, with the unallocated rest.
#[utoipa::path(get, path = "/v1/reports/chargeback", tag = "reports", params(ChargebackQuery),
    responses((status = 200, body = ChargebackReport), (status = 400, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn chargeback(
    State(state): State<AppState>,
    q: Result<Query<ChargebackQuery>, QueryRejection>,
) -> Result<Json<ChargebackReport>, ApiError> {
    let q = query(q)?;
    let c = Common::parse(q.from.as_deref(), q.to.as_deref(), q.tz.as_deref())?;
    let by_name =
        q.by.ok_or_else(|| ApiError::invalid("by", "required: team, project, department, tag…"))?;
    let by = ChargeBy::parse(&by_name, q.tag_prefix.as_deref())?;
    let allocation = match q.allocation.as_deref() {
        None | Some("unallocated") => Allocation::Unallocated,
        Some("proportional") => Allocation::Proportional,
        Some(other) => {
            return Err(ApiError::invalid(
                "allocation",
                format!("{other:?} is not unallocated or proportional"),
            ));
        }
    };
    let need = Need {
        range: c.range,
        tz: c.tz,
        bucket: None,
        kinds: vec![by.kind],
        scopes: Vec::new(),
        models: Vec::new(),
        providers: Vec::new(),
    };
    let (facts, source) = source::load(state.store.as_ref(), &need, state.now()).await?;
    let range = c.range;
    let cb =
        tokio::task::spawn_blocking(move || chargeback::chargeback(&facts, range, &by, allocation))
            .await
            .map_err(|_| ApiError::Internal)??;
    Ok(Json(ChargebackReport {
        from: c.local(c.range.from),
        to: c.local(c.range.to),
        timezone: c.tz.name().to_owned(),
        by: by_name,
        allocation,
        source,
        chargeback: cb,
    }))
}

/// Query of `GET /v1/reports/invoice`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InvoiceQuery {
    /// The payer: every call carrying this scope (`team:payments`, `tag:customer=acme`). Required.
    scope: Option<String>,
    /// Period start (RFC 3339 or date). Required.
    from: Option<String>,
    /// Period end (exclusive). Required.
    to: Option<String>,
    /// IANA time zone the invoice's dates are printed in (default `UTC`).
    tz: Option<String>,
    /// Markup on each line, percent (decimal, 0-1000; default 0).
    markup_pct: Option<String>,
    /// A fixed fee, USD (decimal, at most 9 places; default 0).
    fee_usd: Option<String>,
    /// `pay_as_you_go` (default) or `prepaid`.
    billing: Option<String>,
    /// With `prepaid`: the credit before this invoice, USD. Required then.
    credit_usd: Option<String>,
    /// `json` (default), `html` or `pdf`.
    format: Option<String>,
}

/// An internal invoice for one payer and period, as JSON, HTML or PDF.
#[utoipa::path(get, path = "/v1/reports/invoice", tag = "reports", params(InvoiceQuery),
    responses((status = 200, body = Invoice,
            description = "JSON; with format=html text/html, with format=pdf application/pdf"),
        (status = 400, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn invoice(
    State(state): State<AppState>,
    q: Result<Query<InvoiceQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let c = Common::parse(q.from.as_deref(), q.to.as_deref(), q.tz.as_deref())?;
    let payer = query::scopes(q.scope.as_deref())?;
    let [payer] = <[_; 1]>::try_from(payer)
        .map_err(|_| ApiError::invalid("scope", "required: exactly one scope, the payer"))?;
    let markup_pct = match q.markup_pct.as_deref() {
        None => rust_decimal::Decimal::ZERO,
        Some(s) => s
            .parse()
            .map_err(|_| ApiError::invalid("markup_pct", format!("{s:?} is not a decimal")))?,
    };
    let fee_nanos = parse_usd("fee_usd", q.fee_usd.as_deref())?.unwrap_or(0);
    let billing = match (q.billing.as_deref(), q.credit_usd.as_deref()) {
        (None | Some("pay_as_you_go"), None) => Billing::PayAsYouGo,
        (None | Some("pay_as_you_go"), Some(_)) => {
            return Err(ApiError::invalid("credit_usd", "only with billing=prepaid"));
        }
        (Some("prepaid"), credit) => Billing::Prepaid {
            credit_nanos: parse_usd("credit_usd", credit)?
                .ok_or_else(|| ApiError::invalid("credit_usd", "required with billing=prepaid"))?,
        },
        (Some(other), _) => {
            return Err(ApiError::invalid(
                "billing",
                format!("{other:?} is not pay_as_you_go or prepaid"),
            ));
        }
    };
    let format = q.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "html" | "pdf") {
        return Err(ApiError::invalid("format", "must be json, html or pdf"));
    }
    let need = Need {
        range: c.range,
        tz: c.tz,
        bucket: None,
        kinds: Vec::new(),
        scopes: vec![payer.clone()],
        models: Vec::new(),
        providers: Vec::new(),
    };
    let (facts, _) = source::load(state.store.as_ref(), &need, state.now()).await?;
    let terms = InvoiceTerms {
        payer,
        range: c.range,
        tz: c.tz,
        markup_pct,
        fee_nanos,
        billing,
        issued_at: state.now(),
    };
    let inv = invoice::invoice(&facts, &terms)?;
    let typed = |ct: &'static str, body: Vec<u8>| {
        let mut r = body.into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        r
    };
    Ok(match format {
        "html" => typed(
            "text/html; charset=utf-8",
            crate::analytics::render::html::render(&inv).into_bytes(),
        ),
        "pdf" => typed(
            "application/pdf",
            crate::analytics::render::pdf::render(&inv),
        ),
        _ => Json(inv).into_response(),
    })
}
