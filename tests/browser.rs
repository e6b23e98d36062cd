//! The pages in a real headless Chromium, on both backends: an HR clerk signs in, enrols a
//! staff member, records the completion, sees the sheet move, follows the number to its audit
//! trail, looks at the sheet as it stood before, downloads the CSV and imports a Shift_JIS
//! file whose third line is wrong, then the corrected file. The browser may not ask anything
//! of another host. Screenshots of every page go to `target/screenshots/{backend}/`.

mod support;

use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;
use support::browser::{driver_path, Browser};
use support::pages::root;
use support::{plan_item_body, staff_body, Db, TestApp};

const HOSTILE: &str = "<script>alert(1)</script>\" onmouseover=\"x";

fn screenshots(db: Db) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("screenshots")
        .join(match db {
            Db::Sqlite => "sqlite",
            Db::Postgres => "postgres",
        });
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// A CSV as Excel on Japanese Windows saves it: Shift_JIS (CP932), CRLF.
fn cp932_crlf(lines: &[&str]) -> Vec<u8> {
    let text = lines.join("\r\n") + "\r\n";
    let (bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&text);
    assert!(!unmappable);
    bytes.into_owned()
}

/// `2026-11-22T15:20:05` in JST, as the sheet's picker takes it.
fn picker(at: chrono::DateTime<chrono::Utc>) -> String {
    (at + chrono::Duration::hours(9))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// Everything the page loaded came from the server under test.
async fn assert_own(browser: &Browser, base: &str) {
    let foreign = browser.foreign_resources(base).await;
    assert!(
        foreign.is_empty(),
        "the page loaded from elsewhere: {foreign:?}"
    );
}

async fn cell(browser: &Browser, key: &str) -> String {
    browser
        .script(
            "const c = document.querySelector(`[data-cell=\"${arguments[0]}\"]`); return c ? c.innerText.trim() : null;",
            json!([key]),
        )
        .await
        .as_str()
        .unwrap_or_else(|| panic!("no cell {key}"))
        .to_string()
}

both_backends!(
    an_hr_clerk_records_a_completion_and_follows_it_through_sheet_trail_past_and_import,
    |app: TestApp| async move {
        let Some(driver) = driver_path() else { return };
        let shots = screenshots(app.db);
        let defined = app.post(&app.hr, "/plan-items", &plan_item_body()).await;
        assert_eq!(defined.status.as_u16(), 201, "{:?}", defined.body);
        let session = app.schedule(10).await;
        let mut hostile = staff_body("B-001", "職員課", 2, "2015-04-01");
        hostile["name"] = json!(format!("山田{HOSTILE}"));
        let registered = app.post(&app.hr, "/staff", &hostile).await;
        assert_eq!(registered.status.as_u16(), 201, "{:?}", registered.body);
        let staff_id = registered.id();
        let mut second = staff_body("B-002", "職員課", 2, "2015-04-01");
        second["name"] = json!(format!("佐藤{HOSTILE}"));
        assert_eq!(
            app.post(&app.hr, "/staff", &second).await.status.as_u16(),
            201
        );
        app.register("B-003", "職員課", 2).await;

        let base = root(&app);
        let browser = Browser::start(&driver).await;

        // The watch works: a page that asks another host is seen (the local sink answers it).
        browser
            .go("data:text/html,<img src='http://kiroku-elsewhere.invalid/x.png'>")
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let seen = browser.page_requests().await;
        assert!(
            seen.iter().any(|u| u.contains("kiroku-elsewhere.invalid")),
            "{seen:?}"
        );

        // Sign in as hr_admin.
        browser.go(&format!("{base}/")).await;
        assert!(browser.current_url().await.ends_with("/login"));
        assert_own(&browser, &base).await;
        browser.screenshot(&shots.join("00-sign-in.png")).await;
        browser.type_into("#token", &app.hr).await;
        browser.click("button[type=submit]").await;
        browser.wait_for_text("ダッシュボード").await;
        assert_own(&browser, &base).await;
        browser.screenshot(&shots.join("01-dashboard.png")).await;

        // The sheet before.
        browser.go(&format!("{base}/plan-items/2-1-2")).await;
        let before = cell(&browser, "attendees/2023/actual").await;
        assert_eq!(before, "0人");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let moment_before = chrono::Utc::now();
        tokio::time::sleep(Duration::from_millis(1100)).await;

        // Enrol B-001 and record the completion.
        browser.go(&format!("{base}/sessions/{session}")).await;
        browser.type_into("#employee_no", "B-001").await;
        browser.click("form[action$='/enrol'] button").await;
        browser.wait_for_text("受講者を登録しました").await;
        browser.click("input[name=staff]").await;
        browser
            .click("form[action$='/complete'] button[type=submit]")
            .await;
        let text = browser.wait_for_text("修了を記録しました").await;
        assert!(text.contains(&format!("山田{HOSTILE}")), "{text}");
        assert_own(&browser, &base).await;
        browser.screenshot(&shots.join("03-session.png")).await;

        // The sheet value changed.
        browser.go(&format!("{base}/plan-items/2-1-2")).await;
        let after = cell(&browser, "attendees/2023/actual").await;
        assert_eq!(after, "1人");
        assert_own(&browser, &base).await;
        browser.screenshot(&shots.join("02-sheet.png")).await;

        // That number's audit trail names the change.
        browser.click("[data-cell='attendees/2023/actual'] a").await;
        let trail = browser.wait_for_text("監査証跡").await;
        assert!(trail.contains("研修の修了"), "{trail}");
        assert!(trail.contains("B-001"), "{trail}");
        assert!(trail.contains(&format!("山田{HOSTILE}")), "{trail}");
        assert!(trail.contains("0人") && trail.contains("1人"), "{trail}");
        assert_own(&browser, &base).await;
        browser.screenshot(&shots.join("04-audit-trail.png")).await;

        // The sheet as it stood before the completion.
        browser.go(&format!("{base}/plan-items/2-1-2")).await;
        browser
            .script(
                "document.querySelector('#as_of').value = arguments[0];",
                json!([picker(moment_before)]),
            )
            .await;
        browser.click(".toolbar form button[type=submit]").await;
        browser.wait_for_text("時点の表示です").await;
        assert_eq!(cell(&browser, "attendees/2023/actual").await, "0人");
        assert_own(&browser, &base).await;
        browser.screenshot(&shots.join("05-sheet-as-of.png")).await;

        // The CSV download holds today's value.
        browser.go(&format!("{base}/plan-items/2-1-2")).await;
        browser.click("a[href$='sheet.csv']").await;
        let csv = browser.wait_for_download(".csv").await;
        let csv = String::from_utf8(csv).expect("UTF-8 CSV");
        assert!(csv.contains("研修内容の充実"), "{csv}");
        assert!(csv.contains("1人"), "{csv}");

        // The staff page shows the hostile name as text.
        browser.go(&format!("{base}/staff/{staff_id}")).await;
        let page = browser.wait_for_text("研修履歴").await;
        assert!(page.contains(&format!("山田{HOSTILE}")), "{page}");
        assert_eq!(browser.count("script").await, 0);
        assert_eq!(browser.count("[onmouseover]").await, 0);
        assert_own(&browser, &base).await;
        browser.screenshot(&shots.join("06-staff.png")).await;

        // A CP932 file with CRLF whose third line is wrong: line 3 is named, nothing recorded.
        let dir = tempfile::tempdir().expect("dir");
        let header = "職員番号,研修コード,開催日,修了日,理解度";
        let wrong = dir.path().join("受講実績.csv");
        std::fs::write(
            &wrong,
            cp932_crlf(&[
                header,
                "B-002,K-101,2023/5/10,2023/5/11,4",
                "B-003,K-101,2023/5/10,2023/5/11,9",
            ]),
        )
        .expect("write the file");
        let events_before = kiroku::storage::log::count(&app.ledger.backend)
            .await
            .expect("count");
        browser.go(&format!("{base}/imports")).await;
        browser
            .type_into("#file", &wrong.display().to_string())
            .await;
        browser.click("form[action='/imports'] button").await;
        let errors = browser.wait_for_text("何も取り込んでいません").await;
        assert!(errors.contains("3行目"), "{errors}");
        assert!(!errors.contains("2行目"), "{errors}");
        browser
            .screenshot(&shots.join("07-import-errors.png"))
            .await;
        assert_eq!(
            kiroku::storage::log::count(&app.ledger.backend)
                .await
                .expect("count"),
            events_before
        );

        // Fixed, checked, then imported.
        let fixed = dir.path().join("受講実績（修正）.csv");
        std::fs::write(
            &fixed,
            cp932_crlf(&[
                header,
                "B-002,K-101,2023/5/10,2023/5/11,4",
                "B-003,K-101,2023/5/10,2023/5/11,5",
            ]),
        )
        .expect("write the file");
        browser
            .type_into("#file", &fixed.display().to_string())
            .await;
        browser.click("form[action='/imports'] button").await;
        let preview = browser.wait_for_text("問題はありません").await;
        assert!(preview.contains(&format!("佐藤{HOSTILE}")), "{preview}");
        assert_eq!(browser.count("script").await, 0);
        assert_eq!(browser.count("[onmouseover]").await, 0);
        browser
            .screenshot(&shots.join("08-import-preview.png"))
            .await;
        browser.click("form[action$='/commit'] button").await;
        browser.wait_for_text("取り込みました").await;
        assert_own(&browser, &base).await;
        browser.screenshot(&shots.join("09-import-done.png")).await;
        browser.go(&format!("{base}/plan-items/2-1-2")).await;
        assert_eq!(cell(&browser, "attendees/2023/actual").await, "3人");

        // A page that does not exist.
        browser.go(&format!("{base}/no-such-page")).await;
        browser.wait_for_text("ページが見つかりません").await;
        assert_own(&browser, &base).await;
        browser.screenshot(&shots.join("10-not-found.png")).await;

        let requested = browser.page_requests().await;
        browser.quit().await;
        assert!(
            requested.len() > 20,
            "the network log is empty: {requested:?}"
        );
        let foreign: Vec<&String> = requested
            .iter()
            // data: and about: name no host; anything with one must be this server.
            .filter(|url| url.contains("://") && !url.starts_with(&format!("{base}/")))
            .collect();
        assert!(
            foreign.is_empty(),
            "the pages asked another host for something: {foreign:?}"
        );
    }
);
