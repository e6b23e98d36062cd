//! A compliance incident (不適切な事務処理): recorded, and withdrawn when it turns out not to be one.

use crate::error::{DomainError, Refusal};
use crate::values::*;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum IncidentEvent {
    ComplianceIncidentRecorded {
        incident_id: Uuid,
        occurred_on: Date,
        department: Text,
        summary: Text,
    },
    ComplianceIncidentWithdrawn {
        incident_id: Uuid,
        reason: Text,
    },
}

impl DomainEvent for IncidentEvent {
    fn event_type(&self) -> String {
        match self {
            IncidentEvent::ComplianceIncidentRecorded { .. } => "ComplianceIncidentRecorded",
            IncidentEvent::ComplianceIncidentWithdrawn { .. } => "ComplianceIncidentWithdrawn",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum IncidentCommand {
    Record {
        incident_id: Uuid,
        occurred_on: Date,
        department: Text,
        summary: Text,
    },
    Withdraw {
        reason: Text,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncidentError {
    #[error("この ID の不適切な事務処理はすでに記録されています")]
    IncidentExists,
    #[error("この ID の不適切な事務処理はありません")]
    IncidentNotFound,
    #[error("この不適切な事務処理はすでに取り下げられています")]
    AlreadyWithdrawn,
}

impl DomainError for IncidentError {
    fn code(&self) -> &'static str {
        match self {
            IncidentError::IncidentExists => "incident_exists",
            IncidentError::IncidentNotFound => "incident_not_found",
            IncidentError::AlreadyWithdrawn => "incident_already_withdrawn",
        }
    }

    fn refusal(&self) -> Refusal {
        match self {
            IncidentError::IncidentNotFound => Refusal::NotFound,
            IncidentError::IncidentExists | IncidentError::AlreadyWithdrawn => Refusal::Conflict,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplianceIncident {
    id: Option<Uuid>,
    withdrawn: bool,
}

impl ComplianceIncident {
    fn decide(&self, command: IncidentCommand) -> Result<IncidentEvent, IncidentError> {
        match (command, self.id) {
            (IncidentCommand::Record { .. }, Some(_)) => Err(IncidentError::IncidentExists),
            (
                IncidentCommand::Record {
                    incident_id,
                    occurred_on,
                    department,
                    summary,
                },
                None,
            ) => Ok(IncidentEvent::ComplianceIncidentRecorded {
                incident_id,
                occurred_on,
                department,
                summary,
            }),
            (IncidentCommand::Withdraw { .. }, None) => Err(IncidentError::IncidentNotFound),
            (IncidentCommand::Withdraw { reason }, Some(incident_id)) => {
                if self.withdrawn {
                    Err(IncidentError::AlreadyWithdrawn)
                } else {
                    Ok(IncidentEvent::ComplianceIncidentWithdrawn {
                        incident_id,
                        reason,
                    })
                }
            }
        }
    }
}

impl Aggregate for ComplianceIncident {
    const TYPE: &'static str = "ComplianceIncident";
    type Command = IncidentCommand;
    type Event = IncidentEvent;
    type Error = IncidentError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = self.decide(command)?;
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            IncidentEvent::ComplianceIncidentRecorded { incident_id, .. } => {
                self.id = Some(incident_id)
            }
            IncidentEvent::ComplianceIncidentWithdrawn { .. } => self.withdrawn = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::staff::tests::{date, text};
    use cqrs_es::test::TestFramework;

    fn recorded() -> IncidentEvent {
        IncidentEvent::ComplianceIncidentRecorded {
            incident_id: Uuid::from_u128(1),
            occurred_on: date("2023-07-01"),
            department: text("税務課"),
            summary: text("通知書の誤送付"),
        }
    }

    #[test]
    fn withdrawing_an_unknown_incident_is_rejected() {
        TestFramework::<ComplianceIncident>::with(())
            .given_no_previous_events()
            .when(IncidentCommand::Withdraw {
                reason: text("誤登録"),
            })
            .then_expect_error(IncidentError::IncidentNotFound);
    }

    #[test]
    fn withdrawing_twice_is_rejected() {
        TestFramework::<ComplianceIncident>::with(())
            .given(vec![
                recorded(),
                IncidentEvent::ComplianceIncidentWithdrawn {
                    incident_id: Uuid::from_u128(1),
                    reason: text("誤登録"),
                },
            ])
            .when(IncidentCommand::Withdraw {
                reason: text("誤登録"),
            })
            .then_expect_error(IncidentError::AlreadyWithdrawn);
    }

    #[test]
    fn recording_the_same_incident_twice_is_rejected() {
        TestFramework::<ComplianceIncident>::with(())
            .given(vec![recorded()])
            .when(IncidentCommand::Record {
                incident_id: Uuid::from_u128(1),
                occurred_on: date("2023-07-01"),
                department: text("税務課"),
                summary: text("通知書の誤送付"),
            })
            .then_expect_error(IncidentError::IncidentExists);
    }
}
