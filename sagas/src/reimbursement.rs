//! The OPCO reimbursement workflow for annex costs, as a pure process manager:
//!
//! - claim approved → commit its amount on the convention's annex-cost envelope, then
//!   record the claim funded; if the envelope cannot cover it, the claim waits, and every
//!   later event that may free money on that convention (a release, an amendment, a new
//!   annex-cost envelope) tries again, in approval order;
//! - claim paid by the OPCO → queued for the next funds call;
//! - funds call issued → each claim it covers is marked called;
//! - funds call paid by ANCT → each claim's service done and payment are recorded on the
//!   envelope, then the claim is reimbursed;
//! - deadlines ([`Reimbursement::tick`]): a submission not assessed by its `assess_by` is
//!   flagged overdue; a funds call not paid by its `due_on` is flagged late (both dates
//!   come from the convention's own terms; our defaults: 30 days each).
//!
//! Nothing here does I/O: [`crate::ReimbursementProcess`] delivers the work.

use chrono::NaiveDate;
use domain::claim::{AnnexClaim, ClaimCommand, ClaimEvent, ClaimId};
use domain::convention::{self as dc, Convention, ConventionCommand, ConventionEvent, EnvelopeKind};
use domain::funds_call::{FundsCallCommand, FundsCallEvent, FundsCallId, FundsCallLedger, PaidClaim};
use domain::ids::TRACKER_NAMESPACE;
use domain::structure::StructureId;
use domain::{Aggregate, CommandId, CommandMeta, ConventionId, CorrelationId, DepartementCode, EnvelopeId, Money};
use std::collections::{BTreeMap, HashMap};
use store::RecordedEvent;
use uuid::Uuid;

/// The actor the saga's commands carry.
pub const ACTOR: &str = "saga:reimbursement";

/// A command for one of the aggregates the saga drives.
#[derive(Clone, Debug, PartialEq)]
pub enum SagaCommand {
    Convention(ConventionCommand),
    Claim(ClaimCommand),
    Ledger(FundsCallCommand),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub meta: CommandMeta,
    pub command: SagaCommand,
}

/// What the saga asks to be done.
#[derive(Clone, Debug, PartialEq)]
pub enum Work {
    /// Commands delivered in order; the first refusal stops the rest.
    Chain(Vec<Step>),
    /// Commit a claim's amount on the envelope, then record it funded.
    Fund(Box<Funding>),
}

/// When the commit is refused, the claim is set waiting (with the refusal as its
/// reason) if `set_waiting`.
#[derive(Clone, Debug, PartialEq)]
pub struct Funding {
    pub claim_id: ClaimId,
    pub commit: Step,
    pub funded: Step,
    pub set_waiting: bool,
    pub on: NaiveDate,
}

#[derive(Clone, Debug)]
enum Stage {
    Submitted { submission: u32, assess_by: NaiveDate, flagged: bool },
    Assessed,
    Approved { amount: Money },
    Waiting { amount: Money, on: NaiveDate },
    Settled,
}

#[derive(Clone, Debug)]
struct ClaimTrack {
    convention_id: ConventionId,
    structure_id: StructureId,
    departement: DepartementCode,
    stage: Stage,
}

#[derive(Clone, Debug)]
struct CallTrack {
    due_on: NaiveDate,
    claims: Vec<(ClaimId, Money)>,
    /// Neither paid nor flagged late.
    watched: bool,
}

/// The saga's state, rebuilt from the log.
#[derive(Default)]
pub struct Reimbursement {
    annex_envelopes: HashMap<ConventionId, EnvelopeId>,
    claims: HashMap<ClaimId, ClaimTrack>,
    /// Claims waiting for funds, per convention, in approval order.
    waiting: BTreeMap<ConventionId, Vec<ClaimId>>,
    calls: BTreeMap<FundsCallId, (ConventionId, CallTrack)>,
}

/// A command id derived from what caused it: the same cause always gives the same id.
fn derived(cause: &str) -> CommandId {
    CommandId(Uuid::new_v5(&TRACKER_NAMESPACE, format!("saga:reimbursement:{cause}").as_bytes()))
}

fn step(trigger: &RecordedEvent, label: &str, command: SagaCommand) -> Step {
    Step {
        meta: CommandMeta {
            command_id: derived(&format!("{}:{label}", trigger.event_id)),
            actor: ACTOR.to_string(),
            correlation_id: trigger.metadata.correlation_id,
            causation_id: Some(trigger.event_id),
        },
        command,
    }
}

fn deadline_step(cause: &str, command: SagaCommand) -> Step {
    let command_id = derived(cause);
    Step {
        meta: CommandMeta {
            command_id,
            actor: ACTOR.to_string(),
            correlation_id: CorrelationId(command_id.0),
            causation_id: None,
        },
        command,
    }
}

#[derive(Debug, thiserror::Error)]
#[error("event at position {position} ({event_type}) cannot be read: {reason}")]
pub struct Unreadable {
    pub position: u64,
    pub event_type: String,
    pub reason: String,
}

impl Reimbursement {
    /// The work one event calls for; updates the state.
    pub fn react(&mut self, e: &RecordedEvent) -> Result<Vec<Work>, Unreadable> {
        let unreadable = |reason: String| Unreadable { position: e.position, event_type: e.event_type.clone(), reason };
        match e.category() {
            c if c == Convention::CATEGORY => {
                let event: ConventionEvent = e.payload.decode().map_err(|x| unreadable(x.to_string()))?;
                let id = ConventionId::parse(e.stream_id()).map_err(|x| unreadable(x.to_string()))?;
                Ok(self.on_convention(e, id, &event))
            }
            c if c == AnnexClaim::CATEGORY => {
                let event: ClaimEvent = e.payload.decode().map_err(|x| unreadable(x.to_string()))?;
                let id = ClaimId::parse(e.stream_id()).map_err(|x| unreadable(x.to_string()))?;
                Ok(self.on_claim(e, id, event))
            }
            c if c == FundsCallLedger::CATEGORY => {
                let event: FundsCallEvent = e.payload.decode().map_err(|x| unreadable(x.to_string()))?;
                let id = ConventionId::parse(e.stream_id()).map_err(|x| unreadable(x.to_string()))?;
                Ok(self.on_ledger(e, id, event))
            }
            _ => Ok(vec![]),
        }
    }

    /// The deadline work due on `today`.
    pub fn tick(&self, today: NaiveDate) -> Vec<Work> {
        let mut work = Vec::new();
        let mut overdue: Vec<_> = self
            .claims
            .iter()
            .filter_map(|(id, c)| match c.stage {
                Stage::Submitted { submission, assess_by, flagged: false } if today > assess_by => {
                    Some((assess_by, *id, submission))
                }
                _ => None,
            })
            .collect();
        overdue.sort();
        for (due_on, claim_id, submission) in overdue {
            work.push(Work::Chain(vec![deadline_step(
                &format!("overdue:{claim_id}:{submission}"),
                SagaCommand::Claim(ClaimCommand::FlagOverdue { claim_id, submission, due_on }),
            )]));
        }
        for (call_id, (convention_id, call)) in &self.calls {
            if call.watched && today > call.due_on {
                work.push(Work::Chain(vec![deadline_step(
                    &format!("late:{call_id}"),
                    SagaCommand::Ledger(FundsCallCommand::FlagLate {
                        convention_id: *convention_id,
                        call_id: *call_id,
                        due_on: call.due_on,
                    }),
                )]));
            }
        }
        work
    }

    /// Claims waiting for funds, for tools and tests.
    pub fn waiting(&self) -> usize {
        self.waiting.values().map(Vec::len).sum()
    }

    fn fund(&self, trigger: &RecordedEvent, claim_id: ClaimId, set_waiting: bool, on: NaiveDate) -> Option<Work> {
        let claim = self.claims.get(&claim_id)?;
        let (Stage::Approved { amount, .. } | Stage::Waiting { amount, .. }) = claim.stage else { return None };
        let convention_id = claim.convention_id;
        let commit = match self.annex_envelopes.get(&convention_id) {
            Some(envelope_id) => SagaCommand::Convention(ConventionCommand::CommitFunds(dc::CommitFunds {
                convention_id,
                envelope_id: *envelope_id,
                reference: claim_id.reference(),
                amount,
                committed_on: on,
                departement: Some(claim.departement.clone()),
            })),
            // No annex-cost envelope yet: a commit on a nil envelope is refused with a
            // reason the claim then shows.
            None => SagaCommand::Convention(ConventionCommand::CommitFunds(dc::CommitFunds {
                convention_id,
                envelope_id: EnvelopeId(Uuid::nil()),
                reference: claim_id.reference(),
                amount,
                committed_on: on,
                departement: Some(claim.departement.clone()),
            })),
        };
        Some(Work::Fund(Box::new(Funding {
            claim_id,
            commit: step(trigger, &format!("commit:{claim_id}"), commit),
            funded: step(
                trigger,
                &format!("funded:{claim_id}"),
                SagaCommand::Claim(ClaimCommand::RecordFunding { claim_id, committed_on: on }),
            ),
            set_waiting,
            on,
        })))
    }

    fn on_convention(&mut self, trigger: &RecordedEvent, id: ConventionId, event: &ConventionEvent) -> Vec<Work> {
        let frees_money = match event {
            ConventionEvent::EnvelopeAllocated(e) if e.kind == EnvelopeKind::AnnexCosts => {
                self.annex_envelopes.entry(id).or_insert(e.envelope_id);
                true
            }
            ConventionEvent::FundsReleased(_) | ConventionEvent::AmendmentSigned(_) => true,
            _ => false,
        };
        if !frees_money {
            return vec![];
        }
        let waiting = self.waiting.get(&id).cloned().unwrap_or_default();
        waiting
            .into_iter()
            .filter_map(|claim_id| {
                let since = match self.claims.get(&claim_id)?.stage {
                    Stage::Waiting { on, .. } => on,
                    _ => return None,
                };
                self.fund(trigger, claim_id, false, trigger.business_date.max(since))
            })
            .collect()
    }

    fn on_claim(&mut self, trigger: &RecordedEvent, claim_id: ClaimId, event: ClaimEvent) -> Vec<Work> {
        if let ClaimEvent::AnnexClaimSubmitted(e) = &event {
            self.claims.insert(
                claim_id,
                ClaimTrack {
                    convention_id: e.convention_id,
                    structure_id: e.structure_id,
                    departement: e.departement.clone(),
                    stage: Stage::Submitted { submission: 1, assess_by: e.assess_by, flagged: false },
                },
            );
            return vec![];
        }
        let Some(claim) = self.claims.get_mut(&claim_id) else { return vec![] };
        match event {
            ClaimEvent::AnnexClaimSubmitted(_) => vec![],
            ClaimEvent::AnnexClaimResubmitted { submission, assess_by, .. } => {
                claim.stage = Stage::Submitted { submission, assess_by, flagged: false };
                vec![]
            }
            ClaimEvent::AnnexClaimFlaggedOverdue { submission: flagged_one, .. } => {
                if let Stage::Submitted { submission, flagged, .. } = &mut claim.stage
                    && *submission == flagged_one
                {
                    *flagged = true;
                }
                vec![]
            }
            ClaimEvent::AnnexClaimChangesRequested { .. } | ClaimEvent::AnnexClaimRejected { .. } => {
                claim.stage = Stage::Assessed;
                vec![]
            }
            ClaimEvent::AnnexClaimApproved { amount, approved_on, .. } => {
                claim.stage = Stage::Approved { amount };
                self.fund(trigger, claim_id, true, approved_on).into_iter().collect()
            }
            ClaimEvent::AnnexClaimAwaitingFunds { amount, since, .. } => {
                claim.stage = Stage::Waiting { amount, on: since };
                let convention = claim.convention_id;
                let queue = self.waiting.entry(convention).or_default();
                if !queue.contains(&claim_id) {
                    queue.push(claim_id);
                }
                vec![]
            }
            ClaimEvent::AnnexClaimFunded { .. } => {
                claim.stage = Stage::Settled;
                let convention = claim.convention_id;
                if let Some(queue) = self.waiting.get_mut(&convention) {
                    queue.retain(|c| *c != claim_id);
                }
                vec![]
            }
            ClaimEvent::AnnexClaimPaid { amount, paid_on } => {
                let queue = FundsCallCommand::QueueClaim {
                    convention_id: claim.convention_id,
                    claim: PaidClaim {
                        claim_id,
                        structure_id: claim.structure_id,
                        departement: claim.departement.clone(),
                        amount,
                        paid_on,
                    },
                };
                vec![Work::Chain(vec![step(trigger, "queue", SagaCommand::Ledger(queue))])]
            }
            ClaimEvent::AnnexClaimCalled { .. } | ClaimEvent::AnnexClaimReimbursed { .. } => vec![],
        }
    }

    fn on_ledger(&mut self, trigger: &RecordedEvent, convention_id: ConventionId, event: FundsCallEvent) -> Vec<Work> {
        match event {
            FundsCallEvent::ClaimQueuedForFundsCall { .. } => vec![],
            FundsCallEvent::FundsCallIssued(e) => {
                let claims = e.claims.iter().map(|c| (c.claim_id, c.amount)).collect();
                self.calls.insert(e.call_id, (convention_id, CallTrack { due_on: e.due_on, claims, watched: true }));
                e.claims
                    .iter()
                    .map(|c| {
                        Work::Chain(vec![step(
                            trigger,
                            &format!("called:{}", c.claim_id),
                            SagaCommand::Claim(ClaimCommand::MarkCalled {
                                claim_id: c.claim_id,
                                call_id: e.call_id.0,
                                call_number: e.number,
                                called_on: e.issued_on,
                            }),
                        )])
                    })
                    .collect()
            }
            FundsCallEvent::FundsCallPaid { call_id, paid_on, .. } => {
                let Some((_, call)) = self.calls.get_mut(&call_id) else { return vec![] };
                call.watched = false;
                call.claims
                    .clone()
                    .into_iter()
                    .map(|(claim_id, amount)| {
                        let reference = claim_id.reference();
                        Work::Chain(vec![
                            step(
                                trigger,
                                &format!("service-done:{claim_id}"),
                                SagaCommand::Convention(ConventionCommand::RecordServiceDone(dc::RecordServiceDone {
                                    convention_id,
                                    reference: reference.clone(),
                                    amount,
                                    done_on: paid_on,
                                })),
                            ),
                            step(
                                trigger,
                                &format!("payment:{claim_id}"),
                                SagaCommand::Convention(ConventionCommand::RecordPayment(dc::RecordPayment {
                                    convention_id,
                                    reference,
                                    amount,
                                    paid_on,
                                })),
                            ),
                            step(
                                trigger,
                                &format!("reimbursed:{claim_id}"),
                                SagaCommand::Claim(ClaimCommand::RecordReimbursement {
                                    claim_id,
                                    call_id: call_id.0,
                                    reimbursed_on: paid_on,
                                }),
                            ),
                        ])
                    })
                    .collect()
            }
            FundsCallEvent::FundsCallFlaggedLate { call_id, .. } => {
                if let Some((_, call)) = self.calls.get_mut(&call_id) {
                    call.watched = false;
                }
                vec![]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The pure saga, given events, when one more comes (or a day passes), then this work:
    //! no log, no use case, no clock.
    use super::*;
    use domain::DomainEvent;
    use domain::claim::AnnexClaimSubmitted;
    use domain::purchase::PurchaseId;
    use store::chain::ChainHash;
    use store::handler::stream_name;
    use store::{NewEvent, Payload};

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    fn claim() -> ClaimId {
        ClaimId(Uuid::from_u128(7))
    }

    fn convention() -> ConventionId {
        ConventionId::for_code("ANCT-UNIFORMATION-2021")
    }

    /// `event` as the log hands it to the saga: at `position`, in `stream`.
    fn recorded<E: DomainEvent>(stream: String, position: u64, event: &E) -> RecordedEvent {
        let command_id = CommandId(Uuid::from_u128(1_000 + u128::from(position)));
        let new = NewEvent {
            event_id: domain::EventId::for_command(command_id, 0),
            event_type: event.event_type().to_string(),
            schema_version: 1,
            business_date: event.business_date(),
            payload: Payload::encode(event).unwrap(),
            metadata: CommandMeta::new(command_id, "test"),
        };
        let at = chrono::DateTime::from_timestamp(1_625_000_000, 0).unwrap();
        RecordedEvent::record(new, &stream, position, position, at, &ChainHash::GENESIS)
    }

    fn on_claim(position: u64, event: ClaimEvent) -> RecordedEvent {
        recorded(stream_name::<AnnexClaim>(claim().0), position, &event)
    }

    fn submitted() -> ClaimEvent {
        ClaimEvent::AnnexClaimSubmitted(Box::new(AnnexClaimSubmitted {
            claim_id: claim(),
            convention_id: convention(),
            purchase_id: PurchaseId(Uuid::from_u128(3)),
            structure_id: StructureId(Uuid::from_u128(4)),
            departement: DepartementCode::parse("29").unwrap(),
            trainee: "T-001".into(),
            lines: vec![],
            claimed: m("120.00"),
            eligible: m("120.00"),
            submitted_on: d("2021-06-01"),
            assess_by: d("2021-07-01"),
        }))
    }

    fn approved() -> ClaimEvent {
        ClaimEvent::AnnexClaimApproved { lines: vec![], amount: m("120.00"), approved_on: d("2021-06-15") }
    }

    /// The saga after `events`, in order; the work of the last one.
    fn given(events: &[RecordedEvent]) -> (Reimbursement, Vec<Work>) {
        let mut saga = Reimbursement::default();
        let mut work = vec![];
        for e in events {
            work = saga.react(e).unwrap();
        }
        (saga, work)
    }

    #[test]
    fn a_submitted_claim_calls_for_no_work_until_it_is_approved() {
        let (_, work) = given(&[on_claim(1, submitted())]);
        assert_eq!(work, vec![]);
    }

    #[test]
    fn an_approved_claim_is_committed_on_the_annex_envelope_then_recorded_funded_or_set_waiting() {
        let (_, work) = given(&[on_claim(1, submitted()), on_claim(2, approved())]);
        let [Work::Fund(funding)] = work.as_slice() else { panic!("one funding: {work:?}") };
        let SagaCommand::Convention(ConventionCommand::CommitFunds(commit)) = &funding.commit.command else {
            panic!("a commitment first: {funding:?}")
        };
        assert_eq!(
            (commit.convention_id, commit.amount, commit.committed_on),
            (convention(), m("120.00"), d("2021-06-15"))
        );
        assert_eq!(commit.envelope_id, EnvelopeId(Uuid::nil()), "no annex envelope known: refused, so the claim waits");
        assert_eq!(
            funding.funded.command,
            SagaCommand::Claim(ClaimCommand::RecordFunding { claim_id: claim(), committed_on: d("2021-06-15") })
        );
        assert!(funding.set_waiting, "a refused commitment sets the claim waiting");
    }

    #[test]
    fn the_same_event_calls_for_the_same_command_ids_so_a_replay_sends_nothing_twice() {
        let events = [on_claim(1, submitted()), on_claim(2, approved())];
        assert_eq!(given(&events).1, given(&events).1);
    }

    #[test]
    fn a_claim_not_assessed_by_its_date_is_flagged_overdue_once() {
        let (saga, _) = given(&[on_claim(1, submitted())]);
        assert_eq!(saga.tick(d("2021-07-01")), vec![], "due on the day itself, not overdue yet");
        let work = saga.tick(d("2021-07-02"));
        let [Work::Chain(steps)] = work.as_slice() else { panic!("one flag: {work:?}") };
        let flag = ClaimCommand::FlagOverdue { claim_id: claim(), submission: 1, due_on: d("2021-07-01") };
        assert_eq!(steps.iter().map(|s| &s.command).collect::<Vec<_>>(), vec![&SagaCommand::Claim(flag)]);
        let flagged = ClaimEvent::AnnexClaimFlaggedOverdue { submission: 1, due_on: d("2021-07-01") };
        let (saga, _) = given(&[on_claim(1, submitted()), on_claim(2, flagged)]);
        assert_eq!(saga.tick(d("2021-07-02")), vec![], "flagged once");
    }

    #[test]
    fn a_waiting_claim_is_funded_again_when_the_convention_frees_money() {
        let waiting = ClaimEvent::AnnexClaimAwaitingFunds {
            amount: m("120.00"),
            reason: None,
            shortfall: None,
            since: d("2021-06-15"),
        };
        let events = [on_claim(1, submitted()), on_claim(2, approved()), on_claim(3, waiting)];
        let (mut saga, _) = given(&events);
        assert_eq!(saga.waiting(), 1);
        let released = ConventionEvent::FundsReleased(dc::FundsReleased {
            envelope_id: EnvelopeId(Uuid::from_u128(9)),
            reference: "other".into(),
            amount: m("500.00"),
            released_on: d("2021-07-10"),
        });
        let work = saga.react(&recorded(stream_name::<Convention>(convention()), 4, &released)).unwrap();
        let [Work::Fund(funding)] = work.as_slice() else { panic!("the waiting claim funded again: {work:?}") };
        assert_eq!(funding.claim_id, claim());
        assert!(!funding.set_waiting, "already waiting: a refusal leaves it so");
        assert_eq!(funding.on, d("2021-07-10"), "funded on the day money was freed");
    }
}
