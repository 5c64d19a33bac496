//! The plan at full scale, deterministically from a seed: about 2 000 trainees through
//! training purchases across the 101 départements, 20 000 aidants at every stage of their
//! Aidants Connect habilitation, Pix certifications, CCAS actions, annex-cost claims in
//! every state and quarterly funds calls, over 2021–2022, more where more people live.
//!
//! Everything after the conventions goes through the public GraphQL API in-process, as
//! the OPCO, ANCT and the structures would send it, many flows at a time (each entity's
//! steps in order). Command ids come from the seed and the step, so seeding again writes
//! nothing. The figures and distributions are ours, not the plan's.

use anyhow::Context as _;
use chrono::{Datelike, Days, NaiveDate};
use domain::ids::TRACKER_NAMESPACE;
use domain::{CommandId, ConventionId};
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use store::EventStore;
use uuid::Uuid;

/// Approximate populations (thousands, INSEE 2019, rounded): used only to weigh where
/// the demo's structures are.
const POPULATION: &[(&str, u32)] = &[
    ("01", 652),
    ("02", 531),
    ("03", 335),
    ("04", 164),
    ("05", 141),
    ("06", 1083),
    ("07", 328),
    ("08", 270),
    ("09", 153),
    ("10", 310),
    ("11", 374),
    ("12", 279),
    ("13", 2043),
    ("14", 694),
    ("15", 144),
    ("16", 352),
    ("17", 651),
    ("18", 302),
    ("19", 240),
    ("2A", 158),
    ("2B", 182),
    ("21", 534),
    ("22", 600),
    ("23", 117),
    ("24", 413),
    ("25", 543),
    ("26", 516),
    ("27", 599),
    ("28", 431),
    ("29", 915),
    ("30", 748),
    ("31", 1400),
    ("32", 191),
    ("33", 1623),
    ("34", 1176),
    ("35", 1079),
    ("36", 219),
    ("37", 610),
    ("38", 1271),
    ("39", 259),
    ("40", 413),
    ("41", 329),
    ("42", 765),
    ("43", 227),
    ("44", 1429),
    ("45", 680),
    ("46", 174),
    ("47", 331),
    ("48", 76),
    ("49", 818),
    ("50", 495),
    ("51", 566),
    ("52", 172),
    ("53", 307),
    ("54", 733),
    ("55", 184),
    ("56", 759),
    ("57", 1043),
    ("58", 204),
    ("59", 2608),
    ("60", 829),
    ("61", 280),
    ("62", 1466),
    ("63", 662),
    ("64", 683),
    ("65", 228),
    ("66", 479),
    ("67", 1132),
    ("68", 765),
    ("69", 1876),
    ("70", 235),
    ("71", 551),
    ("72", 566),
    ("73", 436),
    ("74", 826),
    ("75", 2166),
    ("76", 1255),
    ("77", 1421),
    ("78", 1448),
    ("79", 374),
    ("80", 570),
    ("81", 389),
    ("82", 260),
    ("83", 1076),
    ("84", 561),
    ("85", 685),
    ("86", 438),
    ("87", 374),
    ("88", 365),
    ("89", 335),
    ("90", 141),
    ("91", 1296),
    ("92", 1624),
    ("93", 1644),
    ("94", 1407),
    ("95", 1249),
    ("971", 384),
    ("972", 358),
    ("973", 290),
    ("974", 861),
    ("976", 279),
];

/// How big the scenario is.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    pub structures: usize,
    /// Training purchases (8 to 15 trainees each).
    pub purchases: usize,
    pub aidants: usize,
    pub pix_certifications: usize,
    pub ccas_actions: usize,
    /// Annex-cost claims (at most one per trainee present).
    pub claims: usize,
}

impl Scale {
    /// The plan: 2 000 trainings, 20 000 aidants.
    pub const FULL: Scale = Scale {
        structures: 1_200,
        purchases: 175,
        aidants: 20_000,
        pix_certifications: 3_000,
        ccas_actions: 150,
        claims: 1_200,
    };

    /// A small version, for tests.
    pub const TINY: Scale =
        Scale { structures: 30, purchases: 12, aidants: 60, pix_certifications: 20, ccas_actions: 6, claims: 30 };
}

/// A small deterministic generator (SplitMix64): the same seed gives the same plan on
/// every machine and every version (a library generator may change its stream).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    /// A département, weighted by population.
    fn departement(&mut self) -> &'static str {
        let total: u64 = POPULATION.iter().map(|(_, p)| u64::from(*p)).sum();
        let mut pick = self.below(total);
        for (code, p) in POPULATION {
            if pick < u64::from(*p) {
                return code;
            }
            pick -= u64::from(*p);
        }
        POPULATION[0].0
    }
}

fn day(offset: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2021, 3, 29).expect("valid").checked_add_days(Days::new(offset)).expect("in range")
}

fn iso(d: NaiveDate) -> String {
    d.to_string()
}

/// Who sends a step.
#[derive(Clone, Copy)]
enum Who {
    Anct,
    Opco,
    /// The structure with this index.
    Structure(usize),
}

/// One mutation: its name (the input type's, without `Input`), its input and its label
/// (the command id is derived from it).
struct Step {
    who: Who,
    mutation: &'static str,
    input: Value,
    label: String,
}

/// Steps of one entity, in order; flows run concurrently.
type Flow = Vec<Step>;

fn step_id(seed: u64, label: &str) -> CommandId {
    CommandId(Uuid::new_v5(&TRACKER_NAMESPACE, format!("plan-2021:{seed}:{label}").as_bytes()))
}

struct Seeder {
    schema: api::TrackerSchema,
    store: Arc<dyn EventStore>,
    seed: u64,
    structures: Vec<Uuid>,
    sent: AtomicU64,
}

impl Seeder {
    async fn run(&self, step: &Step) -> anyhow::Result<()> {
        let command_id = step_id(self.seed, &step.label);
        // Already applied (an earlier, maybe interrupted, seeding): skip without a round
        // trip through GraphQL, so that seeding again costs one lookup per step.
        if self.store.find_command(command_id).await?.is_some() {
            return Ok(());
        }
        let mut input = step.input.clone();
        input["commandId"] = json!(command_id.to_string());
        let input_type = match step.mutation {
            "ValidateEligibility"
            | "CompleteTraining"
            | "Habilitate"
            | "RefuseHabilitation"
            | "CancelHabilitation"
            | "RevokeHabilitation" => "HabilitationStep",
            "RequestAnnexClaimChanges" | "RejectAnnexClaim" => "AssessAnnexClaim",
            other => other,
        };
        let mut chars = step.mutation.chars();
        let field: String = chars.next().map(|f| f.to_lowercase().chain(chars).collect()).unwrap_or_default();
        let principal = match step.who {
            Who::Anct => api::Principal::local(api::Role::Anct, crate::demo::ACTOR),
            Who::Opco => api::Principal::local(api::Role::Opco, crate::demo::ACTOR),
            Who::Structure(i) => {
                let mut p = api::Principal::local(api::Role::Structure, crate::demo::ACTOR);
                p.structure = Some(self.structures[i]);
                p
            }
        };
        // A client facing a busy convention retries with the same command id (the README's
        // advice for CONFLICT); anything else fails the seeding.
        for _ in 0..20 {
            let request = async_graphql::Request::new(format!(
                "mutation($input: {input_type}Input!) {{ {field}(input: $input) {{ __typename }} }}"
            ))
            .variables(async_graphql::Variables::from_json(json!({ "input": input })));
            let answer = api::execute(&self.schema, request, principal.clone()).await;
            self.sent.fetch_add(1, Ordering::Relaxed);
            let contended = answer.errors.iter().any(|e| e.message.contains("kept changing under this command"));
            if !contended {
                anyhow::ensure!(
                    answer.errors.is_empty(),
                    "step {} ({}) was refused: {:?}",
                    step.label,
                    step.mutation,
                    answer.errors
                );
                return Ok(());
            }
        }
        anyhow::bail!("step {} ({}) kept conflicting with concurrent writers", step.label, step.mutation)
    }

    /// Runs flows `concurrency` at a time; the first refusal fails the seeding.
    async fn flows(&self, flows: Vec<Flow>, concurrency: usize) -> anyhow::Result<()> {
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(flows)
            .map(|flow| async move {
                for step in &flow {
                    self.run(step).await?;
                }
                anyhow::Ok(())
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        results.into_iter().collect()
    }
}

/// What seeding did.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedReport {
    pub mutations: u64,
    pub events: u64,
    pub seconds: f64,
}

const KINDS: &[(&str, u64)] =
    &[("ASSOCIATION", 45), ("CCAS_CIAS", 25), ("COMMUNE_OR_EPCI", 20), ("PRIVATE_COMPANY", 10)];
const HEAD_COUNTS: &[&str] = &["MICRO", "SMALL", "SMALL", "MEDIUM", "LARGE"];

/// The seed of the demo's plan.
pub const SEED: u64 = 2021;

/// The id of the plan's n-th structure.
pub fn structure(n: usize) -> Uuid {
    domain::structure::StructureId::for_siret(&domain::structure::Siret::parse(&siret(n)).expect("valid")).0
}

fn siret(n: usize) -> String {
    let base = format!("8{:012}", 100_000_000 + n);
    (0..10)
        .map(|d| format!("{base}{d}"))
        .find(|s| domain::structure::Siret::parse(s).is_ok())
        .expect("one check digit fits")
}

/// Seeds the plan at `scale` into `store` (after the conventions of the small demo), with
/// `concurrency` flows at a time. Idempotent.
pub async fn seed(
    store: Arc<dyn EventStore>,
    scale: Scale,
    seed: u64,
    concurrency: usize,
) -> anyhow::Result<SeedReport> {
    let started = std::time::Instant::now();
    let before = *store.head().borrow();
    crate::demo::seed_conventions(store.clone()).await?;
    let state = crate::demo::seeding_state(store.clone()).await?;
    let mut rng = Rng(seed);
    let code = |c: &str| ConventionId::for_code(c).to_string();

    // Structures, where people live.
    let mut structures = Vec::with_capacity(scale.structures);
    let mut registrations = Vec::new();
    let mut kinds = Vec::new();
    let mut homes = Vec::new();
    for i in 0..scale.structures {
        let departement = rng.departement();
        let mut pick = rng.below(100);
        let kind = KINDS
            .iter()
            .find(|(_, w)| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .map_or("ASSOCIATION", |k| k.0);
        let siret = siret(i);
        let id = domain::structure::StructureId::for_siret(&domain::structure::Siret::parse(&siret).expect("valid"));
        structures.push(id.0);
        kinds.push(kind);
        homes.push(departement);
        let name = match kind {
            "CCAS_CIAS" => format!("CCAS n°{} ({departement})", i + 1),
            "COMMUNE_OR_EPCI" => format!("Communauté de communes n°{} ({departement})", i + 1),
            "PRIVATE_COMPANY" => format!("Numérique Services n°{} ({departement})", i + 1),
            _ => format!("Association de médiation numérique n°{} ({departement})", i + 1),
        };
        registrations.push(vec![Step {
            who: Who::Anct,
            mutation: "RegisterStructure",
            input: json!({ "name": name, "siret": siret, "kind": kind, "departement": departement,
                           "headCount": (HEAD_COUNTS[rng.below(HEAD_COUNTS.len() as u64) as usize]),
                           "registeredOn": iso(day(rng.below(30))) }),
            label: format!("structure:{i}"),
        }]);
    }
    let seeder = Seeder {
        schema: api::schema(state.clone(), false),
        store: store.clone(),
        seed,
        structures,
        sent: AtomicU64::new(0),
    };
    seeder.flows(registrations, concurrency).await.context("structures")?;

    // Training purchases: requested, approved, attended, paid (a few cancelled).
    let mut purchase_flows = Vec::new();
    let mut attended = Vec::new();
    for p in 0..scale.purchases {
        let s = rng.below(scale.structures as u64) as usize;
        let certifying = rng.below(2) == 0;
        let trainees = rng.range(8, 15);
        let start = rng.range(20, 480);
        let end = start + if certifying { rng.range(30, 90) } else { rng.range(1, 5) };
        let label = format!("purchase:{p}");
        let purchase = domain::purchase::PurchaseId::for_request(step_id(seed, &label)).to_string();
        let metier = ["MEDIATEUR_NUMERIQUE", "TRAVAILLEUR_SOCIAL", "AGENT_ACCUEIL", "CADRE"][rng.below(4) as usize];
        let mut flow = vec![Step {
            who: Who::Opco,
            mutation: "RequestPurchase",
            input: json!({
                "conventionId": code("ANCT-UNIFORMATION-2021"), "structureId": (seeder.structures[s].to_string()),
                "provider": (["Simplon", "Pop School", "WebForce3", "Emmaüs Connect", "La Mednum"][rng.below(5) as usize]),
                "title": if certifying { "Titre professionnel Responsable d'espace de médiation numérique" } else { "Accompagner les démarches en ligne" },
                "certification": if certifying { json!("RNCP34587") } else { json!(null) },
                "blocks": if certifying { json!([1, 2, 3, 4, 5]) } else { json!([1, 2, 3, 6]) },
                "metier": metier, "hours": if certifying { 140 } else { 21 }, "trainees": trainees,
                "unitCost": format!("{}.{:02}", if certifying { rng.range(1_400, 1_900) } else { rng.range(300, 480) }, rng.below(100)),
                "sessionStart": iso(day(start)), "sessionEnd": iso(day(end)), "requestedOn": iso(day(start.saturating_sub(15))),
            }),
            label: label.clone(),
        }];
        let cancelled = rng.below(20) == 0;
        let approved_on = iso(day(start.saturating_sub(10)));
        flow.push(Step {
            who: Who::Opco,
            mutation: "ApprovePurchase",
            input: json!({ "purchaseId": purchase, "approvedOn": approved_on }),
            label: format!("{label}:approve"),
        });
        if cancelled {
            flow.push(Step { who: Who::Opco, mutation: "CancelPurchase", input: json!({ "purchaseId": purchase, "reason": "Session annulée faute de participants", "cancelledOn": iso(day(start.saturating_sub(2))) }), label: format!("{label}:cancel") });
        } else {
            let present = trainees - rng.below(3).min(trainees - 1);
            flow.push(Step {
                who: Who::Opco,
                mutation: "RecordAttendance",
                input: json!({ "purchaseId": purchase, "present": present, "recordedOn": iso(day(end)) }),
                label: format!("{label}:attend"),
            });
            if rng.below(5) != 0 {
                flow.push(Step {
                    who: Who::Opco,
                    mutation: "RecordPurchasePayment",
                    input: json!({ "purchaseId": purchase, "paidOn": iso(day(end + rng.range(20, 60))) }),
                    label: format!("{label}:pay"),
                });
            }
            attended.push((purchase, s, end, present));
        }
        purchase_flows.push(flow);
    }
    seeder.flows(purchase_flows, concurrency).await.context("purchases")?;

    // Aidants Connect sessions (12 seats), then aidants at every stage.
    let sessions_needed = scale.aidants.div_ceil(12);
    let sessions: Vec<Flow> = (0..sessions_needed)
        .map(|k| {
            vec![Step {
                who: Who::Anct,
                mutation: "OpenAidantsConnectSession",
                input: json!({ "conventionId": code("ANCT-AIDANTS-CONNECT-2021"), "capacity": 12, "seatCost": "125.00",
                               "heldOn": iso(day(30 + (k as u64 * 600) / sessions_needed.max(1) as u64)) }),
                label: format!("session:{k}"),
            }]
        })
        .collect();
    seeder.flows(sessions, concurrency).await.context("sessions")?;
    let session_id =
        |k: usize| domain::aidants::SessionId::for_command(step_id(seed, &format!("session:{k}"))).0.to_string();
    let mut aidant_flows = Vec::new();
    for a in 0..scale.aidants {
        let s = rng.below(scale.structures as u64) as usize;
        let aidant = format!("AIDANT-{:05}", a + 1);
        let h = domain::aidants::HabilitationId::of(domain::structure::StructureId(seeder.structures[s]), &aidant)
            .0
            .to_string();
        // Round robin over the sessions: flows running at the same time register to
        // different sessions instead of racing for the same one.
        let k = a % sessions_needed;
        let held = 30 + (k as u64 * 600) / sessions_needed.max(1) as u64;
        let label = format!("aidant:{a}");
        // Stages: 0 requested, 1 validated, 2 registered, 3 trained, 4 habilitated,
        // 5 revoked, 6 refused, 7 cancelled; most reach habilitation.
        let stage = match rng.below(100) {
            0..=4 => 0,
            5..=11 => 1,
            12..=19 => 2,
            20..=29 => 3,
            30..=86 => 4,
            87..=91 => 5,
            92..=95 => 6,
            _ => 7,
        };
        let on = |d: u64| iso(day(d));
        let mut flow = vec![Step {
            who: Who::Structure(s),
            mutation: "RequestHabilitation",
            input: json!({ "structureId": (seeder.structures[s].to_string()), "aidant": aidant, "requestedOn": on(held.saturating_sub(25)) }),
            label: label.clone(),
        }];
        let step = |name: &'static str, input: Value, suffix: &str| Step {
            who: Who::Anct,
            mutation: name,
            input,
            label: format!("{label}:{suffix}"),
        };
        match stage {
            6 => flow.push(step("RefuseHabilitation", json!({ "habilitationId": h, "reason": "Pas de mission d'aidant professionnel", "on": on(held.saturating_sub(20)) }), "refuse")),
            7 => flow.push(step("CancelHabilitation", json!({ "habilitationId": h, "reason": "Départ de la structure", "on": on(held.saturating_sub(20)) }), "cancel")),
            _ => {
                let steps: [(&'static str, Value, &str); 4] = [
                    ("ValidateEligibility", json!({ "habilitationId": h, "on": on(held.saturating_sub(20)) }), "validate"),
                    ("RegisterToSession", json!({ "habilitationId": h, "sessionId": session_id(k), "on": on(held.saturating_sub(10)) }), "register"),
                    ("CompleteTraining", json!({ "habilitationId": h, "on": on(held) }), "train"),
                    ("Habilitate", json!({ "habilitationId": h, "means": if a % 3 == 0 { "CARD" } else { "APP" }, "on": on(held + 7) }), "habilitate"),
                ];
                for (name, input, suffix) in steps.into_iter().take(stage.min(4)) {
                    flow.push(step(name, input, suffix));
                }
                if stage == 5 {
                    flow.push(step("RevokeHabilitation", json!({ "habilitationId": h, "reason": "Fin de contrat", "on": on(held + 200) }), "revoke"));
                }
            }
        }
        aidant_flows.push(flow);
    }
    seeder.flows(aidant_flows, concurrency).await.context("aidants")?;

    // Pix: one campaign per public, certifications of candidates of the structures.
    let campaigns = [("AIDANTS_NUMERIQUES", "pix:aidants"), ("CONSEILLERS_ET_MEDIATEURS", "pix:mediateurs")];
    let per_campaign = scale.pix_certifications.div_ceil(2).max(1);
    let opened: Vec<Flow> = campaigns
        .iter()
        .map(|(public, label)| vec![Step { who: Who::Anct, mutation: "OpenPixCampaign", input: json!({ "conventionId": code("ANCT-PIX-2021"), "public": public, "certifications": per_campaign, "unitPrice": "55.00", "openedOn": iso(day(10)) }), label: label.to_string() }])
        .collect();
    seeder.flows(opened, concurrency).await.context("Pix campaigns")?;
    let certifications: Vec<Flow> = (0..scale.pix_certifications)
        .map(|c| {
            let (_, campaign) = campaigns[c % 2];
            let campaign = domain::pix::CampaignId::for_command(step_id(seed, campaign)).0.to_string();
            let s = rng.below(scale.structures as u64) as usize;
            vec![Step { who: Who::Anct, mutation: "RecordPixCertification", input: json!({ "campaignId": campaign, "candidate": format!("PIX-{:05}", c + 1), "structureId": (seeder.structures[s].to_string()), "score": rng.range(180, 880), "certifiedOn": iso(day(rng.range(20, 600))) }), label: format!("pix:{c}") }]
        })
        .collect();
    seeder.flows(certifications, concurrency).await.context("Pix certifications")?;

    // CCAS actions, in CCAS and CIAS only.
    let ccas: Vec<usize> = (0..scale.structures).filter(|i| kinds[*i] == "CCAS_CIAS").collect();
    let actions: Vec<Flow> = (0..scale.ccas_actions.min(ccas.len() * 4))
        .map(|c| {
            let s = ccas[rng.below(ccas.len() as u64) as usize];
            vec![Step { who: Who::Anct, mutation: "RecordCcasAction", input: json!({ "conventionId": code("ANCT-UNCCAS-2021"), "structureId": (seeder.structures[s].to_string()), "title": "Accueillir et orienter vers les démarches en ligne", "agents": rng.range(4, 14), "managers": rng.range(0, 3), "blocks": [3, 6, 8], "cost": format!("{}.00", rng.range(1_500, 4_500)), "heldOn": iso(day(rng.range(40, 600))) }), label: format!("ccas:{c}") }]
        })
        .collect();
    seeder.flows(actions, concurrency).await.context("CCAS actions")?;

    // Annex-cost claims on attended trainings, in every state.
    let mut claim_flows = Vec::new();
    let mut paid_by = Vec::new();
    let mut made = 0;
    'purchases: for (purchase, s, end, present) in &attended {
        for t in 0..*present {
            if made >= scale.claims {
                break 'purchases;
            }
            made += 1;
            let trainee = format!("STAGIAIRE-{made:05}");
            let claim =
                domain::claim::ClaimId::of(domain::purchase::PurchaseId::parse(purchase).expect("a uuid"), &trainee)
                    .to_string();
            let label = format!("claim:{made}");
            let nights = rng.range(0, 3);
            let area = ["STANDARD", "LARGE_CITY", "PARIS"][rng.below(3) as usize];
            let mut lines = vec![
                json!({ "kind": "PUBLIC_TRANSPORT", "quantity": 1, "amount": format!("{}.{:02}", rng.range(12, 140), rng.below(100)), "receipt": format!("BILLET-{made}") }),
            ];
            if nights > 0 {
                lines.push(json!({ "kind": "NIGHT", "quantity": nights, "area": area, "amount": format!("{}.00", nights * rng.range(60, 130)), "receipt": format!("HOTEL-{made}") }));
                lines.push(json!({ "kind": "MEAL", "quantity": 2 * nights, "amount": format!("{}.00", 2 * nights * rng.range(12, 22)), "receipt": format!("REPAS-{made}") }));
            }
            if t % 4 == 0 {
                let km = rng.range(20, 180);
                lines.push(json!({ "kind": "CAR", "quantity": km, "amount": format!("{}.00", km * 2 / 5), "receipt": format!("KM-{made}") }));
            }
            let submitted = end + rng.range(2, 60);
            let on = |d: u64| iso(day(d));
            let mut flow = vec![Step {
                who: Who::Structure(*s),
                mutation: "SubmitAnnexClaim",
                input: json!({ "purchaseId": purchase, "trainee": trainee, "lines": lines, "submittedOn": on(submitted) }),
                label: label.clone(),
            }];
            let opco = |name: &'static str, input: Value, suffix: &str| Step {
                who: Who::Opco,
                mutation: name,
                input,
                label: format!("{label}:{suffix}"),
            };
            let assessed = submitted + rng.range(3, 40);
            match rng.below(100) {
                // Never assessed: overdue.
                0..=5 => {}
                6..=10 => flow.push(opco(
                    "RejectAnnexClaim",
                    json!({ "claimId": claim, "reason": "Frais sans lien avec la formation", "on": on(assessed) }),
                    "reject",
                )),
                11..=15 => flow.push(opco(
                    "RequestAnnexClaimChanges",
                    json!({ "claimId": claim, "reason": "Justificatif illisible", "on": on(assessed) }),
                    "changes",
                )),
                16..=20 => flow.push(opco(
                    "ApproveAnnexClaim",
                    json!({ "claimId": claim, "approvedOn": on(assessed) }),
                    "approve",
                )),
                _ => {
                    let reductions = if rng.below(6) == 0 {
                        json!([{ "line": 1, "approved": "10.00", "reason": "Trajet partiellement hors formation" }])
                    } else {
                        json!([])
                    };
                    flow.push(opco(
                        "ApproveAnnexClaim",
                        json!({ "claimId": claim, "approvedOn": on(assessed), "reductions": reductions }),
                        "approve",
                    ));
                    let paid = assessed + rng.range(5, 30);
                    flow.push(opco("RecordAnnexClaimPayment", json!({ "claimId": claim, "paidOn": on(paid) }), "pay"));
                    paid_by.push(day(paid));
                }
            }
            claim_flows.push(flow);
        }
    }
    seeder.flows(claim_flows, concurrency).await.context("claims")?;

    // Quarterly funds calls; ANCT paid all but the last.
    if let (Some(first), Some(last)) = (paid_by.iter().min(), paid_by.iter().max()) {
        let mut quarters = Vec::new();
        let mut start = NaiveDate::from_ymd_opt(first.year_ce().1 as i32, 1, 1).expect("valid");
        while start <= *last {
            let next = start.checked_add_months(chrono::Months::new(3)).expect("in range");
            quarters.push((start, next.pred_opt().expect("valid")));
            start = next;
        }
        let count = quarters.len();
        for (q, (from, to)) in quarters.into_iter().enumerate() {
            let label = format!("funds-call:{q}");
            let issued = to.checked_add_days(Days::new(10)).expect("in range");
            let issue = Step {
                who: Who::Opco,
                mutation: "IssueFundsCall",
                input: json!({ "conventionId": code("ANCT-UNIFORMATION-2021"), "periodStart": iso(from), "periodEnd": iso(to), "issuedOn": iso(issued) }),
                label: label.clone(),
            };
            if !paid_by.iter().any(|p| (from..=to).contains(p)) {
                continue;
            }
            seeder.run(&issue).await.context("funds call")?;
            if q + 1 < count {
                let call = domain::funds_call::FundsCallId::for_command(step_id(seed, &label)).to_string();
                let paid = Step {
                    who: Who::Anct,
                    mutation: "RecordFundsCallPayment",
                    input: json!({ "conventionId": code("ANCT-UNIFORMATION-2021"), "fundsCallId": call, "paidOn": iso(issued.checked_add_days(Days::new(25 + 10 * (q as u64 % 5))).expect("in range")) }),
                    label: format!("{label}:paid"),
                };
                seeder.run(&paid).await.context("funds call payment")?;
            }
        }
    }
    let events = *store.head().borrow() - before;
    Ok(SeedReport { mutations: seeder.sent.load(Ordering::Relaxed), events, seconds: started.elapsed().as_secs_f64() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::MemoryStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_plan_seeds_every_programme_deterministically_and_once() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let report = seed(store.clone(), Scale::TINY, 7, 8).await.unwrap();
        assert!(report.events > 300, "{report:?}");
        let events = store.read_all(0, 100_000).await.unwrap();
        for kind in [
            "StructureRegistered",
            "PurchasePaid",
            "Habilitated",
            "HabilitationRevoked",
            "PixCertificationRecorded",
            "CcasActionRecorded",
            "AnnexClaimRejected",
            "AnnexClaimReimbursed",
            "FundsCallPaid",
        ] {
            assert!(events.iter().any(|e| e.event_type == kind), "the plan has a {kind}");
        }
        let again = seed(store.clone(), Scale::TINY, 7, 8).await.unwrap();
        assert_eq!(again.events, 0, "seeding again writes nothing");
        // The same seed gives the same events (payloads) on another log.
        let other: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        seed(other.clone(), Scale::TINY, 7, 8).await.unwrap();
        let mut a: Vec<String> = events.iter().map(|e| format!("{} {}", e.stream, e.payload.as_str())).collect();
        let mut b: Vec<String> = other
            .read_all(0, 100_000)
            .await
            .unwrap()
            .iter()
            .map(|e| format!("{} {}", e.stream, e.payload.as_str()))
            .collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }
}
