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

/// A calendar date, `YYYY-MM-DD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateScalar(pub NaiveDate);

#[Scalar(name = "Date")]
impl ScalarType for DateScalar {
    fn parse(value: Value) -> InputValueResult<Self> {
        let refused = |shown: String| {
            InputValueError::custom(format!("{shown} is not a date: expected YYYY-MM-DD, such as \"2021-03-15\""))
                .with_extension("code", codes::BAD_USER_INPUT)
        };
        match value {
            Value::String(s) => {
                NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map(DateScalar).map_err(|_| refused(format!("\"{s}\"")))
            }
            other => Err(refused(other.to_string())),
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
