//! Value types parsed at the edge: fiscal years with their era labels, grades, employee
//! numbers, codes, sealed (encrypted) personal text and the closed vocabularies of SPEC §3.
//! An invalid value never reaches an aggregate: each type refuses it while deserializing.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

/// A business date (local date in Japan). Serialized as `YYYY-MM-DD`; impossible dates such
/// as 2023-02-30 are refused by the parser.
pub type Date = NaiveDate;

/// 年度: April 1 to March 31, named by the year it starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i32", into = "i32")]
pub struct FiscalYear(i32);

impl FiscalYear {
    /// The fiscal year a business date falls in.
    pub fn of(date: Date) -> Self {
        if date.month() >= 4 {
            FiscalYear(date.year())
        } else {
            FiscalYear(date.year() - 1)
        }
    }

    pub fn new(year: i32) -> Result<Self, ValueError> {
        if (1989..=2200).contains(&year) {
            Ok(FiscalYear(year))
        } else {
            Err(ValueError::FiscalYear(year))
        }
    }

    pub fn year(self) -> i32 {
        self.0
    }

    /// April 1: the first day and the reference date (基準日) of the year.
    pub fn first_day(self) -> Date {
        NaiveDate::from_ymd_opt(self.0, 4, 1).unwrap_or(NaiveDate::MIN)
    }

    pub fn last_day(self) -> Date {
        NaiveDate::from_ymd_opt(self.0 + 1, 3, 31).unwrap_or(NaiveDate::MAX)
    }

    pub fn contains(self, date: Date) -> bool {
        FiscalYear::of(date) == self
    }

    /// `令和5年度`, `令和元年度`, `平成30年度`.
    pub fn label(self) -> String {
        let (era, n) = self.era();
        if n == 1 {
            format!("{era}元年度")
        } else {
            format!("{era}{n}年度")
        }
    }

    /// `令和3年度（2021年度）`: the era label with the western year, as the cities' sheets
    /// head their year columns.
    pub fn full_label(self) -> String {
        format!("{}（{}年度）", self.label(), self.0)
    }

    /// `R5`, `H30`: the short form used in table headers.
    pub fn short_label(self) -> String {
        let (era, n) = self.era();
        let letter = if era == "令和" { "R" } else { "H" };
        format!("{letter}{n}")
    }

    fn era(self) -> (&'static str, i32) {
        if self.0 >= 2019 {
            ("令和", self.0 - 2018)
        } else {
            ("平成", self.0 - 1988)
        }
    }
}

impl TryFrom<i32> for FiscalYear {
    type Error = ValueError;
    fn try_from(value: i32) -> Result<Self, Self::Error> {
        FiscalYear::new(value)
    }
}

impl From<FiscalYear> for i32 {
    fn from(value: FiscalYear) -> Self {
        value.0
    }
}

impl fmt::Display for FiscalYear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// 職務の級: 1級 … 8級.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Grade(u8);

impl Grade {
    pub fn value(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Grade {
    type Error = ValueError;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        if (1..=8).contains(&value) {
            Ok(Grade(value))
        } else {
            Err(ValueError::Grade(value))
        }
    }
}

impl From<Grade> for u8 {
    fn from(value: Grade) -> Self {
        value.0
    }
}

/// 職員番号: 1–20 letters, digits or hyphens.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmployeeNo(String);

impl EmployeeNo {
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        let ok = !value.is_empty()
            && value.len() <= 20
            && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if ok {
            Ok(EmployeeNo(value.to_string()))
        } else {
            Err(ValueError::EmployeeNo(value.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EmployeeNo {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        EmployeeNo::parse(&value)
    }
}

impl From<EmployeeNo> for String {
    fn from(value: EmployeeNo) -> Self {
        value.0
    }
}

/// A plan item or indicator code such as `2-1-2` or `attendees`: 1–40 letters, digits,
/// hyphens, underscores or dots.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Code(String);

impl Code {
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        // At least one letter or digit: `.` and `..` would read as paths.
        let ok = !value.is_empty()
            && value.len() <= 40
            && value.chars().any(|c| c.is_ascii_alphanumeric())
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok {
            Ok(Code(value.to_string()))
        } else {
            Err(ValueError::Code(value.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Code {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Code::parse(&value)
    }
}

impl From<Code> for String {
    fn from(value: Code) -> Self {
        value.0
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A short non-empty label: department names, course codes, titles, reasons.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Text(String);

impl Text {
    pub const MAX_CHARS: usize = 4000;

    pub fn parse(value: &str) -> Result<Self, ValueError> {
        let trimmed = value.trim();
        // Control characters other than line breaks and tabs (NUL above all, which PostgreSQL
        // cannot store in JSON) are never part of what a person typed.
        let control = trimmed
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'));
        if trimmed.is_empty() || control || trimmed.chars().count() > Self::MAX_CHARS {
            Err(ValueError::Text)
        } else {
            Ok(Text(trimmed.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Text {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Text::parse(&value)
    }
}

impl From<Text> for String {
    fn from(value: Text) -> Self {
        value.0
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Personal text (a name, an interview note, an evaluation comment) as it is stored in the log:
/// ciphertext under the subject's own key. The domain never sees the clear text; the
/// application seals it before building a command and opens it when a reader may see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sealed {
    /// Envelope format, so that the scheme can change without rewriting the log.
    pub enc: String,
    /// base64(nonce ‖ ciphertext ‖ tag).
    pub ct: String,
}

/// The post-training survey answer: 1 (did not understand) … 5 (understood well).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Understanding(u8);

impl Understanding {
    pub fn value(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Understanding {
    type Error = ValueError;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        if (1..=5).contains(&value) {
            Ok(Understanding(value))
        } else {
            Err(ValueError::Understanding(value))
        }
    }
}

impl From<Understanding> for u8 {
    fn from(value: Understanding) -> Self {
        value.0
    }
}

/// Why a value was refused at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("年度 {0} は 1989〜2200 の範囲外です")]
    FiscalYear(i32),
    #[error("級 {0} は 1〜8 の範囲外です")]
    Grade(u8),
    #[error("職員番号 {0:?} は英数字とハイフンの 1〜20 文字にしてください")]
    EmployeeNo(String),
    #[error("コード {0:?} は英数字・ハイフン・下線・ピリオドの 1〜40 文字にしてください")]
    Code(String),
    #[error("文字列は空にせず、制御文字を含めず、4000 文字以内にしてください")]
    Text,
    #[error("理解度 {0} は 1〜5 の範囲外です")]
    Understanding(u8),
}

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal : $ja:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([$($text),+]))
                    .description(Some([$(concat!($text, "＝", $ja)),+].join("、")))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable machine name used in JSON.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The Japanese label shown to users.
            pub fn label_ja(self) -> &'static str {
                match self { $($name::$variant => $ja),+ }
            }
        }
    };
}

vocabulary!(Gender { Female = "female": "女性", Male = "male": "男性", Other = "other": "その他", Unstated = "unstated": "回答しない" });
vocabulary!(JobType { Administrative = "administrative": "事務職", Technical = "technical": "技術職", Specialist = "specialist": "専門職", Other = "other": "その他" });
vocabulary!(Employment { Regular = "regular": "正規職員", Reappointed = "reappointed": "再任用", FiscalYearAppointed = "fiscal_year_appointed": "会計年度任用" });
vocabulary!(
    /// The job-rotation category of a department.
    DepartmentKind { FrontOffice = "front_office": "窓口部門", Program = "program": "事業部門", Administration = "administration": "管理部門" }
);
vocabulary!(GradeChangeReason { Promotion = "promotion": "昇任", DemotionOnRequest = "demotion_on_request": "希望降格", Correction = "correction": "訂正", Other = "other": "その他" });
vocabulary!(TransferKind { Regular = "regular": "定期異動", Dispatch = "dispatch": "派遣", Internship = "internship": "庁内インターン", Return = "return": "派遣からの復帰" });
vocabulary!(SeparationReason { Retirement = "retirement": "退職（定年）", Resignation = "resignation": "退職（自己都合）", Other = "other": "その他" });
vocabulary!(InterviewKind { Evaluation = "evaluation": "人事評価面談", OneOnOne = "one_on_one": "1on1", Hr = "hr": "人事課面談", Mentor = "mentor": "メンター面談", Career = "career": "キャリア面談", FollowUp = "follow_up": "再面談" });
vocabulary!(EvaluationPeriod { FirstHalf = "first_half": "前期", SecondHalf = "second_half": "後期", Annual = "annual": "通年" });
vocabulary!(OverallRating { S = "S": "S", A = "A": "A", B = "B": "B", C = "C": "C", D = "D": "D" });
vocabulary!(TrainingCategory { Tiered = "tiered": "階層別研修", Specialized = "specialized": "専門研修", Special = "special": "特別研修", Dispatch = "dispatch": "派遣研修", Ojt = "ojt": "職場研修", SelfDevelopment = "self_development": "自己啓発" });
vocabulary!(Delivery { InPerson = "in_person": "集合", Remote = "remote": "オンライン", ELearning = "e_learning": "eラーニング" });
vocabulary!(EnrolmentStatus { Enrolled = "enrolled": "受講決定", Waitlisted = "waitlisted": "キャンセル待ち" });
vocabulary!(ItemStatus { New = "new": "新規", Continued = "continued": "継続", Expanded = "expanded": "拡充" });
vocabulary!(IndicatorKind { Activity = "activity": "活動指標", Outcome = "outcome": "成果指標" });
vocabulary!(Unit { People = "people": "人", Percent = "percent": "%", Count = "count": "件", Points = "points": "点", Days = "days": "日", Hours = "hours": "時間" });
vocabulary!(TargetOp { AtLeast = ">=": "以上", AtMost = "<=": "以下", Exactly = "=": "" });
vocabulary!(ActualStatus { Estimate = "estimate": "見込み", Confirmed = "confirmed": "確定" });
vocabulary!(SelfGrade { A = "A": "計画どおり", B = "B": "概ね計画どおり", C = "C": "遅れがある", D = "D": "未実施" });
vocabulary!(NextStep { Continue = "continue": "継続実施", Expand = "expand": "拡充", Revise = "revise": "見直し", End = "end": "終了" });

impl TargetOp {
    /// Whether `actual op target` holds.
    pub fn holds(self, actual: f64, target: f64) -> bool {
        match self {
            TargetOp::AtLeast => actual >= target,
            TargetOp::AtMost => actual <= target,
            TargetOp::Exactly => (actual - target).abs() < 1e-9,
        }
    }
}

/// The OpenAPI schema of each value type says what its parser accepts, so that a client (or
/// a fuzzer) reading `/api/v1/openapi.json` knows the bounds without reading this file.
macro_rules! value_schema {
    ($name:ident, $description:literal, $build:expr) => {
        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let builder: ObjectBuilder = $build;
                builder.description(Some($description)).into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

value_schema!(
    FiscalYear,
    "年度（その年の4月1日に始まる西暦年）",
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1989))
        .maximum(Some(2200))
);
value_schema!(
    Grade,
    "職務の級（1〜8）",
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(8))
);
value_schema!(
    Understanding,
    "研修の理解度（1〜5）",
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(5))
);
value_schema!(
    EmployeeNo,
    "職員番号（英数字とハイフンの1〜20文字）",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[A-Za-z0-9-]{1,20}$"))
);
value_schema!(
    Code,
    "コード（英数字・ハイフン・下線・ピリオドの1〜40文字、英数字を1文字以上）",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[A-Za-z0-9._-]*[A-Za-z0-9][A-Za-z0-9._-]*$"))
        .max_length(Some(40))
);
value_schema!(
    Text,
    "文字列（前後の空白を除いて空でなく、改行とタブ以外の制御文字を含まない4000文字以内）",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("\\S"))
        .min_length(Some(1))
        .max_length(Some(Text::MAX_CHARS))
);

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> Date {
        s.parse().expect("test date")
    }

    #[test]
    fn fiscal_year_turns_on_april_first() {
        assert_eq!(FiscalYear::of(date("2024-03-31")).year(), 2023);
        assert_eq!(FiscalYear::of(date("2024-04-01")).year(), 2024);
    }

    #[test]
    fn fiscal_year_labels_follow_the_era() {
        let label = |y| FiscalYear::new(y).map(|fy| (fy.label(), fy.short_label()));
        assert_eq!(label(2023), Ok(("令和5年度".into(), "R5".into())));
        assert_eq!(label(2019), Ok(("令和元年度".into(), "R1".into())));
        assert_eq!(label(2018), Ok(("平成30年度".into(), "H30".into())));
        assert_eq!(label(1989), Ok(("平成元年度".into(), "H1".into())));
    }

    #[test]
    fn impossible_dates_are_refused() {
        assert!(serde_json::from_str::<Date>("\"2023-02-30\"").is_err());
        assert!(serde_json::from_str::<Date>("\"2024-02-29\"").is_ok());
    }

    #[test]
    fn grade_nine_is_refused() {
        assert!(serde_json::from_str::<Grade>("9").is_err());
        assert!(serde_json::from_str::<Grade>("0").is_err());
        assert_eq!(
            serde_json::from_str::<Grade>("8").ok().map(u8::from),
            Some(8)
        );
    }

    #[test]
    fn vocabularies_use_their_machine_names() {
        assert_eq!(
            serde_json::to_string(&TargetOp::AtLeast).ok(),
            Some("\">=\"".into())
        );
        assert!(serde_json::from_str::<Gender>("\"unknown\"").is_err());
    }

    #[test]
    fn text_refuses_control_characters_but_keeps_line_breaks() {
        assert_eq!(Text::parse("総務\u{0}課"), Err(ValueError::Text));
        assert_eq!(Text::parse("a\u{7}b"), Err(ValueError::Text));
        assert!(Text::parse("一行目\n二行目\tタブ").is_ok());
    }

    #[test]
    fn a_code_needs_a_letter_or_digit() {
        assert!(Code::parse(".").is_err());
        assert!(Code::parse("..").is_err());
        assert!(Code::parse("-_").is_err());
        assert!(Code::parse("2-1-2").is_ok());
        assert_eq!(
            FiscalYear::new(2021).map(|fy| fy.full_label()),
            Ok("令和3年度（2021年度）".into())
        );
    }
}
