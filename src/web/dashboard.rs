//! ダッシュボード: every plan item's indicators × fiscal years, each cell the year's actual
//! and its achievement (達成 / 未達成 / 集計中 / －), opening on the latest year with data.

use super::layout::{page, Page, Section};
use super::{PageQuery, PageResult, Viewer};
use crate::application::policy::Action;
use crate::http::reports::focus_year;
use crate::http::AppState;
use crate::reports::view::with_unit;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use kiroku_domain::values::FiscalYear;
use kiroku_projections::sheet::{Achievement, ActualSource, IndicatorCell, SheetIndicator};
use maud::{html, Markup};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new().route("/dashboard", get(dashboard))
}

#[derive(Deserialize)]
struct DashboardQuery {
    fiscal_year: Option<i32>,
}

pub fn achievement_class(achievement: Achievement) -> &'static str {
    match achievement {
        Achievement::Achieved => "ach ach-achieved",
        Achievement::NotAchieved => "ach ach-not_achieved",
        Achievement::InProgress => "ach ach-in_progress",
        Achievement::None => "ach ach-none",
    }
}

/// The actual of a cell as a person reads it: `2,341人`, `46.8%（見込み）`, `－`.
pub fn actual_text(indicator: &SheetIndicator, cell: &IndicatorCell) -> String {
    match cell.actual {
        Some(actual) => match actual.value {
            Some(value) => {
                let text = with_unit(value, indicator.unit);
                if actual.source == ActualSource::Estimate {
                    format!("{text}（見込み）")
                } else {
                    text
                }
            }
            None => "－".to_string(),
        },
        None => "－".to_string(),
    }
}

fn cell(indicator: &SheetIndicator, cell: Option<&IndicatorCell>) -> Markup {
    match cell {
        Some(c) => html! {
            span.value { (actual_text(indicator, c)) }
            span class=(achievement_class(c.achievement)) { (c.achievement.label_ja()) }
        },
        None => html! { span class="ach ach-none" { "－" } },
    }
}

async fn dashboard(
    State(state): State<AppState>,
    viewer: Viewer,
    PageQuery(query): PageQuery<DashboardQuery>,
) -> PageResult<Response> {
    viewer.require(&state, Action::ReadSheets)?;
    let projector = &state.ledger.projector;
    let mut sheets = Vec::new();
    for (code, _) in projector.plan_items()? {
        if let Some(sheet) = projector.sheet(&code, None)? {
            sheets.push(sheet);
        }
    }
    let asked = query.fiscal_year.and_then(|y| FiscalYear::new(y).ok());
    let focus = focus_year(sheets.iter(), asked);
    let years: Vec<i32> = {
        let mut years: Vec<i32> = sheets
            .iter()
            .flat_map(|s| s.fiscal_years.iter().copied())
            .collect();
        years.sort_unstable();
        years.dedup();
        years
    };
    let label = |y: i32| {
        FiscalYear::new(y)
            .map(|fy| fy.full_label())
            .unwrap_or_else(|_| format!("{y}年度"))
    };
    let short = |y: i32| {
        FiscalYear::new(y)
            .map(|fy| fy.short_label())
            .unwrap_or_else(|_| y.to_string())
    };
    let mut counts = [0usize; 4];
    for indicator in sheets.iter().flat_map(|s| s.indicators.iter()) {
        if let Some(c) = indicator.years.iter().find(|c| c.fiscal_year == focus) {
            let i = match c.achievement {
                Achievement::Achieved => 0,
                Achievement::NotAchieved => 1,
                Achievement::InProgress => 2,
                Achievement::None => 3,
            };
            counts[i] += 1;
        }
    }
    let body = html! {
        h1 { "ダッシュボード" }
        p.lead {
            "計画項目の指標ごとに、各年度の実績と達成状況を示します。項目名を選ぶと進行管理シートを開きます。"
            @if viewer.may(&state, Action::Administer) {
                " " a href="/plan-items/new" { "計画項目を登録する" }
            }
        }
        nav.toolbar aria-label="年度" {
            @for y in &years {
                @if *y == focus {
                    span.button { (label(*y)) }
                } @else {
                    a.button.secondary href={ "/dashboard?fiscal_year=" (y) } { (short(*y)) }
                }
            }
        }
        section.panel {
            strong { (label(focus)) "の達成状況：" }
            span class="ach ach-achieved" { "達成 " (counts[0]) }
            " "
            span class="ach ach-not_achieved" { "未達成 " (counts[1]) }
            " "
            span class="ach ach-in_progress" { "集計中 " (counts[2]) }
            " "
            span class="ach ach-none" { "－ " (counts[3]) }
        }
        @if sheets.is_empty() {
            p { "計画項目はまだ登録されていません。" }
        } @else {
            table.wide.grid {
                thead {
                    tr {
                        th scope="col" { "計画項目" }
                        th scope="col" { "指標" }
                        @for y in &years {
                            @if *y == focus {
                                th.num scope="col" aria-current="true" { strong { (short(*y)) } }
                            } @else {
                                th.num scope="col" { (short(*y)) }
                            }
                        }
                    }
                }
                tbody {
                    @for sheet in &sheets {
                        @let rows = sheet.indicators.len().max(1);
                        @let link = format!("/plan-items/{}", sheet.item.code);
                        @if sheet.indicators.is_empty() {
                            tr {
                                th scope="row" { a href=(link) { (sheet.item.code) " " (sheet.item.title) } }
                                td.muted colspan=(years.len() + 1) { "指標は未設定です" }
                            }
                        }
                        @for (i, indicator) in sheet.indicators.iter().enumerate() {
                            tr {
                                @if i == 0 {
                                    th scope="rowgroup" rowspan=(rows) {
                                        a href=(link) { (sheet.item.code) " " (sheet.item.title) }
                                    }
                                }
                                td { (indicator.name) }
                                @for y in &years {
                                    td.num {
                                        (cell(indicator, indicator.years.iter().find(|c| c.fiscal_year == *y)))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        Page::of("ダッシュボード", &viewer, &state, Section::Dashboard),
        body,
    )
    .into_response())
}
