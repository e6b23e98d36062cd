//! The sheet as an Excel workbook laid out like the city's 進行管理シート: title, item header,
//! fiscal years as columns, per indicator 目標・実績・達成 (and 公表値・乖離 once published),
//! then per year the activities and evaluations. Targets, actuals, published values and drifts
//! are numeric cells (the unit sits in its own column, 以上/見込み are number formats), so
//! Excel can compute with them. The font is named, not embedded: Excel substitutes.

use super::view::{decimals, Cell, RowKind, View, NEGATIVE, NONE, TABLE_HEAD, YEAR_SECTION};
use super::ReportError;
use kiroku_projections::sheet::Sheet;
use rust_xlsxwriter::{
    ColNum, Color, Format as CellFormat, FormatAlign, FormatBorder, RowNum, Workbook, Worksheet,
};

const FONT: &str = "游ゴシック";
/// The font size in points and the height of one line of it.
const FONT_SIZE: f64 = 10.5;
const LINE_HEIGHT: f64 = 17.0;
/// Widths (in characters) of 指標, 区分, 単位, 行 and of each year column.
const LEAD_WIDTHS: [f64; 4] = [30.0, 10.0, 6.0, 14.0];
const YEAR_WIDTH: f64 = 24.0;
/// A4 in Excel's paper size codes.
const A4: u8 = 9;

/// The sheet as the bytes of an .xlsx file.
pub fn xlsx(sheet: &Sheet) -> Result<Vec<u8>, ReportError> {
    let view = View::of(sheet);
    let mut workbook = Workbook::new();
    // Pixel metrics of an 11pt Japanese default font (Excel's for 游ゴシック).
    workbook.set_default_format(&Styles::base(), 24, 72)?;
    let sheet = workbook.add_worksheet();
    sheet.set_name("進行管理シート")?;
    write_sheet(sheet, &view)?;
    Ok(workbook.save_to_buffer()?)
}

struct Styles {
    title: CellFormat,
    label: CellFormat,
    text: CellFormat,
    head: CellFormat,
    none: CellFormat,
    center: CellFormat,
}

impl Styles {
    fn base() -> CellFormat {
        CellFormat::new()
            .set_font_name(FONT)
            .set_font_size(FONT_SIZE)
            .set_font_charset(128)
            .set_font_family(3)
    }

    fn new() -> Styles {
        let cell = Styles::base()
            .set_border(FormatBorder::Thin)
            .set_align(FormatAlign::Top)
            .set_text_wrap();
        let label = cell
            .clone()
            .set_bold()
            .set_background_color(Color::RGB(0xE8EDF4));
        Styles {
            title: Styles::base().set_bold().set_font_size(14),
            head: label
                .clone()
                .set_align(FormatAlign::Center)
                .set_align(FormatAlign::VerticalCenter),
            label,
            none: cell.clone().set_align(FormatAlign::Center),
            center: cell.clone().set_align(FormatAlign::Center),
            text: cell,
        }
    }

    /// A number cell: thousands separators, one decimal for a rate (as many as the value has
    /// otherwise), and the unit and suffix (`%`, 以上, （見込み）, ポイント) as literals of the
    /// format, so the cell stays a number and reads as the CSV does.
    fn number(
        &self,
        value: f64,
        unit: &str,
        suffix: &str,
        fixed: Option<usize>,
        signed: bool,
    ) -> CellFormat {
        let digits = match fixed.unwrap_or_else(|| decimals(value)) {
            0 => "#,##0".to_string(),
            n => format!("#,##0.{}", "0".repeat(n)),
        };
        let literal = format!("{unit}{suffix}");
        let suffix = if literal.is_empty() {
            String::new()
        } else {
            format!("\"{literal}\"")
        };
        let format = if signed {
            // 増減 as in view::drift_text: `3人`, `△3人`, `0人`.
            format!("{digits}{suffix};\"{NEGATIVE}\"{digits}{suffix};{digits}{suffix}")
        } else {
            format!("{digits}{suffix}")
        };
        Styles::base()
            .set_border(FormatBorder::Thin)
            .set_align(FormatAlign::Right)
            .set_align(FormatAlign::Top)
            .set_num_format(format)
    }
}

fn write_sheet(ws: &mut Worksheet, view: &View) -> Result<(), ReportError> {
    let styles = Styles::new();
    let lead = TABLE_HEAD.len() as ColNum;
    let last: ColNum = lead + (view.years.len() as ColNum).max(1) - 1;
    for (col, width) in LEAD_WIDTHS.iter().enumerate() {
        ws.set_column_width(col as ColNum, *width)?;
    }
    for i in 0..view.years.len() as ColNum {
        ws.set_column_width(lead + i, YEAR_WIDTH)?;
    }
    let value_width = LEAD_WIDTHS[1..].iter().sum::<f64>() + YEAR_WIDTH * view.years.len() as f64;

    let mut row: RowNum = 0;
    merge(ws, row, 0, row, last, &view.heading(), &styles.title)?;
    ws.set_row_height(row, 24)?;
    row += 1;

    for (label, value) in &view.header {
        ws.write_string_with_format(row, 0, *label, &styles.label)?;
        merge(ws, row, 1, row, last, value, &styles.text)?;
        ws.set_row_height(row, height(lines(value, value_width)))?;
        row += 1;
    }
    row += 1;

    // Two header rows: 指標・区分・単位・行 span both; the years show R5 over 令和5年度.
    let head = row;
    for (col, label) in TABLE_HEAD.iter().enumerate() {
        let col = col as ColNum;
        merge(ws, head, col, head + 1, col, label, &styles.head)?;
    }
    for (i, year) in view.years.iter().enumerate() {
        let col = lead + i as ColNum;
        ws.write_string_with_format(head, col, &year.short, &styles.head)?;
        ws.write_string_with_format(head + 1, col, &year.label, &styles.head)?;
    }
    row += 2;

    for indicator in &view.indicators {
        let rows: Vec<_> = indicator
            .rows
            .iter()
            .filter(|r| {
                indicator.published
                    || !matches!(
                        r.kind,
                        RowKind::Published | RowKind::PublishedOn | RowKind::Drift
                    )
            })
            .collect();
        let Some(span) = (rows.len() as RowNum).checked_sub(1) else {
            continue;
        };
        let name = match &indicator.note {
            Some(note) => format!("{}\n{note}", indicator.name),
            None => indicator.name.clone(),
        };
        merge(ws, row, 0, row + span, 0, &name, &styles.label)?;
        merge(
            ws,
            row,
            1,
            row + span,
            1,
            &indicator.kind_label,
            &styles.center,
        )?;
        merge(
            ws,
            row,
            2,
            row + span,
            2,
            &indicator.unit_label,
            &styles.center,
        )?;
        // The name cell spans the block: give the block's rows enough height to show it.
        let per_row = height(lines(&name, LEAD_WIDTHS[0]) / rows.len() + 1);
        for (i, r) in rows.iter().enumerate() {
            let at = row + i as RowNum;
            ws.write_string_with_format(at, 3, r.kind.label(), &styles.label)?;
            // Text cells (公表日・版) may wrap: the row is as tall as its longest.
            let most = r
                .cells
                .iter()
                .map(|c| match c {
                    Cell::Text(text) => lines(text, YEAR_WIDTH),
                    Cell::Number { .. } => 1,
                })
                .max()
                .unwrap_or(1);
            for (j, cell) in r.cells.iter().enumerate() {
                let col = lead + j as ColNum;
                match cell {
                    Cell::Number {
                        value,
                        suffix,
                        unit,
                        decimals,
                        signed,
                        ..
                    } => {
                        let format = styles.number(*value, unit, suffix, *decimals, *signed);
                        ws.write_number_with_format(at, col, *value, &format)?;
                    }
                    Cell::Text(text) if text == NONE => {
                        ws.write_string_with_format(at, col, text, &styles.none)?;
                    }
                    Cell::Text(text) => {
                        ws.write_string_with_format(at, col, text, &styles.center)?;
                    }
                }
            }
            ws.set_row_height(at, per_row.max(height(most)))?;
        }
        row += span + 1;
    }

    if let Some(span) = (view.year_rows.len() as RowNum).checked_sub(1) {
        merge(ws, row, 0, row + span, 2, YEAR_SECTION, &styles.label)?;
        for (i, r) in view.year_rows.iter().enumerate() {
            let at = row + i as RowNum;
            ws.write_string_with_format(at, 3, r.label, &styles.label)?;
            let mut most = lines(r.label, LEAD_WIDTHS[3]);
            for (j, text) in r.cells.iter().enumerate() {
                let style = if text == NONE {
                    &styles.none
                } else {
                    &styles.text
                };
                ws.write_string_with_format(at, lead + j as ColNum, text, style)?;
                most = most.max(lines(text, YEAR_WIDTH));
            }
            ws.set_row_height(at, height(most))?;
        }
        row += span + 1;
    }

    // The year heads and the lead columns stay put while scrolling.
    ws.set_freeze_panes(head + 2, lead)?;
    // One item, one A4 landscape page, numbered in the footer.
    ws.set_landscape();
    ws.set_paper_size(A4);
    ws.set_margins(0.4, 0.4, 0.5, 0.5, 0.2, 0.2);
    ws.set_print_fit_to_pages(1, 1);
    ws.set_footer("&C&P / &N");
    ws.set_repeat_rows(head, head + 1)?;
    ws.set_print_area(0, 0, row.saturating_sub(1), last)?;
    Ok(())
}

/// Merges a range, or writes one cell when the range is a single cell (Excel refuses those).
fn merge(
    ws: &mut Worksheet,
    first_row: RowNum,
    first_col: ColNum,
    last_row: RowNum,
    last_col: ColNum,
    text: &str,
    format: &CellFormat,
) -> Result<(), ReportError> {
    if first_row == last_row && first_col == last_col {
        ws.write_string_with_format(first_row, first_col, text, format)?;
    } else {
        ws.merge_range(first_row, first_col, last_row, last_col, text, format)?;
    }
    Ok(())
}

/// Roughly how many lines `text` wraps to in a column `width` characters wide: a Japanese
/// character takes about 1.6 widths of the default font's digit (measured on the printed
/// page), ASCII one. Excel does not size rows of wrapped or merged
/// cells itself, so the height is set from this.
fn lines(text: &str, width: f64) -> usize {
    let width = width.max(2.0);
    text.split('\n')
        .map(|line| {
            let chars: f64 = line
                .chars()
                .map(|c| if c.is_ascii() { 1.0 } else { 1.6 })
                .sum();
            ((chars / width).ceil() as usize).max(1)
        })
        .sum()
}

fn height(lines: usize) -> f64 {
    // Excel's limit for a row is 409 points.
    (lines.max(1) as f64 * LINE_HEIGHT + 3.0).min(409.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::sample_sheet;
    use calamine::{open_workbook_from_rs, Data, Reader, Xlsx};

    fn read_back(bytes: Vec<u8>) -> calamine::Range<Data> {
        let mut book: Xlsx<_> =
            open_workbook_from_rs(std::io::Cursor::new(bytes)).expect("an xlsx file");
        book.worksheet_range("進行管理シート").expect("the sheet")
    }

    /// The (row, column) of the first cell holding `text`.
    fn find(range: &calamine::Range<Data>, text: &str) -> (usize, usize) {
        range
            .cells()
            .find(|(_, _, v)| matches!(v, Data::String(s) if s == text))
            .map(|(r, c, _)| (r, c))
            .unwrap_or_else(|| panic!("no cell {text}"))
    }

    #[test]
    fn the_workbook_reads_back_with_numbers_under_their_year() {
        let range = read_back(xlsx(&sample_sheet()).expect("xlsx"));
        let (head, r5) = find(&range, "R5");
        assert_eq!(
            range.get((head + 1, r5)),
            Some(&Data::String("令和5年度（2023年度）".into()))
        );
        let (target, label_col) = find(&range, "目標");
        let (actual, _) = find(&range, "実績");
        assert_eq!(label_col, 3);
        assert_eq!(range.get((target, r5)), Some(&Data::Float(2300.0)));
        assert_eq!(range.get((actual, r5)), Some(&Data::Float(2412.0)));
        assert_eq!(
            range.get((actual, r5 + 1)),
            Some(&Data::Float(120.0)),
            "R6 next to it"
        );
        assert_eq!(
            range.get((actual, r5 - 1)),
            Some(&Data::String(NONE.into()))
        );
        assert_eq!(
            range.get((actual + 1, r5)),
            Some(&Data::String("達成".into()))
        );
        assert_eq!(
            range.get((actual + 1, r5 + 1)),
            Some(&Data::String("集計中".into())),
            "FY2024 is not over at the sheet's moment"
        );
        // 区分 and 単位 are merged over the block: the value sits in its first row.
        assert_eq!(range.get((target, 2)), Some(&Data::String("人".into())));
    }

    #[test]
    fn the_workbook_carries_the_title_header_and_evaluations() {
        let range = read_back(xlsx(&sample_sheet()).expect("xlsx"));
        assert_eq!(
            range.get((0, 0)),
            Some(&Data::String(
                "はだの行政サービス改革基本方針実行計画　進行管理シート　2-1-2 研修内容の充実"
                    .into()
            ))
        );
        let (code, _) = find(&range, "項目");
        assert_eq!(
            range.get((code, 1)),
            Some(&Data::String("2-1-2 研修内容の充実".into()))
        );
        let (_, r5) = find(&range, "R5");
        let (grade, _) = find(&range, "自己評価");
        assert_eq!(
            range.get((grade, r5)),
            Some(&Data::String("A：計画どおり".into()))
        );
        find(&range, "外部評価");
        find(&range, YEAR_SECTION);
    }

    #[test]
    fn published_rows_appear_only_for_indicators_that_were_published() {
        let range = read_back(xlsx(&sample_sheet()).expect("xlsx"));
        let published: Vec<_> = range
            .cells()
            .filter(|(_, _, v)| matches!(v, Data::String(s) if s == "公表値"))
            .collect();
        assert_eq!(published.len(), 1, "only 受講者数 was published");
        let (row, _, _) = published[0];
        let (_, r5) = find(&range, "R5");
        assert_eq!(range.get((row, r5)), Some(&Data::Float(2415.0)));
        assert_eq!(
            range.get((row + 1, r5)),
            Some(&Data::String("2024-05-30 第2版（人事課）".into()))
        );
        assert_eq!(range.get((row + 2, r5)), Some(&Data::Float(-3.0)));
    }

    #[test]
    fn an_estimate_stays_a_number_with_its_mark_in_the_format() {
        let range = read_back(xlsx(&sample_sheet()).expect("xlsx"));
        let (_, r5) = find(&range, "R5");
        let estimates: Vec<_> = range
            .cells()
            .filter(|(_, c, v)| *c == r5 && matches!(v, Data::Float(x) if *x == 18.5))
            .collect();
        assert_eq!(estimates.len(), 1);
        assert_eq!(
            Styles::new().number(18.5, "%", "（見込み）", Some(1), false),
            Styles::base()
                .set_border(FormatBorder::Thin)
                .set_align(FormatAlign::Right)
                .set_align(FormatAlign::Top)
                .set_num_format("#,##0.0\"%（見込み）\"")
        );
    }

    /// The part of the workbook that holds the worksheet's XML.
    fn worksheet_xml(bytes: &[u8]) -> String {
        use std::io::Read;
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
        let mut xml = String::new();
        zip.by_name("xl/worksheets/sheet1.xml")
            .expect("the worksheet")
            .read_to_string(&mut xml)
            .expect("xml");
        xml
    }

    #[test]
    fn the_sheet_prints_on_one_a4_landscape_page_with_page_numbers() {
        let xml = worksheet_xml(&xlsx(&sample_sheet()).expect("xlsx"));
        assert!(xml.contains("<pageSetUpPr fitToPage=\"1\"/>"), "{xml}");
        assert!(xml.contains("paperSize=\"9\""), "A4");
        assert!(xml.contains("orientation=\"landscape\""));
        assert!(!xml.contains("fitToHeight=\"0\""), "one page tall");
        assert!(xml.contains("<oddFooter>&amp;C&amp;P / &amp;N</oddFooter>"));
        // The two rows of year heads are frozen with the lead columns.
        assert!(xml.contains("state=\"frozen\""));
        assert!(xml.contains("xSplit=\"4\""));
        assert!(xml.contains("ySplit="));
    }

    #[test]
    fn rates_carry_one_decimal_and_percent_in_the_number_format() {
        let bytes = xlsx(&sample_sheet()).expect("xlsx");
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
        let mut styles = String::new();
        std::io::Read::read_to_string(
            &mut zip.by_name("xl/styles.xml").expect("styles"),
            &mut styles,
        )
        .expect("xml");
        assert!(
            styles.contains("formatCode=\"#,##0.0&quot;%&quot;\""),
            "{styles}"
        );
        assert!(styles.contains("formatCode=\"#,##0&quot;人以上&quot;\""));
    }
}
