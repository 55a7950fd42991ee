//! Rollup rows as both stores keep them: a row's identity (scope, provider, model) and its
//! eleven summed values, and which rows one record adds to.

use tollgate_model::scope::Scope;

use super::{CallOutcome, Granularity, RequestRecord, RollupRow, TokenCounts};

/// Number of summed values per row: cost, requests, denied, then the eight token kinds.
pub const VALUES: usize = 11;

/// A row's summed values in their stored order.
pub type Values = [i64; VALUES];

/// The values one record adds to each of its rows.
pub fn values_of(r: &RequestRecord) -> Values {
    let t = r.tokens.to_array();
    let mut v = [0i64; VALUES];
    v[0] = r.cost_nanos;
    v[1] = 1;
    v[2] = i64::from(r.outcome == CallOutcome::Denied);
    v[3..].copy_from_slice(&t);
    v
}

/// Adds `b` into `a`, saturating (a store never wraps).
pub fn add(a: &mut Values, b: &Values) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.saturating_add(*y);
    }
}

/// The scopes a record's rows are keyed by: each distinct scope of the call, then `global`
/// (once, even when the call carried it).
pub fn scopes_of(r: &RequestRecord) -> Vec<Scope> {
    let mut out: Vec<Scope> = Vec::with_capacity(r.scopes.len() + 1);
    for s in &r.scopes {
        if *s != Scope::global() && !out.contains(s) {
            out.push(s.clone());
        }
    }
    out.push(Scope::global());
    out
}

/// A row's field name in a bucket: `<scope>\t<provider>\t<model>`. Scopes and providers hold
/// no whitespace (checked where they enter), the model comes last so that even one holding a
/// tab splits back right.
pub fn field(scope: &Scope, provider: &str, model: &str) -> String {
    format!("{scope}\t{provider}\t{model}")
}

/// The inverse of [`field`]; `None` for a field this code cannot read.
pub fn parse_field(f: &str) -> Option<(Scope, String, String)> {
    let mut it = f.splitn(3, '\t');
    let scope = it.next()?.parse().ok()?;
    let provider = it.next()?.to_owned();
    let model = it.next()?.to_owned();
    Some((scope, provider, model))
}

/// Values as stored in Redis: decimal integers joined by `,`.
pub fn encode(v: &Values) -> String {
    let parts: Vec<String> = v.iter().map(i64::to_string).collect();
    parts.join(",")
}

/// The inverse of [`encode`]. Missing trailing values read as zero and values past the
/// eleventh are ignored (a newer release may append some).
pub fn decode(s: &str) -> Option<Values> {
    let mut v = [0i64; VALUES];
    for (slot, part) in v.iter_mut().zip(s.split(',')) {
        *slot = part.parse().ok()?;
    }
    Some(v)
}

/// A [`RollupRow`] from its parts.
pub fn rollup_row(
    bucket_start_ms: i64,
    granularity: Granularity,
    scope: Scope,
    provider: String,
    model: String,
    v: &Values,
) -> RollupRow {
    let mut t = [0i64; 8];
    t.copy_from_slice(&v[3..]);
    RollupRow {
        bucket_start_ms,
        granularity,
        scope,
        model,
        provider,
        cost_nanos: v[0],
        tokens: TokenCounts::from_array(t),
        requests: v[1],
        denied: v[2],
    }
}

/// The order `Store::rollups` promises: bucket, scope, provider, model.
pub fn sort_rows(rows: &mut [RollupRow]) {
    rows.sort_by(|a, b| {
        (a.bucket_start_ms, &a.scope, &a.provider, &a.model).cmp(&(
            b.bucket_start_ms,
            &b.scope,
            &b.provider,
            &b.model,
        ))
    });
}

/// Which granularity answers for the bucket starting at `day_start_ms`: hours while the
/// hourly rows of that day are all still kept, else days.
pub fn day_is_hourly(day_start_ms: i64, now_ms: i64, hourly_retention_ms: i64) -> bool {
    day_start_ms + Granularity::Day.millis() + hourly_retention_ms > now_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_split_back_even_when_the_model_holds_a_tab() {
        let s: Scope = "team:a".parse().unwrap_or_else(|_| Scope::global());
        let f = field(&s, "openai", "odd\tmodel");
        assert_eq!(
            parse_field(&f),
            Some((s, "openai".to_owned(), "odd\tmodel".to_owned()))
        );
    }

    #[test]
    fn values_read_back_and_tolerate_more_or_fewer_entries() {
        let v: Values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, i64::MAX];
        assert_eq!(decode(&encode(&v)), Some(v));
        assert_eq!(decode("5,1").map(|v| v[0] + v[1] + v[2]), Some(6));
        assert_eq!(decode(&format!("{},99", encode(&v))), Some(v));
        assert_eq!(decode("x"), None);
    }
}
