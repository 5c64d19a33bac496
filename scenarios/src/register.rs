//! The register of the plan's measures as the report states them
//! (`shared/seeds/001_…`: three publics, their axes and measures), seeded in both demo
//! scenarios. The lead is ANCT, with the partner the report names for the measure's
//! lever; a measure whose partner convention the demo signs is launched on the day it is
//! signed (the demo's date), the others stay proposed.

use crate::seeding::{Command, Step};
use domain::CommandId;
use domain::ids::TRACKER_NAMESPACE;
use domain::measure::{Measure, MeasureCommand, Public, RegisterMeasure};
use uuid::Uuid;

/// (public, number, title, lead, convention whose figures show its progress).
const MEASURES: &[(Public, &str, &str, &str, Option<&str>)] = &[
    (Public::Mediators, "1.1", "Accélérer la formation au métier de médiateur numérique", "ANCT", None),
    (
        Public::Mediators,
        "1.2",
        "Inciter les employeurs de médiateurs numériques à renforcer la formation professionnelle continue de leurs salariés",
        "ANCT avec Uniformation",
        Some("ANCT-UNIFORMATION-2021"),
    ),
    (
        Public::Mediators,
        "2.1",
        "Promouvoir un cadre de référence des compétences des médiateurs numériques",
        "ANCT",
        None,
    ),
    (
        Public::Mediators,
        "3.1",
        "Certifier les compétences professionnelles des médiateurs numériques",
        "ANCT avec Pix",
        Some("ANCT-PIX-2021"),
    ),
    (Public::Mediators, "3.2", "Structurer la filière de la médiation numérique", "ANCT avec la DGEFP", None),
    (
        Public::SocialWorkers,
        "1.1",
        "Faire de l'inclusion numérique une ambition partagée par l'ensemble des collectivités",
        "ANCT",
        None,
    ),
    (
        Public::SocialWorkers,
        "1.2",
        "Elargir le plan national de formation des travailleurs sociaux à la thématique du premier accueil social inconditionnel de proximité",
        "ANCT",
        None,
    ),
    (
        Public::SocialWorkers,
        "1.3",
        "Inciter les CCAS à former leurs travailleurs sociaux et plus largement leurs agents et leur encadrement aux enjeux et pratiques de l'inclusion numérique",
        "ANCT avec l'UNCCAS",
        Some("ANCT-UNCCAS-2021"),
    ),
    (
        Public::SocialWorkers,
        "1.4",
        "Former les aidants aux enjeux liés à la manipulation de données personnelles d'utilisateurs et au RGPD lorsqu'ils sont en posture de « faire à la place de »",
        "ANCT (Aidants Connect)",
        Some("ANCT-AIDANTS-CONNECT-2021"),
    ),
    (
        Public::SocialWorkers,
        "2.1",
        "Promouvoir un cadre de référence des compétences des travailleurs sociaux dans le champ de l'inclusion numérique",
        "ANCT",
        None,
    ),
    (
        Public::SocialWorkers,
        "2.2",
        "Accélérer la production par le CNFPT de formations professionnelles continues « travail social et numérique »",
        "ANCT avec le CNFPT",
        None,
    ),
    (
        Public::SocialWorkers,
        "3.1",
        "Certifier les compétences numériques des travailleurs sociaux",
        "ANCT avec Pix",
        Some("ANCT-PIX-2021"),
    ),
    (
        Public::PublicAgents,
        "1.1",
        "Faire de l'inclusion numérique une ambition partagée par l'ensemble des collectivités",
        "ANCT",
        None,
    ),
    (
        Public::PublicAgents,
        "1.2",
        "S'appuyer sur le déploiement des nouveaux engagements de qualité des services publics pour développer la formation des agents à l'accompagnement des usagers sur l'utilisation des services en ligne",
        "ANCT",
        None,
    ),
    (
        Public::PublicAgents,
        "1.3",
        "Elargir le plan national de formation des travailleurs sociaux à la thématique du premier accueil social inconditionnel de proximité",
        "ANCT",
        None,
    ),
    (
        Public::PublicAgents,
        "2.1",
        "Promouvoir un cadre national de référence des compétences des agents d'accueil et de leur encadrement dans le champ de l'inclusion numérique",
        "ANCT",
        None,
    ),
    (
        Public::PublicAgents,
        "2.2",
        "Accélérer la production par le CNFPT de formations « inclusion numérique » à destination des agents en charge de l'accueil, l'information, l'orientation et l'appui aux démarches",
        "ANCT avec le CNFPT",
        None,
    ),
    (
        Public::PublicAgents,
        "2.3",
        "Favoriser l'intégration d'un volet « inclusion numérique » dans l'offre régionale de formation à destination des secrétaires de mairie",
        "ANCT",
        None,
    ),
    (
        Public::PublicAgents,
        "3.1",
        "Certifier les compétences numériques des agents en charge de l'accueil, l'information, l'orientation et l'appui aux démarches",
        "ANCT avec Pix",
        Some("ANCT-PIX-2021"),
    ),
];

/// The day the demo's conventions are signed: the register is opened then, and the
/// measures their conventions carry are launched.
const OPENED_ON: &str = "2021-03-15";

fn id(n: usize, what: &str) -> CommandId {
    CommandId(Uuid::new_v5(&TRACKER_NAMESPACE, format!("demo:register:{what}:{n}").as_bytes()))
}

/// The register's steps, as ANCT sends them.
pub(crate) fn steps() -> Vec<Step> {
    let on = OPENED_ON.parse().expect("a date");
    let mut steps = Vec::new();
    for (n, (public, number, title, lead, convention)) in MEASURES.iter().enumerate() {
        let stream = Measure::stream(*public, number);
        let register = MeasureCommand::Register(RegisterMeasure {
            public: *public,
            number: (*number).into(),
            title: (*title).into(),
            lead: (*lead).into(),
            convention_code: convention.map(str::to_string),
            registered_on: on,
        });
        steps.push(Step {
            who: api::Role::Anct,
            id: id(n, "register"),
            label: format!("register measure {stream}"),
            command: Command::Measure { stream: stream.clone(), command: register },
        });
        if convention.is_some() {
            steps.push(Step {
                who: api::Role::Anct,
                id: id(n, "launch"),
                label: format!("launch measure {stream}"),
                command: Command::Measure { stream, command: MeasureCommand::Launch { launched_on: on } },
            });
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_register_holds_the_reports_nineteen_measures_each_once() {
        assert_eq!(MEASURES.len(), 19);
        let mut streams: Vec<String> = MEASURES.iter().map(|(p, n, ..)| Measure::stream(*p, n)).collect();
        streams.sort();
        streams.dedup();
        assert_eq!(streams.len(), 19);
        // Every step is a command the register accepts (in order, from nothing).
        let launched = MEASURES.iter().filter(|m| m.4.is_some()).count();
        assert_eq!(steps().len(), 19 + launched);
    }
}
