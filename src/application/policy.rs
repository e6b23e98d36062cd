//! Who may see and do what: the one policy behind the API, the pages, the import and the
//! CLI. Every entry point asks [`allows`] (or [`require`]); none keeps its own list of roles.
//!
//! - hr_admin (人事課) records and reads everything, confidential text included.
//! - auditor (監査) reads every sheet, audit trail, session and staff record, never
//!   confidential text, and changes nothing.
//! - manager (所属長) reads the sheets and the staff of the department they belong to today,
//!   and records interviews and evaluations there.
//! - staff (職員) reads their own record and disputes their own evaluations.

use crate::storage::tokens::{Principal, Role};
use kiroku_domain::values::Date;
use kiroku_projections::history::Histories;
use uuid::Uuid;

/// Something a caller asks to do or to see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Commands only the HR department makes: registering and moving staff, sessions and
    /// their rosters, plan items and their figures, publication, incidents, imports,
    /// dispute resolutions.
    Administer,
    /// Being offered the interview and evaluation forms of this staff member.
    RecordAbout(Uuid),
    /// Recording an interview of `subject` held by `interviewer`.
    RecordInterview { subject: Uuid, interviewer: Uuid },
    /// Correcting or withdrawing an interview of `subject`.
    ChangeInterview { subject: Uuid, interview: Uuid },
    /// Recording an evaluation of `subject` by `evaluator`.
    RecordEvaluation { subject: Uuid, evaluator: Uuid },
    /// Correcting an evaluation of `subject`.
    ChangeEvaluation { subject: Uuid, evaluation: Uuid },
    /// 苦情・申出 about an evaluation of this staff member.
    Dispute(Uuid),
    /// The record of one staff member (confidential parts are decided per item below).
    ReadStaff(Uuid),
    /// The list of staff (search).
    ListStaff,
    /// Sessions and their rosters.
    ReadSessions,
    /// Progress sheets and the dashboard.
    ReadSheets,
    /// Audit trails and the event log.
    ReadAudit,
    /// An interview note, read by HR or the interviewer.
    ReadInterviewNote { interviewer: Uuid },
    /// An evaluation comment or dispute text: HR, the evaluator and the person evaluated.
    ReadEvaluationText { evaluator: Uuid, subject: Uuid },
    /// Confidential payloads in the raw event log.
    ReadConfidentialEvents,
}

impl Action {
    /// The staff member a record-about action concerns (404 before 403 when unknown).
    pub fn subject_recorded_about(self) -> Option<Uuid> {
        match self {
            Action::RecordAbout(subject)
            | Action::RecordInterview { subject, .. }
            | Action::ChangeInterview { subject, .. }
            | Action::RecordEvaluation { subject, .. }
            | Action::ChangeEvaluation { subject, .. } => Some(subject),
            _ => None,
        }
    }
}

/// Whether `principal` may do `action` on `date` (JST), given who works where.
pub fn allows(principal: &Principal, action: Action, staff: &Histories, date: Date) -> bool {
    let role = principal.role;
    let me = principal.staff_id;
    match action {
        Action::Administer | Action::ReadConfidentialEvents => role == Role::HrAdmin,
        Action::RecordAbout(subject) => {
            role == Role::HrAdmin
                || (manages(principal, subject, staff, date) && me != Some(subject))
        }
        // A manager records in their own name, never about themselves, and changes only what
        // they recorded (and so may read).
        Action::RecordInterview {
            subject,
            interviewer,
        } => {
            role == Role::HrAdmin
                || (allows(principal, Action::RecordAbout(subject), staff, date)
                    && me == Some(interviewer))
        }
        Action::RecordEvaluation { subject, evaluator } => {
            role == Role::HrAdmin
                || (allows(principal, Action::RecordAbout(subject), staff, date)
                    && me == Some(evaluator))
        }
        Action::ChangeInterview { subject, interview } => {
            role == Role::HrAdmin
                || (allows(principal, Action::RecordAbout(subject), staff, date)
                    && staff
                        .staff
                        .get(&subject)
                        .and_then(|s| s.interviews.iter().find(|i| i.interview_id == interview))
                        .is_some_and(|i| me == Some(i.interviewer_id)))
        }
        Action::ChangeEvaluation {
            subject,
            evaluation,
        } => {
            role == Role::HrAdmin
                || (allows(principal, Action::RecordAbout(subject), staff, date)
                    && staff
                        .staff
                        .get(&subject)
                        .and_then(|s| s.evaluations.iter().find(|e| e.evaluation_id == evaluation))
                        .is_some_and(|e| me == Some(e.evaluator_id)))
        }
        Action::Dispute(subject) => {
            role == Role::HrAdmin || (role == Role::Staff && me == Some(subject))
        }
        Action::ReadStaff(subject) => match role {
            Role::HrAdmin | Role::Auditor => true,
            Role::Manager => manages(principal, subject, staff, date),
            Role::Staff => me == Some(subject),
        },
        Action::ListStaff => matches!(role, Role::HrAdmin | Role::Auditor | Role::Manager),
        Action::ReadSessions | Action::ReadAudit => matches!(role, Role::HrAdmin | Role::Auditor),
        Action::ReadSheets => matches!(role, Role::HrAdmin | Role::Manager | Role::Auditor),
        Action::ReadInterviewNote { interviewer } => {
            role == Role::HrAdmin || (role != Role::Auditor && me == Some(interviewer))
        }
        Action::ReadEvaluationText { evaluator, subject } => {
            role == Role::HrAdmin
                || (role != Role::Auditor && (me == Some(evaluator) || me == Some(subject)))
        }
    }
}

/// Whether a principal tied to a staff member may act at all on `date`: the person must be
/// in service (a retired manager's token stops working). Principals of no person (HR
/// offices, auditors) always may.
pub fn in_service(principal: &Principal, staff: &Histories, date: Date) -> bool {
    match principal.staff_id {
        None => true,
        Some(id) => staff.staff.get(&id).is_some_and(|s| s.in_service_on(date)),
    }
}

/// The department `staff_id` belongs to on `date`.
pub fn department_of(staff: &Histories, staff_id: Uuid, date: Date) -> Option<String> {
    staff
        .staff
        .get(&staff_id)
        .and_then(|s| s.department_on(date))
        .map(|d| d.department.as_str().to_string())
}

/// Whether `principal` is a manager of the department `subject` belongs to on `date`.
pub fn manages(principal: &Principal, subject: Uuid, staff: &Histories, date: Date) -> bool {
    if principal.role != Role::Manager {
        return false;
    }
    let Some(manager) = principal.staff_id else {
        return false;
    };
    match (
        department_of(staff, manager, date),
        department_of(staff, subject, date),
    ) {
        (Some(mine), Some(theirs)) => mine == theirs,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role, staff_id: Option<Uuid>) -> Principal {
        Principal {
            name: "t".into(),
            role,
            staff_id,
        }
    }

    #[test]
    fn an_auditor_reads_but_never_confidential_text() {
        let auditor = principal(Role::Auditor, Some(Uuid::nil()));
        let none = Histories::default();
        let day = Date::default();
        assert!(allows(&auditor, Action::ReadAudit, &none, day));
        assert!(allows(&auditor, Action::ReadStaff(Uuid::nil()), &none, day));
        assert!(!allows(&auditor, Action::Administer, &none, day));
        let text = Action::ReadEvaluationText {
            evaluator: Uuid::nil(),
            subject: Uuid::nil(),
        };
        assert!(!allows(&auditor, text, &none, day));
        let note = Action::ReadInterviewNote {
            interviewer: Uuid::nil(),
        };
        assert!(!allows(&auditor, note, &none, day));
    }

    #[test]
    fn staff_reach_only_themselves() {
        let me = Uuid::new_v4();
        let someone = Uuid::new_v4();
        let staff = principal(Role::Staff, Some(me));
        let none = Histories::default();
        let day = Date::default();
        assert!(allows(&staff, Action::ReadStaff(me), &none, day));
        assert!(!allows(&staff, Action::ReadStaff(someone), &none, day));
        assert!(allows(&staff, Action::Dispute(me), &none, day));
        assert!(!allows(&staff, Action::ReadSheets, &none, day));
        assert!(!allows(&staff, Action::ListStaff, &none, day));
    }
}
