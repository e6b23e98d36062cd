//! The sheet as CSV: UTF-8 with a byte-order mark (without it Excel reads the file as
//! Shift_JIS and the Japanese is garbled), CRLF line ends, an item header block, a blank line,
//! then the table with one column per fiscal year.

use super::view::{View, TABLE_HEAD, YEAR_SECTION};
use super::ReportError;
use kiroku_projections::sheet::Sheet;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Text that Excel would read as a formula (`=`, `+`, `-`, `@`, or a tab or CR first) gets a
/// leading `'`, so a title or a reason typed as `=HYPERLINK(…)` stays text.
pub(crate) fn inert(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_string(),
    }
}

/// The sheet as CSV bytes (UTF-8 with BOM).
pub fn csv(sheet: &Sheet) -> Result<Vec<u8>, ReportError> {
    let view = View::of(sheet);
    let builder = {
        let mut builder = ::csv::WriterBuilder::new();
        builder.flexible(true).terminator(::csv::Terminator::CRLF);
        builder
    };

    let mut out = builder.from_writer(BOM.to_vec());
    out.write_record([inert(&view.heading())])?;
    for (label, value) in &view.header {
        out.write_record([label.to_string(), inert(value)])?;
    }
    // A blank line between the header block and the table; the csv writer would write an
    // empty record as `""`, so it goes straight into the bytes.
    let mut bytes = finish(out)?;
    bytes.extend_from_slice(b"\r\n");

    let mut out = builder.from_writer(bytes);
    let mut head: Vec<&str> = TABLE_HEAD.to_vec();
    head.extend(view.years.iter().map(|y| y.short.as_str()));
    out.write_record(&head)?;
    for indicator in &view.indicators {
        let name = inert(&indicator.name);
        for row in &indicator.rows {
            let mut record = vec![
                name.clone(),
                indicator.kind_label.clone(),
                indicator.unit_label.clone(),
                row.kind.label().to_string(),
            ];
            // Values are drawn by Kiroku (a negative drift starts with △); texts are inerted.
            record.extend(row.cells.iter().map(|c| match c {
                super::view::Cell::Text(text) => inert(text),
                number => number.text().to_string(),
            }));
            out.write_record(&record)?;
        }
    }
    for row in &view.year_rows {
        let mut record = vec![
            YEAR_SECTION.to_string(),
            String::new(),
            String::new(),
            row.label.to_string(),
        ];
        record.extend(row.cells.iter().map(|text| inert(text)));
        out.write_record(&record)?;
    }
    finish(out)
}

fn finish(out: ::csv::Writer<Vec<u8>>) -> Result<Vec<u8>, ReportError> {
    out.into_inner()
        .map_err(|e| ReportError::Io(e.into_error()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::sample_sheet;

    fn records() -> Vec<Vec<String>> {
        let bytes = csv(&sample_sheet()).expect("csv");
        ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(&bytes[3..])
            .records()
            .map(|r| r.expect("record").iter().map(str::to_string).collect())
            .collect()
    }

    fn row<'a>(records: &'a [Vec<String>], indicator: &str, label: &str) -> &'a [String] {
        records
            .iter()
            .find(|r| r.first().map(String::as_str) == Some(indicator) && r[3] == label)
            .map(Vec::as_slice)
            .unwrap_or_else(|| panic!("no {label} row for {indicator}"))
    }

    /// Excel takes a cell starting with `=`, `+`, `-` or `@` for a formula (`-3人` shows as
    /// `#NAME?`): no cell of the sheet starts so, texts being inerted and drifts taking `△`.
    #[test]
    fn no_cell_reads_as_a_formula_in_excel() {
        let records = records();
        for cell in records.iter().flatten() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@']),
                "{cell} would be a formula"
            );
        }
        assert!(records.iter().flatten().any(|c| c.starts_with('△')));
    }

    #[test]
    fn the_csv_starts_with_a_byte_order_mark_so_excel_reads_utf8() {
        let bytes = csv(&sample_sheet()).expect("csv");
        assert_eq!(&bytes[..3], BOM);
        let text = std::str::from_utf8(&bytes[3..]).expect("utf-8");
        assert!(text.starts_with(
            "はだの行政サービス改革基本方針実行計画　進行管理シート　2-1-2 研修内容の充実\r\n項目,2-1-2 研修内容の充実\r\n"
        ));
        assert!(text.contains("\r\n\r\n指標,区分,単位,行,R3,R4,R5,R6,R7\r\n"));
    }

    #[test]
    fn targets_actuals_and_achievement_read_as_on_the_city_sheet() {
        let records = records();
        let target = row(&records, "職員研修の年間延べ受講者数", "目標");
        assert_eq!(target[1..4], ["活動指標", "人", "目標"]);
        assert_eq!(
            target[4..],
            ["－", "－", "2,300人以上", "2,300人以上", "－"]
        );
        let actual = row(&records, "職員研修の年間延べ受講者数", "実績");
        assert_eq!(actual[4..], ["－", "－", "2,412人", "120人", "－"]);
        // FY2024 is not over on 2024-06-30: 集計中, not 未達成.
        let achieved = row(&records, "職員研修の年間延べ受講者数", "達成");
        assert_eq!(achieved[4..], ["－", "－", "達成", "集計中", "－"]);
        let published = row(&records, "職員研修の年間延べ受講者数", "公表値");
        assert_eq!(published[6], "2,415人");
        let published_on = row(&records, "職員研修の年間延べ受講者数", "公表日・版");
        assert_eq!(published_on[6], "2024-05-30 第2版（人事課）");
        let drift = row(&records, "職員研修の年間延べ受講者数", "乖離");
        assert_eq!(drift[6], "△3人");

        // Rates measured always with one decimal; an exact target without 以上 or 以下.
        let want = "「管理職になりたいと思う」と回答する比率";
        assert_eq!(row(&records, want, "目標")[6], "90%以上");
        assert_eq!(row(&records, want, "目標")[8], "0%");
        assert_eq!(row(&records, want, "実績")[6], "18.5%（見込み）");
        assert_eq!(row(&records, want, "実績")[7], "98.0%");
        assert_eq!(row(&records, want, "達成")[6], "未達成");
        assert_eq!(row(&records, want, "達成")[7], "集計中");
    }

    #[test]
    fn the_item_header_and_the_year_rows_are_there() {
        let records = records();
        let header = |label: &str| {
            records
                .iter()
                .find(|r| r[0] == label)
                .map(|r| r[1].clone())
                .unwrap_or_default()
        };
        assert_eq!(header("取組主管課"), "職員課");
        assert_eq!(header("区分"), "継続");
        assert_eq!(header("関係計画"), "－");
        assert_eq!(header("基準時点"), "2024-06-30 09:00 JST");
        assert_eq!(row(&records, YEAR_SECTION, "自己評価")[6], "A：計画どおり");
        assert_eq!(
            row(&records, YEAR_SECTION, "次年度以降の方向性")[6],
            "継続実施"
        );
        assert_eq!(
            row(&records, YEAR_SECTION, "内部評価（結果要因、次年度課題等）")[6],
            "研修等の効果を測定する。"
        );
        assert_eq!(row(&records, YEAR_SECTION, "外部評価")[5], "－");
        // Quoting is the csv crate's: commas, quotes and newlines survive a round trip.
        assert_eq!(
            row(&records, YEAR_SECTION, "活動実績")[6],
            "階層別研修に「対話」を取り入れた <新> 研修 & 講演"
        );
    }

    #[test]
    fn text_that_excel_would_run_as_a_formula_is_made_inert() {
        assert_eq!(
            inert("=HYPERLINK(\"http://x\")"),
            "'=HYPERLINK(\"http://x\")"
        );
        assert_eq!(inert("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(inert("+1"), "'+1");
        assert_eq!(inert("研修"), "研修");
        let mut sheet = sample_sheet();
        sheet.indicators[0].name = "=cmd|' /C calc'!A0".into();
        let bytes = csv(&sheet).expect("csv");
        let text = String::from_utf8(bytes).expect("utf-8");
        assert!(text.contains("\r\n'=cmd|' /C calc'!A0,活動指標"), "{text}");
        assert!(
            text.contains(",△3人"),
            "numbers stay as they are, a negative with △"
        );
    }
}
