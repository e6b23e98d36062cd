//! Forms for the plan: a new plan item, an indicator, targets, manual actuals (見込み/確定) and
//! their corrections, activities, self-evaluations, external evaluations and publication (a
//! reason from the second version on). Each form becomes one command of the application
//! layer; a refusal shows the form again with the reason and nothing recorded.

use super::layout::{page, Page, Section};
use super::{PageError, PageForm, PageResult, Viewer};
use crate::application::policy::Action;
use crate::application::{Actor, Command, Service};
use crate::http::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use kiroku_domain::plan::*;
use kiroku_domain::values::*;
use kiroku_projections::sheet::Sheet;
use maud::{html, Markup};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/plan-items/new", get(new_form).post(define))
        .route("/plan-items/{code}/edit", get(edit).post(record))
}

type Fields = HashMap<String, String>;

fn field<'a>(fields: &'a Fields, name: &str) -> &'a str {
    fields.get(name).map(|v| v.trim()).unwrap_or("")
}

/// A vocabulary value from its machine name (`estimate`, `A`, `>=`).
fn choice<T: DeserializeOwned>(fields: &Fields, name: &str, label: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(field(fields, name).to_string()))
        .map_err(|_| format!("{label}を選んでください。"))
}

fn text(fields: &Fields, name: &str, label: &str) -> Result<Text, String> {
    Text::parse(field(fields, name))
        .map_err(|_| format!("{label}を入力してください（4000 文字以内）。"))
}

fn optional_text(fields: &Fields, name: &str, label: &str) -> Result<Option<Text>, String> {
    match field(fields, name) {
        "" => Ok(None),
        _ => text(fields, name, label).map(Some),
    }
}

fn code(fields: &Fields, name: &str, label: &str) -> Result<Code, String> {
    Code::parse(field(fields, name)).map_err(|e| format!("{label}：{e}"))
}

fn year(fields: &Fields, name: &str) -> Result<FiscalYear, String> {
    field(fields, name)
        .parse::<i32>()
        .ok()
        .and_then(|y| FiscalYear::new(y).ok())
        .ok_or_else(|| "年度を選んでください。".to_string())
}

fn number(fields: &Fields, name: &str, label: &str) -> Result<f64, String> {
    field(fields, name)
        .replace(',', "")
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{label}は数値で入力してください。"))
}

fn options<T: Copy>(
    all: &[T],
    name: impl Fn(T) -> &'static str,
    label: impl Fn(T) -> &'static str,
) -> Markup {
    html! { @for v in all { option value=(name(*v)) { (label(*v)) } } }
}

fn year_options(sheet: &Sheet) -> Markup {
    html! {
        @for y in &sheet.fiscal_years {
            option value=(y) { (FiscalYear::new(*y).map(|f| f.full_label()).unwrap_or_default()) }
        }
    }
}

/// What an edit page says above its forms.
enum Notice {
    Done(String),
    Refused(String),
}

async fn edit(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(code): Path<String>,
) -> PageResult<Response> {
    render(&state, &viewer, &code, None, StatusCode::OK)
}

fn render(
    state: &AppState,
    viewer: &Viewer,
    code: &str,
    notice: Option<Notice>,
    status: StatusCode,
) -> PageResult<Response> {
    viewer.require(state, Action::Administer)?;
    let sheet = state
        .ledger
        .projector
        .sheet(code, None)?
        .ok_or_else(|| PageError::not_found("その計画項目はありません。"))?;
    let csrf = &viewer.csrf;
    let action = format!("/plan-items/{code}/edit");
    let form = |kind: &'static str, title: &'static str, inner: Markup| {
        html! {
            form.panel method="post" action=(action) {
                h2 { (title) }
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="form" value=(kind);
                (inner)
            }
        }
    };
    let indicators = html! {
        @for i in &sheet.indicators { option value=(i.code) { (i.name) } }
    };
    let manual = html! {
        @for i in sheet.indicators.iter().filter(|i| i.source.is_manual()) { option value=(i.code) { (i.name) } }
    };
    let body = html! {
        h1 { "記録する　" (sheet.item.code) " " (sheet.item.title) }
        p.lead { "ここで記録した内容は、記録者・日時・理由とともに台帳に残り、監査証跡から確認できます。" a href={ "/plan-items/" (code) } { "シートに戻る" } }
        @match &notice {
            Some(Notice::Done(text)) => p.flash role="status" { (text) },
            Some(Notice::Refused(text)) => p.error role="alert" { "記録できませんでした：" (text) " 何も記録していません。" },
            None => {},
        }
        (form("target", "目標の設定", html! {
            div.row {
                div.field { label { "指標" } select name="indicator_code" { (indicators) } }
                div.field { label { "年度" } select name="fiscal_year" { (year_options(&sheet)) } }
                div.field { label { "条件" } select name="op" { (options(TargetOp::ALL, TargetOp::as_str, |op| match op { TargetOp::AtLeast => "以上", TargetOp::AtMost => "以下", TargetOp::Exactly => "ちょうど" })) } }
                div.field { label { "目標値" } input type="text" name="value" inputmode="decimal" required size="8"; }
                div.field { label { "変更の理由（変更時）" } input type="text" name="reason" size="30"; }
                button type="submit" { "目標を記録" }
            }
        }))
        (form("actual", "実績の報告（手入力の指標）", html! {
            div.row {
                div.field { label { "指標" } select name="indicator_code" { (manual) } }
                div.field { label { "年度" } select name="fiscal_year" { (year_options(&sheet)) } }
                div.field { label { "実績値" } input type="text" name="value" inputmode="decimal" required size="8"; }
                div.field { label { "区分" } select name="status" { (options(ActualStatus::ALL, ActualStatus::as_str, ActualStatus::label_ja)) } }
                div.field { label { "備考" } input type="text" name="note" size="30"; }
                button type="submit" { "実績を記録" }
            }
        }))
        (form("correction", "実績の訂正（手入力の指標）", html! {
            div.row {
                div.field { label { "指標" } select name="indicator_code" { (manual) } }
                div.field { label { "年度" } select name="fiscal_year" { (year_options(&sheet)) } }
                div.field { label { "正しい値" } input type="text" name="value" inputmode="decimal" required size="8"; }
                div.field { label { "訂正の理由" } input type="text" name="reason" required size="30"; }
                button type="submit" { "訂正を記録" }
            }
        }))
        (form("activity", "取組内容・活動実績", html! {
            div.field { label { "年度" } select name="fiscal_year" { (year_options(&sheet)) } }
            div.field { label { "取組内容・取組目標" } textarea name="planned" {} }
            div.field { label { "活動実績" } textarea name="result" {} }
            button type="submit" { "取組を記録" }
        }))
        (form("self_evaluation", "自己評価", html! {
            div.row {
                div.field { label { "年度" } select name="fiscal_year" { (year_options(&sheet)) } }
                div.field { label { "評価" } select name="grade" { (options(SelfGrade::ALL, SelfGrade::as_str, SelfGrade::label_ja)) } }
                div.field { label { "次年度以降の方向性" } select name="next_step" { (options(NextStep::ALL, NextStep::as_str, NextStep::label_ja)) } }
            }
            div.field { label { "評価理由" } textarea name="reason" required {} }
            div.field { label { "内部評価（結果要因、次年度課題等）" } textarea name="direction" {} }
            button type="submit" { "自己評価を記録" }
        }))
        (form("external", "外部評価", html! {
            div.field { label { "年度" } select name="fiscal_year" { (year_options(&sheet)) } }
            div.field { label { "外部評価" } textarea name="text" required {} }
            button type="submit" { "外部評価を記録" }
        }))
        (form("publish", "公表", html! {
            p.small.muted { "公表すると、その時点の実績が公表値として固定されます。同じ年度を再び公表するときは理由が必要です（第2版以降）。自己評価のない年度は公表できません。" }
            div.row {
                div.field { label { "年度" } select name="fiscal_year" { (year_options(&sheet)) } }
                div.field { label { "再公表の理由" } input type="text" name="reason" size="40"; }
                button type="submit" { "公表する" }
            }
        }))
        (form("indicator", "指標の追加（手入力）", html! {
            div.row {
                div.field { label { "指標コード" } input type="text" name="indicator_code" required size="12"; }
                div.field { label { "指標名" } input type="text" name="name" required size="30"; }
                div.field { label { "区分" } select name="kind" { (options(IndicatorKind::ALL, IndicatorKind::as_str, IndicatorKind::label_ja)) } }
                div.field { label { "単位" } select name="unit" { (options(Unit::ALL, Unit::as_str, Unit::label_ja)) } }
            }
            div.field { label { "概要" } input type="text" name="description" size="60"; }
            button type="submit" { "指標を追加" }
        }))
    };
    let title = format!("記録する {code}");
    let mut response =
        page(Page::of(title, viewer, state, Section::Dashboard), body).into_response();
    *response.status_mut() = status;
    Ok(response)
}

/// The command a form of the edit page stands for, and what to say when it is recorded.
fn command(fields: &Fields) -> Result<(PlanCommand, Option<Text>, &'static str), String> {
    let form = field(fields, "form");
    Ok(match form {
        "target" => (
            PlanCommand::SetTarget {
                indicator_code: code(fields, "indicator_code", "指標")?,
                fiscal_year: year(fields, "fiscal_year")?,
                target: Target {
                    op: choice(fields, "op", "条件")?,
                    value: number(fields, "value", "目標値")?,
                },
            },
            optional_text(fields, "reason", "理由")?,
            "目標を記録しました。",
        ),
        "actual" => (
            PlanCommand::ReportActual {
                indicator_code: code(fields, "indicator_code", "指標")?,
                fiscal_year: year(fields, "fiscal_year")?,
                value: number(fields, "value", "実績値")?,
                status: choice(fields, "status", "区分")?,
                note: optional_text(fields, "note", "備考")?,
            },
            None,
            "実績を記録しました。",
        ),
        "correction" => (
            PlanCommand::CorrectActual {
                indicator_code: code(fields, "indicator_code", "指標")?,
                fiscal_year: year(fields, "fiscal_year")?,
                value: number(fields, "value", "正しい値")?,
                reason: text(fields, "reason", "訂正の理由")?,
            },
            None,
            "実績の訂正を記録しました。",
        ),
        "activity" => (
            PlanCommand::RecordActivity {
                fiscal_year: year(fields, "fiscal_year")?,
                planned: optional_text(fields, "planned", "取組内容")?,
                result: optional_text(fields, "result", "活動実績")?,
            },
            None,
            "取組を記録しました。",
        ),
        "self_evaluation" => (
            PlanCommand::SelfEvaluate {
                fiscal_year: year(fields, "fiscal_year")?,
                grade: choice(fields, "grade", "評価")?,
                reason: text(fields, "reason", "評価理由")?,
                next_step: choice(fields, "next_step", "次年度以降の方向性")?,
                direction: optional_text(fields, "direction", "内部評価")?,
            },
            None,
            "自己評価を記録しました。",
        ),
        "external" => (
            PlanCommand::EvaluateExternally {
                fiscal_year: year(fields, "fiscal_year")?,
                text: text(fields, "text", "外部評価")?,
            },
            None,
            "外部評価を記録しました。",
        ),
        "publish" => (
            PlanCommand::Publish {
                fiscal_year: year(fields, "fiscal_year")?,
                values: BTreeMap::new(),
                published_by: String::new(),
                reason: optional_text(fields, "reason", "再公表の理由")?,
                ledger_head: None,
            },
            None,
            "公表しました。",
        ),
        "indicator" => (
            PlanCommand::DefineIndicator(IndicatorPlan {
                definition: IndicatorDefinition {
                    indicator_code: code(fields, "indicator_code", "指標コード")?,
                    name: text(fields, "name", "指標名")?,
                    description: optional_text(fields, "description", "概要")?,
                    kind: choice(fields, "kind", "区分")?,
                    unit: choice(fields, "unit", "単位")?,
                    source: IndicatorSource::Manual(Manual::Manual),
                    baseline: None,
                },
                targets: BTreeMap::new(),
            }),
            None,
            "指標を追加しました。",
        ),
        _ => return Err("フォームの種類を読めません。".into()),
    })
}

async fn run(
    state: &AppState,
    viewer: &Viewer,
    code: Code,
    command: PlanCommand,
    reason: Option<Text>,
) -> Result<(), PageError> {
    let request_id = Uuid::new_v4().to_string();
    let actor = Actor {
        principal: &viewer.principal,
        request_id: &request_id,
        as_of: Some(viewer.head),
        unconfirmed: None,
    };
    let command = Command::Plan {
        code,
        command,
        reason,
    };
    Service::new(&state.ledger).execute(&actor, command).await?;
    Ok(())
}

async fn record(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(path_code): Path<String>,
    PageForm(fields): PageForm<Fields>,
) -> PageResult<Response> {
    viewer.check_csrf(field(&fields, "csrf"))?;
    viewer.require(&state, Action::Administer)?;
    let code =
        Code::parse(&path_code).map_err(|_| PageError::not_found("その計画項目はありません。"))?;
    let (command, reason, done) = match command(&fields) {
        Ok(parts) => parts,
        Err(problem) => {
            return render(
                &state,
                &viewer,
                &path_code,
                Some(Notice::Refused(problem)),
                StatusCode::BAD_REQUEST,
            )
        }
    };
    match run(&state, &viewer, code, command, reason).await {
        Ok(()) => render(
            &state,
            &viewer,
            &path_code,
            Some(Notice::Done(done.into())),
            StatusCode::OK,
        ),
        Err(PageError::Refused(status, detail)) => render(
            &state,
            &viewer,
            &path_code,
            Some(Notice::Refused(detail)),
            status,
        ),
        Err(other) => Err(other),
    }
}

fn define_form(viewer: &Viewer, notice: Option<&str>) -> Markup {
    let year_choices = html! {
        @for y in 2015..=2040 { option value=(y) { (FiscalYear::new(y).map(|f| f.full_label()).unwrap_or_default()) } }
    };
    html! {
        h1 { "計画項目の登録" }
        @if let Some(problem) = notice {
            p.error role="alert" { "登録できませんでした：" (problem) " 何も記録していません。" }
        }
        form.panel method="post" action="/plan-items/new" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            div.row {
                div.field { label { "項目コード" } input type="text" name="code" required size="10" placeholder="2-1-5"; }
                div.field { label { "項目" } input type="text" name="title" required size="40"; }
                div.field { label { "上位の項目コード" } input type="text" name="parent_code" size="10"; }
            }
            div.row {
                div.field { label { "改革の柱" } input type="text" name="pillar" required size="40"; }
                div.field { label { "取組主管課" } input type="text" name="lead_department" required size="16"; }
                div.field { label { "区分" } select name="status" { (options(ItemStatus::ALL, ItemStatus::as_str, ItemStatus::label_ja)) } }
            }
            div.row {
                div.field { label { "計画期間（から）" } select name="from_fiscal_year" { (year_choices) } }
                div.field { label { "計画期間（まで）" } select name="to_fiscal_year" { (year_choices) } }
                div.field { label { "計画" } input type="text" name="plan" size="40"; }
            }
            div.field { label { "概要（目指す姿）" } textarea name="aim" {} }
            div.field { label { "関係計画" } input type="text" name="related_plans" size="60"; }
            button type="submit" { "登録する" }
        }
    }
}

async fn new_form(State(state): State<AppState>, viewer: Viewer) -> PageResult<Response> {
    viewer.require(&state, Action::Administer)?;
    Ok(page(
        Page::of("計画項目の登録", &viewer, &state, Section::Dashboard),
        define_form(&viewer, None),
    )
    .into_response())
}

async fn define(
    State(state): State<AppState>,
    viewer: Viewer,
    PageForm(fields): PageForm<Fields>,
) -> PageResult<Response> {
    viewer.check_csrf(field(&fields, "csrf"))?;
    viewer.require(&state, Action::Administer)?;
    let parsed = (|| -> Result<(Code, PlanCommand), String> {
        let item_code = code(&fields, "code", "項目コード")?;
        let parent_code = match field(&fields, "parent_code") {
            "" => None,
            _ => Some(code(&fields, "parent_code", "上位の項目コード")?),
        };
        Ok((
            item_code.clone(),
            PlanCommand::Define {
                item: PlanItemDefinition {
                    code: item_code,
                    title: text(&fields, "title", "項目")?,
                    pillar: text(&fields, "pillar", "改革の柱")?,
                    parent_code,
                    lead_department: text(&fields, "lead_department", "取組主管課")?,
                    status: choice(&fields, "status", "区分")?,
                    aim: optional_text(&fields, "aim", "概要")?,
                    related_plans: optional_text(&fields, "related_plans", "関係計画")?,
                    from_fiscal_year: year(&fields, "from_fiscal_year")?,
                    to_fiscal_year: year(&fields, "to_fiscal_year")?,
                    plan: optional_text(&fields, "plan", "計画")?,
                },
                indicators: Vec::new(),
            },
        ))
    })();
    let refused = |problem: String, status: StatusCode| {
        let mut response = page(
            Page::of("計画項目の登録", &viewer, &state, Section::Dashboard),
            define_form(&viewer, Some(&problem)),
        )
        .into_response();
        *response.status_mut() = status;
        response
    };
    let (code, command) = match parsed {
        Ok(parts) => parts,
        Err(problem) => return Ok(refused(problem, StatusCode::BAD_REQUEST)),
    };
    match run(&state, &viewer, code.clone(), command, None).await {
        Ok(()) => Ok(Redirect::to(&format!("/plan-items/{}/edit", code.as_str())).into_response()),
        Err(PageError::Refused(status, detail)) => Ok(refused(detail, status)),
        Err(other) => Err(other),
    }
}
