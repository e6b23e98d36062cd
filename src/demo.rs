//! The demo city (SPEC §8): a deterministic ledger of about 1,000 staff over FY2021–FY2025.
//!
//! [`load`] fills an empty ledger in two steps:
//!
//! 1. A pure simulation builds the city in memory from a fixed seed (a hand-written SplitMix64,
//!    so the city never changes with a `rand` release): an initial population hired since the
//!    1980s with its careers, then each fiscal year the April 1 personnel actions (retirements
//!    under the phased retirement-age increase, rehires as 再任用, 役職定年, promotions,
//!    rotations, dispatches, new hires), training sessions with their attendance, evaluation
//!    interviews twice a year, annual evaluations, compliance incidents and the plan items of
//!    the progress sheets. Every command is stamped with the business date a clerk would have
//!    entered it, and every id is a UUIDv5 of a demo namespace and a counter.
//! 2. The commands are executed one by one in date order through [`Ledger::record`], built
//!    exactly as the HTTP handlers build them: names and free text sealed under each person's
//!    key, `staff_registered` / `interviewer_registered` from the staff this load registered,
//!    publications freezing the actuals the projector computes at that point of the log.
//!
//! The generator steers a few aggregates so the sheets tell a plausible story: about 2,300
//! training completions a year, an understanding rate of 89–93 %, women in management rising
//! from 15.6 % (FY2021) to 20 % (FY2025), a few corrections with reasons — some of them after a
//! sheet was published, so the sheets show drift that the audit trail explains.

use crate::application::{self, Actor, AppError, Command, Service, StaffRequest};
use crate::ledger::Ledger;
use crate::storage::backup::{self, BackupError, LogImage};
use crate::storage::tokens::{Principal, Role};
use crate::storage::{log, Backend, StorageError};
use chrono::{Datelike, NaiveDate, TimeDelta, Weekday};
use kiroku_domain::dates;
use kiroku_domain::incident::IncidentCommand;
use kiroku_domain::plan::{
    Baseline, IndicatorDefinition, IndicatorPlan, IndicatorSource, Manual, PlanCommand,
    PlanItemDefinition, RuleName, RuleParams, Target,
};
use kiroku_domain::session::{Schedule, SessionCommand};
use kiroku_domain::staff::{staff_id_of, Evaluation, Rehire, StaffCommand};
use kiroku_domain::values::*;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use uuid::Uuid;

/// The actor written into every demo event's metadata.
pub const ACTOR: &str = "デモデータ生成";
const SEED: u64 = 0x4b69_726f_6b75_2021;
/// The namespace of every session, interview, evaluation and incident id of the demo city.
pub const DEMO_NAMESPACE: Uuid = Uuid::from_u128(0x6b69726f_6b75_4000_8000_64656d6f6369);

const FIRST_FY: i32 = 2021;
const LAST_FY: i32 = 2025;
/// Staff in service on April 1 after the year's hires (hires are clamped to 25–42).
const HEADCOUNT: [usize; 5] = [1000, 1000, 1000, 1010, 1008];
/// Staff of grade 6 and above on April 1, and the women among them: 15.6 % → 20.0 %.
const MANAGERS: [usize; 5] = [96, 96, 95, 95, 95];
const WOMEN_MANAGERS: [usize; 5] = [15, 16, 17, 18, 19];
const INITIAL_WOMEN_MANAGERS: usize = 14;
const DIRECTORS: usize = 18;
const EXECUTIVES: usize = 4;
/// Standing training completions per fiscal year once every correction is applied.
const COMPLETIONS: [usize; 5] = [2302, 2318, 2341, 2377, 2402];
/// Share of survey answers of 4 or 5 (研修理解度).
const UNDERSTOOD: [f64; 5] = [0.892, 0.904, 0.913, 0.921, 0.926];
/// Share of staff who finish the all-staff information-security e-learning.
const SECURITY_RATE: [f64; 5] = [0.955, 0.965, 0.972, 0.978, 0.982];
/// (first birth FY, last birth FY, people per year) of the staff in service on 2021-03-31:
/// thin in the mid-thirties to mid-forties after the hiring freeze of the 2000s.
const COHORTS: [(i32, i32, usize); 6] = [
    (1960, 1966, 31),
    (1967, 1975, 27),
    (1976, 1985, 14),
    (1986, 1993, 23),
    (1994, 1999, 31),
    (2000, 2002, 10),
];
/// A threshold of experience nobody reaches.
const NEVER: f64 = 99.0;
const COMPETENCIES: [&str; 4] = ["企画力", "実行力", "協調性", "説明力"];

/// What the demo city put into the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemoSummary {
    /// Events in the log after loading.
    pub events: i64,
    pub commands: usize,
    pub staff: usize,
    pub sessions: usize,
    pub completions: usize,
    pub interviews: usize,
    pub evaluations: usize,
    pub incidents: usize,
    pub plan_items: usize,
    /// Appended events by event type.
    pub event_types: BTreeMap<String, usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the ledger already holds {0} events; the demo city loads only into an empty ledger")]
    NotEmpty(i64),
    /// A command was refused or could not be stored; `request_id` names it in the log's
    /// metadata order (`demo-000001` is the first command).
    #[error("demo command {request_id} failed: {source}")]
    Command {
        request_id: String,
        source: AppError,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("demo data is invalid: {0}")]
    Value(#[from] ValueError),
    #[error("demo data names an impossible date {0:04}-{1:02}-{2:02}")]
    Date(i32, u32, u32),
    #[error("plan item {0} is unknown to the projector")]
    UnknownPlanItem(String),
    #[error("the scratch ledger of the demo city failed: {0}")]
    Scratch(String),
    #[error(transparent)]
    Backup(#[from] BackupError),
}

/// Fills an empty ledger with the demo city. Refuses a ledger that already holds events.
///
/// The city is first played through the real commands into a scratch ledger; its log is then
/// given the transaction times of the story (see [`stamp`]), re-chained, and restored into
/// `ledger` through [`backup::restore`], the one path that takes stored times from outside
/// and only into an empty ledger.
pub async fn load(ledger: &Ledger) -> Result<DemoSummary, DemoError> {
    let existing = log::count(&ledger.backend).await?;
    if existing > 0 {
        return Err(DemoError::NotEmpty(existing));
    }
    let started = std::time::Instant::now();
    let (image, mut summary) = build().await?;
    let built = started.elapsed().as_secs_f64();
    backup::restore(&ledger.backend, image).await?;
    let restored = started.elapsed().as_secs_f64();
    ledger.projector.catch_up().await?;
    tracing::info!(
        built,
        restored,
        projected = started.elapsed().as_secs_f64(),
        "demo city: commands played into the scratch ledger, log restored, projections caught up (seconds since start)"
    );
    summary.event_types = log::count_by_type(&ledger.backend).await?;
    summary.events = log::count(&ledger.backend).await?;
    Ok(summary)
}

/// The demo city as a log whose `recorded_at` follow the story, hash-chained, with the
/// personal keys its names are sealed under.
pub async fn build() -> Result<(LogImage, DemoSummary), DemoError> {
    let city = City::simulate()?;
    let mut summary = city.summary();
    let scratch = Scratch::create()?;
    let ledger = Ledger::on(Backend::scratch(&scratch.path()).await?).await?;
    let mut runner = Runner {
        ledger: &ledger,
        requests: 0,
        registered: HashSet::new(),
        date: None,
        dates: Vec::new(),
    };
    for (date, op) in city.ops {
        runner.date = Some(date);
        runner.execute(op).await?;
    }
    let dates = std::mem::take(&mut runner.dates);
    summary.commands = runner.requests;
    let mut image = backup::image(&ledger.backend).await?;
    ledger.backend.close().await;
    drop(scratch);
    stamp(&mut image.events, &dates)?;
    rechain_with_published_heads(&mut image.events);
    Ok((image, summary))
}

/// Re-chains the log after its times were set (see [`backup::rechain`]) and points every
/// publication's `ledger_head` at the re-chained hash of its position: the scratch ledger's
/// hashes covered other times and exist nowhere else.
fn rechain_with_published_heads(events: &mut [backup::EventLine]) {
    use crate::storage::chain::{link, GENESIS};
    let mut hashes = std::collections::HashMap::new();
    let mut previous = GENESIS.to_string();
    for event in events.iter_mut() {
        if let Some(head) = event.payload.pointer_mut("/SheetPublished/ledger_head") {
            let hash = head["position"]
                .as_i64()
                .and_then(|p| hashes.get(&p).cloned())
                .unwrap_or_else(|| GENESIS.to_string());
            head["hash"] = serde_json::Value::String(hash);
        }
        previous = link(&previous, &event.log_event());
        event.hash = previous.clone();
        hashes.insert(event.position, previous.clone());
    }
}

/// A scratch SQLite ledger in a fresh temporary directory, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn create() -> Result<Scratch, DemoError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("kiroku-demo-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| DemoError::Scratch(e.to_string()))?;
        Ok(Scratch(dir))
    }

    fn path(&self) -> std::path::PathBuf {
        self.0.join("demo.db")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The working day in JST when clerks record: 09:00–17:30.
const DAY_STARTS_MIN: i64 = 9 * 60;
const DAY_MINUTES: i64 = 8 * 60 + 30;

/// Gives every event the transaction time of its command: the business date the command was
/// made for (`dates[n]` for request `demo-{n+1}`), the commands of one day spread evenly over
/// that day's office hours in JST, in the order they were made. Times never decrease along the
/// log, as positions follow the order of the commands.
fn stamp(events: &mut [backup::EventLine], dates: &[Date]) -> Result<(), DemoError> {
    let mut per_day: BTreeMap<Date, i64> = BTreeMap::new();
    for date in dates {
        *per_day.entry(*date).or_default() += 1;
    }
    let mut times = Vec::with_capacity(dates.len());
    let mut seen: BTreeMap<Date, i64> = BTreeMap::new();
    for date in dates {
        let n = per_day.get(date).copied().unwrap_or(1);
        let k = seen.entry(*date).or_default();
        *k += 1;
        let midnight_jst = date
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis() - 9 * 3_600_000)
            .ok_or(DemoError::Date(date.year(), date.month(), date.day()))?;
        let offset = DAY_STARTS_MIN * 60_000 + *k * DAY_MINUTES * 60_000 / (n + 1);
        times.push(midnight_jst + offset);
    }
    for event in events.iter_mut() {
        let request = event
            .metadata
            .get("request_id")
            .and_then(serde_json::Value::as_str)
            .and_then(|id| id.strip_prefix("demo-"))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n >= 1 && *n <= times.len())
            .ok_or_else(|| {
                DemoError::Scratch(format!("event {} names no demo request", event.position))
            })?;
        event.recorded_at = times[request - 1];
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Randomness and dates

/// SplitMix64 (Steele, Lea & Flood 2014): tiny and fixed forever.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: i32, hi: i32) -> i32 {
        lo + self.below((hi - lo + 1).max(1) as usize) as i32
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            None
        } else {
            Some(items[self.below(items.len())])
        }
    }

    /// An index drawn with probability proportional to its weight.
    fn weighted(&mut self, weights: &[u32]) -> Option<usize> {
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        if total == 0 {
            return None;
        }
        let mut draw = self.next() % total;
        for (i, w) in weights.iter().enumerate() {
            let w = u64::from(*w);
            if draw < w {
                return Some(i);
            }
            draw -= w;
        }
        None
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

fn ymd(y: i32, m: u32, d: u32) -> Result<Date, DemoError> {
    NaiveDate::from_ymd_opt(y, m, d).ok_or(DemoError::Date(y, m, d))
}

fn plus(date: Date, days: i64) -> Date {
    date.checked_add_signed(TimeDelta::days(days))
        .unwrap_or(date)
}

/// The last weekday on or before `date`.
fn last_weekday(date: Date) -> Date {
    let mut d = date;
    while !is_weekday(d) {
        d = plus(d, -1);
    }
    d
}

/// The first weekday on or after `date`.
fn weekday(date: Date) -> Date {
    match date.weekday() {
        Weekday::Sat => plus(date, 2),
        Weekday::Sun => plus(date, 1),
        _ => date,
    }
}

fn is_weekday(date: Date) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// A random weekday in `from..=to`.
fn some_weekday(rng: &mut Rng, from: Date, to: Date) -> Date {
    let span = (to - from).num_days().max(0) as usize;
    for _ in 0..8 {
        let date = plus(from, rng.below(span + 1) as i64);
        if is_weekday(date) {
            return date;
        }
    }
    weekday(from)
}

fn fy_index(fy: i32) -> usize {
    (fy - FIRST_FY).clamp(0, LAST_FY - FIRST_FY) as usize
}

fn text(value: &str) -> Result<Text, DemoError> {
    Ok(Text::parse(value)?)
}

fn fiscal_year(year: i32) -> Result<FiscalYear, DemoError> {
    Ok(FiscalYear::new(year)?)
}

fn grade(value: u8) -> Result<Grade, DemoError> {
    Ok(Grade::try_from(value)?)
}

fn code(value: &str) -> Result<Code, DemoError> {
    Ok(Code::parse(value)?)
}

/// The retirement age (定年) in force in a fiscal year: 60, raised by one year every two
/// years from FY2023 to 65 in FY2031.
fn retirement_age(fy: i32) -> i32 {
    match fy {
        ..=2022 => 60,
        2023 | 2024 => 61,
        2025 | 2026 => 62,
        2027 | 2028 => 63,
        2029 | 2030 => 64,
        _ => 65,
    }
}

/// The fiscal year whose April 1 ends the service of a regular employee born in `birth_fy`:
/// they retire at the end of the fiscal year in which they reach the retirement age then in
/// force (so nobody retires on 2024-04-01).
fn separation_fy(birth_fy: i32) -> i32 {
    (60..=65)
        .find(|age| *age >= retirement_age(birth_fy + age))
        .map_or(birth_fy + 66, |age| birth_fy + age + 1)
}

// ------------------------------------------------------------------------------------------
// The city's departments

const ADM: u8 = 1;
const TEC: u8 = 2;
const SPE: u8 = 4;
const OTH: u8 = 8;

struct Dept {
    name: &'static str,
    kind: DepartmentKind,
    /// Relative size; 0 for dispatch destinations.
    weight: u32,
    /// The job types that work here (bit mask).
    jobs: u8,
    dispatch: bool,
}

const fn unit(name: &'static str, kind: DepartmentKind, weight: u32, jobs: u8) -> Dept {
    Dept {
        name,
        kind,
        weight,
        jobs,
        dispatch: false,
    }
}

const fn destination(name: &'static str, kind: DepartmentKind) -> Dept {
    Dept {
        name,
        kind,
        weight: 0,
        jobs: 0,
        dispatch: true,
    }
}

use DepartmentKind::{Administration as ADMIN, FrontOffice as FRONT, Program as PROGRAM};

#[rustfmt::skip]
const UNITS: [Dept; 25] = [
    unit("市民課", FRONT, 60, ADM | OTH),
    unit("市民税課", FRONT, 40, ADM),
    unit("資産税課", FRONT, 30, ADM | TEC),
    unit("納税課", FRONT, 40, ADM),
    unit("保険年金課", FRONT, 50, ADM | SPE),
    unit("生活福祉課", FRONT, 45, ADM | SPE),
    unit("都市計画課", PROGRAM, 35, ADM | TEC),
    unit("道路整備課", PROGRAM, 50, ADM | TEC | OTH),
    unit("下水道課", PROGRAM, 35, ADM | TEC),
    unit("観光振興課", PROGRAM, 20, ADM),
    unit("農林振興課", PROGRAM, 25, ADM | TEC),
    unit("子育て支援課", PROGRAM, 60, ADM | SPE),
    unit("健康づくり課", PROGRAM, 45, ADM | SPE),
    unit("環境保全課", PROGRAM, 40, ADM | TEC | OTH),
    unit("学校教育課", PROGRAM, 40, ADM | SPE),
    unit("総務課", ADMIN, 35, ADM | OTH),
    unit("人事課", ADMIN, 20, ADM),
    unit("企画政策課", ADMIN, 25, ADM),
    unit("財政課", ADMIN, 20, ADM),
    unit("契約検査課", ADMIN, 15, ADM | TEC),
    unit("情報政策課", ADMIN, 20, ADM | TEC),
    destination("県総務部市町村課（派遣）", ADMIN),
    destination("国土交通省関東地方整備局（派遣）", PROGRAM),
    destination("後期高齢者医療広域連合（派遣）", FRONT),
    destination("県観光協会（派遣）", PROGRAM),
];
const HR_UNIT: usize = 16;
const PLANNING_UNIT: usize = 17;
const IT_UNIT: usize = 20;
const TAX_UNITS: [usize; 3] = [1, 2, 3];

fn job_mask(job: JobType) -> u8 {
    match job {
        JobType::Administrative => ADM,
        JobType::Technical => TEC,
        JobType::Specialist => SPE,
        JobType::Other => OTH,
    }
}

fn kind_index(kind: DepartmentKind) -> usize {
    match kind {
        DepartmentKind::FrontOffice => 0,
        DepartmentKind::Program => 1,
        DepartmentKind::Administration => 2,
    }
}

// ------------------------------------------------------------------------------------------
// Names

#[rustfmt::skip]
const SURNAMES: [(&str, &str); 60] = [
    ("佐藤", "サトウ"), ("鈴木", "スズキ"), ("高橋", "タカハシ"), ("田中", "タナカ"), ("伊藤", "イトウ"), ("渡辺", "ワタナベ"),
    ("山本", "ヤマモト"), ("中村", "ナカムラ"), ("小林", "コバヤシ"), ("加藤", "カトウ"), ("吉田", "ヨシダ"), ("山田", "ヤマダ"),
    ("佐々木", "ササキ"), ("山口", "ヤマグチ"), ("松本", "マツモト"), ("井上", "イノウエ"), ("木村", "キムラ"), ("林", "ハヤシ"),
    ("斎藤", "サイトウ"), ("清水", "シミズ"), ("山崎", "ヤマザキ"), ("森", "モリ"), ("池田", "イケダ"), ("橋本", "ハシモト"),
    ("阿部", "アベ"), ("石川", "イシカワ"), ("山下", "ヤマシタ"), ("中島", "ナカジマ"), ("石井", "イシイ"), ("小川", "オガワ"),
    ("前田", "マエダ"), ("岡田", "オカダ"), ("長谷川", "ハセガワ"), ("藤田", "フジタ"), ("後藤", "ゴトウ"), ("近藤", "コンドウ"),
    ("村上", "ムラカミ"), ("遠藤", "エンドウ"), ("青木", "アオキ"), ("坂本", "サカモト"), ("福田", "フクダ"), ("太田", "オオタ"),
    ("西村", "ニシムラ"), ("藤井", "フジイ"), ("金子", "カネコ"), ("岡本", "オカモト"), ("藤原", "フジワラ"), ("中野", "ナカノ"),
    ("三浦", "ミウラ"), ("原田", "ハラダ"), ("小野", "オノ"), ("田村", "タムラ"), ("和田", "ワダ"), ("石田", "イシダ"),
    ("内田", "ウチダ"), ("柴田", "シバタ"), ("髙橋", "タカハシ"), ("渡邉", "ワタナベ"), ("齋藤", "サイトウ"), ("山﨑", "ヤマザキ"),
];

#[rustfmt::skip]
const FEMALE_NAMES: [(&str, &str); 40] = [
    ("陽子", "ヨウコ"), ("恵子", "ケイコ"), ("京子", "キョウコ"), ("裕子", "ユウコ"), ("真由美", "マユミ"), ("直美", "ナオミ"),
    ("久美子", "クミコ"), ("智子", "トモコ"), ("美穂", "ミホ"), ("由美", "ユミ"), ("恵美", "エミ"), ("香織", "カオリ"),
    ("愛", "アイ"), ("彩", "アヤ"), ("美咲", "ミサキ"), ("麻衣", "マイ"), ("沙織", "サオリ"), ("優子", "ユウコ"),
    ("千尋", "チヒロ"), ("遥", "ハルカ"), ("結衣", "ユイ"), ("美月", "ミヅキ"), ("七海", "ナナミ"), ("葵", "アオイ"),
    ("陽菜", "ヒナ"), ("花子", "ハナコ"), ("明美", "アケミ"), ("幸子", "サチコ"), ("典子", "ノリコ"), ("亜希子", "アキコ"),
    ("綾香", "アヤカ"), ("瞳", "ヒトミ"), ("莉子", "リコ"), ("芽衣", "メイ"), ("さくら", "サクラ"), ("真理子", "マリコ"),
    ("美紀", "ミキ"), ("紀子", "ノリコ"), ("奈々", "ナナ"), ("友美", "トモミ"),
];

#[rustfmt::skip]
const MALE_NAMES: [(&str, &str); 40] = [
    ("誠", "マコト"), ("浩", "ヒロシ"), ("健一", "ケンイチ"), ("博之", "ヒロユキ"), ("和也", "カズヤ"), ("隆", "タカシ"),
    ("雅之", "マサユキ"), ("大輔", "ダイスケ"), ("拓也", "タクヤ"), ("翔太", "ショウタ"), ("健太", "ケンタ"), ("大樹", "ダイキ"),
    ("翔", "ショウ"), ("直樹", "ナオキ"), ("達也", "タツヤ"), ("亮", "リョウ"), ("悠斗", "ユウト"), ("蓮", "レン"),
    ("湊", "ミナト"), ("陸", "リク"), ("修", "オサム"), ("茂", "シゲル"), ("正人", "マサト"), ("秀樹", "ヒデキ"),
    ("淳", "ジュン"), ("剛", "ツヨシ"), ("智也", "トモヤ"), ("一郎", "イチロウ"), ("健二", "ケンジ"), ("康弘", "ヤスヒロ"),
    ("伸也", "シンヤ"), ("俊介", "シュンスケ"), ("悠真", "ユウマ"), ("颯太", "ソウタ"), ("陽翔", "ハルト"), ("拓海", "タクミ"),
    ("聡", "サトシ"), ("恭平", "キョウヘイ"), ("裕太", "ユウタ"), ("太郎", "タロウ"),
];

// ------------------------------------------------------------------------------------------
// The commands the simulation produces

/// A registration before its personal fields are sealed.
#[derive(Debug)]
struct NewStaff {
    id: Uuid,
    employee_no: EmployeeNo,
    name: String,
    kana: String,
    gender: Gender,
    hired_on: Date,
    grade: Grade,
    job_type: JobType,
    department: Text,
    department_kind: DepartmentKind,
    employment: Employment,
}

/// One command of the demo, with clear text where the ledger stores ciphertext and without
/// the lookups (`staff_registered` …) the application makes at execution time.
#[derive(Debug)]
enum Op {
    Register(Box<NewStaff>),
    Staff {
        id: Uuid,
        command: StaffCommand,
    },
    Interview {
        staff: Uuid,
        interview_id: Uuid,
        kind: InterviewKind,
        held_on: Date,
        interviewer: Uuid,
        note: String,
    },
    Evaluation {
        staff: Uuid,
        evaluation: Box<Evaluation>,
        comment: Option<String>,
    },
    Dispute {
        staff: Uuid,
        evaluation_id: Uuid,
        text: String,
    },
    ResolveDispute {
        staff: Uuid,
        evaluation_id: Uuid,
        outcome: String,
        reason: String,
    },
    Session {
        id: Uuid,
        command: SessionCommand,
    },
    Enrol {
        session: Uuid,
        staff: Uuid,
    },
    Attend {
        session: Uuid,
        staff: Uuid,
        completed_on: Date,
        understanding: Option<Understanding>,
    },
    Incident {
        id: Uuid,
        command: IncidentCommand,
    },
    Plan {
        code: &'static str,
        command: PlanCommand,
        reason: Option<String>,
    },
    Publish {
        code: &'static str,
        fiscal_year: FiscalYear,
        /// Why a year is published again.
        reason: Option<String>,
    },
}

/// Executes the demo's commands through the ledger, one request id per command.
struct Runner<'a> {
    ledger: &'a Ledger,
    requests: usize,
    /// Staff this load has registered (the projector is caught up only where needed).
    registered: HashSet<Uuid>,
    /// The business date of the command being executed.
    date: Option<Date>,
    /// The business date of every request so far, `dates[n]` for `demo-{n+1}`.
    dates: Vec<Date>,
}

impl Runner<'_> {
    /// Runs one demo command through the application layer, as HR would through the API.
    async fn execute(&mut self, op: Op) -> Result<(), DemoError> {
        if let Op::Publish { .. } = op {
            // Publication freezes the actuals as the read models compute them now.
            self.ledger.projector.catch_up().await?;
        }
        let registers = match &op {
            Op::Register(s) => Some(s.id),
            _ => None,
        };
        let command = command(op)?;
        self.requests += 1;
        let date = self
            .date
            .ok_or_else(|| DemoError::Scratch("a command without a business date".into()))?;
        self.dates.push(date);
        let principal = Principal {
            name: ACTOR.to_string(),
            role: Role::HrAdmin,
            staff_id: None,
        };
        let request_id = format!("demo-{:06}", self.requests);
        let actor = Actor {
            principal: &principal,
            request_id: &request_id,
            as_of: None,
            unconfirmed: None,
        };
        Service::loading(self.ledger, &self.registered)
            .record(&actor, command)
            .await
            .map_err(|source| DemoError::Command {
                request_id: request_id.clone(),
                source,
            })?;
        if let Some(id) = registers {
            self.registered.insert(id);
        }
        Ok(())
    }
}

/// The application command a demo step stands for.
fn command(op: Op) -> Result<Command, DemoError> {
    let with_reason = |reason: Option<String>| reason.as_deref().map(text).transpose();
    Ok(match op {
        Op::Register(s) => Command::Staff {
            staff_id: s.id,
            command: StaffRequest::Register(application::NewStaff {
                employee_no: s.employee_no,
                name: text(&s.name)?,
                name_kana: Some(text(&s.kana)?),
                gender: s.gender,
                hired_on: s.hired_on,
                grade: s.grade,
                job_type: s.job_type,
                employment: s.employment,
                department: s.department,
                department_kind: s.department_kind,
            }),
        },
        Op::Staff { id, command, .. } => Command::Staff {
            staff_id: id,
            command: StaffRequest::Other(command),
        },
        Op::Interview {
            staff,
            interview_id,
            kind,
            held_on,
            interviewer,
            note,
        } => Command::Staff {
            staff_id: staff,
            command: StaffRequest::RecordInterview {
                interview_id,
                kind,
                held_on,
                interviewer_id: interviewer,
                note: text(&note)?,
            },
        },
        Op::Evaluation {
            staff,
            evaluation,
            comment,
        } => Command::Staff {
            staff_id: staff,
            command: StaffRequest::RecordEvaluation {
                evaluation_id: evaluation.evaluation_id,
                fiscal_year: evaluation.fiscal_year,
                period: evaluation.period,
                evaluator_id: evaluation.evaluator_id,
                overall: evaluation.overall,
                competencies: evaluation.competencies,
                comment: comment.as_deref().map(text).transpose()?,
            },
        },
        Op::Dispute {
            staff,
            evaluation_id,
            text: dispute,
        } => Command::Staff {
            staff_id: staff,
            command: StaffRequest::Dispute {
                evaluation_id,
                text: text(&dispute)?,
            },
        },
        Op::ResolveDispute {
            staff,
            evaluation_id,
            outcome,
            reason,
        } => Command::Staff {
            staff_id: staff,
            command: StaffRequest::ResolveDispute {
                evaluation_id,
                outcome: text(&outcome)?,
                reason: text(&reason)?,
            },
        },
        Op::Session { id, command, .. } => Command::Session {
            session_id: id,
            command,
        },
        Op::Enrol { session, staff } => Command::Session {
            session_id: session,
            command: SessionCommand::Enrol {
                staff_id: staff,
                staff_registered: false,
            },
        },
        Op::Attend {
            session,
            staff,
            completed_on,
            understanding,
        } => Command::Session {
            session_id: session,
            command: SessionCommand::RecordAttendance {
                staff_id: staff,
                staff_registered: false,
                completed_on,
                understanding,
            },
        },
        Op::Incident { id, command, .. } => Command::Incident {
            incident_id: id,
            command,
        },
        Op::Plan {
            code: item,
            command,
            reason,
        } => Command::Plan {
            code: code(item)?,
            command,
            reason: with_reason(reason)?,
        },
        Op::Publish {
            code: item,
            fiscal_year,
            reason,
        } => Command::Plan {
            code: code(item)?,
            command: PlanCommand::Publish {
                fiscal_year,
                values: BTreeMap::new(),
                published_by: String::new(),
                reason: with_reason(reason)?,
                ledger_head: None,
            },
            reason: None,
        },
    })
}

// ------------------------------------------------------------------------------------------
// The simulation

#[derive(Debug, Clone)]
struct Person {
    id: Uuid,
    gender: Gender,
    birth_fy: i32,
    job: JobType,
    /// 0 (slow career) … 1 (fast career); also drives evaluations.
    merit: f64,
    /// Years of experience credited at hire (a prior career), negative for high-school hires.
    credit: f64,
    /// Years of experience at which grades 2, 3, 4 and 5 are reached.
    thresholds: [f64; 4],
    hired_on: Date,
    hire_fy: i32,
    employment: Employment,
    /// Periods of service `[start, end)`.
    periods: Vec<(Date, Option<Date>)>,
    grades: Vec<(Date, u8)>,
    units: Vec<(Date, usize)>,
    /// The fiscal year of the last move to another unit.
    unit_since: i32,
    /// The fiscal year of the April 1 that ends a dispatch.
    dispatch_until: Option<i32>,
    kinds_seen: [bool; 3],
}

impl Person {
    fn in_service(&self, date: Date) -> bool {
        self.periods
            .iter()
            .any(|(start, end)| dates::covers(*start, *end, date))
    }

    /// In service with no separation recorded yet.
    fn active(&self) -> bool {
        self.periods.last().is_some_and(|(_, end)| end.is_none())
    }

    /// The entry in effect on `date`: the latest effective date, ties to the later entry —
    /// the projections' rule.
    fn on<T: Copy>(entries: &[(Date, T)], date: Date) -> Option<T> {
        dates::in_force(entries, date, |e| e.0).map(|e| e.1)
    }

    fn grade_on(&self, date: Date) -> u8 {
        Self::on(&self.grades, date).unwrap_or(1)
    }

    fn unit_on(&self, date: Date) -> usize {
        Self::on(&self.units, date).unwrap_or(0)
    }

    fn grade(&self) -> u8 {
        self.grades.last().map_or(1, |g| g.1)
    }

    fn unit(&self) -> usize {
        self.units.last().map_or(0, |u| u.1)
    }

    fn dispatched_on(&self, date: Date) -> bool {
        UNITS
            .get(self.unit_on(date))
            .is_some_and(|unit| unit.dispatch)
    }

    fn age(&self, fy: i32) -> i32 {
        fy - self.birth_fy
    }

    fn experience(&self, fy: i32) -> f64 {
        f64::from(fy - self.hire_fy) + self.credit
    }

    fn is_regular(&self) -> bool {
        self.employment == Employment::Regular
    }
}

/// One planned completion of a session.
struct Planned {
    session: usize,
    person: usize,
    /// The date first entered (differs from `completed_on` when a typo is corrected later).
    entered_on: Date,
    completed_on: Date,
    understanding: Option<Understanding>,
    /// Enrolled beforehand (the waitlist course): completed with `Complete`.
    enrolled: bool,
    revoked: Option<(Date, &'static str)>,
    corrected: Option<(Date, Option<Date>, Option<Understanding>, &'static str)>,
}

struct SessionInfo {
    id: Uuid,
    starts_on: Date,
    ends_on: Date,
    delivery: Delivery,
    survey: bool,
}

/// A course as the training plan lists it.
#[derive(Clone, Copy)]
struct Course {
    code: &'static str,
    title: &'static str,
    category: TrainingCategory,
    provider: &'static str,
    delivery: Delivery,
}

const fn course(
    code: &'static str,
    title: &'static str,
    category: TrainingCategory,
    provider: &'static str,
    delivery: Delivery,
) -> Course {
    Course {
        code,
        title,
        category,
        provider,
        delivery,
    }
}

const IN_HOUSE: &str = "庁内";
const INSTITUTE: &str = "市町村職員研修所";
const ACADEMY: &str = "市町村アカデミー";

use Delivery::{ELearning as ELEARN, InPerson as ROOM, Remote as REMOTE};
use TrainingCategory::{
    Dispatch as DISPATCH, Ojt as OJT, SelfDevelopment as SELF, Special as SPECIAL,
    Specialized as SPECIALIZED, Tiered as TIERED,
};

/// An elective specialised course: filled with volunteers until the year's completions are
/// reached.
struct Elective {
    course: Course,
    month: u32,
    day: u32,
    days: i64,
    capacity: usize,
    grades: (u8, u8),
    tax_only: bool,
    from_fy: i32,
}

const fn elective(
    course: Course,
    (month, day, days): (u32, u32, i64),
    capacity: usize,
    grades: (u8, u8),
    tax_only: bool,
    from_fy: i32,
) -> Elective {
    Elective {
        course,
        month,
        day,
        days,
        capacity,
        grades,
        tax_only,
        from_fy,
    }
}

#[rustfmt::skip]
const ELECTIVES: [Elective; 17] = [
    elective(course("P101", "政策形成研修", SPECIALIZED, INSTITUTE, ROOM), (7, 6, 2), 30, (3, 5), false, 2021),
    elective(course("P102", "法制執務研修", SPECIALIZED, IN_HOUSE, ROOM), (6, 8, 1), 40, (2, 5), false, 2021),
    elective(course("P103", "文書事務研修", SPECIALIZED, IN_HOUSE, ROOM), (5, 18, 0), 40, (1, 3), false, 2021),
    elective(course("P104", "財務会計事務研修", SPECIALIZED, IN_HOUSE, ROOM), (5, 25, 0), 40, (1, 4), false, 2021),
    elective(course("P105", "契約事務研修", SPECIALIZED, INSTITUTE, ROOM), (7, 13, 1), 30, (2, 5), false, 2021),
    elective(course("P106", "接遇・クレーム対応研修", SPECIALIZED, INSTITUTE, ROOM), (6, 15, 0), 30, (1, 4), false, 2021),
    elective(course("P107", "プレゼンテーション研修", SPECIALIZED, INSTITUTE, ROOM), (10, 19, 1), 30, (2, 5), false, 2021),
    elective(course("P109", "ICT活用研修（業務効率化）", SPECIALIZED, IN_HOUSE, REMOTE), (6, 22, 0), 60, (1, 6), false, 2021),
    elective(course("P110", "データ活用・EBPM研修", SPECIALIZED, IN_HOUSE, REMOTE), (10, 5, 0), 40, (2, 6), false, 2021),
    elective(course("P111", "公会計研修", SPECIALIZED, INSTITUTE, ROOM), (3, 14, 1), 30, (2, 5), false, 2021),
    elective(course("P112", "債権管理研修", SPECIALIZED, INSTITUTE, ROOM), (8, 24, 1), 30, (2, 5), false, 2021),
    elective(course("P113", "税務研修（初任者）", SPECIALIZED, INSTITUTE, ROOM), (5, 11, 2), 30, (1, 3), true, 2021),
    elective(course("P114", "防災・危機管理研修", SPECIALIZED, IN_HOUSE, ROOM), (8, 31, 0), 50, (1, 8), false, 2021),
    elective(course("P115", "広報・情報発信研修", SPECIALIZED, INSTITUTE, ROOM), (11, 9, 0), 30, (2, 5), false, 2021),
    elective(course("P116", "メンタルヘルス（ラインケア）研修", SPECIALIZED, IN_HOUSE, REMOTE), (7, 27, 0), 60, (5, 8), false, 2021),
    elective(course("P117", "AI・RPA活用研修", SPECIALIZED, IN_HOUSE, REMOTE), (12, 6, 0), 50, (1, 6), false, 2023),
    elective(course("P118", "ファシリテーション研修（基礎）", SPECIALIZED, IN_HOUSE, ROOM), (1, 24, 0), 30, (2, 5), false, 2022),
];

const ACADEMY_COURSES: [&str; 8] = [
    "自治体の政策形成と評価",
    "税務事務の実務と徴収対策",
    "公共施設マネジメント",
    "自治体DXの推進",
    "地域共生社会の実現",
    "人事評価制度の運用",
    "財政分析と財政運営",
    "防災・危機管理",
];

struct City {
    rng: Rng,
    people: Vec<Person>,
    ops: Vec<(Date, Op)>,
    ids: u64,
    numbers: BTreeMap<i32, u32>,
    /// Staff on childcare or sick leave for a whole fiscal year.
    leave: BTreeMap<i32, BTreeSet<usize>>,
    sessions: Vec<SessionInfo>,
    planned: Vec<Planned>,
    /// New hire → mentor, for the year's mentor interviews.
    mentors: BTreeMap<usize, usize>,
    completions: usize,
    interviews: usize,
    evaluations: usize,
    incidents: usize,
    /// 会計年度任用職員 registered (outside the career simulation).
    appointees: usize,
}

impl City {
    fn simulate() -> Result<City, DemoError> {
        let mut city = City {
            rng: Rng(SEED),
            people: Vec::new(),
            ops: Vec::new(),
            ids: 0,
            numbers: BTreeMap::new(),
            leave: BTreeMap::new(),
            sessions: Vec::new(),
            planned: Vec::new(),
            mentors: BTreeMap::new(),
            completions: 0,
            interviews: 0,
            evaluations: 0,
            incidents: 0,
            appointees: 0,
        };
        city.plan_items()?;
        city.initial_population()?;
        for fy in FIRST_FY..=LAST_FY {
            city.april(fy)?;
            city.mid_year(fy)?;
            city.choose_leave(fy)?;
            city.trainings(fy)?;
            city.interviews(fy)?;
            city.evaluations(fy)?;
            city.incidents(fy)?;
        }
        city.fiscal_year_appointees()?;
        // The log in business-date order; same-day commands keep the order they were made in.
        city.ops.sort_by_key(|(date, _)| *date);
        Ok(city)
    }

    fn summary(&self) -> DemoSummary {
        DemoSummary {
            staff: self.people.len() + self.appointees,
            sessions: self.sessions.len(),
            completions: self.completions,
            interviews: self.interviews,
            evaluations: self.evaluations,
            incidents: self.incidents,
            plan_items: PLAN_CODES.len(),
            ..DemoSummary::default()
        }
    }

    /// 会計年度任用職員 (fiscal-year appointees) at the counters and in the childcare and
    /// health sections: appointed each April (a renewed appointment continues the same
    /// period of service here), grade 1, outside the careers the simulation plays. They are
    /// in the ledger so that profiles and lists tell them apart from regular staff.
    fn fiscal_year_appointees(&mut self) -> Result<(), DemoError> {
        // (unit, first fiscal year, how many)
        const PLACES: [(usize, i32, usize); 5] = [
            (0, 2021, 8),
            (4, 2021, 6),
            (11, 2021, 6),
            (12, 2022, 4),
            (0, 2024, 3),
        ];
        for (unit, fy, count) in PLACES {
            let hired_on = ymd(fy, 4, 1)?;
            for _ in 0..count {
                self.appointees += 1;
                let female = self.rng.chance(0.7);
                let (surname, surname_kana) =
                    self.rng.pick(&SURNAMES).unwrap_or(("山田", "ヤマダ"));
                let given_names: &[(&str, &str)] = if female { &FEMALE_NAMES } else { &MALE_NAMES };
                let (given, given_kana) = self.rng.pick(given_names).unwrap_or(("花子", "ハナコ"));
                let employee_no = EmployeeNo::parse(&format!("K{fy}{:03}", self.appointees))?;
                let registration = NewStaff {
                    id: staff_id_of(&employee_no),
                    employee_no,
                    name: format!("{surname} {given}"),
                    kana: format!("{surname_kana} {given_kana}"),
                    gender: if female { Gender::Female } else { Gender::Male },
                    hired_on,
                    grade: grade(1)?,
                    job_type: JobType::Other,
                    department: text(UNITS[unit].name)?,
                    department_kind: UNITS[unit].kind,
                    employment: Employment::FiscalYearAppointed,
                };
                self.push(hired_on, Op::Register(Box::new(registration)));
            }
        }
        Ok(())
    }

    fn next_id(&mut self, kind: &str) -> Uuid {
        self.ids += 1;
        Uuid::new_v5(&DEMO_NAMESPACE, format!("{kind}-{}", self.ids).as_bytes())
    }

    fn push(&mut self, date: Date, op: Op) {
        self.ops.push((date, op));
    }

    fn staff_op(&mut self, date: Date, person: usize, command: StaffCommand) {
        let id = self.people[person].id;
        self.push(date, Op::Staff { id, command });
    }

    fn on_leave(&self, fy: i32, person: usize) -> bool {
        self.leave.get(&fy).is_some_and(|set| set.contains(&person))
    }

    /// Staff in service on `date`, at work (not on leave that year, not dispatched) and
    /// passing `filter`, in index order.
    fn at_work(&self, fy: i32, date: Date, filter: impl Fn(&Person) -> bool) -> Vec<usize> {
        self.people
            .iter()
            .enumerate()
            .filter(|(i, p)| {
                p.in_service(date) && !p.dispatched_on(date) && !self.on_leave(fy, *i) && filter(p)
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Staff with an open period of service (on the April 1 being processed).
    fn active(&self, filter: impl Fn(&Person) -> bool) -> Vec<usize> {
        self.people
            .iter()
            .enumerate()
            .filter(|(_, p)| p.active() && filter(p))
            .map(|(i, _)| i)
            .collect()
    }

    fn sample(&mut self, mut pool: Vec<usize>, n: usize) -> Vec<usize> {
        self.rng.shuffle(&mut pool);
        pool.truncate(n);
        pool.sort_unstable();
        pool
    }

    // --------------------------------------------------------------------------------------
    // People

    fn employee_no(&mut self, hire_year: i32) -> Result<EmployeeNo, DemoError> {
        let seq = self.numbers.entry(hire_year).or_insert(0);
        *seq += 1;
        Ok(EmployeeNo::parse(&format!("{hire_year}{:03}", *seq))?)
    }

    fn thresholds(&mut self, merit: f64) -> [f64; 4] {
        let slow = 1.0 - merit;
        let t2 = 3.0 + 2.0 * slow + self.rng.unit() * 0.5;
        let t3 = t2 + 4.0 + 2.0 * slow;
        let t4 = t3 + 4.0 + 2.5 * slow;
        // 係長 is a selection: the slower part of a cohort stays 主査.
        let t5 = if merit < 0.4 {
            NEVER
        } else {
            t4 + 4.0 + 3.0 * slow
        };
        [t2, t3, t4, t5]
    }

    fn job_type(&mut self) -> JobType {
        let r = self.rng.unit();
        if r < 0.74 {
            JobType::Administrative
        } else if r < 0.91 {
            JobType::Technical
        } else if r < 0.985 {
            JobType::Specialist
        } else {
            JobType::Other
        }
    }

    /// A unit for a person: another one than their current unit when `moving`; early in a
    /// career preferably one of a department kind not served yet (job rotation across
    /// 窓口・事業・管理 in the first ten years).
    fn choose_unit(&mut self, person: usize, fy: i32, moving: bool, new_hire: bool) -> usize {
        let p = &self.people[person];
        let mask = job_mask(p.job);
        let current = p.unit();
        let early = fy - p.hire_fy < 10;
        let seen = p.kinds_seen;
        let allowed: Vec<usize> = UNITS
            .iter()
            .enumerate()
            .filter(|(i, u)| !u.dispatch && u.jobs & mask != 0 && !(moving && *i == current))
            .map(|(i, _)| i)
            .collect();
        let unseen: Vec<usize> = allowed
            .iter()
            .copied()
            .filter(|i| !seen[kind_index(UNITS[*i].kind)])
            .collect();
        let choices = if moving && early && !unseen.is_empty() && self.rng.chance(0.8) {
            unseen
        } else {
            allowed
        };
        let weights: Vec<u32> = choices
            .iter()
            .map(|i| {
                let u = &UNITS[*i];
                // New administrative hires start at the counters more often than not.
                if new_hire && mask == ADM && u.kind == DepartmentKind::FrontOffice {
                    u.weight * 2
                } else {
                    u.weight
                }
            })
            .collect();
        self.rng
            .weighted(&weights)
            .and_then(|i| choices.get(i).copied())
            .unwrap_or(current)
    }

    /// A person hired on `hired_on` at `hire_age`, registered with grade `start_grade`.
    fn hire(
        &mut self,
        birth_fy: i32,
        hired_on: Date,
        female: bool,
        job: JobType,
    ) -> Result<usize, DemoError> {
        let hire_fy = FiscalYear::of(hired_on).year();
        let hire_age = hire_fy - birth_fy;
        let credit = if hire_age >= 25 {
            f64::from(hire_age - 22) * 0.5
        } else if hire_age <= 19 {
            -2.0
        } else {
            0.0
        };
        let merit = self.rng.unit();
        let thresholds = self.thresholds(merit);
        let start_grade: u8 = if hire_age >= 28 { 2 } else { 1 };
        let gender = if female { Gender::Female } else { Gender::Male };
        let (surname, surname_kana) = self.rng.pick(&SURNAMES).unwrap_or(("山田", "ヤマダ"));
        let given_names: &[(&str, &str)] = if female { &FEMALE_NAMES } else { &MALE_NAMES };
        let (given, given_kana) = self.rng.pick(given_names).unwrap_or(("花子", "ハナコ"));
        let employee_no = self.employee_no(hired_on.year())?;
        let id = staff_id_of(&employee_no);
        let index = self.people.len();
        self.people.push(Person {
            id,
            gender,
            birth_fy,
            job,
            merit,
            credit,
            thresholds,
            hired_on,
            hire_fy,
            employment: Employment::Regular,
            periods: vec![(hired_on, None)],
            grades: vec![(hired_on, start_grade)],
            units: Vec::new(),
            unit_since: hire_fy,
            dispatch_until: None,
            kinds_seen: [false; 3],
        });
        let first_unit = self.choose_unit(index, hire_fy, false, true);
        let person = &mut self.people[index];
        person.units.push((hired_on, first_unit));
        person.kinds_seen[kind_index(UNITS[first_unit].kind)] = true;
        let registration = NewStaff {
            id,
            employee_no,
            name: format!("{surname} {given}"),
            kana: format!("{surname_kana} {given_kana}"),
            gender,
            hired_on,
            grade: grade(start_grade)?,
            job_type: job,
            department: text(UNITS[first_unit].name)?,
            department_kind: UNITS[first_unit].kind,
            employment: Employment::Regular,
        };
        self.push(hired_on, Op::Register(Box::new(registration)));
        Ok(index)
    }

    fn change_grade(
        &mut self,
        person: usize,
        date: Date,
        to: u8,
        reason: GradeChangeReason,
    ) -> Result<(), DemoError> {
        self.people[person].grades.push((date, to));
        let command = StaffCommand::ChangeGrade {
            grade: grade(to)?,
            effective_on: date,
            reason,
        };
        self.staff_op(date, person, command);
        Ok(())
    }

    fn transfer(
        &mut self,
        person: usize,
        date: Date,
        to: usize,
        kind: TransferKind,
    ) -> Result<(), DemoError> {
        let unit = &UNITS[to];
        let p = &mut self.people[person];
        p.units.push((date, to));
        p.kinds_seen[kind_index(unit.kind)] = true;
        if kind != TransferKind::Internship {
            p.unit_since = FiscalYear::of(date).year();
        }
        let command = StaffCommand::Transfer {
            to_department: text(unit.name)?,
            department_kind: unit.kind,
            effective_on: date,
            kind,
        };
        self.staff_op(date, person, command);
        Ok(())
    }

    fn separate(&mut self, person: usize, date: Date, reason: SeparationReason) {
        if let Some(period) = self.people[person].periods.last_mut() {
            period.1 = Some(date);
        }
        let command = StaffCommand::Separate {
            effective_on: date,
            reason,
        };
        self.staff_op(date, person, command);
    }

    fn rehire(&mut self, person: usize, date: Date, to_grade: u8) -> Result<(), DemoError> {
        let fy = FiscalYear::of(date).year();
        let to = self.choose_unit(person, fy, false, false);
        let unit = &UNITS[to];
        let p = &mut self.people[person];
        p.periods.push((date, None));
        p.grades.push((date, to_grade));
        p.units.push((date, to));
        p.unit_since = fy;
        p.employment = Employment::Reappointed;
        p.kinds_seen[kind_index(unit.kind)] = true;
        let command = StaffCommand::Rehire(Rehire {
            effective_on: date,
            grade: grade(to_grade)?,
            department: text(unit.name)?,
            department_kind: unit.kind,
            employment: Employment::Reappointed,
        });
        self.staff_op(date, person, command);
        Ok(())
    }

    /// The staff in service on 2021-03-31, hired from 1982 on, with their careers: grades
    /// by seniority, a rotation every three to five years, 96 managers.
    fn initial_population(&mut self) -> Result<(), DemoError> {
        for (first, last, per_year) in COHORTS {
            for birth_fy in first..=last {
                for _ in 0..per_year {
                    self.initial_person(birth_fy)?;
                }
            }
        }
        self.initial_managers()?;
        // Three staff were dispatched on 2020-04-01 and return on 2022-04-01.
        let start = ymd(2020, 4, 1)?;
        let pool = self.active(|p| {
            matches!(p.job, JobType::Administrative | JobType::Technical)
                && (3..=4).contains(&p.grade())
                && (28..=40).contains(&p.age(2020))
                && p.unit_since <= 2018
        });
        let chosen = self.sample(pool, 3);
        for (n, person) in chosen.into_iter().enumerate() {
            let to = 21 + n % 4;
            self.transfer(person, start, to, TransferKind::Dispatch)?;
            self.people[person].dispatch_until = Some(2022);
        }
        Ok(())
    }

    fn initial_person(&mut self, birth_fy: i32) -> Result<(), DemoError> {
        let r = self.rng.unit();
        let mut hire_age = if r < 0.12 {
            18
        } else if r < 0.72 {
            22
        } else if r < 0.82 {
            self.rng.between(23, 24)
        } else {
            self.rng.between(25, 35)
        };
        let latest = 2020 - birth_fy;
        if hire_age > latest {
            hire_age = if latest >= 22 { 22 } else { 18 };
        }
        let hire_year = (birth_fy + hire_age).max(1982);
        let mid_career = hire_year - birth_fy >= 25;
        let hired_on = if mid_career && self.rng.chance(0.25) {
            ymd(hire_year, 10, 1)?
        } else {
            ymd(hire_year, 4, 1)?
        };
        let p_female = 0.25 + f64::from(hire_year - 1982) * 0.006;
        let female = self.rng.chance(p_female);
        let job = self.job_type();
        let person = self.hire(birth_fy, hired_on, female, job)?;
        // Grades 2–5 by experience, and a move every three to five years, up to 2020.
        let hire_fy = self.people[person].hire_fy;
        let mut events: Vec<(i32, Option<u8>)> = Vec::new();
        let start_grade = self.people[person].grade();
        let credit = self.people[person].credit;
        for (k, threshold) in self.people[person].thresholds.iter().enumerate() {
            let to = k as u8 + 2;
            let fy = hire_fy + ((threshold - credit).ceil() as i32).max(1);
            if to > start_grade && fy <= 2020 {
                events.push((fy, Some(to)));
            }
        }
        let mut fy = hire_fy + self.rng.between(3, 4);
        while fy <= 2020 {
            events.push((fy, None));
            fy += self.rng.between(3, 5);
        }
        events.sort_by_key(|(fy, grade)| (*fy, grade.is_none()));
        for (fy, change) in events {
            let date = ymd(fy, 4, 1)?;
            match change {
                Some(to) => self.change_grade(person, date, to, GradeChangeReason::Promotion)?,
                None => {
                    let to = self.choose_unit(person, fy, true, false);
                    self.transfer(person, date, to, TransferKind::Regular)?;
                }
            }
        }
        Ok(())
    }

    /// The managers of FY2020: 96 staff of grade 6 and above (14 women), 18 of them 部長級
    /// (7) and 4 of those 8級.
    fn initial_managers(&mut self) -> Result<(), DemoError> {
        let end = ymd(2021, 3, 31)?;
        let eligible = |p: &Person| {
            p.active()
                && p.job != JobType::Other
                && p.grade_on(end) == 5
                && p.age(2020) >= 46
                && p.grades.last().is_some_and(|(d, _)| d.year() <= 2018)
        };
        let mut candidates: Vec<usize> = self.active(eligible);
        candidates.sort_by(|a, b| self.people[*b].merit.total_cmp(&self.people[*a].merit));
        let total = MANAGERS[0];
        let women: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|i| self.people[*i].gender == Gender::Female)
            .take(INITIAL_WOMEN_MANAGERS)
            .collect();
        let men: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|i| self.people[*i].gender != Gender::Female)
            .take(total - women.len())
            .collect();
        let mut managers: Vec<usize> = women.into_iter().chain(men).collect();
        managers.sort_by(|a, b| self.people[*b].merit.total_cmp(&self.people[*a].merit));
        let mut directors = 0;
        let mut executives = 0;
        for person in managers {
            let p = &self.people[person];
            let (b, merit) = (p.birth_fy, p.merit);
            let f5 = p.grades.last().map_or(2018, |(d, _)| d.year());
            let mut top = 6;
            if directors < DIRECTORS && p.age(2020) >= 53 {
                directors += 1;
                top = 7;
                if executives < EXECUTIVES && p.age(2020) >= 56 {
                    executives += 1;
                    top = 8;
                }
            }
            let p6 = (f5 + 2).max(b + 47 - (2.0 * merit).round() as i32);
            let p7 = (p6 + 3).max(b + 54);
            let p8 = (p7 + 2).max(b + 57);
            let mut steps: Vec<(i32, u8)> = [(p6, 6u8), (p7, 7), (p8, 8)]
                .into_iter()
                .filter(|(_, g)| *g <= top)
                .collect();
            // Squeeze the steps into f5+1 ..= 2020, dropping a step that would share a year.
            let mut latest = 2020;
            for step in steps.iter_mut().rev() {
                step.0 = step.0.min(latest).max(f5 + 1);
                latest = step.0 - 1;
            }
            steps.dedup_by(|later, earlier| {
                if later.0 <= earlier.0 {
                    *earlier = *later;
                    true
                } else {
                    false
                }
            });
            for (fy, to) in steps {
                let date = ymd(fy.min(2020), 4, 1)?;
                self.change_grade(person, date, to, GradeChangeReason::Promotion)?;
            }
        }
        Ok(())
    }

    // --------------------------------------------------------------------------------------
    // April 1

    fn april(&mut self, fy: i32) -> Result<(), DemoError> {
        let d = ymd(fy, 4, 1)?;
        let i = fy_index(fy);

        // Retirements (定年), the end of reappointments, resignations.
        let retiring = self.active(|p| p.is_regular() && separation_fy(p.birth_fy) == fy);
        for person in &retiring {
            self.separate(*person, d, SeparationReason::Retirement);
        }
        let reappointed = self.active(|p| p.employment == Employment::Reappointed);
        for person in reappointed {
            if self.rng.chance(0.3) {
                self.separate(person, d, SeparationReason::Other);
            }
        }
        let resigning = self.active(|p| {
            p.is_regular() && p.age(fy - 1) < 50 && p.grade() <= 5 && p.dispatch_until.is_none()
        });
        for person in resigning {
            let p = if self.people[person].age(fy - 1) < 35 {
                0.016
            } else {
                0.007
            };
            if self.rng.chance(p) {
                self.separate(person, d, SeparationReason::Resignation);
            }
        }
        // About a third of the retirees come back as 再任用 the same day.
        for person in retiring {
            if self.rng.chance(0.3) {
                let was_manager = self.people[person].grade() >= 6;
                self.rehire(person, d, if was_manager { 4 } else { 3 })?;
            }
        }

        // Returns from dispatch.
        let returning = self.active(|p| p.dispatch_until == Some(fy));
        for person in &returning {
            self.people[*person].dispatch_until = None;
            let to = self.choose_unit(*person, fy, true, false);
            self.transfer(*person, d, to, TransferKind::Return)?;
        }

        // 役職定年: managers who reached 60 last year step down to grade 5 (from FY2024,
        // when the retirement age first keeps them in service past 60).
        let stepping_down = self.active(|p| p.grade() >= 6 && p.age(fy - 1) >= 60);
        for person in stepping_down {
            self.change_grade(person, d, 5, GradeChangeReason::Other)?;
        }

        let promoted = self.appoint_managers(fy, MANAGERS[i], WOMEN_MANAGERS[i])?;

        // Promotions by experience: 主事 → 主任 → 主査 → 係長.
        let due = self.active(|p| {
            p.is_regular()
                && (1..=4).contains(&p.grade())
                && p.experience(fy) >= p.thresholds[usize::from(p.grade()) - 1]
        });
        for person in due {
            let to = self.people[person].grade() + 1;
            self.change_grade(person, d, to, GradeChangeReason::Promotion)?;
        }

        // Rotation.
        let mut moved: BTreeSet<usize> = returning.into_iter().collect();
        let candidates = self.active(|p| {
            p.dispatch_until.is_none() && p.unit_since < fy && !UNITS[p.unit()].dispatch
        });
        for person in candidates {
            let p = &self.people[person];
            let years = fy - p.unit_since;
            let mut chance: f64 = match years {
                ..=2 => 0.0,
                3 => 0.3,
                4 => 0.5,
                _ => 0.75,
            };
            if promoted.contains(&person) {
                chance = chance.max(0.4);
            }
            if self.rng.chance(chance) {
                let to = self.choose_unit(person, fy, true, false);
                self.transfer(person, d, to, TransferKind::Regular)?;
                moved.insert(person);
            }
        }

        // Dispatch to the prefecture, the state and regional bodies for two years.
        let count = if fy % 2 == 0 { 3 } else { 2 };
        let pool = self.active(|p| {
            p.is_regular()
                && matches!(p.job, JobType::Administrative | JobType::Technical)
                && (3..=4).contains(&p.grade())
                && (27..=40).contains(&p.age(fy))
                && p.dispatch_until.is_none()
                && p.unit_since < fy
        });
        let pool: Vec<usize> = pool.into_iter().filter(|p| !moved.contains(p)).collect();
        for person in self.sample(pool, count) {
            let to = 21 + self.rng.below(4);
            self.transfer(person, d, to, TransferKind::Dispatch)?;
            self.people[person].dispatch_until = Some(fy + 2);
            moved.insert(person);
        }

        self.cover_departments(d, &moved)?;

        // New hires.
        let in_service = self.active(|_| true).len();
        let hires = HEADCOUNT[i].saturating_sub(in_service).clamp(25, 42);
        for _ in 0..hires {
            let r = self.rng.unit();
            let hire_age = if r < 0.1 {
                18
            } else if r < 0.75 {
                22
            } else if r < 0.85 {
                self.rng.between(23, 24)
            } else {
                self.rng.between(25, 35)
            };
            let female = self.rng.chance(0.5);
            let job = self.job_type();
            self.hire(fy - hire_age, d, female, job)?;
        }
        Ok(())
    }

    /// Fills 8級, 7級 and the management posts on April 1, choosing women for as many of the
    /// new 6級 posts as the year's target needs. Returns the promoted staff.
    fn appoint_managers(
        &mut self,
        fy: i32,
        total: usize,
        women_target: usize,
    ) -> Result<BTreeSet<usize>, DemoError> {
        let d = ymd(fy, 4, 1)?;
        let mut promoted = BTreeSet::new();
        let by_merit = |city: &City, mut list: Vec<usize>| {
            list.sort_by(|a, b| city.people[*b].merit.total_cmp(&city.people[*a].merit));
            list
        };
        for (to, target, min_age) in [(8u8, EXECUTIVES, 56), (7, DIRECTORS, 52)] {
            let holding = self.active(|p| p.grade() == to).len();
            let pool = self.active(|p| {
                p.is_regular() && p.grade() == to - 1 && p.age(fy) >= min_age && p.age(fy) < 60
            });
            for person in by_merit(self, pool)
                .into_iter()
                .take(target.saturating_sub(holding))
            {
                self.change_grade(person, d, to, GradeChangeReason::Promotion)?;
                promoted.insert(person);
            }
        }
        let managers = self.active(|p| p.grade() >= 6);
        let women = managers
            .iter()
            .filter(|i| self.people[**i].gender == Gender::Female)
            .count();
        let need = total.saturating_sub(managers.len());
        let women_needed = women_target.saturating_sub(women).min(need);
        let pool = self.active(|p| {
            p.is_regular()
                && p.job != JobType::Other
                && p.grade() == 5
                && (44..60).contains(&p.age(fy))
                && p.dispatch_until.is_none()
        });
        let pool = by_merit(self, pool);
        let (mut women_pool, mut men_pool): (Vec<usize>, Vec<usize>) = pool
            .into_iter()
            .partition(|i| self.people[*i].gender == Gender::Female);
        women_pool.truncate(women_needed);
        let shortfall = women_needed - women_pool.len();
        men_pool.truncate(need - women_needed + shortfall);
        for person in women_pool.into_iter().chain(men_pool) {
            self.change_grade(person, d, 6, GradeChangeReason::Promotion)?;
            promoted.insert(person);
        }
        Ok(promoted)
    }

    /// Every department keeps at least one manager (for its interviews and evaluations): a
    /// department left without one receives a 6級 from the department with the most.
    fn cover_departments(&mut self, d: Date, moved: &BTreeSet<usize>) -> Result<(), DemoError> {
        for (target, unit) in UNITS.iter().enumerate() {
            if unit.dispatch {
                continue;
            }
            let managers_in =
                |city: &City, unit: usize| city.active(|p| p.grade() >= 6 && p.unit() == unit);
            if !managers_in(self, target).is_empty() {
                continue;
            }
            let donor = (0..UNITS.len())
                .filter(|u| !UNITS[*u].dispatch && *u != target)
                .max_by_key(|u| (managers_in(self, *u).len(), usize::MAX - u));
            let Some(donor) = donor else { continue };
            let donors: Vec<usize> = managers_in(self, donor)
                .into_iter()
                .filter(|p| self.people[*p].grade() == 6)
                .collect();
            if donors.len() < 2 {
                continue;
            }
            let person = donors
                .iter()
                .copied()
                .find(|p| !moved.contains(p))
                .or_else(|| donors.first().copied());
            if let Some(person) = person {
                self.transfer(person, d, target, TransferKind::Regular)?;
            }
        }
        Ok(())
    }

    /// October: two mid-career hires (土木技師, 保健師 …), one or two resignations, and from
    /// FY2023 two in-house internships (庁内インターン) in August.
    fn mid_year(&mut self, fy: i32) -> Result<(), DemoError> {
        let october = ymd(fy, 10, 1)?;
        for n in 0..2 {
            let job = if n == 0 {
                JobType::Technical
            } else {
                JobType::Specialist
            };
            let age = self.rng.between(27, 38);
            let female = self.rng.chance(if n == 0 { 0.3 } else { 0.8 });
            self.hire(fy - age, october, female, job)?;
        }
        let pool =
            self.active(|p| p.is_regular() && p.grade() <= 3 && p.age(fy) < 35 && p.hire_fy < fy);
        let count = 1 + self.rng.below(2);
        for person in self.sample(pool, count) {
            self.separate(person, october, SeparationReason::Resignation);
        }
        if fy >= 2023 {
            let (start, back) = (ymd(fy, 8, 1)?, ymd(fy, 9, 1)?);
            let pool = self.active(|p| {
                p.is_regular()
                    && (2..=3).contains(&p.grade())
                    && !UNITS[p.unit()].dispatch
                    && p.unit() != PLANNING_UNIT
                    && p.unit() != IT_UNIT
                    && p.in_service(back)
            });
            for (n, person) in self.sample(pool, 2).into_iter().enumerate() {
                let home = self.people[person].unit();
                let host = if n == 0 { PLANNING_UNIT } else { IT_UNIT };
                self.transfer(person, start, host, TransferKind::Internship)?;
                self.transfer(person, back, home, TransferKind::Regular)?;
                // Back home: the internship does not restart the rotation clock.
                self.people[person].unit_since = fy - 1;
            }
        }
        Ok(())
    }

    /// Childcare and sick leave for the whole year: no training, no interviews, no evaluation.
    fn choose_leave(&mut self, fy: i32) -> Result<(), DemoError> {
        let d = ymd(fy, 4, 1)?;
        let mut on_leave = BTreeSet::new();
        let staff = self.at_work(fy, d, |_| true);
        for person in staff {
            let p = &self.people[person];
            let young = (25..=40).contains(&p.age(fy));
            let chance = 0.004
                + match (young, p.gender) {
                    (true, Gender::Female) => 0.05,
                    (true, _) => 0.008,
                    _ => 0.0,
                };
            if p.hired_on < d && self.rng.chance(chance) {
                on_leave.insert(person);
            }
        }
        self.leave.insert(fy, on_leave);
        Ok(())
    }

    // --------------------------------------------------------------------------------------
    // Training

    fn open_session(
        &mut self,
        course: &Course,
        starts_on: Date,
        ends_on: Date,
        capacity: usize,
        label: Option<&str>,
    ) -> Result<usize, DemoError> {
        let id = self.next_id("session");
        let title = match label {
            Some(label) => format!("{}（{label}）", course.title),
            None => course.title.to_string(),
        };
        let schedule = Schedule {
            course_code: text(course.code)?,
            title: text(&title)?,
            category: course.category,
            provider: text(course.provider)?,
            delivery: course.delivery,
            starts_on,
            ends_on,
            capacity: u32::try_from(capacity.max(1)).unwrap_or(u32::MAX),
        };
        self.push(
            plus(starts_on, -21),
            Op::Session {
                id,
                command: SessionCommand::Schedule(schedule),
            },
        );
        self.sessions.push(SessionInfo {
            id,
            starts_on,
            ends_on,
            delivery: course.delivery,
            survey: !matches!(course.category, DISPATCH | SELF),
        });
        Ok(self.sessions.len() - 1)
    }

    /// Plans the completions of `people` in `session`: on the last day, or for e-learning on a
    /// weekday of the period when the person is in service (nobody who is not).
    fn complete_all(&mut self, session: usize, people: &[usize]) {
        let (starts_on, ends_on, delivery) = {
            let s = &self.sessions[session];
            (s.starts_on, s.ends_on, s.delivery)
        };
        for &person in people {
            let day = if delivery == Delivery::ELearning {
                self.e_learning_day(person, starts_on, ends_on)
            } else {
                Some(ends_on)
            };
            let Some(day) = day.filter(|d| self.people[person].in_service(*d)) else {
                continue;
            };
            self.planned.push(Planned {
                session,
                person,
                entered_on: day,
                completed_on: day,
                understanding: None,
                enrolled: false,
                revoked: None,
                corrected: None,
            });
        }
    }

    /// A random weekday of `from..=to` on which the person is in service, if there is one.
    fn e_learning_day(&mut self, person: usize, from: Date, to: Date) -> Option<Date> {
        let p = &self.people[person];
        let serving: Vec<Date> = from
            .iter_days()
            .take_while(|d| *d <= to)
            .filter(|d| is_weekday(*d) && p.in_service(*d))
            .collect();
        self.rng.pick(&serving)
    }

    /// A session of `course` from `starts_on` for `days` more days with these attendees.
    fn run_session(
        &mut self,
        course: &Course,
        starts_on: Date,
        days: i64,
        capacity: usize,
        attendees: &[usize],
    ) -> Result<usize, DemoError> {
        let starts_on = weekday(starts_on);
        let ends_on = weekday(plus(starts_on, days));
        let session = self.open_session(
            course,
            starts_on,
            ends_on,
            capacity.max(attendees.len()),
            None,
        )?;
        self.complete_all(session, attendees);
        Ok(session)
    }

    /// Keeps each of `people` with probability `rate`.
    fn attending(&mut self, people: Vec<usize>, rate: f64) -> Vec<usize> {
        people
            .into_iter()
            .filter(|_| self.rng.chance(rate))
            .collect()
    }

    /// Promoted to grade `to` on `d` (not stepped down to it).
    fn promoted_to(d: Date, to: u8) -> impl Fn(&Person) -> bool {
        move |p: &Person| {
            p.grades.iter().any(|(date, g)| *date == d && *g == to)
                && p.grades
                    .iter()
                    .rfind(|(date, _)| *date < d)
                    .is_some_and(|(_, g)| *g < to)
        }
    }

    fn trainings(&mut self, fy: i32) -> Result<(), DemoError> {
        self.planned.clear();
        self.mentors.clear();
        let d = ymd(fy, 4, 1)?;
        let next = fy + 1;
        let covid = fy == 2021;
        let at_unit = |delivery: Delivery| if covid { REMOTE } else { delivery };

        // 階層別研修.
        let april_hires = self.at_work(fy, d, |p| p.hired_on == d);
        let c = course("T101", "新規採用職員研修（前期）", TIERED, IN_HOUSE, ROOM);
        self.run_session(&c, ymd(fy, 4, 2)?, 3, 45, &april_hires)?;
        let c = course(
            "T102",
            "新規採用職員研修（研修所）",
            TIERED,
            INSTITUTE,
            at_unit(ROOM),
        );
        let hires = self.at_work(fy, ymd(fy, 5, 17)?, |p| p.hired_on == d);
        self.run_session(&c, ymd(fy, 5, 17)?, 2, 45, &hires)?;
        let hired_this_year = self.at_work(fy, ymd(fy, 10, 14)?, |p| p.hire_fy == fy);
        let c = course("T103", "新規採用職員研修（後期）", TIERED, IN_HOUSE, ROOM);
        self.run_session(&c, ymd(fy, 10, 14)?, 1, 45, &hired_this_year)?;
        let second = self.at_work(fy, ymd(fy, 7, 8)?, |p| p.hire_fy == fy - 1);
        let second = self.attending(second, 0.97);
        let c = course(
            "T201",
            "採用2年目職員フォローアップ研修",
            TIERED,
            IN_HOUSE,
            ROOM,
        );
        self.run_session(&c, ymd(fy, 7, 8)?, 0, 45, &second)?;
        let third = self.at_work(fy, ymd(fy, 9, 9)?, |p| p.hire_fy == fy - 2);
        let third = self.attending(third, 0.96);
        let c = course(
            "T202",
            "若手職員スキルアップ研修（3年目）",
            TIERED,
            IN_HOUSE,
            ROOM,
        );
        self.run_session(&c, ymd(fy, 9, 9)?, 1, 45, &third)?;
        let tiers = [
            ("T301", "主任級研修", 3u8, (6, 15)),
            ("T401", "主査級研修（中堅職員研修）", 4, (7, 20)),
            ("T501", "係長級研修（監督者研修）", 5, (6, 1)),
            ("T601", "新任管理職研修（管理者研修）", 6, (5, 24)),
        ];
        for (code, title, to, (m, day)) in tiers {
            let on = ymd(fy, m, day)?;
            let filter = Self::promoted_to(d, to);
            let newly = self.at_work(fy, on, filter);
            let c = course(code, title, TIERED, INSTITUTE, at_unit(ROOM));
            self.run_session(&c, on, 2, 40, &newly)?;
        }
        let managers = self.at_work(fy, ymd(fy, 11, 10)?, |p| p.grade() >= 6);
        let managers = self.attending(managers, 0.93);
        let half = managers.len() / 2;
        let c = course("T602", "管理職マネジメント研修", TIERED, IN_HOUSE, ROOM);
        self.run_session(&c, ymd(fy, 11, 10)?, 0, 60, &managers[..half])?;
        let c = course("T602", "管理職マネジメント研修", TIERED, IN_HOUSE, REMOTE);
        self.run_session(&c, ymd(fy, 11, 17)?, 0, 60, &managers[half..])?;
        let evaluators = self.at_work(fy, ymd(fy, 9, 1)?, |p| p.grade() >= 6);
        let evaluators = self.attending(evaluators, 0.88);
        let c = course("T603", "人事評価者研修", TIERED, IN_HOUSE, ELEARN);
        let session =
            self.open_session(&c, ymd(fy, 9, 1)?, ymd(fy, 9, 30)?, evaluators.len(), None)?;
        self.complete_all(session, &evaluators);

        // 特別研修: information security for everyone (three e-learning periods), harassment
        // prevention for 係長 and managers, the women's career design seminar, the academy.
        let everyone = self.at_work(fy, ymd(fy, 7, 1)?, |_| true);
        let everyone = self.attending(everyone, SECURITY_RATE[fy_index(fy)]);
        let c = course("S101", "情報セキュリティ研修", SPECIAL, IN_HOUSE, ELEARN);
        let periods = [
            ("第1期", ymd(fy, 7, 1)?, ymd(fy, 7, 31)?),
            ("第2期", ymd(fy, 9, 1)?, ymd(fy, 9, 30)?),
            ("第3期", ymd(fy, 11, 1)?, ymd(fy, 11, 30)?),
        ];
        let mut groups: [Vec<usize>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        for person in everyone {
            let r = self.rng.unit();
            let mut k = if r < 0.4 {
                0
            } else if r < 0.75 {
                1
            } else {
                2
            };
            if !self.people[person].in_service(periods[k].2) {
                k = 0;
            }
            groups[k].push(person);
        }
        for ((label, from, to), group) in periods.iter().zip(groups.iter()) {
            let session = self.open_session(&c, *from, *to, 500.max(group.len()), Some(label))?;
            self.complete_all(session, group);
        }
        let seniors = self.at_work(fy, ymd(fy, 10, 20)?, |p| p.grade() >= 5);
        let seniors = self.attending(seniors, 0.9);
        let c = course("S102", "ハラスメント防止研修", SPECIAL, IN_HOUSE, ROOM);
        let starts = [(10, 20), (10, 27), (11, 4), (11, 24)];
        for (n, chunk) in seniors.chunks(seniors.len().div_ceil(4).max(1)).enumerate() {
            let (m, day) = starts[n.min(3)];
            let delivery = if n == 3 || covid { REMOTE } else { ROOM };
            let c = Course { delivery, ..c };
            self.run_session(&c, ymd(fy, m, day)?, 0, 120, chunk)?;
        }
        let women = self.at_work(fy, ymd(next, 1, 19)?, |p| {
            p.gender == Gender::Female
                && (2..=4).contains(&p.grade())
                && (28..=40).contains(&p.age(fy))
        });
        let women = self.sample(women, 25);
        let c = course(
            "S103",
            "女性職員キャリアデザイン研修",
            SPECIAL,
            IN_HOUSE,
            ROOM,
        );
        self.run_session(&c, ymd(next, 1, 19)?, 0, 25, &women)?;
        let academy = self.at_work(fy, ymd(next, 2, 16)?, |p| {
            (2..=4).contains(&p.grade()) && (27..=38).contains(&p.age(fy))
        });
        let academy = self.sample(academy, 12);
        let c = course("S104", "次世代育成アカデミー", SPECIAL, IN_HOUSE, ROOM);
        let session = self.open_session(
            &c,
            weekday(ymd(fy, 6, 1)?),
            weekday(ymd(next, 2, 16)?),
            12,
            None,
        )?;
        self.complete_all(session, &academy);

        // 職場研修 (OJT): every April hire gets an OJT leader in their unit and a mentor from
        // another unit; both are trained.
        let mut leaders = BTreeSet::new();
        let mut mentors = BTreeSet::new();
        for &hire in &april_hires {
            let unit = self.people[hire].unit();
            let same = self.at_work(fy, d, |p| p.unit() == unit && (3..=4).contains(&p.grade()));
            if let Some(leader) = self.rng.pick(&same) {
                leaders.insert(leader);
            }
            let other = self.at_work(fy, d, |p| {
                p.unit() != unit && (2..=3).contains(&p.grade()) && p.hired_on < d
            });
            if let Some(mentor) = self.rng.pick(&other) {
                mentors.insert(mentor);
                self.mentors.insert(hire, mentor);
            }
        }
        let leaders: Vec<usize> = leaders.into_iter().collect();
        let c = course("J101", "OJT指導者研修", OJT, IN_HOUSE, ROOM);
        self.run_session(&c, ymd(fy, 4, 20)?, 0, 50, &leaders)?;
        let mentors: Vec<usize> = mentors.into_iter().collect();
        let c = course("J102", "メンター研修", OJT, IN_HOUSE, ROOM);
        self.run_session(&c, ymd(fy, 4, 22)?, 0, 50, &mentors)?;
        let counter = self.at_work(fy, ymd(fy, 4, 26)?, |p| {
            UNITS[p.unit()].kind == DepartmentKind::FrontOffice
                && p.units.last().is_some_and(|(date, _)| *date == d)
        });
        let counter = self.attending(counter, 0.7);
        let c = course("J103", "窓口対応OJT研修", OJT, IN_HOUSE, ROOM);
        self.run_session(&c, ymd(fy, 4, 26)?, 0, 60, &counter)?;

        // 派遣研修: 市町村アカデミー, 自治大学校, 国際文化アカデミー.
        for n in 0..4 {
            let title = ACADEMY_COURSES[(fy as usize * 4 + n) % ACADEMY_COURSES.len()];
            let on = ymd(fy, 6 + n as u32 * 2, 7)?;
            let pool = self.at_work(fy, on, |p| (3..=5).contains(&p.grade()));
            let chosen = self.sample(pool, 2);
            let c = course(
                "A100",
                title,
                DISPATCH,
                ACADEMY,
                if covid { REMOTE } else { ROOM },
            );
            self.run_session(&c, on, 4, 2, &chosen)?;
        }
        if !covid {
            let pool = self.at_work(fy, ymd(next, 1, 12)?, |p| {
                (4..=5).contains(&p.grade()) && p.age(fy) <= 45
            });
            let chosen = self.sample(pool, 1);
            let c = course("A200", "自治大学校 第2部課程", DISPATCH, "自治大学校", ROOM);
            self.run_session(&c, ymd(next, 1, 12)?, 45, 1, &chosen)?;
        }
        let pool = self.at_work(fy, ymd(fy, 8, 2)?, |p| (2..=4).contains(&p.grade()));
        let chosen = self.sample(pool, 2);
        let c = course(
            "A300",
            "国際文化アカデミー（政策課題研修）",
            DISPATCH,
            "国際文化アカデミー",
            if covid { REMOTE } else { ROOM },
        );
        self.run_session(&c, ymd(fy, 8, 2)?, 3, 2, &chosen)?;

        // 自己啓発: correspondence courses and self-study groups.
        let pool = self.at_work(fy, ymd(next, 2, 27)?, |p| p.grade() <= 5);
        let count = 30 + self.rng.below(12);
        let chosen = self.sample(pool, count);
        let c = course(
            "D101",
            "通信教育講座（自己啓発支援）",
            SELF,
            IN_HOUSE,
            ELEARN,
        );
        let session = self.open_session(&c, ymd(fy, 6, 1)?, ymd(next, 2, 27)?, 60, None)?;
        self.complete_all(session, &chosen);
        let pool = self.at_work(fy, ymd(next, 2, 20)?, |p| (2..=5).contains(&p.grade()));
        let count = 10 + self.rng.below(6);
        let chosen = self.sample(pool, count);
        let c = course("D102", "自主研究グループ活動", SELF, IN_HOUSE, ROOM);
        let session =
            self.open_session(&c, ymd(fy, 6, 1)?, weekday(ymd(next, 2, 20)?), 20, None)?;
        self.complete_all(session, &chosen);

        self.waitlisted_course(fy)?;
        self.electives(fy)?;
        self.close_training_year(fy)
    }

    /// ファシリテーション研修: more applicants than places; two withdraw and the first two on
    /// the waitlist move up; one stays on the waitlist.
    fn waitlisted_course(&mut self, fy: i32) -> Result<(), DemoError> {
        const PLACES: usize = 24;
        let starts_on = weekday(ymd(fy, 9, 14)?);
        let pool = self.at_work(fy, starts_on, |p| (3..=6).contains(&p.grade()));
        let mut applicants = pool;
        self.rng.shuffle(&mut applicants);
        applicants.truncate(PLACES + 3);
        if applicants.len() < PLACES + 3 {
            return Ok(());
        }
        let c = course(
            "P108",
            "ファシリテーション研修",
            SPECIALIZED,
            IN_HOUSE,
            ROOM,
        );
        let session = self.open_session(&c, starts_on, starts_on, PLACES, None)?;
        let session_id = self.sessions[session].id;
        for &person in &applicants {
            let staff = self.people[person].id;
            self.push(
                plus(starts_on, -14),
                Op::Enrol {
                    session: session_id,
                    staff,
                },
            );
        }
        let withdrawn = [applicants[3], applicants[10]];
        for person in withdrawn {
            let staff_id = self.people[person].id;
            self.push(
                plus(starts_on, -7),
                Op::Session {
                    id: session_id,
                    command: SessionCommand::CancelEnrolment {
                        staff_id,
                        reason: text("業務都合により受講辞退")?,
                    },
                },
            );
        }
        for &person in applicants.iter().take(PLACES + 2) {
            if withdrawn.contains(&person) {
                continue;
            }
            self.planned.push(Planned {
                session,
                person,
                entered_on: starts_on,
                completed_on: starts_on,
                understanding: None,
                enrolled: true,
                revoked: None,
                corrected: None,
            });
        }
        Ok(())
    }

    /// Fills the elective courses round-robin with volunteers until the year's completions
    /// (plus the ones that will be revoked) are planned. In FY2021 the institute suspended its
    /// open courses (COVID-19) and the in-house ones went online.
    fn electives(&mut self, fy: i32) -> Result<(), DemoError> {
        let covid = fy == 2021;
        let revocations = 2 + usize::from(fy == 2021);
        let goal = COMPLETIONS[fy_index(fy)] + revocations;
        let mut remaining = goal.saturating_sub(self.planned.len());
        let mut offered = Vec::new();
        for e in ELECTIVES.iter().filter(|e| e.from_fy <= fy) {
            if covid && e.course.provider == INSTITUTE {
                continue;
            }
            let year = if e.month <= 3 { fy + 1 } else { fy };
            let on = weekday(ymd(year, e.month, e.day)?);
            let (lo, hi) = e.grades;
            let tax_only = e.tax_only;
            let mut pool = self.at_work(fy, plus(on, e.days), |p| {
                (lo..=hi).contains(&p.grade()) && (!tax_only || TAX_UNITS.contains(&p.unit()))
            });
            self.rng.shuffle(&mut pool);
            offered.push((e, on, pool, Vec::new()));
        }
        // Up to two sessions of each course.
        for round in 1..=2 {
            loop {
                let mut progressed = false;
                for (e, _, pool, roster) in offered.iter_mut() {
                    if remaining == 0 {
                        break;
                    }
                    if roster.len() < e.capacity * round {
                        if let Some(person) = pool.pop() {
                            roster.push(person);
                            remaining -= 1;
                            progressed = true;
                        }
                    }
                }
                if remaining == 0 || !progressed {
                    break;
                }
            }
        }
        for (e, on, _, roster) in offered {
            let mut course = e.course;
            if covid && course.delivery == ROOM {
                course.delivery = REMOTE;
            }
            for (n, chunk) in roster.chunks(e.capacity).enumerate() {
                let starts_on = weekday(plus(on, 21 * n as i64));
                let ends_on = weekday(plus(starts_on, e.days));
                let label = if roster.len() > e.capacity {
                    Some(if n == 0 { "第1回" } else { "第2回" })
                } else {
                    None
                };
                let session = self.open_session(&course, starts_on, ends_on, e.capacity, label)?;
                self.complete_all(session, chunk);
            }
        }
        Ok(())
    }

    /// Survey answers, the year's corrections and revocations, then the commands.
    fn close_training_year(&mut self, fy: i32) -> Result<(), DemoError> {
        let i = fy_index(fy);
        let mut answered: Vec<usize> = (0..self.planned.len())
            .filter(|k| self.sessions[self.planned[*k].session].survey)
            .collect();
        let high = (UNDERSTOOD[i] * answered.len() as f64).round() as usize;
        self.rng.shuffle(&mut answered);
        for (n, k) in answered.iter().enumerate() {
            let value: u8 = if n < high {
                if self.rng.chance(0.4) {
                    5
                } else {
                    4
                }
            } else {
                let r = self.rng.unit();
                if r < 0.75 {
                    3
                } else if r < 0.95 {
                    2
                } else {
                    1
                }
            };
            self.planned[*k].understanding = Some(Understanding::try_from(value)?);
        }

        // Corrections: two attendees registered by mistake, one survey answer transcribed
        // wrongly, one completion date typed wrongly; in FY2021 one more wrong registration
        // found by the audit after the sheet was published; in FY2022 a March completion
        // typed as April, which moved it into FY2023 until it was corrected in August 2023.
        let mut candidates: Vec<usize> = (0..self.planned.len())
            .filter(|k| !self.planned[*k].enrolled)
            .collect();
        self.rng.shuffle(&mut candidates);
        let mut picks = candidates.into_iter();
        for _ in 0..2 {
            if let Some(k) = picks.next() {
                let on = plus(self.planned[k].entered_on, 10);
                self.planned[k].revoked = Some((on, "欠席者の誤登録（当日欠席）"));
            }
        }
        if fy == 2021 {
            if let Some(k) = picks.next() {
                self.planned[k].revoked = Some((
                    ymd(2022, 9, 15)?,
                    "欠席者の誤登録（監査での指摘により判明）",
                ));
            }
        }
        if let Some(k) = picks.by_ref().find(|k| {
            self.planned[*k]
                .understanding
                .is_some_and(|u| u.value() >= 4)
        }) {
            let old = self.planned[k].understanding.map_or(4, |u| u.value());
            let new = Understanding::try_from(if old == 5 { 4 } else { 5 })?;
            let on = plus(self.planned[k].entered_on, 20);
            self.planned[k].corrected = Some((on, None, Some(new), "アンケート集計時の転記誤り"));
        }
        let february = ymd(fy + 1, 2, 1)?;
        if let Some(k) = picks
            .by_ref()
            .find(|k| self.planned[*k].completed_on < february)
        {
            let typed = plus(self.planned[k].completed_on, 10);
            self.planned[k].entered_on = typed;
            let completed_on = self.planned[k].completed_on;
            self.planned[k].corrected =
                Some((plus(typed, 5), Some(completed_on), None, "修了日の入力誤り"));
        }
        if fy == 2022 {
            let march = ymd(2023, 3, 1)?;
            if let Some(k) = picks.find(|k| self.planned[*k].completed_on >= march) {
                self.planned[k].entered_on = ymd(2023, 4, 3)?;
                let completed_on = self.planned[k].completed_on;
                self.planned[k].corrected = Some((
                    ymd(2023, 8, 21)?,
                    Some(completed_on),
                    None,
                    "修了日の入力誤り（年度の誤り）",
                ));
            }
        }

        let planned = std::mem::take(&mut self.planned);
        self.completions += planned.len();
        for p in planned {
            let session = self.sessions[p.session].id;
            let staff = self.people[p.person].id;
            let op = if p.enrolled {
                Op::Session {
                    id: session,
                    command: SessionCommand::Complete {
                        staff_id: staff,
                        completed_on: p.completed_on,
                        understanding: p.understanding,
                    },
                }
            } else {
                Op::Attend {
                    session,
                    staff,
                    completed_on: p.entered_on,
                    understanding: p.understanding,
                }
            };
            self.push(p.entered_on, op);
            if let Some((on, reason)) = p.revoked {
                let command = SessionCommand::RevokeCompletion {
                    staff_id: staff,
                    reason: text(reason)?,
                };
                self.push(
                    on,
                    Op::Session {
                        id: session,
                        command,
                    },
                );
            }
            if let Some((on, completed_on, understanding, reason)) = p.corrected {
                let command = SessionCommand::CorrectCompletion {
                    staff_id: staff,
                    completed_on,
                    understanding,
                    reason: text(reason)?,
                };
                self.push(
                    on,
                    Op::Session {
                        id: session,
                        command,
                    },
                );
            }
        }
        Ok(())
    }

    // --------------------------------------------------------------------------------------
    // Interviews and evaluations

    /// Staff of grade 6 and above in service on `date`: (index, grade, unit).
    fn managers_on(&self, date: Date) -> Vec<(usize, u8, usize)> {
        self.people
            .iter()
            .enumerate()
            .filter(|(_, p)| p.in_service(date) && p.grade_on(date) >= 6)
            .map(|(i, p)| (i, p.grade_on(date), p.unit_on(date)))
            .collect()
    }

    /// The person's evaluator on `date`: the lowest-graded manager above them in their own
    /// department, else a 部長級 of the same department kind, else anyone senior enough.
    fn evaluator(
        &self,
        person: usize,
        date: Date,
        managers: &[(usize, u8, usize)],
    ) -> Option<usize> {
        let p = &self.people[person];
        let (grade, unit) = (p.grade_on(date), p.unit_on(date));
        let need = (grade + 1).clamp(6, 8);
        let kind = UNITS[unit].kind;
        let senior = |&&(i, g, _): &&(usize, u8, usize)| i != person && g >= need;
        let lowest = |list: Vec<&(usize, u8, usize)>| {
            list.into_iter()
                .min_by_key(|(i, g, _)| (*g, *i))
                .map(|(i, _, _)| *i)
        };
        lowest(
            managers
                .iter()
                .filter(senior)
                .filter(|(_, _, u)| *u == unit)
                .collect(),
        )
        .or_else(|| {
            lowest(
                managers
                    .iter()
                    .filter(senior)
                    .filter(|(_, g, u)| *g >= 7 && UNITS[*u].kind == kind)
                    .collect(),
            )
        })
        .or_else(|| {
            lowest(
                managers
                    .iter()
                    .filter(senior)
                    .filter(|(_, g, _)| *g >= 7)
                    .collect(),
            )
        })
        .or_else(|| {
            lowest(
                managers
                    .iter()
                    .filter(|(i, g, _)| *i != person && *g == 8)
                    .collect(),
            )
        })
    }

    /// The head of 人事課 on `date`.
    fn hr_head(&self, managers: &[(usize, u8, usize)]) -> Option<usize> {
        managers
            .iter()
            .filter(|(_, _, u)| *u == HR_UNIT)
            .min_by_key(|(i, g, _)| (*g, *i))
            .or_else(|| managers.iter().min_by_key(|(i, g, _)| (*g, *i)))
            .map(|(i, _, _)| *i)
    }

    fn interview(
        &mut self,
        person: usize,
        kind: InterviewKind,
        held_on: Date,
        interviewer: usize,
        note: &str,
    ) -> Uuid {
        let interview_id = self.next_id("interview");
        self.interviews += 1;
        let op = Op::Interview {
            staff: self.people[person].id,
            interview_id,
            kind,
            held_on,
            interviewer: self.people[interviewer].id,
            note: note.to_string(),
        };
        self.push(held_on, op);
        interview_id
    }

    fn interviews(&mut self, fy: i32) -> Result<(), DemoError> {
        const FIRST: [&str; 4] = [
            "期首面談。今年度の業務目標と重点取組を確認した。",
            "期首面談。担当業務の目標設定について話し合い、年間スケジュールを共有した。",
            "期首面談。昨年度の振り返りを踏まえ、今年度の能力開発目標を設定した。",
            "期首面談。業務量と係内の役割分担を確認し、目標に合意した。",
        ];
        const SECOND: [&str; 4] = [
            "期末面談。目標の達成状況を振り返り、来年度の課題を共有した。",
            "期末面談。業務改善の成果を確認し、今後の能力開発について助言した。",
            "期末面談。目標はおおむね達成。次年度は後輩指導にも取り組むよう伝えた。",
            "期末面談。市民対応の丁寧さを評価し、説明力の向上を次年度の目標とした。",
        ];
        let halves = [
            (ymd(fy, 5, 1)?, ymd(fy, 5, 8)?, ymd(fy, 6, 30)?, &FIRST),
            (
                ymd(fy + 1, 1, 5)?,
                ymd(fy + 1, 1, 10)?,
                ymd(fy + 1, 2, 28)?,
                &SECOND,
            ),
        ];
        let mut evaluation_interviews = Vec::new();
        for (half, (snapshot, from, to, notes)) in halves.into_iter().enumerate() {
            let managers = self.managers_on(snapshot);
            let hr_head = self.hr_head(&managers);
            let staff = self.at_work(fy, from, |_| true);
            let mut staff: BTreeSet<usize> = staff.into_iter().collect();
            // Dispatched staff are interviewed by 人事課 instead.
            for (i, p) in self.people.iter().enumerate() {
                if p.in_service(from) && p.dispatched_on(from) && !self.on_leave(fy, i) {
                    staff.insert(i);
                }
            }
            for person in staff {
                let held_on = some_weekday(&mut self.rng, from, to);
                if !self.people[person].in_service(held_on) {
                    continue;
                }
                let note = notes[self.rng.below(notes.len())];
                if self.people[person].dispatched_on(held_on) {
                    if let Some(head) = hr_head {
                        let note =
                            "人事課面談（派遣中）。派遣先での業務状況と復帰後の希望を聴取した。";
                        self.interview(person, InterviewKind::Hr, held_on, head, note);
                    }
                    continue;
                }
                if let Some(evaluator) = self.evaluator(person, snapshot, &managers) {
                    let id =
                        self.interview(person, InterviewKind::Evaluation, held_on, evaluator, note);
                    evaluation_interviews.push((person, id, held_on, evaluator, note, half));
                }
            }
        }

        // Mentor, HR, follow-up, 1on1 and career interviews.
        let july = ymd(fy, 7, 1)?;
        let mentors: Vec<(usize, usize)> = self.mentors.iter().map(|(h, m)| (*h, *m)).collect();
        for (hire, mentor) in mentors {
            let held_on = some_weekday(&mut self.rng, july, ymd(fy, 7, 31)?);
            if self.people[hire].in_service(held_on) && self.people[mentor].in_service(held_on) {
                let note = "メンター面談。職場生活や業務の悩みについて聞き取りを行った。";
                self.interview(hire, InterviewKind::Mentor, held_on, mentor, note);
            }
        }
        let managers = self.managers_on(ymd(fy, 9, 1)?);
        if let Some(head) = self.hr_head(&managers) {
            let april = ymd(fy, 4, 1)?;
            let hires = self.at_work(fy, ymd(fy, 9, 30)?, |p| p.hired_on == april);
            for hire in hires {
                let held_on = some_weekday(&mut self.rng, ymd(fy, 9, 1)?, ymd(fy, 9, 30)?);
                let note = "人事課面談。新しい職場への適応状況と健康面を確認した。";
                self.interview(hire, InterviewKind::Hr, held_on, head, note);
                if self.rng.chance(0.1) {
                    let again = some_weekday(&mut self.rng, ymd(fy, 11, 1)?, ymd(fy, 11, 30)?);
                    if self.people[hire].in_service(again) {
                        let note =
                            "再面談。前回面談で聞き取った不安について、その後の状況を確認した。";
                        self.interview(hire, InterviewKind::FollowUp, again, head, note);
                    }
                }
            }
            let careers = self.at_work(fy, ymd(fy, 11, 30)?, |p| {
                (3..=4).contains(&p.grade()) && (30..=40).contains(&p.age(fy))
            });
            for person in careers {
                if self.rng.chance(0.04) {
                    let held_on = some_weekday(&mut self.rng, ymd(fy, 11, 1)?, ymd(fy, 11, 30)?);
                    let note = "キャリア面談。今後の異動希望と取得したい資格について話し合った。";
                    self.interview(person, InterviewKind::Career, held_on, head, note);
                }
            }
        }
        let october = ymd(fy, 10, 1)?;
        let managers = self.managers_on(october);
        let staff = self.at_work(fy, ymd(fy, 10, 31)?, |p| p.grade() <= 5);
        for person in staff {
            if self.rng.chance(0.04) {
                if let Some(boss) = self.evaluator(person, october, &managers) {
                    let held_on = some_weekday(&mut self.rng, october, ymd(fy, 10, 31)?);
                    let note = "1on1。業務の進め方と今後のキャリアについて対話した。";
                    self.interview(person, InterviewKind::OneOnOne, held_on, boss, note);
                }
            }
        }

        // Two interviews registered twice and withdrawn; one date corrected.
        let n = evaluation_interviews.len();
        for k in 0..2 {
            let pick = self.rng.below(n);
            let Some(&(person, _, held_on, evaluator, note, _)) = evaluation_interviews.get(pick)
            else {
                continue;
            };
            let duplicate =
                self.interview(person, InterviewKind::Evaluation, held_on, evaluator, note);
            let reason = "重複登録のため取消";
            let command = StaffCommand::WithdrawInterview {
                interview_id: duplicate,
                reason: text(reason)?,
            };
            self.staff_op(plus(held_on, 3 + k), person, command);
        }
        let first_half: Vec<_> = evaluation_interviews.iter().filter(|e| e.5 == 0).collect();
        if let Some(&&(person, id, held_on, _, _, _)) =
            first_half.get(self.rng.below(first_half.len()))
        {
            let corrected = weekday(plus(held_on, 2));
            if corrected <= ymd(fy, 6, 30)? && self.people[person].in_service(corrected) {
                let reason = "面談日の入力誤り";
                let command = StaffCommand::CorrectInterview {
                    interview_id: id,
                    kind: None,
                    held_on: Some(corrected),
                    note: None,
                    reason: text(reason)?,
                };
                self.staff_op(plus(held_on, 7), person, command);
            }
        }
        Ok(())
    }

    fn evaluations(&mut self, fy: i32) -> Result<(), DemoError> {
        let end = ymd(fy + 1, 3, 31)?;
        let snapshot = ymd(fy + 1, 1, 5)?;
        let managers = self.managers_on(snapshot);
        let staff = self.at_work(fy, end, |p| p.in_service(snapshot));
        let fiscal = fiscal_year(fy)?;
        let mut recorded = Vec::new();
        for person in staff {
            let Some(evaluator) = self.evaluator(person, snapshot, &managers) else {
                continue;
            };
            let score = 0.7 * self.people[person].merit + 0.3 * self.rng.unit();
            let (overall, base) = if score > 0.9 {
                (OverallRating::S, 5)
            } else if score > 0.66 {
                (OverallRating::A, 4)
            } else if score > 0.1 {
                (OverallRating::B, 3)
            } else if score > 0.04 {
                (OverallRating::C, 2)
            } else {
                (OverallRating::D, 2)
            };
            let mut competencies = BTreeMap::new();
            for name in COMPETENCIES {
                let jitter = self.rng.between(-1, 1);
                let value = (base + jitter).clamp(1, 5) as u8;
                competencies.insert(name.to_string(), value);
            }
            let comment = match overall {
                OverallRating::S => {
                    Some("困難な課題に主体的に取り組み、組織目標の達成に大きく貢献した。")
                }
                OverallRating::C => {
                    Some("業務の進捗管理に課題がある。上司への報告・相談をより早めに行うこと。")
                }
                OverallRating::D => Some(
                    "業務目標の多くが未達成。次期に向けて具体的な改善計画を立てて取り組むこと。",
                ),
                OverallRating::A if self.rng.chance(0.25) => {
                    Some("業務を的確に遂行し、周囲との連携も良好であった。")
                }
                OverallRating::B if self.rng.chance(0.25) => Some("担当業務を着実に遂行した。"),
                _ => None,
            };
            let evaluation_id = self.next_id("evaluation");
            let on = some_weekday(&mut self.rng, ymd(fy + 1, 3, 10)?, ymd(fy + 1, 3, 27)?);
            let evaluation = Evaluation {
                evaluation_id,
                fiscal_year: fiscal,
                period: EvaluationPeriod::Annual,
                evaluator_id: self.people[evaluator].id,
                overall,
                competencies: competencies.clone(),
                comment: None,
            };
            self.evaluations += 1;
            let staff_id = self.people[person].id;
            self.push(
                on,
                Op::Evaluation {
                    staff: staff_id,
                    evaluation: Box::new(evaluation),
                    comment: comment.map(str::to_string),
                },
            );
            recorded.push((person, evaluation_id, overall, competencies));
        }

        // Two corrections after the adjustment meeting.
        let after = ymd(fy + 1, 4, 20)?;
        if let Some((person, id, _, _)) = recorded
            .iter()
            .find(|(_, _, overall, _)| *overall == OverallRating::A)
            .cloned()
        {
            let reason = "調整者による調整結果の反映漏れ";
            let command = StaffCommand::CorrectEvaluation {
                evaluation_id: id,
                overall: Some(OverallRating::S),
                competencies: None,
                comment: None,
                reason: text(reason)?,
            };
            self.staff_op(after, person, command);
        }
        if let Some((person, id, _, mut competencies)) = recorded
            .iter()
            .rev()
            .find(|(_, _, overall, _)| *overall == OverallRating::B)
            .cloned()
        {
            competencies.insert("説明力".to_string(), 4);
            let reason = "評価者の入力誤り（説明力の点数）";
            let command = StaffCommand::CorrectEvaluation {
                evaluation_id: id,
                overall: None,
                competencies: Some(competencies),
                comment: None,
                reason: text(reason)?,
            };
            self.staff_op(plus(after, 1), person, command);
        }

        // 苦情・申出 about a C rating: upheld in FY2022, corrected to B in FY2024.
        if fy == 2022 || fy == 2024 {
            if let Some((person, id, _, _)) = recorded
                .iter()
                .find(|(_, _, overall, _)| *overall == OverallRating::C)
                .cloned()
            {
                let staff = self.people[person].id;
                self.push(
                    ymd(fy + 1, 4, 24)?,
                    Op::Dispute {
                        staff,
                        evaluation_id: id,
                        text: "評価結果（C）について、年度後半の業務実績が十分に考慮されていないと考えるため、苦情を申し出ます。".to_string(),
                    },
                );
                let (outcome, reason) = if fy == 2022 {
                    (
                        "評価を維持",
                        "評価者及び調整者への聴取の結果、評価は妥当と判断した",
                    )
                } else {
                    let reason = "苦情処理委員会の審査結果による修正";
                    let command = StaffCommand::CorrectEvaluation {
                        evaluation_id: id,
                        overall: Some(OverallRating::B),
                        competencies: None,
                        comment: None,
                        reason: text(reason)?,
                    };
                    self.staff_op(ymd(fy + 1, 6, 5)?, person, command);
                    ("評価をBに修正", "苦情処理委員会の審査結果")
                };
                let staff = self.people[person].id;
                self.push(
                    ymd(fy + 1, 6, 6)?,
                    Op::ResolveDispute {
                        staff,
                        evaluation_id: id,
                        outcome: outcome.to_string(),
                        reason: reason.to_string(),
                    },
                );
            }
        }
        Ok(())
    }

    // --------------------------------------------------------------------------------------
    // Compliance incidents

    fn incidents(&mut self, fy: i32) -> Result<(), DemoError> {
        type Withdrawal = Option<(u32, u32, &'static str)>;
        let list: &[(i32, u32, u32, &str, &str, Withdrawal)] = &[
            (
                2021,
                9,
                14,
                "市民課",
                "住民票の写しの誤交付（同姓同名の別人のものを交付）",
                None,
            ),
            (
                2021,
                11,
                2,
                "納税課",
                "督促状の誤送付",
                Some((
                    12,
                    6,
                    "調査の結果、送付先は正しく不適切な事務処理に該当しないことが判明したため",
                )),
            ),
            (
                2022,
                6,
                20,
                "保険年金課",
                "国民健康保険税納税通知書の誤送付",
                None,
            ),
            (
                2022,
                1,
                17,
                "子育て支援課",
                "児童手当の支給額算定誤り",
                None,
            ),
            (
                2023,
                8,
                8,
                "資産税課",
                "固定資産税の課税誤り（住宅用地特例の適用漏れ）",
                None,
            ),
            (
                2025,
                10,
                3,
                "情報政策課",
                "個人情報を含む電子メールの誤送信",
                None,
            ),
        ];
        for &(year, m, day, department, summary, withdrawal) in list.iter().filter(|i| i.0 == fy) {
            let on_year = if m <= 3 { year + 1 } else { year };
            let occurred_on = ymd(on_year, m, day)?;
            let id = self.next_id("incident");
            self.incidents += 1;
            self.push(
                plus(occurred_on, 3),
                Op::Incident {
                    id,
                    command: IncidentCommand::Record {
                        incident_id: id,
                        occurred_on,
                        department: text(department)?,
                        summary: text(summary)?,
                    },
                },
            );
            if let Some((wm, wd, reason)) = withdrawal {
                let w_year = if wm <= 3 { year + 1 } else { year };
                self.push(
                    ymd(w_year, wm, wd)?,
                    Op::Incident {
                        id,
                        command: IncidentCommand::Withdraw {
                            reason: text(reason)?,
                        },
                    },
                );
            }
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------------------------
// Plan items: 2-1 and 2-1-1 … 2-1-4 of the progress sheets (seed 000) and an action-plan item
// in the style of seed 004.

const PLAN_CODES: [&str; 7] = ["2-1", "2-1-1", "2-1-2", "2-1-3", "2-1-4", "O-1", "O-2"];

/// One indicator with its targets (`(fiscal year, op, value)`).
struct Ind {
    code: &'static str,
    name: &'static str,
    description: &'static str,
    kind: IndicatorKind,
    unit: Unit,
    source: IndicatorSource,
    baseline: Option<(i32, f64)>,
    targets: Vec<(i32, TargetOp, f64)>,
}

impl Ind {
    fn build(self) -> Result<IndicatorPlan, DemoError> {
        let mut targets = BTreeMap::new();
        for (fy, op, value) in self.targets {
            targets.insert(fiscal_year(fy)?, Target { op, value });
        }
        let baseline = match self.baseline {
            Some((fy, value)) => Some(Baseline {
                fiscal_year: fiscal_year(fy)?,
                value,
            }),
            None => None,
        };
        Ok(IndicatorPlan {
            definition: IndicatorDefinition {
                indicator_code: code(self.code)?,
                name: text(self.name)?,
                description: Some(text(self.description)?),
                kind: self.kind,
                unit: self.unit,
                source: self.source,
                baseline,
            },
            targets,
        })
    }
}

fn rule(name: RuleName, params: RuleParams) -> IndicatorSource {
    IndicatorSource::Rule { rule: name, params }
}

fn manual() -> IndicatorSource {
    IndicatorSource::Manual(Manual::Manual)
}

/// The same target for every year of the plan.
fn every_year(op: TargetOp, value: f64) -> Vec<(i32, TargetOp, f64)> {
    (FIRST_FY..=LAST_FY).map(|fy| (fy, op, value)).collect()
}

/// An item's header, its yearly texts and its manual actuals.
struct Item {
    code: &'static str,
    title: &'static str,
    pillar: &'static str,
    parent: Option<&'static str>,
    status: ItemStatus,
    aim: &'static str,
    related: &'static str,
    indicators: Vec<Ind>,
    /// 取組内容・取組目標, the same for every year of the plan.
    planned: &'static str,
    /// 実績 for FY2021–FY2025.
    results: [&'static str; 5],
    /// 自己評価 for FY2021–FY2025: grade, 評価理由, next step.
    evaluations: [(SelfGrade, &'static str, NextStep); 5],
    direction: &'static str,
    /// The manual indicators' reported values.
    actuals: Vec<Actuals>,
    /// The plan the item belongs to (the sheet's title).
    plan: &'static str,
}

/// A manual indicator's values: estimates reported in February, confirmed ones in May, one
/// per fiscal year from `from`.
struct Actuals {
    indicator: &'static str,
    from: i32,
    estimates: &'static [f64],
    confirmed: &'static [f64],
    /// Where the confirmed figure comes from.
    source: Source,
}

#[derive(Clone, Copy)]
enum Source {
    /// The staff survey held in April after the year.
    Survey,
    /// The payroll and attendance system.
    Payroll,
}

impl Source {
    fn note(self, fy: i32) -> String {
        match self {
            Source::Survey => format!("職員アンケート（{}年4月実施）の集計結果", fy + 1),
            Source::Payroll => format!("人事給与システムによる{fy}年度の集計結果"),
        }
    }
}

fn survey(
    indicator: &'static str,
    from: i32,
    estimates: &'static [f64],
    confirmed: &'static [f64],
) -> Actuals {
    Actuals {
        indicator,
        from,
        estimates,
        confirmed,
        source: Source::Survey,
    }
}

fn payroll(
    indicator: &'static str,
    estimates: &'static [f64],
    confirmed: &'static [f64],
) -> Actuals {
    Actuals {
        indicator,
        from: FIRST_FY,
        estimates,
        confirmed,
        source: Source::Payroll,
    }
}

const HADANO_PLAN: &str = "はだの行政サービス改革基本方針実行計画";
const OSAKI_PLAN: &str = "人財育成アクションプラン";

const PILLAR: &str = "２　職員（ひと）づくりの改革";
const RELATED: &str = "職員づくり基本方針実施計画";
const HR: &str = "人事課";

fn items() -> Result<Vec<Item>, DemoError> {
    use IndicatorKind::{Activity, Outcome};
    use NextStep::{Continue, Expand};
    use SelfGrade::{A, B};
    use TargetOp::{AtLeast, AtMost};
    let ge = AtLeast;
    Ok(vec![
        Item {
            code: "2-1",
            title: "組織を高める職員（ひと）づくりの推進",
            pillar: PILLAR,
            parent: None,
            status: ItemStatus::Continued,
            aim: "職員一人ひとりの知識や見識、個人の資質や感性を高める取組みを行い、行動の変革を促すことで、職員の意識改革を推進し、組織力の向上につなげます。",
            related: "総合計画（基本施策「適正かつ持続可能な行政経営の推進」）、職員づくり基本方針実施計画",
            plan: HADANO_PLAN,
            indicators: vec![
                Ind {
                    code: "positive_behaviour",
                    name: "前向きな行動の頻度が増えたと実感する職員割合",
                    description: "人事課職員アンケートにおいて、毎年度、前向きな行動ができているか、職員意識を把握する。※実績は、年度終了後に把握",
                    kind: Outcome,
                    unit: Unit::Percent,
                    source: manual(),
                    baseline: None,
                    targets: vec![(2021, ge, 30.0), (2022, ge, 40.0), (2023, ge, 50.0), (2024, ge, 50.0), (2025, ge, 50.0)],
                },
                Ind {
                    code: "progress",
                    name: "取組の進捗（％）",
                    description: "「2-1.組織を高める職員（ひと）づくりの推進」全取組内容の計画期間５年間における取組進捗状況",
                    kind: Activity,
                    unit: Unit::Percent,
                    source: manual(),
                    baseline: None,
                    targets: vec![(2023, ge, 50.0), (2024, ge, 70.0), (2025, ge, 100.0)],
                },
                Ind {
                    code: "attendees",
                    name: "職員研修の年間延べ受講者数",
                    description: "職員づくり基本方針実施計画の戦略３の数値目標（研修計画に位置付けた研修の修了者の延べ人数）。※実績は、年度終了後に把握",
                    kind: Activity,
                    unit: Unit::People,
                    source: rule(RuleName::TrainingCompletions, RuleParams::default()),
                    baseline: None,
                    targets: every_year(ge, 2300.0),
                },
                Ind {
                    code: "understanding",
                    name: "研修受講後の研修理解度割合",
                    description: "研修後アンケートで理解度４以上（５段階）と回答した受講者の割合。※実績は、年度終了後に把握",
                    kind: Outcome,
                    unit: Unit::Percent,
                    source: rule(
                        RuleName::TrainingUnderstandingRate,
                        RuleParams {
                            threshold: Some(Understanding::try_from(4)?),
                            ..RuleParams::default()
                        },
                    ),
                    baseline: None,
                    targets: every_year(ge, 90.0),
                },
            ],
            planned: "【取組目標】職員研修等を通して、職員の意識改革を推進し、組織力の向上につなげる。",
            results: [
                "ＩＣＴの活用に向けた研修など、研修計画どおり研修を実施し、また、リモートによる研修を導入するなど、時代に即した研修内容や実施方法となるよう充実を図った。令和３年度中に職員アンケートを実施し、前向きな行動ができているかなど、職員意識を把握した。",
                "階層別研修に「対話」を取り入れるとともに、コンプライアンス研修、次世代育成アカデミーを計画どおり実施した。職員アンケートでは前向きな行動の実感が増加したが、目標には届かなかった。",
                "AI・RPA活用研修を新設し、庁内インターンシップを開始した。研修理解度は目標を上回ったが、前向きな行動を実感する職員割合は目標を下回った。",
                "研修体系を見直し、全ての取組を計画どおり実施した。前向きな行動を実感する職員割合が初めて目標を達成した。",
                "計画期間の最終年度として全ての取組を計画どおり完了した。前向きな行動を実感する職員割合は２年続けて目標を達成した。",
            ],
            evaluations: [
                (A, "令和３年度の取組予定は全て着手できており、予定どおりに取組みができている。", Continue),
                (B, "取組は計画どおり実施したが、成果指標（前向きな行動の実感）が目標に届かなかった。", Continue),
                (B, "研修の受講者数・理解度は目標を達成したが、前向きな行動の実感は目標に届かなかった。", Continue),
                (A, "全ての指標で目標を達成した。", Continue),
                (A, "計画期間の全ての取組を完了し、全ての指標で目標を達成した。", Continue),
            ],
            direction: "毎年度、取組みの振り返りを行い、研修等の効果を測定して、次年度以降の取組みへとつなげる。",
            actuals: vec![
                survey("positive_behaviour", 2021, &[30.0, 38.0, 45.0, 50.0, 53.0], &[32.4, 39.1, 46.8, 51.2, 52.6]),
                survey("progress", 2021, &[20.0, 40.0, 60.0, 80.0, 100.0], &[20.0, 40.0, 60.0, 80.0, 100.0]),
            ],
        },
        Item {
            code: "2-1-1",
            title: "職員の意識改革",
            pillar: PILLAR,
            parent: Some("2-1"),
            status: ItemStatus::Continued,
            aim: "職場における執務を通じた人材育成（ＯＪＴ）と執務を離れた研修（Ｏｆｆ－ＪＴ）を適切に組み合わせながら、様々な手法や機会を設け人材育成に取り組むとともに、「新たな日常」を踏まえた対応を進めていきます。",
            related: RELATED,
            plan: HADANO_PLAN,
            indicators: vec![Ind {
                code: "want_management",
                name: "「管理職になりたいと思う」と回答する比率",
                description: "4～1級職員を対象とした職員アンケートにおいて「管理職になりたいと思う」と回答した職員の割合。※実績は、年度終了後に把握",
                kind: Outcome,
                unit: Unit::Percent,
                source: manual(),
                baseline: None,
                targets: every_year(ge, 30.0),
            }],
            planned: "【取組内容】1、職員研修における「対話」の推進 2、女性キャリアデザイン研修の実施 3、新採用職員がスムーズに職場に慣れるための環境づくり\n【取組目標】4～1級職員において、「管理職になりたいと思う」と回答する比率を高める。",
            results: [
                "1、階層別研修第１部から第８部研修、及び次世代育成アカデミーにおいて、「対話」を取り入れた研修内容とした。2、女性職員が自律的に自身のキャリアについて考えるための研修を実施した。3、人事課において、年2回の面談を実施するほか、不安等がある職員に対し、再面談を実施するなど、きめ細かく対応した。",
                "1、階層別研修において「対話」を取り入れた。2、女性職員キャリアデザイン研修を実施した。3、新採用職員にメンターを配置し、メンター面談を実施した。",
                "1、階層別研修・管理職研修で「対話」を推進した。2、女性職員キャリアデザイン研修にロールモデル職員との座談会を加えた。3、新採用職員への人事課面談・再面談を実施した。",
                "1、全階層の研修で「対話」を取り入れた。2、女性職員キャリアデザイン研修を継続実施した。3、新採用職員の職場定着に向け、OJT指導者とメンターの連携を強化した。",
                "1、全階層の研修で「対話」を継続した。2、女性職員キャリアデザイン研修に管理職との対話の場を設けた。3、新採用職員へのメンター面談を継続した。",
            ],
            evaluations: [
                (A, "階層別研修等において、「対話」を多く取り入れるとともに、女性キャリアデザイン研修において、今後のキャリアについて考える機会を創出した。また、新採用職員に対し、面談を通じ、心のケア等を図った。", Continue),
                (B, "取組は計画どおり実施したが、「管理職になりたいと思う」と回答する比率が目標を下回った。", Continue),
                (A, "「管理職になりたいと思う」と回答する比率が目標を上回った。", Continue),
                (A, "女性職員キャリアデザイン研修の継続等により、比率は目標を維持した。", Continue),
                (A, "「管理職になりたいと思う」と回答する比率は目標を上回った。", Continue),
            ],
            direction: "継続して実施する。",
            actuals: vec![survey("want_management", 2021, &[30.0, 28.0, 30.0, 31.0, 31.0], &[30.2, 29.1, 31.2, 30.5, 31.4])],
        },
        Item {
            code: "2-1-2",
            title: "研修内容の充実",
            pillar: PILLAR,
            parent: Some("2-1"),
            status: ItemStatus::Expanded,
            aim: "本市が求める職員像の理解を深めるとともに、市民との協働・連携、公正公平な市役所づくりを目指して、研修の目的や各階層に求める役割と能力を明確にし、今後の自身のキャリア形成の見通しを考えさせるなど、引き続き時代に即した研修内容の充実を図っていきます。",
            related: RELATED,
            plan: HADANO_PLAN,
            indicators: vec![Ind {
                code: "attendees",
                name: "職員研修の年間延べ受講者数",
                description: "研修計画に位置付けた研修の修了者の延べ人数（修了日の属する年度で計上）。※実績は、年度終了後に把握",
                kind: Activity,
                unit: Unit::People,
                source: rule(RuleName::TrainingCompletions, RuleParams::default()),
                baseline: None,
                targets: every_year(ge, 2300.0),
            }],
            planned: "【取組内容】1、業務効率化に向けたＩＣＴ活用研修の実施。2、研修手法の充実を図るため、リモート研修の導入。3、管理職のマネジメント能力の向上を図るための、研修の実施。\n【取組目標】研修計画に位置付けた研修の年間受講者数の増加を図る。",
            results: [
                "1、第１部、第２部、第３部及び第８部研修において、ＩＣＴ活用に向けた研修を実施した。2、階層別研修及び次世代育成アカデミーにおいて、リモート研修を取り入れた。3、第８部及び第９部研修において、マネジメント研修を実施した。",
                "1、ICT活用研修をオンラインで実施した。2、階層別研修の一部をリモート研修とした。3、管理職マネジメント研修を実施した。",
                "1、AI・RPA活用研修を新設した。2、集合研修とリモート研修を組み合わせて実施した。3、管理職マネジメント研修と人事評価者研修を連動させた。",
                "1、ICT・AI活用研修を継続実施した。2、eラーニングによる研修を拡充した。3、管理職マネジメント研修を実施した。",
                "1、生成AI活用研修を新設した。2、eラーニングとリモート研修を組み合わせて受講機会を広げた。3、管理職マネジメント研修を実施した。",
            ],
            evaluations: [
                (A, "各研修において、時代に即した研修内容の充実を図った。", Continue),
                (A, "年間延べ受講者数は目標の2,300人を上回った。", Continue),
                (A, "新設研修を含め、年間延べ受講者数は目標を上回った。", Expand),
                (A, "eラーニングの拡充により、年間延べ受講者数は目標を上回った。", Continue),
                (A, "生成AI活用研修の新設等により、年間延べ受講者数は目標を上回った。", Continue),
            ],
            direction: "継続して実施する。",
            actuals: Vec::new(),
        },
        Item {
            code: "2-1-3",
            title: "コンプライアンス意識の醸成",
            pillar: PILLAR,
            parent: Some("2-1"),
            status: ItemStatus::Continued,
            aim: "全職員が法令等を遵守し、事務を適切に執行し、誠実かつ公平に職務を行うとともに、組織の秩序を維持するため、組織としてコンプライアンスの推進を図っていきます。",
            related: RELATED,
            plan: HADANO_PLAN,
            indicators: vec![Ind {
                code: "incidents",
                name: "不適切な事務処理等の件数",
                description: "コンプライアンス推進に反する不適切な事務処理等の発生件数（発生日の属する年度で計上）",
                kind: Outcome,
                unit: Unit::Count,
                source: rule(RuleName::ComplianceIncidents, RuleParams::default()),
                baseline: None,
                targets: every_year(AtMost, 0.0),
            }],
            planned: "【取組内容】1、コンプライアンスの周知、啓発を階層別研修において実施する。2、基礎基本に立ち返る機会の創出。\n【取組目標】コンプライアンス推進に反する不適切な事務処理等の発生件数をゼロにする。",
            results: [
                "1、各階層別研修において、コンプライアンスに関しての周知を図るとともに、事例演習を通じて理解を深めた。2、第２部研修において、基礎基本に立ち返る研修を実施した。（新型コロナウイルスの影響により、公募は休止。）",
                "各階層別研修でコンプライアンスの事例演習を実施したが、通知書の誤送付など２件の不適切な事務処理が発生した。",
                "発生事例を全庁で共有し、チェックリストによる自己点検を導入した。",
                "自己点検を継続し、不適切な事務処理の発生はなかった。",
                "自己点検を継続したが、通知書の誤送付が１件発生した。発生事例を全庁で共有した。",
            ],
            evaluations: [
                (B, "各階層別研修において、コンプライアンスに関して周知を行うとともに、基礎基本に立ち返る研修を実施した。", Continue),
                (B, "研修は計画どおり実施したが、不適切な事務処理が２件発生した。", Continue),
                (B, "自己点検を導入したが、課税誤りが１件発生した。", Expand),
                (A, "不適切な事務処理の発生件数ゼロを達成した。", Continue),
                (B, "不適切な事務処理が１件発生し、発生件数ゼロを達成できなかった。", Expand),
            ],
            direction: "継続して実施する。",
            actuals: Vec::new(),
        },
        Item {
            code: "2-1-4",
            title: "知識・スキル向上の機会づくり",
            pillar: PILLAR,
            parent: Some("2-1"),
            status: ItemStatus::New,
            aim: "様々な経験を通して、能動的に行動できる職員を育成するため、時代に即した人材育成プログラムにより、職員の資質向上を図っていきます。",
            related: RELATED,
            plan: HADANO_PLAN,
            indicators: vec![Ind {
                code: "academy_rating",
                name: "政策提言発表会で「良かった」と回答する比率",
                description: "次世代育成アカデミーの政策提言発表会の参加者アンケートにおいて「良かった」と回答した割合",
                kind: Outcome,
                unit: Unit::Percent,
                source: manual(),
                baseline: None,
                targets: every_year(ge, 90.0),
            }],
            planned: "【取組内容】本市の現状や課題に関する知識、見識等を習得し、エビデンス（証拠）に基づく政策立案を行うことのできる職員を育成する。\n【取組目標】次世代育成アカデミー受講生の知識・スキルの向上を図り、政策提言発表会で「良かった」と回答する比率の向上を図る。",
            results: [
                "３人の大学教授等や庁内講師などから人口減少時代・情報化社会における「地方財政」、「まちづくり」、「ＡＩ・ＩＣＴ技術」など、様々な教えを受け、本市の課題等に対して、エビデンス（証拠）に基づく政策立案を行うことが出来る職員を育成した。",
                "次世代育成アカデミーを実施し、受講生12人が政策提言発表会で成果を報告した。",
                "大学教授等の講義とゼミ活動を通じ、データに基づく政策提言を行った。",
                "アカデミー修了生の提言の一部が事業化に向けて検討された。",
                "次世代育成アカデミーを実施し、受講生10人が政策提言発表会で成果を報告した。",
            ],
            evaluations: [
                (A, "３人の大学教授等の講師から、知識と見識を習得し、ゼミ活動においてエビデンスに基づく政策立案に取り組み、中間報告を経て、政策提言発表会において、研修の成果を報告した。", Continue),
                (B, "発表会の「良かった」の比率が目標をわずかに下回った。", Continue),
                (A, "発表会の「良かった」の比率が目標を上回った。", Continue),
                (A, "発表会の「良かった」の比率が目標を上回った。", Continue),
                (A, "発表会の「良かった」の比率が３年続けて目標を上回った。", Continue),
            ],
            direction: "継続して実施する。",
            actuals: vec![survey("academy_rating", 2021, &[90.0, 90.0, 92.0, 92.0, 92.0], &[92.3, 88.9, 93.5, 91.7, 92.8])],
        },
        Item {
            code: "O-1",
            title: "人財の能力開発と活用",
            pillar: "人財育成アクションプラン　Ⅱ「目指す職員の姿」実現への取組み",
            parent: None,
            status: ItemStatus::Expanded,
            aim: "職員は年1回以上研修に参加します。女性職員が更に活躍することができるよう、意欲を向上させ、能力や適性を活かして働くことのできる環境を整備します。人事評価面談を有効に活用し、所属長と職員の良いコミュニケーションを図ります。",
            related: "人財育成基本方針、特定事業主行動計画",
            plan: OSAKI_PLAN,
            indicators: vec![
                Ind {
                    code: "women_in_management",
                    name: "管理的地位にある女性職員の割合",
                    description: "特定事業主行動計画の指標。6級（課長級）以上の職員に占める女性職員の割合（各年度4月1日現在）",
                    kind: Outcome,
                    unit: Unit::Percent,
                    source: rule(
                        RuleName::WomenInManagementRate,
                        RuleParams {
                            min_grade: Some(grade(6)?),
                            ..RuleParams::default()
                        },
                    ),
                    baseline: Some((2021, 15.6)),
                    targets: vec![(2025, ge, 20.0)],
                },
                Ind {
                    code: "participation",
                    name: "年1回以上研修に参加した職員の割合",
                    description: "4月1日在職者のうち、当該年度に研修を1回以上修了した職員の割合",
                    kind: Activity,
                    unit: Unit::Percent,
                    source: rule(RuleName::TrainingParticipationRate, RuleParams::default()),
                    baseline: None,
                    targets: every_year(ge, 100.0),
                },
                Ind {
                    code: "evaluation_interviews",
                    name: "人事評価面談（期首・期末）の実施率",
                    description: "4月1日在職者のうち、当該年度に人事評価面談を2回以上実施した職員の割合",
                    kind: Activity,
                    unit: Unit::Percent,
                    source: rule(
                        RuleName::InterviewCoverage,
                        RuleParams {
                            min_per_year: Some(2),
                            kinds: Some(vec![InterviewKind::Evaluation]),
                            ..RuleParams::default()
                        },
                    ),
                    baseline: None,
                    targets: every_year(ge, 95.0),
                },
                Ind {
                    code: "rotation",
                    name: "窓口・事業・管理の3部門を経験した職員の割合",
                    description: "勤続10年以上の職員のうち、窓口・事業・管理の3部門すべてを経験した職員の割合（育成型ジョブローテーション）",
                    kind: Outcome,
                    unit: Unit::Percent,
                    source: rule(
                        RuleName::RotationCoverage,
                        RuleParams {
                            years: Some(10),
                            ..RuleParams::default()
                        },
                    ),
                    baseline: None,
                    targets: vec![(2025, ge, 85.0)],
                },
                Ind {
                    code: "dispatches",
                    name: "国、県等への職員派遣の人数",
                    description: "当該年度に派遣を開始した職員の人数",
                    kind: Activity,
                    unit: Unit::People,
                    source: rule(RuleName::DispatchCount, RuleParams::default()),
                    baseline: None,
                    targets: Vec::new(),
                },
                Ind {
                    code: "self_growth",
                    name: "職員意識調査「自己成長」の点数",
                    description: "職員意識調査のうち達成感やスキルアップに関する項目の点数（100点満点）。※実績は、年度終了後に把握",
                    kind: Outcome,
                    unit: Unit::Points,
                    source: manual(),
                    baseline: Some((2022, 59.0)),
                    targets: vec![(2025, ge, 65.0)],
                },
            ],
            planned: "【取組内容】1、研修計画の策定及び職員への周知 2、庁内研修の受講機会の確保（eラーニングの活用） 3、女性職員の活躍促進（キャリア形成支援） 4、人事評価面談の実施（期首・期末）\n【取組目標】職員は年1回以上研修に参加する。管理的地位にある女性職員の割合を令和７年度までに20％とする。",
            results: [
                "情報セキュリティ研修をeラーニングで全職員対象に実施した。人事評価面談を期首・期末に実施した。",
                "研修計画を全職員に周知し、女性職員キャリアデザイン研修を実施した。",
                "女性管理職のロールモデルとの座談会を実施した。庁内インターンシップを開始した。",
                "研修の受講機会確保のためeラーニングを拡充した。女性職員の管理職登用を進めた。",
                "女性職員の管理職登用を進め、管理的地位にある女性職員の割合は目標の20％に達した。",
            ],
            evaluations: [
                (B, "研修参加率は育児休業中・派遣中の職員等により100％に届かなかった。女性管理職比率は15.6％。", Continue),
                (B, "研修参加率は改善したが100％に届かなかった。女性管理職比率は上昇した。", Continue),
                (B, "女性管理職比率は計画どおり上昇したが、研修参加率は100％に届かなかった。", Expand),
                (B, "女性管理職比率は目標に向け上昇を続けている。研修参加率の向上が引き続き課題である。", Continue),
                (A, "女性管理職比率は目標の20％を達成した。研修参加率の向上は引き続き課題である。", Continue),
            ],
            direction: "休業中の職員の復帰後研修の受講機会を確保するとともに、女性職員のキャリア形成支援を拡充する。",
            actuals: vec![survey("self_growth", 2022, &[59.0, 61.0, 62.0, 64.0], &[59.0, 60.8, 62.3, 63.6])],
        },
        Item {
            code: "O-2",
            title: "ワーク・ライフ・バランスの推進",
            pillar: "人財育成アクションプラン　Ⅲ「目指す職場の姿」実現への取組み",
            parent: None,
            status: ItemStatus::Expanded,
            aim: "効率的な働き方を推進し、慢性的な長時間勤務の解消に取り組みます。年次有給休暇等を活用し、仕事と日常生活の両立を図ります。育児、介護等の各種支援制度を職員が主体的に活用できる職場づくりを推進します。",
            related: "人財育成基本方針、特定事業主行動計画",
            plan: OSAKI_PLAN,
            indicators: vec![
                Ind {
                    code: "overtime_over_240h",
                    name: "時間外勤務240時間超の職員割合",
                    description: "特定事業主行動計画の指標。年間の時間外勤務が240時間を超えた職員の割合",
                    kind: Outcome,
                    unit: Unit::Percent,
                    source: manual(),
                    baseline: Some((2021, 10.7)),
                    targets: vec![(2025, AtMost, 7.0)],
                },
                Ind {
                    code: "paid_leave_days",
                    name: "年次有給休暇の取得日数",
                    description: "特定事業主行動計画の指標。職員1人当たりの年次有給休暇の平均取得日数",
                    kind: Outcome,
                    unit: Unit::Days,
                    source: manual(),
                    baseline: Some((2021, 11.1)),
                    targets: vec![(2025, ge, 15.0)],
                },
                Ind {
                    code: "male_childcare_leave",
                    name: "男性職員の育児休業取得率",
                    description: "特定事業主行動計画の指標。当該年度に子が生まれた男性職員のうち育児休業を取得した職員の割合（取得者/対象者）",
                    kind: Outcome,
                    unit: Unit::Percent,
                    source: manual(),
                    baseline: Some((2021, 50.0)),
                    targets: every_year(ge, 10.0),
                },
                Ind {
                    code: "survey_environment",
                    name: "職員意識調査「環境」の点数",
                    description: "職員意識調査のうち働きやすい環境になっているかに関する項目の点数（100点満点）。※実績は、年度終了後に把握",
                    kind: Outcome,
                    unit: Unit::Points,
                    source: manual(),
                    baseline: Some((2022, 56.0)),
                    targets: vec![(2025, ge, 59.0)],
                },
            ],
            planned: "【取組内容】1、時間外勤務の事前命令の徹底と業務の平準化 2、年次有給休暇の計画的な取得促進 3、男性職員の育児休業取得の促進（対象職員への個別周知、所属長面談）\n【取組目標】時間外勤務240時間超の職員割合を令和７年度までに7％以内、年次有給休暇の取得日数を15日とする。",
            results: [
                "時間外勤務の事前命令を徹底し、所属長による業務の平準化を進めた。男性職員の育児休業取得について対象職員へ個別に周知した。",
                "年次有給休暇の取得計画表を全所属で作成し、計画的な取得を促進した。",
                "時間外勤務が多い所属へのヒアリングを実施した。男性職員の育児休業取得に向けた所属長面談を開始した。",
                "ノー残業デーを週2回に拡大した。職員意識調査の結果を所属ごとに共有した。",
                "業務の見直しとRPAの活用により時間外勤務を縮減した。年次有給休暇の連続取得を奨励した。",
            ],
            evaluations: [
                (B, "時間外勤務240時間超の職員割合は10.7％と高い水準にある。男性職員の育児休業取得率は目標を上回った。", Continue),
                (B, "時間外勤務の縮減は進んだが、年次有給休暇の取得日数は目標に届いていない。", Continue),
                (B, "時間外勤務240時間超の職員割合、年次有給休暇の取得日数とも改善したが、目標には届いていない。", Expand),
                (B, "各指標とも改善が続いている。職員意識調査「環境」の点数は目標に届いていない。", Continue),
                (B, "時間外勤務240時間超の職員割合は目標の7％以内を達成したが、年次有給休暇の取得日数は目標の15日に届かなかった。", Continue),
            ],
            direction: "時間外勤務の縮減を継続するとともに、年次有給休暇の取得日数の更なる向上に取り組む。",
            actuals: vec![
                payroll("overtime_over_240h", &[10.5, 10.2, 9.4, 8.3, 7.2], &[10.7, 10.1, 9.2, 8.1, 6.9]),
                payroll("paid_leave_days", &[11.5, 12.0, 12.8, 13.6, 14.5], &[11.1, 11.8, 12.6, 13.5, 14.2]),
                payroll("male_childcare_leave", &[45.0, 40.0, 45.0, 50.0, 60.0], &[50.0, 38.5, 46.2, 52.9, 61.1]),
                survey("survey_environment", 2022, &[56.0, 57.0, 58.0, 59.0], &[56.0, 57.1, 57.8, 58.6]),
            ],
        },
    ])
}

impl City {
    fn plan(&mut self, date: Date, code: &'static str, command: PlanCommand, reason: Option<&str>) {
        self.push(
            date,
            Op::Plan {
                code,
                command,
                reason: reason.map(str::to_string),
            },
        );
    }

    /// The plan items, adopted in March 2021, and their yearly cycle: estimates in February,
    /// confirmed survey results, 実績 and 自己評価 in May, publication of the sheet on the last
    /// weekday before May 31 (every year), one external evaluation, and a correction after
    /// publication.
    fn plan_items(&mut self) -> Result<(), DemoError> {
        let adopted = ymd(2021, 3, 25)?;
        for item in items()? {
            let mut indicators = Vec::new();
            for ind in item.indicators {
                indicators.push(ind.build()?);
            }
            let definition = PlanItemDefinition {
                code: code(item.code)?,
                title: text(item.title)?,
                pillar: text(item.pillar)?,
                parent_code: item.parent.map(code).transpose()?,
                lead_department: text(HR)?,
                status: item.status,
                aim: Some(text(item.aim)?),
                related_plans: Some(text(item.related)?),
                from_fiscal_year: fiscal_year(FIRST_FY)?,
                to_fiscal_year: fiscal_year(LAST_FY)?,
                plan: Some(text(item.plan)?),
            };
            self.plan(
                adopted,
                item.code,
                PlanCommand::Define {
                    item: definition,
                    indicators,
                },
                None,
            );
            for fy in FIRST_FY..=LAST_FY {
                let command = PlanCommand::RecordActivity {
                    fiscal_year: fiscal_year(fy)?,
                    planned: Some(text(item.planned)?),
                    result: None,
                };
                self.plan(plus(adopted, 1), item.code, command, None);
            }
            for fy in FIRST_FY..=LAST_FY {
                let i = fy_index(fy);
                let fiscal = fiscal_year(fy)?;
                for actuals in &item.actuals {
                    let Some(j) = usize::try_from(fy - actuals.from).ok() else {
                        continue;
                    };
                    if let Some(value) = actuals.estimates.get(j) {
                        let command = PlanCommand::ReportActual {
                            indicator_code: code(actuals.indicator)?,
                            fiscal_year: fiscal,
                            value: *value,
                            status: ActualStatus::Estimate,
                            note: Some(text("年度末時点の見込み")?),
                        };
                        self.plan(ymd(fy + 1, 2, 20)?, item.code, command, None);
                    }
                    if let Some(value) = actuals.confirmed.get(j) {
                        let command = PlanCommand::ReportActual {
                            indicator_code: code(actuals.indicator)?,
                            fiscal_year: fiscal,
                            value: *value,
                            status: ActualStatus::Confirmed,
                            note: Some(text(&actuals.source.note(fy))?),
                        };
                        self.plan(ymd(fy + 1, 5, 20)?, item.code, command, None);
                    }
                }
                if let (Some(result), Some((grade, reason, next_step))) =
                    (item.results.get(i), item.evaluations.get(i))
                {
                    let command = PlanCommand::RecordActivity {
                        fiscal_year: fiscal,
                        planned: None,
                        result: Some(text(result)?),
                    };
                    self.plan(ymd(fy + 1, 5, 25)?, item.code, command, None);
                    let command = PlanCommand::SelfEvaluate {
                        fiscal_year: fiscal,
                        grade: *grade,
                        reason: text(reason)?,
                        next_step: *next_step,
                        direction: Some(text(item.direction)?),
                    };
                    self.plan(ymd(fy + 1, 5, 28)?, item.code, command, None);
                }
                if item.evaluations.get(i).is_some() {
                    self.push(
                        last_weekday(ymd(fy + 1, 5, 30)?),
                        Op::Publish {
                            code: item.code,
                            fiscal_year: fiscal,
                            reason: None,
                        },
                    );
                }
            }
        }
        let command = PlanCommand::EvaluateExternally {
            fiscal_year: fiscal_year(2021)?,
            text: text("令和３年度の取組予定は全て着手できており、予定どおりに取組みができている。毎年度、取組みの振り返りを行い、研修等の効果を測定して、次年度以降の取組みへとつなげること。")?,
        };
        self.plan(ymd(2022, 8, 30)?, "2-1", command, None);
        let reason = "集計誤り（無効回答の除外漏れ）";
        let command = PlanCommand::CorrectActual {
            indicator_code: code("want_management")?,
            fiscal_year: fiscal_year(2022)?,
            value: 28.6,
            reason: text(reason)?,
        };
        self.plan(ymd(2023, 9, 5)?, "2-1-1", command, Some(reason));
        // The corrected figure is published as the FY2022 sheet's second version.
        self.push(
            ymd(2023, 9, 8)?,
            Op::Publish {
                code: "2-1-1",
                fiscal_year: fiscal_year(2022)?,
                reason: Some("「管理職になりたい」比率の集計誤りを訂正したため再公表".to_string()),
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn city() -> City {
        City::simulate().expect("the demo city")
    }

    fn april(fy: i32) -> Date {
        ymd(fy, 4, 1).expect("date")
    }

    #[test]
    fn the_same_seed_builds_the_same_city() {
        let (a, b) = (city(), city());
        assert_eq!(a.ops.len(), b.ops.len());
        for (x, y) in a.ops.iter().zip(&b.ops) {
            assert_eq!(format!("{x:?}"), format!("{y:?}"));
        }
    }

    /// Replays the commands in log order: everyone a command names is registered by then,
    /// and people are in service when they attend, are interviewed or interview.
    #[test]
    fn every_command_names_staff_registered_and_in_service_at_the_time() {
        let city = city();
        let person: BTreeMap<Uuid, &Person> = city.people.iter().map(|p| (p.id, p)).collect();
        let serving = |id: &Uuid, on: Date| person.get(id).is_some_and(|p| p.in_service(on));
        let mut registered = BTreeSet::new();
        for (n, (_, op)) in city.ops.iter().enumerate() {
            let named: Vec<Uuid> = match op {
                Op::Register(s) => {
                    registered.insert(s.id);
                    Vec::new()
                }
                Op::Staff { id, .. }
                | Op::Dispute { staff: id, .. }
                | Op::ResolveDispute { staff: id, .. } => vec![*id],
                Op::Interview {
                    staff,
                    interviewer,
                    held_on,
                    ..
                } => {
                    assert!(
                        serving(staff, *held_on),
                        "command {n}: interviewee not in service"
                    );
                    assert!(
                        serving(interviewer, *held_on),
                        "command {n}: interviewer not in service"
                    );
                    vec![*staff, *interviewer]
                }
                Op::Evaluation {
                    staff, evaluation, ..
                } => vec![*staff, evaluation.evaluator_id],
                Op::Enrol { staff, .. } => vec![*staff],
                Op::Attend {
                    staff,
                    completed_on,
                    ..
                } => {
                    assert!(
                        serving(staff, *completed_on),
                        "command {n}: attendee not in service"
                    );
                    vec![*staff]
                }
                Op::Session { .. } | Op::Incident { .. } | Op::Plan { .. } | Op::Publish { .. } => {
                    Vec::new()
                }
            };
            for id in named {
                assert!(
                    registered.contains(&id),
                    "command {n} names unregistered {id}: {op:?}"
                );
            }
        }
    }

    #[test]
    fn retirements_follow_the_rising_retirement_age() {
        assert_eq!(separation_fy(1960), 2021);
        assert_eq!(separation_fy(1962), 2023);
        assert_eq!(separation_fy(1963), 2025);
        assert_eq!(separation_fy(1964), 2027);
        let city = city();
        let retired = |fy: i32| {
            city.ops
                .iter()
                .filter(|(date, op)| {
                    *date == april(fy)
                        && matches!(
                            op,
                            Op::Staff {
                                command: StaffCommand::Separate {
                                    reason: SeparationReason::Retirement,
                                    ..
                                },
                                ..
                            }
                        )
                })
                .count()
        };
        assert_eq!(
            retired(2024),
            0,
            "nobody reaches the retirement age in FY2023"
        );
        for fy in [2021, 2022, 2023, 2025] {
            assert!((20..=45).contains(&retired(fy)), "{fy}: {}", retired(fy));
        }
    }

    #[test]
    fn about_a_thousand_staff_serve_each_april_and_every_department_has_a_manager() {
        let city = city();
        for fy in FIRST_FY..=LAST_FY {
            let d = april(fy);
            let serving: Vec<&Person> = city.people.iter().filter(|p| p.in_service(d)).collect();
            assert!(
                (980..=1030).contains(&serving.len()),
                "{fy}: {}",
                serving.len()
            );
            for (u, unit) in UNITS.iter().enumerate().filter(|(_, u)| !u.dispatch) {
                let managed = serving
                    .iter()
                    .any(|p| p.unit_on(d) == u && p.grade_on(d) >= 6);
                assert!(managed, "{fy}: {} has no manager", unit.name);
            }
        }
    }

    #[test]
    fn women_in_management_rise_from_15_6_to_20_percent() {
        let city = city();
        let rates: Vec<f64> = (FIRST_FY..=LAST_FY)
            .map(|fy| {
                let d = april(fy);
                let managers: Vec<&Person> = city
                    .people
                    .iter()
                    .filter(|p| p.in_service(d) && p.grade_on(d) >= 6)
                    .collect();
                let women = managers
                    .iter()
                    .filter(|p| p.gender == Gender::Female)
                    .count();
                (1000.0 * women as f64 / managers.len() as f64).round() / 10.0
            })
            .collect();
        assert_eq!(rates, vec![15.6, 16.7, 17.9, 18.9, 20.0]);
    }

    #[test]
    fn every_year_is_published_at_the_end_of_may_after_its_self_evaluation() {
        let city = city();
        let mut published: BTreeMap<(&str, i32), Date> = BTreeMap::new();
        let mut evaluated: BTreeMap<(&str, i32), Date> = BTreeMap::new();
        for (date, op) in &city.ops {
            match op {
                Op::Publish {
                    code,
                    fiscal_year,
                    reason: None,
                } => {
                    published.insert((*code, fiscal_year.year()), *date);
                }
                Op::Plan {
                    code,
                    command: PlanCommand::SelfEvaluate { fiscal_year, .. },
                    ..
                } => {
                    evaluated.insert((*code, fiscal_year.year()), *date);
                }
                _ => {}
            }
        }
        assert_eq!(published.len(), PLAN_CODES.len() * 5);
        for ((code, fy), date) in &published {
            assert_eq!((date.year(), date.month()), (fy + 1, 5), "{code} FY{fy}");
            assert!(
                date.day() >= 27 && date.day() <= 30,
                "{code} FY{fy}: {date}"
            );
            assert!(is_weekday(*date), "{code} FY{fy}: {date}");
            assert!(evaluated[&(*code, *fy)] <= *date, "{code} FY{fy}");
        }
    }

    #[test]
    fn commands_are_stamped_in_office_hours_of_their_day_in_jst() {
        let day = |y, m, d| ymd(y, m, d).expect("date");
        let dates = vec![day(2024, 4, 1), day(2024, 4, 1), day(2024, 5, 30)];
        let mut events: Vec<backup::EventLine> = (1..=4)
            .map(|n: usize| backup::EventLine {
                position: n as i64,
                recorded_at: 0,
                aggregate_type: "Staff".into(),
                aggregate_id: "a".into(),
                sequence: n as i64,
                event_type: "X".into(),
                event_version: "1".into(),
                payload: serde_json::Value::Null,
                metadata: serde_json::json!({"request_id": format!("demo-{:06}", n.min(3))}),
                hash: String::new(),
            })
            .collect();
        stamp(&mut events, &dates).expect("stamp");
        let jst = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms + 9 * 3_600_000)
                .expect("time")
                .naive_utc()
                .to_string()
        };
        assert_eq!(jst(events[0].recorded_at), "2024-04-01 11:50:00");
        assert_eq!(jst(events[1].recorded_at), "2024-04-01 14:40:00");
        // Events of one request share its time.
        assert_eq!(jst(events[2].recorded_at), "2024-05-30 13:15:00");
        assert_eq!(events[3].recorded_at, events[2].recorded_at);
    }
}
