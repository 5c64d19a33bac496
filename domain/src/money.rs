//! Money in euros with cents. Never a float; never negative; at most two decimals.
//!
//! Every rounding of the whole tracker goes through [`round_cents`], so that a figure
//! computed by a projection, a report or a rule is rounded the same way everywhere.

use rust_decimal::prelude::FromPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::de::{Error as _, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "Decimal")]
pub struct Money(Decimal);

impl Money {
    pub const ZERO: Money = Money(Decimal::from_parts(0, 0, 0, false, 2));

    /// Parses an amount typed by a person or sent by a client, with the one grammar of
    /// amounts at every input: digits, then optionally a point and one or two digits
    /// (`"4400000"`, `"12.5"`, `"12.50"`). No sign, space, exponent, digit separator,
    /// leading zero (`"0.50"` is fine, `"0001"` is not) or third decimal: anything else is
    /// refused, never guessed at.
    pub fn parse(input: &str) -> Result<Self, MoneyError> {
        let shown = || input.to_string();
        let (negative, body) = input.strip_prefix('-').map_or((false, input), |rest| (true, rest));
        let (euros, cents) = body.split_once('.').map_or((body, None), |(e, c)| (e, Some(c)));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let leading_zero = euros.len() > 1 && euros.starts_with('0');
        if !digits(euros) || leading_zero || cents.is_some_and(|c| !digits(c)) {
            return Err(MoneyError::NotANumber(shown()));
        }
        if negative {
            return Err(MoneyError::Negative(shown()));
        }
        if cents.is_some_and(|c| c.len() > 2) {
            return Err(MoneyError::TooManyDecimals(shown()));
        }
        if euros.len() > 13 {
            return Err(MoneyError::TooLarge(shown()));
        }
        let value = Decimal::from_str_exact(body).map_err(|_| MoneyError::NotANumber(shown()))?;
        Self::try_from_decimal(value, shown)
    }

    /// `shown` writes the amount for an error message, only when there is one.
    fn try_from_decimal(value: Decimal, shown: impl FnOnce() -> String) -> Result<Self, MoneyError> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(MoneyError::Negative(shown()));
        }
        if value.normalize().scale() > 2 {
            return Err(MoneyError::TooManyDecimals(shown()));
        }
        if value > Decimal::from(MAX_EUROS) {
            return Err(MoneyError::TooLarge(shown()));
        }
        Ok(Money(round_cents(value.abs())))
    }

    /// The amount of a text written as the log writes amounts (`"1234.56"`: digits, a
    /// point, two digits), without the general parser; `None` for any other text.
    fn from_cents_text(text: &str) -> Option<Self> {
        let (euros, cents) = text.split_once('.')?;
        if euros.is_empty() || euros.len() > 13 || cents.len() != 2 {
            return None;
        }
        let cents = euros
            .bytes()
            .chain(cents.bytes())
            .try_fold(0i64, |acc, b| b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0')))?;
        (cents <= MAX_EUROS * 100).then(|| Money(Decimal::new(cents, 2)))
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

    /// Splits `self` between parts in proportion to their weights, to the cent, so that
    /// the parts add up to `self` exactly — the one place where a funder's part is
    /// rounded. Largest remainder (Hamilton): each part gets the whole cents of its exact
    /// share, then the cents left over go one each to the parts with the largest
    /// fractions, the earlier part first on a tie. Zero weights get nothing; all zero:
    /// every part is zero.
    pub fn split(self, weights: &[Decimal]) -> Vec<Money> {
        let whole: Decimal = weights.iter().copied().filter(|w| w.is_sign_positive()).sum();
        if whole.is_zero() {
            return weights.iter().map(|_| Money::ZERO).collect();
        }
        if weights.len() == 1 {
            return vec![self];
        }
        let cents = self.0 * Decimal::ONE_HUNDRED;
        let exact: Vec<Decimal> =
            weights.iter().map(|w| if w.is_sign_positive() { cents * *w / whole } else { Decimal::ZERO }).collect();
        let mut given: Vec<Decimal> = exact.iter().map(|e| e.floor()).collect();
        let left = cents - given.iter().copied().sum::<Decimal>();
        let mut order: Vec<usize> = (0..weights.len()).filter(|i| weights[*i].is_sign_positive()).collect();
        // Largest fraction first; a stable sort keeps the plan's order on ties.
        order.sort_by(|a, b| (exact[*b] - given[*b]).cmp(&(exact[*a] - given[*a])));
        // Fewer cents are left than parts: the fractions add up to less than the count.
        let left = rust_decimal::prelude::ToPrimitive::to_usize(&left.round()).unwrap_or(0);
        for i in order.into_iter().take(left) {
            given[i] += Decimal::ONE;
        }
        given.into_iter().map(|c| Money(round_cents(c / Decimal::ONE_HUNDRED))).collect()
    }

    /// [`Money::split`] by amounts as weights (a funder's share of a total, say).
    pub fn split_by(self, weights: &[Money]) -> Vec<Money> {
        self.split(&weights.iter().map(|w| w.0).collect::<Vec<_>>())
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
        Self::try_from_decimal(value, || value.to_string())
    }
}

/// As a `Decimal` then checked (same inputs accepted, same errors), with a shortcut for
/// amounts written as the log writes them: replay reads one or two in every event, and the
/// general path took a quarter of an event's decoding.
impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_str(AmountVisitor)? {
            Read::Shortcut(money) => Ok(money),
            // Checked once the text is read, as `#[serde(try_from = "Decimal")]` did.
            Read::Decimal(value) => Money::try_from(value).map_err(D::Error::custom),
        }
    }
}

enum Read {
    Shortcut(Money),
    Decimal(Decimal),
}

/// rust_decimal's visitor (the same inputs, the same errors), with the shortcut in front.
struct AmountVisitor;

impl Visitor<'_> for AmountVisitor {
    type Value = Read;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Decimal type representing a fixed-point number")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Read, E> {
        if let Some(money) = Money::from_cents_text(v) {
            return Ok(Read::Shortcut(money));
        }
        Decimal::from_str(v)
            .or_else(|_| Decimal::from_scientific(v))
            .map(Read::Decimal)
            .map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Read, E> {
        Decimal::from_i64(v).map(Read::Decimal).ok_or_else(|| E::invalid_value(Unexpected::Signed(v), &self))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Read, E> {
        Decimal::from_u64(v).map(Read::Decimal).ok_or_else(|| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Read, E> {
        Decimal::from_str(&v.to_string()).map(Read::Decimal).map_err(|_| E::invalid_value(Unexpected::Float(v), &self))
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
    fn a_split_adds_up_to_the_cent_by_largest_remainder() {
        let shares = [Money::euros(2_600_000), Money::euros(1_800_000)];
        let parts = Money::parse("1000.01").unwrap().split_by(&shares);
        // 59 091.5 and 40 909.5 cents: a tie, the cent left goes to the earlier part.
        assert_eq!(parts, vec![Money::parse("590.92").unwrap(), Money::parse("409.09").unwrap()]);
        assert_eq!(parts.iter().copied().sum::<Money>(), Money::parse("1000.01").unwrap());
        // Thirds: the cent left over goes to the earliest part on a tie.
        let thirds = Money::parse("100").unwrap().split(&[dec!(1), dec!(1), dec!(1)]);
        assert_eq!(
            thirds,
            vec![Money::parse("33.34").unwrap(), Money::parse("33.33").unwrap(), Money::parse("33.33").unwrap()]
        );
        // A tiny amount among many parts never gives more than it has (the old "last
        // takes the rest" could round the first parts above the whole).
        let tiny = Money::cents(1).split(&[dec!(1), dec!(1), dec!(0.0001)]);
        assert_eq!(tiny.iter().copied().sum::<Money>(), Money::cents(1));
        assert_eq!(Money::cents(5).split(&[dec!(0), dec!(0)]), vec![Money::ZERO, Money::ZERO]);
    }
    use rust_decimal_macros::dec;

    #[test]
    fn parses_whole_euros_and_cents_and_keeps_two_decimals() {
        assert_eq!(Money::parse("4400000").unwrap().amount().to_string(), "4400000.00");
        assert_eq!(Money::parse("12.5").unwrap().amount().to_string(), "12.50");
        assert_eq!(Money::parse("0.01").unwrap(), Money::cents(1));
        assert_eq!(Money::parse("0").unwrap(), Money::ZERO);
    }

    #[test]
    fn refuses_three_decimals_instead_of_rounding_them() {
        assert_eq!(Money::parse("10.005"), Err(MoneyError::TooManyDecimals("10.005".into())));
        assert_eq!(Money::parse("10.500"), Err(MoneyError::TooManyDecimals("10.500".into())));
    }

    #[test]
    fn refuses_negative_amounts_and_garbage() {
        assert_eq!(Money::parse("-1"), Err(MoneyError::Negative("-1".into())));
        assert!(matches!(Money::parse("12,50"), Err(MoneyError::NotANumber(_))));
        assert!(matches!(Money::parse(""), Err(MoneyError::NotANumber(_))));
        assert!(matches!(Money::parse("1e3"), Err(MoneyError::NotANumber(_))));
        assert!(matches!(Money::parse("1000000000000.01"), Err(MoneyError::TooLarge(_))));
        assert!(matches!(Money::parse("99999999999999999999999999999999"), Err(MoneyError::TooLarge(_))));
    }

    #[test]
    fn one_strict_grammar_digit_separators_signs_spaces_and_lone_points_are_refused() {
        for input in
            ["1_000", "1_0.5_0", "+10", " 10", "10 ", ".5", "5.", "0001", "00.5", "1.2.3", "1 000", "١٠", "0x10"]
        {
            assert_eq!(Money::parse(input), Err(MoneyError::NotANumber(input.into())), "{input:?}");
        }
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

    /// How an amount was read before the shortcut (the derive this type had): a `Decimal`,
    /// rust_decimal's own reading of a string, then the checks.
    #[derive(Deserialize)]
    #[serde(try_from = "Decimal")]
    struct AsDecimal(Money);

    impl TryFrom<Decimal> for AsDecimal {
        type Error = MoneyError;
        fn try_from(value: Decimal) -> Result<Self, MoneyError> {
            Money::try_from(value).map(AsDecimal)
        }
    }

    fn read_as_decimal(json: &str) -> Result<Money, String> {
        serde_json::from_str::<AsDecimal>(json).map(|m| m.0).map_err(|e| e.to_string())
    }

    #[test]
    fn reading_an_amount_takes_the_same_inputs_and_gives_the_same_errors_as_a_decimal() {
        for json in [
            "\"1234.56\"",
            "\"0.00\"",
            "\"00.50\"",
            "\"1000000000000.00\"",
            "\"1000000000000.01\"",
            "\"9999999999999.99\"",
            "\"99999999999999.99\"",
            "\"1.5\"",
            "\"12\"",
            "\"1.234\"",
            "\"1.230\"",
            "\"-1.00\"",
            "\"-0.00\"",
            "\"+1.00\"",
            "\"1e3\"",
            "\" 1.00\"",
            "\"1.00 \"",
            "\".50\"",
            "\"1.\"",
            "\"1..00\"",
            "\"1.0a\"",
            "\"\"",
            "\"abc\"",
            "12.5",
            "12",
            "-3",
            "null",
            "[]",
        ] {
            let read = serde_json::from_str::<Money>(json).map_err(|e| e.to_string());
            let reference = read_as_decimal(json);
            assert_eq!(read, reference, "{json}");
            // Same value, same scale: what is written back is the same text.
            if let (Ok(a), Ok(b)) = (read, reference) {
                assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap(), "{json}");
            }
        }
    }

    #[test]
    fn sums_and_multiplies_to_the_cent() {
        let total: Money = [Money::euros(2_600_000), Money::euros(1_800_000)].iter().sum();
        assert_eq!(total, Money::euros(4_400_000));
        assert_eq!(Money::parse("125.10").unwrap().times(3), Money::cents(37_530));
    }
}
