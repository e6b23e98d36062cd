//! `kiroku serve --demo` in an empty directory: the embedded ledger is created, the demo city
//! loaded, and the 2-1-2 sheet reads the same in JSON and in the xlsx the city would open.

use calamine::{Data, Reader, Xlsx};
use serde_json::Value;
use std::io::Cursor;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn kiroku(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiroku"));
    command.current_dir(dir).env_remove("DATABASE_URL");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_demo_in_an_empty_directory_shows_the_2_1_2_sheet() {
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let mut server = kiroku(dir.path())
        .args(["serve", "--demo", "--addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kiroku serve --demo");
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Ok(response) = client.get(format!("{base}/healthz")).send().await {
            if response.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the demo server came up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        dir.path().join("kiroku.db").exists(),
        "./kiroku.db was created"
    );

    let output = kiroku(dir.path())
        .args([
            "token",
            "create",
            "--role",
            "auditor",
            "--name",
            "外部評価委員会",
        ])
        .output()
        .expect("token");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8_lossy(&output.stdout).trim().to_string();

    let sheet: Value = client
        .get(format!("{base}/plan-items/2-1-2/sheet"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sheet")
        .json()
        .await
        .expect("json");
    assert_eq!(
        sheet["fiscal_years"],
        serde_json::json!([2021, 2022, 2023, 2024, 2025])
    );
    let attendees = sheet["indicators"]
        .as_array()
        .and_then(|list| {
            list.iter()
                .find(|i| i["name"] == "職員研修の年間延べ受講者数")
        })
        .cloned()
        .expect("the attendance indicator");
    let years = attendees["years"].as_array().cloned().unwrap_or_default();
    assert_eq!(years.len(), 5, "R3–R7");
    let mut actuals = Vec::new();
    for year in &years {
        assert_eq!(year["target"]["value"], serde_json::json!(2300.0), "{year}");
        let fy = year["fiscal_year"].as_i64().unwrap_or(0);
        if fy <= 2024 {
            assert_eq!(year["actual"]["source"], "computed");
            let value = year["actual"]["value"].as_f64().expect("a computed actual");
            assert!((1500.0..=3500.0).contains(&value), "FY{fy}: {value}");
            actuals.push(value);
        }
    }

    let bytes = client
        .get(format!("{base}/plan-items/2-1-2/sheet?format=xlsx"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("xlsx")
        .bytes()
        .await
        .expect("bytes");
    let mut workbook: Xlsx<_> =
        calamine::open_workbook_from_rs(Cursor::new(bytes.to_vec())).expect("the xlsx opens");
    let name = workbook
        .sheet_names()
        .first()
        .cloned()
        .expect("a worksheet");
    let range = workbook.worksheet_range(&name).expect("range");
    let cells: Vec<&Data> = range.used_cells().map(|(_, _, c)| c).collect();
    let texts: Vec<String> = cells
        .iter()
        .filter_map(|c| match c {
            Data::String(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    for label in ["目標", "実績", "R3", "R7", "職員研修の年間延べ受講者数"] {
        assert!(
            texts.iter().any(|t| t.contains(label)),
            "the xlsx shows {label}"
        );
    }
    let numbers: Vec<f64> = cells
        .iter()
        .filter_map(|c| match c {
            Data::Float(f) => Some(*f),
            Data::Int(i) => Some(*i as f64),
            _ => None,
        })
        .collect();
    for actual in actuals {
        assert!(
            numbers.contains(&actual),
            "the xlsx holds the actual {actual}"
        );
    }
    assert!(numbers.contains(&2300.0), "the xlsx holds the target");

    let _ = server.kill();
    let _ = server.wait();
}
