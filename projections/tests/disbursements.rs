//! The partner's balance on random histories of disbursement commands, after every
//! accepted one: ANCT never pays beyond what the schedule allows (nor beyond its share),
//! `received − recovered = justified (within it) + advance not yet justified`, and nothing
//! is recovered beyond what was ordered.

use chrono::{Days, NaiveDate};
use domain::disbursement::{Condition, DisbursementCommand as C, Disbursements, Instalment, Terms};
use domain::{Aggregate, ConventionId, Money};
use proptest::prelude::*;

fn terms(amounts: &[u32]) -> Terms {
    let conditions =
        [Condition::Signature, Condition::StatementOfExpenses, Condition::StatementOfExpenses, Condition::FinalReport];
    Terms {
        schedule: amounts
            .iter()
            .zip(conditions)
            .map(|(a, condition)| Instalment {
                label: format!("{condition:?}"),
                amount: Money::cents(i64::from(*a) + 1),
                condition,
            })
            .collect(),
        payment_days: 30,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_balance_holds_and_ancts_payments_stay_within_the_schedule(
        amounts in proptest::collection::vec(0u32..5_000_000, 4),
        ops in proptest::collection::vec((0u8..6, 0u32..5, 0u32..6_000_000), 1..60),
    ) {
        let terms = terms(&amounts);
        let share: Money = terms.schedule.iter().map(|i| i.amount).sum();
        let id = ConventionId::for_code("P");
        let mut state = Disbursements::default();
        let mut day = NaiveDate::from_ymd_opt(2021, 3, 15).unwrap();
        for (op, n, x) in ops {
            day = day.checked_add_days(Days::new(3)).unwrap();
            let amount = Money::cents(i64::from(x) + 1);
            let command = match op {
                0 => C::SubmitStatement { convention_id: id, spent: amount, final_report: n == 0, submitted_on: day },
                1 => C::ClaimPayment { convention_id: id, instalment: n, amount, claimed_on: day, terms: terms.clone() },
                2 => C::PayClaim { convention_id: id, claim: n, paid_on: day, terms: terms.clone() },
                3 => C::OrderRecovery { convention_id: id, ordered_on: day },
                4 => C::RecordRecoveryPaid { convention_id: id, amount, paid_on: day },
                _ => C::RecordCoFunderSpending { convention_id: id, funder: "Uniformation".into(), amount, reference: "R".into(), spent_on: day },
            };
            if let Ok(events) = state.decide(&command) {
                for e in &events {
                    state.evolve(e);
                }
            }
            prop_assert!(state.received <= state.allowed(&terms.schedule), "never beyond the schedule");
            prop_assert!(state.received <= share, "never beyond ANCT's share");
            prop_assert_eq!(state.kept(), state.justified_within() + state.advance_not_justified());
            prop_assert_eq!(state.received, state.justified_within() + state.advance_not_justified() + state.recovered);
            prop_assert!(state.recovered <= state.recovery_ordered);
        }
    }
}
