//! The one table every format draws from a [`Sheet`]: item header, one column per fiscal year,
//! per indicator the rows 目標・実績・達成・公表値・公表日・乖離, then per year the activities and
//! evaluations. CSV, HTML and XLSX only differ in how they draw it; how a value reads (a rate
//! with one decimal and %, a drift of a rate in ポイント, an exact target without 以上) is
//! decided here, once.

use kiroku_domain::values::{FiscalYear, TargetOp, Unit};
use kiroku_projections::sheet::{
    ActualSource, IndicatorCell, PublishedCell, Sheet, SheetIndicator, SheetYear,
};

/// What an empty value (no target, no actual, a rate with an empty denominator) shows as.
pub(crate) const NONE: &str = "－";

/// One cell of a year column. A `Number` keeps its value so the spreadsheet stays computable;
/// `text` is how CSV and HTML show it, `suffix` what the spreadsheet's number format appends.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Text(String),
    Number {
        value: f64,
        text: String,
        /// What the spreadsheet's number format appends (以上, （見込み）, ポイント).
        suffix: &'static str,
        /// The unit the spreadsheet's number format shows right after the number (`%`).
        unit: &'static str,
        /// Fixed decimals (rates: 1), or as many as the value has.
        decimals: Option<usize>,
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
    PublishedOn,
    Drift,
}

impl RowKind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            RowKind::Target => "目標",
            RowKind::Actual => "実績",
            RowKind::Achieved => "達成",
            RowKind::Published => "公表値",
            RowKind::PublishedOn => "公表日・版",
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
    pub plan: Option<String>,
}

/// The label in the 指標 column of the per-year rows.
pub(crate) const YEAR_SECTION: &str = "取組・評価";
/// The row of the chain head each year's publication froze its values at.
pub(crate) const LEDGER_DIGEST: &str = "公表時の台帳ダイジェスト";
/// The column heads of the table before the year columns.
pub(crate) const TABLE_HEAD: [&str; 4] = ["指標", "区分", "単位", "行"];

impl View {
    /// `はだの行政サービス改革基本方針実行計画　進行管理シート　2-1-2 研修内容の充実`
    pub(crate) fn heading(&self) -> String {
        match &self.plan {
            Some(plan) => format!("{plan}　進行管理シート　{} {}", self.code, self.title),
            None => format!("進行管理シート　{} {}", self.code, self.title),
        }
    }

    pub(crate) fn of(sheet: &Sheet) -> View {
        let item = &sheet.item;
        let or_none = |s: &Option<String>| match s {
            Some(s) if !s.is_empty() => s.clone(),
            _ => NONE.to_string(),
        };
        let header = vec![
            ("項目", format!("{} {}", item.code, item.title)),
            ("改革の柱", or_none(&item.pillar)),
            ("取組主管課", or_none(&item.lead_department)),
            ("区分", or_none(&item.status_label)),
            ("概要（目指す姿）", or_none(&item.aim)),
            ("関係計画", or_none(&item.related_plans)),
            ("基準時点", sheet.as_of_jst.clone()),
        ];
        let years = sheet
            .fiscal_years
            .iter()
            .map(|&y| YearHead {
                short: short_label(y),
                label: FiscalYear::new(y)
                    .map(|fy| fy.full_label())
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
            plan: item.plan.clone(),
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

/// A value with its unit: `2,300人`, `98.0%`, `14.2日`.
pub(crate) fn with_unit(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Percent => format!("{}%", rate(value)),
        other => format!("{}{}", number(value), other.label_ja()),
    }
}

/// A rate always with one decimal: `98.0`, `15.6`.
pub(crate) fn rate(value: f64) -> String {
    format!("{value:.1}")
}

/// What a target's operator adds after the value: 以上 or 以下, and nothing when the target
/// is in effect exact: `=`, at most 0 (0件), or at least 100 % (100%).
fn op_suffix(op: TargetOp, value: f64, unit: Unit) -> &'static str {
    let exact = match op {
        TargetOp::Exactly => true,
        TargetOp::AtMost => value <= 0.0,
        TargetOp::AtLeast => unit == Unit::Percent && value >= 100.0,
    };
    if exact {
        ""
    } else {
        op.label_ja()
    }
}

/// A drift as Japanese public documents write a difference (増減): `3人`, `△0.5ポイント`
/// (a difference of rates is in points), `0人`. A negative takes `△`, never `-`: a CSV cell
/// starting with `-` or `+` is a formula to Excel, which would show `#NAME?`.
pub(crate) fn drift_text(value: f64, unit: Unit) -> String {
    let sign = if value < 0.0 { NEGATIVE } else { "" };
    match unit {
        Unit::Percent => format!("{sign}{:.1}ポイント", value.abs()),
        other => format!("{sign}{}{}", number(value.abs()), other.label_ja()),
    }
}

/// The mark of a negative drift (三角, as in 決算書 and 進行管理シート).
pub(crate) const NEGATIVE: &str = "△";

/// The suffix of a drift in the spreadsheet's number format.
fn drift_suffix(unit: Unit) -> &'static str {
    match unit {
        Unit::Percent => "ポイント",
        other => other.label_ja(),
    }
}

/// `2024-05-30 第1版（人事課）`
fn published_on(p: &PublishedCell) -> String {
    let by = if p.published_by.is_empty() {
        String::new()
    } else {
        format!("（{}）", p.published_by)
    };
    format!("{} 第{}版{by}", p.published_on, p.version)
}

fn indicator_block(indicator: &SheetIndicator, fiscal_years: &[i32]) -> IndicatorBlock {
    let unit = indicator.unit;
    let unit_label = unit.label_ja();
    let cells: Vec<Option<&IndicatorCell>> = fiscal_years
        .iter()
        .map(|&y| indicator.years.iter().find(|c| c.fiscal_year == y))
        .collect();
    let row = |kind: RowKind, f: &dyn Fn(&IndicatorCell) -> Cell| Row {
        kind,
        cells: cells
            .iter()
            .map(|c| c.map(f).unwrap_or_else(Cell::none))
            .collect(),
    };
    let percent = unit == Unit::Percent;
    let number_cell = |value: f64, suffix: &'static str| Cell::Number {
        value,
        text: format!("{}{suffix}", with_unit(value, unit)),
        suffix,
        unit: unit_label,
        decimals: if percent { Some(1) } else { None },
        signed: false,
    };
    let rows = vec![
        // A target reads as the plan writes it (90%以上, 100%, 0件); values as measured.
        row(RowKind::Target, &|c| match &c.target {
            Some(t) => {
                let suffix = op_suffix(t.op, t.value, unit);
                Cell::Number {
                    value: t.value,
                    text: format!("{}{unit_label}{suffix}", number(t.value)),
                    suffix,
                    unit: unit_label,
                    decimals: None,
                    signed: false,
                }
            }
            None => Cell::none(),
        }),
        row(RowKind::Actual, &|c| match &c.actual {
            Some(a) => match a.value {
                Some(value) => number_cell(
                    value,
                    if a.source == ActualSource::Estimate {
                        "（見込み）"
                    } else {
                        ""
                    },
                ),
                None => Cell::none(),
            },
            None => Cell::none(),
        }),
        row(RowKind::Achieved, &|c| {
            Cell::Text(c.achievement.label_ja().to_string())
        }),
        row(RowKind::Published, &|c| match &c.published {
            Some(PublishedCell {
                value: Some(value), ..
            }) => number_cell(*value, ""),
            _ => Cell::none(),
        }),
        row(RowKind::PublishedOn, &|c| match &c.published {
            Some(p) => Cell::Text(published_on(p)),
            None => Cell::none(),
        }),
        row(RowKind::Drift, &|c| match c.drift {
            Some(drift) => Cell::Number {
                value: drift,
                text: drift_text(drift, unit),
                suffix: drift_suffix(unit),
                unit: "",
                decimals: if percent { Some(1) } else { None },
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
            "基準値：{} {}",
            baseline.fiscal_year.short_label(),
            with_unit(baseline.value, unit)
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

fn year_rows(blocks: &[SheetYear], fiscal_years: &[i32]) -> Vec<TextRow> {
    let blocks: Vec<Option<&SheetYear>> = fiscal_years
        .iter()
        .map(|&y| blocks.iter().find(|b| b.fiscal_year == y))
        .collect();
    let row = |label: &'static str, f: &dyn Fn(&SheetYear) -> Option<String>| TextRow {
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
        row("取組内容・取組目標", &|b| {
            joined(
                b.activities
                    .iter()
                    .filter_map(|a| a.planned.as_deref())
                    .collect(),
            )
        }),
        row("活動実績", &|b| {
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
                .map(|e| format!("{}：{}", e.grade.as_str(), e.grade_label))
        }),
        row("評価理由", &|b| {
            b.self_evaluation.as_ref().and_then(|e| e.reason.clone())
        }),
        row("次年度以降の方向性", &|b| {
            b.self_evaluation
                .as_ref()
                .map(|e| e.next_step_label.clone())
        }),
        row(
            "内部評価（結果要因、次年度課題等）",
            &|b| b.self_evaluation.as_ref().and_then(|e| e.direction.clone()),
        ),
        row("外部評価", &|b| {
            b.external_evaluation.as_ref().map(|e| e.text.clone())
        }),
        row(LEDGER_DIGEST, &|b| {
            b.ledger_head
                .as_ref()
                .map(|h| format!("位置 {}\n{}", h.position, h.hash))
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
        assert_eq!(drift_text(3.0, Unit::People), "3人");
        assert_eq!(drift_text(-1234.0, Unit::People), "△1,234人");
        assert_eq!(drift_text(-0.5, Unit::Percent), "△0.5ポイント");
        assert_eq!(drift_text(0.0, Unit::Percent), "0.0ポイント");
        assert_eq!(decimals(18.25), 2);
        assert_eq!(decimals(3.0), 0);
    }
}
