//! Plan items as the sheets show them: definitions, indicators, activities, self- and
//! external evaluations and publications, each kept with the position that recorded it so a
//! sheet can be drawn as the log stood at any earlier position.

use crate::{LedgerEvent, Recorded};
use kiroku_domain::incident::IncidentEvent;
use kiroku_domain::plan::{ChainHead, IndicatorDefinition, PlanEvent, PlanItemDefinition};
use kiroku_domain::session::SessionEvent;
use kiroku_domain::staff::StaffEvent;
use kiroku_domain::values::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A value with the position of the event that recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct At<T> {
    pub position: i64,
    pub recorded_at: i64,
    pub actor: Option<String>,
    pub value: T,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub fiscal_year: FiscalYear,
    pub planned: Option<Text>,
    pub result: Option<Text>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfEvaluation {
    pub fiscal_year: FiscalYear,
    pub grade: SelfGrade,
    pub reason: Text,
    pub next_step: NextStep,
    pub direction: Option<Text>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publication {
    pub fiscal_year: FiscalYear,
    pub values: BTreeMap<Code, Option<f64>>,
    pub published_by: String,
    /// 第n版: the n-th publication of this item's fiscal year, counted in log order.
    pub version: u32,
    pub reason: Option<Text>,
    /// The chain head the values were drawn from.
    #[serde(default)]
    pub ledger_head: Option<ChainHead>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRecord {
    pub definition: At<PlanItemDefinition>,
    pub indicators: Vec<At<IndicatorDefinition>>,
    pub activities: Vec<At<Activity>>,
    pub self_evaluations: Vec<At<SelfEvaluation>>,
    pub external_evaluations: Vec<At<(FiscalYear, Text)>>,
    pub publications: Vec<At<Publication>>,
}

/// Every plan item, by code.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanBook {
    pub items: BTreeMap<String, PlanRecord>,
}

impl PlanBook {
    pub fn apply(&mut self, recorded: &Recorded) {
        let at = |value| At {
            position: recorded.position,
            recorded_at: recorded.recorded_at,
            actor: recorded.actor.clone(),
            value,
        };
        let event = match &recorded.event {
            LedgerEvent::Plan(event) => event,
            LedgerEvent::Staff(
                StaffEvent::StaffRegistered(_)
                | StaffEvent::GradeChanged { .. }
                | StaffEvent::StaffTransferred { .. }
                | StaffEvent::StaffSeparated { .. }
                | StaffEvent::StaffRehired(_)
                | StaffEvent::InterviewRecorded(_)
                | StaffEvent::InterviewCorrected { .. }
                | StaffEvent::InterviewWithdrawn { .. }
                | StaffEvent::EvaluationRecorded(_)
                | StaffEvent::EvaluationCorrected { .. }
                | StaffEvent::EvaluationDisputed { .. }
                | StaffEvent::DisputeResolved { .. }
                | StaffEvent::PersonalDataErased { .. },
            )
            | LedgerEvent::Session(
                SessionEvent::SessionScheduled(_)
                | SessionEvent::StaffEnrolled { .. }
                | SessionEvent::EnrolmentCancelled { .. }
                | SessionEvent::WaitlistPromoted { .. }
                | SessionEvent::TrainingCompleted { .. }
                | SessionEvent::CompletionCorrected { .. }
                | SessionEvent::CompletionRevoked { .. },
            )
            | LedgerEvent::Incident(
                IncidentEvent::ComplianceIncidentRecorded { .. }
                | IncidentEvent::ComplianceIncidentWithdrawn { .. },
            ) => return,
        };
        if let PlanEvent::PlanItemDefined(definition) = event {
            self.items.insert(
                recorded.aggregate_id.clone(),
                PlanRecord {
                    definition: at(definition.clone()),
                    indicators: Vec::new(),
                    activities: Vec::new(),
                    self_evaluations: Vec::new(),
                    external_evaluations: Vec::new(),
                    publications: Vec::new(),
                },
            );
            return;
        }
        let Some(item) = self.items.get_mut(&recorded.aggregate_id) else {
            return;
        };
        match event {
            PlanEvent::PlanItemDefined(_) => {}
            PlanEvent::IndicatorDefined(definition) => {
                item.indicators.push(At {
                    position: recorded.position,
                    recorded_at: recorded.recorded_at,
                    actor: recorded.actor.clone(),
                    value: definition.clone(),
                });
            }
            // Targets and actuals are kept by the indicator fact store.
            PlanEvent::TargetSet { .. }
            | PlanEvent::ActualReported { .. }
            | PlanEvent::ActualCorrected { .. } => {}
            PlanEvent::ActivityRecorded {
                fiscal_year,
                planned,
                result,
            } => item.activities.push(At {
                position: recorded.position,
                recorded_at: recorded.recorded_at,
                actor: recorded.actor.clone(),
                value: Activity {
                    fiscal_year: *fiscal_year,
                    planned: planned.clone(),
                    result: result.clone(),
                },
            }),
            PlanEvent::SelfEvaluated {
                fiscal_year,
                grade,
                reason,
                next_step,
                direction,
            } => item.self_evaluations.push(At {
                position: recorded.position,
                recorded_at: recorded.recorded_at,
                actor: recorded.actor.clone(),
                value: SelfEvaluation {
                    fiscal_year: *fiscal_year,
                    grade: *grade,
                    reason: reason.clone(),
                    next_step: *next_step,
                    direction: direction.clone(),
                },
            }),
            PlanEvent::ExternalEvaluated { fiscal_year, text } => {
                item.external_evaluations.push(At {
                    position: recorded.position,
                    recorded_at: recorded.recorded_at,
                    actor: recorded.actor.clone(),
                    value: (*fiscal_year, text.clone()),
                })
            }
            PlanEvent::SheetPublished {
                fiscal_year,
                values,
                published_by,
                version: _,
                reason,
                ledger_head,
            } => {
                let earlier = item
                    .publications
                    .iter()
                    .filter(|p| p.value.fiscal_year == *fiscal_year)
                    .count();
                item.publications.push(At {
                    position: recorded.position,
                    recorded_at: recorded.recorded_at,
                    actor: recorded.actor.clone(),
                    value: Publication {
                        fiscal_year: *fiscal_year,
                        values: values.clone(),
                        published_by: published_by.clone(),
                        version: earlier as u32 + 1,
                        reason: reason.clone(),
                        ledger_head: ledger_head.clone(),
                    },
                })
            }
        }
    }
}
