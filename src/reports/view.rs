//! The sheet JSON read back into types, and the one table every format draws: item header,
//! one column per fiscal year, per indicator the rows 目標・実績・達成・公表値・乖離, then per
//! year the activities and evaluations. CSV, HTML and XLSX only differ in how they draw it.

use super::ReportError;
use kiroku_domain::values::{FiscalYear, TargetOp};
use serde::Deserialize;
use serde_json::Value;

/// What an empty value (no target, no actual, a rate with an empty denominator) shows as.
pub(crate) const NONE: &str = "－";

#[derive(Debug, Deserialize)]
struct Sheet {
    item: Item,
    as_of: String,
    position: Option<i64>,
    fiscal_years: Vec<i32>,
    #[serde(default)]
    indicators: Vec<Indicator>,
    #[serde(default)]
    years: Vec<YearBlock>,
}

#[derive(Debug, Deserialize)]
struct Item {
    code: String,
    title: String,
    pillar: Option<String>,
    lead_department: Option<String>,
    status_label: Option<String>,
    aim: Option<String>,
    related_plans: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Indicator {
    name: String,
    description: Option<String>,
    unit_label: String,
    kind_label: String,
    baseline: Option<Baseline>,
    #[serde(default)]
    years: Vec<IndicatorYear>,
}

#[derive(Debug, Deserialize)]
struct Baseline {
    fiscal_year: i32,
    value: f64,
}

#[derive(Debug, Deserialize)]
struct IndicatorYear {
    fiscal_year: i32,
    target: Option<Target>,
    actual: Option<Actual>,
    achieved: Option<bool>,
    published: Option<Published>,
    drift: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Target {
    op: TargetOp,
    value: f64,
}

#[derive(Debug, Deserialize)]
struct Actual {
    value: Option<f64>,
    source: String,
}

#[derive(Debug, Deserialize)]
struct Published {
    value: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct YearBlock {
    fiscal_year: i32,
    #[serde(default)]
    activities: Vec<Activity>,
    self_evaluation: Option<SelfEvaluation>,
    external_evaluation: Option<ExternalEvaluation>,
}

#[derive(Debug, Deserialize)]
struct Activity {
    planned: Option<String>,
    result: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SelfEvaluation {
    grade: String,
    grade_label: String,
    reason: Option<String>,
    next_step_label: String,
    direction: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ExternalEvaluation {
    text: String,
}

/// One cell of a year column. A `Number` keeps its value so the spreadsheet stays computable;
/// `text` is how CSV and HTML show it, `suffix` what the spreadsheet's number format appends.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Text(String),
    Number {
        value: f64,
        text: String,
        suffix: &'static str,
        signed: bool,
    },
}

impl Cell {
    fn none() -> Cell {
        Cell::Text(NONE.to_string())
    }

    pub(crate) fn text(&self) -> &str {
        match self {
            Cell::Text(text) | Cell::Number { text, .. } => text,
        }
    }
}

/// Which row of an indicator block a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowKind {
    Target,
    Actual,
    Achieved,
    Published,
    Drift,
}

impl RowKind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            RowKind::Target => "目標",
            RowKind::Actual => "実績",
            RowKind::Achieved => "達成",
            RowKind::Published => "公表値",
            RowKind::Drift => "乖離",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Row {
    pub kind: RowKind,
    pub cells: Vec<Cell>,
}

#[derive(Debug)]
pub(crate) struct IndicatorBlock {
    pub name: String,
    /// 概要 and 基準値, shown under the name where there is room (HTML, XLSX).
    pub note: Option<String>,
    pub kind_label: String,
    pub unit_label: String,
    /// Whether any year of this indicator was published (XLSX shows 公表値・乖離 only then).
    pub published: bool,
    pub rows: Vec<Row>,
}

#[derive(Debug)]
pub(crate) struct TextRow {
    pub label: &'static str,
    pub cells: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct YearHead {
    /// `R5`
    pub short: String,
    /// `令和5年度`
    pub label: String,
}

/// The sheet as every format draws it.
#[derive(Debug)]
pub(crate) struct View {
    pub code: String,
    pub title: String,
    pub header: Vec<(&'static str, String)>,
    pub years: Vec<YearHead>,
    pub indicators: Vec<IndicatorBlock>,
    pub year_rows: Vec<TextRow>,
}

/// The label in the 指標 column of the per-year rows.
pub(crate) const YEAR_SECTION: &str = "取組・評価";
/// The column heads of the table before the year columns.
pub(crate) const TABLE_HEAD: [&str; 4] = ["指標", "区分", "単位", "行"];

impl View {
    /// `進行管理シート　2-1-2 研修内容の充実`
    pub(crate) fn heading(&self) -> String {
        format!("進行管理シート　{} {}", self.code, self.title)
    }

    pub(crate) fn from_json(sheet: &Value) -> Result<View, ReportError> {
        let sheet: Sheet = serde_json::from_value(sheet.clone())
            .map_err(|e| ReportError::Malformed(e.to_string()))?;
        Ok(View::build(&sheet))
    }

    fn build(sheet: &Sheet) -> View {
        let item = &sheet.item;
        let or_none = |s: &Option<String>| match s {
            Some(s) if !s.is_empty() => s.clone(),
            _ => NONE.to_string(),
        };
        let as_of = match sheet.position {
            Some(position) => format!("{}（イベント位置 {position}）", sheet.as_of),
            None => sheet.as_of.clone(),
        };
        let header = vec![
            ("項目コード", item.code.clone()),
            ("項目名", item.title.clone()),
            ("改革の柱", or_none(&item.pillar)),
            ("取組主管課", or_none(&item.lead_department)),
            ("区分", or_none(&item.status_label)),
            ("概要・目指すもの", or_none(&item.aim)),
            ("関係計画等", or_none(&item.related_plans)),
            ("基準時点", as_of),
        ];
        let years = sheet
            .fiscal_years
            .iter()
            .map(|&y| YearHead {
                short: short_label(y),
                label: FiscalYear::new(y)
                    .map(|fy| fy.label())
                    .unwrap_or_else(|_| format!("{y}年度")),
            })
            .collect();
        let indicators = sheet
            .indicators
            .iter()
            .map(|indicator| indicator_block(indicator, &sheet.fiscal_years))
            .collect();
        View {
            code: item.code.clone(),
            title: item.title.clone(),
            header,
            years,
            indicators,
            year_rows: year_rows(&sheet.years, &sheet.fiscal_years),
        }
    }
}

fn short_label(year: i32) -> String {
    FiscalYear::new(year)
        .map(|fy| fy.short_label())
        .unwrap_or_else(|_| year.to_string())
}

fn indicator_block(indicator: &Indicator, fiscal_years: &[i32]) -> IndicatorBlock {
    let unit = indicator.unit_label.as_str();
    let cells: Vec<Option<&IndicatorYear>> = fiscal_years
        .iter()
        .map(|&y| indicator.years.iter().find(|c| c.fiscal_year == y))
        .collect();
    let row = |kind: RowKind, f: &dyn Fn(&IndicatorYear) -> Cell| Row {
        kind,
        cells: cells
            .iter()
            .map(|c| c.map(f).unwrap_or_else(Cell::none))
            .collect(),
    };
    let rows = vec![
        row(RowKind::Target, &|c| match &c.target {
            Some(t) => {
                let suffix = t.op.label_ja();
                Cell::Number {
                    value: t.value,
                    text: format!("{}{unit}{suffix}", number(t.value)),
                    suffix,
                    signed: false,
                }
            }
            None => Cell::none(),
        }),
        row(RowKind::Actual, &|c| match &c.actual {
            Some(Actual {
                value: Some(value),
                source,
            }) => {
                let suffix = if source == "estimate" {
                    "（見込み）"
                } else {
                    ""
                };
                Cell::Number {
                    value: *value,
                    text: format!("{}{unit}{suffix}", number(*value)),
                    suffix,
                    signed: false,
                }
            }
            _ => Cell::none(),
        }),
        row(RowKind::Achieved, &|c| {
            Cell::Text(
                match c.achieved {
                    Some(true) => "達成",
                    Some(false) => "未達成",
                    None => NONE,
                }
                .to_string(),
            )
        }),
        row(RowKind::Published, &|c| match &c.published {
            Some(Published { value: Some(value) }) => Cell::Number {
                value: *value,
                text: format!("{}{unit}", number(*value)),
                suffix: "",
                signed: false,
            },
            _ => Cell::none(),
        }),
        row(RowKind::Drift, &|c| match c.drift {
            Some(drift) => Cell::Number {
                value: drift,
                text: format!("{}{unit}", signed(drift)),
                suffix: "",
                signed: true,
            },
            None => Cell::none(),
        }),
    ];
    let mut notes = Vec::new();
    if let Some(description) = indicator.description.as_deref().filter(|d| !d.is_empty()) {
        notes.push(format!("概要：{description}"));
    }
    if let Some(baseline) = &indicator.baseline {
        notes.push(format!(
            "基準値：{} {}{unit}",
            short_label(baseline.fiscal_year),
            number(baseline.value)
        ));
    }
    IndicatorBlock {
        name: indicator.name.clone(),
        note: (!notes.is_empty()).then(|| notes.join("\n")),
        kind_label: indicator.kind_label.clone(),
        unit_label: indicator.unit_label.clone(),
        published: indicator.years.iter().any(|c| c.published.is_some()),
        rows,
    }
}

fn year_rows(blocks: &[YearBlock], fiscal_years: &[i32]) -> Vec<TextRow> {
    let blocks: Vec<Option<&YearBlock>> = fiscal_years
        .iter()
        .map(|&y| blocks.iter().find(|b| b.fiscal_year == y))
        .collect();
    let row = |label: &'static str, f: &dyn Fn(&YearBlock) -> Option<String>| TextRow {
        label,
        cells: blocks
            .iter()
            .map(|b| {
                b.and_then(f)
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| NONE.to_string())
            })
            .collect(),
    };
    let joined = |texts: Vec<&str>| (!texts.is_empty()).then(|| texts.join("\n"));
    vec![
        row("取組内容", &|b| {
            joined(
                b.activities
                    .iter()
                    .filter_map(|a| a.planned.as_deref())
                    .collect(),
            )
        }),
        row("取組実績", &|b| {
            joined(
                b.activities
                    .iter()
                    .filter_map(|a| a.result.as_deref())
                    .collect(),
            )
        }),
        row("自己評価", &|b| {
            b.self_evaluation
                .as_ref()
                .map(|e| format!("{}：{}", e.grade, e.grade_label))
        }),
        row("評価理由", &|b| {
            b.self_evaluation.as_ref().and_then(|e| e.reason.clone())
        }),
        row("次年度以降", &|b| {
            b.self_evaluation
                .as_ref()
                .map(|e| e.next_step_label.clone())
        }),
        row("方向性・課題等", &|b| {
            b.self_evaluation.as_ref().and_then(|e| e.direction.clone())
        }),
        row("外部評価", &|b| {
            b.external_evaluation.as_ref().map(|e| e.text.clone())
        }),
    ]
}

/// `2300` → `2,300`, `18.5` → `18.5`: thousands separators on the integer part, the
/// fraction as the shortest exact form.
pub(crate) fn number(value: f64) -> String {
    let text = format!("{}", value.abs());
    let (int, frac) = match text.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (text.as_str(), None),
    };
    let digits: Vec<char> = int.chars().collect();
    let mut groups: Vec<String> = digits.rchunks(3).map(|g| g.iter().collect()).collect();
    groups.reverse();
    let grouped = groups.join(",");
    let sign = if value < 0.0 { "-" } else { "" };
    match frac {
        Some(frac) => format!("{sign}{grouped}.{frac}"),
        None => format!("{sign}{grouped}"),
    }
}

/// A drift: `+1`, `-1`, `0`.
pub(crate) fn signed(value: f64) -> String {
    if value > 0.0 {
        format!("+{}", number(value))
    } else {
        number(value)
    }
}

/// How many decimals `number` shows for `value` (for the spreadsheet's number format).
pub(crate) fn decimals(value: f64) -> usize {
    let text = format!("{}", value.abs());
    text.split_once('.')
        .map_or(0, |(_, frac)| frac.len().min(6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_thousands_separators_and_keep_their_fraction() {
        assert_eq!(number(2300.0), "2,300");
        assert_eq!(number(1234567.0), "1,234,567");
        assert_eq!(number(18.5), "18.5");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(-1.0), "-1");
        assert_eq!(signed(1.0), "+1");
        assert_eq!(signed(-0.5), "-0.5");
        assert_eq!(decimals(18.25), 2);
        assert_eq!(decimals(3.0), 0);
    }
}
