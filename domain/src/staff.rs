//! The staff member (職員): registration, grades, transfers, separation and rehire, interviews
//! and evaluations. One aggregate per person, keyed by a UUID derived from the employee number
//! so that "employee_no is unique in the ledger" is an invariant of the aggregate itself.

use crate::error::{DomainError, Refusal};
use crate::values::*;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// The namespace of staff ids: `staff_id = UUIDv5(STAFF_NAMESPACE, employee_no)`.
pub const STAFF_NAMESPACE: Uuid = Uuid::from_u128(0x6b69726f_6b75_4000_8000_73746166660a);

/// The staff id of an employee number.
pub fn staff_id_of(employee_no: &EmployeeNo) -> Uuid {
    Uuid::new_v5(&STAFF_NAMESPACE, employee_no.as_str().as_bytes())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    pub employee_no: EmployeeNo,
    pub name: Sealed,
    pub name_kana: Option<Sealed>,
    pub gender: Gender,
    pub hired_on: Date,
    pub grade: Grade,
    pub job_type: JobType,
    pub employment: Employment,
    pub department: Text,
    pub department_kind: DepartmentKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rehire {
    pub effective_on: Date,
    pub grade: Grade,
    pub department: Text,
    pub department_kind: DepartmentKind,
    pub employment: Employment,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interview {
    pub interview_id: Uuid,
    pub kind: InterviewKind,
    pub held_on: Date,
    pub interviewer_id: Uuid,
    pub note: Sealed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub evaluation_id: Uuid,
    pub fiscal_year: FiscalYear,
    pub period: EvaluationPeriod,
    pub evaluator_id: Uuid,
    pub overall: OverallRating,
    pub competencies: BTreeMap<String, u8>,
    pub comment: Option<Sealed>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StaffEvent {
    StaffRegistered(Registration),
    GradeChanged {
        grade: Grade,
        effective_on: Date,
        reason: GradeChangeReason,
    },
    StaffTransferred {
        to_department: Text,
        department_kind: DepartmentKind,
        effective_on: Date,
        kind: TransferKind,
    },
    StaffSeparated {
        effective_on: Date,
        reason: SeparationReason,
    },
    StaffRehired(Rehire),
    InterviewRecorded(Interview),
    InterviewCorrected {
        interview_id: Uuid,
        kind: Option<InterviewKind>,
        held_on: Option<Date>,
        note: Option<Sealed>,
        reason: Text,
    },
    InterviewWithdrawn {
        interview_id: Uuid,
        reason: Text,
    },
    EvaluationRecorded(Evaluation),
    EvaluationCorrected {
        evaluation_id: Uuid,
        overall: Option<OverallRating>,
        competencies: Option<BTreeMap<String, u8>>,
        comment: Option<Sealed>,
        reason: Text,
    },
    EvaluationDisputed {
        evaluation_id: Uuid,
        text: Sealed,
    },
    DisputeResolved {
        evaluation_id: Uuid,
        /// What was decided, about a person: sealed like the dispute itself.
        outcome: Sealed,
        reason: Text,
    },
    /// The person's key was destroyed (crypto-shredding): their name and every free text
    /// about them are unreadable from here on, everywhere; every count stays.
    PersonalDataErased {
        reason: Text,
    },
}

impl DomainEvent for StaffEvent {
    fn event_type(&self) -> String {
        let name = match self {
            StaffEvent::StaffRegistered(_) => "StaffRegistered",
            StaffEvent::GradeChanged { .. } => "GradeChanged",
            StaffEvent::StaffTransferred { .. } => "StaffTransferred",
            StaffEvent::StaffSeparated { .. } => "StaffSeparated",
            StaffEvent::StaffRehired(_) => "StaffRehired",
            StaffEvent::InterviewRecorded(_) => "InterviewRecorded",
            StaffEvent::InterviewCorrected { .. } => "InterviewCorrected",
            StaffEvent::InterviewWithdrawn { .. } => "InterviewWithdrawn",
            StaffEvent::EvaluationRecorded(_) => "EvaluationRecorded",
            StaffEvent::EvaluationCorrected { .. } => "EvaluationCorrected",
            StaffEvent::EvaluationDisputed { .. } => "EvaluationDisputed",
            StaffEvent::DisputeResolved { .. } => "DisputeResolved",
            StaffEvent::PersonalDataErased { .. } => "PersonalDataErased",
        };
        name.to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StaffCommand {
    Register(Registration),
    ChangeGrade {
        grade: Grade,
        effective_on: Date,
        reason: GradeChangeReason,
    },
    Transfer {
        to_department: Text,
        department_kind: DepartmentKind,
        effective_on: Date,
        kind: TransferKind,
    },
    Separate {
        effective_on: Date,
        reason: SeparationReason,
    },
    Rehire(Rehire),
    /// `interviewer_registered` is looked up by the application before the command is built.
    RecordInterview {
        interview: Interview,
        interviewer_registered: bool,
    },
    CorrectInterview {
        interview_id: Uuid,
        kind: Option<InterviewKind>,
        held_on: Option<Date>,
        note: Option<Sealed>,
        reason: Text,
    },
    WithdrawInterview {
        interview_id: Uuid,
        reason: Text,
    },
    RecordEvaluation {
        evaluation: Evaluation,
        evaluator_registered: bool,
    },
    CorrectEvaluation {
        evaluation_id: Uuid,
        overall: Option<OverallRating>,
        competencies: Option<BTreeMap<String, u8>>,
        comment: Option<Sealed>,
        reason: Text,
    },
    DisputeEvaluation {
        evaluation_id: Uuid,
        text: Sealed,
    },
    ResolveDispute {
        evaluation_id: Uuid,
        outcome: Sealed,
        reason: Text,
    },
    /// Destroys the person's key (the application does, after this event is recorded).
    ErasePersonalData {
        reason: Text,
    },
}

impl StaffCommand {
    /// Whether the command writes sealed text about the person (refused once erased; a
    /// second erasure is refused too).
    fn carries_personal_text(&self) -> bool {
        match self {
            StaffCommand::Register(_)
            | StaffCommand::RecordInterview { .. }
            | StaffCommand::RecordEvaluation { .. }
            | StaffCommand::DisputeEvaluation { .. }
            | StaffCommand::ResolveDispute { .. }
            | StaffCommand::ErasePersonalData { .. } => true,
            StaffCommand::CorrectInterview { note, .. } => note.is_some(),
            StaffCommand::CorrectEvaluation { comment, .. } => comment.is_some(),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaffError {
    #[error("この職員番号はすでに登録されています")]
    EmployeeNoTaken,
    #[error("この ID の職員はいません")]
    StaffNotFound,
    #[error("その職員はその日に在職していません")]
    NotInService,
    #[error("その職員はまだ在職しています")]
    StillInService,
    #[error("日付が現在の在職期間の開始より前です")]
    DateOutOfOrder,
    #[error("面談者が登録された職員ではありません")]
    InterviewerNotFound,
    #[error("評価者が登録された職員ではありません")]
    EvaluatorNotFound,
    #[error("この ID の面談はすでに記録されています")]
    InterviewExists,
    #[error("この ID の面談はありません")]
    InterviewNotFound,
    #[error("この面談は取り下げられています")]
    InterviewWithdrawn,
    #[error("この ID の人事評価はすでに記録されています")]
    EvaluationExists,
    #[error("この ID の人事評価はありません")]
    EvaluationNotFound,
    #[error("能力評価の項目は 30 個まで、名前は 1〜50 文字、点数は 1〜5 にしてください")]
    CompetencyOutOfRange,
    #[error("訂正しても何も変わりません")]
    NothingToCorrect,
    #[error("この人事評価への異議申立てはすでに受付中です")]
    DisputeAlreadyOpen,
    #[error("この人事評価に受付中の異議申立てはありません")]
    NoOpenDispute,
    #[error("この職員の個人情報は削除済みです。氏名や所見などの個人情報は記録できません")]
    PersonalDataErased,
}

impl DomainError for StaffError {
    fn code(&self) -> &'static str {
        match self {
            StaffError::EmployeeNoTaken => "employee_no_taken",
            StaffError::StaffNotFound => "staff_not_found",
            StaffError::NotInService => "not_in_service",
            StaffError::StillInService => "still_in_service",
            StaffError::DateOutOfOrder => "date_out_of_order",
            StaffError::InterviewerNotFound => "interviewer_not_found",
            StaffError::EvaluatorNotFound => "evaluator_not_found",
            StaffError::InterviewExists => "interview_exists",
            StaffError::InterviewNotFound => "interview_not_found",
            StaffError::InterviewWithdrawn => "interview_withdrawn",
            StaffError::EvaluationExists => "evaluation_exists",
            StaffError::EvaluationNotFound => "evaluation_not_found",
            StaffError::CompetencyOutOfRange => "competency_out_of_range",
            StaffError::NothingToCorrect => "nothing_to_correct",
            StaffError::DisputeAlreadyOpen => "dispute_already_open",
            StaffError::NoOpenDispute => "no_open_dispute",
            StaffError::PersonalDataErased => "personal_data_erased",
        }
    }

    fn refusal(&self) -> Refusal {
        match self {
            StaffError::StaffNotFound
            | StaffError::InterviewerNotFound
            | StaffError::EvaluatorNotFound
            | StaffError::InterviewNotFound
            | StaffError::EvaluationNotFound => Refusal::NotFound,
            StaffError::CompetencyOutOfRange | StaffError::NothingToCorrect => Refusal::Invalid,
            StaffError::EmployeeNoTaken
            | StaffError::NotInService
            | StaffError::StillInService
            | StaffError::DateOutOfOrder
            | StaffError::InterviewExists
            | StaffError::InterviewWithdrawn
            | StaffError::EvaluationExists
            | StaffError::DisputeAlreadyOpen
            | StaffError::NoOpenDispute
            | StaffError::PersonalDataErased => Refusal::Conflict,
        }
    }
}

/// A period of service: `[start, end)`; `end` is the effective date of the separation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePeriod {
    pub start: Date,
    pub end: Option<Date>,
}

impl ServicePeriod {
    fn covers(&self, date: Date) -> bool {
        crate::dates::covers(self.start, self.end, date)
    }
}

/// What the staff aggregate needs to decide: service periods, and which interviews and
/// evaluations exist. Histories for display live in the projections.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Staff {
    registered: bool,
    periods: Vec<ServicePeriod>,
    /// interview id → withdrawn?
    interviews: BTreeMap<Uuid, bool>,
    /// evaluation id → dispute open?
    evaluations: BTreeMap<Uuid, bool>,
    /// The person's key was destroyed.
    #[serde(default)]
    erased: bool,
}

impl Staff {
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// In service on `date`: hired on or before it and not separated on or before it.
    pub fn in_service_on(&self, date: Date) -> bool {
        self.periods.iter().any(|p| p.covers(date))
    }

    fn current_period(&self) -> Option<&ServicePeriod> {
        self.periods.last()
    }

    fn decide(&self, command: StaffCommand) -> Result<Vec<StaffEvent>, StaffError> {
        if let StaffCommand::Register(registration) = command {
            if self.registered {
                return Err(StaffError::EmployeeNoTaken);
            }
            return Ok(vec![StaffEvent::StaffRegistered(registration)]);
        }
        if !self.registered {
            return Err(StaffError::StaffNotFound);
        }
        if self.erased && command.carries_personal_text() {
            return Err(StaffError::PersonalDataErased);
        }
        let event = match command {
            StaffCommand::ErasePersonalData { reason } => StaffEvent::PersonalDataErased { reason },
            StaffCommand::Register(_) => return Err(StaffError::EmployeeNoTaken),
            StaffCommand::ChangeGrade {
                grade,
                effective_on,
                reason,
            } => {
                self.require_in_service(effective_on)?;
                StaffEvent::GradeChanged {
                    grade,
                    effective_on,
                    reason,
                }
            }
            StaffCommand::Transfer {
                to_department,
                department_kind,
                effective_on,
                kind,
            } => {
                self.require_in_service(effective_on)?;
                StaffEvent::StaffTransferred {
                    to_department,
                    department_kind,
                    effective_on,
                    kind,
                }
            }
            StaffCommand::Separate {
                effective_on,
                reason,
            } => {
                let period = self.current_period().ok_or(StaffError::NotInService)?;
                if period.end.is_some() {
                    return Err(StaffError::NotInService);
                }
                if effective_on <= period.start {
                    return Err(StaffError::DateOutOfOrder);
                }
                StaffEvent::StaffSeparated {
                    effective_on,
                    reason,
                }
            }
            StaffCommand::Rehire(rehire) => {
                let end = match self.current_period().and_then(|p| p.end) {
                    Some(end) => end,
                    None => return Err(StaffError::StillInService),
                };
                if rehire.effective_on < end {
                    return Err(StaffError::DateOutOfOrder);
                }
                StaffEvent::StaffRehired(rehire)
            }
            StaffCommand::RecordInterview {
                interview,
                interviewer_registered,
            } => {
                if !interviewer_registered {
                    return Err(StaffError::InterviewerNotFound);
                }
                if self.interviews.contains_key(&interview.interview_id) {
                    return Err(StaffError::InterviewExists);
                }
                self.require_in_service(interview.held_on)?;
                StaffEvent::InterviewRecorded(interview)
            }
            StaffCommand::CorrectInterview {
                interview_id,
                kind,
                held_on,
                note,
                reason,
            } => {
                self.require_live_interview(interview_id)?;
                if kind.is_none() && held_on.is_none() && note.is_none() {
                    return Err(StaffError::NothingToCorrect);
                }
                if let Some(held_on) = held_on {
                    self.require_in_service(held_on)?;
                }
                StaffEvent::InterviewCorrected {
                    interview_id,
                    kind,
                    held_on,
                    note,
                    reason,
                }
            }
            StaffCommand::WithdrawInterview {
                interview_id,
                reason,
            } => {
                self.require_live_interview(interview_id)?;
                StaffEvent::InterviewWithdrawn {
                    interview_id,
                    reason,
                }
            }
            StaffCommand::RecordEvaluation {
                evaluation,
                evaluator_registered,
            } => {
                if !evaluator_registered {
                    return Err(StaffError::EvaluatorNotFound);
                }
                if self.evaluations.contains_key(&evaluation.evaluation_id) {
                    return Err(StaffError::EvaluationExists);
                }
                check_competencies(&evaluation.competencies)?;
                StaffEvent::EvaluationRecorded(evaluation)
            }
            StaffCommand::CorrectEvaluation {
                evaluation_id,
                overall,
                competencies,
                comment,
                reason,
            } => {
                self.require_evaluation(evaluation_id)?;
                if overall.is_none() && competencies.is_none() && comment.is_none() {
                    return Err(StaffError::NothingToCorrect);
                }
                if let Some(competencies) = &competencies {
                    check_competencies(competencies)?;
                }
                StaffEvent::EvaluationCorrected {
                    evaluation_id,
                    overall,
                    competencies,
                    comment,
                    reason,
                }
            }
            StaffCommand::DisputeEvaluation {
                evaluation_id,
                text,
            } => {
                if self.require_evaluation(evaluation_id)? {
                    return Err(StaffError::DisputeAlreadyOpen);
                }
                StaffEvent::EvaluationDisputed {
                    evaluation_id,
                    text,
                }
            }
            StaffCommand::ResolveDispute {
                evaluation_id,
                outcome,
                reason,
            } => {
                if !self.require_evaluation(evaluation_id)? {
                    return Err(StaffError::NoOpenDispute);
                }
                StaffEvent::DisputeResolved {
                    evaluation_id,
                    outcome,
                    reason,
                }
            }
        };
        Ok(vec![event])
    }

    fn require_in_service(&self, date: Date) -> Result<(), StaffError> {
        if self.in_service_on(date) {
            Ok(())
        } else {
            Err(StaffError::NotInService)
        }
    }

    fn require_live_interview(&self, interview_id: Uuid) -> Result<(), StaffError> {
        match self.interviews.get(&interview_id) {
            None => Err(StaffError::InterviewNotFound),
            Some(true) => Err(StaffError::InterviewWithdrawn),
            Some(false) => Ok(()),
        }
    }

    /// Returns whether a dispute is open.
    fn require_evaluation(&self, evaluation_id: Uuid) -> Result<bool, StaffError> {
        self.evaluations
            .get(&evaluation_id)
            .copied()
            .ok_or(StaffError::EvaluationNotFound)
    }
}

/// At most this many competencies per evaluation, each name at most this many characters
/// (a city's 評価項目 are a dozen short names; a megabyte of name is not one).
pub const MAX_COMPETENCIES: usize = 30;
pub const MAX_COMPETENCY_NAME: usize = 50;

fn check_competencies(competencies: &BTreeMap<String, u8>) -> Result<(), StaffError> {
    let valid = competencies.len() <= MAX_COMPETENCIES
        && competencies.iter().all(|(name, score)| {
            let name = name.trim();
            !name.is_empty()
                && name.chars().count() <= MAX_COMPETENCY_NAME
                && !name.chars().any(char::is_control)
                && (1..=5).contains(score)
        });
    if valid {
        Ok(())
    } else {
        Err(StaffError::CompetencyOutOfRange)
    }
}

impl Aggregate for Staff {
    const TYPE: &'static str = "Staff";
    type Command = StaffCommand;
    type Event = StaffEvent;
    type Error = StaffError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            StaffEvent::StaffRegistered(registration) => {
                self.registered = true;
                self.periods.push(ServicePeriod {
                    start: registration.hired_on,
                    end: None,
                });
            }
            StaffEvent::StaffSeparated { effective_on, .. } => {
                if let Some(period) = self.periods.last_mut() {
                    period.end = Some(effective_on);
                }
            }
            StaffEvent::StaffRehired(rehire) => self.periods.push(ServicePeriod {
                start: rehire.effective_on,
                end: None,
            }),
            StaffEvent::InterviewRecorded(interview) => {
                self.interviews.insert(interview.interview_id, false);
            }
            StaffEvent::InterviewWithdrawn { interview_id, .. } => {
                self.interviews.insert(interview_id, true);
            }
            StaffEvent::EvaluationRecorded(evaluation) => {
                self.evaluations.insert(evaluation.evaluation_id, false);
            }
            StaffEvent::EvaluationDisputed { evaluation_id, .. } => {
                self.evaluations.insert(evaluation_id, true);
            }
            StaffEvent::DisputeResolved { evaluation_id, .. } => {
                self.evaluations.insert(evaluation_id, false);
            }
            StaffEvent::PersonalDataErased { .. } => self.erased = true,
            StaffEvent::GradeChanged { .. }
            | StaffEvent::StaffTransferred { .. }
            | StaffEvent::InterviewCorrected { .. }
            | StaffEvent::EvaluationCorrected { .. } => {}
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type Given = TestFramework<Staff>;

    pub fn date(s: &str) -> Date {
        s.parse().expect("test date")
    }

    pub fn sealed(s: &str) -> Sealed {
        Sealed {
            enc: "test".into(),
            ct: s.into(),
        }
    }

    pub fn text(s: &str) -> Text {
        Text::parse(s).expect("test text")
    }

    pub fn registration(hired_on: &str) -> Registration {
        Registration {
            employee_no: EmployeeNo::parse("A001").expect("test employee no"),
            name: sealed("name"),
            name_kana: None,
            gender: Gender::Female,
            hired_on: date(hired_on),
            grade: Grade::try_from(1).expect("test grade"),
            job_type: JobType::Administrative,
            employment: Employment::Regular,
            department: text("総務課"),
            department_kind: DepartmentKind::Administration,
        }
    }

    fn registered() -> Vec<StaffEvent> {
        vec![StaffEvent::StaffRegistered(registration("2020-04-01"))]
    }

    fn separated() -> Vec<StaffEvent> {
        let mut events = registered();
        events.push(StaffEvent::StaffSeparated {
            effective_on: date("2023-04-01"),
            reason: SeparationReason::Resignation,
        });
        events
    }

    fn interview(id: u128, held_on: &str, interviewer_registered: bool) -> StaffCommand {
        StaffCommand::RecordInterview {
            interview: Interview {
                interview_id: Uuid::from_u128(id),
                kind: InterviewKind::OneOnOne,
                held_on: date(held_on),
                interviewer_id: Uuid::from_u128(99),
                note: sealed("note"),
            },
            interviewer_registered,
        }
    }

    fn evaluation(competency: u8) -> Evaluation {
        Evaluation {
            evaluation_id: Uuid::from_u128(7),
            fiscal_year: FiscalYear::new(2023).expect("fy"),
            period: EvaluationPeriod::Annual,
            evaluator_id: Uuid::from_u128(99),
            overall: OverallRating::B,
            competencies: BTreeMap::from([("企画力".to_string(), competency)]),
            comment: None,
        }
    }

    fn grade_change(effective_on: &str) -> StaffCommand {
        StaffCommand::ChangeGrade {
            grade: Grade::try_from(2).expect("grade"),
            effective_on: date(effective_on),
            reason: GradeChangeReason::Promotion,
        }
    }

    #[test]
    fn registering_records_the_staff_member() {
        Given::with(())
            .given_no_previous_events()
            .when(StaffCommand::Register(registration("2020-04-01")))
            .then_expect_events(registered());
    }

    #[test]
    fn registering_a_taken_employee_number_is_rejected() {
        Given::with(())
            .given(registered())
            .when(StaffCommand::Register(registration("2021-04-01")))
            .then_expect_error(StaffError::EmployeeNoTaken);
    }

    #[test]
    fn commands_on_an_unknown_staff_member_are_rejected() {
        Given::with(())
            .given_no_previous_events()
            .when(grade_change("2021-04-01"))
            .then_expect_error(StaffError::StaffNotFound);
    }

    #[test]
    fn a_grade_change_before_hiring_is_rejected() {
        Given::with(())
            .given(registered())
            .when(grade_change("2019-04-01"))
            .then_expect_error(StaffError::NotInService);
    }

    #[test]
    fn a_grade_change_after_separation_is_rejected() {
        Given::with(())
            .given(separated())
            .when(grade_change("2023-04-01"))
            .then_expect_error(StaffError::NotInService);
    }

    #[test]
    fn a_transfer_while_not_in_service_is_rejected() {
        Given::with(())
            .given(separated())
            .when(StaffCommand::Transfer {
                to_department: text("税務課"),
                department_kind: DepartmentKind::FrontOffice,
                effective_on: date("2024-04-01"),
                kind: TransferKind::Regular,
            })
            .then_expect_error(StaffError::NotInService);
    }

    #[test]
    fn separating_twice_is_rejected() {
        Given::with(())
            .given(separated())
            .when(StaffCommand::Separate {
                effective_on: date("2024-04-01"),
                reason: SeparationReason::Other,
            })
            .then_expect_error(StaffError::NotInService);
    }

    #[test]
    fn separating_on_or_before_the_start_of_service_is_rejected() {
        Given::with(())
            .given(registered())
            .when(StaffCommand::Separate {
                effective_on: date("2020-04-01"),
                reason: SeparationReason::Other,
            })
            .then_expect_error(StaffError::DateOutOfOrder);
    }

    fn rehire(effective_on: &str) -> StaffCommand {
        StaffCommand::Rehire(Rehire {
            effective_on: date(effective_on),
            grade: Grade::try_from(3).expect("grade"),
            department: text("税務課"),
            department_kind: DepartmentKind::FrontOffice,
            employment: Employment::Reappointed,
        })
    }

    #[test]
    fn rehiring_someone_in_service_is_rejected() {
        Given::with(())
            .given(registered())
            .when(rehire("2024-04-01"))
            .then_expect_error(StaffError::StillInService);
    }

    #[test]
    fn rehiring_before_the_separation_is_rejected() {
        Given::with(())
            .given(separated())
            .when(rehire("2022-04-01"))
            .then_expect_error(StaffError::DateOutOfOrder);
    }

    #[test]
    fn a_rehire_starts_a_new_period_of_service() {
        let mut staff = Staff::default();
        for event in separated() {
            staff.apply(event);
        }
        staff.apply(StaffEvent::StaffRehired(Rehire {
            effective_on: date("2024-04-01"),
            grade: Grade::try_from(3).expect("grade"),
            department: text("税務課"),
            department_kind: DepartmentKind::FrontOffice,
            employment: Employment::Reappointed,
        }));
        assert!(staff.in_service_on(date("2022-04-01")));
        assert!(!staff.in_service_on(date("2023-04-01")));
        assert!(staff.in_service_on(date("2024-04-01")));
    }

    #[test]
    fn an_interview_with_an_unknown_interviewer_is_rejected() {
        Given::with(())
            .given(registered())
            .when(interview(1, "2023-06-01", false))
            .then_expect_error(StaffError::InterviewerNotFound);
    }

    #[test]
    fn an_interview_outside_service_is_rejected() {
        Given::with(())
            .given(separated())
            .when(interview(1, "2023-06-01", true))
            .then_expect_error(StaffError::NotInService);
    }

    #[test]
    fn recording_the_same_interview_twice_is_rejected() {
        let mut given = registered();
        if let StaffCommand::RecordInterview { interview, .. } = interview(1, "2023-06-01", true) {
            given.push(StaffEvent::InterviewRecorded(interview));
        }
        Given::with(())
            .given(given)
            .when(interview(1, "2023-06-02", true))
            .then_expect_error(StaffError::InterviewExists);
    }

    fn with_interview(withdrawn: bool) -> Vec<StaffEvent> {
        let mut given = registered();
        if let StaffCommand::RecordInterview { interview, .. } = interview(1, "2023-06-01", true) {
            given.push(StaffEvent::InterviewRecorded(interview));
        }
        if withdrawn {
            given.push(StaffEvent::InterviewWithdrawn {
                interview_id: Uuid::from_u128(1),
                reason: text("重複登録"),
            });
        }
        given
    }

    #[test]
    fn correcting_an_unknown_interview_is_rejected() {
        Given::with(())
            .given(registered())
            .when(StaffCommand::CorrectInterview {
                interview_id: Uuid::from_u128(1),
                kind: Some(InterviewKind::Career),
                held_on: None,
                note: None,
                reason: text("種別の誤り"),
            })
            .then_expect_error(StaffError::InterviewNotFound);
    }

    #[test]
    fn correcting_a_withdrawn_interview_is_rejected() {
        Given::with(())
            .given(with_interview(true))
            .when(StaffCommand::CorrectInterview {
                interview_id: Uuid::from_u128(1),
                kind: Some(InterviewKind::Career),
                held_on: None,
                note: None,
                reason: text("種別の誤り"),
            })
            .then_expect_error(StaffError::InterviewWithdrawn);
    }

    #[test]
    fn withdrawing_an_interview_twice_is_rejected() {
        Given::with(())
            .given(with_interview(true))
            .when(StaffCommand::WithdrawInterview {
                interview_id: Uuid::from_u128(1),
                reason: text("重複登録"),
            })
            .then_expect_error(StaffError::InterviewWithdrawn);
    }

    #[test]
    fn a_correction_that_changes_nothing_is_rejected() {
        Given::with(())
            .given(with_interview(false))
            .when(StaffCommand::CorrectInterview {
                interview_id: Uuid::from_u128(1),
                kind: None,
                held_on: None,
                note: None,
                reason: text("なし"),
            })
            .then_expect_error(StaffError::NothingToCorrect);
    }

    #[test]
    fn an_evaluation_by_an_unknown_evaluator_is_rejected() {
        Given::with(())
            .given(registered())
            .when(StaffCommand::RecordEvaluation {
                evaluation: evaluation(3),
                evaluator_registered: false,
            })
            .then_expect_error(StaffError::EvaluatorNotFound);
    }

    #[test]
    fn a_competency_score_of_six_is_rejected() {
        Given::with(())
            .given(registered())
            .when(StaffCommand::RecordEvaluation {
                evaluation: evaluation(6),
                evaluator_registered: true,
            })
            .then_expect_error(StaffError::CompetencyOutOfRange);
    }

    #[test]
    fn competency_names_and_counts_are_bounded() {
        let mut long_name = evaluation(3);
        long_name.competencies = BTreeMap::from([("企".repeat(51), 3)]);
        Given::with(())
            .given(registered())
            .when(StaffCommand::RecordEvaluation {
                evaluation: long_name,
                evaluator_registered: true,
            })
            .then_expect_error(StaffError::CompetencyOutOfRange);
        let mut many = evaluation(3);
        many.competencies = (0..31).map(|i| (format!("項目{i}"), 3)).collect();
        Given::with(())
            .given(registered())
            .when(StaffCommand::RecordEvaluation {
                evaluation: many,
                evaluator_registered: true,
            })
            .then_expect_error(StaffError::CompetencyOutOfRange);
    }

    #[test]
    fn correcting_an_unknown_evaluation_is_rejected() {
        Given::with(())
            .given(registered())
            .when(StaffCommand::CorrectEvaluation {
                evaluation_id: Uuid::from_u128(7),
                overall: Some(OverallRating::A),
                competencies: None,
                comment: None,
                reason: text("集計誤り"),
            })
            .then_expect_error(StaffError::EvaluationNotFound);
    }

    fn evaluated() -> Vec<StaffEvent> {
        let mut given = registered();
        given.push(StaffEvent::EvaluationRecorded(evaluation(3)));
        given
    }

    #[test]
    fn disputing_an_unknown_evaluation_is_rejected() {
        Given::with(())
            .given(registered())
            .when(StaffCommand::DisputeEvaluation {
                evaluation_id: Uuid::from_u128(7),
                text: sealed("申出"),
            })
            .then_expect_error(StaffError::EvaluationNotFound);
    }

    #[test]
    fn a_second_open_dispute_is_rejected() {
        let mut given = evaluated();
        given.push(StaffEvent::EvaluationDisputed {
            evaluation_id: Uuid::from_u128(7),
            text: sealed("申出"),
        });
        Given::with(())
            .given(given)
            .when(StaffCommand::DisputeEvaluation {
                evaluation_id: Uuid::from_u128(7),
                text: sealed("再申出"),
            })
            .then_expect_error(StaffError::DisputeAlreadyOpen);
    }

    #[test]
    fn resolving_without_an_open_dispute_is_rejected() {
        Given::with(())
            .given(evaluated())
            .when(StaffCommand::ResolveDispute {
                evaluation_id: Uuid::from_u128(7),
                outcome: sealed("評価を維持"),
                reason: text("確認済み"),
            })
            .then_expect_error(StaffError::NoOpenDispute);
    }

    #[test]
    fn staff_ids_follow_the_employee_number() {
        let a = EmployeeNo::parse("A001").expect("no");
        assert_eq!(staff_id_of(&a), staff_id_of(&a.clone()));
        assert_ne!(
            staff_id_of(&a),
            staff_id_of(&EmployeeNo::parse("A002").expect("no"))
        );
    }
}
