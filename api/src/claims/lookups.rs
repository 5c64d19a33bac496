//! A claim by id, as the caller may see it.

#[allow(unused_imports)]
use super::*;

pub(super) fn claim_id(id: &ID) -> Result<ClaimId> {
    ClaimId::parse(id).map_err(|e| bad_input("claimId", e))
}

/// The claim as the caller may see it: another structure's answers as if absent.
pub(super) fn visible_claim(state: &AppState, principal: &Principal, id: ClaimId) -> Option<ClaimRecord> {
    state
        .reimbursements
        .read(|v| v.claims.get(&id).cloned())
        .filter(|c| principal.sees_structure(c.submitted.structure_id.0))
}
