//! The frame of every page (header, navigation, sign-out) and the one stylesheet.

use super::Viewer;
use crate::application::policy::Action;
use crate::http::AppState;
use axum::response::Html;
use maud::{html, Markup, DOCTYPE};

/// Where the navigation points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Dashboard,
    Staff,
    Sessions,
    Imports,
    None,
}

struct Nav {
    name: String,
    role: &'static str,
    csrf: String,
    items: Vec<(&'static str, &'static str, bool)>,
}

/// What the frame needs to know about a page.
pub struct Page {
    title: String,
    nav: Option<Nav>,
}

impl Page {
    /// A page without navigation (sign-in, errors).
    pub fn bare(title: &str) -> Page {
        Page {
            title: title.to_string(),
            nav: None,
        }
    }

    /// A page for a signed-in viewer: the navigation shows only what the policy allows.
    pub fn of(title: impl Into<String>, viewer: &Viewer, state: &AppState, at: Section) -> Page {
        let mut items = Vec::new();
        if viewer.may(state, Action::ReadSheets) {
            items.push(("/dashboard", "ダッシュボード", at == Section::Dashboard));
        }
        if viewer.may(state, Action::ListStaff) {
            items.push(("/staff", "職員", at == Section::Staff));
        } else if let Some(me) = viewer.principal.staff_id {
            let _ = me;
            items.push(("/", "自分の記録", at == Section::Staff));
        }
        if viewer.may(state, Action::ReadSessions) {
            items.push(("/sessions", "研修", at == Section::Sessions));
        }
        if viewer.may(state, Action::Administer) {
            items.push(("/imports", "受講実績の取込", at == Section::Imports));
        }
        Page {
            title: title.into(),
            nav: Some(Nav {
                name: viewer.principal.name.clone(),
                role: viewer.role_label(),
                csrf: viewer.csrf.clone(),
                items,
            }),
        }
    }
}

/// A whole page.
pub fn page(frame: Page, body: Markup) -> Html<String> {
    Html(frame_of(frame, body).into_string())
}

fn frame_of(frame: Page, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="ja" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (frame.title) " — Kiroku 記録" }
                link rel="stylesheet" href="/static/kiroku.css";
            }
            body {
                header.top {
                    a.brand href="/" { "Kiroku " span.kanji { "記録" } }
                    @if let Some(nav) = &frame.nav {
                        nav {
                            @for (href, label, active) in &nav.items {
                                @if *active {
                                    a.active href=(href) aria-current="page" { (label) }
                                } @else {
                                    a href=(href) { (label) }
                                }
                            }
                        }
                        div.who {
                            span { (nav.name) "（" (nav.role) "）" }
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(nav.csrf);
                                button.link type="submit" { "サインアウト" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The stylesheet: system fonts of Windows and macOS for Japanese, print on A4 landscape.
pub const STYLE: &str = r#"
:root { --ink: #1b1f24; --muted: #5b6570; --line: #c9d1da; --head: #eef2f7; --brand: #1d4f91;
        --ok: #1e7b34; --ok-bg: #e3f4e6; --ng: #a3261b; --ng-bg: #fbe6e3; --wip: #7a5a00; --wip-bg: #fff4cf;
        --none-bg: #f3f4f6; --warn-bg: #fff1d6; }
* { box-sizing: border-box; }
html { font-size: 15px; }
body { margin: 0; color: var(--ink); background: #f7f8fa;
       font-family: "游ゴシック体", "Yu Gothic", YuGothic, "游ゴシック Medium", "Hiragino Kaku Gothic ProN", "Hiragino Sans", "Meiryo", "メイリオ", "IPAexGothic", "IPAPGothic", "Noto Sans CJK JP", "IPAGothic", sans-serif;
       line-height: 1.6; }
a { color: var(--brand); }
header.top { display: flex; align-items: center; gap: 1.5rem; padding: .5rem 1.25rem; background: var(--brand); color: #fff; flex-wrap: wrap; }
header.top a { color: #fff; text-decoration: none; }
header.top .brand { font-weight: bold; font-size: 1.15rem; letter-spacing: .05em; }
header.top .kanji { font-weight: normal; }
header.top nav { display: flex; gap: .25rem; flex: 1; flex-wrap: wrap; }
header.top nav a { padding: .3rem .75rem; border-radius: 4px; }
header.top nav a:hover, header.top nav a.active { background: rgba(255,255,255,.18); }
header.top .who { display: flex; gap: .75rem; align-items: center; font-size: .9rem; }
button.link { background: none; border: 1px solid rgba(255,255,255,.6); color: #fff; padding: .15rem .6rem; border-radius: 4px; cursor: pointer; font: inherit; }
main { padding: 1rem 1.25rem 3rem; max-width: 1500px; margin: 0 auto; }
h1 { font-size: 1.35rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; border-left: 4px solid var(--brand); padding-left: .5rem; }
p.lead { color: var(--muted); margin-top: -.5rem; }
table { border-collapse: collapse; background: #fff; }
th, td { border: 1px solid var(--line); padding: .3rem .5rem; vertical-align: top; text-align: left; }
th { background: var(--head); font-weight: 600; }
table.wide { width: 100%; }
td.num, th.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.nowrap { white-space: nowrap; }
.pre { white-space: pre-wrap; }
.muted { color: var(--muted); }
.small { font-size: .85rem; }
form.inline { display: inline; margin: 0; }
form.panel, section.panel { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .75rem 1rem; margin: .75rem 0; }
form.panel label, .field label { display: block; font-weight: 600; margin-top: .5rem; font-size: .9rem; }
input[type=text], input[type=password], input[type=number], input[type=date], input[type=datetime-local], input[type=search], select, textarea {
    font: inherit; padding: .35rem .5rem; border: 1px solid #9aa5b1; border-radius: 4px; background: #fff; max-width: 100%; }
textarea { width: 100%; min-height: 4em; }
button, .button { font: inherit; background: var(--brand); color: #fff; border: none; border-radius: 4px; padding: .4rem 1rem; cursor: pointer; text-decoration: none; display: inline-block; }
button.secondary, .button.secondary { background: #fff; color: var(--brand); border: 1px solid var(--brand); }
button.danger { background: var(--ng); }
.row { display: flex; gap: .75rem; align-items: flex-end; flex-wrap: wrap; }
.row > * { margin: 0; }
.error, .flash.error { background: var(--ng-bg); border: 1px solid #e2a39b; color: var(--ng); padding: .5rem .75rem; border-radius: 4px; }
.flash { background: var(--ok-bg); border: 1px solid #9dcfa8; color: var(--ok); padding: .5rem .75rem; border-radius: 4px; margin: .5rem 0 1rem; }
section.problem, section.signin { max-width: 36rem; margin: 3rem auto; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 1.5rem 2rem; }
section.signin input[type=password] { width: 100%; margin: .25rem 0 1rem; }
/* achievement */
.ach { display: inline-block; padding: 0 .45rem; border-radius: 3px; font-size: .85rem; white-space: nowrap; }
.ach-achieved { background: var(--ok-bg); color: var(--ok); }
.ach-not_achieved { background: var(--ng-bg); color: var(--ng); font-weight: bold; }
.ach-in_progress { background: var(--wip-bg); color: var(--wip); }
.ach-none { background: var(--none-bg); color: var(--muted); }
table.grid td { min-width: 7.5rem; }
table.grid td .value { display: block; font-variant-numeric: tabular-nums; }
/* the sheet */
table.head th { width: 9rem; white-space: nowrap; }
table.head { width: 100%; margin-bottom: 1rem; }
table.sheet { width: 100%; font-size: .9rem; }
table.sheet thead th { text-align: center; }
table.sheet th.fy { font-weight: normal; font-size: .8rem; }
table.sheet td { white-space: pre-wrap; }
table.sheet td.nowrap { white-space: nowrap; }
table.sheet td.num a { text-decoration: none; border-bottom: 1px dotted var(--brand); }
table.sheet td.drift { background: var(--warn-bg); font-weight: bold; }
table.sheet td.pending { color: var(--wip); text-align: center; }
table.sheet td.none { color: var(--muted); text-align: center; }
table.sheet td.digest { font-family: monospace; font-size: 0.75em; word-break: break-all; white-space: pre-line; }
table.sheet .note { font-weight: normal; font-size: .78rem; color: var(--muted); white-space: pre-wrap; }
.toolbar { display: flex; gap: 1rem; align-items: flex-end; flex-wrap: wrap; margin: .5rem 0 1rem; }
.toolbar form { display: flex; gap: .5rem; align-items: flex-end; }
.banner-past { background: var(--warn-bg); border: 1px solid #e8c46a; padding: .5rem .75rem; border-radius: 4px; margin-bottom: .75rem; }
figure.chart { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .5rem; margin: .5rem 0 1rem; display: inline-block; }
figure.chart figcaption { font-size: .9rem; font-weight: 600; }
svg.chart text { font-size: 11px; fill: #333; }
svg.chart .target { stroke: #8a94a0; stroke-dasharray: 5 4; fill: none; stroke-width: 2; }
svg.chart .target-mark { stroke: #6b7580; stroke-width: 3; }
svg.chart .actual { stroke: var(--brand); fill: none; stroke-width: 2.5; }
svg.chart .dot { fill: var(--brand); }
svg.chart .dot-estimate { fill: #fff; stroke: var(--brand); stroke-width: 2; }
svg.chart .axis { stroke: #9aa5b1; stroke-width: 1; }
.charts { display: flex; gap: 1rem; flex-wrap: wrap; }
.pager { margin: .75rem 0; display: flex; gap: .75rem; align-items: center; }
.badge { display: inline-block; padding: 0 .4rem; border-radius: 3px; background: var(--none-bg); font-size: .8rem; }
.badge.waitlist { background: var(--wip-bg); color: var(--wip); }
.badge.done { background: var(--ok-bg); color: var(--ok); }
.badge.revoked { background: var(--ng-bg); color: var(--ng); }
.redacted { color: var(--muted); font-style: italic; }
details > summary { cursor: pointer; color: var(--brand); }
@media print {
  @page { size: A4 landscape; margin: 8mm; }
  html { font-size: 9pt; }
  body { background: #fff; }
  header.top, .toolbar, .noprint, form, .pager { display: none !important; }
  main { padding: 0; max-width: none; }
  table.sheet { font-size: 8pt; }
  table.sheet td.num a { border: none; color: inherit; }
  tr { break-inside: avoid; }
  thead { display: table-header-group; }
  figure.chart { border: none; }
}
"#;
