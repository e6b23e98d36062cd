//! A spreadsheet opens Kiroku's CSV downloads — the progress sheet and the audit trail — and
//! runs nothing: texts typed as formulas (`=HYPERLINK(…)`, `+cmd|…`, `@SUM(…)`, `-2+3`) stay
//! text. LibreOffice Calc (Debian's, headless) converts the CSV to xlsx with formulas
//! evaluated, as a user opening the file would, and calamine reads what it made. A control
//! file with the same texts written raw shows the check would catch them.

mod support;

use calamine::{open_workbook, Reader, Xlsx};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use support::TestApp;

const HOSTILE: [&str; 4] = [
    "=HYPERLINK(\"http://evil.invalid\",\"詳細\")",
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "-2+3",
];

/// The formulas LibreOffice made of `csv`, and every text cell.
fn open_in_a_spreadsheet(dir: &Path, name: &str, csv: &[u8]) -> (Vec<String>, Vec<String>) {
    let file = dir.join(format!("{name}.csv"));
    std::fs::write(&file, csv).expect("write");
    let output = Command::new("soffice")
        .env("HOME", dir)
        .args([
            "--headless",
            "--infilter=CSV:44,34,76,1",
            "--convert-to",
            "xlsx",
            "--outdir",
        ])
        .arg(dir)
        .arg(&file)
        .output()
        .expect("run soffice (scripts/test.sh installs libreoffice-calc)");
    assert!(output.status.success(), "{output:?}");
    let mut book: Xlsx<_> = open_workbook(dir.join(format!("{name}.xlsx"))).expect("xlsx");
    let sheet = book.sheet_names()[0].clone();
    let formulas = book
        .worksheet_formula(&sheet)
        .expect("formulas")
        .used_cells()
        .filter(|(_, _, f)| !f.is_empty())
        .map(|(_, _, f)| f.clone())
        .collect();
    let texts = book
        .worksheet_range(&sheet)
        .expect("cells")
        .used_cells()
        .map(|(_, _, v)| v.to_string())
        .collect();
    (formulas, texts)
}

both_backends!(
    a_spreadsheet_opens_the_csv_downloads_and_runs_no_formula,
    |app: TestApp| async move {
        let mut item = support::plan_item_body();
        item["title"] = json!(HOSTILE[0]);
        item["indicators"][0]["name"] = json!(HOSTILE[3]);
        let created = app.post(&app.hr, "/plan-items", &item).await;
        assert_eq!(created.status, 201, "{:?}", created.body);
        for (path, body) in [
            (
                "activities",
                json!({"fiscal_year": 2023, "planned": HOSTILE[1], "result": HOSTILE[2]}),
            ),
            (
                "self-evaluations",
                json!({"fiscal_year": 2023, "grade": "A", "reason": HOSTILE[0], "next_step": "continue"}),
            ),
            (
                "external-evaluations",
                json!({"fiscal_year": 2023, "text": HOSTILE[1]}),
            ),
            (
                "actuals",
                json!({"indicator_code": "want_management", "fiscal_year": 2023, "value": 18.5, "status": "estimate"}),
            ),
            (
                "actual-corrections",
                json!({"indicator_code": "want_management", "fiscal_year": 2023, "value": 18.6, "reason": HOSTILE[2]}),
            ),
        ] {
            let reply = app
                .post(&app.hr, &format!("/plan-items/2-1-2/{path}"), &body)
                .await;
            assert!(reply.status.is_success(), "{path}: {:?}", reply.body);
        }
        let download = |path: String| {
            let app = &app;
            async move {
                app.client
                    .get(app.url(&path))
                    .bearer_auth(&app.hr)
                    .send()
                    .await
                    .expect("download")
                    .bytes()
                    .await
                    .expect("bytes")
            }
        };
        let sheet = download("/plan-items/2-1-2/sheet?format=csv".into()).await;
        let trail = download(
            "/plan-items/2-1-2/audit?indicator=want_management&fiscal_year=2023&format=csv".into(),
        )
        .await;

        let dir = tempfile::tempdir().expect("dir");
        for (name, csv) in [("sheet", &sheet[..]), ("trail", &trail[..])] {
            let (formulas, texts) = open_in_a_spreadsheet(dir.path(), name, csv);
            assert!(
                formulas.is_empty(),
                "{name}: the spreadsheet made formulas {formulas:?}"
            );
            let hostile_seen = texts
                .iter()
                .filter(|t| HOSTILE.iter().any(|h| t.contains(h)))
                .count();
            assert!(
                hostile_seen > 0,
                "{name}: the texts are there, as text: {texts:?}"
            );
        }

        // The control: the same texts written raw become formulas in the same spreadsheet.
        let quoted = HOSTILE[0].replace('"', "\"\"");
        let raw = format!("\u{feff}a,b\r\n\"{quoted}\",=1+1\r\n");
        let (formulas, _) = open_in_a_spreadsheet(dir.path(), "control", raw.as_bytes());
        assert_eq!(formulas.len(), 2, "the control's formulas: {formulas:?}");
    }
);
