//! The demo city: loads into an empty ledger, tells the story its sheets promise, is the same
//! every time, and refuses a ledger that already holds events.

mod support;

use kiroku::demo::{self, DemoError};
use serde_json::Value;
use std::time::Instant;
use support::{spawn_app, Db};

fn indicator<'a>(sheet: &'a Value, code: &str) -> &'a Value {
    sheet["indicators"]
        .as_array()
        .and_then(|list| list.iter().find(|i| i["code"] == code))
        .unwrap_or(&Value::Null)
}

fn cell<'a>(sheet: &'a Value, code: &str, year: i64) -> &'a Value {
    indicator(sheet, code)["years"]
        .as_array()
        .and_then(|years| years.iter().find(|y| y["fiscal_year"] == year))
        .unwrap_or(&Value::Null)
}

fn actual(sheet: &Value, code: &str, year: i64) -> f64 {
    cell(sheet, code, year)["actual"]["value"]
        .as_f64()
        .unwrap_or_else(|| {
            panic!(
                "no actual for {code} in {year}: {}",
                cell(sheet, code, year)
            )
        })
}

/// The sheet without what legitimately differs between two loads: the moment it was drawn
/// and the transaction times of the publications.
fn normalized(mut sheet: Value) -> Value {
    sheet["as_of"] = Value::Null;
    if let Some(indicators) = sheet["indicators"].as_array_mut() {
        for indicator in indicators {
            if let Some(years) = indicator["years"].as_array_mut() {
                for year in years {
                    if year["published"].is_object() {
                        year["published"]["recorded_at"] = Value::Null;
                    }
                }
            }
        }
    }
    sheet
}

fn sheet(app: &support::TestApp, code: &str) -> Value {
    app.ledger
        .projector
        .sheet(code, None)
        .expect("sheet")
        .unwrap_or_else(|| panic!("no plan item {code}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_demo_city_loads_deterministically_into_an_empty_ledger_only() {
    let Some(app) = spawn_app(Db::Sqlite).await else {
        return;
    };
    let started = Instant::now();
    let summary = demo::load(&app.ledger).await.expect("load the demo city");
    let elapsed = started.elapsed();
    eprintln!(
        "demo load: {:.1} s for {} commands / {} events ({} staff, {} sessions, {} completions, {} interviews, {} evaluations, {} incidents, {} plan items)",
        elapsed.as_secs_f64(),
        summary.commands,
        summary.events,
        summary.staff,
        summary.sessions,
        summary.completions,
        summary.interviews,
        summary.evaluations,
        summary.incidents,
        summary.plan_items,
    );
    for (event_type, count) in &summary.event_types {
        eprintln!("  {event_type:<28} {count:>6}");
    }
    assert_eq!(summary.events, app.event_count().await);
    assert!(summary.events < 60_000, "{} events", summary.events);
    assert_eq!(
        summary.event_types.values().sum::<usize>() as i64,
        summary.events
    );

    for code in ["2-1", "2-1-1", "2-1-2", "2-1-3", "2-1-4", "O-1"] {
        let sheet = sheet(&app, code);
        for indicator in sheet["indicators"].as_array().into_iter().flatten() {
            let row: Vec<String> = indicator["years"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|y| {
                    format!(
                        "{}={} ({}) published {} drift {}",
                        y["short_label"].as_str().unwrap_or(""),
                        y["actual"]["value"],
                        y["actual"]["source"].as_str().unwrap_or("-"),
                        y["published"]["value"],
                        y["drift"]
                    )
                })
                .collect();
            eprintln!("{code} {}: {}", indicator["code"], row.join(" | "));
        }
    }

    // 2-1-2 研修内容の充実: about 2,300 completions a year against a target of 2,300.
    let training = sheet(&app, "2-1-2");
    assert_eq!(
        training["fiscal_years"],
        serde_json::json!([2021, 2022, 2023, 2024, 2025])
    );
    assert_eq!(
        indicator(&training, "attendees")["name"],
        "職員研修の年間延べ受講者数"
    );
    for year in 2021..=2025 {
        let target = &cell(&training, "attendees", year)["target"];
        assert_eq!(target["op"], ">=", "{year}");
        assert_eq!(target["value"].as_f64(), Some(2300.0), "{year}");
    }
    for year in 2021..=2024 {
        let value = actual(&training, "attendees", year);
        assert!((2000.0..=2700.0).contains(&value), "{year}: {value}");
        assert_eq!(
            cell(&training, "attendees", year)["actual"]["source"],
            "computed"
        );
    }

    // O-1: women in management 15.6 % → 20 %.
    let action = sheet(&app, "O-1");
    let women_2022 = actual(&action, "women_in_management", 2022);
    assert!((14.0..=17.0).contains(&women_2022), "{women_2022}");
    let women_2025 = actual(&action, "women_in_management", 2025);
    assert!((18.0..=22.0).contains(&women_2025), "{women_2025}");

    // The same seed gives the same city.
    let Some(second) = spawn_app(Db::Sqlite).await else {
        return;
    };
    demo::load(&second.ledger)
        .await
        .expect("load the demo city again");
    for code in ["2-1", "2-1-1", "2-1-2", "2-1-3", "2-1-4", "O-1"] {
        assert_eq!(
            normalized(sheet(&app, code)),
            normalized(sheet(&second, code)),
            "sheet {code} differs between two loads"
        );
    }

    // A ledger that already holds events is refused, and nothing is appended.
    let before = app.event_count().await;
    match demo::load(&app.ledger).await {
        Err(DemoError::NotEmpty(n)) => assert_eq!(n, before),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(app.event_count().await, before);
}
