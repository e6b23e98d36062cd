//! The indicator rules of SPEC §4 over a bitemporal fact store.
//!
//! [`Facts`] is folded from the log once, in position order. Every fact it keeps remembers the
//! position of the event that created it (`from`) and, when a later event superseded it, the
//! position of that event (`to`). A fact is visible "as the log stood at position `at`" when
//! `from <= at` and it was not yet superseded at `at`. Corrections close the old fact and open a
//! new one, so both states stay queryable; revocations and withdrawals close facts; grade,
//! department and service entries are visible from their position on. Any indicator can
//! therefore be computed as of any past position without replaying the log.
//!
//! Facts that are counted per fiscal year (completions, interviews, dispatches, incidents) are
//! indexed by the fiscal year of their valid date, so a query only scans that year; head-count
//! rules additionally scan the staff list once.

use crate::pieces::{self, Pieces, PiecesOf, Segmented, Stored, Unreadable};
use crate::{LedgerEvent, Recorded};
use kiroku_domain::dates::{covers, in_force};
use kiroku_domain::incident::IncidentEvent;
use kiroku_domain::plan::{PlanEvent, RuleName, RuleParams};
use kiroku_domain::session::SessionEvent;
use kiroku_domain::staff::{StaffEvent, STAFF_NAMESPACE};
use kiroku_domain::values::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The indexes from ids to facts, kept while folding and derived again when the pieces are
/// read back: hashed with foldhash, randomly seeded. SipHash (std's default) made building
/// them a sixth of a start at 5M events.
type Index<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use uuid::Uuid;

/// Whether a fact created at `from` and superseded at `to` is part of the log as it stood at `at`.
pub(crate) fn visible(from: i64, to: Option<i64>, at: i64) -> bool {
    from <= at && to.is_none_or(|t| t > at)
}

/// A percentage `100 × numerator ÷ denominator` rounded half away from zero to one decimal;
/// `None` for an empty denominator (SPEC §4). Computed in integers, so exact halves such as
/// 1/16 = 6.25 % → 6.3 % never suffer from binary rounding.
pub fn round_rate(numerator: usize, denominator: usize) -> Option<f64> {
    if denominator == 0 {
        return None;
    }
    let (n, d) = (numerator as u128, denominator as u128);
    // floor(1000 n / d + 1/2): half up, which is half away from zero for non-negative values.
    let tenths = (2000 * n + d) / (2 * d);
    Some(tenths as f64 / 10.0)
}

/// The latest manual actual of an indicator for a fiscal year, as the log stood at a position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ManualActual {
    pub value: f64,
    /// `estimate` or `confirmed`; a correction keeps the status of the report it corrects.
    pub status: ActualStatus,
    /// The position of the ActualReported / ActualCorrected event that gave this value.
    pub position: i64,
}

/// A grade or department kind with the date it takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Dated<T> {
    value: T,
    effective_on: Date,
    from: i64,
}

/// A period of service `[start, end)`. The start is visible from `from`; the separation that
/// ends it is visible from its own position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Period {
    start: Date,
    from: i64,
    /// The separation's effective date and the position that recorded it.
    end: Option<(Date, i64)>,
}

impl Period {
    /// The end of the period as the log stood at `at`.
    fn end_at(&self, at: i64) -> Option<Date> {
        self.end.filter(|(_, pos)| *pos <= at).map(|(d, _)| d)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct StaffFacts {
    pub(crate) gender: Option<Gender>,
    periods: Vec<Period>,
    grades: Vec<Dated<Grade>>,
    departments: Vec<Dated<DepartmentKind>>,
}

impl StaffFacts {
    fn in_service_on(&self, date: Date, at: i64) -> bool {
        self.periods
            .iter()
            .any(|p| p.from <= at && covers(p.start, p.end_at(at), date))
    }

    /// The latest entry with `effective_on <= date` among those recorded at or before `at`;
    /// ties go to the later position (entries are kept in position order).
    fn on<T: Copy>(entries: &[Dated<T>], date: Date, at: i64) -> Option<T> {
        let recorded = entries.iter().take_while(|e| e.from <= at);
        in_force(recorded, date, |e| e.effective_on).map(|e| e.value)
    }

    pub(crate) fn grade_on(&self, date: Date, at: i64) -> Option<Grade> {
        Self::on(&self.grades, date, at)
    }

    /// Years of service on `date`: the service periods (as the log stood at `at`) are cut at
    /// `date`, their lengths in days summed, and the sum laid back from `date` as if it were
    /// one continuous period; the completed calendar years of that span are the answer. For a
    /// single unbroken period this is exactly the completed years since the hire date
    /// (hired 2014-04-01 → 10 years on 2024-04-01, hired 2014-04-02 → 9).
    pub(crate) fn years_of_service(&self, date: Date, at: i64) -> u32 {
        let days: i64 = self
            .periods
            .iter()
            .filter(|p| p.from <= at && p.start < date)
            .map(|p| {
                let end = p.end_at(at).map_or(date, |e| e.min(date));
                (end - p.start).num_days().max(0)
            })
            .sum();
        let start = u64::try_from(days)
            .ok()
            .and_then(|d| date.checked_sub_days(chrono::Days::new(d)));
        start.map_or(0, |start| completed_years(start, date))
    }

    /// Whether the staff member has served in all three department kinds with entries
    /// (registration, rehire, transfers) effective on or before `date`.
    pub(crate) fn served_all_kinds(&self, date: Date, at: i64) -> bool {
        let mut seen = [false; 3];
        for entry in self.departments.iter().take_while(|e| e.from <= at) {
            if entry.effective_on <= date {
                seen[kind_index(entry.value)] = true;
            }
        }
        seen.iter().all(|s| *s)
    }
}

fn kind_index(kind: DepartmentKind) -> usize {
    match kind {
        DepartmentKind::FrontOffice => 0,
        DepartmentKind::Program => 1,
        DepartmentKind::Administration => 2,
    }
}

/// Completed calendar years from `start` to `end` (0 when `end` precedes `start`).
fn completed_years(start: Date, end: Date) -> u32 {
    use chrono::Datelike;
    let mut years = end.year() - start.year();
    if (end.month(), end.day()) < (start.month(), start.day()) {
        years -= 1;
    }
    u32::try_from(years).unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SessionFacts {
    category: TrainingCategory,
    provider: Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct CompletionFact {
    /// Indexes into the sessions and the staff, in 32 bits (see [`small`]): one completion
    /// fact per completion, 48 bytes with `usize` and 40 with these.
    pub(crate) session: u32,
    pub(crate) staff: u32,
    completed_on: Date,
    pub(crate) understanding: Option<Understanding>,
    pub(crate) from: i64,
    pub(crate) to: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct InterviewFact {
    id: Uuid,
    pub(crate) staff: usize,
    pub(crate) kind: InterviewKind,
    held_on: Date,
    pub(crate) from: i64,
    pub(crate) to: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct IncidentFact {
    id: Uuid,
    pub(crate) from: i64,
    pub(crate) to: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct ActualFact {
    value: f64,
    status: ActualStatus,
    from: i64,
    to: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct TargetFact {
    op: TargetOp,
    value: f64,
    from: i64,
    to: Option<i64>,
}

/// Where an open (not yet superseded) fact lives: its fiscal-year bucket and index.
type Slot = (FiscalYear, u32);

/// An index into the facts as an index's key or slot keeps it: 32 bits, which halves the
/// standing completions' index (one entry per completion: 138 → 71 MB of a 5M-event state,
/// twice that while the table grows). Four billion staff, sessions or facts of one fiscal
/// year do not occur; past that the index would name the last one.
fn small(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

/// Per plan item → indicator code → fiscal year, the facts in position order.
type PlanFacts<T> = BTreeMap<String, BTreeMap<String, BTreeMap<FiscalYear, Vec<T>>>>;

/// The bitemporal fact store behind every computed indicator. See the module documentation.
///
/// Kept in pieces (see [`crate::pieces`]): the vectors that grow with the log are segmented,
/// and the indexes from ids to where a fact lives are not stored but derived again when the
/// pieces are read back ([`Facts::restore`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Facts {
    last_position: Option<i64>,
    /// Staff ids in the order they were first seen: the index of each in `staff`.
    staff_uuids: Segmented<Uuid>,
    #[serde(skip)]
    staff_ids: Index<Uuid, usize>,
    pub(crate) staff: Segmented<StaffFacts>,
    /// Session ids in the order they were first seen: the index of each in `sessions`.
    session_uuids: Segmented<Uuid>,
    #[serde(skip)]
    session_ids: Index<Uuid, usize>,
    sessions: Segmented<Option<SessionFacts>>,
    pub(crate) completions: BTreeMap<FiscalYear, Segmented<CompletionFact>>,
    /// (session, staff) → the standing completion.
    #[serde(skip)]
    open_completions: Index<(u32, u32), Slot>,
    pub(crate) interviews: BTreeMap<FiscalYear, Segmented<InterviewFact>>,
    /// (staff, interview id) → the standing interview.
    #[serde(skip)]
    open_interviews: Index<(usize, Uuid), Slot>,
    /// Positions of dispatch transfers by the fiscal year of their effective date, ascending.
    pub(crate) dispatches: BTreeMap<FiscalYear, Segmented<i64>>,
    pub(crate) incidents: BTreeMap<FiscalYear, Segmented<IncidentFact>>,
    #[serde(skip)]
    open_incidents: Index<Uuid, Slot>,
    actuals: PlanFacts<ActualFact>,
    targets: PlanFacts<TargetFact>,
    /// Registrations, separations and rehires: (effective date, position), in position order.
    /// They shape who is in service (and for how long) on a reference date.
    pub(crate) service_events: Segmented<(Date, i64)>,
    /// Grade changes: (effective date, position), in position order.
    pub(crate) grade_events: Segmented<(Date, i64)>,
    /// Transfers of every kind: (effective date, position), in position order.
    pub(crate) department_events: Segmented<(Date, i64)>,
}

impl Facts {
    /// What grows with the plans, not with the log: one piece, written every time.
    fn plan_piece(&self) -> Result<Vec<u8>, pieces::Unencodable> {
        Ok(serde_json::to_vec(&(
            &self.last_position,
            &self.actuals,
            &self.targets,
        ))?)
    }

    /// Each part kept in pieces, by name.
    fn parts(&self) -> [(&'static str, &dyn PiecesOf); 11] {
        [
            ("staff_uuids", &self.staff_uuids),
            ("staff", &self.staff),
            ("session_uuids", &self.session_uuids),
            ("sessions", &self.sessions),
            ("completions", &self.completions),
            ("interviews", &self.interviews),
            ("dispatches", &self.dispatches),
            ("incidents", &self.incidents),
            ("service_events", &self.service_events),
            ("grade_events", &self.grade_events),
            ("department_events", &self.department_events),
        ]
    }
}

impl Pieces for Facts {
    fn keys(&self, prefix: &str, all: bool, out: &mut Vec<String>) {
        out.push(prefix.to_string());
        for (name, part) in self.parts() {
            part.keys_of(&format!("{prefix}.{name}"), all, out);
        }
    }

    fn encode(&self, prefix: &str, key: &str) -> pieces::Encoded {
        if key == prefix {
            return self.plan_piece().map(Some);
        }
        let Some(wanted) = pieces::part(prefix, key) else {
            return Ok(None);
        };
        match self.parts().into_iter().find(|(name, _)| *name == wanted) {
            Some((name, part)) => part.encode_of(&format!("{prefix}.{name}"), key),
            None => Ok(None),
        }
    }

    fn take(prefix: &str, stored: &mut Stored) -> Result<Self, Unreadable> {
        type Plan = (Option<i64>, PlanFacts<ActualFact>, PlanFacts<TargetFact>);
        let (last_position, actuals, targets): Plan = pieces::read_whole(prefix, stored)?;
        let at = |name: &str| format!("{prefix}.{name}");
        let mut facts = Facts {
            last_position,
            staff_uuids: Pieces::take(&at("staff_uuids"), stored)?,
            staff: Pieces::take(&at("staff"), stored)?,
            session_uuids: Pieces::take(&at("session_uuids"), stored)?,
            sessions: Pieces::take(&at("sessions"), stored)?,
            completions: Pieces::take(&at("completions"), stored)?,
            interviews: Pieces::take(&at("interviews"), stored)?,
            dispatches: Pieces::take(&at("dispatches"), stored)?,
            incidents: Pieces::take(&at("incidents"), stored)?,
            service_events: Pieces::take(&at("service_events"), stored)?,
            grade_events: Pieces::take(&at("grade_events"), stored)?,
            department_events: Pieces::take(&at("department_events"), stored)?,
            actuals,
            targets,
            ..Facts::default()
        };
        if facts.staff_uuids.len() != facts.staff.len()
            || facts.session_uuids.len() != facts.sessions.len()
        {
            return Err(Unreadable("facts: ids and records differ in length".into()));
        }
        facts.index();
        Ok(facts)
    }
}

/// The slots of the standing facts (those not superseded) in `buckets`, by `key`.
fn standing<T, K: Eq + std::hash::Hash>(
    buckets: &BTreeMap<FiscalYear, Segmented<T>>,
    to: impl Fn(&T) -> Option<i64>,
    key: impl Fn(&T) -> K,
) -> Index<K, Slot> {
    let total = buckets.values().map(|facts| facts.len()).sum();
    let mut open = Index::with_capacity_and_hasher(total, Default::default());
    for (fy, facts) in buckets {
        for (index, fact) in facts.iter().enumerate() {
            if to(fact).is_none() {
                open.insert(key(fact), (*fy, small(index)));
            }
        }
    }
    open
}

fn uuid_of(aggregate_id: &str) -> Uuid {
    // Aggregate ids are UUIDs written by the application; anything else gets a stable stand-in
    // (the same one the staff histories use).
    Uuid::parse_str(aggregate_id)
        .unwrap_or_else(|_| Uuid::new_v5(&STAFF_NAMESPACE, aggregate_id.as_bytes()))
}

/// Closes the fact at `slot` (if any) at `position` and returns a copy of it.
fn close<T: Copy>(
    buckets: &mut BTreeMap<FiscalYear, Segmented<T>>,
    slot: Option<Slot>,
    position: i64,
    to: impl Fn(&mut T) -> &mut Option<i64>,
) -> Option<T> {
    let (fy, index) = slot?;
    let fact = buckets.get_mut(&fy)?.get_mut(index as usize)?;
    *to(fact) = Some(position);
    Some(*fact)
}

/// Appends a fact to its fiscal-year bucket and returns where it lives.
fn open<T>(buckets: &mut BTreeMap<FiscalYear, Segmented<T>>, fy: FiscalYear, fact: T) -> Slot {
    let bucket = buckets.entry(fy).or_default();
    bucket.push(fact);
    (fy, small(bucket.len() - 1))
}

/// Appends the position that opened a fact and, if it was superseded by then, the one that
/// closed it, as far as they lie at or before `at`.
pub(crate) fn span_positions(from: i64, to: Option<i64>, at: i64, out: &mut Vec<i64>) {
    if from <= at {
        out.push(from);
    }
    if let Some(to) = to.filter(|t| *t <= at) {
        out.push(to);
    }
}

/// Appends the positions (`<= at`) of the `(effective date, position)` entries effective on or
/// before `date`; `entries` are in position order.
pub(crate) fn dated_positions(entries: &[(Date, i64)], date: Date, at: i64, out: &mut Vec<i64>) {
    out.extend(
        entries
            .iter()
            .take_while(|(_, p)| *p <= at)
            .filter(|(d, _)| *d <= date)
            .map(|(_, p)| *p),
    );
}

/// The facts of one (item, indicator, fiscal year) in `facts`, if any.
fn plan_facts<'a, T>(
    facts: &'a PlanFacts<T>,
    item: &str,
    indicator: &str,
    fy: FiscalYear,
) -> Option<&'a [T]> {
    facts.get(item)?.get(indicator)?.get(&fy).map(Vec::as_slice)
}

/// The entries of one (item, indicator, fiscal year), created if missing.
fn plan_entry<'a, T>(
    facts: &'a mut PlanFacts<T>,
    item: &str,
    indicator: &Code,
    fy: FiscalYear,
) -> &'a mut Vec<T> {
    facts
        .entry(item.to_string())
        .or_default()
        .entry(indicator.as_str().to_string())
        .or_default()
        .entry(fy)
        .or_default()
}

impl Facts {
    /// The indexes derived from the facts: where each id lives, and each standing fact.
    fn index(&mut self) {
        self.staff_ids = self
            .staff_uuids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i))
            .collect();
        self.session_ids = (self.session_uuids.iter().enumerate())
            .map(|(i, id)| (*id, i))
            .collect();
        self.open_completions = standing(&self.completions, |f| f.to, |f| (f.session, f.staff));
        self.open_interviews = standing(&self.interviews, |f| f.to, |f| (f.staff, f.id));
        self.open_incidents = standing(&self.incidents, |f| f.to, |f| f.id);
    }

    /// The position of the last event applied, if any.
    pub fn position(&self) -> Option<i64> {
        self.last_position
    }

    /// Folds one event in. Events must come in increasing position; an event at or before the
    /// last applied position is a re-delivery and is ignored, so applying is idempotent.
    pub fn apply(&mut self, recorded: &Recorded) {
        if self
            .last_position
            .is_some_and(|last| recorded.position <= last)
        {
            return;
        }
        self.last_position = Some(recorded.position);
        let position = recorded.position;
        let id = uuid_of(&recorded.aggregate_id);
        match &recorded.event {
            LedgerEvent::Staff(event) => self.apply_staff(id, position, event),
            LedgerEvent::Session(event) => self.apply_session(id, position, event),
            LedgerEvent::Incident(event) => self.apply_incident(position, event),
            LedgerEvent::Plan(event) => self.apply_plan(&recorded.aggregate_id, position, event),
        }
    }

    fn staff_index(&mut self, id: Uuid) -> usize {
        let next = self.staff.len();
        let index = *self.staff_ids.entry(id).or_insert(next);
        if index == next {
            self.staff_uuids.push(id);
            self.staff.push(StaffFacts::default());
        }
        index
    }

    fn session_index(&mut self, id: Uuid) -> usize {
        let next = self.sessions.len();
        let index = *self.session_ids.entry(id).or_insert(next);
        if index == next {
            self.session_uuids.push(id);
            self.sessions.push(None);
        }
        index
    }

    /// A registration or rehire: a period of service starting on `on`, with its grade and
    /// department kind from that day.
    fn start_period(
        &mut self,
        staff: usize,
        on: Date,
        grade: Grade,
        kind: DepartmentKind,
        position: i64,
    ) {
        self.service_events.push((on, position));
        let Some(facts) = self.staff.get_mut(staff) else {
            return;
        };
        facts.periods.push(Period {
            start: on,
            from: position,
            end: None,
        });
        facts.grades.push(Dated {
            value: grade,
            effective_on: on,
            from: position,
        });
        facts.departments.push(Dated {
            value: kind,
            effective_on: on,
            from: position,
        });
    }

    fn apply_staff(&mut self, id: Uuid, position: i64, event: &StaffEvent) {
        let staff = self.staff_index(id);
        match event {
            StaffEvent::StaffRegistered(r) => {
                if let Some(facts) = self.staff.get_mut(staff) {
                    facts.gender = Some(r.gender);
                }
                self.start_period(staff, r.hired_on, r.grade, r.department_kind, position);
            }
            StaffEvent::GradeChanged {
                grade,
                effective_on,
                reason: _,
            } => {
                self.grade_events.push((*effective_on, position));
                if let Some(facts) = self.staff.get_mut(staff) {
                    facts.grades.push(Dated {
                        value: *grade,
                        effective_on: *effective_on,
                        from: position,
                    });
                }
            }
            StaffEvent::StaffTransferred {
                to_department: _,
                department_kind,
                effective_on,
                kind,
            } => {
                self.department_events.push((*effective_on, position));
                if let Some(facts) = self.staff.get_mut(staff) {
                    facts.departments.push(Dated {
                        value: *department_kind,
                        effective_on: *effective_on,
                        from: position,
                    });
                }
                match kind {
                    TransferKind::Dispatch => self
                        .dispatches
                        .entry(FiscalYear::of(*effective_on))
                        .or_default()
                        .push(position),
                    TransferKind::Regular | TransferKind::Internship | TransferKind::Return => {}
                }
            }
            StaffEvent::StaffSeparated {
                effective_on,
                reason: _,
            } => {
                self.service_events.push((*effective_on, position));
                let current = self
                    .staff
                    .get_mut(staff)
                    .and_then(|f| f.periods.iter_mut().rev().find(|p| p.end.is_none()));
                if let Some(period) = current {
                    period.end = Some((*effective_on, position));
                }
            }
            StaffEvent::StaffRehired(r) => {
                self.start_period(staff, r.effective_on, r.grade, r.department_kind, position);
            }
            StaffEvent::InterviewRecorded(i) => {
                let key = (staff, i.interview_id);
                let old = self.open_interviews.remove(&key);
                close(&mut self.interviews, old, position, |f| &mut f.to);
                let fact = InterviewFact {
                    id: i.interview_id,
                    staff,
                    kind: i.kind,
                    held_on: i.held_on,
                    from: position,
                    to: None,
                };
                let slot = open(&mut self.interviews, FiscalYear::of(i.held_on), fact);
                self.open_interviews.insert(key, slot);
            }
            StaffEvent::InterviewCorrected {
                interview_id,
                kind,
                held_on,
                note: _,
                reason: _,
            } => {
                let key = (staff, *interview_id);
                let old = self.open_interviews.remove(&key);
                if let Some(old) = close(&mut self.interviews, old, position, |f| &mut f.to) {
                    let fact = InterviewFact {
                        kind: kind.unwrap_or(old.kind),
                        held_on: held_on.unwrap_or(old.held_on),
                        from: position,
                        to: None,
                        ..old
                    };
                    let slot = open(&mut self.interviews, FiscalYear::of(fact.held_on), fact);
                    self.open_interviews.insert(key, slot);
                }
            }
            StaffEvent::InterviewWithdrawn {
                interview_id,
                reason: _,
            } => {
                let old = self.open_interviews.remove(&(staff, *interview_id));
                close(&mut self.interviews, old, position, |f| &mut f.to);
            }
            StaffEvent::EvaluationRecorded(_)
            | StaffEvent::EvaluationCorrected { .. }
            | StaffEvent::EvaluationDisputed { .. }
            | StaffEvent::DisputeResolved { .. }
            | StaffEvent::PersonalDataErased { .. } => {}
        }
    }

    fn apply_session(&mut self, id: Uuid, position: i64, event: &SessionEvent) {
        let session = self.session_index(id);
        match event {
            SessionEvent::SessionScheduled(schedule) => {
                if let Some(facts) = self.sessions.get_mut(session) {
                    *facts = Some(SessionFacts {
                        category: schedule.category,
                        provider: schedule.provider.clone(),
                    });
                }
            }
            SessionEvent::StaffEnrolled { .. }
            | SessionEvent::EnrolmentCancelled { .. }
            | SessionEvent::WaitlistPromoted { .. } => {}
            SessionEvent::TrainingCompleted {
                staff_id,
                completed_on,
                understanding,
            } => {
                let staff = self.staff_index(*staff_id);
                let key = (small(session), small(staff));
                let old = self.open_completions.remove(&key);
                close(&mut self.completions, old, position, |f| &mut f.to);
                let fact = CompletionFact {
                    session: key.0,
                    staff: key.1,
                    completed_on: *completed_on,
                    understanding: *understanding,
                    from: position,
                    to: None,
                };
                let slot = open(&mut self.completions, FiscalYear::of(*completed_on), fact);
                self.open_completions.insert(key, slot);
            }
            SessionEvent::CompletionCorrected {
                staff_id,
                completed_on,
                understanding,
                reason: _,
            } => {
                let staff = self.staff_index(*staff_id);
                let key = (small(session), small(staff));
                let old = self.open_completions.remove(&key);
                if let Some(old) = close(&mut self.completions, old, position, |f| &mut f.to) {
                    let fact = CompletionFact {
                        completed_on: completed_on.unwrap_or(old.completed_on),
                        understanding: understanding.or(old.understanding),
                        from: position,
                        to: None,
                        ..old
                    };
                    let fy = FiscalYear::of(fact.completed_on);
                    let slot = open(&mut self.completions, fy, fact);
                    self.open_completions.insert(key, slot);
                }
            }
            SessionEvent::CompletionRevoked {
                staff_id,
                reason: _,
            } => {
                let staff = self.staff_index(*staff_id);
                let old = self
                    .open_completions
                    .remove(&(small(session), small(staff)));
                close(&mut self.completions, old, position, |f| &mut f.to);
            }
        }
    }

    fn apply_incident(&mut self, position: i64, event: &IncidentEvent) {
        match event {
            IncidentEvent::ComplianceIncidentRecorded {
                incident_id,
                occurred_on,
                department: _,
                summary: _,
            } => {
                let old = self.open_incidents.remove(incident_id);
                close(&mut self.incidents, old, position, |f| &mut f.to);
                let fact = IncidentFact {
                    id: *incident_id,
                    from: position,
                    to: None,
                };
                let slot = open(&mut self.incidents, FiscalYear::of(*occurred_on), fact);
                self.open_incidents.insert(*incident_id, slot);
            }
            IncidentEvent::ComplianceIncidentWithdrawn {
                incident_id,
                reason: _,
            } => {
                let old = self.open_incidents.remove(incident_id);
                close(&mut self.incidents, old, position, |f| &mut f.to);
            }
        }
    }

    fn apply_plan(&mut self, item: &str, position: i64, event: &PlanEvent) {
        match event {
            PlanEvent::TargetSet {
                indicator_code,
                fiscal_year,
                op,
                value,
            } => {
                let entries = plan_entry(&mut self.targets, item, indicator_code, *fiscal_year);
                if let Some(previous) = entries.last_mut() {
                    previous.to = Some(position);
                }
                entries.push(TargetFact {
                    op: *op,
                    value: *value,
                    from: position,
                    to: None,
                });
            }
            PlanEvent::ActualReported {
                indicator_code,
                fiscal_year,
                value,
                status,
                note: _,
            } => {
                let entries = plan_entry(&mut self.actuals, item, indicator_code, *fiscal_year);
                if let Some(previous) = entries.last_mut() {
                    previous.to = Some(position);
                }
                entries.push(ActualFact {
                    value: *value,
                    status: *status,
                    from: position,
                    to: None,
                });
            }
            PlanEvent::ActualCorrected {
                indicator_code,
                fiscal_year,
                value,
                reason: _,
            } => {
                let entries = plan_entry(&mut self.actuals, item, indicator_code, *fiscal_year);
                // A correction keeps the status of the value it corrects. The plan aggregate
                // refuses a correction before any report; should one appear anyway it is
                // taken as an estimate, the weaker claim.
                let status = match entries.last_mut() {
                    Some(previous) => {
                        previous.to = Some(position);
                        previous.status
                    }
                    None => ActualStatus::Estimate,
                };
                entries.push(ActualFact {
                    value: *value,
                    status,
                    from: position,
                    to: None,
                });
            }
            PlanEvent::PlanItemDefined(_)
            | PlanEvent::IndicatorDefined(_)
            | PlanEvent::ActivityRecorded { .. }
            | PlanEvent::SelfEvaluated { .. }
            | PlanEvent::ExternalEvaluated { .. }
            | PlanEvent::SheetPublished { .. } => {}
        }
    }

    /// The latest ActualReported / ActualCorrected for (item, indicator, fiscal year) at or
    /// before position `at`.
    pub fn manual_actual(
        &self,
        item: &str,
        indicator: &str,
        fy: FiscalYear,
        at: i64,
    ) -> Option<ManualActual> {
        let entries = plan_facts(&self.actuals, item, indicator, fy)?;
        let seen = entries.partition_point(|e| e.from <= at);
        entries[..seen]
            .last()
            .filter(|e| visible(e.from, e.to, at))
            .map(|e| ManualActual {
                value: e.value,
                status: e.status,
                position: e.from,
            })
    }

    /// The latest TargetSet for (item, indicator, fiscal year) at or before position `at`:
    /// its op, value and position.
    pub fn target(
        &self,
        item: &str,
        indicator: &str,
        fy: FiscalYear,
        at: i64,
    ) -> Option<(TargetOp, f64, i64)> {
        let entries = plan_facts(&self.targets, item, indicator, fy)?;
        let seen = entries.partition_point(|e| e.from <= at);
        entries[..seen]
            .last()
            .filter(|e| visible(e.from, e.to, at))
            .map(|e| (e.op, e.value, e.from))
    }

    /// The actual of `rule` for fiscal year `fy`, computed from exactly the events with
    /// position `<= at`. Counts are `Some(n)` (0 when there is nothing); rates are percentages
    /// rounded to one decimal, `None` when their denominator is empty. Each rule is one file
    /// under [`crate::rules`].
    pub fn compute(
        &self,
        rule: RuleName,
        params: &RuleParams,
        fy: FiscalYear,
        at: i64,
    ) -> Option<f64> {
        crate::rules::compute(self, rule, params, fy, at)
    }

    /// [`Facts::compute`] at each of `positions` (ascending), in one pass where the rule
    /// allows it.
    pub fn series(
        &self,
        rule: RuleName,
        params: &RuleParams,
        fy: FiscalYear,
        positions: &[i64],
    ) -> Vec<Option<f64>> {
        crate::rules::series(self, rule, params, fy, positions)
    }

    /// The positions `<= at` of every event that could have changed the actual of `rule`
    /// (with `params`) for fiscal year `fy`, ascending and without duplicates: evaluating
    /// [`Facts::compute`] just before and at each of them explains every change of the value.
    /// What each rule depends on is said in its file under [`crate::rules`]. Only the indexes
    /// of `fy` and the per-kind staff event lists are read, never the log.
    pub fn candidates(
        &self,
        rule: RuleName,
        params: &RuleParams,
        fy: FiscalYear,
        at: i64,
    ) -> Vec<i64> {
        let mut out = Vec::new();
        crate::rules::candidates(self, rule, params, fy, at, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The positions `<= at` of the TargetSet events of (item, indicator, fiscal year),
    /// ascending. Each one supersedes the previous target at its own position.
    pub fn target_positions(
        &self,
        item: &str,
        indicator: &str,
        fy: FiscalYear,
        at: i64,
    ) -> Vec<i64> {
        plan_facts(&self.targets, item, indicator, fy).map_or_else(Vec::new, |entries| {
            up_to(entries.iter().map(|e| e.from), at)
        })
    }

    /// The positions `<= at` of the ActualReported / ActualCorrected events of (item,
    /// indicator, fiscal year), ascending. Each one supersedes the previous actual at its own
    /// position.
    pub fn manual_positions(
        &self,
        item: &str,
        indicator: &str,
        fy: FiscalYear,
        at: i64,
    ) -> Vec<i64> {
        plan_facts(&self.actuals, item, indicator, fy).map_or_else(Vec::new, |entries| {
            up_to(entries.iter().map(|e| e.from), at)
        })
    }

    /// Appends the opening and closing positions (`<= at`) of the completion facts dated in
    /// `fy` that pass `relevant`.
    pub(crate) fn completion_positions(
        &self,
        fy: FiscalYear,
        at: i64,
        out: &mut Vec<i64>,
        relevant: impl Fn(&CompletionFact) -> bool,
    ) {
        let completions = self
            .completions
            .get(&fy)
            .map_or(&[][..], Segmented::as_slice);
        // Facts are appended in position order, so their `from` ascends.
        for c in completions.iter().take_while(|c| c.from <= at) {
            if relevant(c) {
                span_positions(c.from, c.to, at, out);
            }
        }
    }

    /// The standing completions with `completed_on` in `fy`, as the log stood at `at`.
    pub(crate) fn completions_in(
        &self,
        fy: FiscalYear,
        at: i64,
    ) -> impl Iterator<Item = &CompletionFact> {
        self.completions
            .get(&fy)
            .map_or(&[][..], Segmented::as_slice)
            .iter()
            .filter(move |c| visible(c.from, c.to, at))
    }

    /// Whether a session passes the `categories` and `provider` filters of `params`.
    pub(crate) fn session_matches(&self, session: u32, params: &RuleParams) -> bool {
        if params.categories.is_none() && params.provider.is_none() {
            return true;
        }
        let Some(Some(s)) = self.sessions.get(session as usize) else {
            return false;
        };
        let category_ok = params
            .categories
            .as_ref()
            .is_none_or(|c| c.contains(&s.category));
        let provider_ok = params
            .provider
            .as_ref()
            .is_none_or(|p| p.as_str() == s.provider.as_str());
        category_ok && provider_ok
    }

    /// The staff in service on `date` as the log stood at `at`, with their index.
    pub(crate) fn population(
        &self,
        date: Date,
        at: i64,
    ) -> impl Iterator<Item = (usize, &StaffFacts)> {
        self.staff
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.in_service_on(date, at))
    }
}

/// The ascending positions of `froms` up to and including `at`.
fn up_to(froms: impl Iterator<Item = i64>, at: i64) -> Vec<i64> {
    froms.take_while(|p| *p <= at).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use kiroku_domain::plan::IndicatorDefinition;

    /// The facts read back from their pieces equal the facts folded, byte for byte, with
    /// the same derived indexes: a later event folds into both alike.
    #[test]
    fn facts_read_back_from_their_pieces_fold_on_like_the_original() {
        let mut log = Log::default();
        log.define_item();
        log.define_rule("completions", RuleName::TrainingCompletions);
        let course = id(500);
        log.schedule(course, TrainingCategory::Tiered, "庁内");
        for n in 0..20u128 {
            log.register(id(n), Gender::Female, "2010-04-01", 3);
            log.complete(course, id(n), "2023-06-01", Some(4));
        }
        log.interview(id(1), id(900), InterviewKind::Career, "2023-07-01");
        log.incident(id(901), "2023-08-01");
        let first = log.facts.pieces("facts", true).expect("pieces");
        // Changes after the first checkpoint: a correction closes an old fact in place.
        log.correct(course, id(3), Some("2023-06-02"), None);
        log.revoke(course, id(4));
        let second = log.facts.pieces("facts", false).expect("pieces");
        assert!(
            second.len() < first.len(),
            "{} of {}",
            second.len(),
            first.len()
        );
        let mut stored: Stored = first.into_iter().collect();
        stored.extend(second);
        let mut back = Facts::restore("facts", &stored).expect("restore");
        let json = |f: &Facts| serde_json::to_string(f).expect("json");
        assert_eq!(json(&back), json(&log.facts));
        assert_eq!(back.open_completions, log.facts.open_completions);
        assert_eq!(back.open_interviews, log.facts.open_interviews);
        assert_eq!(back.open_incidents, log.facts.open_incidents);
        assert_eq!(back.staff_ids, log.facts.staff_ids);

        // One more event folded into both: the same facts.
        let position = log.correct(course, id(5), Some("2023-06-03"), None);
        let recorded = Recorded {
            position,
            recorded_at: 1_700_000_000_000 + position,
            aggregate_id: course.to_string(),
            actor: Some("hr".into()),
            reason: None,
            event: LedgerEvent::Session(SessionEvent::CompletionCorrected {
                staff_id: id(5),
                completed_on: Some(date("2023-06-03")),
                understanding: None,
                reason: text("訂正"),
            }),
        };
        back.apply(&recorded);
        assert_eq!(json(&back), json(&log.facts));
    }

    impl Log {
        fn value(&self, rule: RuleName, params: &RuleParams, year: i32) -> Option<f64> {
            self.facts.compute(rule, params, fy(year), self.position)
        }

        fn value_at(&self, rule: RuleName, params: &RuleParams, year: i32, at: i64) -> Option<f64> {
            self.facts.compute(rule, params, fy(year), at)
        }
    }

    fn none() -> RuleParams {
        RuleParams::default()
    }

    #[test]
    fn a_completion_on_march_31_counts_in_the_earlier_year_and_one_on_april_1_in_the_next() {
        let mut log = Log::default();
        log.register(id(1), Gender::Male, "2020-04-01", 2);
        log.schedule(id(100), TrainingCategory::Tiered, "庁内");
        log.schedule(id(101), TrainingCategory::Tiered, "庁内");
        log.complete(id(100), id(1), "2024-03-31", None);
        log.complete(id(101), id(1), "2024-04-01", None);
        let completions = RuleName::TrainingCompletions;
        assert_eq!(log.value(completions, &none(), 2023), Some(1.0));
        assert_eq!(log.value(completions, &none(), 2024), Some(1.0));
        assert_eq!(log.value(completions, &none(), 2022), Some(0.0));
    }

    #[test]
    fn staff_hired_on_april_1_are_counted_in_that_years_population_and_staff_separated_on_april_1_are_not(
    ) {
        let mut log = Log::default();
        log.register(id(1), Gender::Male, "2023-04-01", 1); // joins on the reference date
        log.register(id(2), Gender::Male, "2010-04-01", 3);
        log.separate(id(2), "2023-04-01"); // leaves on the reference date
        log.register(id(3), Gender::Male, "2010-04-01", 3);
        log.separate(id(3), "2023-04-02"); // still in service on April 1
        log.register(id(4), Gender::Male, "2023-04-02", 1); // not yet in service on April 1
        log.schedule(id(100), TrainingCategory::Tiered, "庁内");
        log.complete(id(100), id(1), "2023-05-10", None);
        // Population on 2023-04-01: staff 1 and 3; only staff 1 trained → 50 %.
        let rate = RuleName::TrainingParticipationRate;
        assert_eq!(log.value(rate, &none(), 2023), Some(50.0));
        // A year earlier staff 2 and 3 were in service and nobody trained in FY2022.
        assert_eq!(log.value(rate, &none(), 2022), Some(0.0));
    }

    #[test]
    fn a_grade_change_effective_april_2_is_not_yet_in_that_years_women_in_management_population() {
        let mut log = Log::default();
        log.register(id(1), Gender::Female, "2000-04-01", 6);
        log.register(id(2), Gender::Male, "2000-04-01", 6);
        log.register(id(3), Gender::Female, "2000-04-01", 5);
        log.grade_change(id(3), 6, "2023-04-02");
        log.register(id(4), Gender::Male, "2000-04-01", 5);
        log.grade_change(id(4), 6, "2023-04-01");
        let rate = RuleName::WomenInManagementRate;
        // FY2023 population with grade ≥ 6 on 2023-04-01: staff 1, 2, 4 → 1 woman of 3.
        assert_eq!(log.value(rate, &none(), 2023), Some(33.3));
        // FY2024: staff 3's promotion is in effect → 2 women of 4.
        assert_eq!(log.value(rate, &none(), 2024), Some(50.0));
        // min_grade 5 on 2023-04-01: everyone → 2 of 4.
        let five = RuleParams {
            min_grade: Some(grade(5)),
            ..none()
        };
        assert_eq!(log.value(rate, &five, 2023), Some(50.0));
    }

    #[test]
    fn grade_changes_with_the_same_effective_date_are_decided_by_the_later_position() {
        let mut log = Log::default();
        log.register(id(1), Gender::Female, "2000-04-01", 5);
        log.grade_change(id(1), 6, "2023-04-01");
        let promoted = log.position;
        log.grade_change(id(1), 5, "2023-04-01");
        let rate = RuleName::WomenInManagementRate;
        assert_eq!(log.value_at(rate, &none(), 2023, promoted), Some(100.0));
        assert_eq!(log.value(rate, &none(), 2023), None);
    }

    #[test]
    fn a_revoked_completion_counts_as_of_a_position_before_the_revocation_and_not_after() {
        let mut log = Log::default();
        log.register(id(1), Gender::Male, "2020-04-01", 2);
        log.schedule(id(100), TrainingCategory::Tiered, "庁内");
        let completed = log.complete(id(100), id(1), "2023-06-01", Some(5));
        let revoked = log.session(
            id(100),
            SessionEvent::CompletionRevoked {
                staff_id: id(1),
                reason: text("受講していなかった"),
            },
        );
        let count = RuleName::TrainingCompletions;
        assert_eq!(log.value_at(count, &none(), 2023, completed - 1), Some(0.0));
        assert_eq!(log.value_at(count, &none(), 2023, completed), Some(1.0));
        assert_eq!(log.value_at(count, &none(), 2023, revoked - 1), Some(1.0));
        assert_eq!(log.value_at(count, &none(), 2023, revoked), Some(0.0));
        let rate = RuleName::TrainingParticipationRate;
        assert_eq!(log.value_at(rate, &none(), 2023, revoked - 1), Some(100.0));
        assert_eq!(log.value(rate, &none(), 2023), Some(0.0));
        // A revoked completion may be completed again.
        log.session(
            id(100),
            SessionEvent::TrainingCompleted {
                staff_id: id(1),
                completed_on: date("2023-07-01"),
                understanding: None,
            },
        );
        assert_eq!(log.value(count, &none(), 2023), Some(1.0));
        assert_eq!(log.value_at(count, &none(), 2023, revoked), Some(0.0));
    }

    #[test]
    fn a_corrected_completion_moves_across_the_fiscal_year_boundary_and_both_states_stay_queryable()
    {
        let mut log = Log::default();
        log.register(id(1), Gender::Male, "2020-04-01", 2);
        log.schedule(id(100), TrainingCategory::Tiered, "庁内");
        let completed = log.complete(id(100), id(1), "2024-03-31", Some(3));
        let corrected = log.session(
            id(100),
            SessionEvent::CompletionCorrected {
                staff_id: id(1),
                completed_on: Some(date("2024-04-01")),
                understanding: None,
                reason: text("日付の誤り"),
            },
        );
        let count = RuleName::TrainingCompletions;
        assert_eq!(log.value_at(count, &none(), 2023, completed), Some(1.0));
        assert_eq!(log.value_at(count, &none(), 2024, completed), Some(0.0));
        assert_eq!(log.value_at(count, &none(), 2023, corrected), Some(0.0));
        assert_eq!(log.value_at(count, &none(), 2024, corrected), Some(1.0));
        // The understanding answer travels with the completion into FY2024.
        let understood = RuleName::TrainingUnderstandingRate;
        assert_eq!(log.value(understood, &none(), 2024), Some(0.0));
        assert_eq!(log.value(understood, &none(), 2023), None);
    }

    #[test]
    fn a_corrected_understanding_changes_the_understanding_rate_from_its_position_on() {
        let mut log = Log::default();
        for staff in 1..=3 {
            log.register(id(staff), Gender::Male, "2020-04-01", 2);
        }
        log.schedule(id(100), TrainingCategory::Tiered, "庁内");
        log.complete(id(100), id(1), "2023-06-01", Some(5));
        log.complete(id(100), id(2), "2023-06-01", Some(3));
        log.complete(id(100), id(3), "2023-06-01", None); // no answer: outside the rate
        let before = log.position;
        let corrected = log.session(
            id(100),
            SessionEvent::CompletionCorrected {
                staff_id: id(2),
                completed_on: None,
                understanding: Some(understanding(4)),
                reason: text("アンケート転記誤り"),
            },
        );
        let rate = RuleName::TrainingUnderstandingRate;
        assert_eq!(log.value_at(rate, &none(), 2023, before), Some(50.0));
        assert_eq!(log.value_at(rate, &none(), 2023, corrected), Some(100.0));
        let five = RuleParams {
            threshold: Some(understanding(5)),
            ..none()
        };
        assert_eq!(log.value(rate, &five, 2023), Some(50.0));
        // The correction replaces the completion, it does not add one.
        assert_eq!(
            log.value(RuleName::TrainingCompletions, &none(), 2023),
            Some(3.0)
        );
    }

    #[test]
    fn a_withdrawn_interview_no_longer_counts_toward_interview_coverage() {
        let mut log = Log::default();
        log.register(id(1), Gender::Male, "2020-04-01", 2);
        log.register(id(2), Gender::Female, "2020-04-01", 2);
        log.interview(id(1), id(500), InterviewKind::Evaluation, "2023-06-01");
        log.interview(id(1), id(501), InterviewKind::OneOnOne, "2023-12-01");
        log.interview(id(2), id(502), InterviewKind::Evaluation, "2023-06-01");
        let second = log.interview(id(2), id(503), InterviewKind::Evaluation, "2023-12-01");
        let coverage = RuleName::InterviewCoverage;
        assert_eq!(log.value(coverage, &none(), 2023), Some(100.0));
        let withdrawn = log.staff(
            id(2),
            StaffEvent::InterviewWithdrawn {
                interview_id: id(503),
                reason: text("重複登録"),
            },
        );
        assert_eq!(log.value_at(coverage, &none(), 2023, second), Some(100.0));
        assert_eq!(log.value_at(coverage, &none(), 2023, withdrawn), Some(50.0));
        let evaluations_only = RuleParams {
            kinds: Some(vec![InterviewKind::Evaluation]),
            ..none()
        };
        assert_eq!(log.value(coverage, &evaluations_only, 2023), Some(0.0));
        let one = RuleParams {
            min_per_year: Some(1),
            ..evaluations_only
        };
        assert_eq!(log.value(coverage, &one, 2023), Some(100.0));
    }

    #[test]
    fn a_corrected_interview_date_moves_it_to_another_fiscal_year() {
        let mut log = Log::default();
        log.register(id(1), Gender::Male, "2020-04-01", 2);
        log.interview(id(1), id(500), InterviewKind::Evaluation, "2023-06-01");
        log.interview(id(1), id(501), InterviewKind::Evaluation, "2024-03-31");
        let before = log.position;
        log.staff(
            id(1),
            StaffEvent::InterviewCorrected {
                interview_id: id(501),
                kind: None,
                held_on: Some(date("2024-04-01")),
                note: None,
                reason: text("日付の誤り"),
            },
        );
        let coverage = RuleName::InterviewCoverage;
        let one = RuleParams {
            min_per_year: Some(1),
            ..none()
        };
        assert_eq!(log.value_at(coverage, &none(), 2023, before), Some(100.0));
        assert_eq!(log.value(coverage, &none(), 2023), Some(0.0));
        assert_eq!(log.value(coverage, &one, 2024), Some(100.0));
    }

    #[test]
    fn a_withdrawn_incident_is_not_counted() {
        let mut log = Log::default();
        log.incident(id(700), "2023-05-01");
        log.incident(id(701), "2024-03-31");
        log.incident(id(702), "2024-04-01");
        let recorded = log.position;
        log.push(
            id(701).to_string(),
            LedgerEvent::Incident(IncidentEvent::ComplianceIncidentWithdrawn {
                incident_id: id(701),
                reason: text("不適切な事務処理に該当しない"),
            }),
        );
        let incidents = RuleName::ComplianceIncidents;
        assert_eq!(log.value_at(incidents, &none(), 2023, recorded), Some(2.0));
        assert_eq!(log.value(incidents, &none(), 2023), Some(1.0));
        assert_eq!(log.value(incidents, &none(), 2024), Some(1.0));
        assert_eq!(log.value(incidents, &none(), 2022), Some(0.0));
    }

    #[test]
    fn a_rate_with_an_empty_denominator_is_none() {
        let mut log = Log::default();
        assert_eq!(
            log.value(RuleName::TrainingParticipationRate, &none(), 2023),
            None
        );
        log.register(id(1), Gender::Female, "2020-04-01", 2);
        log.schedule(id(100), TrainingCategory::Tiered, "庁内");
        log.complete(id(100), id(1), "2023-06-01", None);
        // Nobody answered the survey, nobody holds grade ≥ 6, nobody has 10 years.
        assert_eq!(
            log.value(RuleName::TrainingUnderstandingRate, &none(), 2023),
            None
        );
        assert_eq!(
            log.value(RuleName::WomenInManagementRate, &none(), 2023),
            None
        );
        assert_eq!(log.value(RuleName::RotationCoverage, &none(), 2023), None);
        // Nobody is in service on 2019-04-01.
        assert_eq!(log.value(RuleName::InterviewCoverage, &none(), 2019), None);
        // Counts are never empty.
        assert_eq!(log.value(RuleName::DispatchCount, &none(), 2023), Some(0.0));
        assert_eq!(
            log.value(RuleName::ComplianceIncidents, &none(), 2023),
            Some(0.0)
        );
    }

    #[test]
    fn categories_and_provider_params_filter_completions() {
        let mut log = Log::default();
        log.register(id(1), Gender::Male, "2020-04-01", 2);
        log.register(id(2), Gender::Male, "2020-04-01", 2);
        log.schedule(id(100), TrainingCategory::Tiered, "庁内");
        log.schedule(id(101), TrainingCategory::Specialized, "市町村アカデミー");
        log.schedule(id(102), TrainingCategory::Specialized, "庁内");
        log.complete(id(100), id(1), "2023-06-01", None);
        log.complete(id(101), id(1), "2023-07-01", None);
        log.complete(id(102), id(1), "2023-08-01", None);
        log.complete(id(102), id(2), "2023-08-01", None);
        let count = RuleName::TrainingCompletions;
        let specialized = RuleParams {
            categories: Some(vec![TrainingCategory::Specialized]),
            ..none()
        };
        let in_house = RuleParams {
            provider: Some(text("庁内")),
            ..none()
        };
        let both = RuleParams {
            categories: Some(vec![TrainingCategory::Specialized]),
            provider: Some(text("庁内")),
            ..none()
        };
        let tiered_or_dispatch = RuleParams {
            categories: Some(vec![TrainingCategory::Tiered, TrainingCategory::Dispatch]),
            ..none()
        };
        assert_eq!(log.value(count, &none(), 2023), Some(4.0));
        assert_eq!(log.value(count, &specialized, 2023), Some(3.0));
        assert_eq!(log.value(count, &in_house, 2023), Some(3.0));
        assert_eq!(log.value(count, &both, 2023), Some(2.0));
        assert_eq!(log.value(count, &tiered_or_dispatch, 2023), Some(1.0));
        // Participation counts people, not completions: staff 1 of 2 took a tiered course.
        let rate = RuleName::TrainingParticipationRate;
        assert_eq!(log.value(rate, &tiered_or_dispatch, 2023), Some(50.0));
        assert_eq!(log.value(rate, &specialized, 2023), Some(100.0));
    }

    #[test]
    fn participation_only_counts_staff_in_service_on_april_1() {
        let mut log = Log::default();
        log.register(id(1), Gender::Male, "2020-04-01", 2);
        log.register(id(2), Gender::Male, "2020-04-01", 2);
        log.register(id(3), Gender::Male, "2020-04-01", 2);
        log.register(id(4), Gender::Male, "2023-10-01", 1); // hired mid-year
        log.schedule(id(100), TrainingCategory::Tiered, "庁内");
        log.complete(id(100), id(1), "2023-06-01", None);
        log.complete(id(100), id(4), "2023-11-01", None);
        // 1 of 3 → 33.3 %; the mid-year hire is in neither numerator nor denominator.
        let rate = RuleName::TrainingParticipationRate;
        assert_eq!(log.value(rate, &none(), 2023), Some(33.3));
        log.complete(id(100), id(2), "2023-06-01", None);
        assert_eq!(log.value(rate, &none(), 2023), Some(66.7));
    }

    #[test]
    fn rehired_staff_are_in_service_again_from_the_rehire_date() {
        let mut log = Log::default();
        log.register(id(1), Gender::Female, "2010-04-01", 6);
        let separated = log.separate(id(1), "2022-04-01");
        log.rehire(id(1), "2023-04-01", 3, DepartmentKind::Administration);
        let rate = RuleName::WomenInManagementRate;
        assert_eq!(
            log.value_at(rate, &none(), 2021, separated - 1),
            Some(100.0)
        );
        assert_eq!(log.value(rate, &none(), 2022), None);
        // Rehired at grade 3: in service but below the management grades.
        assert_eq!(log.value(rate, &none(), 2023), None);
        let any = RuleParams {
            min_grade: Some(grade(1)),
            ..none()
        };
        assert_eq!(log.value(rate, &any, 2023), Some(100.0));
        // As the log stood before the separation, the first period was still open.
        assert_eq!(
            log.value_at(rate, &none(), 2022, separated - 1),
            Some(100.0)
        );
    }

    #[test]
    fn rotation_coverage_counts_staff_with_ten_years_who_served_in_all_three_department_kinds() {
        use DepartmentKind::*;
        let mut log = Log::default();
        // Staff 1: exactly 10 years on 2024-04-01, all three kinds → in both.
        log.register_in(id(1), Gender::Male, "2014-04-01", 3, FrontOffice);
        log.transfer(id(1), Program, "2017-04-01", TransferKind::Regular);
        log.transfer(id(1), Administration, "2020-04-01", TransferKind::Regular);
        // Staff 2: 10 years, two kinds; the third only from 2024-04-02 → denominator only.
        log.register_in(id(2), Gender::Male, "2014-04-01", 3, FrontOffice);
        log.transfer(id(2), Program, "2018-04-01", TransferKind::Regular);
        let late = log.transfer(id(2), Administration, "2024-04-02", TransferKind::Dispatch);
        // Staff 3: one day short of 10 years → in neither.
        log.register_in(id(3), Gender::Male, "2014-04-02", 3, FrontOffice);
        log.transfer(id(3), Program, "2017-04-01", TransferKind::Regular);
        log.transfer(id(3), Administration, "2020-04-01", TransferKind::Regular);
        // Staff 4: 5 years (2009–2014) + 5 years (2019–2024) = 10 years; the kinds of the
        // first period count too → in both.
        log.register_in(id(4), Gender::Female, "2009-04-01", 3, FrontOffice);
        log.transfer(id(4), Program, "2011-04-01", TransferKind::Regular);
        log.separate(id(4), "2014-04-01");
        log.rehire(id(4), "2019-04-01", 3, Administration);
        let rotation = RuleName::RotationCoverage;
        // FY2024: denominator staff 1, 2, 4; numerator staff 1, 4 → 66.7 %.
        assert_eq!(log.value(rotation, &none(), 2024), Some(66.7));
        // FY2025: staff 2's third kind is now in effect and staff 3 has 11 years → 100 %.
        assert_eq!(log.value(rotation, &none(), 2025), Some(100.0));
        // As the log stood before staff 2's last transfer was recorded (and before staff 3
        // and 4 were registered), FY2025 was staff 1 of staff 1 and 2 → 50 %.
        assert_eq!(log.value_at(rotation, &none(), 2025, late - 1), Some(50.0));
        assert_eq!(log.value_at(rotation, &none(), 2025, late), Some(100.0));
        // With 15 years nobody qualifies in FY2024.
        let fifteen = RuleParams {
            years: Some(15),
            ..none()
        };
        assert_eq!(log.value(rotation, &fifteen, 2024), None);
    }

    #[test]
    fn dispatch_count_counts_dispatch_transfers_effective_in_the_year() {
        use DepartmentKind::*;
        let mut log = Log::default();
        log.register_in(id(1), Gender::Male, "2014-04-01", 3, FrontOffice);
        log.transfer(id(1), Program, "2023-04-01", TransferKind::Dispatch);
        let first = log.position;
        log.transfer(id(1), FrontOffice, "2024-03-31", TransferKind::Return);
        log.transfer(id(1), Administration, "2024-03-31", TransferKind::Dispatch);
        log.transfer(id(1), Program, "2024-04-01", TransferKind::Dispatch);
        log.transfer(id(1), Program, "2024-05-01", TransferKind::Internship);
        let dispatches = RuleName::DispatchCount;
        assert_eq!(log.value(dispatches, &none(), 2023), Some(2.0));
        assert_eq!(log.value_at(dispatches, &none(), 2023, first), Some(1.0));
        assert_eq!(log.value(dispatches, &none(), 2024), Some(1.0));
    }

    #[test]
    fn a_target_revised_later_is_returned_as_the_old_target_at_an_earlier_position() {
        let mut log = Log::default();
        let set = log.plan(PlanEvent::TargetSet {
            indicator_code: code("attendees"),
            fiscal_year: fy(2023),
            op: TargetOp::AtLeast,
            value: 2300.0,
        });
        let revised = log.plan(PlanEvent::TargetSet {
            indicator_code: code("attendees"),
            fiscal_year: fy(2023),
            op: TargetOp::AtLeast,
            value: 2500.0,
        });
        let target = |at| log.facts.target(ITEM, "attendees", fy(2023), at);
        assert_eq!(target(set - 1), None);
        assert_eq!(target(set), Some((TargetOp::AtLeast, 2300.0, set)));
        assert_eq!(target(revised), Some((TargetOp::AtLeast, 2500.0, revised)));
        assert_eq!(log.facts.target(ITEM, "attendees", fy(2024), revised), None);
        assert_eq!(log.facts.target(ITEM, "other", fy(2023), revised), None);
        assert_eq!(
            log.facts.target("9-9-9", "attendees", fy(2023), revised),
            None
        );
    }

    #[test]
    fn a_manual_actual_goes_from_estimate_to_confirmed_and_a_correction_keeps_confirmed() {
        let mut log = Log::default();
        log.plan(PlanEvent::IndicatorDefined(IndicatorDefinition {
            indicator_code: code("want_manager"),
            name: text("管理職になりたい職員の割合"),
            description: None,
            kind: IndicatorKind::Outcome,
            unit: Unit::Percent,
            source: kiroku_domain::plan::IndicatorSource::Manual(
                kiroku_domain::plan::Manual::Manual,
            ),
            baseline: None,
        }));
        let report = |value, status| PlanEvent::ActualReported {
            indicator_code: code("want_manager"),
            fiscal_year: fy(2023),
            value,
            status,
            note: None,
        };
        let estimate = log.plan(report(25.0, ActualStatus::Estimate));
        let confirmed = log.plan(report(27.5, ActualStatus::Confirmed));
        let corrected = log.plan(PlanEvent::ActualCorrected {
            indicator_code: code("want_manager"),
            fiscal_year: fy(2023),
            value: 28.1,
            reason: text("集計誤り"),
        });
        let actual = |at| log.facts.manual_actual(ITEM, "want_manager", fy(2023), at);
        assert_eq!(actual(estimate - 1), None);
        let at = |value, status, position| {
            Some(ManualActual {
                value,
                status,
                position,
            })
        };
        assert_eq!(actual(estimate), at(25.0, ActualStatus::Estimate, estimate));
        assert_eq!(
            actual(confirmed),
            at(27.5, ActualStatus::Confirmed, confirmed)
        );
        assert_eq!(
            actual(corrected),
            at(28.1, ActualStatus::Confirmed, corrected)
        );
        assert_eq!(
            actual(i64::MAX),
            at(28.1, ActualStatus::Confirmed, corrected)
        );
        assert_eq!(
            log.facts
                .manual_actual(ITEM, "want_manager", fy(2024), corrected),
            None
        );
    }

    #[test]
    fn a_correction_of_an_estimate_stays_an_estimate() {
        let mut log = Log::default();
        log.plan(PlanEvent::ActualReported {
            indicator_code: code("survey"),
            fiscal_year: fy(2023),
            value: 10.0,
            status: ActualStatus::Estimate,
            note: None,
        });
        let corrected = log.plan(PlanEvent::ActualCorrected {
            indicator_code: code("survey"),
            fiscal_year: fy(2023),
            value: 12.0,
            reason: text("再集計"),
        });
        let actual = log.facts.manual_actual(ITEM, "survey", fy(2023), corrected);
        assert_eq!(
            actual.map(|a| (a.value, a.status)),
            Some((12.0, ActualStatus::Estimate))
        );
    }

    #[test]
    fn round_rate_rounds_half_away_from_zero_to_one_decimal() {
        assert_eq!(round_rate(1, 0), None);
        assert_eq!(round_rate(0, 0), None);
        assert_eq!(round_rate(0, 7), Some(0.0));
        assert_eq!(round_rate(1, 3), Some(33.3));
        assert_eq!(round_rate(2, 3), Some(66.7));
        assert_eq!(round_rate(1, 16), Some(6.3)); // 6.25 → 6.3
        assert_eq!(round_rate(1, 80), Some(1.3)); // 1.25 → 1.3
        assert_eq!(round_rate(1, 2000), Some(0.1)); // 0.05 → 0.1
        assert_eq!(round_rate(156, 1000), Some(15.6));
        assert_eq!(round_rate(5, 5), Some(100.0));
    }

    #[test]
    fn an_event_at_or_before_the_last_applied_position_is_ignored() {
        let mut log = Log::default();
        log.register(id(1), Gender::Male, "2020-04-01", 2);
        log.schedule(id(100), TrainingCategory::Tiered, "庁内");
        log.complete(id(100), id(1), "2023-06-01", None);
        let again = Recorded {
            position: log.position,
            recorded_at: 0,
            aggregate_id: id(100).to_string(),
            actor: None,
            reason: None,
            event: LedgerEvent::Session(SessionEvent::CompletionRevoked {
                staff_id: id(1),
                reason: text("重複"),
            }),
        };
        log.facts.apply(&again);
        assert_eq!(log.facts.position(), Some(log.position));
        assert_eq!(
            log.value(RuleName::TrainingCompletions, &none(), 2023),
            Some(1.0)
        );
    }
}
