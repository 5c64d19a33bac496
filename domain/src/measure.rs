//! The register of the plan's measures: the report's axes and measures for each public
//! (e.g. médiateurs, mesure 1.2 "Inciter les employeurs…"), their lead body, their status
//! (proposed → launched → done) with dates, and the convention whose figures show their
//! progress. ANCT keeps it with commands, so the comité sees where each measure is.

use crate::aggregate::{Aggregate, DomainEvent};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The publics the report's action plans address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Public {
    /// Les médiateurs numériques.
    Mediators,
    /// Les travailleurs sociaux.
    SocialWorkers,
    /// Les agents publics en charge de l'accueil, l'information, l'orientation et l'appui aux démarches.
    PublicAgents,
}

impl Public {
    /// The stream key: `med-1.2`, `ts-3.1`, `agents-2.3`.
    pub fn prefix(self) -> &'static str {
        match self {
            Public::Mediators => "med",
            Public::SocialWorkers => "ts",
            Public::PublicAgents => "agents",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MeasureStatus {
    Proposed,
    Launched,
    Done,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MeasureCommand {
    Register(RegisterMeasure),
    Launch { launched_on: NaiveDate },
    Complete { done_on: NaiveDate },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterMeasure {
    pub public: Public,
    /// The measure's number in the report, `1.2`; its axis is the part before the point.
    pub number: String,
    pub title: String,
    /// Who leads it, as the register keeper writes it (`ANCT avec Uniformation`).
    pub lead: String,
    /// The convention whose figures show its progress, when there is one.
    pub convention_code: Option<String>,
    pub registered_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MeasureEvent {
    MeasureRegistered(RegisterMeasure),
    MeasureLaunched { launched_on: NaiveDate },
    MeasureDone { done_on: NaiveDate },
}

impl DomainEvent for MeasureEvent {
    fn event_type(&self) -> &'static str {
        match self {
            MeasureEvent::MeasureRegistered(_) => "MeasureRegistered",
            MeasureEvent::MeasureLaunched { .. } => "MeasureLaunched",
            MeasureEvent::MeasureDone { .. } => "MeasureDone",
        }
    }

    fn business_date(&self) -> NaiveDate {
        match self {
            MeasureEvent::MeasureRegistered(r) => r.registered_on,
            MeasureEvent::MeasureLaunched { launched_on } => *launched_on,
            MeasureEvent::MeasureDone { done_on } => *done_on,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "rule", rename_all_fields = "camelCase")]
pub enum MeasureError {
    #[error("this measure is already in the register")]
    AlreadyRegistered,
    #[error("no such measure in the register: register it first")]
    NotRegistered,
    #[error("`{number}` is not a measure number: expected the report's, such as 1.2")]
    BadNumber { number: String },
    #[error("the title must not be empty")]
    MissingTitle,
    #[error("the lead body must not be empty")]
    MissingLead,
    #[error("the measure is already launched (on {launched_on})")]
    AlreadyLaunched { launched_on: NaiveDate },
    #[error("a measure is launched before it is done")]
    NotLaunched,
    #[error("the measure is already done (on {done_on})")]
    AlreadyDone { done_on: NaiveDate },
    #[error("{what} dated {date} precedes {earlier} dated {earlier_date}")]
    DatedBefore { what: &'static str, date: NaiveDate, earlier: &'static str, earlier_date: NaiveDate },
}

/// One measure of the register.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Measure {
    pub registered: Option<RegisterMeasure>,
    pub launched_on: Option<NaiveDate>,
    pub done_on: Option<NaiveDate>,
}

impl Measure {
    /// The stream id of a measure: `measure-med-1.2`.
    pub fn stream(public: Public, number: &str) -> String {
        format!("{}-{}-{}", Self::CATEGORY, public.prefix(), number.trim())
    }

    pub fn status(&self) -> MeasureStatus {
        match (self.launched_on, self.done_on) {
            (_, Some(_)) => MeasureStatus::Done,
            (Some(_), None) => MeasureStatus::Launched,
            _ => MeasureStatus::Proposed,
        }
    }
}

/// `1.2`, `2.3`: an axis and a measure, each a small number.
fn valid_number(number: &str) -> bool {
    let mut parts = number.split('.');
    let ok =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()));
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

impl Aggregate for Measure {
    type Command = MeasureCommand;
    type Event = MeasureEvent;
    type Error = MeasureError;
    const CATEGORY: &'static str = "measure";

    fn decide(&self, command: &MeasureCommand) -> Result<Vec<MeasureEvent>, MeasureError> {
        match command {
            MeasureCommand::Register(r) => {
                if self.registered.is_some() {
                    return Err(MeasureError::AlreadyRegistered);
                }
                let number = r.number.trim();
                if !valid_number(number) {
                    return Err(MeasureError::BadNumber { number: r.number.clone() });
                }
                if r.title.trim().is_empty() {
                    return Err(MeasureError::MissingTitle);
                }
                if r.lead.trim().is_empty() {
                    return Err(MeasureError::MissingLead);
                }
                Ok(vec![MeasureEvent::MeasureRegistered(RegisterMeasure {
                    public: r.public,
                    number: number.into(),
                    title: r.title.trim().into(),
                    lead: r.lead.trim().into(),
                    convention_code: r.convention_code.as_ref().map(|c| c.trim().to_string()).filter(|c| !c.is_empty()),
                    registered_on: r.registered_on,
                })])
            }
            MeasureCommand::Launch { launched_on } => {
                let registered = self.registered.as_ref().ok_or(MeasureError::NotRegistered)?;
                if let Some(done_on) = self.done_on {
                    return Err(MeasureError::AlreadyDone { done_on });
                }
                if let Some(launched_on) = self.launched_on {
                    return Err(MeasureError::AlreadyLaunched { launched_on });
                }
                if *launched_on < registered.registered_on {
                    return Err(MeasureError::DatedBefore {
                        what: "the launch",
                        date: *launched_on,
                        earlier: "the registration",
                        earlier_date: registered.registered_on,
                    });
                }
                Ok(vec![MeasureEvent::MeasureLaunched { launched_on: *launched_on }])
            }
            MeasureCommand::Complete { done_on } => {
                self.registered.as_ref().ok_or(MeasureError::NotRegistered)?;
                if let Some(done_on) = self.done_on {
                    return Err(MeasureError::AlreadyDone { done_on });
                }
                let launched_on = self.launched_on.ok_or(MeasureError::NotLaunched)?;
                if *done_on < launched_on {
                    return Err(MeasureError::DatedBefore {
                        what: "the completion",
                        date: *done_on,
                        earlier: "the launch",
                        earlier_date: launched_on,
                    });
                }
                Ok(vec![MeasureEvent::MeasureDone { done_on: *done_on }])
            }
        }
    }

    fn evolve(&mut self, event: &MeasureEvent) {
        match event {
            MeasureEvent::MeasureRegistered(r) => self.registered = Some(r.clone()),
            MeasureEvent::MeasureLaunched { launched_on } => self.launched_on = Some(*launched_on),
            MeasureEvent::MeasureDone { done_on } => self.done_on = Some(*done_on),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn register() -> RegisterMeasure {
        RegisterMeasure {
            public: Public::Mediators,
            number: " 1.2 ".into(),
            title: "Inciter les employeurs de médiateurs numériques à renforcer la formation".into(),
            lead: "ANCT avec Uniformation".into(),
            convention_code: Some("ANCT-UNIFORMATION-2021".into()),
            registered_on: date("2021-01-15"),
        }
    }

    fn registered() -> MeasureEvent {
        MeasureEvent::MeasureRegistered(RegisterMeasure { number: "1.2".into(), ..register() })
    }

    #[test]
    fn a_measure_is_registered_with_its_number_trimmed_and_starts_proposed() {
        given::<Measure>([]).when(MeasureCommand::Register(register())).then([registered()]);
        assert_eq!(Measure::fold(&[registered()]).status(), MeasureStatus::Proposed);
        assert_eq!(Measure::stream(Public::Mediators, "1.2"), "measure-med-1.2");
    }

    #[test]
    fn a_measure_needs_a_report_number_a_title_and_a_lead() {
        for bad in ["12", "1.", ".2", "1.2.3", "a.b", "123.1"] {
            let mut r = register();
            r.number = bad.into();
            given::<Measure>([])
                .when(MeasureCommand::Register(r))
                .then_err(MeasureError::BadNumber { number: bad.into() });
        }
        let mut r = register();
        r.title = "  ".into();
        given::<Measure>([]).when(MeasureCommand::Register(r)).then_err(MeasureError::MissingTitle);
        let mut r = register();
        r.lead = String::new();
        given::<Measure>([]).when(MeasureCommand::Register(r)).then_err(MeasureError::MissingLead);
        given::<Measure>([registered()])
            .when(MeasureCommand::Register(register()))
            .then_err(MeasureError::AlreadyRegistered);
    }

    #[test]
    fn a_measure_is_launched_once_not_before_it_was_registered() {
        let launch = |d: &str| MeasureCommand::Launch { launched_on: date(d) };
        given::<Measure>([]).when(launch("2021-03-15")).then_err(MeasureError::NotRegistered);
        given::<Measure>([registered()])
            .when(launch("2021-03-15"))
            .then([MeasureEvent::MeasureLaunched { launched_on: date("2021-03-15") }]);
        given::<Measure>([registered()]).when(launch("2020-12-31")).then_err(MeasureError::DatedBefore {
            what: "the launch",
            date: date("2020-12-31"),
            earlier: "the registration",
            earlier_date: date("2021-01-15"),
        });
        given::<Measure>([registered(), MeasureEvent::MeasureLaunched { launched_on: date("2021-03-15") }])
            .when(launch("2021-04-01"))
            .then_err(MeasureError::AlreadyLaunched { launched_on: date("2021-03-15") });
    }

    #[test]
    fn a_measure_is_done_after_its_launch_and_once() {
        let done = |d: &str| MeasureCommand::Complete { done_on: date(d) };
        let launched = MeasureEvent::MeasureLaunched { launched_on: date("2021-03-15") };
        given::<Measure>([registered()]).when(done("2022-12-31")).then_err(MeasureError::NotLaunched);
        given::<Measure>([registered(), launched.clone()]).when(done("2021-03-01")).then_err(
            MeasureError::DatedBefore {
                what: "the completion",
                date: date("2021-03-01"),
                earlier: "the launch",
                earlier_date: date("2021-03-15"),
            },
        );
        let finished = MeasureEvent::MeasureDone { done_on: date("2022-12-31") };
        given::<Measure>([registered(), launched.clone()]).when(done("2022-12-31")).then([finished.clone()]);
        let history = [registered(), launched, finished];
        assert_eq!(Measure::fold(&history).status(), MeasureStatus::Done);
        given::<Measure>(history.clone())
            .when(done("2023-01-01"))
            .then_err(MeasureError::AlreadyDone { done_on: date("2022-12-31") });
        given::<Measure>(history)
            .when(MeasureCommand::Launch { launched_on: date("2023-01-01") })
            .then_err(MeasureError::AlreadyDone { done_on: date("2022-12-31") });
    }
}
