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
        Some(&Data::String("令和5年度（2023年度）".into()))
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

/// The cell of row `label` of indicator `name` in the column headed `column`, in the CSV.
fn csv_at(bytes: &[u8], name: &str, label: &str, column: &str) -> String {
    let records: Vec<Vec<String>> = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(&bytes[3..])
        .records()
        .map(|r| r.expect("record").iter().map(str::to_string).collect())
        .collect();
    let head = records
        .iter()
        .find(|r| r.first().map(String::as_str) == Some("指標"))
        .expect("the table head");
    let col = head.iter().position(|h| h == column).expect("the column");
    records
        .iter()
        .find(|r| r.len() > col && r[0] == name && r[3] == label)
        .map(|r| r[col].clone())
        .unwrap_or_else(|| panic!("no {label} row of {name}"))
}

/// The cell of row `label` of indicator `name` in the column headed `column`, in the xlsx.
fn xlsx_at(bytes: &[u8], name: &str, label: &str, column: &str) -> Data {
    let mut book: Xlsx<_> =
        open_workbook_from_rs(std::io::Cursor::new(bytes.to_vec())).expect("an xlsx workbook");
    let sheet = book.sheet_names().first().cloned().expect("a worksheet");
    let range = book.worksheet_range(&sheet).expect("the worksheet");
    let find = |text: &str| {
        range
            .cells()
            .find(|(_, _, v)| matches!(v, Data::String(s) if s.starts_with(text)))
            .map(|(r, c, _)| (r, c))
            .unwrap_or_else(|| panic!("no cell {text} in the workbook"))
    };
    let (_, col) = find(column);
    let (block, _) = find(name);
    let (row, _) = range
        .cells()
        .find(|(r, c, v)| *r >= block && *c == 3 && matches!(v, Data::String(s) if s == label))
        .map(|(r, c, _)| (r, c))
        .unwrap_or_else(|| panic!("no {label} row of {name} in the workbook"));
    range.get((row, col)).cloned().unwrap_or(Data::Empty)
}

const RATE: &str = "研修を受講して業務に役立つと回答した職員の割合";
const INCIDENTS: &str = "不適切な事務処理等の件数";
const COUNT: &str = "研修の修了者数";

both_backends!(
    unfinished_years_rates_and_exact_targets_read_the_same_in_every_format,
    |app: TestApp| async move {
        use kiroku_domain::values::FiscalYear;
        let today = chrono::Utc::now()
            .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).expect("JST"))
            .date_naive();
        let current = FiscalYear::of(today);
        let (now, last) = (current.year(), current.year() - 1);
        let (now_col, last_col) = (
            current.short_label(),
            FiscalYear::new(last).expect("fy").short_label(),
        );
        let defined = app
            .post(
                &app.hr,
                "/plan-items",
                &json!({
                    "code": "9-1", "title": "書式の確認", "pillar": "人材育成",
                    "lead_department": "人事課", "status": "new",
                    "from_fiscal_year": last - 1, "to_fiscal_year": now + 1,
                    "plan": "テスト計画",
                    "indicators": [
                        {"indicator_code": "count", "name": COUNT, "kind": "activity",
                         "unit": "people", "source": {"rule": "training_completions"},
                         "targets": {now.to_string(): {"op": ">=", "value": 10}}},
                        {"indicator_code": "rate", "name": RATE, "kind": "outcome",
                         "unit": "percent", "source": "manual",
                         "targets": {last.to_string(): {"op": ">=", "value": 100}}},
                        {"indicator_code": "incidents", "name": INCIDENTS, "kind": "outcome",
                         "unit": "count", "source": {"rule": "compliance_incidents"},
                         "targets": {last.to_string(): {"op": "<=", "value": 0}}}
                    ]
                }),
            )
            .await;
        assert_eq!(defined.status.as_u16(), 201, "{:?}", defined.body);
        let reported = app
            .post(
                &app.hr,
                "/plan-items/9-1/actuals",
                &json!({"indicator_code": "rate", "fiscal_year": last, "value": 98, "status": "confirmed"}),
            )
            .await;
        assert_eq!(reported.status.as_u16(), 200, "{:?}", reported.body);
        let evaluated = app
            .post(
                &app.hr,
                "/plan-items/9-1/self-evaluations",
                &json!({"fiscal_year": last, "grade": "B", "reason": "概ね計画どおり", "next_step": "continue"}),
            )
            .await;
        assert_eq!(evaluated.status.as_u16(), 200, "{:?}", evaluated.body);
        let published = app
            .post(
                &app.hr,
                "/plan-items/9-1/publications",
                &json!({"fiscal_year": last}),
            )
            .await;
        assert_eq!(published.status.as_u16(), 201, "{:?}", published.body);
        let corrected = app
            .post(
                &app.hr,
                "/plan-items/9-1/actual-corrections",
                &json!({"indicator_code": "rate", "fiscal_year": last, "value": 99.5, "reason": "集計誤り"}),
            )
            .await;
        assert_eq!(corrected.status.as_u16(), 200, "{:?}", corrected.body);
        app.ledger.projector.catch_up().await.expect("catch up");
        let sheet = app
            .ledger
            .projector
            .sheet("9-1", None)
            .expect("the projector")
            .expect("the item");

        // JSON: this fiscal year is not over, so it is not judged.
        let json: Value =
            serde_json::from_slice(&render(&sheet, Format::Json).expect("json")).expect("parse");
        let count_now = support::sheet_cell(&json, "count", now as i64);
        assert_eq!(count_now["achievement"], "in_progress");
        assert_eq!(count_now["achieved"], Value::Null);
        assert_eq!(json["item"]["plan"], "テスト計画");

        // CSV
        let csv = render(&sheet, Format::Csv).expect("csv");
        assert_eq!(csv_at(&csv, COUNT, "達成", &now_col), "集計中");
        assert_eq!(csv_at(&csv, RATE, "実績", &last_col), "99.5%");
        assert_eq!(csv_at(&csv, RATE, "公表値", &last_col), "98.0%");
        assert_eq!(csv_at(&csv, RATE, "乖離", &last_col), "1.5ポイント");
        assert_eq!(csv_at(&csv, RATE, "目標", &last_col), "100%");
        assert_eq!(csv_at(&csv, INCIDENTS, "目標", &last_col), "0件");
        assert!(csv_at(&csv, RATE, "公表日・版", &last_col).contains("第1版（人事課 テスト）"));
        let text = String::from_utf8(csv.clone()).expect("utf-8");
        assert!(text.contains("テスト計画　進行管理シート　9-1 書式の確認"));
        assert!(text.contains(" JST"), "基準時点 in JST");

        // HTML
        let html = String::from_utf8(render(&sheet, Format::Html).expect("html")).expect("utf-8");
        assert!(html.contains("<td class=\"pending\">集計中</td>"));
        assert!(html.contains(">99.5%</td>") && html.contains(">98.0%</td>"));
        assert!(html.contains(">1.5ポイント</td>"));
        assert!(html.contains(">100%</td>") && html.contains(">0件</td>"));
        assert!(!html.contains("0件以下") && !html.contains("100%以上"));

        // XLSX: numbers stay numbers; the formats carry % and ポイント.
        let xlsx = render(&sheet, Format::Xlsx).expect("xlsx");
        assert_eq!(
            xlsx_at(&xlsx, COUNT, "達成", &now_col),
            Data::String("集計中".into())
        );
        assert_eq!(xlsx_at(&xlsx, RATE, "実績", &last_col), Data::Float(99.5));
        assert_eq!(xlsx_at(&xlsx, RATE, "公表値", &last_col), Data::Float(98.0));
        assert_eq!(xlsx_at(&xlsx, RATE, "乖離", &last_col), Data::Float(1.5));
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(xlsx)).expect("zip");
        let mut styles = String::new();
        std::io::Read::read_to_string(
            &mut zip.by_name("xl/styles.xml").expect("styles"),
            &mut styles,
        )
        .expect("xml");
        assert!(
            styles.contains("#,##0.0&quot;%&quot;"),
            "rates show % with one decimal"
        );
        assert!(
            styles.contains("&quot;ポイント&quot;"),
            "drift of a rate in points"
        );
        assert!(
            styles.contains("&quot;△&quot;"),
            "a negative drift with △, as in the CSV and the page"
        );
        assert!(
            styles.contains("#,##0&quot;件&quot;"),
            "an exact target reads 0件"
        );
    }
);

both_backends!(
    the_html_sheet_and_every_response_forbid_scripts_framing_and_sniffing,
    |app: TestApp| async move {
        item_with_completions(&app, 1).await;
        let html = app
            .client
            .get(app.url("/plan-items/2-1-2/sheet?format=html"))
            .bearer_auth(&app.auditor)
            .send()
            .await
            .expect("html");
        assert_eq!(html.status().as_u16(), 200);
        let refused = app
            .client
            .get(app.url("/plan-items/2-1-2/sheet"))
            .send()
            .await
            .expect("401");
        assert_eq!(refused.status().as_u16(), 401);
        for response in [&html, &refused] {
            let headers = response.headers();
            let csp = headers["content-security-policy"].to_str().expect("csp");
            assert!(csp.contains("default-src 'none'"), "{csp}");
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
            assert!(
                !csp.contains("script-src"),
                "no script source at all: {csp}"
            );
            assert_eq!(headers["x-content-type-options"], "nosniff");
            assert_eq!(headers["x-frame-options"], "DENY");
        }
    }
);
