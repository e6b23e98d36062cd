//! One sheet from the log, rendered in every format: json, csv, html and xlsx show the same
//! numbers.

mod support;

use calamine::{open_workbook_from_rs, Data, Reader, Xlsx};
use kiroku::reports::{render, Format};
use serde_json::{json, Value};
use support::TestApp;

const ATTENDEES: &str = "職員研修の年間延べ受講者数";

/// Defines plan item 2-1-2 and records `n` completions of a FY2023 (R5) session.
async fn item_with_completions(app: &TestApp, n: usize) {
    let defined = app
        .post(&app.hr, "/plan-items", &support::plan_item_body())
        .await;
    assert_eq!(defined.status.as_u16(), 201, "{:?}", defined.body);
    let session = app.schedule(10).await;
    for i in 0..n {
        let id = app.register(&format!("F{i}"), "職員課", 2).await;
        let enrolled = app
            .post(
                &app.hr,
                &format!("/sessions/{session}/enrolments"),
                &json!({"staff_id": id}),
            )
            .await;
        assert!(enrolled.status.is_success(), "{:?}", enrolled.body);
        let completed = app
            .post(
                &app.hr,
                &format!("/sessions/{session}/completions"),
                &json!({"staff_id": id, "completed_on": "2023-05-11", "understanding": 4}),
            )
            .await;
        assert_eq!(completed.status.as_u16(), 201, "{:?}", completed.body);
    }
}

/// The R5 cell of the attendees' row `label` in the CSV.
fn csv_cell(bytes: &[u8], label: &str) -> String {
    assert_eq!(&bytes[..3], b"\xEF\xBB\xBF", "the csv starts with a BOM");
    let records: Vec<Vec<String>> = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(&bytes[3..])
        .records()
        .map(|r| {
            r.expect("a csv record")
                .iter()
                .map(str::to_string)
                .collect()
        })
        .collect();
    let head = records
        .iter()
        .find(|r| r.first().map(String::as_str) == Some("指標"))
        .expect("the table header");
    let r5 = head.iter().position(|h| h == "R5").expect("an R5 column");
    let row = records
        .iter()
        .find(|r| r.len() > r5 && r[0] == ATTENDEES && r[3] == label)
        .unwrap_or_else(|| panic!("no {label} row in the csv"));
    row[r5].clone()
}

/// The R5 cell of the attendees' row `label` in the workbook.
fn xlsx_cell(bytes: Vec<u8>, label: &str) -> Data {
    let mut book: Xlsx<_> =
        open_workbook_from_rs(std::io::Cursor::new(bytes)).expect("an xlsx workbook");
    let name = book.sheet_names().first().cloned().expect("a worksheet");
    let range = book.worksheet_range(&name).expect("the worksheet");
    let find = |text: &str| {
        range
            .cells()
            .find(|(_, _, v)| matches!(v, Data::String(s) if s == text))
            .map(|(r, c, _)| (r, c))
            .unwrap_or_else(|| panic!("no cell {text} in the workbook"))
    };
    let (head, r5) = find("R5");
    assert_eq!(
        range.get((head + 1, r5)),
        Some(&Data::String("令和5年度".into()))
    );
    // Rows below the attendees' name cell, in its block: the first with this label.
    let (block, _) = find(ATTENDEES);
    let (row, _) = range
        .cells()
        .find(|(r, c, v)| *r >= block && *c == 3 && matches!(v, Data::String(s) if s == label))
        .map(|(r, c, _)| (r, c))
        .unwrap_or_else(|| panic!("no {label} row in the workbook"));
    range.get((row, r5)).cloned().unwrap_or(Data::Empty)
}

both_backends!(
    every_format_shows_the_same_actual,
    |app: TestApp| async move {
        item_with_completions(&app, 3).await;
        app.ledger.projector.catch_up().await.expect("catch up");
        let sheet = app
            .ledger
            .projector
            .sheet("2-1-2", None)
            .expect("the projector")
            .expect("the item is defined");

        let json: Value =
            serde_json::from_slice(&render(&sheet, Format::Json).expect("json")).expect("parse");
        let r5 = json["indicators"]
            .as_array()
            .and_then(|list| list.iter().find(|i| i["code"] == "attendees"))
            .and_then(|i| i["years"].as_array())
            .and_then(|years| years.iter().find(|y| y["fiscal_year"] == 2023))
            .cloned()
            .expect("the R5 cell of attendees");
        assert_eq!(r5["actual"], json!({"value": 3.0, "source": "computed"}));
        assert_eq!(r5["achieved"], json!(false));

        let csv = render(&sheet, Format::Csv).expect("csv");
        assert_eq!(csv_cell(&csv, "実績"), "3人");
        assert_eq!(csv_cell(&csv, "目標"), "2,300人以上");
        assert_eq!(csv_cell(&csv, "達成"), "未達成");

        let html = String::from_utf8(render(&sheet, Format::Html).expect("html")).expect("utf-8");
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<html lang=\"ja\">"));
        assert!(html.contains(">3人</td>"), "the actual in the html");
        assert!(html.contains(">2,300人以上</td>"), "the target in the html");
        assert!(html.contains(&format!(">{ATTENDEES}")));

        let xlsx = render(&sheet, Format::Xlsx).expect("xlsx");
        assert_eq!(xlsx_cell(xlsx.clone(), "実績"), Data::Float(3.0));
        assert_eq!(xlsx_cell(xlsx.clone(), "目標"), Data::Float(2300.0));
        assert_eq!(xlsx_cell(xlsx, "達成"), Data::String("未達成".into()));

        for format in [Format::Json, Format::Csv, Format::Xlsx, Format::Html] {
            assert_eq!(Format::parse(format.extension()), Some(format));
            assert!(!format.content_type().is_empty());
        }
    }
);
