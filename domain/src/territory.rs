//! Territories by their official INSEE codes: 101 départements, 18 régions.
//!
//! The lists are shipped in the crate (`data/*.csv`, with their provenance line) and read
//! once from memory, so parsing a code needs no file and no network. Codes are strings:
//! `2A`, `2B`, `971` are not numbers.

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

const DEPARTEMENTS_CSV: &str = include_str!("../data/departements.csv");
const REGIONS_CSV: &str = include_str!("../data/regions.csv");
const POPULATIONS_CSV: &str = include_str!("../data/populations.csv");

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
    /// Population municipale (INSEE, see `data/populations.csv`): figures per inhabitant.
    pub population: u64,
}

/// One région of the official list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub code: String,
    pub name: String,
    /// The sum of its départements' populations.
    pub population: u64,
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
    REFERENCE.get_or_init(|| {
        // Columns: DEP,POPULATION
        let populations: HashMap<&str, u64> =
            rows(POPULATIONS_CSV).map(|c| (c[0], c[1].parse().expect("a shipped population is a number"))).collect();
        // Columns: DEP,REG,CHEFLIEU,TNCC,NCC,NCCENR,LIBELLE
        let departements: Vec<Departement> = rows(DEPARTEMENTS_CSV)
            .map(|c| Departement {
                code: c[0].into(),
                region: c[1].into(),
                name: c[6].into(),
                population: populations[c[0]],
            })
            .collect();
        // Columns: REG,CHEFLIEU,TNCC,NCC,NCCENR,LIBELLE
        let regions = rows(REGIONS_CSV)
            .map(|c| Region {
                code: c[0].into(),
                name: c[5].into(),
                population: departements.iter().filter(|d| d.region == c[0]).map(|d| d.population).sum(),
            })
            .collect();
        Reference { departements, regions }
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

/// The département with this exact code: a lookup, since every event with a territory
/// asks (a scan of the list took 0.3 to 0.6 µs, more than the rest of the event's decoding).
fn find_departement(code: &str) -> Option<&'static Departement> {
    static INDEX: OnceLock<HashMap<&'static str, &'static Departement>> = OnceLock::new();
    INDEX.get_or_init(|| departements().iter().map(|d| (d.code.as_str(), d)).collect()).get(code).copied()
}

fn find_region(code: &str) -> Option<&'static Region> {
    static INDEX: OnceLock<HashMap<&'static str, &'static Region>> = OnceLock::new();
    INDEX.get_or_init(|| regions().iter().map(|r| (r.code.as_str(), r)).collect()).get(code).copied()
}

/// `input` trimmed and in capitals, without allocating for the short codes INSEE uses.
fn normalized<'a>(input: &'a str, buffer: &'a mut [u8; 8]) -> Option<&'a str> {
    let trimmed = input.trim();
    if !trimmed.bytes().any(|b| b.is_ascii_lowercase()) {
        return Some(trimmed);
    }
    let out = buffer.get_mut(..trimmed.len())?;
    out.copy_from_slice(trimmed.as_bytes());
    out.make_ascii_uppercase();
    std::str::from_utf8(out).ok()
}

/// A département known to INSEE. Borrows its code from the shipped list: copying one
/// costs nothing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct DepartementCode(&'static str);

impl DepartementCode {
    /// Accepts the official code, case-insensitively for Corsica (`2a` → `2A`).
    pub fn parse(input: &str) -> Result<Self, TerritoryError> {
        normalized(input, &mut [0; 8])
            .and_then(find_departement)
            .map(|d| Self(d.code.as_str()))
            .ok_or_else(|| TerritoryError::UnknownDepartement(input.to_string()))
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }

    fn entry(&self) -> &'static Departement {
        find_departement(self.0).expect("a parsed code is in the list")
    }

    pub fn name(&self) -> &'static str {
        &self.entry().name
    }

    pub fn region(&self) -> RegionCode {
        RegionCode(self.entry().region.as_str())
    }

    /// Its population municipale (INSEE), to compare territories per inhabitant.
    pub fn population(&self) -> u64 {
        self.entry().population
    }
}

/// A région known to INSEE. Borrows its code from the shipped list, as [`DepartementCode`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RegionCode(&'static str);

impl RegionCode {
    pub fn parse(input: &str) -> Result<Self, TerritoryError> {
        find_region(input.trim())
            .map(|r| Self(r.code.as_str()))
            .ok_or_else(|| TerritoryError::UnknownRegion(input.to_string()))
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }

    pub fn name(&self) -> &'static str {
        &find_region(self.0).expect("a parsed code is in the list").name
    }

    /// Its population municipale: the sum of its départements'.
    pub fn population(&self) -> u64 {
        find_region(self.0).expect("a parsed code is in the list").population
    }

    pub fn departements(&self) -> Vec<DepartementCode> {
        departements().iter().filter(|d| d.region == self.0).map(|d| DepartementCode(d.code.as_str())).collect()
    }
}

/// Codes read back from the log are checked again: a log written by a future list must
/// fail loudly rather than invent a territory.
impl<'de> Deserialize<'de> for DepartementCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(CodeVisitor(DepartementCode::parse))
    }
}

impl<'de> Deserialize<'de> for RegionCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(CodeVisitor(RegionCode::parse))
    }
}

/// Parses the code from the text as the deserializer has it, without copying it first.
struct CodeVisitor<T>(fn(&str) -> Result<T, TerritoryError>);

impl<T> serde::de::Visitor<'_> for CodeVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(v).map_err(E::custom)
    }
}

impl fmt::Display for DepartementCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
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
    fn every_territory_has_its_population_and_a_region_is_the_sum_of_its_departements() {
        assert!(departements().iter().all(|d| d.population > 0), "every département has a population");
        assert_eq!(DepartementCode::parse("75").unwrap().population(), 2_103_778);
        assert_eq!(DepartementCode::parse("976").unwrap().population(), 256_518);
        let bretagne = RegionCode::parse("53").unwrap();
        let sum: u64 = bretagne.departements().iter().map(|d| d.population()).sum();
        assert_eq!(bretagne.population(), sum);
        let france: u64 = regions().iter().map(|r| r.population).sum();
        assert_eq!(france, departements().iter().map(|d| d.population).sum::<u64>());
        assert!((60_000_000..75_000_000).contains(&france), "{france}");
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

    #[test]
    fn every_code_reads_back_from_json_as_written_borrowed_or_owned() {
        for d in departements() {
            let code = DepartementCode::parse(&d.code).unwrap();
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", d.code));
            assert_eq!(serde_json::from_str::<DepartementCode>(&json).unwrap(), code);
            let lower = serde_json::Value::String(format!(" {} ", d.code.to_lowercase()));
            assert_eq!(serde_json::from_value::<DepartementCode>(lower).unwrap(), code);
            assert!(code.region().departements().contains(&code), "{} is in its région", d.code);
        }
        for r in regions() {
            let code = RegionCode::parse(&r.code).unwrap();
            assert_eq!(serde_json::from_str::<RegionCode>(&serde_json::to_string(&code).unwrap()).unwrap(), code);
            assert_eq!(code.name(), r.name);
        }
        let not_a_string = serde_json::from_str::<DepartementCode>("75").unwrap_err().to_string();
        assert_eq!(not_a_string, "invalid type: integer `75`, expected a string at line 1 column 2");
        let unknown = serde_json::from_str::<DepartementCode>("\"2c\"").unwrap_err().to_string();
        assert!(unknown.starts_with("`2c` is not a département code"), "{unknown}");
        // Codes order as their text, as they did when they were owned strings.
        let (ain, corse, guadeloupe) = ("01", "2A", "971");
        let mut codes: Vec<_> = [guadeloupe, corse, ain].iter().map(|c| DepartementCode::parse(c).unwrap()).collect();
        codes.sort();
        assert_eq!(codes.iter().map(DepartementCode::as_str).collect::<Vec<_>>(), [ain, corse, guadeloupe]);
    }
}
