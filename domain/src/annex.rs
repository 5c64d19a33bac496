//! Annex costs (transport, accommodation, meals) that OPCO funding does not cover: the
//! terms a convention sets for them — caps (barème), claim and assessment delays, the
//! payment delay of a funds call, the "small structure" threshold — and how one expense
//! line is capped.
//!
//! The plan names annex costs left to the employer as a barrier ("un frein") for the
//! smallest private structures; it states no remedy, no caps, no delays. Their
//! reimbursement through the OPCO and every figure below are **ours, not the plan's**:
//! the caps follow the French civil service's travel rates of 2020 (arrêté du 26 février
//! 2019: 70 € a night, 90 € in large cities, 110 € in Paris; 17.50 € a meal) and a flat
//! 0.32 € per car kilometre; claims within 90 days, assessed within 30; a funds call paid
//! within 30 days (a partnership convention sets its own payment delays: the procurement
//! delays — 30 days for the State, 60 for public companies — do not bind it; we chose 30);
//! "small" means under 50 employees. A convention sets its own terms at signing and
//! changes them only by amendment, from a date.

use crate::money::Money;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Where a night was spent, for the accommodation cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StayArea {
    Standard,
    /// Communes of 200 000 inhabitants or more, and the Grand Paris métropole.
    LargeCity,
    Paris,
}

/// What an expense line is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExpenseKind {
    /// A public-transport ticket: reimbursed at its cost, no cap (quantity = tickets).
    PublicTransport,
    /// A private car: capped per kilometre (quantity = km).
    Car,
    /// Accommodation: capped per night by area (quantity = nights).
    Night,
    /// Meals: capped per meal (quantity = meals).
    Meal,
}

/// Our default delays and threshold (see the module documentation): terms of each
/// convention, these only when it sets none.
pub const OUR_ASSESSMENT_DAYS: u32 = 30;
pub const OUR_FUNDS_CALL_PAYMENT_DAYS: u32 = 30;
pub const OUR_SMALL_STRUCTURE_EMPLOYEES: u32 = 50;

fn our_assessment_days() -> u32 {
    OUR_ASSESSMENT_DAYS
}
fn our_payment_days() -> u32 {
    OUR_FUNDS_CALL_PAYMENT_DAYS
}
fn our_small_threshold() -> u32 {
    OUR_SMALL_STRUCTURE_EMPLOYEES
}

/// A convention's annex-cost terms: the caps (barème), the claim and assessment delays,
/// the payment delay of a funds call, and the "small structure" threshold. Terms recorded
/// before the delays and the threshold were terms read as our defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnnexCaps {
    pub per_night: Money,
    pub per_night_large_city: Money,
    pub per_night_paris: Money,
    pub per_meal: Money,
    pub per_km: Money,
    /// Days after the session's end within which a claim may be submitted.
    pub claim_deadline_days: u32,
    /// Days the OPCO has to assess a claim before it is flagged overdue.
    #[serde(default = "our_assessment_days")]
    pub assessment_days: u32,
    /// Days ANCT has to pay a funds call before it is flagged late.
    #[serde(default = "our_payment_days")]
    pub funds_call_payment_days: u32,
    /// A structure with fewer employees than this is "small" (its head-count band lies
    /// wholly below it).
    #[serde(default = "our_small_threshold")]
    pub small_structure_employees: u32,
}

impl AnnexCaps {
    /// Our defaults (not the plan's): see the module documentation.
    pub fn ours() -> Self {
        Self {
            per_night: Money::cents(7_000),
            per_night_large_city: Money::cents(9_000),
            per_night_paris: Money::cents(11_000),
            per_meal: Money::cents(1_750),
            per_km: Money::cents(32),
            claim_deadline_days: 90,
            assessment_days: OUR_ASSESSMENT_DAYS,
            funds_call_payment_days: OUR_FUNDS_CALL_PAYMENT_DAYS,
            small_structure_employees: OUR_SMALL_STRUCTURE_EMPLOYEES,
        }
    }

    /// Whether a structure of this head-count band is small under these terms.
    pub fn is_small(&self, head_count: crate::structure::HeadCount) -> bool {
        head_count.max_employees().is_some_and(|max| max < self.small_structure_employees)
    }

    /// The most a line may be reimbursed; `None` when the kind has no cap.
    pub fn cap(&self, kind: ExpenseKind, quantity: u32, area: Option<StayArea>) -> Option<Money> {
        match kind {
            ExpenseKind::PublicTransport => None,
            ExpenseKind::Car => Some(self.per_km.times(quantity)),
            ExpenseKind::Meal => Some(self.per_meal.times(quantity)),
            ExpenseKind::Night => Some(
                match area.unwrap_or(StayArea::Standard) {
                    StayArea::Standard => self.per_night,
                    StayArea::LargeCity => self.per_night_large_city,
                    StayArea::Paris => self.per_night_paris,
                }
                .times(quantity),
            ),
        }
    }

    /// Every cap must be more than 0 €, every delay at least a day, the threshold at least
    /// one employee.
    pub fn invalid_field(&self) -> Option<&'static str> {
        [
            ("perNight", self.per_night),
            ("perNightLargeCity", self.per_night_large_city),
            ("perNightParis", self.per_night_paris),
            ("perMeal", self.per_meal),
            ("perKm", self.per_km),
        ]
        .into_iter()
        .find(|(_, m)| m.is_zero())
        .map(|(f, _)| f)
        .or((self.claim_deadline_days == 0).then_some("claimDeadlineDays"))
        .or((self.assessment_days == 0).then_some("assessmentDays"))
        .or((self.funds_call_payment_days == 0).then_some("fundsCallPaymentDays"))
        .or((self.small_structure_employees == 0).then_some("smallStructureEmployees"))
    }
}

impl Default for AnnexCaps {
    fn default() -> Self {
        Self::ours()
    }
}

/// New caps set by an amendment, in force from a date.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapsChange {
    pub effective_on: NaiveDate,
    pub caps: AnnexCaps,
}

/// The caps in force on `date` in a schedule sorted by date (the first entry applies
/// before its own date too: a convention always has caps).
pub fn caps_on(schedule: &[CapsChange], date: NaiveDate) -> Option<&AnnexCaps> {
    schedule.iter().rev().find(|c| c.effective_on <= date).or(schedule.first()).map(|c| &c.caps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn nights_are_capped_by_area() {
        let caps = AnnexCaps::ours();
        assert_eq!(caps.cap(ExpenseKind::Night, 2, Some(StayArea::Standard)), Some(Money::cents(14_000)));
        assert_eq!(caps.cap(ExpenseKind::Night, 2, Some(StayArea::LargeCity)), Some(Money::cents(18_000)));
        assert_eq!(caps.cap(ExpenseKind::Night, 1, Some(StayArea::Paris)), Some(Money::cents(11_000)));
    }

    #[test]
    fn car_is_capped_per_km_and_public_transport_not_at_all() {
        let caps = AnnexCaps::ours();
        assert_eq!(caps.cap(ExpenseKind::Car, 150, None), Some(Money::cents(4_800)));
        assert_eq!(caps.cap(ExpenseKind::Meal, 3, None), Some(Money::cents(5_250)));
        assert_eq!(caps.cap(ExpenseKind::PublicTransport, 1, None), None);
    }

    #[test]
    fn terms_recorded_before_the_delays_were_terms_read_as_our_defaults() {
        let old = r#"{"perNight":"70.00","perNightLargeCity":"90.00","perNightParis":"110.00","perMeal":"17.50","perKm":"0.32","claimDeadlineDays":90}"#;
        let caps: AnnexCaps = serde_json::from_str(old).unwrap();
        assert_eq!(caps, AnnexCaps::ours());
        assert_eq!(caps.funds_call_payment_days, 30, "our default payment delay");
    }

    #[test]
    fn small_is_a_term_of_the_convention() {
        use crate::structure::HeadCount;
        let ours = AnnexCaps::ours();
        assert!(ours.is_small(HeadCount::Small) && !ours.is_small(HeadCount::Medium));
        let stricter = AnnexCaps { small_structure_employees: 10, ..AnnexCaps::ours() };
        assert!(stricter.is_small(HeadCount::Micro) && !stricter.is_small(HeadCount::Small));
    }

    #[test]
    fn the_caps_in_force_are_the_latest_that_took_effect() {
        let mut later = AnnexCaps::ours();
        later.per_meal = Money::cents(2_000);
        let schedule = vec![
            CapsChange { effective_on: d("2021-03-01"), caps: AnnexCaps::ours() },
            CapsChange { effective_on: d("2022-01-01"), caps: later.clone() },
        ];
        assert_eq!(caps_on(&schedule, d("2021-12-31")), Some(&AnnexCaps::ours()));
        assert_eq!(caps_on(&schedule, d("2022-01-01")), Some(&later));
        assert_eq!(caps_on(&schedule, d("2020-01-01")), Some(&AnnexCaps::ours()));
    }
}
