//! Annex-cost claims and funds calls through GraphQL: a structure submits (its own
//! trainees only), the OPCO assesses and pays, the OPCO calls funds from ANCT, ANCT pays
//! the call. The money moves (commitment, service done, payment) are the reimbursement
//! saga's; a mutation answers once the saga and the read models have caught up with it.

mod enums;
mod error_codes;
mod inputs;
mod lookups;
mod resolvers;
mod views;

pub use enums::*;
pub use inputs::*;
use lookups::*;
pub use resolvers::*;
pub use views::*;

use crate::AppState;
use crate::auth::{Operation, Principal, Role, require};
use crate::errors::{DomainCode, bad_input, codes};
use crate::inputs::{CommandFields, convention_id};
use crate::programmes::written;
use crate::scalars::{DateScalar, MoneyScalar};
use crate::types::Departement;
use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use domain::CommandId;
use domain::claim::{AnnexClaim, ClaimCommand, ClaimError, ClaimId, ExpenseLine, LineDecision};
use domain::funds_call::{FundsCallCommand, FundsCallError, FundsCallId};
use domain::purchase::PurchaseId;
use domain::structure::StructureId;
use projections::reimbursements::{CallRecord, ClaimRecord};
use store::CommandOutcome;
use store::handler::stream_name;
