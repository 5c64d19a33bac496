//! Employer structures (associations, CCAS, communes, small companies…) that employ the
//! médiateurs and aidants the plan trains. A structure is identified by its SIRET, so it
//! can be registered only once.

use crate::aggregate::{Aggregate, DomainEvent};
use crate::ids::TRACKER_NAMESPACE;
use crate::territory::DepartementCode;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// A structure's id, derived from its SIRET.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StructureId(pub Uuid);

impl StructureId {
    pub fn for_siret(siret: &Siret) -> Self {
        Self(Uuid::new_v5(&TRACKER_NAMESPACE, format!("structure:{}", siret.0).as_bytes()))
    }

    pub fn parse(input: &str) -> Result<Self, crate::ids::IdError> {
        Uuid::parse_str(input.trim())
            .map(Self)
            .map_err(|_| crate::ids::IdError { kind: "structure", input: input.to_string() })
    }
}

impl fmt::Display for StructureId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a SIRET is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "reason", rename_all_fields = "camelCase")]
pub enum SiretError {
    #[error("`{siret}` is not a SIRET: it must have exactly 14 digits")]
    NotFourteenDigits { siret: String },
    #[error("`{siret}` is not a valid SIRET: its check digit is wrong (Luhn)")]
    BadCheckDigit { siret: String },
    #[error("`{siret}` is not a valid La Poste SIRET: the sum of its digits must be a multiple of 5")]
    BadLaPosteSum { siret: String },
    #[error(
        "`{siret}` is not a SIRET: no company has the SIREN 000 000 000 (it passes the check digit only by being all zeros)"
    )]
    ZeroSiren { siret: String },
}

/// A SIRET (SIREN + NIC), checked: 14 digits, Luhn — except La Poste's establishments
/// (SIREN 356 000 000), whose digits must add up to a multiple of 5, as INSEE rules.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Siret(String);

const LA_POSTE_SIREN: &str = "356000000";

impl Siret {
    /// Accepts spaces between digit groups (`123 456 789 00012`).
    pub fn parse(input: &str) -> Result<Self, SiretError> {
        let digits: String = input.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.len() != 14 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SiretError::NotFourteenDigits { siret: input.to_string() });
        }
        let values: Vec<u32> = digits.bytes().map(|b| u32::from(b - b'0')).collect();
        if values[..9].iter().all(|d| *d == 0) {
            return Err(SiretError::ZeroSiren { siret: digits });
        }
        if digits.starts_with(LA_POSTE_SIREN) {
            if values.iter().sum::<u32>() % 5 != 0 {
                return Err(SiretError::BadLaPosteSum { siret: digits });
            }
        } else if !luhn(&values) {
            return Err(SiretError::BadCheckDigit { siret: digits });
        }
        Ok(Siret(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SIREN: the legal unit the establishment belongs to.
    pub fn siren(&self) -> &str {
        &self.0[..9]
    }
}

impl<'de> Deserialize<'de> for Siret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Siret::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Luhn over the 14 digits: from the right, every second digit doubled (minus 9 if over 9).
fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d })
        .sum();
    sum.is_multiple_of(10)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StructureKind {
    Association,
    CcasCias,
    CommuneOrEpci,
    Departement,
    PrivateCompany,
    Other,
}

impl StructureKind {
    /// Public-sector employers: their agents train through the CNFPT (territorial civil
    /// servants) or, for CCAS, the UNCCAS convention — not through an OPCO. `Other` is
    /// taken as private (an employer the other kinds do not name: a foundation, a mutual).
    pub fn is_public(self) -> bool {
        matches!(self, StructureKind::CcasCias | StructureKind::CommuneOrEpci | StructureKind::Departement)
    }

    /// How messages name the kind.
    pub fn label(self) -> &'static str {
        match self {
            StructureKind::Association => "an association",
            StructureKind::CcasCias => "a CCAS or CIAS",
            StructureKind::CommuneOrEpci => "a commune or EPCI",
            StructureKind::Departement => "a département",
            StructureKind::PrivateCompany => "a private company",
            StructureKind::Other => "another employer",
        }
    }
}

/// Head-count bands. Which bands count as "small" is a term of each convention (our
/// default: under 50 employees; see `annex::AnnexCaps::is_small`) — the plan names the
/// smallest private structures' barrier, not a threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HeadCount {
    /// 0 to 9 employees.
    Micro,
    /// 10 to 49.
    Small,
    /// 50 to 249.
    Medium,
    /// 250 and more.
    Large,
}

impl HeadCount {
    /// Under our default threshold (50 employees); a convention may set another.
    pub fn is_small(self) -> bool {
        crate::annex::AnnexCaps::ours().is_small(self)
    }

    /// The most employees the band holds; `None` for the open-ended one.
    pub fn max_employees(self) -> Option<u32> {
        match self {
            HeadCount::Micro => Some(9),
            HeadCount::Small => Some(49),
            HeadCount::Medium => Some(249),
            HeadCount::Large => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegisterStructure {
    pub name: String,
    pub siret: Siret,
    pub kind: StructureKind,
    /// The département of the structure's commune.
    pub departement: DepartementCode,
    pub head_count: HeadCount,
    pub registered_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "command")]
pub enum StructureCommand {
    Register(RegisterStructure),
}

impl StructureCommand {
    pub fn structure_id(&self) -> StructureId {
        match self {
            StructureCommand::Register(c) => StructureId::for_siret(&c.siret),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StructureRegistered {
    pub structure_id: StructureId,
    pub name: String,
    pub siret: Siret,
    pub kind: StructureKind,
    pub departement: DepartementCode,
    pub head_count: HeadCount,
    pub registered_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum StructureEvent {
    StructureRegistered(StructureRegistered),
}

impl DomainEvent for StructureEvent {
    fn event_type(&self) -> &'static str {
        match self {
            StructureEvent::StructureRegistered(_) => "StructureRegistered",
        }
    }

    fn business_date(&self) -> NaiveDate {
        match self {
            StructureEvent::StructureRegistered(e) => e.registered_on,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "rule", rename_all_fields = "camelCase")]
pub enum StructureError {
    #[error("the structure with SIRET {siret} is already registered")]
    AlreadyRegistered { siret: String },
    #[error("{field} must not be empty")]
    MissingField { field: &'static str },
}

/// The decision state of one structure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Structure(pub Option<StructureRegistered>);

impl Aggregate for Structure {
    type Command = StructureCommand;
    type Event = StructureEvent;
    type Error = StructureError;
    const CATEGORY: &'static str = "structure";

    fn decide(&self, command: &StructureCommand) -> Result<Vec<StructureEvent>, StructureError> {
        let StructureCommand::Register(c) = command;
        if let Some(existing) = &self.0 {
            return Err(StructureError::AlreadyRegistered { siret: existing.siret.as_str().to_string() });
        }
        if c.name.trim().is_empty() {
            return Err(StructureError::MissingField { field: "name" });
        }
        Ok(vec![StructureEvent::StructureRegistered(StructureRegistered {
            structure_id: StructureId::for_siret(&c.siret),
            name: c.name.trim().to_string(),
            siret: c.siret.clone(),
            kind: c.kind,
            departement: c.departement.clone(),
            head_count: c.head_count,
            registered_on: c.registered_on,
        })])
    }

    fn evolve(&mut self, event: &StructureEvent) {
        let StructureEvent::StructureRegistered(e) = event;
        self.0 = Some(e.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    // A real, valid SIRET shape: Luhn over 14 digits.
    const SIRET: &str = "73282932000074";

    fn register(siret: &str, name: &str) -> StructureCommand {
        StructureCommand::Register(RegisterStructure {
            name: name.into(),
            siret: Siret::parse(siret).unwrap(),
            kind: StructureKind::CcasCias,
            departement: DepartementCode::parse("29").unwrap(),
            head_count: HeadCount::Small,
            registered_on: "2021-04-01".parse().unwrap(),
        })
    }

    #[test]
    fn a_siret_has_14_digits_and_a_luhn_check_digit() {
        assert!(Siret::parse(SIRET).is_ok());
        assert_eq!(Siret::parse("732 829 320 00074").unwrap().as_str(), SIRET, "spaces are allowed");
        assert_eq!(Siret::parse(SIRET).unwrap().siren(), "732829320");
        assert!(matches!(Siret::parse("73282932000075"), Err(SiretError::BadCheckDigit { .. })));
        assert!(matches!(Siret::parse("7328293200007"), Err(SiretError::NotFourteenDigits { .. })));
        assert!(matches!(Siret::parse("7328293200007A"), Err(SiretError::NotFourteenDigits { .. })));
    }

    #[test]
    fn a_siret_of_the_zero_siren_is_refused_though_its_check_digit_passes() {
        for siret in ["00000000000000", "00000000012345", "000000000 00018"] {
            assert!(matches!(Siret::parse(siret), Err(SiretError::ZeroSiren { .. })), "{siret}");
        }
    }

    #[test]
    fn la_poste_sirets_follow_their_own_rule() {
        // 3+5+6+4+8 = 26: not a multiple of 5.
        assert!(matches!(Siret::parse("35600000000048"), Err(SiretError::BadLaPosteSum { .. })));
        // 3+5+6+1 = 15: a multiple of 5.
        assert!(Siret::parse("35600000000001").is_ok());
        // That one fails Luhn, which La Poste's rule replaces.
        let values: Vec<u32> = "35600000000001".bytes().map(|b| u32::from(b - b'0')).collect();
        assert!(!luhn(&values));
    }

    #[test]
    fn registering_records_the_structure_under_an_id_derived_from_its_siret() {
        let events = given::<Structure>([]).when(register(SIRET, "CCAS de Brest")).events();
        let StructureEvent::StructureRegistered(e) = &events[0];
        assert_eq!(e.structure_id, StructureId::for_siret(&Siret::parse(SIRET).unwrap()));
        assert_eq!(e.departement.as_str(), "29");
    }

    #[test]
    fn a_structure_is_registered_once() {
        let first = given::<Structure>([]).when(register(SIRET, "CCAS de Brest")).events();
        given::<Structure>(first)
            .when(register(SIRET, "CCAS de Brest (bis)"))
            .then_err(StructureError::AlreadyRegistered { siret: SIRET.into() });
    }

    #[test]
    fn a_structure_has_a_name() {
        given::<Structure>([]).when(register(SIRET, " ")).then_err(StructureError::MissingField { field: "name" });
    }

    #[test]
    fn small_structures_are_under_fifty() {
        assert!(HeadCount::Micro.is_small() && HeadCount::Small.is_small());
        assert!(!HeadCount::Medium.is_small() && !HeadCount::Large.is_small());
    }
}
