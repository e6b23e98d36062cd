//! Test-only builders shared by the read models' unit tests: a hand-written [`Log`] that
//! appends events at positions 1, 2, 3… and folds them into the fact store and the plan book,
//! and the small value helpers (`date`, `fy`, `text`, `grade`…) that build its events.

use crate::history::Histories;
use crate::indicators::Facts;
use crate::plans::PlanBook;
use crate::{LedgerEvent, Recorded};
use kiroku_domain::incident::IncidentEvent;
use kiroku_domain::plan::{
    IndicatorDefinition, IndicatorSource, PlanEvent, PlanItemDefinition, RuleName, RuleParams,
};
use kiroku_domain::session::{Schedule, SessionEvent};
use kiroku_domain::staff::{Interview, Registration, Rehire, StaffEvent};
use kiroku_domain::values::*;
use uuid::Uuid;

/// The plan item every plan event of a [`Log`] belongs to.
pub const ITEM: &str = "2-1-2";

pub fn date(s: &str) -> Date {
    s.parse().expect("test date")
}

pub fn fy(year: i32) -> FiscalYear {
    FiscalYear::new(year).expect("test fiscal year")
}

pub fn text(s: &str) -> Text {
    Text::parse(s).expect("test text")
}

pub fn code(s: &str) -> Code {
    Code::parse(s).expect("test code")
}

pub fn grade(g: u8) -> Grade {
    Grade::try_from(g).expect("test grade")
}

pub fn understanding(u: u8) -> Understanding {
    Understanding::try_from(u).expect("test understanding")
}

pub fn sealed() -> Sealed {
    Sealed {
        enc: "test".into(),
        ct: "AAAA".into(),
    }
}

pub fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// A hand-written log: every call appends one event at the next position (1, 2, 3…) and
/// applies it to the fact store, the plan book and the histories.
#[derive(Default)]
pub struct Log {
    pub facts: Facts,
    pub histories: Histories,
    pub book: PlanBook,
    pub position: i64,
}

impl Log {
    pub fn push(&mut self, aggregate: String, event: LedgerEvent) -> i64 {
        self.position += 1;
        let recorded = Recorded {
            position: self.position,
            recorded_at: 1_700_000_000_000 + self.position,
            aggregate_id: aggregate,
            actor: Some("hr".into()),
            reason: None,
            event,
        };
        self.facts.apply(&recorded);
        self.book.apply(&recorded);
        self.histories.apply(&recorded);
        self.position
    }

    pub fn staff(&mut self, staff: Uuid, event: StaffEvent) -> i64 {
        self.push(staff.to_string(), LedgerEvent::Staff(event))
    }

    pub fn session(&mut self, session: Uuid, event: SessionEvent) -> i64 {
        self.push(session.to_string(), LedgerEvent::Session(event))
    }

    pub fn plan(&mut self, event: PlanEvent) -> i64 {
        self.push(ITEM.to_string(), LedgerEvent::Plan(event))
    }

    pub fn define_item(&mut self) -> i64 {
        self.plan(PlanEvent::PlanItemDefined(PlanItemDefinition {
            code: code(ITEM),
            title: text("研修内容の充実"),
            pillar: text("人材育成"),
            parent_code: None,
            lead_department: text("人事課"),
            status: ItemStatus::Continued,
            aim: None,
            related_plans: None,
            from_fiscal_year: fy(2023),
            to_fiscal_year: fy(2025),
            plan: None,
        }))
    }

    pub fn define(&mut self, indicator: &str, source: IndicatorSource) -> i64 {
        self.plan(PlanEvent::IndicatorDefined(IndicatorDefinition {
            indicator_code: code(indicator),
            name: text(indicator),
            description: None,
            kind: IndicatorKind::Outcome,
            unit: Unit::Count,
            source,
            baseline: None,
        }))
    }

    pub fn define_rule(&mut self, indicator: &str, rule: RuleName) -> i64 {
        self.define(
            indicator,
            IndicatorSource::Rule {
                rule,
                params: RuleParams::default(),
            },
        )
    }

    pub fn set_target(&mut self, indicator: &str, year: i32, value: f64) -> i64 {
        self.plan(PlanEvent::TargetSet {
            indicator_code: code(indicator),
            fiscal_year: fy(year),
            op: TargetOp::AtLeast,
            value,
        })
    }

    pub fn register(&mut self, staff: Uuid, gender: Gender, hired_on: &str, g: u8) -> i64 {
        self.register_in(staff, gender, hired_on, g, DepartmentKind::FrontOffice)
    }

    pub fn register_in(
        &mut self,
        staff: Uuid,
        gender: Gender,
        hired_on: &str,
        g: u8,
        kind: DepartmentKind,
    ) -> i64 {
        self.staff(
            staff,
            StaffEvent::StaffRegistered(Registration {
                employee_no: EmployeeNo::parse(&format!("E{}", staff.as_u128()))
                    .expect("test employee no"),
                name: sealed(),
                name_kana: None,
                gender,
                hired_on: date(hired_on),
                grade: grade(g),
                job_type: JobType::Administrative,
                employment: Employment::Regular,
                department: text("税務課"),
                department_kind: kind,
            }),
        )
    }

    pub fn grade_change(&mut self, staff: Uuid, g: u8, effective_on: &str) -> i64 {
        self.staff(
            staff,
            StaffEvent::GradeChanged {
                grade: grade(g),
                effective_on: date(effective_on),
                reason: GradeChangeReason::Promotion,
            },
        )
    }

    pub fn transfer(
        &mut self,
        staff: Uuid,
        department_kind: DepartmentKind,
        effective_on: &str,
        kind: TransferKind,
    ) -> i64 {
        self.staff(
            staff,
            StaffEvent::StaffTransferred {
                to_department: text("企画課"),
                department_kind,
                effective_on: date(effective_on),
                kind,
            },
        )
    }

    pub fn separate(&mut self, staff: Uuid, effective_on: &str) -> i64 {
        self.staff(
            staff,
            StaffEvent::StaffSeparated {
                effective_on: date(effective_on),
                reason: SeparationReason::Resignation,
            },
        )
    }

    /// Rehires `staff` as reappointed at grade `g`.
    pub fn rehire(&mut self, staff: Uuid, effective_on: &str, g: u8, kind: DepartmentKind) -> i64 {
        self.staff(
            staff,
            StaffEvent::StaffRehired(Rehire {
                effective_on: date(effective_on),
                grade: grade(g),
                department: text("財政課"),
                department_kind: kind,
                employment: Employment::Reappointed,
            }),
        )
    }

    pub fn interview(
        &mut self,
        staff: Uuid,
        interview: Uuid,
        kind: InterviewKind,
        held_on: &str,
    ) -> i64 {
        self.staff(
            staff,
            StaffEvent::InterviewRecorded(Interview {
                interview_id: interview,
                kind,
                held_on: date(held_on),
                interviewer_id: id(999),
                note: sealed(),
            }),
        )
    }

    pub fn schedule(&mut self, session: Uuid, category: TrainingCategory, provider: &str) -> i64 {
        self.session(
            session,
            SessionEvent::SessionScheduled(Schedule {
                course_code: text("K-01"),
                title: text("新任係長研修"),
                category,
                provider: text(provider),
                delivery: Delivery::InPerson,
                starts_on: date("2023-04-01"),
                ends_on: date("2023-04-01"),
                capacity: 100,
            }),
        )
    }

    /// Enrols and completes in one go (as an attendance import does); returns the position of
    /// the completion.
    pub fn complete(&mut self, session: Uuid, staff: Uuid, on: &str, u: Option<u8>) -> i64 {
        self.session(
            session,
            SessionEvent::StaffEnrolled {
                staff_id: staff,
                status: EnrolmentStatus::Enrolled,
            },
        );
        self.session(
            session,
            SessionEvent::TrainingCompleted {
                staff_id: staff,
                completed_on: date(on),
                understanding: u.map(understanding),
            },
        )
    }

    pub fn correct(&mut self, session: Uuid, staff: Uuid, on: Option<&str>, u: Option<u8>) -> i64 {
        self.session(
            session,
            SessionEvent::CompletionCorrected {
                staff_id: staff,
                completed_on: on.map(date),
                understanding: u.map(understanding),
                reason: text("訂正"),
            },
        )
    }

    pub fn revoke(&mut self, session: Uuid, staff: Uuid) -> i64 {
        self.session(
            session,
            SessionEvent::CompletionRevoked {
                staff_id: staff,
                reason: text("受講していなかった"),
            },
        )
    }

    pub fn incident(&mut self, incident: Uuid, occurred_on: &str) -> i64 {
        self.push(
            incident.to_string(),
            LedgerEvent::Incident(IncidentEvent::ComplianceIncidentRecorded {
                incident_id: incident,
                occurred_on: date(occurred_on),
                department: text("市民課"),
                summary: text("誤送付"),
            }),
        )
    }
}
