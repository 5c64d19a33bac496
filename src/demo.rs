//! A small, deterministic demo of the plan: its four conventions with the plan's amounts,
//! their envelopes, and a year of commitments across départements.
//!
//! The envelope split and the commitments are ours, not the plan's (the plan gives only
//! the conventions' totals). Command ids are derived from the scenario, so seeding twice
//! writes nothing the second time.

use anyhow::{Context, bail};
use chrono::NaiveDate;
use domain::annex::{AnnexCaps, CapsChange};
use domain::convention::*;
use domain::ids::TRACKER_NAMESPACE;
use domain::{CommandId, CommandMeta, ConventionId, DepartementCode, EnvelopeId, Money};
use std::sync::Arc;
use store::EventStore;
use uuid::Uuid;

/// The actor recorded on every demo event.
pub const ACTOR: &str = "demo:plan-2021";

struct Plan {
    code: &'static str,
    partner: &'static str,
    title: &'static str,
    shares: &'static [(&'static str, i64)],
    envelopes: &'static [(&'static str, EnvelopeKind, i64)],
    targets: &'static [(TargetKind, u32)],
}

const PLAN: &[Plan] = &[
    Plan {
        code: "ANCT-UNIFORMATION-2021",
        partner: "OPCO Uniformation",
        title: "Achat de 2 000 formations certifiantes et non certifiantes",
        shares: &[("ANCT", 2_600_000), ("Uniformation", 1_800_000)],
        envelopes: &[
            ("Formations certifiantes", EnvelopeKind::CertifyingTrainings, 2_400_000),
            ("Formations non certifiantes", EnvelopeKind::NonCertifyingTrainings, 1_600_000),
            ("Frais annexes", EnvelopeKind::AnnexCosts, 400_000),
        ],
        targets: &[(TargetKind::Trainings, 2_000)],
    },
    Plan {
        code: "ANCT-PIX-2021",
        partner: "GIP Pix",
        title: "Campagnes de certification Pix des médiateurs et des aidants numériques",
        shares: &[("ANCT", 370_000)],
        envelopes: &[("Certifications Pix", EnvelopeKind::Certifications, 370_000)],
        targets: &[],
    },
    Plan {
        code: "ANCT-AIDANTS-CONNECT-2021",
        partner: "Aidants Connect (ANCT)",
        title: "Formation obligatoire de 20 000 aidants professionnels habilités Aidants Connect",
        shares: &[("ANCT", 2_500_000)],
        envelopes: &[("Formation Aidants Connect", EnvelopeKind::AidantsConnectTraining, 2_500_000)],
        targets: &[(TargetKind::Habilitations, 20_000)],
    },
    Plan {
        code: "ANCT-UNCCAS-2021",
        partner: "UNCCAS",
        title: "Formation des agents de CCAS et réseau « CCAS et inclusion numérique »",
        shares: &[("ANCT", 500_000)],
        envelopes: &[("Actions CCAS", EnvelopeKind::CcasActions, 500_000)],
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
        for (name, kind, amount) in plan.envelopes {
            out.push(ConventionCommand::AllocateEnvelope(AllocateEnvelope {
                convention_id: id,
                name: (*name).into(),
                kind: *kind,
                amount: Money::euros(*amount),
                allocated_on: date("2021-03-22"),
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
    }));
    out
}

/// The structure the sample's `structure` token is bound to: its first structure.
pub fn demo_structure() -> Uuid {
    domain::structure::StructureId::for_siret(&domain::structure::Siret::parse(&siret(STRUCTURES[0].0)).expect("valid"))
        .0
}

/// Creates one fresh token per role for the demo and returns their secrets; the previous
/// demo tokens are revoked, so only the ones just printed work.
pub fn tokens(store: &api::TokenStore, structure: Uuid) -> anyhow::Result<Vec<(api::Role, String)>> {
    for old in store.list().into_iter().filter(|t| t.revoked_at.is_none() && t.label.starts_with("demo ")) {
        store.revoke(old.id).map_err(|e| anyhow::anyhow!(e))?;
    }
    api::Role::ALL
        .into_iter()
        .map(|role| {
            let structure = (role == api::Role::Structure).then_some(structure);
            let (_, secret) =
                store.create(role, structure, &format!("demo {}", role.name())).map_err(|e| anyhow::anyhow!(e))?;
            Ok((role, secret))
        })
        .collect()
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
const STRUCTURES: &[(&str, &str, &str, &str, &str)] = &[
    ("7750123400001", "Emmaüs Connect Paris", "ASSOCIATION", "75", "MEDIUM"),
    ("4130567800002", "CCAS de Marseille", "CCAS_CIAS", "13", "LARGE"),
    ("5590234500003", "Association Lilloise de Médiation Numérique", "ASSOCIATION", "59", "SMALL"),
    ("2290345600004", "CCAS de Brest", "CCAS_CIAS", "29", "SMALL"),
    ("2971456700005", "Communauté d'agglomération Cap Excellence", "COMMUNE_OR_EPCI", "971", "MEDIUM"),
    ("8200567800006", "Numérique Corse SARL", "PRIVATE_COMPANY", "2A", "MICRO"),
];

/// The read models and the reimbursement saga a seeder drives the API with, caught up
/// with the log: the saga runs while seeding, so that claims move on as they would.
pub(crate) async fn seeding_state(store: Arc<dyn EventStore>) -> anyhow::Result<api::AppState> {
    let process = sagas::Process::start(
        store.clone(),
        Arc::new(sagas::MemoryCheckpoint::default()),
        Arc::new(sagas::SystemClock),
    )
    .await?;
    let use_cases = usecases::UseCases::new(store.clone());
    let saga =
        sagas::SagaRunner::spawn(process.with_use_cases(use_cases.clone()), std::time::Duration::from_secs(3600));
    let state = api::AppState::new(store.clone()).with_use_cases(use_cases).with_saga(saga);
    let head = *store.head().borrow();
    anyhow::ensure!(state.wait_for(head, std::time::Duration::from_secs(600)).await, "read models did not catch up");
    Ok(state)
}

/// The programmes of the demo, driven through the public GraphQL API (as the OPCO and
/// ANCT would): structures, training purchases at every stage, a Pix campaign, CCAS
/// actions and Aidants Connect habilitations. Any refused step fails the seeding.
async fn seed_programmes(store: Arc<dyn EventStore>) -> anyhow::Result<()> {
    let state = seeding_state(store.clone()).await?;
    let schema = api::schema(state, false);
    let code = |c: &str| ConventionId::for_code(c).to_string();
    let structure_id = |i: usize| {
        domain::structure::StructureId::for_siret(
            &domain::structure::Siret::parse(&siret(STRUCTURES[i].0)).expect("valid"),
        )
        .to_string()
    };
    let mut n = 0u128;
    let mut run = |principal: api::Principal, mutation: &str, input: serde_json::Value| {
        n += 1;
        let mut input = input;
        input["commandId"] = serde_json::json!(step_id(n).to_string());
        let (schema, mutation, id) = (schema.clone(), mutation.to_string(), step_id(n));
        async move {
            // Habilitation steps share one input type.
            let input_type = match mutation.as_str() {
                "ValidateEligibility" | "CompleteTraining" | "Habilitate" => "HabilitationStep",
                "RequestAnnexClaimChanges" | "RejectAnnexClaim" => "AssessAnnexClaim",
                other => other,
            };
            let field = lower_first(&mutation);
            let request = async_graphql::Request::new(format!(
                "mutation($input: {input_type}Input!) {{ {field}(input: $input) {{ __typename }} }}"
            ))
            .variables(async_graphql::Variables::from_json(serde_json::json!({ "input": input })));
            let answer = api::execute(&schema, request, principal).await;
            anyhow::ensure!(answer.errors.is_empty(), "demo step {mutation} was refused: {:?}", answer.errors);
            anyhow::Ok(id)
        }
    };
    let as_role = |role: api::Role| api::Principal::local(role, ACTOR);
    let (anct, opco) = (|| as_role(api::Role::Anct), || as_role(api::Role::Opco));
    let structure = |i: usize| {
        let mut p = as_role(api::Role::Structure);
        p.structure = Some(uuid::Uuid::parse_str(&structure_id(i)).expect("a uuid"));
        p
    };
    use serde_json::json;
    for (base, name, kind, departement, head_count) in STRUCTURES {
        run(anct(), "RegisterStructure", json!({ "name": name, "siret": siret(base), "kind": kind, "departement": departement, "headCount": head_count, "registeredOn": "2021-03-25" })).await?;
    }
    // Training purchases on the ANCT–Uniformation convention, at every stage.
    let mut purchases = Vec::new();
    for i in 0..6 {
        let certifying = i % 2 == 0;
        let provider = ["Simplon", "Pop School", "WebForce3"][i % 3];
        let metier = ["MEDIATEUR_NUMERIQUE", "AGENT_ACCUEIL", "TRAVAILLEUR_SOCIAL"][i % 3];
        let input = json!({
            "conventionId": code("ANCT-UNIFORMATION-2021"), "structureId": structure_id(i),
            "provider": provider,
            "title": if certifying { "Titre professionnel Responsable d'espace de médiation numérique" } else { "Accompagner les démarches en ligne" },
            "certification": if certifying { json!("RNCP34587") } else { json!(null) },
            "blocks": if certifying { json!([1, 2, 3, 4, 5]) } else { json!([1, 3, 6]) },
            "metier": metier,
            "hours": if certifying { 140 } else { 21 }, "trainees": 8 + i as u32,
            "unitCost": if certifying { "2450.00" } else { "390.50" },
            "sessionStart": format!("2021-0{}-06", 5 + i % 4), "sessionEnd": format!("2021-0{}-24", 5 + i % 4),
            "requestedOn": "2021-04-15",
        });
        let id = run(opco(), "RequestPurchase", input).await?;
        purchases.push(domain::purchase::PurchaseId::for_request(id).to_string());
    }
    for (i, p) in purchases.iter().enumerate().take(5) {
        run(opco(), "ApprovePurchase", json!({ "purchaseId": p, "approvedOn": "2021-04-22" })).await?;
        if i < 4 {
            run(opco(), "RecordAttendance", json!({ "purchaseId": p, "present": 8 + i as u32 - (i as u32 % 2), "recordedOn": format!("2021-0{}-25", 5 + i % 4) })).await?;
        }
        if i < 2 {
            run(opco(), "RecordPurchasePayment", json!({ "purchaseId": p, "paidOn": "2021-09-15" })).await?;
        }
    }
    run(opco(), "CancelPurchase", json!({ "purchaseId": purchases[4], "reason": "Session annulée faute de formateur", "cancelledOn": "2021-06-01" })).await?;
    // A Pix campaign for aidants, with its first certifications.
    let campaign = run(anct(), "OpenPixCampaign", json!({ "conventionId": code("ANCT-PIX-2021"), "public": "AIDANTS_NUMERIQUES", "certifications": 200, "unitPrice": "45.50", "openedOn": "2021-04-01" })).await?;
    let campaign = domain::pix::CampaignId::for_command(campaign).0.to_string();
    for (i, score) in [512, 688, 430, 801, 615].into_iter().enumerate() {
        run(anct(), "RecordPixCertification", json!({ "campaignId": campaign, "candidate": format!("PIX-{:04}", i + 1), "structureId": structure_id(i), "score": score, "certifiedOn": "2021-06-10" })).await?;
    }
    // CCAS actions.
    for (i, s) in [1usize, 3].into_iter().enumerate() {
        run(anct(), "RecordCcasAction", json!({ "conventionId": code("ANCT-UNCCAS-2021"), "structureId": structure_id(s), "title": "Accueillir et orienter vers les démarches en ligne", "agents": 8 + i as u32, "managers": 2, "blocks": [3, 6, 8], "cost": "3200.00", "heldOn": "2021-10-12" })).await?;
    }
    // Aidants Connect: a session and four aidants at different stages.
    let session = run(anct(), "OpenAidantsConnectSession", json!({ "conventionId": code("ANCT-AIDANTS-CONNECT-2021"), "capacity": 12, "seatCost": "125.00", "heldOn": "2021-05-17" })).await?;
    let session = domain::aidants::SessionId::for_command(session).0.to_string();
    let paris = domain::structure::StructureId::parse(&structure_id(0)).expect("valid");
    for (i, stage) in [4, 3, 2, 0].into_iter().enumerate() {
        let aidant = format!("AIDANT-{:03}", i + 1);
        let h = domain::aidants::HabilitationId::of(paris, &aidant).0.to_string();
        run(
            anct(),
            "RequestHabilitation",
            json!({ "structureId": structure_id(0), "aidant": aidant, "requestedOn": "2021-04-20" }),
        )
        .await?;
        let steps: [(&str, serde_json::Value); 4] = [
            ("ValidateEligibility", json!({ "habilitationId": h, "on": "2021-04-28" })),
            ("RegisterToSession", json!({ "habilitationId": h, "sessionId": session, "on": "2021-05-03" })),
            ("CompleteTraining", json!({ "habilitationId": h, "on": "2021-05-17" })),
            ("Habilitate", json!({ "habilitationId": h, "means": "CARD", "on": "2021-05-25" })),
        ];
        for (mutation, input) in steps.into_iter().take(stage) {
            run(anct(), mutation, input).await?;
        }
    }
    // Annex-cost claims in every state, on the first two trainings attended.
    let lines = |nights: u32, area: &str, night_cost: &str, km: u32| {
        let mut lines = vec![
            json!({ "kind": "PUBLIC_TRANSPORT", "quantity": 1, "amount": "64.20", "receipt": "SNCF-2021-0001" }),
            json!({ "kind": "NIGHT", "quantity": nights, "area": area, "amount": night_cost, "receipt": "HOTEL-2021-0002" }),
            json!({ "kind": "MEAL", "quantity": 2 * nights, "amount": format!("{}.00", 19 * nights), "receipt": "REPAS-2021-0003" }),
        ];
        if km > 0 {
            lines.push(
                json!({ "kind": "CAR", "quantity": km, "amount": format!("{}.00", km / 2), "receipt": "KM-2021-0004" }),
            );
        }
        serde_json::Value::Array(lines)
    };
    let claim_id = |p: usize, trainee: &str| {
        let purchase = domain::purchase::PurchaseId::parse(&purchases[p]).expect("a uuid");
        domain::claim::ClaimId::of(purchase, trainee).to_string()
    };
    let submissions = [
        // Paris (session ended 2021-05-24): paid and reimbursed (one partly), rejected,
        // sent back and resubmitted.
        (0, "STAGIAIRE-001", "2021-06-02", lines(2, "PARIS", "260.00", 0)),
        (0, "STAGIAIRE-002", "2021-06-03", lines(1, "PARIS", "98.00", 40)),
        (0, "STAGIAIRE-003", "2021-06-04", lines(3, "PARIS", "390.00", 0)),
        (0, "STAGIAIRE-004", "2021-06-05", lines(1, "PARIS", "110.00", 0)),
        // Marseille (session ended 2021-06-24): two in a funds call ANCT has not paid
        // (late), one never assessed (overdue), one funded and not yet paid.
        (1, "STAGIAIRE-101", "2021-07-01", lines(1, "LARGE_CITY", "85.00", 120)),
        (1, "STAGIAIRE-102", "2021-07-02", lines(2, "LARGE_CITY", "190.00", 0)),
        (1, "STAGIAIRE-103", "2021-07-05", lines(1, "LARGE_CITY", "80.00", 0)),
        (1, "STAGIAIRE-104", "2021-07-06", lines(1, "STANDARD", "70.00", 60)),
    ];
    for (p, trainee, on, lines) in submissions {
        let input = json!({ "purchaseId": purchases[p], "trainee": trainee, "lines": lines, "submittedOn": on });
        run(structure(p), "SubmitAnnexClaim", input).await?;
    }
    let (paris_1, paris_2, paris_3, paris_4) = (
        claim_id(0, "STAGIAIRE-001"),
        claim_id(0, "STAGIAIRE-002"),
        claim_id(0, "STAGIAIRE-003"),
        claim_id(0, "STAGIAIRE-004"),
    );
    let (marseille_1, marseille_2, funded_only) =
        (claim_id(1, "STAGIAIRE-101"), claim_id(1, "STAGIAIRE-102"), claim_id(1, "STAGIAIRE-104"));
    for (id, on) in [
        (&paris_1, "2021-06-14"),
        (&marseille_1, "2021-07-15"),
        (&marseille_2, "2021-07-16"),
        (&funded_only, "2021-07-20"),
    ] {
        run(opco(), "ApproveAnnexClaim", json!({ "claimId": id, "approvedOn": on })).await?;
    }
    run(opco(), "ApproveAnnexClaim", json!({ "claimId": paris_2, "approvedOn": "2021-06-15",
        "reductions": [{ "line": 4, "approved": "10.00", "reason": "Trajet de 20 km seulement sur le justificatif" }] })).await?;
    run(
        opco(),
        "RejectAnnexClaim",
        json!({ "claimId": paris_3, "reason": "Le stagiaire habite la ville de la formation", "on": "2021-06-16" }),
    )
    .await?;
    run(
        opco(),
        "RequestAnnexClaimChanges",
        json!({ "claimId": paris_4, "reason": "Justificatif d'hôtel illisible", "on": "2021-06-16" }),
    )
    .await?;
    run(
        structure(0),
        "ResubmitAnnexClaim",
        json!({ "claimId": paris_4, "lines": lines(1, "PARIS", "110.00", 0), "resubmittedOn": "2021-06-21" }),
    )
    .await?;
    for (id, on) in
        [(&paris_1, "2021-06-30"), (&paris_2, "2021-07-02"), (&marseille_1, "2021-10-04"), (&marseille_2, "2021-10-05")]
    {
        run(opco(), "RecordAnnexClaimPayment", json!({ "claimId": id, "paidOn": on })).await?;
    }
    let uniformation = code("ANCT-UNIFORMATION-2021");
    let first_call = run(opco(), "IssueFundsCall", json!({ "conventionId": uniformation, "periodStart": "2021-04-01", "periodEnd": "2021-09-30", "issuedOn": "2021-10-05" })).await?;
    let first_call = domain::funds_call::FundsCallId::for_command(first_call).to_string();
    run(
        anct(),
        "RecordFundsCallPayment",
        json!({ "conventionId": uniformation, "fundsCallId": first_call, "paidOn": "2021-11-18" }),
    )
    .await?;
    run(opco(), "IssueFundsCall", json!({ "conventionId": uniformation, "periodStart": "2021-10-01", "periodEnd": "2021-12-31", "issuedOn": "2022-01-07" })).await?;
    Ok(())
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_lowercase().chain(c).collect()).unwrap_or_default()
}

/// Seeds the demo into `store`. Refuses a log that holds anything but the demo.
pub async fn seed(store: Arc<dyn EventStore>) -> anyhow::Result<usize> {
    let before = *store.head().borrow();
    seed_conventions(store.clone()).await?;
    seed_programmes(store.clone()).await?;
    Ok((*store.head().borrow() - before) as usize)
}

pub(crate) async fn seed_conventions(store: Arc<dyn EventStore>) -> anyhow::Result<usize> {
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
        let n = seed(store.clone()).await.unwrap();
        assert!(n > commands().len(), "conventions, then programmes: {n} events");
        assert_eq!(seed(store.clone()).await.unwrap(), 0, "seeding again writes nothing");
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
        ] {
            assert!(events.iter().any(|e| e.event_type == kind), "the demo has a {kind}");
        }
    }

    #[test]
    fn demo_tokens_replace_the_previous_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = api::TokenStore::open(dir.path()).unwrap();
        let first = tokens(&store, demo_structure()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        let second = tokens(&store, demo_structure()).unwrap();
        assert_eq!(second.len(), 5);
        let header = |s: &str| format!("Bearer {s}");
        assert!(store.authenticate(Some(&header(&first[0].1))).is_err(), "old demo token revoked");
        let structure = store.authenticate(Some(&header(&second[2].1))).unwrap();
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
        assert!(seed(Arc::new(store)).await.is_err());
    }
}
