//! The invoice as one self-contained HTML page (inline style, no scripts, every value
//! escaped).

use std::fmt::Write;

use super::super::invoice::Invoice;
use super::{COLUMNS, heading, summary, table};

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders `inv` as HTML.
pub fn render(inv: &Invoice) -> String {
    let mut h = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border-bottom:1px solid #ccc;padding:4px 10px}}td.n,th.n{{text-align:right}}</style>\
         </head><body>\n",
        esc(&inv.number)
    );
    let _ = writeln!(h, "<h1>Invoice {}</h1>\n<dl>", esc(&inv.number));
    for (label, value) in heading(inv).into_iter().skip(1) {
        let _ = writeln!(h, "<dt>{label}</dt><dd>{}</dd>", esc(&value));
    }
    h.push_str("</dl>\n<table><thead><tr>");
    for (i, c) in COLUMNS.iter().enumerate() {
        let class = if i >= 2 { " class=\"n\"" } else { "" };
        let _ = write!(h, "<th{class}>{c}</th>");
    }
    h.push_str("</tr></thead><tbody>\n");
    for row in table(inv) {
        h.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let class = if i >= 2 { " class=\"n\"" } else { "" };
            let _ = write!(h, "<td{class}>{}</td>", esc(cell));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table>\n<table class=\"summary\">\n");
    for (label, value) in summary(inv) {
        let _ = writeln!(
            h,
            "<tr><th>{label}</th><td class=\"n\">{}</td></tr>",
            esc(&value)
        );
    }
    let _ = write!(
        h,
        "</table>\n<p><small>{}</small></p>\n</body></html>\n",
        esc(&inv.rounding)
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::invoice::{Billing, invoice, tests as inv};

    #[test]
    fn the_html_carries_every_line_and_the_amount_due() {
        let i = invoice(
            &inv::facts(),
            &inv::terms("12.5", 2_000_000_000, Billing::PayAsYouGo),
        )
        .unwrap();
        let h = render(&i);
        assert!(h.contains("<td>claude-sonnet-4</td>"), "{h}");
        assert!(
            h.contains("<th>Amount due</th><td class=\"n\">$16.062500008</td>"),
            "{h}"
        );
    }

    #[test]
    fn values_are_escaped() {
        assert_eq!(esc("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
    }
}
