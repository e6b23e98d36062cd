//! A training session (研修の開催回): scheduling, enrolment with a waitlist, completions and
//! their corrections and revocations.

use crate::error::{DomainError, Refusal};
use crate::values::*;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub course_code: Text,
    pub title: Text,
    pub category: TrainingCategory,
    pub provider: Text,
    pub delivery: Delivery,
    pub starts_on: Date,
    pub ends_on: Date,
    pub capacity: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SessionEvent {
    SessionScheduled(Schedule),
    StaffEnrolled {
        staff_id: Uuid,
        status: EnrolmentStatus,
    },
    EnrolmentCancelled {
        staff_id: Uuid,
        reason: Text,
    },
    WaitlistPromoted {
        staff_id: Uuid,
    },
    TrainingCompleted {
        staff_id: Uuid,
        completed_on: Date,
        understanding: Option<Understanding>,
    },
    CompletionCorrected {
        staff_id: Uuid,
        completed_on: Option<Date>,
        understanding: Option<Understanding>,
        reason: Text,
    },
    CompletionRevoked {
        staff_id: Uuid,
        reason: Text,
    },
}

impl DomainEvent for SessionEvent {
    fn event_type(&self) -> String {
        let name = match self {
            SessionEvent::SessionScheduled(_) => "SessionScheduled",
            SessionEvent::StaffEnrolled { .. } => "StaffEnrolled",
            SessionEvent::EnrolmentCancelled { .. } => "EnrolmentCancelled",
            SessionEvent::WaitlistPromoted { .. } => "WaitlistPromoted",
            SessionEvent::TrainingCompleted { .. } => "TrainingCompleted",
            SessionEvent::CompletionCorrected { .. } => "CompletionCorrected",
            SessionEvent::CompletionRevoked { .. } => "CompletionRevoked",
        };
        name.to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SessionCommand {
    Schedule(Schedule),
    /// `staff_registered` is looked up by the application before the command is built.
    Enrol {
        staff_id: Uuid,
        staff_registered: bool,
    },
    CancelEnrolment {
        staff_id: Uuid,
        reason: Text,
    },
    Complete {
        staff_id: Uuid,
        completed_on: Date,
        understanding: Option<Understanding>,
    },
    CorrectCompletion {
        staff_id: Uuid,
        completed_on: Option<Date>,
        understanding: Option<Understanding>,
        reason: Text,
    },
    RevokeCompletion {
        staff_id: Uuid,
        reason: Text,
    },
    /// One row of an attendance sheet: the person attended, so they are enrolled (or promoted
    /// from the waitlist) if they were not already, and their completion is recorded.
    RecordAttendance {
        staff_id: Uuid,
        staff_registered: bool,
        completed_on: Date,
        understanding: Option<Understanding>,
    },
    /// Several rows of an attendance sheet for this session, all or none.
    RecordAttendances(Vec<Attendance>),
}

/// One row of an attendance sheet.
#[derive(Debug, Clone, PartialEq)]
pub struct Attendance {
    pub staff_id: Uuid,
    pub staff_registered: bool,
    pub completed_on: Date,
    pub understanding: Option<Understanding>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("この ID の研修開催回はすでに登録されています")]
    SessionExists,
    #[error("この ID の研修開催回はありません")]
    SessionNotFound,
    #[error("研修の終了日が開始日より前です")]
    EndsBeforeStart,
    #[error("定員は 1 以上にしてください")]
    InvalidCapacity,
    #[error("その職員は登録されていません")]
    StaffNotFound,
    #[error("その職員はすでに受講決定またはキャンセル待ちです")]
    AlreadyEnrolled,
    #[error("その職員はこの開催回に申し込んでいません")]
    NotEnrolled,
    #[error("その職員はキャンセル待ちのため修了を記録できません")]
    Waitlisted,
    #[error("その職員はこの開催回をすでに修了しています")]
    AlreadyCompleted,
    #[error("修了記録がありません（または取り消されています）")]
    NotCompleted,
    #[error("修了日が研修の開始日より前です")]
    CompletedBeforeStart,
    #[error("訂正しても何も変わりません")]
    NothingToCorrect,
}

impl DomainError for SessionError {
    fn code(&self) -> &'static str {
        match self {
            SessionError::SessionExists => "session_exists",
            SessionError::SessionNotFound => "session_not_found",
            SessionError::EndsBeforeStart => "ends_before_starts",
            SessionError::InvalidCapacity => "invalid_capacity",
            SessionError::StaffNotFound => "staff_not_found",
            SessionError::AlreadyEnrolled => "already_enrolled",
            SessionError::NotEnrolled => "not_enrolled",
            SessionError::Waitlisted => "waitlisted",
            SessionError::AlreadyCompleted => "already_completed",
            SessionError::NotCompleted => "not_completed",
            SessionError::CompletedBeforeStart => "completed_before_start",
            SessionError::NothingToCorrect => "nothing_to_correct",
        }
    }

    fn refusal(&self) -> Refusal {
        match self {
            SessionError::SessionNotFound | SessionError::StaffNotFound => Refusal::NotFound,
            SessionError::EndsBeforeStart
            | SessionError::InvalidCapacity
            | SessionError::CompletedBeforeStart
            | SessionError::NothingToCorrect => Refusal::Invalid,
            SessionError::SessionExists
            | SessionError::AlreadyEnrolled
            | SessionError::NotEnrolled
            | SessionError::Waitlisted
            | SessionError::AlreadyCompleted
            | SessionError::NotCompleted => Refusal::Conflict,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Place {
    staff_id: Uuid,
    status: EnrolmentStatus,
}

/// What the session needs to decide: dates, capacity, places in enrolment order and which
/// completions stand. Stored (as a snapshot) as those four; who holds which place and how many
/// are enrolled are derived again when it is read back, so that deciding on one more row of
/// a sheet of thousands costs a lookup, not a scan of every place.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredSession")]
pub struct TrainingSession {
    starts_on: Option<Date>,
    capacity: u32,
    places: Vec<Place>,
    /// staff id → revoked?
    completions: BTreeMap<Uuid, bool>,
    /// staff id → status of their place (derived from `places`).
    #[serde(skip)]
    holders: std::collections::HashMap<Uuid, EnrolmentStatus>,
    /// How many places are `Enrolled` (derived from `places`).
    #[serde(skip)]
    enrolled: usize,
}

/// A session as its snapshot holds it.
#[derive(Deserialize)]
struct StoredSession {
    starts_on: Option<Date>,
    capacity: u32,
    places: Vec<Place>,
    completions: BTreeMap<Uuid, bool>,
}

impl From<StoredSession> for TrainingSession {
    fn from(stored: StoredSession) -> Self {
        let mut session = TrainingSession {
            starts_on: stored.starts_on,
            capacity: stored.capacity,
            places: stored.places,
            completions: stored.completions,
            ..TrainingSession::default()
        };
        session.derive();
        session
    }
}

impl TrainingSession {
    /// Derives `holders` and `enrolled` from `places` again.
    fn derive(&mut self) {
        self.holders.clear();
        for place in &self.places {
            // The first place of a person is theirs, as a scan in enrolment order finds it.
            self.holders.entry(place.staff_id).or_insert(place.status);
        }
        self.enrolled = self
            .places
            .iter()
            .filter(|p| p.status == EnrolmentStatus::Enrolled)
            .count();
    }

    fn place(&self, staff_id: Uuid) -> Option<EnrolmentStatus> {
        self.holders.get(&staff_id).copied()
    }

    fn enrolled_count(&self) -> usize {
        self.enrolled
    }

    fn has_standing_completion(&self, staff_id: Uuid) -> bool {
        self.completions.get(&staff_id) == Some(&false)
    }

    /// What `command` would record, or why it is refused; nothing is stored. The import asks
    /// this row by row, so its line-numbered errors are the session's own rules.
    pub fn decide(&self, command: SessionCommand) -> Result<Vec<SessionEvent>, SessionError> {
        if let SessionCommand::RecordAttendances(rows) = command {
            // Each row is decided on the state the previous rows left behind.
            let mut working = self.clone();
            let mut events = Vec::new();
            for row in rows {
                let decided = working.decide(SessionCommand::RecordAttendance {
                    staff_id: row.staff_id,
                    staff_registered: row.staff_registered,
                    completed_on: row.completed_on,
                    understanding: row.understanding,
                })?;
                for event in decided {
                    working.apply(event.clone());
                    events.push(event);
                }
            }
            return Ok(events);
        }
        if let SessionCommand::Schedule(schedule) = command {
            if self.starts_on.is_some() {
                return Err(SessionError::SessionExists);
            }
            if schedule.ends_on < schedule.starts_on {
                return Err(SessionError::EndsBeforeStart);
            }
            if schedule.capacity < 1 {
                return Err(SessionError::InvalidCapacity);
            }
            return Ok(vec![SessionEvent::SessionScheduled(schedule)]);
        }
        let starts_on = self.starts_on.ok_or(SessionError::SessionNotFound)?;
        match command {
            SessionCommand::Schedule(_) => Err(SessionError::SessionExists),
            SessionCommand::RecordAttendances(_) => Ok(Vec::new()),
            SessionCommand::Enrol {
                staff_id,
                staff_registered,
            } => {
                if !staff_registered {
                    return Err(SessionError::StaffNotFound);
                }
                if self.place(staff_id).is_some() {
                    return Err(SessionError::AlreadyEnrolled);
                }
                let status = if self.enrolled_count() < self.capacity as usize {
                    EnrolmentStatus::Enrolled
                } else {
                    EnrolmentStatus::Waitlisted
                };
                Ok(vec![SessionEvent::StaffEnrolled { staff_id, status }])
            }
            SessionCommand::CancelEnrolment { staff_id, reason } => {
                let status = self.place(staff_id).ok_or(SessionError::NotEnrolled)?;
                if self.has_standing_completion(staff_id) {
                    return Err(SessionError::AlreadyCompleted);
                }
                let mut events = vec![SessionEvent::EnrolmentCancelled { staff_id, reason }];
                if status == EnrolmentStatus::Enrolled {
                    let first_waiting = self
                        .places
                        .iter()
                        .find(|p| p.status == EnrolmentStatus::Waitlisted);
                    if let Some(next) = first_waiting {
                        events.push(SessionEvent::WaitlistPromoted {
                            staff_id: next.staff_id,
                        });
                    }
                }
                Ok(events)
            }
            SessionCommand::Complete {
                staff_id,
                completed_on,
                understanding,
            } => {
                match self.place(staff_id) {
                    None => return Err(SessionError::NotEnrolled),
                    Some(EnrolmentStatus::Waitlisted) => return Err(SessionError::Waitlisted),
                    Some(EnrolmentStatus::Enrolled) => {}
                }
                self.check_completion(staff_id, completed_on, starts_on)?;
                Ok(vec![SessionEvent::TrainingCompleted {
                    staff_id,
                    completed_on,
                    understanding,
                }])
            }
            SessionCommand::RecordAttendance {
                staff_id,
                staff_registered,
                completed_on,
                understanding,
            } => {
                if !staff_registered {
                    return Err(SessionError::StaffNotFound);
                }
                self.check_completion(staff_id, completed_on, starts_on)?;
                let mut events = Vec::new();
                match self.place(staff_id) {
                    None => events.push(SessionEvent::StaffEnrolled {
                        staff_id,
                        status: EnrolmentStatus::Enrolled,
                    }),
                    Some(EnrolmentStatus::Waitlisted) => {
                        events.push(SessionEvent::WaitlistPromoted { staff_id })
                    }
                    Some(EnrolmentStatus::Enrolled) => {}
                }
                events.push(SessionEvent::TrainingCompleted {
                    staff_id,
                    completed_on,
                    understanding,
                });
                Ok(events)
            }
            SessionCommand::CorrectCompletion {
                staff_id,
                completed_on,
                understanding,
                reason,
            } => {
                if !self.has_standing_completion(staff_id) {
                    return Err(SessionError::NotCompleted);
                }
                if completed_on.is_none() && understanding.is_none() {
                    return Err(SessionError::NothingToCorrect);
                }
                if completed_on.is_some_and(|d| d < starts_on) {
                    return Err(SessionError::CompletedBeforeStart);
                }
                Ok(vec![SessionEvent::CompletionCorrected {
                    staff_id,
                    completed_on,
                    understanding,
                    reason,
                }])
            }
            SessionCommand::RevokeCompletion { staff_id, reason } => {
                if !self.has_standing_completion(staff_id) {
                    return Err(SessionError::NotCompleted);
                }
                Ok(vec![SessionEvent::CompletionRevoked { staff_id, reason }])
            }
        }
    }

    fn check_completion(
        &self,
        staff_id: Uuid,
        completed_on: Date,
        starts_on: Date,
    ) -> Result<(), SessionError> {
        if self.has_standing_completion(staff_id) {
            return Err(SessionError::AlreadyCompleted);
        }
        if completed_on < starts_on {
            return Err(SessionError::CompletedBeforeStart);
        }
        Ok(())
    }
}

impl Aggregate for TrainingSession {
    const TYPE: &'static str = "TrainingSession";
    type Command = SessionCommand;
    type Event = SessionEvent;
    type Error = SessionError;
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
            SessionEvent::SessionScheduled(schedule) => {
                self.starts_on = Some(schedule.starts_on);
                self.capacity = schedule.capacity;
            }
            SessionEvent::StaffEnrolled { staff_id, status } => {
                self.places.push(Place { staff_id, status });
                match self.holders.entry(staff_id) {
                    std::collections::hash_map::Entry::Vacant(vacant) => {
                        vacant.insert(status);
                        if status == EnrolmentStatus::Enrolled {
                            self.enrolled += 1;
                        }
                    }
                    // A second place for one person (never decided here): from the places.
                    std::collections::hash_map::Entry::Occupied(_) => self.derive(),
                }
            }
            SessionEvent::EnrolmentCancelled { staff_id, .. } => {
                if self.holders.contains_key(&staff_id) {
                    self.places.retain(|p| p.staff_id != staff_id);
                    self.derive();
                }
            }
            SessionEvent::WaitlistPromoted { staff_id } => {
                if let Some(place) = self.places.iter_mut().find(|p| p.staff_id == staff_id) {
                    if place.status != EnrolmentStatus::Enrolled {
                        place.status = EnrolmentStatus::Enrolled;
                        self.enrolled += 1;
                    }
                    self.holders.insert(staff_id, EnrolmentStatus::Enrolled);
                }
            }
            SessionEvent::TrainingCompleted { staff_id, .. } => {
                self.completions.insert(staff_id, false);
            }
            SessionEvent::CompletionRevoked { staff_id, .. } => {
                self.completions.insert(staff_id, true);
            }
            SessionEvent::CompletionCorrected { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::staff::tests::{date, text};
    use cqrs_es::test::TestFramework;

    type Given = TestFramework<TrainingSession>;

    fn schedule(capacity: u32, starts_on: &str, ends_on: &str) -> Schedule {
        Schedule {
            course_code: text("K-101"),
            title: text("新規採用職員研修"),
            category: TrainingCategory::Tiered,
            provider: text("庁内"),
            delivery: Delivery::InPerson,
            starts_on: date(starts_on),
            ends_on: date(ends_on),
            capacity,
        }
    }

    fn scheduled(capacity: u32) -> Vec<SessionEvent> {
        vec![SessionEvent::SessionScheduled(schedule(
            capacity,
            "2023-05-10",
            "2023-05-11",
        ))]
    }

    fn staff(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn enrolled(capacity: u32, n: u128) -> Vec<SessionEvent> {
        let mut events = scheduled(capacity);
        for i in 1..=n {
            let status = if i as u32 <= capacity {
                EnrolmentStatus::Enrolled
            } else {
                EnrolmentStatus::Waitlisted
            };
            events.push(SessionEvent::StaffEnrolled {
                staff_id: staff(i),
                status,
            });
        }
        events
    }

    fn completed(n: u128) -> Vec<SessionEvent> {
        let mut events = enrolled(10, n);
        events.push(SessionEvent::TrainingCompleted {
            staff_id: staff(1),
            completed_on: date("2023-05-11"),
            understanding: Understanding::try_from(4).ok(),
        });
        events
    }

    fn complete(n: u128, on: &str) -> SessionCommand {
        SessionCommand::Complete {
            staff_id: staff(n),
            completed_on: date(on),
            understanding: None,
        }
    }

    #[test]
    fn a_session_that_ends_before_it_starts_is_rejected() {
        Given::with(())
            .given_no_previous_events()
            .when(SessionCommand::Schedule(schedule(
                10,
                "2023-05-10",
                "2023-05-09",
            )))
            .then_expect_error(SessionError::EndsBeforeStart);
    }

    #[test]
    fn a_session_read_back_from_its_snapshot_decides_alike() {
        let mut session = TrainingSession::default();
        let staff: Vec<Uuid> = (0..5u128).map(Uuid::from_u128).collect();
        session.apply(SessionEvent::SessionScheduled(schedule(
            2,
            "2023-05-10",
            "2023-05-11",
        )));
        for id in &staff[..4] {
            let status = if session.enrolled_count() < 2 {
                EnrolmentStatus::Enrolled
            } else {
                EnrolmentStatus::Waitlisted
            };
            session.apply(SessionEvent::StaffEnrolled {
                staff_id: *id,
                status,
            });
        }
        session.apply(SessionEvent::EnrolmentCancelled {
            staff_id: staff[0],
            reason: text("業務都合"),
        });
        session.apply(SessionEvent::WaitlistPromoted { staff_id: staff[2] });
        let snapshot = serde_json::to_value(&session).expect("snapshot");
        assert_eq!(
            snapshot
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>()),
            Some(vec![
                "capacity".to_string(),
                "completions".into(),
                "places".into(),
                "starts_on".into()
            ]),
            "the snapshot keeps its four fields"
        );
        let read_back: TrainingSession = serde_json::from_value(snapshot).expect("read back");
        assert_eq!(read_back, session);
        assert_eq!(read_back.enrolled_count(), 2);
        assert_eq!(read_back.place(staff[0]), None);
        assert_eq!(read_back.place(staff[2]), Some(EnrolmentStatus::Enrolled));
        assert_eq!(read_back.place(staff[3]), Some(EnrolmentStatus::Waitlisted));
        assert_eq!(read_back.place(staff[4]), None);
    }

    #[test]
    fn a_session_without_places_is_rejected() {
        Given::with(())
            .given_no_previous_events()
            .when(SessionCommand::Schedule(schedule(
                0,
                "2023-05-10",
                "2023-05-10",
            )))
            .then_expect_error(SessionError::InvalidCapacity);
    }

    #[test]
    fn scheduling_twice_is_rejected() {
        Given::with(())
            .given(scheduled(10))
            .when(SessionCommand::Schedule(schedule(
                10,
                "2023-05-10",
                "2023-05-10",
            )))
            .then_expect_error(SessionError::SessionExists);
    }

    #[test]
    fn enrolling_in_an_unknown_session_is_rejected() {
        Given::with(())
            .given_no_previous_events()
            .when(SessionCommand::Enrol {
                staff_id: staff(1),
                staff_registered: true,
            })
            .then_expect_error(SessionError::SessionNotFound);
    }

    #[test]
    fn enrolling_an_unknown_staff_member_is_rejected() {
        Given::with(())
            .given(scheduled(10))
            .when(SessionCommand::Enrol {
                staff_id: staff(1),
                staff_registered: false,
            })
            .then_expect_error(SessionError::StaffNotFound);
    }

    #[test]
    fn enrolling_twice_is_rejected() {
        Given::with(())
            .given(enrolled(1, 2))
            .when(SessionCommand::Enrol {
                staff_id: staff(2),
                staff_registered: true,
            })
            .then_expect_error(SessionError::AlreadyEnrolled);
    }

    #[test]
    fn enrolling_beyond_capacity_puts_on_the_waitlist() {
        Given::with(())
            .given(enrolled(2, 2))
            .when(SessionCommand::Enrol {
                staff_id: staff(3),
                staff_registered: true,
            })
            .then_expect_events(vec![SessionEvent::StaffEnrolled {
                staff_id: staff(3),
                status: EnrolmentStatus::Waitlisted,
            }]);
    }

    #[test]
    fn cancelling_an_enrolled_place_promotes_the_first_waitlisted() {
        Given::with(())
            .given(enrolled(1, 3))
            .when(SessionCommand::CancelEnrolment {
                staff_id: staff(1),
                reason: text("業務都合"),
            })
            .then_expect_events(vec![
                SessionEvent::EnrolmentCancelled {
                    staff_id: staff(1),
                    reason: text("業務都合"),
                },
                SessionEvent::WaitlistPromoted { staff_id: staff(2) },
            ]);
    }

    #[test]
    fn cancelling_without_a_place_is_rejected() {
        Given::with(())
            .given(scheduled(1))
            .when(SessionCommand::CancelEnrolment {
                staff_id: staff(1),
                reason: text("業務都合"),
            })
            .then_expect_error(SessionError::NotEnrolled);
    }

    #[test]
    fn completing_without_enrolment_is_rejected() {
        Given::with(())
            .given(scheduled(10))
            .when(complete(1, "2023-05-11"))
            .then_expect_error(SessionError::NotEnrolled);
    }

    #[test]
    fn completing_from_the_waitlist_is_rejected() {
        Given::with(())
            .given(enrolled(1, 2))
            .when(complete(2, "2023-05-11"))
            .then_expect_error(SessionError::Waitlisted);
    }

    #[test]
    fn completing_after_cancellation_is_rejected() {
        let mut given = enrolled(10, 1);
        given.push(SessionEvent::EnrolmentCancelled {
            staff_id: staff(1),
            reason: text("業務都合"),
        });
        Given::with(())
            .given(given)
            .when(complete(1, "2023-05-11"))
            .then_expect_error(SessionError::NotEnrolled);
    }

    #[test]
    fn completing_twice_is_rejected() {
        Given::with(())
            .given(completed(1))
            .when(complete(1, "2023-05-11"))
            .then_expect_error(SessionError::AlreadyCompleted);
    }

    #[test]
    fn completing_before_the_session_starts_is_rejected() {
        Given::with(())
            .given(enrolled(10, 1))
            .when(complete(1, "2023-05-09"))
            .then_expect_error(SessionError::CompletedBeforeStart);
    }

    #[test]
    fn a_revoked_completion_may_be_completed_again() {
        let mut given = completed(1);
        given.push(SessionEvent::CompletionRevoked {
            staff_id: staff(1),
            reason: text("欠席の誤登録"),
        });
        Given::with(())
            .given(given)
            .when(complete(1, "2023-05-11"))
            .then_expect_events(vec![SessionEvent::TrainingCompleted {
                staff_id: staff(1),
                completed_on: date("2023-05-11"),
                understanding: None,
            }]);
    }

    #[test]
    fn correcting_a_missing_completion_is_rejected() {
        Given::with(())
            .given(enrolled(10, 1))
            .when(SessionCommand::CorrectCompletion {
                staff_id: staff(1),
                completed_on: Some(date("2023-05-11")),
                understanding: None,
                reason: text("日付誤り"),
            })
            .then_expect_error(SessionError::NotCompleted);
    }

    #[test]
    fn revoking_twice_is_rejected() {
        let mut given = completed(1);
        given.push(SessionEvent::CompletionRevoked {
            staff_id: staff(1),
            reason: text("誤登録"),
        });
        Given::with(())
            .given(given)
            .when(SessionCommand::RevokeCompletion {
                staff_id: staff(1),
                reason: text("誤登録"),
            })
            .then_expect_error(SessionError::NotCompleted);
    }

    #[test]
    fn an_attendance_sheet_is_recorded_all_or_nothing() {
        let row = |n: u128, on: &str| Attendance {
            staff_id: staff(n),
            staff_registered: true,
            completed_on: date(on),
            understanding: None,
        };
        Given::with(())
            .given(scheduled(10))
            .when(SessionCommand::RecordAttendances(vec![
                row(1, "2023-05-11"),
                row(1, "2023-05-11"),
            ]))
            .then_expect_error(SessionError::AlreadyCompleted);
    }

    #[test]
    fn recording_attendance_enrols_and_completes() {
        Given::with(())
            .given(scheduled(10))
            .when(SessionCommand::RecordAttendance {
                staff_id: staff(1),
                staff_registered: true,
                completed_on: date("2023-05-11"),
                understanding: None,
            })
            .then_expect_events(vec![
                SessionEvent::StaffEnrolled {
                    staff_id: staff(1),
                    status: EnrolmentStatus::Enrolled,
                },
                SessionEvent::TrainingCompleted {
                    staff_id: staff(1),
                    completed_on: date("2023-05-11"),
                    understanding: None,
                },
            ]);
    }
}
