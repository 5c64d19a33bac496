//! The plan at full scale, deterministically from a seed: about 2 000 trainees through
//! training purchases across the 101 départements, 20 000 aidants at every stage of their
//! Aidants Connect habilitation, Pix certifications, CCAS actions, annex-cost claims in
//! every state and quarterly funds calls, over 2021–2022, more where more people live.
//!
//! Everything after the conventions goes through the typed use cases, as the OPCO, ANCT
//! and the structures would send it, many flows at a time (each entity's steps in order);
//! one function per programme generates its steps. Command ids come from the seed and the
//! step, so seeding again writes nothing. The figures and distributions are ours, not the
//! plan's.

use crate::seeding::{Command, Flow, Progress, Seeder, Step};
use api::Role;
use chrono::{Datelike, Days, NaiveDate};
use domain::aidants::{HabilitationCommand, HabilitationId, Means, SessionCommand, SessionId};
use domain::annex::{ExpenseKind, StayArea};
use domain::ccas::{CcasActionId, RecordCcasAction};
use domain::claim::{ClaimCommand, ClaimId, ExpenseLine, LineDecision};
use domain::framework::{CompetencyBlock, Metier};
use domain::funds_call::{FundsCallCommand, FundsCallId};
use domain::ids::TRACKER_NAMESPACE;
use domain::pix::{CampaignId, PixCommand, PixPublic};
use domain::purchase::{PurchaseCommand, PurchaseId, RequestPurchase};
use domain::structure::{HeadCount, RegisterStructure, Siret, StructureCommand, StructureId, StructureKind};
use domain::{CommandId, ConventionId, DepartementCode, Money};
use std::sync::Arc;
use store::{EventStore, PersonKind};
use usecases::programmes::AnnexClaimRequest;
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

fn step_id(seed: u64, label: &str) -> CommandId {
    CommandId(Uuid::new_v5(&TRACKER_NAMESPACE, format!("plan-2021:{seed}:{label}").as_bytes()))
}

/// What seeding did.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedReport {
    /// Commands sent to the use cases (steps already in the log are skipped unsent).
    pub commands: u64,
    pub events: u64,
    pub seconds: f64,
}

const KINDS: &[(StructureKind, u64)] = &[
    (StructureKind::Association, 45),
    (StructureKind::CcasCias, 25),
    (StructureKind::CommuneOrEpci, 20),
    (StructureKind::PrivateCompany, 10),
];
const HEAD_COUNTS: &[HeadCount] =
    &[HeadCount::Micro, HeadCount::Small, HeadCount::Small, HeadCount::Medium, HeadCount::Large];

/// The seed of the demo's plan.
pub const SEED: u64 = 2021;

/// Flows seeded at a time: enough for the log to commit appends in large groups.
pub const CONCURRENCY: usize = 128;

/// The id of the plan's n-th structure.
pub fn structure(n: usize) -> Uuid {
    StructureId::for_siret(&Siret::parse(&siret(n)).expect("valid")).0
}

fn siret(n: usize) -> String {
    let base = format!("8{:012}", 100_000_000 + n);
    (0..10).map(|d| format!("{base}{d}")).find(|s| Siret::parse(s).is_ok()).expect("one check digit fits")
}

fn blocks(numbers: &[u8]) -> Vec<CompetencyBlock> {
    numbers.iter().map(|n| CompetencyBlock::from_number(*n).expect("a block of the framework")).collect()
}

fn departement(code: &str) -> DepartementCode {
    DepartementCode::parse(code).expect("a listed département")
}

/// What the generator knows of a structure it registered: what later steps about it carry
/// (the API read the same facts from the structure's stream).
struct Home {
    id: StructureId,
    kind: StructureKind,
    departement: DepartementCode,
}

/// A training attended: claims are made on it.
struct Attended {
    purchase: PurchaseId,
    structure: usize,
    end: u64,
    present: u64,
}

/// The claims' steps, in the waves the saga must act between.
struct Claims {
    submissions: Vec<Flow>,
    assessments: Vec<Flow>,
    payments: Vec<Flow>,
    /// When the OPCO paid each claim it paid.
    paid_by: Vec<NaiveDate>,
}

/// Generates the plan's steps, programme by programme, from one random stream: the
/// programmes must be generated in the same order every time.
struct Generator {
    rng: Rng,
    seed: u64,
    scale: Scale,
    homes: Vec<Home>,
}

impl Generator {
    fn step(&self, who: Role, label: String, command: impl FnOnce(CommandId) -> Command) -> Step {
        let id = step_id(self.seed, &label);
        Step { who, id, label, command: command(id) }
    }

    /// A structure, uniformly among the plan's.
    fn some_structure(&mut self) -> usize {
        self.rng.below(self.scale.structures as u64) as usize
    }

    /// A private employer (association, company), uniformly among the plan's: the OPCO
    /// channel funds private-sector employers only; public ones train elsewhere (CNFPT,
    /// the UNCCAS convention).
    fn some_private_structure(&mut self) -> usize {
        let private: Vec<usize> = (0..self.homes.len()).filter(|i| !self.homes[*i].kind.is_public()).collect();
        private[self.rng.below(private.len() as u64) as usize]
    }

    /// Employer structures, where people live.
    fn structures(&mut self) -> Vec<Flow> {
        let mut flows = Vec::with_capacity(self.scale.structures);
        for i in 0..self.scale.structures {
            let home = self.rng.departement();
            let mut pick = self.rng.below(100);
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
                .map_or(StructureKind::Association, |k| k.0);
            let name = match kind {
                StructureKind::CcasCias => format!("CCAS n°{} ({home})", i + 1),
                StructureKind::CommuneOrEpci => format!("Communauté de communes n°{} ({home})", i + 1),
                StructureKind::PrivateCompany => format!("Numérique Services n°{} ({home})", i + 1),
                _ => format!("Association de médiation numérique n°{} ({home})", i + 1),
            };
            let siret = Siret::parse(&siret(i)).expect("valid");
            let head_count = HEAD_COUNTS[self.rng.below(HEAD_COUNTS.len() as u64) as usize];
            let registered_on = day(self.rng.below(30));
            self.homes.push(Home { id: StructureId::for_siret(&siret), kind, departement: departement(home) });
            let command = StructureCommand::Register(RegisterStructure {
                name,
                siret,
                kind,
                departement: departement(home),
                head_count,
                registered_on,
            });
            flows.push(vec![self.step(Role::Anct, format!("structure:{i}"), |_| Command::Structure(command))]);
        }
        flows
    }

    /// Training purchases: requested, approved, attended, paid (a few cancelled).
    fn purchases(&mut self, convention: ConventionId) -> (Vec<Flow>, Vec<Attended>) {
        let mut flows = Vec::new();
        let mut attended = Vec::new();
        for p in 0..self.scale.purchases {
            let s = self.some_private_structure();
            let certifying = self.rng.below(2) == 0;
            let trainees = self.rng.range(8, 15);
            let start = self.rng.range(20, 480);
            let end = start + if certifying { self.rng.range(30, 90) } else { self.rng.range(1, 5) };
            let label = format!("purchase:{p}");
            let purchase = PurchaseId::for_request(step_id(self.seed, &label));
            let metier = [Metier::MediateurNumerique, Metier::TravailleurSocial, Metier::AgentAccueil, Metier::Cadre]
                [self.rng.below(4) as usize];
            let provider =
                ["Simplon", "Pop School", "WebForce3", "Emmaüs Connect", "La Mednum"][self.rng.below(5) as usize];
            let euros = if certifying { self.rng.range(1_400, 1_900) } else { self.rng.range(300, 480) };
            let unit_cost = Money::cents((euros * 100 + self.rng.below(100)) as i64);
            let request = RequestPurchase {
                purchase_id: purchase,
                convention_id: convention,
                structure_id: self.homes[s].id,
                departement: self.homes[s].departement.clone(),
                structure_kind: self.homes[s].kind,
                provider: provider.into(),
                title: if certifying {
                    "Titre professionnel Responsable d'espace de médiation numérique"
                } else {
                    "Accompagner les démarches en ligne"
                }
                .into(),
                certification: certifying.then(|| "RNCP34587".to_string()),
                blocks: if certifying { blocks(&[1, 2, 3, 4, 5]) } else { blocks(&[1, 2, 3, 6]) },
                metier,
                hours: if certifying { 140 } else { 21 },
                trainees: trainees as u32,
                unit_cost,
                session_start: day(start),
                session_end: day(end),
                requested_on: day(start.saturating_sub(15)),
            };
            // The rest of the purchase's draws, in the plan's order, before its steps.
            let cancelled = self.rng.below(20) == 0;
            let (present, paid) = if cancelled {
                (0, None)
            } else {
                let present = trainees - self.rng.below(3).min(trainees - 1);
                (present, (self.rng.below(5) != 0).then(|| self.rng.range(20, 60)))
            };
            let opco = |suffix: &str, command: PurchaseCommand| {
                self.step(Role::Opco, format!("{label}{suffix}"), |_| Command::Purchase(command))
            };
            let mut flow = vec![
                opco("", PurchaseCommand::Request(Box::new(request))),
                opco(
                    ":approve",
                    PurchaseCommand::Approve { purchase_id: purchase, approved_on: day(start.saturating_sub(10)) },
                ),
            ];
            if cancelled {
                flow.push(opco(
                    ":cancel",
                    PurchaseCommand::Cancel {
                        purchase_id: purchase,
                        reason: "Session annulée faute de participants".into(),
                        cancelled_on: day(start.saturating_sub(2)),
                    },
                ));
            } else {
                flow.push(opco(
                    ":attend",
                    PurchaseCommand::RecordAttendance {
                        purchase_id: purchase,
                        present: present as u32,
                        recorded_on: day(end),
                    },
                ));
                if let Some(after) = paid {
                    let paid_on = day(end + after);
                    flow.push(opco(":pay", PurchaseCommand::RecordPayment { purchase_id: purchase, paid_on }));
                }
                attended.push(Attended { purchase, structure: s, end, present });
            }
            flows.push(flow);
        }
        (flows, attended)
    }

    fn sessions_needed(&self) -> usize {
        self.scale.aidants.div_ceil(12)
    }

    /// The day the k-th Aidants Connect session is held.
    fn held(&self, k: usize) -> u64 {
        30 + (k as u64 * 600) / self.sessions_needed().max(1) as u64
    }

    fn session_id(&self, k: usize) -> SessionId {
        SessionId::for_command(step_id(self.seed, &format!("session:{k}")))
    }

    /// Aidants Connect sessions of 12 seats.
    fn sessions(&self, convention: ConventionId) -> Vec<Flow> {
        (0..self.sessions_needed())
            .map(|k| {
                let command = SessionCommand::Open {
                    session_id: self.session_id(k),
                    convention_id: convention,
                    capacity: 12,
                    seat_cost: Money::cents(12_500),
                    held_on: day(self.held(k)),
                };
                vec![self.step(Role::Anct, format!("session:{k}"), |_| Command::Session(command))]
            })
            .collect()
    }

    /// Aidants at every stage of their habilitation, by the ids the directory issued for
    /// their invented references (one batch per structure), the habilitation ids derived
    /// from those ids as the API derives them.
    fn aidants(&mut self, seeder: &Seeder) -> anyhow::Result<Vec<Flow>> {
        // The draws first, in the plan's order: each aidant's structure and stage.
        let drawn: Vec<(usize, u64)> = (0..self.scale.aidants)
            .map(|_| {
                let s = self.some_structure();
                (s, self.rng.below(100))
            })
            .collect();
        let mut by_structure: Vec<Vec<usize>> = vec![Vec::new(); self.homes.len()];
        for (a, (s, _)) in drawn.iter().enumerate() {
            by_structure[*s].push(a);
        }
        let mut ids = vec![String::new(); drawn.len()];
        for (s, aidants) in by_structure.iter().enumerate().filter(|(_, a)| !a.is_empty()) {
            let references: Vec<String> = aidants.iter().map(|a| format!("AIDANT-{:05}", a + 1)).collect();
            let references: Vec<&str> = references.iter().map(String::as_str).collect();
            let issued = seeder.invented(PersonKind::Aidant, &self.homes[s].id.0.to_string(), &references)?;
            for (a, id) in aidants.iter().zip(issued) {
                ids[*a] = id;
            }
        }
        let mut flows = Vec::with_capacity(self.scale.aidants);
        for (a, ((s, draw), aidant)) in drawn.into_iter().zip(ids).enumerate() {
            let h = HabilitationId::of(self.homes[s].id, &aidant);
            // Round robin over the sessions: flows running at the same time register to
            // different sessions instead of waiting for the same one.
            let k = a % self.sessions_needed();
            let held = self.held(k);
            let label = format!("aidant:{a}");
            // Stages: 0 requested, 1 validated, 2 registered, 3 trained, 4 habilitated,
            // 5 revoked, 6 refused, 7 cancelled; most reach habilitation.
            let stage = match draw {
                0..=4 => 0,
                5..=11 => 1,
                12..=19 => 2,
                20..=29 => 3,
                30..=86 => 4,
                87..=91 => 5,
                92..=95 => 6,
                _ => 7,
            };
            let request = HabilitationCommand::Request {
                habilitation_id: h,
                structure_id: self.homes[s].id,
                departement: self.homes[s].departement.clone(),
                aidant,
                on: day(held.saturating_sub(25)),
            };
            let mut flow = vec![self.step(Role::Structure, label.clone(), |_| Command::Habilitation(request))];
            let anct = |suffix: &str, command: Command| self.step(Role::Anct, format!("{label}:{suffix}"), |_| command);
            let step = |command| Command::Habilitation(command);
            match stage {
                6 => flow.push(anct(
                    "refuse",
                    step(HabilitationCommand::Refuse {
                        habilitation_id: h,
                        reason: "Pas de mission d'aidant professionnel".into(),
                        on: day(held.saturating_sub(20)),
                    }),
                )),
                7 => flow.push(anct(
                    "cancel",
                    step(HabilitationCommand::Cancel {
                        habilitation_id: h,
                        reason: "Départ de la structure".into(),
                        on: day(held.saturating_sub(20)),
                    }),
                )),
                _ => {
                    let means = if a % 3 == 0 { Means::Card } else { Means::App };
                    let steps = [
                        (
                            "validate",
                            step(HabilitationCommand::ValidateEligibility {
                                habilitation_id: h,
                                on: day(held.saturating_sub(20)),
                            }),
                        ),
                        (
                            "register",
                            Command::RegisterToSession {
                                habilitation: h,
                                session: self.session_id(k),
                                on: day(held.saturating_sub(10)),
                            },
                        ),
                        ("train", step(HabilitationCommand::CompleteTraining { habilitation_id: h, on: day(held) })),
                        (
                            "habilitate",
                            step(HabilitationCommand::Habilitate { habilitation_id: h, means, on: day(held + 7) }),
                        ),
                    ];
                    for (suffix, command) in steps.into_iter().take(stage.min(4)) {
                        flow.push(anct(suffix, command));
                    }
                    if stage == 5 {
                        flow.push(anct(
                            "revoke",
                            step(HabilitationCommand::Revoke {
                                habilitation_id: h,
                                reason: "Fin de contrat".into(),
                                on: day(held + 200),
                            }),
                        ));
                    }
                }
            }
            flows.push(flow);
        }
        Ok(flows)
    }

    /// Pix: one campaign per public, then certifications of candidates of the structures
    /// (by the ids the directory issued for their invented references, one batch per
    /// campaign).
    fn pix(&mut self, convention: ConventionId, seeder: &Seeder) -> anyhow::Result<(Vec<Flow>, Vec<Flow>)> {
        let campaigns =
            [(PixPublic::AidantsNumeriques, "pix:aidants"), (PixPublic::ConseillersEtMediateurs, "pix:mediateurs")];
        let per_campaign = self.scale.pix_certifications.div_ceil(2).max(1);
        let opened = campaigns
            .iter()
            .map(|(public, label)| {
                vec![self.step(Role::Anct, label.to_string(), |id| {
                    Command::Pix(PixCommand::OpenCampaign {
                        campaign_id: CampaignId::for_command(id),
                        convention_id: convention,
                        public: *public,
                        certifications: per_campaign as u32,
                        unit_price: Money::cents(5_500),
                        opened_on: day(10),
                    })
                })]
            })
            .collect();
        let mut candidates = vec![String::new(); self.scale.pix_certifications];
        for (n, (_, label)) in campaigns.iter().enumerate() {
            let campaign_id = CampaignId::for_command(step_id(self.seed, label));
            let of_campaign: Vec<usize> = (n..self.scale.pix_certifications).step_by(2).collect();
            let references: Vec<String> = of_campaign.iter().map(|c| format!("PIX-{:05}", c + 1)).collect();
            let references: Vec<&str> = references.iter().map(String::as_str).collect();
            let issued = seeder.invented(PersonKind::Candidate, &campaign_id.0.to_string(), &references)?;
            for (c, id) in of_campaign.into_iter().zip(issued) {
                candidates[c] = id;
            }
        }
        let certifications = candidates
            .into_iter()
            .enumerate()
            .map(|(c, candidate)| {
                let campaign_id = CampaignId::for_command(step_id(self.seed, campaigns[c % 2].1));
                let s = self.some_structure();
                let score = self.rng.range(180, 880) as u16;
                let certified_on = day(self.rng.range(20, 600));
                let command = PixCommand::RecordCertification {
                    campaign_id,
                    candidate,
                    structure_id: self.homes[s].id,
                    departement: self.homes[s].departement.clone(),
                    score,
                    certified_on,
                };
                vec![self.step(Role::Anct, format!("pix:{c}"), |_| Command::Pix(command))]
            })
            .collect();
        Ok((opened, certifications))
    }

    /// CCAS actions, in CCAS and CIAS only.
    fn ccas(&mut self, convention: ConventionId) -> Vec<Flow> {
        let ccas: Vec<usize> =
            (0..self.homes.len()).filter(|i| self.homes[*i].kind == StructureKind::CcasCias).collect();
        (0..self.scale.ccas_actions.min(ccas.len() * 4))
            .map(|c| {
                let s = ccas[self.rng.below(ccas.len() as u64) as usize];
                let agents = self.rng.range(4, 14) as u32;
                let managers = self.rng.range(0, 3) as u32;
                let cost = Money::euros(self.rng.range(1_500, 4_500) as i64);
                let held_on = day(self.rng.range(40, 600));
                vec![self.step(Role::Anct, format!("ccas:{c}"), |id| {
                    Command::Ccas(RecordCcasAction {
                        action_id: CcasActionId::for_command(id),
                        convention_id: convention,
                        structure_id: self.homes[s].id,
                        structure_kind: self.homes[s].kind,
                        departement: self.homes[s].departement.clone(),
                        title: "Accueillir et orienter vers les démarches en ligne".into(),
                        agents,
                        managers,
                        blocks: blocks(&[3, 6, 8]),
                        cost,
                        held_on,
                    })
                })]
            })
            .collect()
    }

    /// Annex-cost claims on attended trainings, in every state; trainees by the ids the
    /// directory issued for their invented references (one batch per purchase), the claim
    /// ids derived from those ids as the API derives them.
    fn claims(&mut self, attended: &[Attended], seeder: &Seeder) -> anyhow::Result<Claims> {
        let mut claims =
            Claims { submissions: Vec::new(), assessments: Vec::new(), payments: Vec::new(), paid_by: Vec::new() };
        let mut made = 0;
        for training in attended {
            let count = training.present.min((self.scale.claims - made) as u64);
            if count == 0 {
                break;
            }
            let references: Vec<String> = (1..=count).map(|n| format!("STAGIAIRE-{:05}", made as u64 + n)).collect();
            let references: Vec<&str> = references.iter().map(String::as_str).collect();
            let trainees = seeder.invented(PersonKind::Trainee, &training.purchase.0.to_string(), &references)?;
            for (t, trainee) in trainees.into_iter().enumerate() {
                let t = t as u64;
                made += 1;
                let claim = ClaimId::of(training.purchase, &trainee);
                let label = format!("claim:{made}");
                let nights = self.rng.range(0, 3);
                let area = [StayArea::Standard, StayArea::LargeCity, StayArea::Paris][self.rng.below(3) as usize];
                let line = |kind, quantity: u64, area, amount, receipt: String| ExpenseLine {
                    kind,
                    quantity: quantity as u32,
                    area,
                    amount,
                    receipt,
                };
                let ticket = self.rng.range(12, 140) * 100 + self.rng.below(100);
                let mut lines = vec![line(
                    ExpenseKind::PublicTransport,
                    1,
                    None,
                    Money::cents(ticket as i64),
                    format!("BILLET-{made}"),
                )];
                if nights > 0 {
                    let night = Money::euros((nights * self.rng.range(60, 130)) as i64);
                    lines.push(line(ExpenseKind::Night, nights, Some(area), night, format!("HOTEL-{made}")));
                    let meals = Money::euros((2 * nights * self.rng.range(12, 22)) as i64);
                    lines.push(line(ExpenseKind::Meal, 2 * nights, None, meals, format!("REPAS-{made}")));
                }
                if t.is_multiple_of(4) {
                    let km = self.rng.range(20, 180);
                    lines.push(line(
                        ExpenseKind::Car,
                        km,
                        None,
                        Money::euros((km * 2 / 5) as i64),
                        format!("KM-{made}"),
                    ));
                }
                let submitted = training.end + self.rng.range(2, 60);
                let request = AnnexClaimRequest {
                    claim_id: claim,
                    structure_id: Some(self.homes[training.structure].id),
                    purchase_id: training.purchase,
                    trainee,
                    lines,
                    submitted_on: day(submitted),
                };
                // The rest of the claim's draws, in the plan's order, before its steps.
                let assessed = day(submitted + self.rng.range(3, 40));
                let verdict = self.rng.below(100);
                let (reduced, paid_after) =
                    if verdict > 20 { (self.rng.below(6) == 0, self.rng.range(5, 30)) } else { (false, 0) };
                claims
                    .submissions
                    .push(vec![self.step(Role::Structure, label.clone(), |_| Command::SubmitClaim(request))]);
                let opco = |suffix: &str, command: ClaimCommand| {
                    vec![self.step(Role::Opco, format!("{label}:{suffix}"), |_| Command::Claim(command))]
                };
                match verdict {
                    // Never assessed: overdue.
                    0..=5 => {}
                    6..=10 => claims.assessments.push(opco(
                        "reject",
                        ClaimCommand::Reject {
                            claim_id: claim,
                            reason: "Frais sans lien avec la formation".into(),
                            rejected_on: assessed,
                        },
                    )),
                    11..=15 => claims.assessments.push(opco(
                        "changes",
                        ClaimCommand::RequestChanges {
                            claim_id: claim,
                            reason: "Justificatif illisible".into(),
                            requested_on: assessed,
                        },
                    )),
                    16..=20 => claims.assessments.push(opco(
                        "approve",
                        ClaimCommand::Approve { claim_id: claim, reductions: vec![], approved_on: assessed },
                    )),
                    _ => {
                        let reductions = if reduced {
                            vec![LineDecision {
                                line: 1,
                                approved: Money::cents(1_000),
                                reason: Some("Trajet partiellement hors formation".into()),
                            }]
                        } else {
                            vec![]
                        };
                        claims.assessments.push(opco(
                            "approve",
                            ClaimCommand::Approve { claim_id: claim, reductions, approved_on: assessed },
                        ));
                        let paid_on = assessed + Days::new(paid_after);
                        claims.payments.push(opco("pay", ClaimCommand::RecordPayment { claim_id: claim, paid_on }));
                        claims.paid_by.push(paid_on);
                    }
                }
            }
        }
        Ok(claims)
    }

    /// Quarterly funds calls of the claims paid; ANCT paid all but the last. Each call
    /// with its payment, if any.
    fn funds_calls(&self, convention: ConventionId, paid_by: &[NaiveDate]) -> Vec<(Step, Option<Step>)> {
        let (Some(first), Some(last)) = (paid_by.iter().min(), paid_by.iter().max()) else { return vec![] };
        let mut quarters = Vec::new();
        let mut start = NaiveDate::from_ymd_opt(first.year_ce().1 as i32, 1, 1).expect("valid");
        while start <= *last {
            let next = start.checked_add_months(chrono::Months::new(3)).expect("in range");
            quarters.push((start, next.pred_opt().expect("valid")));
            start = next;
        }
        let count = quarters.len();
        let mut calls = Vec::new();
        for (q, (from, to)) in quarters.into_iter().enumerate() {
            if !paid_by.iter().any(|p| (from..=to).contains(p)) {
                continue;
            }
            let label = format!("funds-call:{q}");
            let call_id = FundsCallId::for_command(step_id(self.seed, &label));
            let issued_on = to.checked_add_days(Days::new(10)).expect("in range");
            let issue = self.step(Role::Opco, label.clone(), |_| {
                Command::FundsCall(FundsCallCommand::Issue {
                    convention_id: convention,
                    call_id,
                    period_start: from,
                    period_end: to,
                    claims: None,
                    issued_on,
                    payment_days: None,
                })
            });
            let paid = (q + 1 < count).then(|| {
                let paid_on = issued_on.checked_add_days(Days::new(25 + 10 * (q as u64 % 5))).expect("in range");
                self.step(Role::Anct, format!("{label}:paid"), |_| {
                    Command::FundsCall(FundsCallCommand::RecordPayment { convention_id: convention, call_id, paid_on })
                })
            });
            calls.push((issue, paid));
        }
        calls
    }
}

/// Seeds the plan at `scale` into `store` (after the conventions of the small demo), with
/// `concurrency` flows at a time, its invented references of persons into `people` (the
/// data directory's directory of persons). Idempotent.
pub async fn seed(
    store: Arc<dyn EventStore>,
    people: Arc<store::Directory>,
    scale: Scale,
    seed: u64,
    concurrency: usize,
) -> anyhow::Result<SeedReport> {
    seed_with_progress(store, people, scale, seed, concurrency, Progress::hidden()).await
}

/// [`seed`], drawing its progress.
pub async fn seed_with_progress(
    store: Arc<dyn EventStore>,
    people: Arc<store::Directory>,
    scale: Scale,
    seed: u64,
    concurrency: usize,
    progress: Progress,
) -> anyhow::Result<SeedReport> {
    let started = std::time::Instant::now();
    let before = *store.head().borrow();
    progress.begin(before);
    crate::demo::seed_conventions(store.clone()).await?;
    let seeder = Seeder::new(store.clone(), people, progress).await?;
    let code = ConventionId::for_code;
    let mut plan = Generator { rng: Rng(seed), seed, scale, homes: Vec::with_capacity(scale.structures) };

    // Every flow drawn first, in the plan's order (the draws make it deterministic), then
    // run: the Aidants Connect chain beside the others, since it shares no entity with
    // them and its trainings all charge one convention, whose commits follow one another.
    let structures = plan.structures();
    let (purchases, attended) = plan.purchases(code("ANCT-UNIFORMATION-2021"));
    let sessions = plan.sessions(code("ANCT-AIDANTS-CONNECT-2021"));
    let aidants = plan.aidants(&seeder)?;
    let (campaigns, certifications) = plan.pix(code("ANCT-PIX-2021"), &seeder)?;
    let ccas = plan.ccas(code("ANCT-UNCCAS-2021"));
    let claims = plan.claims(&attended, &seeder)?;
    let calls = plan.funds_calls(code("ANCT-UNIFORMATION-2021"), &claims.paid_by);

    seeder.flows("structures", structures, concurrency).await?;
    let aidants_connect = async {
        seeder.flows("sessions", sessions, concurrency).await?;
        seeder.flows("aidants", aidants, concurrency).await
    };
    let others = async {
        seeder.flows("purchases", purchases, concurrency).await?;
        seeder.flows("Pix campaigns", campaigns, concurrency).await?;
        seeder.flows("Pix certifications", certifications, concurrency).await?;
        seeder.flows("CCAS actions", ccas, concurrency).await?;
        // Claims in waves, the saga acting after each as it did after every claim step:
        // each submission flagged overdue (they are all past their 30 days today), each
        // approved claim funded before the OPCO pays it, each paid claim queued for a
        // funds call.
        seeder.flows("claims", claims.submissions, concurrency).await?;
        seeder.settle().await?;
        seeder.flows("claim assessments", claims.assessments, concurrency).await?;
        seeder.settle().await?;
        seeder.flows("claim payments", claims.payments, concurrency).await?;
        seeder.settle().await?;
        let calls = calls.into_iter().flat_map(|(issue, paid)| std::iter::once(issue).chain(paid)).collect();
        seeder.steps("funds calls", calls).await
    };
    tokio::try_join!(aidants_connect, others)?;
    seeder.steps("register of measures", crate::register::steps()).await?;
    seeder.progress().finish();
    let events = *store.head().borrow() - before;
    Ok(SeedReport { commands: seeder.sent(), events, seconds: started.elapsed().as_secs_f64() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::MemoryStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_plan_seeds_every_programme_deterministically_and_once() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let people = Arc::new(store::Directory::in_memory());
        let report = seed(store.clone(), people.clone(), Scale::TINY, 7, 8).await.unwrap();
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
        let again = seed(store.clone(), people, Scale::TINY, 7, 8).await.unwrap();
        assert_eq!(again.events, 0, "seeding again writes nothing");
        // The same seed gives the same events (payloads) on another log.
        let other: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        // (with another directory of persons: the invented references' ids are derived)
        seed(other.clone(), Arc::new(store::Directory::in_memory()), Scale::TINY, 7, 8).await.unwrap();
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
