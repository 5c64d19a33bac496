//! The rules that refuse a line, said in French with their figures, for the partner who
//! corrects the line. The rule keeps its name in the domain (`EnvelopeExceeded`) so that
//! the report can be read against the code and the API's error codes.

use crate::Refusal;
use domain::Money;
use serde_json::{Map, Value};
use store::HandleError;
use usecases::StepError;

/// An amount as a French reader writes it: `1 234,56 €`.
pub fn euros(m: &Money) -> String {
    let text = format!("{:.2}", m.amount());
    let (int, dec) = text.split_once('.').unwrap_or((&text, "00"));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            grouped.push(' ');
        }
        grouped.push(c);
    }
    format!("{grouped},{dec} €")
}

/// A date as a French reader writes it: `15/03/2021`.
pub fn date(d: &chrono::NaiveDate) -> String {
    d.format("%d/%m/%Y").to_string()
}

/// Turns a domain error into the rule's name, its figures and a French sentence.
pub trait French: serde::Serialize + std::fmt::Display {
    fn french(&self) -> Option<String>;
}

pub fn refusal<E: French>(e: &E) -> Refusal {
    let mut figures = match serde_json::to_value(e) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let rule = figures.remove("rule").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| "Règle".into());
    // A rule not translated yet still says what it is, with its figures.
    let message = e.french().unwrap_or_else(|| format!("règle {rule} : {e}"));
    Refusal { rule, message, figures: Value::Object(figures) }
}

pub fn step<E: French>(e: StepError<E>) -> Refusal {
    match e {
        StepError::Domain(e) => refusal(&e),
        StepError::Convention(e) => refusal(&e),
        StepError::Session(e) => refusal(&e),
        StepError::Disbursement(e) => refusal(&e),
        StepError::Missing { field, message } => missing(field, &message),
        StepError::Conflict { attempts } => Refusal::new(
            "Conflit",
            format!(
                "d'autres écritures ont modifié ces données pendant la décision ({attempts} essais) : importez le fichier à nouveau"
            ),
        ),
        StepError::CommandIdReused(id) => Refusal::new(
            "IdentifiantRéutilisé",
            format!("l'identifiant de commande {id} a déjà servi pour un autre contenu"),
        ),
        StepError::Store(e) => Refusal::new("ErreurJournal", format!("le journal n'a pas pu écrire la ligne : {e}")),
    }
}

pub fn handle<E: French>(e: HandleError<E>) -> Refusal {
    match e {
        HandleError::Domain(e) => refusal(&e),
        HandleError::Conflict { attempts, .. } => step::<E>(StepError::Conflict { attempts }),
        HandleError::CommandIdReused(id) => step::<E>(StepError::CommandIdReused(id)),
        HandleError::Store(e) => step::<E>(StepError::Store(e)),
    }
}

/// A fact the decision needs that the log does not hold.
fn missing(field: &str, detail: &str) -> Refusal {
    let message = match field {
        "structureId" => {
            "la structure n'est pas enregistrée : importez-la d'abord (fichier des structures)".to_string()
        }
        "purchaseId" => "aucun achat de formation n'a cette référence : importez l'achat d'abord".to_string(),
        "sessionId" => {
            "aucune session Aidants Connect ouverte n'a cette référence : importez la session d'abord".into()
        }
        "conventionId" if detail.contains("envelope") => {
            "la convention n'a pas d'enveloppe de ce type à laquelle imputer la dépense".into()
        }
        "conventionId" => "la convention n'est pas signée (ou n'existe pas) : elle n'a pas de barème".into(),
        _ => format!("donnée absente du journal ({field}) : {detail}"),
    };
    let mut figures = Map::new();
    figures.insert("field".into(), Value::String(field.into()));
    Refusal { rule: "Absent".into(), message, figures: Value::Object(figures) }
}

/// The English word of an action in a state error, in French.
fn action(a: &str) -> String {
    match a {
        "approved" => "accordé",
        "attended" | "recorded" => "pointé (présence)",
        "paid" => "payé",
        "cancelled" => "annulé(e)",
        "validated" => "validée",
        "refused" => "refusée",
        "registered to a session" => "inscrite à une session",
        "completed" | "trained" => "marquée formée",
        "habilitated" => "habilitée",
        "revoked" => "révoquée",
        other => other,
    }
    .to_string()
}

fn state<T: serde::Serialize>(s: &T) -> String {
    let raw = serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    match raw.as_str() {
        "REQUESTED" => "demandé(e)",
        "APPROVED" => "accordé",
        "ATTENDED" => "présence enregistrée",
        "PAID" => "payé(e)",
        "CANCELLED" => "annulé(e)",
        "ELIGIBILITY_VALIDATED" => "éligibilité validée",
        "REGISTERED_TO_TRAINING" => "inscrite en formation",
        "TRAINING_COMPLETED" => "formation suivie",
        "HABILITATED" => "habilitée",
        "REVOKED" => "révoquée",
        "REFUSED" => "refusée",
        "SUBMITTED" => "déposée",
        "ASSOCIATION" => "association",
        "CCAS_CIAS" => "CCAS ou CIAS",
        "COMMUNE_OR_EPCI" => "commune ou EPCI",
        "DEPARTEMENT" => "département",
        "PRIVATE_COMPANY" => "entreprise privée",
        "OTHER" => "autre",
        other => return other.to_lowercase(),
    }
    .to_string()
}

impl French for domain::convention::ConventionError {
    fn french(&self) -> Option<String> {
        use domain::convention::ConventionError as E;
        Some(match self {
            E::NotFound => "aucune convention n'a ce code".into(),
            E::Closed { code } => format!("la convention {code} est close : elle n'accepte plus rien"),
            E::EnvelopeExceeded { envelope, available, requested, .. } => format!(
                "enveloppe dépassée : l'enveloppe « {envelope} » a {} disponibles, {} demandés",
                euros(available),
                euros(requested)
            ),
            E::OutsidePeriod { date: d, start, end } => {
                format!("le {} est hors de la période de la convention (du {} au {})", date(d), date(start), date(end))
            }
            E::OutsideTerritory { departement } => {
                format!("le département {} est hors du territoire de la convention", departement.as_str())
            }
            E::ReferenceAlreadyCommitted { reference } => format!("des fonds sont déjà engagés pour {reference}"),
            E::UnknownReference { reference } => format!("aucun engagement pour {reference}"),
            E::ReleaseExceedsUnused { reference, releasable, requested } => {
                format!("{reference} : on ne peut libérer que {}, {} demandés", euros(releasable), euros(requested))
            }
            E::ServiceDoneExceedsCommitted { reference, remaining, requested } => format!(
                "{reference} : le service fait dépasserait l'engagement ({} restants, {} demandés)",
                euros(remaining),
                euros(requested)
            ),
            E::PaymentExceedsServiceDone { reference, payable, requested } => format!(
                "{reference} : le paiement dépasserait le service fait ({} payables, {} demandés)",
                euros(payable),
                euros(requested)
            ),
            E::DatedBefore { what, date: d, earlier, earlier_date } => format!(
                "{} ({}) ne peut pas précéder {} ({})",
                step_fr(what),
                date(d),
                step_fr(earlier),
                date(earlier_date)
            ),
            _ => return None,
        })
    }
}

/// No import line writes the money between ANCT and a partner: its rules keep their
/// English sentence, with the rule's name and figures.
impl French for domain::disbursement::DisbursementError {
    fn french(&self) -> Option<String> {
        None
    }
}

impl French for domain::structure::StructureError {
    fn french(&self) -> Option<String> {
        use domain::structure::StructureError as E;
        Some(match self {
            E::AlreadyRegistered { siret } => format!("la structure de SIRET {siret} est déjà enregistrée"),
            E::MissingField { .. } => "le nom de la structure est vide".into(),
        })
    }
}

impl French for domain::purchase::PurchaseError {
    fn french(&self) -> Option<String> {
        use domain::purchase::PurchaseError as E;
        Some(match self {
            E::NotFound => "aucun achat n'a cette référence : la ligne « demande » doit venir d'abord".into(),
            E::AlreadyRequested => {
                "cet achat est déjà demandé (une autre ligne « demande » porte cette référence)".into()
            }
            E::NoBlock => "pas de bloc, pas de financement : indiquez les blocs du référentiel couverts (1 à 9)".into(),
            E::DuplicateBlock { block } => format!("le bloc {} est cité deux fois", block.number()),
            E::Zero { field } => format!("{} doit valoir au moins 1", field_fr(field)),
            E::MissingField { field } => format!("{} est vide", field_fr(field)),
            E::InvalidCertification { code } => {
                format!("« {code} » n'est pas un code RNCP ou RS (par exemple RNCP34587 ou RS5477)")
            }
            E::SessionEndsBeforeStart { start, end } => {
                format!("la session finit ({}) avant de commencer ({})", date(end), date(start))
            }
            E::WrongState { state: s, action: a } => {
                format!("l'achat est à l'état « {} » : il ne peut pas être {} maintenant", state(s), action(a))
            }
            E::MorePresentThanRegistered { present, registered } => {
                format!("{present} stagiaires présents pour {registered} inscrits")
            }
            E::PrivateEmployersOnly { structure_kind } => format!(
                "le canal de l'OPCO finance les employeurs privés : cette structure est de type {}",
                state(structure_kind)
            ),
            #[allow(unreachable_patterns)]
            _ => return None,
        })
    }
}

impl French for domain::pix::PixError {
    fn french(&self) -> Option<String> {
        use domain::pix::PixError as E;
        Some(match self {
            E::NotFound => "aucune campagne Pix n'a cette référence : importez la campagne d'abord".into(),
            E::AlreadyOpen => "cette campagne est déjà ouverte".into(),
            E::Zero { field } => format!("{} doit valoir au moins 1", field_fr(field)),
            E::ScoreOverMax { score } => format!("un score Pix est sur 1 024 pix, pas {score}"),
            E::MissingCandidate => "la référence du candidat est vide".into(),
            E::AllUsed { bought } => format!("les {bought} certifications achetées sont toutes utilisées"),
            E::PersonalData { looks_like, .. } => format!(
                "la référence du candidat ressemble à {} : donnez une référence pseudonyme, jamais de coordonnées ni de NIR",
                looks_like.french()
            ),
            E::AlreadyCertified { candidate } => {
                format!("le candidat {candidate} est déjà certifié dans cette campagne")
            }
        })
    }
}

impl French for domain::ccas::CcasError {
    fn french(&self) -> Option<String> {
        use domain::ccas::CcasError as E;
        Some(match self {
            E::AlreadyRecorded => "cette action est déjà enregistrée".into(),
            E::NotACcas { kind } => format!(
                "les actions CCAS sont menées par un CCAS ou un CIAS ; cette structure est de type {}",
                state(kind)
            ),
            E::NobodyTrained => "une action forme au moins un agent ou un cadre".into(),
            E::NoBlock => "pas de bloc, pas de financement : indiquez les blocs du référentiel couverts (1 à 9)".into(),
            E::ZeroCost => "le coût doit être supérieur à 0 €".into(),
            E::MissingTitle => "l'intitulé est vide".into(),
            #[allow(unreachable_patterns)]
            _ => return None,
        })
    }
}

impl French for domain::aidants::SessionError {
    fn french(&self) -> Option<String> {
        use domain::aidants::SessionError as E;
        Some(match self {
            E::NotFound => "aucune session n'a cette référence".into(),
            E::AlreadyOpen => "cette session est déjà ouverte".into(),
            E::Zero { field } => format!("{} doit valoir au moins 1", field_fr(field)),
            E::Full { capacity } => format!("la session est complète : {capacity} places, toutes prises"),
        })
    }
}

impl French for domain::aidants::HabilitationError {
    fn french(&self) -> Option<String> {
        use domain::aidants::HabilitationError as E;
        Some(match self {
            E::NotFound => {
                "aucune demande d'habilitation pour cet aidant : la ligne « demande » doit venir d'abord".into()
            }
            E::AlreadyActive { state: s } => {
                format!("cet aidant a déjà une demande d'habilitation en cours dans cette structure ({})", state(s))
            }
            E::WrongState { state: s, action: a } => {
                format!("l'habilitation est à l'état « {} » : elle ne peut pas être {} maintenant", state(s), action(a))
            }
            E::NoCompletedTraining => "pas de formation suivie, pas d'habilitation".into(),
            E::PersonalData { looks_like, .. } => format!(
                "la référence de l'aidant ressemble à {} : donnez une référence pseudonyme, jamais de coordonnées ni de NIR",
                looks_like.french()
            ),
            E::MissingField { field } => format!("{} est vide", field_fr(field)),
        })
    }
}

impl French for domain::claim::ClaimError {
    fn french(&self) -> Option<String> {
        use domain::claim::ClaimError as E;
        Some(match self {
            E::AlreadySubmitted => "ce stagiaire a déjà une demande pour cette formation".into(),
            E::PersonalData { looks_like, .. } => format!(
                "la référence du stagiaire ressemble à {} : donnez une référence pseudonyme, jamais de coordonnées ni de NIR",
                looks_like.french()
            ),
            E::NoAttendance => {
                "aucune présence n'est enregistrée pour cette formation : les demandes s'ouvrent ensuite".into()
            }
            E::NotTheBuyer => "seule la structure qui a acheté la formation peut en demander les frais annexes".into(),
            E::MoreClaimsThanTrainees { present } => {
                format!("{present} stagiaires étaient présents et chacun a déjà sa demande")
            }
            E::DeadlinePassed { session_end, deadline, days } => format!(
                "le délai de dépôt était le {} ({days} jours après la fin de la session le {})",
                date(deadline),
                date(session_end)
            ),
            E::BeforeSessionEnd { submitted_on, session_end } => format!(
                "une demande ne peut pas être déposée ({}) avant la fin de la session ({})",
                date(submitted_on),
                date(session_end)
            ),
            E::MissingField { field } => format!("{} est vide", field_fr(field)),
            E::NoLine => "une demande porte au moins une dépense".into(),
            E::MissingReceipt { line } => format!("dépense {line} : la référence du justificatif est requise"),
            E::ZeroQuantity { line } => format!("dépense {line} : la quantité doit valoir au moins 1"),
            E::ZeroAmount { line } => format!("dépense {line} : le montant doit être supérieur à 0 €"),
            E::MissingArea { line } => format!("dépense {line} : une nuit doit préciser sa zone"),
            E::AreaNotANight { line } => format!("dépense {line} : la zone ne s'applique qu'aux nuits"),
            E::WrongState { state: s, action: a } => {
                format!("la demande est à l'état « {} » : elle ne peut pas être {} maintenant", state(s), action(a))
            }
            _ => return None,
        })
    }
}

/// The convention's steps named in a dating rule, in French.
fn step_fr(step: &str) -> String {
    match step {
        "the commitment" => "l'engagement",
        "the envelope's allocation" => "l'allocation de l'enveloppe",
        "the release" => "la libération des fonds",
        "the service done" => "le service fait",
        "the payment" => "le paiement",
        "the service done it pays" => "le service fait qu'il paie",
        "the allocation" => "l'allocation",
        "the convention's signature" => "la signature de la convention",
        other => other,
    }
    .to_string()
}

/// The domain's English field names, in French.
fn field_fr(field: &str) -> String {
    match field.trim_start_matches("the ") {
        "hours" => "le nombre d'heures",
        "trainees" => "le nombre de stagiaires",
        "unit cost" | "unit_cost" => "le coût unitaire",
        "provider" => "l'organisme de formation",
        "title" => "l'intitulé",
        "the reason" | "reason" => "le motif",
        "aidant reference" => "la référence de l'aidant",
        "capacity" => "la capacité",
        "seat cost" => "le coût par place",
        "certifications" => "le nombre de certifications",
        "unit price" => "le prix unitaire",
        "trainee" => "la référence du stagiaire",
        other => return other.to_string(),
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_dates_read_as_in_france() {
        assert_eq!(euros(&Money::parse("1234567.5").unwrap()), "1 234 567,50 €");
        assert_eq!(euros(&Money::parse("125").unwrap()), "125,00 €");
        assert_eq!(euros(&Money::parse("0.05").unwrap()), "0,05 €");
        assert_eq!(date(&"2021-03-15".parse().unwrap()), "15/03/2021");
    }

    #[test]
    fn a_refusal_names_the_rule_and_keeps_its_figures() {
        let e = domain::convention::ConventionError::EnvelopeExceeded {
            envelope_id: domain::EnvelopeId::for_name(domain::ConventionId::for_code("C"), "e"),
            envelope: "Formations certifiantes".into(),
            available: Money::parse("100").unwrap(),
            requested: Money::parse("1500").unwrap(),
        };
        let r = refusal(&e);
        assert_eq!(r.rule, "EnvelopeExceeded");
        assert_eq!(
            r.message,
            "enveloppe dépassée : l'enveloppe « Formations certifiantes » a 100,00 € disponibles, 1 500,00 € demandés"
        );
        assert_eq!(r.figures["requested"], "1500.00");
    }
}
