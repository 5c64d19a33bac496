//! Territories by their official INSEE codes: 101 départements, 18 régions.
//!
//! The lists are shipped in the crate (`data/*.csv`, with their provenance line) and read
//! once from memory, so parsing a code needs no file and no network. Codes are strings:
//! `2A`, `2B`, `971` are not numbers.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::sync::OnceLock;

const DEPARTEMENTS_CSV: &str = include_str!("../data/departements.csv");
const REGIONS_CSV: &str = include_str!("../data/regions.csv");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TerritoryError {
    #[error("`{0}` is not a département code (expected an INSEE code such as \"75\", \"2A\" or \"971\")")]
    UnknownDepartement(String),
    #[error("`{0}` is not a région code (expected an INSEE code such as \"11\" or \"84\")")]
    UnknownRegion(String),
}

/// One département of the official list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departement {
    pub code: String,
    pub region: String,
    pub name: String,
}

/// One région of the official list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub code: String,
    pub name: String,
}

struct Reference {
    departements: Vec<Departement>,
    regions: Vec<Region>,
}

/// Data rows of a shipped CSV: skips the provenance comment and the header.
fn rows(csv: &str) -> impl Iterator<Item = Vec<&str>> {
    csv.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).skip(1).map(|l| l.split(',').collect())
}

fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| Reference {
        // Columns: DEP,REG,CHEFLIEU,TNCC,NCC,NCCENR,LIBELLE
        departements: rows(DEPARTEMENTS_CSV)
            .map(|c| Departement { code: c[0].into(), region: c[1].into(), name: c[6].into() })
            .collect(),
        // Columns: REG,CHEFLIEU,TNCC,NCC,NCCENR,LIBELLE
        regions: rows(REGIONS_CSV).map(|c| Region { code: c[0].into(), name: c[5].into() }).collect(),
    })
}

/// Every département, in INSEE order.
pub fn departements() -> &'static [Departement] {
    &reference().departements
}

/// Every région, in INSEE order.
pub fn regions() -> &'static [Region] {
    &reference().regions
}

/// A département known to INSEE.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct DepartementCode(String);

impl DepartementCode {
    /// Accepts the official code, case-insensitively for Corsica (`2a` → `2A`).
    pub fn parse(input: &str) -> Result<Self, TerritoryError> {
        let code = input.trim().to_uppercase();
        departements()
            .iter()
            .any(|d| d.code == code)
            .then_some(Self(code))
            .ok_or_else(|| TerritoryError::UnknownDepartement(input.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn entry(&self) -> &'static Departement {
        departements().iter().find(|d| d.code == self.0).expect("a parsed code is in the list")
    }

    pub fn name(&self) -> &'static str {
        &self.entry().name
    }

    pub fn region(&self) -> RegionCode {
        RegionCode(self.entry().region.clone())
    }
}

/// A région known to INSEE.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RegionCode(String);

impl RegionCode {
    pub fn parse(input: &str) -> Result<Self, TerritoryError> {
        let code = input.trim().to_string();
        regions()
            .iter()
            .any(|r| r.code == code)
            .then_some(Self(code))
            .ok_or_else(|| TerritoryError::UnknownRegion(input.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn name(&self) -> &'static str {
        &regions().iter().find(|r| r.code == self.0).expect("a parsed code is in the list").name
    }

    pub fn departements(&self) -> Vec<DepartementCode> {
        departements().iter().filter(|d| d.region == self.0).map(|d| DepartementCode(d.code.clone())).collect()
    }
}

/// Codes read back from the log are checked again: a log written by a future list must
/// fail loudly rather than invent a territory.
impl<'de> Deserialize<'de> for DepartementCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for RegionCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for DepartementCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ships_the_official_lists() {
        assert_eq!(departements().len(), 101);
        assert_eq!(regions().len(), 18);
        // Every département belongs to a listed région.
        for d in departements() {
            assert!(RegionCode::parse(&d.region).is_ok(), "{} has unknown région {}", d.code, d.region);
        }
    }

    #[test]
    fn corsica_and_overseas_codes_are_strings() {
        let corse_du_sud = DepartementCode::parse("2a").unwrap();
        assert_eq!(corse_du_sud.as_str(), "2A");
        assert_eq!(corse_du_sud.region().name(), "Corse");
        let guadeloupe = DepartementCode::parse("971").unwrap();
        assert_eq!(guadeloupe.name(), "Guadeloupe");
        assert_eq!(guadeloupe.region().as_str(), "01");
        assert_eq!(DepartementCode::parse("75").unwrap().region().name(), "Île-de-France");
    }

    #[test]
    fn unknown_codes_are_refused() {
        assert_eq!(DepartementCode::parse("20"), Err(TerritoryError::UnknownDepartement("20".into())));
        assert!(DepartementCode::parse("1").is_err(), "INSEE writes 01, not 1");
        assert!(DepartementCode::parse("975").is_err());
        assert!(RegionCode::parse("99").is_err());
    }

    #[test]
    fn a_region_lists_its_departements() {
        let bretagne = RegionCode::parse("53").unwrap();
        let codes: Vec<_> = bretagne.departements().iter().map(|d| d.as_str().to_string()).collect();
        assert_eq!(codes, ["22", "29", "35", "56"]);
    }

    #[test]
    fn codes_read_from_json_are_checked() {
        assert!(serde_json::from_str::<DepartementCode>("\"2B\"").is_ok());
        assert!(serde_json::from_str::<DepartementCode>("\"96\"").is_err());
    }
}
