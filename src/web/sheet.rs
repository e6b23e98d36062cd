//! 進行管理シート as a page, laid out like the city's sheet (the one [`View`] every format
//! draws), every number linked to its audit trail, a chart of target and actual per indicator
//! drawn by the server, 「この時点の表示」, downloads and a print stylesheet; and the audit
//! trail of one number.

use super::dashboard::achievement_class;
use super::layout::{page, Page, Section};
use super::{PageError, PageQuery, PageResult, Viewer};
use crate::application::policy::Action;
use crate::http::audit::{csv_response, event_label, event_types, trail, TrailQuery};
use crate::http::reports::parse_as_of;
use crate::http::AppState;
use crate::reports::view::{
    with_unit, Cell, RowKind, View, LEDGER_DIGEST, NONE, TABLE_HEAD, YEAR_SECTION,
};
use crate::reports::{render, Format};
use crate::storage::keys::ERASED;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use kiroku_domain::values::FiscalYear;
use kiroku_projections::sheet::{ActualSource, Sheet, SheetIndicator};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/plan-items/{code}", get(sheet_page))
        .route("/plan-items/{code}/sheet.{ext}", get(download))
        .route("/plan-items/{code}/trail", get(trail_page))
}

#[derive(Deserialize, Default)]
pub struct AsOfQuery {
    #[serde(default)]
    pub as_of: String,
}

/// 「この時点の表示」: the picker sends `2024-05-01T12:00` or `2024-05-01T12:00:05` (JST, the
/// time of the people using it); the API's forms (RFC 3339, a date alone) are taken as they
/// are.
pub fn as_of_ms(text: &str) -> Result<Option<i64>, PageError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let local = text.as_bytes().get(10) == Some(&b'T');
    let full = match text.len() {
        16 if local => format!("{text}:00+09:00"),
        19 if local => format!("{text}+09:00"),
        _ => text.to_string(),
    };
    Ok(parse_as_of(Some(&full))?)
}

/// The picker's value for a moment: `2024-05-30T17:00:00` in JST.
fn picker_value(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms + 9 * 3_600_000)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default()
}

fn as_of_suffix(as_of: Option<i64>) -> String {
    match as_of {
        Some(ms) => format!("&as_of={}", picker_value(ms)),
        None => String::new(),
    }
}

fn load(state: &AppState, code: &str, as_of: Option<i64>) -> PageResult<Sheet> {
    state
        .ledger
        .projector
        .sheet(code, as_of)?
        .ok_or_else(|| PageError::not_found("その時点にこの計画項目はありません。"))
}

async fn sheet_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(code): Path<String>,
    PageQuery(query): PageQuery<AsOfQuery>,
) -> PageResult<Response> {
    viewer.require(&state, Action::ReadSheets)?;
    let as_of = as_of_ms(&query.as_of)?;
    let sheet = load(&state, &code, as_of)?;
    let view = View::of(&sheet);
    let may_audit = viewer.may(&state, Action::ReadAudit);
    let suffix = as_of_suffix(as_of);
    let trail_link = |indicator: &str, year: i32| {
        format!(
            "/plan-items/{}/trail?indicator={}&fiscal_year={year}{suffix}",
            sheet.item.code, indicator
        )
    };
    let download = |ext: &str| {
        let q = as_of
            .map(|ms| format!("?as_of={}", picker_value(ms)))
            .unwrap_or_default();
        format!("/plan-items/{}/sheet.{ext}{q}", sheet.item.code)
    };
    let body = html! {
        h1 { (view.heading()) }
        @if let Some(ms) = as_of {
            p.banner-past role="status" {
                strong { (picker_value(ms).replacen('T', " ", 1)) " JST 時点の表示です。" }
                " その後の記録は含みません。 "
                a href={ "/plan-items/" (sheet.item.code) } { "現在の表示に戻る" }
            }
        }
        div.toolbar {
            form method="get" action={ "/plan-items/" (sheet.item.code) } {
                div.field {
                    label for="as_of" { "この時点の表示" }
                    input #as_of type="datetime-local" step="1" name="as_of" value=(as_of.map(picker_value).unwrap_or_default());
                }
                button type="submit" { "表示" }
            }
            a.button.secondary href=(download("csv")) download { "CSV をダウンロード" }
            a.button.secondary href=(download("xlsx")) download { "Excel をダウンロード" }
            @if viewer.may(&state, Action::Administer) && as_of.is_none() {
                a.button href={ "/plan-items/" (sheet.item.code) "/edit" } { "記録する" }
            }
        }
        table.head {
            @for (label, value) in &view.header {
                tr { th scope="row" { (label) } td.pre { (value) } }
            }
        }
        @if !sheet.indicators.is_empty() {
            div.charts {
                @for indicator in &sheet.indicators {
                    (chart(indicator, &sheet.fiscal_years))
                }
            }
        }
        table.sheet {
            thead {
                tr {
                    @for head in TABLE_HEAD {
                        th rowspan="2" scope="col" { (head) }
                    }
                    @for year in &view.years {
                        th scope="col" { (year.short) }
                    }
                }
                tr {
                    @for year in &view.years {
                        th.fy scope="col" { (year.label) }
                    }
                }
            }
            @for (block, indicator) in view.indicators.iter().zip(&sheet.indicators) {
                tbody {
                    @for (i, row) in block.rows.iter().enumerate() {
                        tr {
                            @if i == 0 {
                                th scope="rowgroup" rowspan=(block.rows.len()) {
                                    (block.name)
                                    @if let Some(note) = &block.note {
                                        div.note { (note) }
                                    }
                                }
                                td.nowrap rowspan=(block.rows.len()) { (block.kind_label) }
                                td.nowrap rowspan=(block.rows.len()) { (block.unit_label) }
                            }
                            th scope="row" { (row.kind.label()) }
                            @for (cell, year) in row.cells.iter().zip(&sheet.fiscal_years) {
                                @let linked = may_audit && cell.text() != NONE && matches!(row.kind, RowKind::Target | RowKind::Actual | RowKind::Published);
                                td class=(cell_class(row.kind, cell)) data-cell={ (indicator.code) "/" (year) "/" (row_key(row.kind)) } {
                                    @if linked {
                                        a href=(trail_link(&indicator.code, *year)) title="この数値の監査証跡" { (cell.text()) }
                                    } @else if row.kind == RowKind::Achieved {
                                        @let achievement = indicator.years.iter().find(|c| c.fiscal_year == *year).map(|c| c.achievement).unwrap_or_default();
                                        span class=(achievement_class(achievement)) { (cell.text()) }
                                    } @else {
                                        (cell.text())
                                    }
                                }
                            }
                        }
                    }
                }
            }
            tbody {
                @for (i, row) in view.year_rows.iter().enumerate() {
                    tr {
                        @if i == 0 {
                            th rowspan=(view.year_rows.len()) colspan="3" scope="rowgroup" { (YEAR_SECTION) }
                        }
                        th scope="row" { (row.label) }
                        @for text in &row.cells {
                            @if text == NONE { td.none { (text) } } @else if row.label == LEDGER_DIGEST { td.digest { (text) } } @else { td { (text) } }
                        }
                    }
                }
            }
        }
        p.small.muted { "基準時点 " (sheet.as_of_jst) "・台帳の位置 " (sheet.position) "。下線の数値を選ぶと、その数値を動かした記録（監査証跡）を表示します。" }
    };
    let title = format!("進行管理シート {} {}", sheet.item.code, sheet.item.title);
    Ok(page(Page::of(title, &viewer, &state, Section::Dashboard), body).into_response())
}

/// The machine name of a row, for `data-cell` (`attendees/2023/actual`).
fn row_key(kind: RowKind) -> &'static str {
    match kind {
        RowKind::Target => "target",
        RowKind::Actual => "actual",
        RowKind::Achieved => "achieved",
        RowKind::Published => "published",
        RowKind::PublishedOn => "published_on",
        RowKind::Drift => "drift",
    }
}

fn cell_class(kind: RowKind, cell: &Cell) -> &'static str {
    match (kind, cell) {
        (RowKind::Drift, Cell::Number { value, .. }) if *value != 0.0 => "num drift",
        (_, Cell::Number { .. }) => "num",
        (_, Cell::Text(text)) if text == NONE => "none",
        (RowKind::Achieved, _) => "nowrap",
        _ => "",
    }
}

/// Target (dashed) and actual (solid; an estimate as a hollow dot) over the years, drawn as
/// SVG by the server.
fn chart(indicator: &SheetIndicator, years: &[i32]) -> Markup {
    const W: f64 = 340.0;
    const H: f64 = 170.0;
    const LEFT: f64 = 56.0;
    const RIGHT: f64 = 12.0;
    const TOP: f64 = 14.0;
    const BOTTOM: f64 = 26.0;
    let cells: Vec<_> = years
        .iter()
        .map(|y| indicator.years.iter().find(|c| c.fiscal_year == *y))
        .collect();
    let targets: Vec<Option<f64>> = cells
        .iter()
        .map(|c| c.and_then(|c| c.target.map(|t| t.value)))
        .collect();
    let actuals: Vec<Option<(f64, bool)>> = cells
        .iter()
        .map(|c| {
            c.and_then(|c| c.actual)
                .and_then(|a| a.value.map(|v| (v, a.source == ActualSource::Estimate)))
        })
        .collect();
    let values: Vec<f64> = targets
        .iter()
        .flatten()
        .copied()
        .chain(actuals.iter().flatten().map(|(v, _)| *v))
        .collect();
    let max = values.iter().copied().fold(f64::MIN, f64::max).max(0.0);
    let lowest = values.iter().copied().fold(f64::MAX, f64::min).min(max);
    // Counts far from zero (2,300人 a year) start the scale near their values, so the change
    // between years shows; anything else starts at zero.
    let min = if lowest > 0.0 && lowest > max * 0.5 && max >= 50.0 {
        top_label(lowest * 0.9)
    } else {
        lowest.min(0.0)
    };
    let top = if max <= min {
        min + 1.0
    } else {
        max + (max - min) * 0.1
    };
    let n = years.len().max(1) as f64;
    let x = |i: usize| LEFT + (W - LEFT - RIGHT) * (i as f64 + 0.5) / n;
    let y = |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - (v - min) / (top - min));
    let points = |series: &[Option<f64>]| -> Vec<String> {
        series
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
            .collect()
    };
    let target_points = points(&targets).join(" ");
    let actual_series: Vec<Option<f64>> = actuals.iter().map(|a| a.map(|(v, _)| v)).collect();
    let actual_points = points(&actual_series).join(" ");
    let unit = indicator.unit;
    html! {
        figure.chart {
            figcaption { (indicator.name) }
            svg.chart width=(W) height=(H) viewBox={ "0 0 " (W) " " (H) } role="img" aria-label={ (indicator.name) "の目標と実績の推移" } {
                line.axis x1=(LEFT) y1=(H - BOTTOM) x2=(W - RIGHT) y2=(H - BOTTOM) {}
                line.axis x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(H - BOTTOM) {}
                text x=(LEFT - 4.0) y=(y(top) + 4.0) text-anchor="end" { (with_unit(top_label(top), unit)) }
                text x=(LEFT - 4.0) y=(y(min) + 4.0) text-anchor="end" { (with_unit(min, unit)) }
                @for (i, year) in years.iter().enumerate() {
                    text x=(x(i)) y=(H - 8.0) text-anchor="middle" {
                        (FiscalYear::new(*year).map(|fy| fy.short_label()).unwrap_or_default())
                    }
                }
                @if !target_points.is_empty() {
                    polyline.target points=(target_points) {}
                }
                @for (i, t) in targets.iter().enumerate() {
                    @if let Some(t) = t {
                        line.target-mark x1=(format!("{:.1}", x(i) - 7.0)) x2=(format!("{:.1}", x(i) + 7.0)) y1=(format!("{:.1}", y(*t))) y2=(format!("{:.1}", y(*t))) {
                            title { "目標 " (with_unit(*t, unit)) }
                        }
                    }
                }
                @if !actual_points.is_empty() {
                    polyline.actual points=(actual_points) {}
                }
                @for (i, a) in actuals.iter().enumerate() {
                    @if let Some((v, estimate)) = a {
                        circle class=(if *estimate { "dot-estimate" } else { "dot" }) cx=(format!("{:.1}", x(i))) cy=(format!("{:.1}", y(*v))) r="3.5" {
                            title { (with_unit(*v, unit)) @if *estimate { "（見込み）" } }
                        }
                    }
                }
            }
            div.small.muted { "実線：実績（白抜きは見込み）　破線：目標" }
        }
    }
}

/// The top of the chart's scale, rounded to two significant figures.
fn top_label(top: f64) -> f64 {
    if top <= 0.0 {
        return top;
    }
    let magnitude = 10f64.powf(top.log10().floor() - 1.0);
    (top / magnitude).round() * magnitude
}

async fn download(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((code, ext)): Path<(String, String)>,
    PageQuery(query): PageQuery<AsOfQuery>,
) -> PageResult<Response> {
    viewer.require(&state, Action::ReadSheets)?;
    let format = match ext.as_str() {
        "csv" => Format::Csv,
        "xlsx" => Format::Xlsx,
        _ => return Err(PageError::not_found("その形式のダウンロードはありません。")),
    };
    let as_of = as_of_ms(&query.as_of)?;
    let sheet = load(&state, &code, as_of)?;
    let bytes = render(&sheet, format).map_err(|error| {
        tracing::error!(%error, "rendering a sheet failed");
        PageError::Internal
    })?;
    let filename = format!(
        "sheet-{}{}.{}",
        sheet.item.code,
        as_of
            .map(|ms| format!("-{}", picker_value(ms).replace([':', '-'], "")))
            .unwrap_or_default(),
        format.extension()
    );
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Deserialize)]
struct TrailPageQuery {
    indicator: String,
    fiscal_year: i32,
    #[serde(default)]
    as_of: String,
    #[serde(default)]
    event_type: String,
    page: Option<usize>,
    #[serde(default)]
    format: String,
}

const PER_PAGE: usize = 50;

async fn trail_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(code): Path<String>,
    PageQuery(query): PageQuery<TrailPageQuery>,
) -> PageResult<Response> {
    viewer.require(&state, Action::ReadAudit)?;
    let as_of = as_of_ms(&query.as_of)?;
    let fiscal_year = FiscalYear::new(query.fiscal_year)
        .map_err(|_| PageError::not_found("その年度はありません。"))?;
    let event_type = event_types()
        .iter()
        .copied()
        .find(|t| *t == query.event_type);
    let page_no = query.page.unwrap_or(1).max(1);
    let csv = query.format == "csv";
    let trail_query = TrailQuery {
        code: &code,
        indicator: &query.indicator,
        fiscal_year,
        as_of,
        event_type,
        page: (!csv).then_some((page_no, PER_PAGE)),
    };
    let trail = trail(&state.ledger, &trail_query).await?;
    if csv {
        return Ok(csv_response(&trail_query, &trail)?);
    }
    let b = &trail.body;
    let total = b["total"].as_u64().unwrap_or(0);
    let pages = b["pages"].as_u64().unwrap_or(1).max(1);
    let base = format!(
        "/plan-items/{code}/trail?indicator={}&fiscal_year={}{}{}",
        query.indicator,
        fiscal_year.year(),
        as_of_suffix(as_of),
        event_type
            .map(|t| format!("&event_type={t}"))
            .unwrap_or_default()
    );
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let published = !b["last_publication_position"].is_null();
    let body = html! {
        h1 { "監査証跡　" (code) " " (trail.indicator_name) "　" (fiscal_year.full_label()) }
        p.lead {
            "この数値を動かしたすべての記録（新しい順）。基準時点 " (text(&b["as_of_jst"])) "。"
            @if published {
                "最終公表後の変更 " (b["after_last_publication"].as_u64().unwrap_or(0)) " 件。"
            } @else {
                "この年度はまだ公表されていません。"
            }
        }
        div.toolbar {
            form method="get" action={ "/plan-items/" (code) "/trail" } {
                input type="hidden" name="indicator" value=(query.indicator);
                input type="hidden" name="fiscal_year" value=(fiscal_year.year());
                @if let Some(ms) = as_of { input type="hidden" name="as_of" value=(picker_value(ms)); }
                div.field {
                    label for="event_type" { "記録の種類" }
                    select #event_type name="event_type" {
                        option value="" { "すべて" }
                        @for t in event_types() {
                            option value=(t) selected[event_type == Some(*t)] { (event_label(t)) }
                        }
                    }
                }
                button type="submit" { "絞り込む" }
            }
            a.button.secondary href={ (base) "&format=csv" } download { "CSV をダウンロード" }
            a.button.secondary href={ "/plan-items/" (code) (as_of.map(|ms| format!("?as_of={}", picker_value(ms))).unwrap_or_default()) } { "シートに戻る" }
        }
        @if trail.rows.is_empty() {
            p { "該当する記録はありません。" }
        } @else {
            table.wide {
                thead {
                    tr {
                        th { "位置" } th { "記録日時（JST）" } th { "記録者" } th { "記録の種類" } th { "項目" }
                        th { "変更前" } th { "変更後" } th { "職員" } th { "研修・修了日" } th { "理由" }
                    }
                }
                tbody {
                    @for r in &trail.rows {
                        tr {
                            td.num { (r["position"]) }
                            td.nowrap { (text(&r["recorded_at_jst"])) }
                            td { (text(&r["actor"])) }
                            td { (text(&r["event_label"])) @if published && r["after_publication"] == Value::Bool(true) { br; span.badge.waitlist { "最終公表後" } } }
                            td.nowrap { (text(&r["field_label"])) }
                            td.num { (text(&r["before_text"])) }
                            td.num { (text(&r["after_text"])) }
                            td {
                                @if let Some(no) = r["staff"]["employee_no"].as_str() {
                                    (no) " " (r["staff"]["name"].as_str().unwrap_or(if r["staff"]["personal_data_erased"] == true { ERASED } else { "" }))
                                }
                            }
                            td {
                                @if let Some(code) = r["course"]["course_code"].as_str() {
                                    (code) " " (r["course"]["title"].as_str().unwrap_or(""))
                                }
                                @if let Some(on) = r["completed_on"].as_str() { br; span.small { "修了日 " (on) } }
                            }
                            td.pre { (text(&r["reason"])) }
                        }
                    }
                }
            }
            div.pager {
                span { (total) " 件中 " (page_no) " / " (pages) " ページ" }
                @if page_no > 1 { a href={ (base) "&page=" (page_no - 1) } { "← 前へ" } }
                @if (page_no as u64) < pages { a href={ (base) "&page=" (page_no + 1) } { "次へ →" } }
            }
        }
    };
    let title = format!("監査証跡 {code} {}", trail.indicator_name);
    Ok(page(Page::of(title, &viewer, &state, Section::Dashboard), body).into_response())
}
