//! Staff histories and session rosters: who a person is, their grades, departments,
//! trainings, interviews and evaluations; who holds which place in a session.
//! Personal text stays sealed here; the application opens it for readers who may see it.

use crate::pieces::{self, ColdBytes, ColdStored, Pieces, Sharded, Stored, Unreadable};
use crate::{LedgerEvent, Recorded};
use kiroku_domain::dates;
use kiroku_domain::incident::IncidentEvent;
use kiroku_domain::plan::PlanEvent;
use kiroku_domain::session::{Schedule, SessionEvent};
use kiroku_domain::staff::{StaffEvent, STAFF_NAMESPACE};
use kiroku_domain::values::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradeEntry {
    pub grade: Grade,
    pub effective_on: Date,
    pub reason: Option<GradeChangeReason>,
    pub position: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepartmentEntry {
    pub department: Text,
    pub department_kind: DepartmentKind,
    pub effective_on: Date,
    pub kind: Option<TransferKind>,
    pub position: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceEntry {
    pub started_on: Date,
    pub employment: Employment,
    pub separated_on: Option<Date>,
    pub separation_reason: Option<SeparationReason>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterviewEntry {
    pub interview_id: Uuid,
    pub kind: InterviewKind,
    pub held_on: Date,
    pub interviewer_id: Uuid,
    pub note: Sealed,
    pub withdrawn: bool,
    pub corrections: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationEntry {
    pub evaluation_id: Uuid,
    pub fiscal_year: FiscalYear,
    pub period: EvaluationPeriod,
    pub evaluator_id: Uuid,
    pub overall: OverallRating,
    pub competencies: BTreeMap<String, u8>,
    pub comment: Option<Sealed>,
    pub dispute: Option<Sealed>,
    pub dispute_outcome: Option<Sealed>,
    pub corrections: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingEntry {
    pub session_id: Uuid,
    pub status: EnrolmentStatus,
    pub completed_on: Option<Date>,
    pub understanding: Option<Understanding>,
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaffRecord {
    pub staff_id: Uuid,
    pub employee_no: EmployeeNo,
    pub name: Sealed,
    pub name_kana: Option<Sealed>,
    pub gender: Gender,
    pub job_type: JobType,
    pub service: Vec<ServiceEntry>,
    pub grades: Vec<GradeEntry>,
    pub departments: Vec<DepartmentEntry>,
    pub interviews: Vec<InterviewEntry>,
    pub evaluations: Vec<EvaluationEntry>,
    pub trainings: Vec<TrainingEntry>,
    /// The person's key was destroyed: everything sealed about them reads as 削除済み.
    #[serde(default)]
    pub personal_data_erased: bool,
}

impl StaffRecord {
    /// The latest entry effective on or before `date` (SPEC §4), else the earliest one.
    /// The entry in force on `date`; before the first one, the first (what a history shows
    /// for a date before the registration).
    fn effective<T>(entries: &[T], date: Date, on: impl Fn(&T) -> Date) -> Option<&T> {
        dates::in_force(entries, date, on).or_else(|| entries.first())
    }

    pub fn department_on(&self, date: Date) -> Option<&DepartmentEntry> {
        Self::effective(&self.departments, date, |d| d.effective_on)
    }

    pub fn grade_on(&self, date: Date) -> Option<Grade> {
        Self::effective(&self.grades, date, |g| g.effective_on).map(|g| g.grade)
    }

    pub fn in_service_on(&self, date: Date) -> bool {
        self.service
            .iter()
            .any(|s| dates::covers(s.started_on, s.separated_on, date))
    }

    fn training(&mut self, session_id: Uuid) -> Option<&mut TrainingEntry> {
        self.trainings
            .iter_mut()
            .rev()
            .find(|t| t.session_id == session_id)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionEntry {
    pub staff_id: Uuid,
    pub completed_on: Date,
    pub understanding: Option<Understanding>,
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub session_id: Uuid,
    #[serde(flatten)]
    pub schedule: Schedule,
    pub enrolled: Vec<Uuid>,
    pub waitlisted: Vec<Uuid>,
    pub completions: Vec<CompletionEntry>,
}

/// Staff records and session rosters, folded from the log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histories {
    pub staff: Sharded<StaffRecord>,
    pub sessions: Sharded<SessionRecord>,
    /// The people whose personal data was erased: the keys the server must have destroyed,
    /// found without decoding every staff shard (kept as one small piece of its own).
    pub erased: BTreeSet<Uuid>,
}

impl Pieces for Histories {
    fn keys(&self, prefix: &str, all: bool, out: &mut Vec<String>) {
        Pieces::keys(&self.staff, &format!("{prefix}.staff"), all, out);
        Pieces::keys(&self.sessions, &format!("{prefix}.sessions"), all, out);
        // As small as the erasures are few: written every time, as the plan book is.
        out.push(format!("{prefix}.erased"));
    }

    fn encode(&self, prefix: &str, key: &str) -> pieces::Encoded {
        match pieces::part(prefix, key) {
            Some("staff") => self.staff.encode(&format!("{prefix}.staff"), key),
            Some("sessions") => self.sessions.encode(&format!("{prefix}.sessions"), key),
            Some("erased") => Ok(Some(serde_json::to_vec(&self.erased)?)),
            _ => Ok(None),
        }
    }

    fn take(prefix: &str, stored: &mut Stored) -> Result<Self, Unreadable> {
        Histories::take_with(prefix, stored, &mut ColdStored::new())
    }
}

impl Histories {
    /// Reads them back from the pieces stored under `prefix`, taking their bytes out of
    /// `stored` and `cold` (the shards as the projector kept them): every shard stays cold
    /// (see [`Sharded::take_with`]).
    pub fn take_with(
        prefix: &str,
        stored: &mut Stored,
        cold: &mut ColdStored,
    ) -> Result<Self, Unreadable> {
        Ok(Histories {
            staff: Sharded::take_with(&format!("{prefix}.staff"), stored, cold)?,
            sessions: Sharded::take_with(&format!("{prefix}.sessions"), stored, cold)?,
            erased: pieces::read_whole(&format!("{prefix}.erased"), stored)?,
        })
    }

    /// Whether the piece `key` (under `prefix`) is a history shard, which a start may keep
    /// away from memory (a [`ColdStored`] piece) rather than in [`Stored`].
    pub fn is_shard(prefix: &str, key: &str) -> bool {
        matches!(pieces::part(prefix, key), Some("staff" | "sessions")) && key.contains('/')
    }

    /// The shards nobody read or changed for `after` calls in a row (see [`Sharded::idle`]).
    pub fn idle(&self, after: u8) -> Idle {
        let (staff_warm, staff_decoded) = self.staff.idle(after);
        let (sessions_warm, sessions_decoded) = self.sessions.idle(after);
        let tag = |part: Part, shards: Vec<u8>| shards.into_iter().map(move |s| (part, s));
        Idle {
            warm: tag(Part::Staff, staff_warm)
                .chain(tag(Part::Sessions, sessions_warm))
                .collect(),
            decoded: tag(Part::Staff, staff_decoded)
                .chain(tag(Part::Sessions, sessions_decoded))
                .collect(),
        }
    }

    /// The encoding of a warm history shard's piece, to run after the caller's lock is let go
    /// (see [`Sharded::defer`]); `None` for any other piece.
    pub fn defer(&self, prefix: &str, key: &str) -> Option<pieces::Deferred> {
        match pieces::part(prefix, key) {
            Some("staff") => self.staff.defer(&format!("{prefix}.staff"), key),
            Some("sessions") => self.sessions.defer(&format!("{prefix}.sessions"), key),
            _ => None,
        }
    }

    /// The bytes of a warm shard (`None` when cold).
    pub fn encode_shard(
        &self,
        (part, shard): (Part, u8),
    ) -> Option<Result<Vec<u8>, pieces::Unencodable>> {
        match part {
            Part::Staff => self.staff.encode_shard(shard),
            Part::Sessions => self.sessions.encode_shard(shard),
        }
    }

    /// Lets a warm shard go cold (see [`Sharded::freeze`]).
    pub fn freeze(&mut self, (part, shard): (Part, u8), bytes: ColdBytes) -> bool {
        match part {
            Part::Staff => self.staff.freeze(shard, bytes),
            Part::Sessions => self.sessions.freeze(shard, bytes),
        }
    }

    /// Takes out what readers had decoded of these cold shards, for the caller to drop once
    /// it no longer holds the lock (see [`Sharded::forget`]).
    pub fn forget(&mut self, shards: &[(Part, u8)]) -> Forgotten {
        let mut forgotten = Forgotten::default();
        for (part, shard) in shards {
            match part {
                Part::Staff => forgotten._staff.extend(self.staff.forget(*shard)),
                Part::Sessions => forgotten._sessions.extend(self.sessions.forget(*shard)),
            }
        }
        forgotten
    }

    /// How many shards are warm: (staff, sessions).
    pub fn warm_shards(&self) -> (usize, usize) {
        (self.staff.warm_shards(), self.sessions.warm_shards())
    }

    /// How many shards are cold with their bytes put away: (staff, sessions).
    pub fn shards_away(&self) -> (usize, usize) {
        (self.staff.shards_away(), self.sessions.shards_away())
    }

    /// Whether a cold shard's problem is in the checkpoint's bytes (see
    /// [`Sharded::checkpoint_damaged`]).
    pub fn checkpoint_damaged(&self) -> bool {
        self.staff.checkpoint_damaged() || self.sessions.checkpoint_damaged()
    }

    /// Why a cold shard could not be read, if one could not.
    pub fn damage(&self) -> Option<String> {
        self.staff
            .damage()
            .or_else(|| self.sessions.damage())
            .map(str::to_string)
    }
}

/// The two sharded histories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Staff,
    Sessions,
}

/// What [`Histories::idle`] found: warm shards to encode and freeze, cold shards whose
/// decoded records to forget.
#[derive(Debug, Default)]
pub struct Idle {
    pub warm: Vec<(Part, u8)>,
    pub decoded: Vec<(Part, u8)>,
}

/// What readers had decoded of cold shards, taken out by [`Histories::forget`]: dropping it
/// frees them (outside the caller's lock).
#[derive(Default)]
pub struct Forgotten {
    _staff: Vec<BTreeMap<Uuid, StaffRecord>>,
    _sessions: Vec<BTreeMap<Uuid, SessionRecord>>,
}

fn uuid_of(aggregate_id: &str) -> Uuid {
    // Aggregate ids are UUIDs written by the application; anything else gets a stable stand-in.
    Uuid::parse_str(aggregate_id)
        .unwrap_or_else(|_| Uuid::new_v5(&STAFF_NAMESPACE, aggregate_id.as_bytes()))
}

impl Histories {
    pub fn apply(&mut self, recorded: &Recorded) {
        let id = uuid_of(&recorded.aggregate_id);
        match &recorded.event {
            LedgerEvent::Staff(event) => self.apply_staff(id, recorded, event),
            LedgerEvent::Session(event) => self.apply_session(id, event),
            LedgerEvent::Incident(
                IncidentEvent::ComplianceIncidentRecorded { .. }
                | IncidentEvent::ComplianceIncidentWithdrawn { .. },
            ) => {}
            LedgerEvent::Plan(
                PlanEvent::PlanItemDefined(_)
                | PlanEvent::IndicatorDefined(_)
                | PlanEvent::TargetSet { .. }
                | PlanEvent::ActualReported { .. }
                | PlanEvent::ActualCorrected { .. }
                | PlanEvent::ActivityRecorded { .. }
                | PlanEvent::SelfEvaluated { .. }
                | PlanEvent::ExternalEvaluated { .. }
                | PlanEvent::SheetPublished { .. },
            ) => {}
        }
    }

    fn apply_staff(&mut self, id: Uuid, recorded: &Recorded, event: &StaffEvent) {
        let position = recorded.position;
        if let StaffEvent::StaffRegistered(r) = event {
            self.erased.remove(&id);
            self.staff.insert(
                id,
                StaffRecord {
                    staff_id: id,
                    employee_no: r.employee_no.clone(),
                    name: r.name.clone(),
                    name_kana: r.name_kana.clone(),
                    gender: r.gender,
                    job_type: r.job_type,
                    service: vec![ServiceEntry {
                        started_on: r.hired_on,
                        employment: r.employment,
                        separated_on: None,
                        separation_reason: None,
                    }],
                    grades: vec![GradeEntry {
                        grade: r.grade,
                        effective_on: r.hired_on,
                        reason: None,
                        position,
                    }],
                    departments: vec![DepartmentEntry {
                        department: r.department.clone(),
                        department_kind: r.department_kind,
                        effective_on: r.hired_on,
                        kind: None,
                        position,
                    }],
                    interviews: Vec::new(),
                    evaluations: Vec::new(),
                    trainings: Vec::new(),
                    personal_data_erased: false,
                },
            );
            return;
        }
        let Some(staff) = self.staff.get_mut(&id) else {
            return;
        };
        let reason = recorded.reason.clone().unwrap_or_default();
        match event {
            StaffEvent::StaffRegistered(_) => {}
            StaffEvent::GradeChanged {
                grade,
                effective_on,
                reason,
            } => staff.grades.push(GradeEntry {
                grade: *grade,
                effective_on: *effective_on,
                reason: Some(*reason),
                position,
            }),
            StaffEvent::StaffTransferred {
                to_department,
                department_kind,
                effective_on,
                kind,
            } => staff.departments.push(DepartmentEntry {
                department: to_department.clone(),
                department_kind: *department_kind,
                effective_on: *effective_on,
                kind: Some(*kind),
                position,
            }),
            StaffEvent::StaffSeparated {
                effective_on,
                reason,
            } => {
                if let Some(service) = staff.service.last_mut() {
                    service.separated_on = Some(*effective_on);
                    service.separation_reason = Some(*reason);
                }
            }
            StaffEvent::StaffRehired(r) => {
                staff.service.push(ServiceEntry {
                    started_on: r.effective_on,
                    employment: r.employment,
                    separated_on: None,
                    separation_reason: None,
                });
                staff.grades.push(GradeEntry {
                    grade: r.grade,
                    effective_on: r.effective_on,
                    reason: None,
                    position,
                });
                staff.departments.push(DepartmentEntry {
                    department: r.department.clone(),
                    department_kind: r.department_kind,
                    effective_on: r.effective_on,
                    kind: None,
                    position,
                });
            }
            StaffEvent::InterviewRecorded(i) => staff.interviews.push(InterviewEntry {
                interview_id: i.interview_id,
                kind: i.kind,
                held_on: i.held_on,
                interviewer_id: i.interviewer_id,
                note: i.note.clone(),
                withdrawn: false,
                corrections: Vec::new(),
            }),
            StaffEvent::InterviewCorrected {
                interview_id,
                kind,
                held_on,
                note,
                reason,
            } => {
                if let Some(i) = staff
                    .interviews
                    .iter_mut()
                    .find(|i| i.interview_id == *interview_id)
                {
                    if let Some(kind) = kind {
                        i.kind = *kind;
                    }
                    if let Some(held_on) = held_on {
                        i.held_on = *held_on;
                    }
                    if let Some(note) = note {
                        i.note = note.clone();
                    }
                    i.corrections.push(reason.to_string());
                }
            }
            StaffEvent::InterviewWithdrawn { interview_id, .. } => {
                if let Some(i) = staff
                    .interviews
                    .iter_mut()
                    .find(|i| i.interview_id == *interview_id)
                {
                    i.withdrawn = true;
                    i.corrections.push(reason);
                }
            }
            StaffEvent::EvaluationRecorded(e) => staff.evaluations.push(EvaluationEntry {
                evaluation_id: e.evaluation_id,
                fiscal_year: e.fiscal_year,
                period: e.period,
                evaluator_id: e.evaluator_id,
                overall: e.overall,
                competencies: e.competencies.clone(),
                comment: e.comment.clone(),
                dispute: None,
                dispute_outcome: None,
                corrections: Vec::new(),
            }),
            StaffEvent::EvaluationCorrected {
                evaluation_id,
                overall,
                competencies,
                comment,
                reason,
            } => {
                if let Some(e) = staff.evaluation(*evaluation_id) {
                    if let Some(overall) = overall {
                        e.overall = *overall;
                    }
                    if let Some(competencies) = competencies {
                        e.competencies = competencies.clone();
                    }
                    if let Some(comment) = comment {
                        e.comment = Some(comment.clone());
                    }
                    e.corrections.push(reason.to_string());
                }
            }
            StaffEvent::EvaluationDisputed {
                evaluation_id,
                text,
            } => {
                if let Some(e) = staff.evaluation(*evaluation_id) {
                    e.dispute = Some(text.clone());
                    e.dispute_outcome = None;
                }
            }
            StaffEvent::DisputeResolved {
                evaluation_id,
                outcome,
                ..
            } => {
                if let Some(e) = staff.evaluation(*evaluation_id) {
                    e.dispute_outcome = Some(outcome.clone());
                }
            }
            StaffEvent::PersonalDataErased { .. } => {
                staff.personal_data_erased = true;
                self.erased.insert(id);
            }
        }
    }

    fn apply_session(&mut self, id: Uuid, event: &SessionEvent) {
        if let SessionEvent::SessionScheduled(schedule) = event {
            self.sessions.insert(
                id,
                SessionRecord {
                    session_id: id,
                    schedule: schedule.clone(),
                    enrolled: Vec::new(),
                    waitlisted: Vec::new(),
                    completions: Vec::new(),
                },
            );
            return;
        }
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        match event {
            SessionEvent::SessionScheduled(_) => {}
            SessionEvent::StaffEnrolled { staff_id, status } => {
                match status {
                    EnrolmentStatus::Enrolled => session.enrolled.push(*staff_id),
                    EnrolmentStatus::Waitlisted => session.waitlisted.push(*staff_id),
                }
                if let Some(staff) = self.staff.get_mut(staff_id) {
                    staff.trainings.push(TrainingEntry {
                        session_id: id,
                        status: *status,
                        completed_on: None,
                        understanding: None,
                        revoked: false,
                    });
                }
            }
            SessionEvent::EnrolmentCancelled { staff_id, .. } => {
                session.enrolled.retain(|s| s != staff_id);
                session.waitlisted.retain(|s| s != staff_id);
                if let Some(staff) = self.staff.get_mut(staff_id) {
                    staff
                        .trainings
                        .retain(|t| !(t.session_id == id && t.completed_on.is_none()));
                }
            }
            SessionEvent::WaitlistPromoted { staff_id } => {
                session.waitlisted.retain(|s| s != staff_id);
                session.enrolled.push(*staff_id);
                if let Some(t) = self.staff.get_mut(staff_id).and_then(|s| s.training(id)) {
                    t.status = EnrolmentStatus::Enrolled;
                }
            }
            SessionEvent::TrainingCompleted {
                staff_id,
                completed_on,
                understanding,
            } => {
                session.completions.retain(|c| c.staff_id != *staff_id);
                session.completions.push(CompletionEntry {
                    staff_id: *staff_id,
                    completed_on: *completed_on,
                    understanding: *understanding,
                    revoked: false,
                });
                if let Some(t) = self.staff.get_mut(staff_id).and_then(|s| s.training(id)) {
                    t.completed_on = Some(*completed_on);
                    t.understanding = *understanding;
                    t.revoked = false;
                }
            }
            SessionEvent::CompletionCorrected {
                staff_id,
                completed_on,
                understanding,
                ..
            } => {
                if let Some(c) = session
                    .completions
                    .iter_mut()
                    .find(|c| c.staff_id == *staff_id)
                {
                    if let Some(d) = completed_on {
                        c.completed_on = *d;
                    }
                    if understanding.is_some() {
                        c.understanding = *understanding;
                    }
                }
                if let Some(t) = self.staff.get_mut(staff_id).and_then(|s| s.training(id)) {
                    if completed_on.is_some() {
                        t.completed_on = *completed_on;
                    }
                    if understanding.is_some() {
                        t.understanding = *understanding;
                    }
                }
            }
            SessionEvent::CompletionRevoked { staff_id, .. } => {
                if let Some(c) = session
                    .completions
                    .iter_mut()
                    .find(|c| c.staff_id == *staff_id)
                {
                    c.revoked = true;
                }
                if let Some(t) = self.staff.get_mut(staff_id).and_then(|s| s.training(id)) {
                    t.revoked = true;
                }
            }
        }
    }
}

impl StaffRecord {
    fn evaluation(&mut self, evaluation_id: Uuid) -> Option<&mut EvaluationEntry> {
        self.evaluations
            .iter_mut()
            .find(|e| e.evaluation_id == evaluation_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    /// The histories' pieces are MessagePack with structs as arrays: a session record
    /// flattens its schedule into a map, and a staff record holds sealed texts, dates and
    /// optional fields. Every one of them reads back equal.
    #[test]
    fn histories_read_back_from_their_pieces_equal() {
        let mut log = Log::default();
        log.register(id(1), Gender::Female, "2015-04-01", 3);
        log.register(id(2), Gender::Male, "2020-04-01", 1);
        log.grade_change(id(1), 4, "2023-04-01");
        log.interview(id(1), id(50), InterviewKind::Career, "2023-06-01");
        log.schedule(id(100), TrainingCategory::Tiered, "庁内");
        log.complete(id(100), id(1), "2023-07-01", Some(4));
        log.complete(id(100), id(2), "2023-07-01", None);
        log.separate(id(2), "2024-03-31");
        assert_eq!(log.histories.staff.len(), 2);
        assert_eq!(log.histories.sessions.len(), 1);

        let pieces = log.histories.pieces("histories", true).expect("pieces");
        let stored: Stored = pieces.into_iter().collect();
        let back = Histories::restore("histories", &stored).expect("restore");
        assert_eq!(back, log.histories);
    }
}
