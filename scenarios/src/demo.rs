//! A small, deterministic demo of the plan: its four conventions with the plan's amounts,
//! their envelopes, and a year of commitments across départements.
//!
//! The envelope split and the commitments are ours, not the plan's (the plan gives only
//! the conventions' totals). Command ids are derived from the scenario, so seeding twice
//! writes nothing the second time.

use crate::seeding::{Command, Progress, Seeder, Step};
use anyhow::{Context, bail};
use api::Role;
use chrono::NaiveDate;
use domain::aidants::{HabilitationCommand, HabilitationId, Means, SessionCommand, SessionId};
use domain::annex::{AnnexCaps, CapsChange};
use domain::annex::{ExpenseKind, StayArea};
use domain::ccas::{CcasActionId, RecordCcasAction};
use domain::claim::{ClaimCommand, ClaimId, ExpenseLine, LineDecision};
use domain::convention::*;
use domain::financing::{EnvelopeFinancing, FunderPart};
use domain::framework::{CompetencyBlock, Metier};
use domain::funds_call::{FundsCallCommand, FundsCallId};
use domain::ids::TRACKER_NAMESPACE;
use domain::pix::{CampaignId, PixCommand, PixPublic};
use domain::purchase::{PurchaseCommand, PurchaseId, RequestPurchase};
use domain::structure::{HeadCount, RegisterStructure, Siret, StructureCommand, StructureId, StructureKind};
use domain::{CommandId, CommandMeta, ConventionId, DepartementCode, EnvelopeId, Money};
use std::sync::Arc;
use store::{EventStore, PersonKind};
use usecases::programmes::AnnexClaimRequest;
use uuid::Uuid;

/// The actor recorded on every demo event.
pub const ACTOR: &str = "demo:plan-2021";

/// An envelope of the demo: name, kind, amount, and each funder's fixed part.
type EnvelopePlan = (&'static str, EnvelopeKind, i64, &'static [(&'static str, i64)]);

/// A convention's schedule: each instalment's label, rate of ANCT's share and condition.
type SchedulePlan<'a> = (&'a str, &'a [(&'a str, i64, domain::disbursement::Condition)]);

struct Plan {
    code: &'static str,
    partner: &'static str,
    title: &'static str,
    shares: &'static [(&'static str, i64)],
    /// Name, kind, amount, and each funder's fixed part (none: the convention's one
    /// funder's; one funder named: 100 % its own, whatever the amount becomes).
    envelopes: &'static [EnvelopePlan],
    targets: &'static [(TargetKind, u32)],
}

const PLAN: &[Plan] = &[
    Plan {
        code: "ANCT-UNIFORMATION-2021",
        partner: "OPCO Uniformation",
        title: "Achat de 2 000 formations certifiantes et non certifiantes",
        shares: &[("ANCT", 2_600_000), ("Uniformation", 1_800_000)],
        // The financing plan (ours: the plan gives only the two funders' totals): ANCT
        // reimburses the annex costs in full; the trainings share the rest so that ANCT
        // brings 2.6 M€ and Uniformation 1.8 M€ in all.
        envelopes: &[
            (
                "Formations certifiantes",
                EnvelopeKind::CertifyingTrainings,
                2_400_000,
                &[("ANCT", 1_320_000), ("Uniformation", 1_080_000)],
            ),
            (
                "Formations non certifiantes",
                EnvelopeKind::NonCertifyingTrainings,
                1_600_000,
                &[("ANCT", 880_000), ("Uniformation", 720_000)],
            ),
            ("Frais annexes", EnvelopeKind::AnnexCosts, 400_000, &[("ANCT", 100)]),
        ],
        targets: &[(TargetKind::Trainings, 2_000)],
    },
    Plan {
        code: "ANCT-PIX-2021",
        partner: "GIP Pix",
        title: "Campagnes de certification Pix des médiateurs et des aidants numériques",
        shares: &[("ANCT", 370_000)],
        envelopes: &[("Certifications Pix", EnvelopeKind::Certifications, 370_000, &[])],
        targets: &[],
    },
    Plan {
        code: "ANCT-AIDANTS-CONNECT-2021",
        partner: "Aidants Connect (ANCT)",
        title: "Formation obligatoire de 20 000 aidants professionnels habilités Aidants Connect",
        shares: &[("ANCT", 2_500_000)],
        envelopes: &[("Formation Aidants Connect", EnvelopeKind::AidantsConnectTraining, 2_500_000, &[])],
        // The plan's figure counts aidants trained; habilitations are shown beside it.
        targets: &[(TargetKind::AidantsTrained, 20_000)],
    },
    Plan {
        code: "ANCT-UNCCAS-2021",
        partner: "UNCCAS",
        title: "Formation des agents de CCAS et réseau « CCAS et inclusion numérique »",
        shares: &[("ANCT", 500_000)],
        envelopes: &[("Actions CCAS", EnvelopeKind::CcasActions, 500_000, &[])],
        targets: &[],
    },
];

/// Départements weighted roughly by population, for the demo commitments.
const DEPARTEMENTS: &[&str] =
    &["75", "13", "59", "69", "33", "31", "44", "2A", "971", "974", "35", "67", "63", "87", "21"];

fn date(s: &str) -> NaiveDate {
    s.parse().expect("demo dates are valid")
}

/// The id of the demo's n-th command.
fn command_id(n: usize) -> CommandId {
    CommandId(Uuid::new_v5(&TRACKER_NAMESPACE, format!("demo:plan-2021:{n}").as_bytes()))
}

fn commands() -> Vec<ConventionCommand> {
    let mut out = Vec::new();
    for plan in PLAN {
        let id = ConventionId::for_code(plan.code);
        out.push(ConventionCommand::Sign(SignConvention {
            code: plan.code.into(),
            partner: plan.partner.into(),
            title: plan.title.into(),
            signed_on: date("2021-03-15"),
            period_start: date("2021-03-15"),
            period_end: date("2022-12-31"),
            total: plan.shares.iter().map(|(_, a)| Money::euros(*a)).sum(),
            shares: plan
                .shares
                .iter()
                .map(|(f, a)| FundingShare { funder: (*f).into(), amount: Money::euros(*a) })
                .collect(),
            targets: plan.targets.iter().map(|(kind, quantity)| Target { kind: *kind, quantity: *quantity }).collect(),
            departements: vec![],
            annex_caps: None,
        }));
        for (name, kind, amount, parts) in plan.envelopes {
            out.push(ConventionCommand::AllocateEnvelope(AllocateEnvelope {
                convention_id: id,
                name: (*name).into(),
                kind: *kind,
                amount: Money::euros(*amount),
                allocated_on: date("2021-03-22"),
                financing: match parts {
                    [] => None,
                    [(funder, _)] => Some(vec![FunderPart::whole(funder)]),
                    _ => Some(parts.iter().map(|(f, a)| FunderPart::amount(f, Money::euros(*a))).collect()),
                },
            }));
        }
    }
    // A year of training purchases on the ANCT–Uniformation convention: committed, most
    // delivered (service fait), many paid. Amounts vary to the cent, deterministically.
    let uniformation = ConventionId::for_code("ANCT-UNIFORMATION-2021");
    let envelopes = ["Formations certifiantes", "Formations non certifiantes"];
    for i in 0..30usize {
        let reference = format!("ACHAT-2021-{:04}", i + 1);
        let amount = Money::cents(1_200_000 + ((i * 7_919) % 900_000) as i64);
        let month = 4 + (i % 9) as u32;
        let on = |day: u32| NaiveDate::from_ymd_opt(2021, month, day).expect("valid day");
        out.push(ConventionCommand::CommitFunds(CommitFunds {
            convention_id: uniformation,
            envelope_id: EnvelopeId::for_name(uniformation, envelopes[i % 2]),
            reference: reference.clone(),
            amount,
            committed_on: on(5),
            departement: Some(DepartementCode::parse(DEPARTEMENTS[i % DEPARTEMENTS.len()]).expect("listed")),
        }));
        if i % 5 != 4 {
            out.push(ConventionCommand::RecordServiceDone(RecordServiceDone {
                convention_id: uniformation,
                reference: reference.clone(),
                amount,
                done_on: on(25),
            }));
            if i % 3 != 2 {
                out.push(ConventionCommand::RecordPayment(RecordPayment {
                    convention_id: uniformation,
                    reference,
                    amount,
                    paid_on: on(28),
                }));
            }
        }
    }
    out.push(ConventionCommand::SignAmendment(SignAmendment {
        convention_id: uniformation,
        signed_on: date("2021-11-15"),
        reason: "Avenant n°1 : prolongation et redéploiement vers les frais annexes".into(),
        total: None,
        shares: None,
        period_end: Some(date("2023-06-30")),
        envelopes: vec![
            EnvelopeAmount {
                envelope_id: EnvelopeId::for_name(uniformation, "Formations non certifiantes"),
                amount: Money::euros(1_500_000),
            },
            EnvelopeAmount {
                envelope_id: EnvelopeId::for_name(uniformation, "Frais annexes"),
                amount: Money::euros(500_000),
            },
        ],
        // Meals are dearer from 2022: the barème follows (our figures, not the plan's).
        annex_caps: Some(CapsChange {
            effective_on: date("2022-01-01"),
            caps: AnnexCaps { per_meal: Money::cents(2_000), ..AnnexCaps::ours() },
        }),
        // 100 000 € of non-certifying trainings move to annex costs (all ANCT's): the
        // trainings' plan follows so that each funder keeps its total.
        financing: vec![EnvelopeFinancing {
            envelope_id: EnvelopeId::for_name(uniformation, "Formations non certifiantes"),
            parts: vec![
                FunderPart::amount("ANCT", Money::euros(780_000)),
                FunderPart::amount("Uniformation", Money::euros(720_000)),
            ],
        }],
    }));
    out.extend(schedules());
    out
}

/// ANCT's payments to its partners, a term of each convention (ours: the plan gives no
/// schedule): an advance at signature, then interim payments on statements of expenses,
/// the balance on the final report. Aidants Connect is run by ANCT itself: no schedule.
fn schedules() -> Vec<ConventionCommand> {
    use domain::disbursement::Condition::*;
    use domain::financing::Share;
    let rate = |r: i64| Share::Rate(rust_decimal::Decimal::from(r));
    let plan: [SchedulePlan; 3] = [
        (
            "ANCT-UNIFORMATION-2021",
            &[("Avance", 30, Signature), ("Acompte n°1", 50, StatementOfExpenses), ("Solde", 20, FinalReport)],
        ),
        ("ANCT-PIX-2021", &[("Avance", 40, Signature), ("Solde", 60, FinalReport)]),
        ("ANCT-UNCCAS-2021", &[("Avance", 50, Signature), ("Solde", 50, FinalReport)]),
    ];
    plan.iter()
        .map(|(code, instalments)| {
            ConventionCommand::SetSchedule(SetSchedule {
                convention_id: ConventionId::for_code(code),
                instalments: instalments
                    .iter()
                    .map(|(label, r, condition)| PlannedInstalment {
                        label: (*label).into(),
                        share: rate(*r),
                        condition: *condition,
                    })
                    .collect(),
                set_on: date("2021-03-15"),
                amendment: None,
            })
        })
        .collect()
}

/// The structure the sample's `structure` token is bound to: its first structure.
pub fn demo_structure() -> Uuid {
    domain::structure::StructureId::for_siret(&domain::structure::Siret::parse(&siret(STRUCTURES[0].0)).expect("valid"))
        .0
}

/// Creates one fresh token per role for the demo and returns their secrets; the previous
/// demo tokens are revoked, so only the ones just printed work.
pub async fn tokens(store: &api::TokenStore, structure: Uuid) -> anyhow::Result<Vec<(api::Role, String)>> {
    let demo = |t: &api::TokenRecord| store.holder_name(t).starts_with("demo ");
    for old in store.list().await.into_iter().filter(|t| t.revoked_at.is_none() && demo(t)) {
        store.revoke(old.id).await.map_err(|e| anyhow::anyhow!(e))?;
    }
    let mut tokens = Vec::new();
    for role in api::Role::ALL {
        let structure = (role == api::Role::Structure).then_some(structure);
        // One demo person per role, whatever the number of starts.
        let name = format!("demo {}", role.name());
        let holder = match store.directory() {
            Some(directory) => api::Holder::Person(directory.agent(role.name(), &name)?),
            None => api::Holder::Named(&name),
        };
        let (_, secret) = store.create(role, structure, holder).await?;
        tokens.push((role, secret));
    }
    Ok(tokens)
}

/// A valid SIRET (Luhn) from 13 digits, for the demo's structures.
fn siret(base13: &str) -> String {
    (0..10)
        .map(|d| format!("{base13}{d}"))
        .find(|s| domain::structure::Siret::parse(s).is_ok())
        .expect("one check digit fits")
}

/// The id of the demo's n-th programme step.
fn step_id(n: u128) -> CommandId {
    CommandId(Uuid::new_v5(&TRACKER_NAMESPACE, format!("demo:plan-2021:programmes:{n}").as_bytes()))
}

/// The demo's employer structures: (SIRET base, name, kind, département, head count).
const STRUCTURES: &[(&str, &str, StructureKind, &str, HeadCount)] = &[
    ("7750123400001", "Emmaüs Connect Paris", StructureKind::Association, "75", HeadCount::Medium),
    ("4130567800002", "CCAS de Marseille", StructureKind::CcasCias, "13", HeadCount::Large),
    (
        "5590234500003",
        "Association Lilloise de Médiation Numérique",
        StructureKind::Association,
        "59",
        HeadCount::Small,
    ),
    ("2290345600004", "CCAS de Brest", StructureKind::CcasCias, "29", HeadCount::Small),
    (
        "2971456700005",
        "Communauté d'agglomération Cap Excellence",
        StructureKind::CommuneOrEpci,
        "971",
        HeadCount::Medium,
    ),
    ("8200567800006", "Numérique Corse SARL", StructureKind::PrivateCompany, "2A", HeadCount::Micro),
    (
        "4130678900007",
        "Association Marseille Solidarités Numériques",
        StructureKind::Association,
        "13",
        HeadCount::Small,
    ),
    ("2971567800008", "SCOP Karukera Numérique", StructureKind::PrivateCompany, "971", HeadCount::Micro),
];

/// The buyers of the demo's six training purchases: private employers only (the OPCO
/// channel funds private-sector employers; the CCAS train through the UNCCAS convention).
const BUYERS: [usize; 6] = [0, 6, 2, 7, 5, 0];

fn structure_id(i: usize) -> StructureId {
    StructureId::for_siret(&Siret::parse(&siret(STRUCTURES[i].0)).expect("valid"))
}

fn structure_departement(i: usize) -> DepartementCode {
    DepartementCode::parse(STRUCTURES[i].3).expect("listed")
}

/// The demo's programme steps, numbered in the order they are sent (their command ids
/// come from the number).
#[derive(Default)]
struct Steps(Vec<Step>);

impl Steps {
    /// Adds a step; `command` gets the step's command id (for the ids derived from it).
    fn push(&mut self, who: Role, command: impl FnOnce(CommandId) -> Command) -> CommandId {
        let n = self.0.len() as u128 + 1;
        let id = step_id(n);
        self.0.push(Step { who, id, label: format!("demo step {n}"), command: command(id) });
        id
    }
}

fn blocks(numbers: &[u8]) -> Vec<CompetencyBlock> {
    numbers.iter().map(|n| CompetencyBlock::from_number(*n).expect("a block of the framework")).collect()
}

/// Employer structures, registered by ANCT.
fn structures(steps: &mut Steps) {
    for (base, name, kind, departement, head_count) in STRUCTURES {
        steps.push(Role::Anct, |_| {
            Command::Structure(StructureCommand::Register(RegisterStructure {
                name: (*name).into(),
                siret: Siret::parse(&siret(base)).expect("valid"),
                kind: *kind,
                departement: DepartementCode::parse(departement).expect("listed"),
                head_count: *head_count,
                registered_on: date("2021-03-25"),
            }))
        });
    }
}

/// Training purchases on the ANCT–Uniformation convention, at every stage.
fn purchases(steps: &mut Steps) -> Vec<PurchaseId> {
    let mut purchases = Vec::new();
    for i in 0..6 {
        let certifying = i % 2 == 0;
        let month = 5 + i % 4;
        let id = steps.push(Role::Opco, |id| {
            Command::Purchase(PurchaseCommand::Request(Box::new(RequestPurchase {
                purchase_id: PurchaseId::for_request(id),
                convention_id: ConventionId::for_code("ANCT-UNIFORMATION-2021"),
                structure_id: structure_id(BUYERS[i]),
                departement: structure_departement(BUYERS[i]),
                structure_kind: STRUCTURES[BUYERS[i]].2,
                provider: ["Simplon", "Pop School", "WebForce3"][i % 3].into(),
                title: if certifying {
                    "Titre professionnel Responsable d'espace de médiation numérique"
                } else {
                    "Accompagner les démarches en ligne"
                }
                .into(),
                certification: certifying.then(|| "RNCP34587".into()),
                blocks: if certifying { blocks(&[1, 2, 3, 4, 5]) } else { blocks(&[1, 3, 6]) },
                metier: [Metier::MediateurNumerique, Metier::AgentAccueil, Metier::TravailleurSocial][i % 3],
                hours: if certifying { 140 } else { 21 },
                trainees: 8 + i as u32,
                unit_cost: if certifying { Money::cents(245_000) } else { Money::cents(39_050) },
                session_start: date(&format!("2021-0{month}-06")),
                session_end: date(&format!("2021-0{month}-24")),
                requested_on: date("2021-04-15"),
            })))
        });
        purchases.push(PurchaseId::for_request(id));
    }
    let mut opco = |command| steps.push(Role::Opco, |_| Command::Purchase(command));
    for (i, &purchase_id) in purchases.iter().enumerate().take(5) {
        opco(PurchaseCommand::Approve { purchase_id, approved_on: date("2021-04-22") });
        if i < 4 {
            let recorded_on = date(&format!("2021-0{}-25", 5 + i % 4));
            opco(PurchaseCommand::RecordAttendance {
                purchase_id,
                present: 8 + i as u32 - (i as u32 % 2),
                recorded_on,
            });
        }
        if i < 2 {
            opco(PurchaseCommand::RecordPayment { purchase_id, paid_on: date("2021-09-15") });
        }
    }
    opco(PurchaseCommand::Cancel {
        purchase_id: purchases[4],
        reason: "Session annulée faute de formateur".into(),
        cancelled_on: date("2021-06-01"),
    });
    purchases
}

/// A Pix campaign for aidants, with its first certifications (candidates by the ids the
/// directory issued for their invented references, as the API records them).
fn pix(steps: &mut Steps, seeder: &Seeder) -> anyhow::Result<()> {
    let campaign = steps.push(Role::Anct, |id| {
        Command::Pix(PixCommand::OpenCampaign {
            campaign_id: CampaignId::for_command(id),
            convention_id: ConventionId::for_code("ANCT-PIX-2021"),
            public: PixPublic::AidantsNumeriques,
            certifications: 200,
            unit_price: Money::cents(4_550),
            opened_on: date("2021-04-01"),
        })
    });
    let campaign_id = CampaignId::for_command(campaign);
    let references: Vec<String> = (1..=5).map(|i| format!("PIX-{i:04}")).collect();
    let references: Vec<&str> = references.iter().map(String::as_str).collect();
    let candidates = seeder.invented(PersonKind::Candidate, &campaign_id.0.to_string(), &references)?;
    for (i, (score, candidate)) in [512, 688, 430, 801, 615].into_iter().zip(candidates).enumerate() {
        steps.push(Role::Anct, |_| {
            Command::Pix(PixCommand::RecordCertification {
                campaign_id,
                candidate,
                structure_id: structure_id(i),
                departement: structure_departement(i),
                score,
                certified_on: date("2021-06-10"),
            })
        });
    }
    Ok(())
}

/// CCAS actions of the two CCAS.
fn ccas(steps: &mut Steps) {
    for (i, s) in [1usize, 3].into_iter().enumerate() {
        steps.push(Role::Anct, |id| {
            Command::Ccas(RecordCcasAction {
                action_id: CcasActionId::for_command(id),
                convention_id: ConventionId::for_code("ANCT-UNCCAS-2021"),
                structure_id: structure_id(s),
                structure_kind: STRUCTURES[s].2,
                departement: structure_departement(s),
                title: "Accueillir et orienter vers les démarches en ligne".into(),
                agents: 8 + i as u32,
                managers: 2,
                blocks: blocks(&[3, 6, 8]),
                cost: Money::euros(3_200),
                held_on: date("2021-10-12"),
            })
        });
    }
}

/// Aidants Connect: a session and four aidants of the first structure at different stages
/// (by the ids the directory issued for their invented references, as the API records
/// them: the habilitation ids are derived from those ids, as the API derives them).
fn aidants_connect(steps: &mut Steps, seeder: &Seeder) -> anyhow::Result<()> {
    let session = steps.push(Role::Anct, |id| {
        Command::Session(SessionCommand::Open {
            session_id: SessionId::for_command(id),
            convention_id: ConventionId::for_code("ANCT-AIDANTS-CONNECT-2021"),
            capacity: 12,
            seat_cost: Money::cents(12_500),
            held_on: date("2021-05-17"),
        })
    });
    let session = SessionId::for_command(session);
    let references: Vec<String> = (1..=4).map(|i| format!("AIDANT-{i:03}")).collect();
    let references: Vec<&str> = references.iter().map(String::as_str).collect();
    let aidants = seeder.invented(PersonKind::Aidant, &structure_id(0).0.to_string(), &references)?;
    for (stage, aidant) in [4, 3, 2, 0].into_iter().zip(aidants) {
        let h = HabilitationId::of(structure_id(0), &aidant);
        steps.push(Role::Anct, |_| {
            Command::Habilitation(HabilitationCommand::Request {
                habilitation_id: h,
                structure_id: structure_id(0),
                departement: structure_departement(0),
                aidant,
                on: date("2021-04-20"),
            })
        });
        let stages = [
            Command::Habilitation(HabilitationCommand::ValidateEligibility {
                habilitation_id: h,
                on: date("2021-04-28"),
            }),
            Command::RegisterToSession { habilitation: h, session, on: date("2021-05-03") },
            Command::Habilitation(HabilitationCommand::CompleteTraining { habilitation_id: h, on: date("2021-05-17") }),
            Command::Habilitation(HabilitationCommand::Habilitate {
                habilitation_id: h,
                means: Means::Card,
                on: date("2021-05-25"),
            }),
        ];
        for command in stages.into_iter().take(stage) {
            steps.push(Role::Anct, |_| command);
        }
    }
    Ok(())
}

fn lines(nights: u32, area: StayArea, night_cost: Money, km: u32) -> Vec<ExpenseLine> {
    let line = |kind, quantity, area, amount, receipt: &str| ExpenseLine {
        kind,
        quantity,
        area,
        amount,
        receipt: receipt.into(),
    };
    let mut lines = vec![
        line(ExpenseKind::PublicTransport, 1, None, Money::cents(6_420), "SNCF-2021-0001"),
        line(ExpenseKind::Night, nights, Some(area), night_cost, "HOTEL-2021-0002"),
        line(ExpenseKind::Meal, 2 * nights, None, Money::euros(19 * i64::from(nights)), "REPAS-2021-0003"),
    ];
    if km > 0 {
        lines.push(line(ExpenseKind::Car, km, None, Money::euros(i64::from(km / 2)), "KM-2021-0004"));
    }
    lines
}

/// Annex-cost claims in every state on the first two trainings attended, and the funds
/// calls that follow. Trainees go by the ids the directory issued for their invented
/// references (one batch per purchase), and claim ids derive from those, as in the API.
fn claims(steps: &mut Steps, purchases: &[PurchaseId], seeder: &Seeder) -> anyhow::Result<()> {
    let submissions = [
        // Paris (session ended 2021-05-24): paid and reimbursed (one partly), rejected,
        // sent back and resubmitted.
        (0, "STAGIAIRE-001", "2021-06-02", lines(2, StayArea::Paris, Money::euros(260), 0)),
        (0, "STAGIAIRE-002", "2021-06-03", lines(1, StayArea::Paris, Money::euros(98), 40)),
        (0, "STAGIAIRE-003", "2021-06-04", lines(3, StayArea::Paris, Money::euros(390), 0)),
        (0, "STAGIAIRE-004", "2021-06-05", lines(1, StayArea::Paris, Money::euros(110), 0)),
        // Marseille (session ended 2021-06-24): two in a funds call ANCT has not paid
        // (late), one never assessed (overdue), one funded and not yet paid.
        (1, "STAGIAIRE-101", "2021-07-01", lines(1, StayArea::LargeCity, Money::euros(85), 120)),
        (1, "STAGIAIRE-102", "2021-07-02", lines(2, StayArea::LargeCity, Money::euros(190), 0)),
        (1, "STAGIAIRE-103", "2021-07-05", lines(1, StayArea::LargeCity, Money::euros(80), 0)),
        (1, "STAGIAIRE-104", "2021-07-06", lines(1, StayArea::Standard, Money::euros(70), 60)),
    ];
    let mut trainees = std::collections::HashMap::new();
    for p in [0, 1] {
        let references: Vec<&str> = submissions.iter().filter(|s| s.0 == p).map(|s| s.1).collect();
        let ids = seeder.invented(PersonKind::Trainee, &purchases[p].0.to_string(), &references)?;
        trainees.extend(references.into_iter().zip(ids));
    }
    let trainee = |reference: &str| trainees[reference].clone();
    let claim_id = |p: usize, reference: &str| ClaimId::of(purchases[p], &trainee(reference));
    for (p, reference, on, lines) in submissions {
        let request = AnnexClaimRequest {
            claim_id: claim_id(p, reference),
            structure_id: Some(structure_id(BUYERS[p])),
            purchase_id: purchases[p],
            trainee: trainee(reference),
            lines,
            submitted_on: date(on),
        };
        steps.push(Role::Structure, |_| Command::SubmitClaim(request));
    }
    let (paris_1, paris_2, paris_3, paris_4) = (
        claim_id(0, "STAGIAIRE-001"),
        claim_id(0, "STAGIAIRE-002"),
        claim_id(0, "STAGIAIRE-003"),
        claim_id(0, "STAGIAIRE-004"),
    );
    let (marseille_1, marseille_2, funded_only) =
        (claim_id(1, "STAGIAIRE-101"), claim_id(1, "STAGIAIRE-102"), claim_id(1, "STAGIAIRE-104"));
    let mut opco = |command| steps.push(Role::Opco, |_| Command::Claim(command));
    for (claim_id, on) in
        [(paris_1, "2021-06-14"), (marseille_1, "2021-07-15"), (marseille_2, "2021-07-16"), (funded_only, "2021-07-20")]
    {
        opco(ClaimCommand::Approve { claim_id, reductions: vec![], approved_on: date(on) });
    }
    opco(ClaimCommand::Approve {
        claim_id: paris_2,
        reductions: vec![LineDecision {
            line: 4,
            approved: Money::euros(10),
            reason: Some("Trajet de 20 km seulement sur le justificatif".into()),
        }],
        approved_on: date("2021-06-15"),
    });
    opco(ClaimCommand::Reject {
        claim_id: paris_3,
        reason: "Le stagiaire habite la ville de la formation".into(),
        rejected_on: date("2021-06-16"),
    });
    opco(ClaimCommand::RequestChanges {
        claim_id: paris_4,
        reason: "Justificatif d'hôtel illisible".into(),
        requested_on: date("2021-06-16"),
    });
    steps.push(Role::Structure, |_| Command::ResubmitClaim {
        claim: paris_4,
        lines: lines(1, StayArea::Paris, Money::euros(110), 0),
        on: date("2021-06-21"),
    });
    let mut opco = |command| steps.push(Role::Opco, |_| Command::Claim(command));
    for (claim_id, on) in
        [(paris_1, "2021-06-30"), (paris_2, "2021-07-02"), (marseille_1, "2021-10-04"), (marseille_2, "2021-10-05")]
    {
        opco(ClaimCommand::RecordPayment { claim_id, paid_on: date(on) });
    }
    let uniformation = ConventionId::for_code("ANCT-UNIFORMATION-2021");
    let issue = |call: CommandId, from: &str, to: &str, on: &str| {
        Command::FundsCall(FundsCallCommand::Issue {
            convention_id: uniformation,
            call_id: FundsCallId::for_command(call),
            period_start: date(from),
            period_end: date(to),
            claims: None,
            issued_on: date(on),
            payment_days: None,
        })
    };
    let first = steps.push(Role::Opco, |id| issue(id, "2021-04-01", "2021-09-30", "2021-10-05"));
    steps.push(Role::Anct, |_| {
        Command::FundsCall(FundsCallCommand::RecordPayment {
            convention_id: uniformation,
            call_id: FundsCallId::for_command(first),
            paid_on: date("2021-11-18"),
        })
    });
    steps.push(Role::Opco, |id| issue(id, "2021-10-01", "2021-12-31", "2022-01-07"));
    Ok(())
}

/// The money between ANCT and its partners, as it flows: each advance claimed and paid
/// (Uniformation's late), Uniformation's statement of expenses and interim payment, its
/// own spending, Pix's advance; UNCCAS's final report below what it received, and the
/// order of recovery of the difference (not yet paid back).
fn disbursements(steps: &mut Steps) {
    use domain::disbursement::DisbursementCommand as D;
    let id = ConventionId::for_code;
    let (uniformation, pix, unccas) = (id("ANCT-UNIFORMATION-2021"), id("ANCT-PIX-2021"), id("ANCT-UNCCAS-2021"));
    let claim = |convention_id, instalment, euros: i64, on: &str| D::ClaimPayment {
        convention_id,
        instalment,
        amount: Money::euros(euros),
        claimed_on: date(on),
        terms: Default::default(),
    };
    let pay = |convention_id, claim, on: &str| D::PayClaim {
        convention_id,
        claim,
        paid_on: date(on),
        terms: Default::default(),
    };
    let statement = |convention_id, euros: i64, final_report, on: &str| D::SubmitStatement {
        convention_id,
        spent: Money::euros(euros),
        final_report,
        submitted_on: date(on),
    };
    let flow = [
        (Role::Opco, claim(uniformation, 1, 780_000, "2021-03-25")),
        (Role::Anct, pay(uniformation, 1, "2021-04-20")),
        (Role::Opco, claim(pix, 1, 148_000, "2021-03-25")),
        (Role::Anct, pay(pix, 1, "2021-04-12")),
        (Role::Opco, claim(unccas, 1, 250_000, "2021-03-25")),
        (Role::Anct, pay(unccas, 1, "2021-04-15")),
        (Role::Opco, statement(uniformation, 900_000, false, "2021-12-15")),
        (Role::Opco, claim(uniformation, 2, 1_300_000, "2021-12-20")),
        // Paid after its 30 days (our default delay): late.
        (Role::Anct, pay(uniformation, 2, "2022-02-10")),
        (
            Role::Opco,
            D::RecordCoFunderSpending {
                convention_id: uniformation,
                funder: "Uniformation".into(),
                amount: Money::euros(620_000),
                reference: "Bilan Uniformation 2021".into(),
                spent_on: date("2021-12-31"),
            },
        ),
        (Role::Opco, statement(unccas, 180_000, true, "2022-11-30")),
        (Role::Anct, D::OrderRecovery { convention_id: unccas, ordered_on: date("2022-12-15") }),
    ];
    for (who, command) in flow {
        steps.push(who, |_| Command::Disbursement(command));
    }
}

/// The programmes of the demo, through the use cases (as the OPCO, ANCT and the
/// structures would send them), one step after the other, the reimbursement saga acting
/// after each claim and funds-call step: structures, training purchases at every stage, a
/// Pix campaign, CCAS actions, Aidants Connect habilitations, claims and funds calls. Any
/// refused step fails the seeding.
async fn seed_programmes(
    store: Arc<dyn EventStore>,
    people: Arc<store::Directory>,
    progress: Progress,
) -> anyhow::Result<()> {
    let seeder = Seeder::new(store, people, progress).await?;
    let mut steps = Steps::default();
    structures(&mut steps);
    let purchases = purchases(&mut steps);
    pix(&mut steps, &seeder)?;
    ccas(&mut steps);
    aidants_connect(&mut steps, &seeder)?;
    claims(&mut steps, &purchases, &seeder)?;
    disbursements(&mut steps);
    seeder.steps("sample", steps.0).await?;
    seeder.steps("register of measures", crate::register::steps()).await?;
    seeder.progress().finish();
    Ok(())
}

/// Seeds the demo into `store`, its invented references of persons into `people` (the
/// data directory's directory of persons, where the server looks the log's ids up).
/// Refuses a log that holds anything but the demo.
pub async fn seed(store: Arc<dyn EventStore>, people: Arc<store::Directory>) -> anyhow::Result<usize> {
    seed_with_progress(store, people, Progress::hidden()).await
}

/// [`seed`], drawing its progress.
pub async fn seed_with_progress(
    store: Arc<dyn EventStore>,
    people: Arc<store::Directory>,
    progress: Progress,
) -> anyhow::Result<usize> {
    let before = *store.head().borrow();
    progress.begin(before);
    seed_conventions(store.clone()).await?;
    seed_programmes(store.clone(), people, progress).await?;
    Ok((*store.head().borrow() - before) as usize)
}

pub async fn seed_conventions(store: Arc<dyn EventStore>) -> anyhow::Result<usize> {
    let first = store.read_all(0, 1).await?;
    if let Some(e) = first.first()
        && e.metadata.command_id != command_id(0)
    {
        bail!("this data directory already holds other data: the demo is seeded only into an empty one");
    }
    let commands = commands();
    let use_cases = usecases::UseCases::new(store.clone());
    let mut written = 0;
    for (n, command) in commands.into_iter().enumerate() {
        let meta = CommandMeta::new(command_id(n), ACTOR);
        let outcome =
            use_cases.convention(command, meta).await.with_context(|| format!("demo command {n} was refused"))?;
        if !outcome.duplicate {
            written += 1;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::handler::stream_name;
    use store::{MemoryStore, handle};

    #[tokio::test]
    async fn seeds_every_step_once_and_is_idempotent() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let people = Arc::new(store::Directory::in_memory());
        let n = seed(store.clone(), people.clone()).await.unwrap();
        assert!(n > commands().len(), "conventions, then programmes: {n} events");
        assert_eq!(seed(store.clone(), people.clone()).await.unwrap(), 0, "seeding again writes nothing");
        let events = store.read_all(0, 10_000).await.unwrap();
        assert_eq!(events.len(), n);
        for kind in [
            "StructureRegistered",
            "PurchasePaid",
            "PurchaseCancelled",
            "PixCertificationRecorded",
            "CcasActionRecorded",
            "Habilitated",
            "AnnexClaimReimbursed",
            "AnnexClaimRejected",
            "AnnexClaimResubmitted",
            "AnnexClaimFlaggedOverdue",
            "FundsCallFlaggedLate",
            "DisbursementScheduleSet",
            "DisbursementPaid",
            "StatementOfExpensesSubmitted",
            "CoFunderSpendingRecorded",
            "RecoveryOrdered",
        ] {
            assert!(events.iter().any(|e| e.event_type == kind), "the demo has a {kind}");
        }
    }

    #[tokio::test]
    async fn invented_references_are_in_the_directory_and_the_log_holds_ids_as_the_api_derives_them() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let people = Arc::new(store::Directory::in_memory());
        seed(store.clone(), people.clone()).await.unwrap();
        let events = store.read_all(0, 10_000).await.unwrap();
        let log: String =
            events.iter().map(|e| format!("{} {} {:?}\n", e.stream, e.payload.as_str(), e.metadata)).collect();
        for reference in ["AIDANT-001", "STAGIAIRE-001", "PIX-0001"] {
            assert!(!log.contains(reference), "{reference} is in the log");
        }
        // The aidant's habilitation is the one the API addresses for the same reference.
        let aidant = people.find(PersonKind::Aidant, &structure_id(0).0.to_string(), "AIDANT-001").unwrap().unwrap();
        let habilitation = HabilitationId::of(structure_id(0), &aidant.to_string());
        let stream = stream_name::<domain::aidants::Habilitation>(habilitation.0);
        assert!(events.iter().any(|e| e.stream == stream && e.event_type == "Habilitated"));
        // and likewise the trainee's claim and the candidate's certification.
        let first_purchase = events.iter().find(|e| e.event_type == "PurchaseRequested").unwrap();
        let purchase = PurchaseId(first_purchase.stream_id().parse().unwrap());
        let trainee = people.find(PersonKind::Trainee, &purchase.0.to_string(), "STAGIAIRE-001").unwrap().unwrap();
        let claim = ClaimId::of(purchase, &trainee.to_string());
        let stream = stream_name::<domain::claim::AnnexClaim>(claim.0);
        assert!(events.iter().any(|e| e.stream == stream && e.event_type == "AnnexClaimReimbursed"));
        let certified = events.iter().find(|e| e.event_type == "PixCertificationRecorded").unwrap();
        let campaign = certified.stream_id().to_string();
        let candidate = people.find(PersonKind::Candidate, &campaign, "PIX-0001").unwrap().unwrap();
        assert_eq!(certified.payload.to_value()["candidate"], candidate.to_string());
    }

    #[tokio::test]
    async fn demo_tokens_replace_the_previous_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = api::TokenStore::open(dir.path()).unwrap();
        let first = tokens(&store, demo_structure()).await.unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        let second = tokens(&store, demo_structure()).await.unwrap();
        assert_eq!(second.len(), 5);
        let header = |s: &str| format!("Bearer {s}");
        assert!(store.authenticate(Some(&header(&first[0].1))).await.is_err(), "old demo token revoked");
        let structure = store.authenticate(Some(&header(&second[2].1))).await.unwrap();
        assert_eq!((structure.role, structure.structure), (api::Role::Structure, Some(demo_structure())));
    }

    #[tokio::test]
    async fn refuses_a_log_holding_other_data() {
        let store = MemoryStore::new();
        let other = CommandMeta::new(CommandId::new_random(), "anct");
        let command = &commands()[0];
        handle::<Convention>(&store, &stream_name::<Convention>(command.convention_id()), command, &other)
            .await
            .unwrap();
        assert!(seed(Arc::new(store), Arc::new(store::Directory::in_memory())).await.is_err());
    }
}
