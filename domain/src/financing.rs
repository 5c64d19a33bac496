//! Financing plans (plans de financement): which funder pays what part of each envelope
//! of a convention — a rate, or a fixed amount, or all of it — set when the envelope is
//! allocated and changed only by amendment. Every euro allocated, committed, served and
//! paid on the envelope is attributed to its funders by the plan in force when the money
//! was committed, to the cent, with one rounding ([`Money::split`], largest remainder), so
//! that the funders' parts add up to the envelope's figure exactly.
//!
//! Example (the ANCT–Uniformation convention, 4.4 M€ of which 2.6 M€ from ANCT): the
//! annex-cost envelope is 100 % ANCT (ANCT reimburses the annex costs), the training
//! envelopes are shared by fixed amounts that together give ANCT its 2.6 M€ and
//! Uniformation its 1.8 M€. Which envelope each funder pays is the convention's term, not
//! a pro-rata of the whole.

use crate::convention::FundingShare;
use crate::money::Money;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// How big one funder's part of an envelope is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Share {
    /// A percentage of every euro (two decimals at most; the rates add up to 100).
    Rate(Decimal),
    /// A fixed amount of the envelope (the amounts add up to the envelope's amount).
    Amount(Money),
}

/// One funder's part of an envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunderPart {
    pub funder: String,
    pub share: Share,
}

impl FunderPart {
    pub fn rate(funder: &str, percent: Decimal) -> Self {
        Self { funder: funder.into(), share: Share::Rate(percent) }
    }

    pub fn amount(funder: &str, amount: Money) -> Self {
        Self { funder: funder.into(), share: Share::Amount(amount) }
    }

    /// All of the envelope to one funder.
    pub fn whole(funder: &str) -> Self {
        Self::rate(funder, Decimal::ONE_HUNDRED)
    }
}

/// A new plan for one envelope, set by an amendment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvelopeFinancing {
    pub envelope_id: crate::EnvelopeId,
    pub parts: Vec<FunderPart>,
}

/// Why a plan is refused (the convention's errors wrap it with the envelope's name).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "problem", rename_all_fields = "camelCase")]
pub enum PlanError {
    #[error("the convention has several funders: say which pays what part of it (rates, amounts, or 100 % one funder)")]
    Needed,
    #[error("funder {funder} is not a funder of the convention")]
    UnknownFunder { funder: String },
    #[error("funder {funder} appears twice")]
    DuplicateFunder { funder: String },
    #[error("funder {funder}'s part must be more than 0")]
    ZeroPart { funder: String },
    #[error("a rate has at most two decimals and at most 100 % ({funder}: {rate})")]
    BadRate { funder: String, rate: Decimal },
    #[error("a plan is all rates or all amounts, not both")]
    MixedShares,
    #[error("the rates add up to {sum} %, not 100 %")]
    RatesDoNotAddUp { sum: Decimal },
    #[error("the amounts add up to {sum}, not to the envelope's {amount}")]
    AmountsDoNotAddUp { amount: Money, sum: Money },
}

/// A plan as the log holds it; an envelope allocated before plans existed has none, and
/// [`plan_or_shares`] then reads it as the convention's shares (the rule of that time).
pub type FinancingPlan = Vec<FunderPart>;

/// The plan of an envelope: its own, or — only for envelopes recorded before financing
/// plans existed — the convention's shares as fixed amounts (weights).
pub fn plan_or_shares(recorded: &[FunderPart], shares: &[FundingShare]) -> FinancingPlan {
    if !recorded.is_empty() {
        return recorded.to_vec();
    }
    shares.iter().map(|s| FunderPart::amount(&s.funder, s.amount)).collect()
}

/// Each funder's part of `amount` under `plan`, in the plan's order, adding up to `amount`
/// exactly (one rounding: [`Money::split`]).
pub fn split(plan: &[FunderPart], amount: Money) -> Vec<Money> {
    if plan.len() == 1 {
        return vec![amount];
    }
    let weights: Vec<Decimal> = plan
        .iter()
        .map(|p| match p.share {
            Share::Rate(r) => r,
            Share::Amount(a) => a.amount(),
        })
        .collect();
    amount.split(&weights)
}

/// Checks a plan for an envelope of `amount` in a convention with these funders; gives
/// the plan to record (one funder's whole envelope when the convention has one funder and
/// no plan was given).
pub fn check(parts: Option<&[FunderPart]>, amount: Money, shares: &[FundingShare]) -> Result<FinancingPlan, PlanError> {
    let parts = match parts {
        Some(p) if !p.is_empty() => p,
        _ if shares.len() == 1 => return Ok(vec![FunderPart::whole(&shares[0].funder)]),
        _ => return Err(PlanError::Needed),
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut plan = Vec::with_capacity(parts.len());
    for p in parts {
        let funder = shares
            .iter()
            .find(|s| s.funder.trim().eq_ignore_ascii_case(p.funder.trim()))
            .map(|s| s.funder.clone())
            .ok_or_else(|| PlanError::UnknownFunder { funder: p.funder.trim().to_string() })?;
        if !seen.insert(funder.clone()) {
            return Err(PlanError::DuplicateFunder { funder });
        }
        match p.share {
            Share::Rate(r) if r <= Decimal::ZERO => return Err(PlanError::ZeroPart { funder }),
            Share::Rate(r) if r.normalize().scale() > 2 || r > Decimal::ONE_HUNDRED => {
                return Err(PlanError::BadRate { funder, rate: r });
            }
            Share::Amount(a) if a.is_zero() => return Err(PlanError::ZeroPart { funder }),
            _ => {}
        }
        plan.push(FunderPart { funder, share: p.share });
    }
    let rates: Vec<Decimal> =
        plan.iter().filter_map(|p| if let Share::Rate(r) = p.share { Some(r) } else { None }).collect();
    if !rates.is_empty() && rates.len() != plan.len() {
        return Err(PlanError::MixedShares);
    }
    if rates.is_empty() {
        let sum: Money = plan.iter().filter_map(|p| if let Share::Amount(a) = p.share { Some(a) } else { None }).sum();
        if sum != amount {
            return Err(PlanError::AmountsDoNotAddUp { amount, sum });
        }
    } else {
        let sum: Decimal = rates.iter().sum();
        if sum != Decimal::ONE_HUNDRED {
            return Err(PlanError::RatesDoNotAddUp { sum });
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn shares() -> Vec<FundingShare> {
        vec![
            FundingShare { funder: "ANCT".into(), amount: Money::euros(2_600_000) },
            FundingShare { funder: "Uniformation".into(), amount: Money::euros(1_800_000) },
        ]
    }

    #[test]
    fn a_single_funder_convention_needs_no_plan_and_several_do() {
        let one = &shares()[..1];
        assert_eq!(check(None, Money::euros(10), one), Ok(vec![FunderPart::whole("ANCT")]));
        assert_eq!(check(None, Money::euros(10), &shares()), Err(PlanError::Needed));
    }

    #[test]
    fn rates_add_up_to_100_and_amounts_to_the_envelope() {
        let rates = [FunderPart::rate("ANCT", dec!(55)), FunderPart::rate("Uniformation", dec!(44.99))];
        assert_eq!(
            check(Some(&rates), Money::euros(10), &shares()),
            Err(PlanError::RatesDoNotAddUp { sum: dec!(99.99) })
        );
        let amounts =
            [FunderPart::amount("ANCT", Money::euros(6)), FunderPart::amount("Uniformation", Money::euros(3))];
        assert_eq!(
            check(Some(&amounts), Money::euros(10), &shares()),
            Err(PlanError::AmountsDoNotAddUp { amount: Money::euros(10), sum: Money::euros(9) })
        );
        let mixed = [FunderPart::rate("ANCT", dec!(60)), FunderPart::amount("Uniformation", Money::euros(4))];
        assert_eq!(check(Some(&mixed), Money::euros(10), &shares()), Err(PlanError::MixedShares));
    }

    #[test]
    fn a_part_goes_to_a_funder_of_the_convention_once_and_is_positive() {
        let unknown = [FunderPart::whole("Région")];
        assert_eq!(
            check(Some(&unknown), Money::euros(10), &shares()),
            Err(PlanError::UnknownFunder { funder: "Région".into() })
        );
        let twice = [FunderPart::rate("ANCT", dec!(50)), FunderPart::rate("anct", dec!(50))];
        assert_eq!(
            check(Some(&twice), Money::euros(10), &shares()),
            Err(PlanError::DuplicateFunder { funder: "ANCT".into() })
        );
        let zero = [FunderPart::rate("ANCT", dec!(0)), FunderPart::rate("Uniformation", dec!(100))];
        assert_eq!(check(Some(&zero), Money::euros(10), &shares()), Err(PlanError::ZeroPart { funder: "ANCT".into() }));
        let fine = [FunderPart::rate("ANCT", dec!(55.555)), FunderPart::rate("Uniformation", dec!(44.445))];
        assert!(matches!(check(Some(&fine), Money::euros(10), &shares()), Err(PlanError::BadRate { .. })));
    }

    #[test]
    fn every_euro_is_split_by_the_plan_to_the_cent() {
        let plan = vec![FunderPart::rate("ANCT", dec!(55)), FunderPart::rate("Uniformation", dec!(45))];
        assert_eq!(split(&plan, Money::parse("1000.01").unwrap()), vec![Money::cents(55_001), Money::cents(45_000)]);
        assert_eq!(split(&[FunderPart::whole("ANCT")], Money::cents(123)), vec![Money::cents(123)]);
        // An old envelope without a plan reads as the convention's shares.
        let old = plan_or_shares(&[], &shares());
        assert_eq!(split(&old, Money::euros(44)), vec![Money::euros(26), Money::euros(18)]);
    }

    proptest::proptest! {
        /// Whatever the plan and the amount, the parts add up to the amount to the cent, and
        /// none is negative.
        #[test]
        fn the_parts_of_any_amount_add_up_to_it(
            weights in proptest::collection::vec(1i64..5_000_000, 1..6),
            rates in proptest::bool::ANY,
            cents in 0i64..10_000_000_000,
        ) {
            let plan: Vec<FunderPart> = weights
                .iter()
                .enumerate()
                .map(|(n, w)| {
                    let funder = format!("F{n}");
                    if rates { FunderPart::rate(&funder, Decimal::new(*w, 4)) } else { FunderPart::amount(&funder, Money::cents(*w)) }
                })
                .collect();
            let amount = Money::cents(cents);
            let parts = split(&plan, amount);
            proptest::prop_assert_eq!(parts.len(), plan.len());
            proptest::prop_assert!(parts.iter().all(|p| *p >= Money::ZERO), "{parts:?}");
            proptest::prop_assert_eq!(parts.into_iter().sum::<Money>(), amount);
        }
    }
}
