//! The kinds of file the partners send, their columns (the published templates), and how
//! one line becomes one typed command sent through its use case — the same the GraphQL
//! API calls. A line is one command: one atomic append, or nothing.

use crate::cells::{Cells, reference_id};
use crate::{Refusal, french};
use chrono::NaiveDate;
use domain::aidants::{HabilitationCommand, HabilitationId, Means, SessionCommand, SessionId, TrainingSession};
use domain::annex::{ExpenseKind, StayArea};
use domain::ccas::{CcasActionId, RecordCcasAction};
use domain::claim::{ClaimId, ExpenseLine};
use domain::framework::{CompetencyBlock, Metier};
use domain::pix::{CampaignId, PixCommand, PixPublic};
use domain::purchase::{PurchaseCommand, PurchaseId, RequestPurchase};
use domain::structure::{HeadCount, RegisterStructure, Structure, StructureCommand, StructureId, StructureKind};
use domain::{CommandMeta, ConventionId, Money};
use serde::{Deserialize, Serialize};
use store::handler::stream_name;
use usecases::UseCases;
use usecases::programmes::AnnexClaimRequest;

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Structures,
    Purchases,
    AidantsSessions,
    Habilitations,
    PixCampaigns,
    PixCertifications,
    CcasActions,
    AnnexClaims,
}

/// A column of a template: its French header, what it holds, an example.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Column {
    pub header: &'static str,
    pub help: &'static str,
    pub example: &'static str,
}

const fn col(header: &'static str, help: &'static str, example: &'static str) -> Column {
    Column { header, help, example }
}

// Column names, shared by the templates and the parsers.
const SIRET: &str = "SIRET";
const DATE: &str = "Date";
const STEP: &str = "Étape";
const CONVENTION: &str = "Convention";
const REASON: &str = "Motif";
const BLOCKS: &str = "Blocs";
const TITLE: &str = "Intitulé";
const PURCHASE: &str = "Référence achat";
const SESSION: &str = "Référence session";
const CAMPAIGN: &str = "Référence campagne";

const STRUCTURES: &[Column] = &[
    col(SIRET, "14 chiffres (espaces admis)", "732 829 320 00074"),
    col("Nom", "nom de la structure", "CCAS de Brest"),
    col("Type", "association, CCAS/CIAS, commune/EPCI, département, entreprise privée ou autre", "CCAS/CIAS"),
    col("Département", "code INSEE du département de la commune (01, 2A, 971…)", "29"),
    col("Effectif", "0-9, 10-49, 50-249, 250+ ou le nombre de salariés", "10-49"),
    col("Date d'enregistrement", "AAAA-MM-JJ ou JJ/MM/AAAA", "01/04/2021"),
];

const PURCHASES: &[Column] = &[
    col(PURCHASE, "référence de l'achat chez l'OPCO (ou son identifiant dans le tracker)", "UNIF-2021-0042"),
    col(STEP, "demande, accord, présence, paiement ou annulation", "demande"),
    col(DATE, "date de l'étape", "15/03/2021"),
    col(CONVENTION, "demande : code de la convention", "ANCT-UNIFORMATION-2021"),
    col(SIRET, "demande : SIRET de la structure qui achète (enregistrée)", "73282932000074"),
    col("Organisme de formation", "demande", "Les Bons Clics"),
    col(TITLE, "demande : intitulé de la formation", "Accompagner les démarches en ligne"),
    col("Certification", "demande, facultatif : code RNCP ou RS d'une formation certifiante", "RS5477"),
    col(BLOCKS, "demande : blocs du référentiel couverts, 1 à 9", "1, 2, 6"),
    col("Métier", "demande : médiateur numérique, travailleur social, agent d'accueil ou cadre", "agent d'accueil"),
    col("Heures", "demande : durée en heures", "35"),
    col("Stagiaires", "demande : nombre de stagiaires inscrits", "10"),
    col("Coût unitaire", "demande : coût par stagiaire, en euros", "1 200,00"),
    col("Début de session", "demande", "03/05/2021"),
    col("Fin de session", "demande", "07/05/2021"),
    col("Présents", "présence : nombre de stagiaires présents", "9"),
    col(REASON, "annulation : motif", "session reportée"),
];

const SESSIONS: &[Column] = &[
    col(SESSION, "référence de la session chez Aidants Connect", "AC-2021-0107"),
    col(CONVENTION, "code de la convention qui paie les places", "ANCT-AIDANTS-CONNECT-2021"),
    col("Capacité", "nombre de places", "12"),
    col("Coût par place", "en euros", "125,00"),
    col(DATE, "date de la session", "20/04/2021"),
];

const HABILITATIONS: &[Column] = &[
    col(SIRET, "SIRET de la structure de l'aidant (enregistrée)", "73282932000074"),
    col("Référence aidant", "référence pseudonyme de l'aidant (aucun nom)", "AIDANT-0001"),
    col(STEP, "demande, éligibilité, inscription, formation, habilitation, refus, annulation ou révocation", "demande"),
    col(DATE, "date de l'étape", "01/04/2021"),
    col(SESSION, "inscription : référence de la session (ouverte)", "AC-2021-0107"),
    col("Moyen", "habilitation : carte ou application", "carte"),
    col(REASON, "refus, annulation, révocation : motif", "a quitté la structure"),
];

const PIX_CAMPAIGNS: &[Column] = &[
    col(CAMPAIGN, "référence de la campagne chez Pix", "PIX-2021-A"),
    col(CONVENTION, "code de la convention", "ANCT-PIX-2021"),
    col("Public", "conseillers et médiateurs, ou aidants numériques", "aidants numériques"),
    col("Certifications", "nombre de certifications achetées", "1500"),
    col("Prix unitaire", "en euros", "60,00"),
    col(DATE, "date d'ouverture", "01/06/2021"),
];

const PIX_CERTIFICATIONS: &[Column] = &[
    col(CAMPAIGN, "référence de la campagne (ouverte)", "PIX-2021-A"),
    col("Référence candidat", "référence pseudonyme du candidat (aucun nom)", "CAND-00017"),
    col(SIRET, "SIRET de la structure du candidat (enregistrée)", "73282932000074"),
    col("Score", "score Pix, sur 1 024", "512"),
    col(DATE, "date de la certification", "15/09/2021"),
];

const CCAS_ACTIONS: &[Column] = &[
    col("Référence action", "référence de l'action chez l'UNCCAS", "UNCCAS-2021-12"),
    col(CONVENTION, "code de la convention", "ANCT-UNCCAS-2021"),
    col(SIRET, "SIRET du CCAS ou CIAS (enregistré)", "73282932000074"),
    col(TITLE, "intitulé de l'action", "Inclusion numérique au guichet"),
    col("Agents", "agents formés", "8"),
    col("Cadres", "cadres formés", "2"),
    col(BLOCKS, "blocs du référentiel couverts, 1 à 9", "1, 3, 8"),
    col("Coût", "en euros", "4 500,00"),
    col(DATE, "date de l'action", "10/06/2021"),
];

const ANNEX_CLAIMS: &[Column] = &[
    col(PURCHASE, "référence de l'achat de la formation (ou son identifiant)", "UNIF-2021-0042"),
    col("Référence stagiaire", "référence pseudonyme du stagiaire (aucun nom)", "STAG-0003"),
    col("Date de dépôt", "date de la demande", "20/05/2021"),
    col("Transport en commun : billets", "nombre de billets (vide si aucun)", "2"),
    col("Transport en commun : montant", "en euros", "38,40"),
    col("Transport en commun : justificatif", "référence du justificatif", "SNCF-88412"),
    col("Voiture : km", "kilomètres (vide si aucun)", ""),
    col("Voiture : montant", "en euros", ""),
    col("Voiture : justificatif", "référence du justificatif", ""),
    col("Nuits : nombre", "nuits (vide si aucune)", "4"),
    col("Nuits : zone", "standard, grande ville ou Paris", "grande ville"),
    col("Nuits : montant", "en euros", "360,00"),
    col("Nuits : justificatif", "référence de la facture", "HOTEL-2021-551"),
    col("Repas : nombre", "repas (vide si aucun)", "5"),
    col("Repas : montant", "en euros", "75,00"),
    col("Repas : justificatif", "référence du justificatif", "NOTE-17"),
];

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Structures,
        Kind::Purchases,
        Kind::AidantsSessions,
        Kind::Habilitations,
        Kind::PixCampaigns,
        Kind::PixCertifications,
        Kind::CcasActions,
        Kind::AnnexClaims,
    ];

    /// The name on the command line and in the API's path.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Structures => "structures",
            Kind::Purchases => "purchases",
            Kind::AidantsSessions => "aidants-sessions",
            Kind::Habilitations => "habilitations",
            Kind::PixCampaigns => "pix-campaigns",
            Kind::PixCertifications => "pix-certifications",
            Kind::CcasActions => "ccas-actions",
            Kind::AnnexClaims => "annex-claims",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s.trim().to_lowercase())
    }

    /// What the report calls it.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Structures => "structures employeuses",
            Kind::Purchases => "achats de formation (demande, accord, présence, paiement, annulation)",
            Kind::AidantsSessions => "sessions de formation Aidants Connect",
            Kind::Habilitations => "étapes d'habilitation Aidants Connect",
            Kind::PixCampaigns => "campagnes de certification Pix",
            Kind::PixCertifications => "certifications Pix",
            Kind::CcasActions => "actions de formation des CCAS",
            Kind::AnnexClaims => "demandes de remboursement de frais annexes",
        }
    }

    pub fn columns(self) -> &'static [Column] {
        match self {
            Kind::Structures => STRUCTURES,
            Kind::Purchases => PURCHASES,
            Kind::AidantsSessions => SESSIONS,
            Kind::Habilitations => HABILITATIONS,
            Kind::PixCampaigns => PIX_CAMPAIGNS,
            Kind::PixCertifications => PIX_CERTIFICATIONS,
            Kind::CcasActions => CCAS_ACTIONS,
            Kind::AnnexClaims => ANNEX_CLAIMS,
        }
    }

    /// Parses one line into its command, or the reason it cannot be one.
    pub(crate) fn parse_line(self, c: &Cells) -> Result<Line, Refusal> {
        match self {
            Kind::Structures => structure(c),
            Kind::Purchases => purchase(c),
            Kind::AidantsSessions => session(c),
            Kind::Habilitations => habilitation(c),
            Kind::PixCampaigns => pix_campaign(c),
            Kind::PixCertifications => pix_certification(c),
            Kind::CcasActions => ccas(c),
            Kind::AnnexClaims => claim(c),
        }
    }
}

/// A purchase's steps, as the file names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
enum PurchaseStep {
    Request,
    Approve,
    Attendance,
    Payment,
    Cancel,
}

/// A habilitation's steps, as the file names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
enum HabilitationStep {
    Request,
    Validate,
    Register,
    Complete,
    Habilitate,
    Refuse,
    Cancel,
    Revoke,
}

/// What a line says, parsed: serialised, it is the line's normalised content (the same
/// whatever the column order, the format or the way a date or amount was written).
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "line")]
pub(crate) enum Line {
    Structure(RegisterStructure),
    PurchaseRequest(PurchaseRequestLine),
    Purchase(PurchaseCommand),
    Session(SessionCommand),
    HabilitationRequest {
        habilitation_id: HabilitationId,
        structure_id: StructureId,
        aidant: String,
        on: NaiveDate,
    },
    Registration {
        habilitation_id: HabilitationId,
        session_id: SessionId,
        on: NaiveDate,
    },
    Habilitation(HabilitationCommand),
    Pix(PixCommand),
    PixCertification {
        campaign_id: CampaignId,
        candidate: String,
        structure_id: StructureId,
        score: u16,
        on: NaiveDate,
    },
    Ccas(CcasLine),
    Claim {
        purchase_id: PurchaseId,
        trainee: String,
        lines: Vec<ExpenseLine>,
        submitted_on: NaiveDate,
    },
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct PurchaseRequestLine {
    purchase_id: PurchaseId,
    convention_id: ConventionId,
    structure_id: StructureId,
    provider: String,
    title: String,
    certification: Option<String>,
    blocks: Vec<CompetencyBlock>,
    metier: Metier,
    hours: u32,
    trainees: u32,
    unit_cost: Money,
    session_start: NaiveDate,
    session_end: NaiveDate,
    requested_on: NaiveDate,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct CcasLine {
    action_id: CcasActionId,
    convention_id: ConventionId,
    structure_id: StructureId,
    title: String,
    agents: u32,
    managers: u32,
    blocks: Vec<CompetencyBlock>,
    cost: Money,
    held_on: NaiveDate,
}

fn structure(c: &Cells) -> Result<Line, Refusal> {
    let kind = c.choice(
        "Type",
        "",
        &[
            (&["association"], StructureKind::Association),
            (&["CCAS/CIAS", "CCAS", "CIAS"], StructureKind::CcasCias),
            (&["commune/EPCI", "commune", "EPCI"], StructureKind::CommuneOrEpci),
            (&["département", "conseil départemental"], StructureKind::Departement),
            (&["entreprise privée", "entreprise"], StructureKind::PrivateCompany),
            (&["autre"], StructureKind::Other),
        ],
    )?;
    let head_count = {
        let v = c.required("Effectif", "")?;
        let digits: String = v.chars().filter(|c| !c.is_whitespace()).collect();
        match (digits.as_str(), digits.parse::<u32>()) {
            (_, Ok(n)) if n < 10 => HeadCount::Micro,
            (_, Ok(n)) if n < 50 => HeadCount::Small,
            (_, Ok(n)) if n < 250 => HeadCount::Medium,
            (_, Ok(_)) => HeadCount::Large,
            ("0-9", _) => HeadCount::Micro,
            ("10-49", _) => HeadCount::Small,
            ("50-249", _) => HeadCount::Medium,
            ("250+", _) => HeadCount::Large,
            _ => {
                return Err(Refusal::new(
                    "Format",
                    format!(
                        "colonne « Effectif » : « {v} » n'est pas 0-9, 10-49, 50-249, 250+ ni un nombre de salariés"
                    ),
                )
                .with("column", "Effectif"));
            }
        }
    };
    Ok(Line::Structure(RegisterStructure {
        name: c.text("Nom", "")?,
        siret: c.siret(SIRET)?,
        kind,
        departement: c.departement("Département")?,
        head_count,
        registered_on: c.date("Date d'enregistrement", "")?,
    }))
}

fn purchase(c: &Cells) -> Result<Line, Refusal> {
    use PurchaseStep as S;
    let purchase_id = PurchaseId(c.reference(PURCHASE, "purchase")?);
    let step = c.choice(
        STEP,
        "",
        &[
            (&["demande"], S::Request),
            (&["accord", "approbation"], S::Approve),
            (&["présence", "présences"], S::Attendance),
            (&["paiement"], S::Payment),
            (&["annulation"], S::Cancel),
        ],
    )?;
    let on = c.date(DATE, "")?;
    let why = match step {
        S::Request => "pour l'étape « demande »",
        S::Attendance => "pour l'étape « présence »",
        S::Cancel => "pour l'étape « annulation »",
        _ => "",
    };
    Ok(match step {
        S::Request => {
            let siret = c.siret(SIRET)?;
            let certification = Some(c.get("Certification").to_uppercase()).filter(|s| !s.is_empty());
            Line::PurchaseRequest(PurchaseRequestLine {
                purchase_id,
                convention_id: c.convention(CONVENTION, why)?,
                structure_id: StructureId::for_siret(&siret),
                provider: c.text("Organisme de formation", why)?,
                title: c.free_text(TITLE, why)?,
                certification,
                blocks: c.blocks(BLOCKS, why)?,
                metier: c.choice(
                    "Métier",
                    why,
                    &[
                        (&["médiateur numérique", "médiateur", "médiatrice numérique"], Metier::MediateurNumerique),
                        (&["travailleur social", "travailleuse sociale"], Metier::TravailleurSocial),
                        (&["agent d'accueil", "secrétaire de mairie"], Metier::AgentAccueil),
                        (&["cadre"], Metier::Cadre),
                    ],
                )?,
                hours: c.count("Heures", why)?,
                trainees: c.count("Stagiaires", why)?,
                unit_cost: c.money("Coût unitaire", why)?,
                session_start: c.date("Début de session", why)?,
                session_end: c.date("Fin de session", why)?,
                requested_on: on,
            })
        }
        S::Approve => Line::Purchase(PurchaseCommand::Approve { purchase_id, approved_on: on }),
        S::Attendance => Line::Purchase(PurchaseCommand::RecordAttendance {
            purchase_id,
            present: c.count("Présents", why)?,
            recorded_on: on,
        }),
        S::Payment => Line::Purchase(PurchaseCommand::RecordPayment { purchase_id, paid_on: on }),
        S::Cancel => {
            Line::Purchase(PurchaseCommand::Cancel { purchase_id, reason: c.free_text(REASON, why)?, cancelled_on: on })
        }
    })
}

fn session(c: &Cells) -> Result<Line, Refusal> {
    Ok(Line::Session(SessionCommand::Open {
        session_id: SessionId(c.reference(SESSION, "ac-session")?),
        convention_id: c.convention(CONVENTION, "")?,
        capacity: c.count("Capacité", "")?,
        seat_cost: c.money("Coût par place", "")?,
        held_on: c.date(DATE, "")?,
    }))
}

fn habilitation(c: &Cells) -> Result<Line, Refusal> {
    use HabilitationStep as S;
    let structure_id = StructureId::for_siret(&c.siret(SIRET)?);
    // The log records the aidant's opaque id, not the structure's reference.
    let aidant = c.person("Référence aidant", store::PersonKind::Aidant, &structure_id.0.to_string())?;
    let habilitation_id = HabilitationId::of(structure_id, &aidant);
    let step = c.choice(
        STEP,
        "",
        &[
            (&["demande"], S::Request),
            (&["éligibilité", "éligibilité validée", "validation"], S::Validate),
            (&["inscription"], S::Register),
            (&["formation", "formation suivie"], S::Complete),
            (&["habilitation"], S::Habilitate),
            (&["refus"], S::Refuse),
            (&["annulation"], S::Cancel),
            (&["révocation"], S::Revoke),
        ],
    )?;
    let on = c.date(DATE, "")?;
    let reason = |step: &str| c.free_text(REASON, &format!("pour l'étape « {step} »"));
    use HabilitationCommand as H;
    Ok(match step {
        S::Request => Line::HabilitationRequest { habilitation_id, structure_id, aidant, on },
        S::Validate => Line::Habilitation(H::ValidateEligibility { habilitation_id, on }),
        S::Register => Line::Registration {
            habilitation_id,
            session_id: SessionId(reference_id("ac-session", c.required(SESSION, "pour l'étape « inscription »")?)),
            on,
        },
        S::Complete => Line::Habilitation(H::CompleteTraining { habilitation_id, on }),
        S::Habilitate => Line::Habilitation(H::Habilitate {
            habilitation_id,
            means: c.choice(
                "Moyen",
                "pour l'étape « habilitation »",
                &[(&["carte"], Means::Card), (&["application", "app"], Means::App)],
            )?,
            on,
        }),
        S::Refuse => Line::Habilitation(H::Refuse { habilitation_id, reason: reason("refus")?, on }),
        S::Cancel => Line::Habilitation(H::Cancel { habilitation_id, reason: reason("annulation")?, on }),
        S::Revoke => Line::Habilitation(H::Revoke { habilitation_id, reason: reason("révocation")?, on }),
    })
}

fn pix_campaign(c: &Cells) -> Result<Line, Refusal> {
    Ok(Line::Pix(PixCommand::OpenCampaign {
        campaign_id: CampaignId(c.reference(CAMPAIGN, "pix-campaign")?),
        convention_id: c.convention(CONVENTION, "")?,
        public: c.choice(
            "Public",
            "",
            &[
                (
                    &["conseillers et médiateurs", "médiateurs", "conseillers numériques"],
                    PixPublic::ConseillersEtMediateurs,
                ),
                (&["aidants numériques", "aidants"], PixPublic::AidantsNumeriques),
            ],
        )?,
        certifications: c.count("Certifications", "")?,
        unit_price: c.money("Prix unitaire", "")?,
        opened_on: c.date(DATE, "")?,
    }))
}

fn pix_certification(c: &Cells) -> Result<Line, Refusal> {
    let score = c.count("Score", "")?;
    let campaign_id = CampaignId(c.reference(CAMPAIGN, "pix-campaign")?);
    Ok(Line::PixCertification {
        campaign_id,
        candidate: c.person("Référence candidat", store::PersonKind::Candidate, &campaign_id.0.to_string())?,
        structure_id: StructureId::for_siret(&c.siret(SIRET)?),
        // Above 1 024 is the domain's refusal (with its figure), not a format error.
        score: u16::try_from(score).unwrap_or(u16::MAX),
        on: c.date(DATE, "")?,
    })
}

fn ccas(c: &Cells) -> Result<Line, Refusal> {
    Ok(Line::Ccas(CcasLine {
        action_id: CcasActionId(c.reference("Référence action", "ccas-action")?),
        convention_id: c.convention(CONVENTION, "")?,
        structure_id: StructureId::for_siret(&c.siret(SIRET)?),
        title: c.free_text(TITLE, "")?,
        agents: c.count("Agents", "")?,
        managers: c.count("Cadres", "")?,
        blocks: c.blocks(BLOCKS, "")?,
        cost: c.money("Coût", "")?,
        held_on: c.date(DATE, "")?,
    }))
}

fn claim(c: &Cells) -> Result<Line, Refusal> {
    let purchase_id = PurchaseId(c.reference(PURCHASE, "purchase")?);
    let mut lines = Vec::new();
    let groups: [(&str, &str, ExpenseKind); 4] = [
        ("Transport en commun", "billets", ExpenseKind::PublicTransport),
        ("Voiture", "km", ExpenseKind::Car),
        ("Nuits", "nombre", ExpenseKind::Night),
        ("Repas", "nombre", ExpenseKind::Meal),
    ];
    for (group, quantity, kind) in groups {
        let (q, m, r) =
            (format!("{group} : {quantity}"), format!("{group} : montant"), format!("{group} : justificatif"));
        if c.get(&q).is_empty() && c.get(&m).is_empty() {
            continue;
        }
        let why = format!("pour une dépense « {group} »");
        let area = if kind == ExpenseKind::Night {
            Some(c.choice(
                "Nuits : zone",
                &why,
                &[
                    (&["standard"], StayArea::Standard),
                    (&["grande ville", "grande ville ou métropole du Grand Paris"], StayArea::LargeCity),
                    (&["Paris"], StayArea::Paris),
                ],
            )?)
        } else {
            None
        };
        lines.push(ExpenseLine {
            kind,
            quantity: c.count(&q, &why)?,
            area,
            amount: c.money(&m, &why)?,
            receipt: c.text(&r, &why)?,
        });
    }
    Ok(Line::Claim {
        purchase_id,
        trainee: c.person("Référence stagiaire", store::PersonKind::Trainee, &purchase_id.0.to_string())?,
        lines,
        submitted_on: c.date("Date de dépôt", "")?,
    })
}

/// What the import runs as: who is recorded on the events, and the structure a
/// structure's token is bound to (its lines may only be its own).
#[derive(Clone, Debug)]
pub struct Importer {
    pub actor: String,
    pub structure: Option<StructureId>,
}

type Answer = Result<bool, Refusal>;

fn done<E: french::French>(r: Result<store::CommandOutcome, usecases::StepError<E>>) -> Answer {
    r.map(|o| o.duplicate).map_err(french::step)
}

impl Line {
    /// The entity the line is about: lines of one entity are sent in file order, the
    /// entities concurrently.
    pub(crate) fn entity(&self) -> String {
        match self {
            Line::Structure(c) => format!("structure:{}", c.siret.as_str()),
            Line::PurchaseRequest(c) => format!("purchase:{}", c.purchase_id),
            Line::Purchase(c) => format!("purchase:{}", c.purchase_id()),
            Line::Session(c) => format!("session:{}", c.session_id().0),
            Line::HabilitationRequest { habilitation_id, .. } | Line::Registration { habilitation_id, .. } => {
                format!("habilitation:{}", habilitation_id.0)
            }
            Line::Habilitation(c) => format!("habilitation:{}", c.habilitation_id().0),
            Line::Pix(c) => format!("pix:{}", c.campaign_id().0),
            Line::PixCertification { campaign_id, .. } => format!("pix:{}", campaign_id.0),
            Line::Ccas(c) => format!("ccas:{}", c.action_id.0),
            Line::Claim { purchase_id, trainee, .. } => format!("claim:{}", ClaimId::of(*purchase_id, trainee).0),
        }
    }

    /// Sends the line's command through its use case: accepted (`false`), already there
    /// (`true`), or refused with the rule.
    pub(crate) async fn send(self, uc: &UseCases, meta: CommandMeta, who: &Importer) -> Answer {
        match self {
            Line::Structure(c) => {
                let command = StructureCommand::Register(c);
                let stream = stream_name::<Structure>(command.structure_id().to_string());
                uc.execute::<Structure>(stream, command, meta).await.map(|o| o.duplicate).map_err(french::handle)
            }
            Line::PurchaseRequest(l) => {
                let structure = uc.structure::<domain::purchase::PurchaseError>(l.structure_id).await;
                let structure = structure.map_err(french::step)?;
                let command = PurchaseCommand::Request(Box::new(RequestPurchase {
                    purchase_id: l.purchase_id,
                    convention_id: l.convention_id,
                    structure_id: l.structure_id,
                    // The buyer's kind, from its stream: the OPCO channel is for private employers.
                    structure_kind: structure.kind,
                    departement: structure.departement,
                    provider: l.provider,
                    title: l.title,
                    certification: l.certification,
                    blocks: l.blocks,
                    metier: l.metier,
                    hours: l.hours,
                    trainees: l.trainees,
                    unit_cost: l.unit_cost,
                    session_start: l.session_start,
                    session_end: l.session_end,
                    requested_on: l.requested_on,
                }));
                done(uc.purchase(command, meta).await)
            }
            Line::Purchase(command) => done(uc.purchase(command, meta).await),
            Line::Session(command) => {
                let stream = stream_name::<TrainingSession>(command.session_id().0);
                done(uc.plain::<TrainingSession>(stream, command, meta).await)
            }
            Line::HabilitationRequest { habilitation_id, structure_id, aidant, on } => {
                let structure = uc.structure::<domain::aidants::HabilitationError>(structure_id).await;
                let structure = structure.map_err(french::step)?;
                let command = HabilitationCommand::Request {
                    habilitation_id,
                    structure_id,
                    departement: structure.departement,
                    aidant,
                    on,
                };
                done(uc.habilitation(command, meta).await)
            }
            Line::Registration { habilitation_id, session_id, on } => {
                done(uc.register_to_session(habilitation_id, session_id, on, meta).await)
            }
            Line::Habilitation(command) => done(uc.habilitation(command, meta).await),
            Line::Pix(command) => done(uc.pix(command, meta).await),
            Line::PixCertification { campaign_id, candidate, structure_id, score, on } => {
                let structure = uc.structure::<domain::pix::PixError>(structure_id).await.map_err(french::step)?;
                let command = PixCommand::RecordCertification {
                    campaign_id,
                    candidate,
                    structure_id,
                    departement: structure.departement,
                    score,
                    certified_on: on,
                };
                done(uc.pix(command, meta).await)
            }
            Line::Ccas(l) => {
                // The structure's kind and département are filled in by the use case, from the log.
                let structure = uc.structure::<domain::ccas::CcasError>(l.structure_id).await.map_err(french::step)?;
                let command = RecordCcasAction {
                    action_id: l.action_id,
                    convention_id: l.convention_id,
                    structure_id: l.structure_id,
                    structure_kind: structure.kind,
                    departement: structure.departement,
                    title: l.title,
                    agents: l.agents,
                    managers: l.managers,
                    blocks: l.blocks,
                    cost: l.cost,
                    held_on: l.held_on,
                };
                done(uc.ccas(command, meta).await)
            }
            Line::Claim { purchase_id, trainee, lines, submitted_on } => {
                let request = AnnexClaimRequest {
                    claim_id: ClaimId::of(purchase_id, &trainee),
                    structure_id: who.structure,
                    purchase_id,
                    trainee,
                    lines,
                    submitted_on,
                };
                done(uc.submit_annex_claim(request, meta).await)
            }
        }
    }
}
