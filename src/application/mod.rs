//! The application layer: the one way a command gets into the ledger, whichever door it came
//! through (the JSON API, the pages, the attendance import, the CLI).
//!
//! [`Service::execute`] asks the [`policy`], seals personal text under the staff member's key,
//! looks up what the aggregate cannot know itself (whether a staff member is registered, the
//! values a publication freezes) and runs the command through the [`Ledger`]. Fields of a
//! domain command that the application looks up are filled in here, whatever the caller put
//! in them.

pub mod policy;

use crate::ledger::{Appended, CommandError, Ledger, Meta};
use crate::storage::append::Confirm;
use crate::storage::tokens::Principal;
use crate::storage::{chain, StorageError};
use kiroku_domain::incident::IncidentCommand;
use kiroku_domain::plan::{ChainHead, PlanCommand};
use kiroku_domain::session::SessionCommand;
use kiroku_domain::staff::*;
use kiroku_domain::values::*;
use kiroku_domain::DomainError;
use policy::Action;
use std::collections::{BTreeMap, HashSet};
use uuid::Uuid;

/// Today in Japan (JST, UTC+9): the date "current" department and grade refer to.
pub fn today_jst() -> Date {
    (chrono::Utc::now() + chrono::Duration::hours(9)).date_naive()
}

/// A command as an entry point hands it over: personal text still in the clear, looked-up
/// facts not yet filled in.
#[derive(Debug, Clone)]
pub enum Command {
    Staff {
        staff_id: Uuid,
        command: StaffRequest,
    },
    Session {
        session_id: Uuid,
        command: SessionCommand,
    },
    Plan {
        code: Code,
        command: PlanCommand,
        /// Why, for a change whose domain command has no reason of its own (a target set
        /// again).
        reason: Option<Text>,
    },
    Incident {
        incident_id: Uuid,
        command: IncidentCommand,
    },
}

/// Staff commands; those carrying personal text take it in the clear and are sealed here.
#[derive(Debug, Clone)]
pub enum StaffRequest {
    Register(NewStaff),
    RecordInterview {
        interview_id: Uuid,
        kind: InterviewKind,
        held_on: Date,
        interviewer_id: Uuid,
        note: Text,
    },
    CorrectInterview {
        interview_id: Uuid,
        kind: Option<InterviewKind>,
        held_on: Option<Date>,
        note: Option<Text>,
        reason: Text,
    },
    RecordEvaluation {
        evaluation_id: Uuid,
        fiscal_year: FiscalYear,
        period: EvaluationPeriod,
        evaluator_id: Uuid,
        overall: OverallRating,
        competencies: BTreeMap<String, u8>,
        comment: Option<Text>,
    },
    CorrectEvaluation {
        evaluation_id: Uuid,
        overall: Option<OverallRating>,
        competencies: Option<BTreeMap<String, u8>>,
        comment: Option<Text>,
        reason: Text,
    },
    Dispute {
        evaluation_id: Uuid,
        text: Text,
    },
    ResolveDispute {
        evaluation_id: Uuid,
        outcome: Text,
        reason: Text,
    },
    /// A command with no personal text (grade, transfer, separation, rehire, withdrawal of
    /// an interview).
    Other(StaffCommand),
}

/// A registration with the name in the clear.
#[derive(Debug, Clone)]
pub struct NewStaff {
    pub employee_no: EmployeeNo,
    pub name: Text,
    pub name_kana: Option<Text>,
    pub gender: Gender,
    pub hired_on: Date,
    pub grade: Grade,
    pub job_type: JobType,
    pub employment: Employment,
    pub department: Text,
    pub department_kind: DepartmentKind,
}

impl Command {
    /// What the policy is asked before the command runs.
    pub fn action(&self) -> Action {
        match self {
            Command::Staff { staff_id, command } => match command {
                StaffRequest::RecordInterview { interviewer_id, .. } => Action::RecordInterview {
                    subject: *staff_id,
                    interviewer: *interviewer_id,
                },
                StaffRequest::CorrectInterview { interview_id, .. }
                | StaffRequest::Other(StaffCommand::WithdrawInterview { interview_id, .. }) => {
                    Action::ChangeInterview {
                        subject: *staff_id,
                        interview: *interview_id,
                    }
                }
                StaffRequest::RecordEvaluation { evaluator_id, .. } => Action::RecordEvaluation {
                    subject: *staff_id,
                    evaluator: *evaluator_id,
                },
                StaffRequest::CorrectEvaluation { evaluation_id, .. } => Action::ChangeEvaluation {
                    subject: *staff_id,
                    evaluation: *evaluation_id,
                },
                StaffRequest::Dispute { .. } => Action::Dispute(*staff_id),
                StaffRequest::Register(_)
                | StaffRequest::ResolveDispute { .. }
                | StaffRequest::Other(_) => Action::Administer,
            },
            Command::Session { .. } | Command::Plan { .. } | Command::Incident { .. } => {
                Action::Administer
            }
        }
    }

    /// The reason written into the events' metadata, where the command gives one.
    fn reason(&self) -> Option<String> {
        let text = |t: &Text| Some(t.as_str().to_string());
        match self {
            Command::Staff { command, .. } => match command {
                StaffRequest::CorrectInterview { reason, .. }
                | StaffRequest::CorrectEvaluation { reason, .. }
                | StaffRequest::ResolveDispute { reason, .. } => text(reason),
                StaffRequest::Other(command) => match command {
                    StaffCommand::ChangeGrade { reason, .. } => Some(reason.as_str().into()),
                    StaffCommand::Separate { reason, .. } => Some(reason.as_str().into()),
                    StaffCommand::WithdrawInterview { reason, .. }
                    | StaffCommand::ResolveDispute { reason, .. }
                    | StaffCommand::ErasePersonalData { reason } => text(reason),
                    _ => None,
                },
                _ => None,
            },
            Command::Session { command, .. } => match command {
                SessionCommand::CancelEnrolment { reason, .. }
                | SessionCommand::CorrectCompletion { reason, .. }
                | SessionCommand::RevokeCompletion { reason, .. } => text(reason),
                _ => None,
            },
            Command::Plan {
                command, reason, ..
            } => match command {
                PlanCommand::Publish {
                    reason: Some(reason),
                    ..
                }
                | PlanCommand::CorrectActual { reason, .. } => text(reason),
                _ => reason.as_ref().and_then(text),
            },
            Command::Incident { command, .. } => match command {
                IncidentCommand::Withdraw { reason } => text(reason),
                IncidentCommand::Record { .. } => None,
            },
        }
    }

    /// Whether the command creates its aggregate: what the store may decide on the empty state
    /// ([`crate::storage::aggregates::as_of`]).
    pub fn creates(&self) -> bool {
        matches!(
            self,
            Command::Staff {
                command: StaffRequest::Register(_),
                ..
            } | Command::Session {
                command: SessionCommand::Schedule(_),
                ..
            } | Command::Plan {
                command: PlanCommand::Define { .. },
                ..
            } | Command::Incident {
                command: IncidentCommand::Record { .. },
                ..
            }
        )
    }

    /// The aggregate the command is addressed to, as the log names it.
    pub fn aggregate_id(&self) -> String {
        match self {
            Command::Staff { staff_id, .. } => staff_id.to_string(),
            Command::Session { session_id, .. } => session_id.to_string(),
            Command::Plan { code, .. } => code.as_str().to_string(),
            Command::Incident { incident_id, .. } => incident_id.to_string(),
        }
    }
}

/// Why a command was not run. Nothing was recorded in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("この操作はあなたの役割では行えません")]
    Forbidden,
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl AppError {
    fn staff_not_found() -> Self {
        AppError::NotFound {
            code: "staff_not_found",
            message: "この ID の職員はいません".into(),
        }
    }
}

/// Who asked: the principal and the id of their request.
#[derive(Debug, Clone)]
pub struct Actor<'a> {
    pub principal: &'a Principal,
    pub request_id: &'a str,
    /// The log's head the request read with its token, if it did: the command then trusts
    /// what this process keeps of an aggregate when nothing else has appended up to it
    /// ([`crate::storage::aggregates::as_of`]).
    pub as_of: Option<i64>,
    /// The digest of the caller's token when this request did not read it (nor the head
    /// `as_of`) from the database: the command is decided unconfirmed, on what this process
    /// keeps, and written only if its commit confirms both (`Ledger::remembered_caller`).
    pub unconfirmed: Option<&'a str>,
}

/// A command ready for its aggregate: sealed and looked up.
enum Prepared {
    Staff(StaffCommand),
    Session(SessionCommand),
    Plan(PlanCommand),
    Incident(IncidentCommand),
}

/// The application over one ledger.
#[derive(Clone, Copy)]
pub struct Service<'a> {
    pub ledger: &'a Ledger,
    /// For a bulk load whose read models are folded in only at the end: the staff it has
    /// registered so far, asked instead of the read models.
    registered: Option<&'a HashSet<Uuid>>,
}

impl<'a> Service<'a> {
    pub fn new(ledger: &'a Ledger) -> Self {
        Service {
            ledger,
            registered: None,
        }
    }

    /// A service for a bulk load that knows which staff it registered itself.
    pub fn loading(ledger: &'a Ledger, registered: &'a HashSet<Uuid>) -> Self {
        Service {
            ledger,
            registered: Some(registered),
        }
    }

    /// Whether `principal` may do `action` today.
    pub fn allows(&self, principal: &Principal, action: Action) -> Result<bool, StorageError> {
        let today = today_jst();
        self.ledger.projector.read(|h| {
            policy::in_service(principal, h, today) && policy::allows(principal, action, h, today)
        })
    }

    /// Whether a signed-in principal may act at all today (see [`policy::in_service`]).
    pub fn in_service(&self, principal: &Principal) -> Result<bool, StorageError> {
        let today = today_jst();
        self.ledger
            .projector
            .read(|h| policy::in_service(principal, h, today))
    }

    /// [`allows`](Self::allows), as an error.
    pub fn require(&self, principal: &Principal, action: Action) -> Result<(), AppError> {
        if self.allows(principal, action)? {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }

    /// Whether a staff member with this id is registered.
    pub fn is_registered(&self, staff_id: Uuid) -> Result<bool, StorageError> {
        if let Some(registered) = self.registered {
            return Ok(registered.contains(&staff_id));
        }
        self.ledger
            .projector
            .read(|h| h.staff.contains_key(&staff_id))
    }

    /// 404 unless the staff member is registered.
    pub fn require_known(&self, staff_id: Uuid) -> Result<(), AppError> {
        if self.is_registered(staff_id)? {
            Ok(())
        } else {
            Err(AppError::staff_not_found())
        }
    }

    /// Checks the policy, seals, looks up and runs `command`; returns what it appended.
    pub async fn execute(&self, actor: &Actor<'_>, command: Command) -> Result<Appended, AppError> {
        let (meta, id, prepared) = self.prepare(actor, command).await?;
        let ledger = self.ledger;
        Ok(match prepared {
            Prepared::Staff(c) => {
                let erasing = matches!(c, StaffCommand::ErasePersonalData { .. });
                let appended = ledger.execute(&ledger.staff, &id, c, &meta).await?;
                if erasing {
                    // The event is recorded first: should the process stop right here, the
                    // next start destroys the key (`Ledger::complete_erasures`).
                    ledger.complete_erasures().await?;
                }
                appended
            }
            Prepared::Session(c) => ledger.execute(&ledger.sessions, &id, c, &meta).await?,
            Prepared::Plan(c) => ledger.execute(&ledger.plans, &id, c, &meta).await?,
            Prepared::Incident(c) => ledger.execute(&ledger.incidents, &id, c, &meta).await?,
        })
    }

    /// [`execute`](Self::execute) without waiting for the read models: for bulk loads (the
    /// demo city) that fold the log in once at the end.
    pub async fn record(&self, actor: &Actor<'_>, command: Command) -> Result<(), AppError> {
        let (meta, id, prepared) = self.prepare(actor, command).await?;
        let ledger = self.ledger;
        match prepared {
            Prepared::Staff(c) => ledger.record(&ledger.staff, &id, c, &meta).await?,
            Prepared::Session(c) => ledger.record(&ledger.sessions, &id, c, &meta).await?,
            Prepared::Plan(c) => ledger.record(&ledger.plans, &id, c, &meta).await?,
            Prepared::Incident(c) => ledger.record(&ledger.incidents, &id, c, &meta).await?,
        };
        Ok(())
    }

    async fn prepare(
        &self,
        actor: &Actor<'_>,
        command: Command,
    ) -> Result<(Meta, String, Prepared), AppError> {
        let action = command.action();
        if let Some(subject) = action.subject_recorded_about() {
            self.require_known(subject)?;
        }
        self.require(actor.principal, action)?;
        if let Action::Dispute(staff_id) = action {
            self.require_known(staff_id)?;
        }
        let mut meta = Meta::new(actor.principal, actor.request_id);
        meta.as_of = actor.as_of;
        meta.confirm = actor
            .unconfirmed
            .zip(actor.as_of)
            .map(|(token, after)| Confirm {
                token: token.to_string(),
                after,
            });
        meta.creates = command.creates();
        if let Some(reason) = command.reason() {
            meta = meta.with_reason(&reason);
        }
        let id = command.aggregate_id();
        let prepared = match command {
            Command::Staff { staff_id, command } => {
                Prepared::Staff(self.prepare_staff(staff_id, command).await?)
            }
            Command::Session { command, .. } => Prepared::Session(self.prepare_session(command)?),
            Command::Plan { code, command, .. } => {
                Prepared::Plan(self.prepare_plan(actor, &code, command).await?)
            }
            Command::Incident { command, .. } => Prepared::Incident(command),
        };
        Ok((meta, id, prepared))
    }

    async fn seal(&self, staff_id: Uuid, text: &Text) -> Result<Sealed, AppError> {
        if self.ledger.keys.key_for_writing(staff_id).await?.is_none() {
            // The person was erased: nothing personal is written about them again.
            let error = StaffError::PersonalDataErased;
            return Err(AppError::Command(CommandError::Refused {
                code: error.code(),
                refusal: error.refusal(),
                message: error.to_string(),
            }));
        }
        Ok(self.ledger.keys.seal(staff_id, text.as_str()).await?)
    }

    async fn seal_optional(
        &self,
        staff_id: Uuid,
        text: Option<&Text>,
    ) -> Result<Option<Sealed>, AppError> {
        match text {
            Some(text) => Ok(Some(self.seal(staff_id, text).await?)),
            None => Ok(None),
        }
    }

    async fn prepare_staff(
        &self,
        staff_id: Uuid,
        request: StaffRequest,
    ) -> Result<StaffCommand, AppError> {
        Ok(match request {
            StaffRequest::Register(s) => StaffCommand::Register(Registration {
                name: self.seal(staff_id, &s.name).await?,
                name_kana: self.seal_optional(staff_id, s.name_kana.as_ref()).await?,
                employee_no: s.employee_no,
                gender: s.gender,
                hired_on: s.hired_on,
                grade: s.grade,
                job_type: s.job_type,
                employment: s.employment,
                department: s.department,
                department_kind: s.department_kind,
            }),
            StaffRequest::RecordInterview {
                interview_id,
                kind,
                held_on,
                interviewer_id,
                note,
            } => StaffCommand::RecordInterview {
                interview: Interview {
                    interview_id,
                    kind,
                    held_on,
                    interviewer_id,
                    note: self.seal(staff_id, &note).await?,
                },
                interviewer_registered: self.is_registered(interviewer_id)?,
            },
            StaffRequest::CorrectInterview {
                interview_id,
                kind,
                held_on,
                note,
                reason,
            } => StaffCommand::CorrectInterview {
                interview_id,
                kind,
                held_on,
                note: self.seal_optional(staff_id, note.as_ref()).await?,
                reason,
            },
            StaffRequest::RecordEvaluation {
                evaluation_id,
                fiscal_year,
                period,
                evaluator_id,
                overall,
                competencies,
                comment,
            } => StaffCommand::RecordEvaluation {
                evaluation: Evaluation {
                    evaluation_id,
                    fiscal_year,
                    period,
                    evaluator_id,
                    overall,
                    competencies,
                    comment: self.seal_optional(staff_id, comment.as_ref()).await?,
                },
                evaluator_registered: self.is_registered(evaluator_id)?,
            },
            StaffRequest::CorrectEvaluation {
                evaluation_id,
                overall,
                competencies,
                comment,
                reason,
            } => StaffCommand::CorrectEvaluation {
                evaluation_id,
                overall,
                competencies,
                comment: self.seal_optional(staff_id, comment.as_ref()).await?,
                reason,
            },
            StaffRequest::Dispute {
                evaluation_id,
                text,
            } => StaffCommand::DisputeEvaluation {
                evaluation_id,
                text: self.seal(staff_id, &text).await?,
            },
            StaffRequest::ResolveDispute {
                evaluation_id,
                outcome,
                reason,
            } => StaffCommand::ResolveDispute {
                evaluation_id,
                outcome: self.seal(staff_id, &outcome).await?,
                reason,
            },
            StaffRequest::Other(command) => command,
        })
    }

    fn prepare_session(&self, command: SessionCommand) -> Result<SessionCommand, AppError> {
        Ok(match command {
            SessionCommand::Enrol { staff_id, .. } => SessionCommand::Enrol {
                staff_id,
                staff_registered: self.is_registered(staff_id)?,
            },
            SessionCommand::RecordAttendance {
                staff_id,
                completed_on,
                understanding,
                ..
            } => SessionCommand::RecordAttendance {
                staff_id,
                staff_registered: self.is_registered(staff_id)?,
                completed_on,
                understanding,
            },
            SessionCommand::RecordAttendances(rows) => {
                let mut checked = Vec::with_capacity(rows.len());
                for mut row in rows {
                    row.staff_registered = self.is_registered(row.staff_id)?;
                    checked.push(row);
                }
                SessionCommand::RecordAttendances(checked)
            }
            other => other,
        })
    }

    async fn prepare_plan(
        &self,
        actor: &Actor<'_>,
        code: &Code,
        command: PlanCommand,
    ) -> Result<PlanCommand, AppError> {
        Ok(match command {
            PlanCommand::Publish {
                fiscal_year,
                reason,
                ..
            } => {
                // Freeze every indicator's actual as the projector computes it now, with the
                // chain head of the position it was computed at.
                let (position, values) = self
                    .ledger
                    .projector
                    .actuals(code.as_str(), fiscal_year)?
                    .ok_or_else(|| AppError::NotFound {
                        code: "plan_item_not_found",
                        message: "この項目コードの計画項目はありません".into(),
                    })?;
                let hash = chain::hash_at(&self.ledger.backend, position)
                    .await?
                    .unwrap_or_else(|| chain::GENESIS.to_string());
                PlanCommand::Publish {
                    fiscal_year,
                    values,
                    published_by: actor.principal.name.clone(),
                    reason,
                    ledger_head: Some(ChainHead { position, hash }),
                }
            }
            other => other,
        })
    }
}
