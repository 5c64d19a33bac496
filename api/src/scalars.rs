//! Scalars with the errors our users need: money only as strings (a JSON number would go
//! through floating point and lose cents), dates only as `YYYY-MM-DD`.

use crate::errors::codes;
use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::NaiveDate;
use domain::Money;

/// An amount in euros, as a string with at most two decimals: `"4400000"`, `"125.50"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MoneyScalar(pub Money);

#[Scalar(name = "Money")]
impl ScalarType for MoneyScalar {
    fn parse(value: Value) -> InputValueResult<Self> {
        let refused = |msg: String| InputValueError::custom(msg).with_extension("code", codes::BAD_USER_INPUT);
        match value {
            Value::String(s) => Money::parse(&s).map(MoneyScalar).map_err(|e| refused(e.to_string())),
            Value::Number(n) => Err(refused(format!(
                "amounts must be sent as strings, such as \"{n}\": a JSON number goes through floating point and may lose cents"
            ))),
            other => Err(refused(format!("{other} is not an amount: send a string such as \"1234.56\""))),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.amount().to_string())
    }
}

/// The business dates the tracker accepts: ours, wide enough for any convention of the
/// plan and its successors, narrow enough to refuse a typo such as year 0 or 20021.
pub const FIRST_DATE: NaiveDate = NaiveDate::from_ymd_opt(2000, 1, 1).expect("a date");
pub const LAST_DATE: NaiveDate = NaiveDate::from_ymd_opt(2100, 12, 31).expect("a date");

/// A calendar date, exactly `YYYY-MM-DD` (four-digit year, two-digit month and day),
/// from [`FIRST_DATE`] to [`LAST_DATE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateScalar(pub NaiveDate);

impl DateScalar {
    /// Parses a date of an input, or says what is wrong with it.
    pub fn parse_str(s: &str) -> Result<NaiveDate, String> {
        let shape = s.len() == 10
            && s.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
        let date = shape
            .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .flatten()
            .ok_or_else(|| format!("\"{s}\" is not a date: expected YYYY-MM-DD, such as \"2021-03-15\""))?;
        if !(FIRST_DATE..=LAST_DATE).contains(&date) {
            return Err(format!("{date} is outside the dates the tracker accepts ({FIRST_DATE} to {LAST_DATE})"));
        }
        Ok(date)
    }
}

#[Scalar(name = "Date")]
impl ScalarType for DateScalar {
    fn parse(value: Value) -> InputValueResult<Self> {
        let refused = |message: String| InputValueError::custom(message).with_extension("code", codes::BAD_USER_INPUT);
        match value {
            Value::String(s) => DateScalar::parse_str(&s).map(DateScalar).map_err(refused),
            other => Err(refused(format!("{other} is not a date: expected YYYY-MM-DD, such as \"2021-03-15\""))),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.format("%Y-%m-%d").to_string())
    }
}

impl From<Money> for MoneyScalar {
    fn from(m: Money) -> Self {
        MoneyScalar(m)
    }
}

impl From<NaiveDate> for DateScalar {
    fn from(d: NaiveDate) -> Self {
        DateScalar(d)
    }
}
