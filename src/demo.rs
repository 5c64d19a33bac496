//! A small, deterministic demo of the plan: its four conventions with the plan's amounts,
//! their envelopes, and a year of commitments across départements.
//!
//! The envelope split and the commitments are ours, not the plan's (the plan gives only
//! the conventions' totals). Command ids are derived from the scenario, so seeding twice
//! writes nothing the second time.

use anyhow::{Context, bail};
use chrono::NaiveDate;
use domain::convention::*;
use domain::ids::TRACKER_NAMESPACE;
use domain::{CommandId, CommandMeta, ConventionId, DepartementCode, EnvelopeId, Money};
use store::handler::stream_name;
use store::{EventStore, handle};
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
    }));
    out
}

/// The structure the demo's `structure` token is bound to.
pub fn demo_structure() -> Uuid {
    Uuid::new_v5(&TRACKER_NAMESPACE, b"demo:plan-2021:structure")
}

/// Creates one fresh token per role for the demo and returns their secrets; the previous
/// demo tokens are revoked, so only the ones just printed work.
pub fn tokens(store: &api::TokenStore) -> anyhow::Result<Vec<(api::Role, String)>> {
    for old in store.list().into_iter().filter(|t| t.revoked_at.is_none() && t.label.starts_with("demo ")) {
        store.revoke(old.id).map_err(|e| anyhow::anyhow!(e))?;
    }
    api::Role::ALL
        .into_iter()
        .map(|role| {
            let structure = (role == api::Role::Structure).then(demo_structure);
            let (_, secret) =
                store.create(role, structure, &format!("demo {}", role.name())).map_err(|e| anyhow::anyhow!(e))?;
            Ok((role, secret))
        })
        .collect()
}

/// Seeds the demo into `store`. Refuses a log that holds anything but the demo.
pub async fn seed(store: &dyn EventStore) -> anyhow::Result<usize> {
    let first = store.read_all(0, 1).await?;
    if let Some(e) = first.first()
        && e.metadata.command_id != command_id(0)
    {
        bail!("this data directory already holds other data: the demo is seeded only into an empty one");
    }
    let commands = commands();
    let mut written = 0;
    for (n, command) in commands.iter().enumerate() {
        let meta = CommandMeta::new(command_id(n), ACTOR);
        let stream = stream_name::<Convention>(command.convention_id());
        let outcome = handle::<Convention>(store, &stream, command, &meta)
            .await
            .with_context(|| format!("demo command {n} was refused"))?;
        if !outcome.duplicate {
            written += 1;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::MemoryStore;

    #[tokio::test]
    async fn seeds_every_command_once_and_is_idempotent() {
        let store = MemoryStore::new();
        let n = seed(&store).await.unwrap();
        assert_eq!(n, commands().len());
        assert_eq!(seed(&store).await.unwrap(), 0, "seeding again writes nothing");
        assert_eq!(store.read_all(0, 10_000).await.unwrap().len(), commands().len());
    }

    #[test]
    fn demo_tokens_replace_the_previous_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = api::TokenStore::open(dir.path()).unwrap();
        let first = tokens(&store).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        let second = tokens(&store).unwrap();
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
        assert!(seed(&store).await.is_err());
    }
}
