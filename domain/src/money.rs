//! Money in euros with cents. Never a float; never negative; at most two decimals.
//!
//! Every rounding of the whole tracker goes through [`round_cents`], so that a figure
//! computed by a projection, a report or a rule is rounded the same way everywhere.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::iter::Sum;
use std::ops::Add;
use std::str::FromStr;

/// The largest amount the tracker accepts: a thousand billion euros. Anything above is a
/// typing mistake, and refusing it keeps every sum far from `Decimal`'s limits.
pub const MAX_EUROS: i64 = 1_000_000_000_000;

/// Why an amount is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("`{0}` is not an amount in euros (expected a string such as \"1234.56\")")]
    NotANumber(String),
    #[error("`{0}` has more than 2 decimals: amounts are in euros with cents")]
    TooManyDecimals(String),
    #[error("`{0}` is negative: amounts cannot be negative")]
    Negative(String),
    #[error("`{0}` is too large: amounts are limited to 1 000 000 000 000 €")]
    TooLarge(String),
}

/// Rounds to the cent, half away from zero (the usual rule of French public accounting).
/// The one rounding place of the tracker.
pub fn round_cents(value: Decimal) -> Decimal {
    let mut rounded = value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(2);
    rounded
}

/// A non-negative amount in euros, always held with exactly two decimals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Decimal", into = "Decimal")]
pub struct Money(Decimal);

impl Money {
    pub const ZERO: Money = Money(Decimal::from_parts(0, 0, 0, false, 2));

    /// Parses an amount typed by a person or sent by a client: `"4400000"`, `"12.5"`,
    /// `"12.50"`. Refuses three decimals rather than rounding them silently.
    pub fn parse(input: &str) -> Result<Self, MoneyError> {
        let trimmed = input.trim();
        let value = Decimal::from_str_exact(trimmed).map_err(|_| MoneyError::NotANumber(input.to_string()))?;
        Self::try_from_decimal(value, input)
    }

    fn try_from_decimal(value: Decimal, shown: &str) -> Result<Self, MoneyError> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(MoneyError::Negative(shown.to_string()));
        }
        if value.normalize().scale() > 2 {
            return Err(MoneyError::TooManyDecimals(shown.to_string()));
        }
        if value > Decimal::from(MAX_EUROS) {
            return Err(MoneyError::TooLarge(shown.to_string()));
        }
        Ok(Money(round_cents(value.abs())))
    }

    /// Whole euros, for tests and fixed figures of the plan.
    pub fn euros(euros: i64) -> Self {
        Self::try_from(Decimal::from(euros)).expect("whole euros within limits")
    }

    /// An amount from cents (`12345` → 123.45 €).
    pub fn cents(cents: i64) -> Self {
        Self::try_from(Decimal::new(cents, 2)).expect("cents within limits")
    }

    pub fn amount(&self) -> Decimal {
        self.0
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// `self - other`, or `None` when that would be negative.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        (self.0 >= other.0).then(|| Money(round_cents(self.0 - other.0)))
    }

    /// `self - other`, floored at zero: for figures such as "what is left".
    pub fn saturating_sub(self, other: Money) -> Money {
        self.checked_sub(other).unwrap_or(Money::ZERO)
    }

    /// `self × quantity`, e.g. a unit cost times a number of trainees.
    pub fn times(self, quantity: u32) -> Money {
        Money(round_cents(self.0 * Decimal::from(quantity)))
    }

    /// Splits `self` between shares in proportion to their weights, to the cent, so that
    /// the parts add up to `self` exactly: each part is rounded, and the last takes what
    /// rounding left (a funder's share of what a convention committed, for instance).
    pub fn split(self, weights: &[Money]) -> Vec<Money> {
        let whole: Decimal = weights.iter().map(|w| w.0).sum();
        if weights.is_empty() {
            return vec![];
        }
        if whole.is_zero() {
            return weights.iter().map(|_| Money::ZERO).collect();
        }
        let mut parts: Vec<Money> = weights.iter().map(|w| Money(round_cents(self.0 * w.0 / whole))).collect();
        let given: Decimal = parts[..parts.len() - 1].iter().map(|p| p.0).sum();
        let last = parts.len() - 1;
        parts[last] = Money(round_cents((self.0 - given).max(Decimal::ZERO)));
        parts
    }

    /// `part / self` as a percentage with two decimals; 0 when `self` is zero.
    pub fn percent_of(part: Money, whole: Money) -> Decimal {
        if whole.is_zero() {
            return round_cents(Decimal::ZERO);
        }
        round_cents(part.0 * Decimal::ONE_HUNDRED / whole.0)
    }
}

/// Zero with its two decimals, so that an untouched figure still reads `0.00`.
impl Default for Money {
    fn default() -> Self {
        Money::ZERO
    }
}

impl TryFrom<Decimal> for Money {
    type Error = MoneyError;
    fn try_from(value: Decimal) -> Result<Self, Self::Error> {
        Self::try_from_decimal(value, &value.to_string())
    }
}

impl From<Money> for Decimal {
    fn from(m: Money) -> Self {
        m.0
    }
}

impl FromStr for Money {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        Money(round_cents(self.0 + rhs.0))
    }
}

impl Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Add::add)
    }
}

impl<'a> Sum<&'a Money> for Money {
    fn sum<I: Iterator<Item = &'a Money>>(iter: I) -> Money {
        iter.copied().sum()
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} €", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_adds_up_to_the_cent() {
        let shares = [Money::euros(2_600_000), Money::euros(1_800_000)];
        let parts = Money::parse("1000.01").unwrap().split(&shares);
        assert_eq!(parts, vec![Money::parse("590.92").unwrap(), Money::parse("409.09").unwrap()]);
        assert_eq!(parts.iter().copied().sum::<Money>(), Money::parse("1000.01").unwrap());
        let thirds = Money::parse("100").unwrap().split(&[Money::euros(1), Money::euros(1), Money::euros(1)]);
        assert_eq!(
            thirds,
            vec![Money::parse("33.33").unwrap(), Money::parse("33.33").unwrap(), Money::parse("33.34").unwrap()]
        );
    }
    use rust_decimal_macros::dec;

    #[test]
    fn parses_whole_euros_and_cents_and_keeps_two_decimals() {
        assert_eq!(Money::parse("4400000").unwrap().amount().to_string(), "4400000.00");
        assert_eq!(Money::parse(" 12.5 ").unwrap().amount().to_string(), "12.50");
        assert_eq!(Money::parse("0.01").unwrap(), Money::cents(1));
    }

    #[test]
    fn refuses_three_decimals_instead_of_rounding_them() {
        assert_eq!(Money::parse("10.005"), Err(MoneyError::TooManyDecimals("10.005".into())));
        // Trailing zeros are not real decimals.
        assert_eq!(Money::parse("10.500").unwrap(), Money::cents(1050));
    }

    #[test]
    fn refuses_negative_amounts_and_garbage() {
        assert_eq!(Money::parse("-1"), Err(MoneyError::Negative("-1".into())));
        assert!(matches!(Money::parse("12,50"), Err(MoneyError::NotANumber(_))));
        assert!(matches!(Money::parse(""), Err(MoneyError::NotANumber(_))));
        assert!(matches!(Money::parse("1e3"), Err(MoneyError::NotANumber(_))));
        assert!(matches!(Money::parse("1000000000000.01"), Err(MoneyError::TooLarge(_))));
    }

    #[test]
    fn rounds_half_away_from_zero_in_one_place() {
        assert_eq!(round_cents(dec!(0.125)), dec!(0.13));
        assert_eq!(round_cents(dec!(0.124)), dec!(0.12));
        assert_eq!(Money::percent_of(Money::euros(1), Money::euros(3)), dec!(33.33));
        assert_eq!(Money::percent_of(Money::euros(2), Money::euros(3)), dec!(66.67));
        assert_eq!(Money::percent_of(Money::euros(2), Money::ZERO), dec!(0.00));
    }

    #[test]
    fn zero_keeps_its_cents() {
        assert_eq!(serde_json::to_string(&Money::default()).unwrap(), "\"0.00\"");
        assert_eq!(serde_json::to_string(&Money::ZERO).unwrap(), "\"0.00\"");
    }

    #[test]
    fn subtraction_never_goes_negative() {
        assert_eq!(Money::euros(5).checked_sub(Money::euros(6)), None);
        assert_eq!(Money::euros(5).saturating_sub(Money::euros(6)), Money::ZERO);
        assert_eq!(Money::euros(6).checked_sub(Money::cents(50)), Some(Money::cents(550)));
    }

    #[test]
    fn serialises_as_a_string_and_validates_when_read_back() {
        let json = serde_json::to_string(&Money::cents(123_456)).unwrap();
        assert_eq!(json, "\"1234.56\"");
        assert_eq!(serde_json::from_str::<Money>("\"1234.56\"").unwrap(), Money::cents(123_456));
        assert!(serde_json::from_str::<Money>("\"1.234\"").is_err());
        assert!(serde_json::from_str::<Money>("\"-3\"").is_err());
    }

    #[test]
    fn sums_and_multiplies_to_the_cent() {
        let total: Money = [Money::euros(2_600_000), Money::euros(1_800_000)].iter().sum();
        assert_eq!(total, Money::euros(4_400_000));
        assert_eq!(Money::parse("125.10").unwrap().times(3), Money::cents(37_530));
    }
}
