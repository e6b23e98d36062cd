//! Renderers of the progress sheet: json, csv, xlsx and html, all drawn from the one typed
//! [`Sheet`] (`projections/src/sheet.rs`) so every format shows the same numbers.
//!
//! The sheet is laid out once as one table (`view`) — item header, a column per fiscal year,
//! per indicator 目標・実績・達成・公表値・公表日・乖離, then per year the activities and
//! evaluations — and each format draws that table.

pub(crate) mod csv;
mod html;
pub(crate) mod view;
mod xlsx;

pub use self::csv::csv;
pub use self::html::html;
pub use self::xlsx::xlsx;

use kiroku_projections::sheet::Sheet;

/// Why a sheet could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The page could not be written.
    #[error("could not write the page: {0}")]
    Page(String),
    #[error("could not write the csv: {0}")]
    Csv(#[from] ::csv::Error),
    #[error("could not write the spreadsheet: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    #[error("could not write the json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("could not write the report: {0}")]
    Io(#[from] std::io::Error),
}

/// The formats a sheet is served in (`?format=` of `GET /plan-items/{code}/sheet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Json,
    Csv,
    Xlsx,
    Html,
}

impl Format {
    /// `json`, `csv`, `xlsx` or `html` (case-insensitive); `None` for anything else.
    pub fn parse(s: &str) -> Option<Format> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            "xlsx" => Some(Format::Xlsx),
            "html" => Some(Format::Html),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Format::Html => "text/html; charset=utf-8",
        }
    }

    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Html => "html",
        }
    }
}

/// The sheet in `format`, as the bytes of a response body or a file.
pub fn render(sheet: &Sheet, format: Format) -> Result<Vec<u8>, ReportError> {
    match format {
        Format::Json => Ok(serde_json::to_vec_pretty(sheet)?),
        Format::Csv => csv(sheet),
        Format::Xlsx => xlsx(sheet),
        Format::Html => html(sheet).map(String::into_bytes),
    }
}

/// A hand-built sheet in the shape `projections/src/sheet.rs` produces, for the unit tests.
#[cfg(test)]
pub(crate) fn sample_sheet() -> Sheet {
    use serde_json::{json, Value};
    let years = [2021, 2022, 2023, 2024, 2025];
    let labels = |y: i32| {
        let n = y - 2018;
        (format!("令和{n}年度（{y}年度）"), format!("R{n}"))
    };
    let attendees: Vec<Value> = years
        .iter()
        .map(|&y| {
            let (label, short) = labels(y);
            let (target, actual, achieved, published, drift) = match y {
                2023 => (
                    json!({"op": ">=", "value": 2300.0}),
                    json!({"value": 2412.0, "source": "computed"}),
                    json!(true),
                    json!({"value": 2415.0, "recorded_at": "2024-05-30T07:00:00.000Z",
                           "published_on": "2024-05-30", "published_by": "人事課", "version": 2,
                           "reason": "集計誤りの訂正"}),
                    json!(-3.0),
                ),
                2024 => (
                    json!({"op": ">=", "value": 2300.0}),
                    json!({"value": 120.0, "source": "computed"}),
                    Value::Null,
                    Value::Null,
                    Value::Null,
                ),
                _ => (
                    Value::Null,
                    json!({"value": null, "source": "computed"}),
                    Value::Null,
                    Value::Null,
                    Value::Null,
                ),
            };
            let achievement = match y {
                2023 => "achieved",
                2024 => "in_progress",
                _ => "none",
            };
            json!({"fiscal_year": y, "label": label, "short_label": short, "target": target,
                   "actual": actual, "achieved": achieved, "achievement": achievement,
                   "published": published, "drift": drift})
        })
        .collect();
    let want: Vec<Value> = years
        .iter()
        .map(|&y| {
            let (label, short) = labels(y);
            let (target, actual, achieved) = match y {
                2023 => (
                    json!({"op": ">=", "value": 90.0}),
                    json!({"value": 18.5, "source": "estimate"}),
                    json!(false),
                ),
                2024 => (
                    json!({"op": ">=", "value": 90.0}),
                    json!({"value": 98.0, "source": "confirmed"}),
                    Value::Null,
                ),
                2025 => (json!({"op": "=", "value": 0.0}), Value::Null, Value::Null),
                _ => (Value::Null, Value::Null, Value::Null),
            };
            let achievement = match y {
                2023 => "not_achieved",
                2024 | 2025 => "in_progress",
                _ => "none",
            };
            json!({"fiscal_year": y, "label": label, "short_label": short, "target": target,
                   "actual": actual, "achieved": achieved, "achievement": achievement,
                   "published": null, "drift": null})
        })
        .collect();
    let year_blocks: Vec<Value> = years
        .iter()
        .map(|&y| {
            let (label, _) = labels(y);
            if y == 2023 {
                json!({"fiscal_year": y, "label": label,
                   "activities": [{"planned": "研修計画に位置付けた研修の年間受講者数の増加を図る。",
                                   "result": "階層別研修に「対話」を取り入れた <新> 研修 & 講演"}],
                   "self_evaluation": {"grade": "A", "grade_label": "計画どおり",
                       "reason": "予定どおりに取組みができている。", "next_step": "continue",
                       "next_step_label": "継続実施", "direction": "研修等の効果を測定する。"},
                   "external_evaluation": {"text": "次年度以降の取組みへとつなげること。"}})
            } else {
                json!({"fiscal_year": y, "label": label, "activities": [],
                       "self_evaluation": null, "external_evaluation": null})
            }
        })
        .collect();
    let sheet = json!({
        "item": {"code": "2-1-2", "title": "研修内容の充実",
                 "pillar": "組織を高める職員（ひと）づくりの推進", "parent_code": "2-1",
                 "lead_department": "職員課", "status": "continued", "status_label": "継続",
                 "aim": "職員の能力向上を図るため研修内容を充実させる", "related_plans": null,
                 "from_fiscal_year": 2021, "to_fiscal_year": 2025,
                 "plan": "はだの行政サービス改革基本方針実行計画"},
        "as_of": "2024-06-30T00:00:00.000Z",
        "position": 42,
        "fiscal_years": years,
        "indicators": [
            {"code": "attendees", "name": "職員研修の年間延べ受講者数", "description": null,
             "unit": "people", "unit_label": "人", "kind": "activity", "kind_label": "活動指標",
             "source": {"rule": "training_completions", "params": {}}, "baseline": null,
             "years": attendees},
            {"code": "want_management", "name": "「管理職になりたいと思う」と回答する比率",
             "description": "4～1級職員へのアンケート", "unit": "percent", "unit_label": "%",
             "kind": "outcome", "kind_label": "成果指標", "source": "manual",
             "baseline": {"fiscal_year": 2021, "value": 15.6}, "years": want}
        ],
        "years": year_blocks,
        "as_of_jst": "2024-06-30 09:00 JST",
    });
    serde_json::from_value(sheet).expect("the sample has the sheet's shape")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_name_their_content_type() {
        assert_eq!(Format::parse("csv"), Some(Format::Csv));
        assert_eq!(Format::parse("XLSX"), Some(Format::Xlsx));
        assert_eq!(Format::parse("pdf"), None);
        for format in [Format::Json, Format::Csv, Format::Xlsx, Format::Html] {
            assert_eq!(Format::parse(format.extension()), Some(format));
        }
        assert_eq!(Format::Csv.content_type(), "text/csv; charset=utf-8");
    }

    #[test]
    fn json_is_the_sheet_itself() {
        let sheet = sample_sheet();
        let bytes = render(&sheet, Format::Json).expect("json");
        let back: Sheet = serde_json::from_slice(&bytes).expect("parse");
        assert_eq!(back, sheet);
    }
}
