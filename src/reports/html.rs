//! The sheet as one self-contained HTML page: inline CSS, system fonts only, no scripts and
//! nothing fetched (the closed networks of SPEC §7 have no internet), printable on A4 landscape.

use super::view::{Cell, RowKind, View, LEDGER_DIGEST, NONE, TABLE_HEAD, YEAR_SECTION};
use super::ReportError;
use kiroku_projections::sheet::Sheet;
use std::fmt::Write;

const STYLE: &str = r#"
@page { size: A4 landscape; margin: 10mm; }
* { box-sizing: border-box; }
body { font-family: "游ゴシック", "Yu Gothic", YuGothic, "Hiragino Kaku Gothic ProN", "Meiryo", "MS Gothic", sans-serif;
       font-size: 10pt; color: #000; margin: 1em; }
h1 { font-size: 14pt; margin: 0 0 .5em; }
table { border-collapse: collapse; width: 100%; margin-bottom: 1em; }
th, td { border: 1px solid #555; padding: 3px 5px; vertical-align: top; }
th { background: #e8edf4; font-weight: bold; text-align: left; }
table.item th { width: 10em; white-space: nowrap; }
table.sheet thead th { text-align: center; }
table.sheet thead { display: table-header-group; }
table.sheet td { white-space: pre-wrap; }
td.num { text-align: right; white-space: nowrap; }
td.tag { white-space: nowrap; text-align: center; }
td.none { text-align: center; color: #666; }
td.digest { font-family: monospace; font-size: 0.75em; word-break: break-all; white-space: pre-line; }
td.ng { font-weight: bold; }
td.pending { text-align: center; color: #555; }
.fy { font-weight: normal; font-size: 8.5pt; }
.note { font-weight: normal; font-size: 8.5pt; white-space: pre-wrap; margin-top: .3em; }
tr { page-break-inside: avoid; break-inside: avoid; }
@media print { body { margin: 0; } }
"#;

/// The sheet as a complete HTML page.
pub fn html(sheet: &Sheet) -> Result<String, ReportError> {
    let view = View::of(sheet);
    let mut page = String::new();
    // Writing into a String cannot fail; the error type is fmt's.
    write_page(&mut page, &view).map_err(|e| ReportError::Page(e.to_string()))?;
    Ok(page)
}

fn write_page(out: &mut String, view: &View) -> std::fmt::Result {
    let heading = escape(&view.heading());
    writeln!(out, "<!DOCTYPE html>")?;
    writeln!(out, "<html lang=\"ja\">")?;
    writeln!(out, "<head>")?;
    writeln!(out, "<meta charset=\"utf-8\">")?;
    writeln!(
        out,
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    )?;
    writeln!(out, "<title>{heading}</title>")?;
    writeln!(out, "<style>{STYLE}</style>")?;
    writeln!(out, "</head>")?;
    writeln!(out, "<body>")?;
    writeln!(out, "<h1>{heading}</h1>")?;

    writeln!(out, "<table class=\"item\">")?;
    for (label, value) in &view.header {
        writeln!(
            out,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(label),
            escape(value)
        )?;
    }
    writeln!(out, "</table>")?;

    writeln!(out, "<table class=\"sheet\">")?;
    writeln!(out, "<thead>")?;
    write!(out, "<tr>")?;
    for head in TABLE_HEAD {
        write!(out, "<th rowspan=\"2\" scope=\"col\">{}</th>", escape(head))?;
    }
    for year in &view.years {
        write!(out, "<th scope=\"col\">{}</th>", escape(&year.short))?;
    }
    writeln!(out, "</tr>")?;
    write!(out, "<tr>")?;
    for year in &view.years {
        write!(out, "<th class=\"fy\">{}</th>", escape(&year.label))?;
    }
    writeln!(out, "</tr>")?;
    writeln!(out, "</thead>")?;

    for indicator in &view.indicators {
        writeln!(out, "<tbody class=\"indicator\">")?;
        let span = indicator.rows.len();
        for (i, row) in indicator.rows.iter().enumerate() {
            write!(out, "<tr>")?;
            if i == 0 {
                write!(
                    out,
                    "<th rowspan=\"{span}\" scope=\"rowgroup\">{}",
                    escape(&indicator.name)
                )?;
                if let Some(note) = &indicator.note {
                    write!(out, "<div class=\"note\">{}</div>", escape(note))?;
                }
                write!(
                    out,
                    "</th><td rowspan=\"{span}\" class=\"tag\">{}</td><td rowspan=\"{span}\" class=\"tag\">{}</td>",
                    escape(&indicator.kind_label),
                    escape(&indicator.unit_label)
                )?;
            }
            write!(out, "<th scope=\"row\">{}</th>", escape(row.kind.label()))?;
            for cell in &row.cells {
                write!(
                    out,
                    "<td class=\"{}\">{}</td>",
                    class(row.kind, cell),
                    escape(cell.text())
                )?;
            }
            writeln!(out, "</tr>")?;
        }
        writeln!(out, "</tbody>")?;
    }

    writeln!(out, "<tbody class=\"years\">")?;
    let span = view.year_rows.len();
    for (i, row) in view.year_rows.iter().enumerate() {
        write!(out, "<tr>")?;
        if i == 0 {
            write!(
                out,
                "<th rowspan=\"{span}\" colspan=\"3\" scope=\"rowgroup\">{}</th>",
                escape(YEAR_SECTION)
            )?;
        }
        write!(out, "<th scope=\"row\">{}</th>", escape(row.label))?;
        for text in &row.cells {
            let class = match text.as_str() {
                NONE => "none",
                _ if row.label == LEDGER_DIGEST => "digest",
                _ => "text",
            };
            write!(out, "<td class=\"{class}\">{}</td>", escape(text))?;
        }
        writeln!(out, "</tr>")?;
    }
    writeln!(out, "</tbody>")?;
    writeln!(out, "</table>")?;
    writeln!(out, "</body>")?;
    writeln!(out, "</html>")?;
    Ok(())
}

fn class(kind: RowKind, cell: &Cell) -> &'static str {
    match cell {
        Cell::Number { .. } => "num",
        Cell::Text(text) if text == NONE => "none",
        Cell::Text(_) if kind == RowKind::Achieved && cell.text() == "未達成" => "ng",
        Cell::Text(_) if kind == RowKind::Achieved && cell.text() == "集計中" => "pending",
        Cell::Text(_) => "text",
    }
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::sample_sheet;

    #[test]
    fn escape_covers_the_five_characters() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_page_is_self_contained_japanese_and_printable() {
        let page = html(&sample_sheet()).expect("html");
        assert!(page.starts_with("<!DOCTYPE html>\n<html lang=\"ja\">"));
        assert!(page.contains("<meta charset=\"utf-8\">"));
        assert!(page.contains("@page { size: A4 landscape;"));
        assert!(page.contains(
            "<title>はだの行政サービス改革基本方針実行計画　進行管理シート　2-1-2 研修内容の充実</title>"
        ));
        for outside in ["<script", "<link", "http://", "https://", "@import", "url("] {
            assert!(
                !page.contains(outside),
                "the page reaches out with {outside}"
            );
        }
        assert!(page.trim_end().ends_with("</html>"));
    }

    #[test]
    fn text_from_the_ledger_is_escaped() {
        let page = html(&sample_sheet()).expect("html");
        assert!(page.contains("取り入れた &lt;新&gt; 研修 &amp; 講演"));
        assert!(!page.contains("<新>"));
    }

    #[test]
    fn the_table_shows_what_the_csv_shows() {
        let page = html(&sample_sheet()).expect("html");
        assert!(page.contains("<td class=\"num\">2,300人以上</td>"));
        assert!(page.contains("<td class=\"num\">18.5%（見込み）</td>"));
        assert!(page.contains("<td class=\"num\">98.0%</td>"));
        assert!(page.contains("<td class=\"ng\">未達成</td>"));
        // An unfinished year is 集計中, not a bold 未達成.
        assert!(page.contains("<td class=\"pending\">集計中</td>"));
        assert!(page.contains("<td class=\"text\">2024-05-30 第2版（人事課）</td>"));
        assert!(page.contains("<td class=\"none\">－</td>"));
        assert!(page.contains("<th scope=\"col\">R5</th>"));
        assert!(page.contains("<th class=\"fy\">令和5年度（2023年度）</th>"));
        assert!(page.contains("<td>2024-06-30 09:00 JST</td>"));
        assert!(page.contains("A：計画どおり"));
    }
}
