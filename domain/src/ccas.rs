//! CCAS training actions of the ANCT–UNCCAS convention: a CCAS trains its agents and
//! managers on competency-framework blocks; the cost is committed on the convention and,
//! the action being held, is service done.

use crate::aggregate::{Aggregate, DomainEvent};
use crate::framework::CompetencyBlock;
use crate::ids::{CommandId, ConventionId, TRACKER_NAMESPACE};
use crate::money::Money;
use crate::structure::{StructureId, StructureKind};
use crate::territory::DepartementCode;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CcasActionId(pub Uuid);

impl CcasActionId {
    pub fn for_command(command: CommandId) -> Self {
        Self(Uuid::new_v5(&TRACKER_NAMESPACE, format!("ccas-action:{}", command.0).as_bytes()))
    }

    /// The reference its money carries on the convention.
    pub fn reference(&self) -> String {
        format!("CCAS-ACTION-{}", self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordCcasAction {
    pub action_id: CcasActionId,
    pub convention_id: ConventionId,
    pub structure_id: StructureId,
    /// Facts about the structure, looked up by the caller.
    pub structure_kind: StructureKind,
    pub departement: DepartementCode,
    pub title: String,
    pub agents: u32,
    pub managers: u32,
    pub blocks: Vec<CompetencyBlock>,
    pub cost: Money,
    pub held_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CcasActionRecorded {
    pub action_id: CcasActionId,
    pub convention_id: ConventionId,
    pub structure_id: StructureId,
    pub departement: DepartementCode,
    pub title: String,
    pub agents: u32,
    pub managers: u32,
    pub blocks: Vec<CompetencyBlock>,
    pub cost: Money,
    pub held_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum CcasEvent {
    CcasActionRecorded(CcasActionRecorded),
}

impl DomainEvent for CcasEvent {
    fn event_type(&self) -> &'static str {
        "CcasActionRecorded"
    }

    fn business_date(&self) -> NaiveDate {
        let CcasEvent::CcasActionRecorded(e) = self;
        e.held_on
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "rule", rename_all_fields = "camelCase")]
pub enum CcasError {
    #[error("this action is already recorded")]
    AlreadyRecorded,
    #[error("CCAS actions are held by a CCAS or CIAS; this structure is of kind {kind:?}")]
    NotACcas { kind: StructureKind },
    #[error("an action trains at least one agent or manager")]
    NobodyTrained,
    #[error("no block, no funding: an action must state which competency-framework blocks it covers")]
    NoBlock,
    #[error("the cost must be more than 0 €")]
    ZeroCost,
    #[error("the title must not be empty")]
    MissingTitle,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CcasAction(pub Option<CcasActionRecorded>);

impl Aggregate for CcasAction {
    type Command = RecordCcasAction;
    type Event = CcasEvent;
    type Error = CcasError;
    const CATEGORY: &'static str = "ccasaction";

    fn decide(&self, c: &RecordCcasAction) -> Result<Vec<CcasEvent>, CcasError> {
        if self.0.is_some() {
            return Err(CcasError::AlreadyRecorded);
        }
        if c.structure_kind != StructureKind::CcasCias {
            return Err(CcasError::NotACcas { kind: c.structure_kind });
        }
        if c.title.trim().is_empty() {
            return Err(CcasError::MissingTitle);
        }
        if c.agents + c.managers == 0 {
            return Err(CcasError::NobodyTrained);
        }
        if c.blocks.is_empty() {
            return Err(CcasError::NoBlock);
        }
        if c.cost.is_zero() {
            return Err(CcasError::ZeroCost);
        }
        let blocks: BTreeSet<_> = c.blocks.iter().copied().collect();
        Ok(vec![CcasEvent::CcasActionRecorded(CcasActionRecorded {
            action_id: c.action_id,
            convention_id: c.convention_id,
            structure_id: c.structure_id,
            departement: c.departement.clone(),
            title: c.title.trim().into(),
            agents: c.agents,
            managers: c.managers,
            blocks: blocks.into_iter().collect(),
            cost: c.cost,
            held_on: c.held_on,
        })])
    }

    fn evolve(&mut self, event: &CcasEvent) {
        let CcasEvent::CcasActionRecorded(e) = event;
        self.0 = Some(e.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn record() -> RecordCcasAction {
        RecordCcasAction {
            action_id: CcasActionId::for_command(CommandId(Uuid::from_u128(1))),
            convention_id: ConventionId::for_code("ANCT-UNCCAS-2021"),
            structure_id: StructureId(Uuid::from_u128(2)),
            structure_kind: StructureKind::CcasCias,
            departement: DepartementCode::parse("2B").unwrap(),
            title: "Accueillir et orienter vers les démarches en ligne".into(),
            agents: 6,
            managers: 1,
            blocks: vec![CompetencyBlock::OnlineAdministrativeProcedures, CompetencyBlock::WelcomeDiagnoseRefer],
            cost: Money::euros(2_400),
            held_on: "2021-09-14".parse().unwrap(),
        }
    }

    #[test]
    fn an_action_is_recorded_with_its_blocks_in_order() {
        let events = given::<CcasAction>([]).when(record()).events();
        let CcasEvent::CcasActionRecorded(e) = &events[0];
        assert_eq!(e.blocks, [CompetencyBlock::WelcomeDiagnoseRefer, CompetencyBlock::OnlineAdministrativeProcedures]);
    }

    #[test]
    fn only_a_ccas_holds_ccas_actions() {
        let mut c = record();
        c.structure_kind = StructureKind::Association;
        given::<CcasAction>([]).when(c).then_err(CcasError::NotACcas { kind: StructureKind::Association });
    }

    #[test]
    fn an_action_trains_somebody_on_some_block_at_a_cost() {
        let mut c = record();
        (c.agents, c.managers) = (0, 0);
        given::<CcasAction>([]).when(c).then_err(CcasError::NobodyTrained);
        let mut c = record();
        c.blocks.clear();
        given::<CcasAction>([]).when(c).then_err(CcasError::NoBlock);
        let mut c = record();
        c.cost = Money::ZERO;
        given::<CcasAction>([]).when(c).then_err(CcasError::ZeroCost);
    }

    #[test]
    fn an_action_is_recorded_once() {
        let first = given::<CcasAction>([]).when(record()).events();
        given::<CcasAction>(first).when(record()).then_err(CcasError::AlreadyRecorded);
    }
}
