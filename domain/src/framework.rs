//! The national competency framework (Annex 1 of the plan's report) and the target
//! professions. Trainings must say which blocks they cover: no block, no funding.

use serde::{Deserialize, Serialize};

/// The 9 blocks of the competency framework, numbered as in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompetencyBlock {
    DigitalCulture,
    LegalFrameworkEthics,
    WelcomeDiagnoseRefer,
    DigitalPedagogyAutonomy,
    MediationSpace,
    OnlineAdministrativeProcedures,
    DigitalSocialWork,
    DigitalInclusionStakes,
    TerritorialStrategy,
}

impl CompetencyBlock {
    pub const ALL: [CompetencyBlock; 9] = [
        Self::DigitalCulture,
        Self::LegalFrameworkEthics,
        Self::WelcomeDiagnoseRefer,
        Self::DigitalPedagogyAutonomy,
        Self::MediationSpace,
        Self::OnlineAdministrativeProcedures,
        Self::DigitalSocialWork,
        Self::DigitalInclusionStakes,
        Self::TerritorialStrategy,
    ];

    /// The block's number in Annex 1 (1 to 9).
    pub fn number(self) -> u8 {
        Self::ALL.iter().position(|b| *b == self).expect("listed") as u8 + 1
    }

    pub fn from_number(n: u8) -> Option<Self> {
        Self::ALL.get(usize::from(n).checked_sub(1)?).copied()
    }

    /// The title as the report gives it (French).
    pub fn title(self) -> &'static str {
        match self {
            Self::DigitalCulture => "Fondamentaux de la culture numérique",
            Self::LegalFrameworkEthics => "Cadre juridique, éthique et déontologie",
            Self::WelcomeDiagnoseRefer => "Accueillir, diagnostiquer et orienter",
            Self::DigitalPedagogyAutonomy => "Pédagogie du numérique et accompagnement vers l'autonomie",
            Self::MediationSpace => "Développer et animer un espace de médiation numérique",
            Self::OnlineAdministrativeProcedures => "Démarches administratives en ligne et leur accompagnement",
            Self::DigitalSocialWork => "Le numérique comme levier du travail social",
            Self::DigitalInclusionStakes => "Comprendre les enjeux de l'inclusion numérique",
            Self::TerritorialStrategy => "Construire une stratégie territoriale d'inclusion numérique",
        }
    }

    /// Blocks 1 to 3 are common to every métier.
    pub fn is_common(self) -> bool {
        self.number() <= 3
    }
}

/// The professions the plan trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Metier {
    MediateurNumerique,
    TravailleurSocial,
    /// Agent d'accueil: spécialiste, polyvalent, or secrétaire de mairie.
    AgentAccueil,
    /// Manager of any of the above.
    Cadre,
}

impl Metier {
    pub const ALL: [Metier; 4] = [Self::MediateurNumerique, Self::TravailleurSocial, Self::AgentAccueil, Self::Cadre];

    pub fn label(self) -> &'static str {
        match self {
            Self::MediateurNumerique => "médiateur numérique",
            Self::TravailleurSocial => "travailleur social",
            Self::AgentAccueil => "agent d'accueil",
            Self::Cadre => "cadre",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_numbered_one_to_nine_as_in_annex_1() {
        for (i, b) in CompetencyBlock::ALL.iter().enumerate() {
            assert_eq!(usize::from(b.number()), i + 1);
            assert_eq!(CompetencyBlock::from_number(b.number()), Some(*b));
        }
        assert_eq!(CompetencyBlock::from_number(0), None);
        assert_eq!(CompetencyBlock::from_number(10), None);
        assert_eq!(CompetencyBlock::ALL.iter().filter(|b| b.is_common()).count(), 3);
    }
}
