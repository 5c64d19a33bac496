//! The enums of claims as GraphQL shows them (the domain's, remote-derived).

#[allow(unused_imports)]
use super::*;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::annex::ExpenseKind")]
pub enum ExpenseKind {
    PublicTransport,
    Car,
    Night,
    Meal,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::annex::StayArea")]
pub enum StayArea {
    Standard,
    LargeCity,
    Paris,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::claim::ClaimState")]
pub enum ClaimStatus {
    Submitted,
    ChangesRequested,
    Rejected,
    Approved,
    AwaitingFunds,
    Funded,
    Paid,
    InFundsCall,
    Reimbursed,
}
