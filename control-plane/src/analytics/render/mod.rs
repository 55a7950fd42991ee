//! An invoice as a document: the rows and summary both renderings print, and the two
//! renderings ([`html`], [`pdf`]). JSON is the `Invoice` itself.

pub mod html;
pub mod pdf;

use tollgate_model::NanoUsd;

use super::invoice::Invoice;

/// The line-item table's header.
pub const COLUMNS: [&str; 6] = [
    "Model",
    "Provider",
    "Requests",
    "Tokens in/out",
    "Cost",
    "Amount",
];

/// The line items as printed: one row of [`COLUMNS`] per line.
pub fn table(inv: &Invoice) -> Vec<[String; 6]> {
    inv.lines
        .iter()
        .map(|l| {
            [
                l.model.clone(),
                l.provider.clone(),
                l.requests.to_string(),
                format!("{}/{}", l.input_tokens, l.output_tokens),
                NanoUsd(l.cost_nanos).to_string(),
                NanoUsd(l.amount_nanos).to_string(),
            ]
        })
        .collect()
}

/// The header lines (label, value) above the table.
pub fn heading(inv: &Invoice) -> Vec<(&'static str, String)> {
    vec![
        ("Invoice", inv.number.clone()),
        ("Billed to", inv.payer.clone()),
        (
            "Period",
            format!(
                "{} to {} ({})",
                inv.period_start, inv.period_end, inv.timezone
            ),
        ),
        ("Issued", inv.issued_at.clone()),
    ]
}

/// The summary lines (label, value) below the table, the amount due last.
pub fn summary(inv: &Invoice) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("Markup", format!("{} %", inv.markup_pct)),
        ("Subtotal", NanoUsd(inv.subtotal_nanos).to_string()),
        ("Fixed fee", NanoUsd(inv.fee_nanos).to_string()),
        ("Total", NanoUsd(inv.total_nanos).to_string()),
    ];
    if let (Some(credit), Some(balance)) = (inv.credit_nanos, inv.balance_nanos) {
        out.push(("Prepaid credit", NanoUsd(credit).to_string()));
        out.push(("Balance after", NanoUsd(balance).to_string()));
    }
    out.push(("Amount due", NanoUsd(inv.amount_due_nanos).to_string()));
    out
}
