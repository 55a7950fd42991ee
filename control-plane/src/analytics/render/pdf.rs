//! The invoice as a PDF, written with `pdf-writer` (typst's PDF writer: pure Rust, four small
//! dependencies). Text uses the standard Helvetica and Courier fonts, which every reader has,
//! so nothing is embedded; the line items are set in Courier so columns align by padding.
//! Long invoices continue on further A4 pages.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

use super::super::invoice::Invoice;
use super::{COLUMNS, heading, summary, table};

const PAGE_W: i32 = 595;
const PAGE_H: i32 = 842;
const MARGIN: i32 = 50;
/// Column widths in Courier characters (8 pt: 4.8 pt a character, 103 to a line).
const WIDTHS: [usize; 6] = [26, 11, 9, 21, 15, 15];

#[derive(Clone, Copy)]
enum Font {
    Title,
    Text,
    Mono,
}

impl Font {
    fn name(self) -> Name<'static> {
        match self {
            Font::Title => Name(b"F1"),
            Font::Text => Name(b"F2"),
            Font::Mono => Name(b"F3"),
        }
    }
    fn size(self) -> f32 {
        match self {
            Font::Title => 16.0,
            Font::Text => 10.0,
            Font::Mono => 8.0,
        }
    }
    /// Line height, points.
    fn leading(self) -> i32 {
        match self {
            Font::Title => 26,
            Font::Text => 14,
            Font::Mono => 11,
        }
    }
}

/// The standard fonts' built-in encoding covers printable ASCII; anything else prints `?`.
fn ascii(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| {
            if (' '..='~').contains(&c) {
                c as u8
            } else {
                b'?'
            }
        })
        .collect()
}

fn cell(s: &str, width: usize, right: bool) -> String {
    let s: String = if s.chars().count() > width {
        // Cut names keep a visible mark that they were cut.
        s.chars().take(width.saturating_sub(1)).collect::<String>() + "~"
    } else {
        s.to_owned()
    };
    if right {
        format!("{s:>width$}")
    } else {
        format!("{s:<width$}")
    }
}

/// Splits `text` at spaces into lines of at most `width` characters (a longer word stays whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push(line);
    }
    out
}

fn mono_row(cells: &[String]) -> String {
    cells
        .iter()
        .zip(WIDTHS)
        .enumerate()
        .map(|(i, (c, w))| cell(c, w, i >= 2))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Renders `inv` as PDF bytes.
pub fn render(inv: &Invoice) -> Vec<u8> {
    let mut lines: Vec<(Font, String)> = Vec::new();
    lines.push((Font::Title, format!("Invoice {}", inv.number)));
    for (label, value) in heading(inv).into_iter().skip(1) {
        lines.push((Font::Text, format!("{label}: {value}")));
    }
    lines.push((Font::Text, String::new()));
    let header: Vec<String> = COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    lines.push((Font::Mono, mono_row(&header)));
    for row in table(inv) {
        lines.push((Font::Mono, mono_row(&row)));
    }
    lines.push((Font::Text, String::new()));
    for (label, value) in summary(inv) {
        lines.push((Font::Mono, format!("{label:<20}{value:>24}")));
    }
    lines.push((Font::Text, String::new()));
    for part in wrap(&inv.rounding, 100) {
        lines.push((Font::Mono, part));
    }

    // Lay the lines out on pages.
    let mut pages: Vec<Content> = Vec::new();
    let mut content = Content::new();
    let mut y = PAGE_H - MARGIN;
    for (font, text) in &lines {
        if y - font.leading() < MARGIN {
            pages.push(std::mem::replace(&mut content, Content::new()));
            y = PAGE_H - MARGIN;
        }
        y -= font.leading();
        content
            .begin_text()
            .set_font(font.name(), font.size())
            .next_line(MARGIN as f32, y as f32)
            .show(Str(&ascii(text)))
            .end_text();
    }
    pages.push(content);

    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let fonts = [
        (Font::Title, Ref::new(3), "Helvetica-Bold"),
        (Font::Text, Ref::new(4), "Helvetica"),
        (Font::Mono, Ref::new(5), "Courier"),
    ];
    let first_page = 6;
    let page_ids: Vec<Ref> = (0..pages.len())
        .map(|i| Ref::new(first_page + 2 * i32::try_from(i).unwrap_or(0)))
        .collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(i32::try_from(page_ids.len()).unwrap_or(i32::MAX));
    for (_, id, base) in fonts {
        pdf.type1_font(id)
            .base_font(Name(base.as_bytes()))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    for (content, page_id) in pages.into_iter().zip(&page_ids) {
        let content_id = Ref::new(page_id.get() + 1);
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE_W as f32, PAGE_H as f32));
        page.parent(tree);
        page.contents(content_id);
        let mut resources = page.resources();
        let mut dict = resources.fonts();
        for (font, id, _) in fonts {
            dict.pair(font.name(), id);
        }
        dict.finish();
        resources.finish();
        page.finish();
        pdf.stream(content_id, &content.finish());
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_cells_keep_a_mark_and_amounts_align_right() {
        assert_eq!(cell("abcdef", 4, false), "abc~");
        assert_eq!(cell("abcd", 4, false), "abcd");
        assert_eq!(cell("$1.00", 7, true), "  $1.00");
        assert_eq!(ascii("Zürich"), b"Z?rich".to_vec());
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
    }
}
