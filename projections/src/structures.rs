//! The register of employer structures, for lookups and per-territory listings.

use crate::{Projection, ProjectionError};
use domain::Aggregate;
use domain::structure::{StructureEvent, StructureId, StructureRegistered};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use store::RecordedEvent;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StructuresView {
    pub structures: BTreeMap<StructureId, StructureRegistered>,
}

impl StructuresView {
    /// Structures in name order, optionally of one département.
    pub fn list(&self, departement: Option<&str>) -> Vec<&StructureRegistered> {
        let mut all: Vec<_> =
            self.structures.values().filter(|s| departement.is_none_or(|d| s.departement.as_str() == d)).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name).then(a.siret.cmp(&b.siret)));
        all
    }
}

impl Projection for StructuresView {
    const NAME: &'static str = "structures";

    fn apply(&mut self, recorded: &RecordedEvent) -> Result<(), ProjectionError> {
        if recorded.category() != domain::structure::Structure::CATEGORY {
            return Ok(());
        }
        let event: StructureEvent = recorded.payload.decode().map_err(|e| ProjectionError::Unreadable {
            position: recorded.position,
            event_type: recorded.event_type.clone(),
            reason: e.to_string(),
        })?;
        let StructureEvent::StructureRegistered(e) = event;
        self.structures.insert(e.structure_id, e);
        Ok(())
    }
}
