//! The money invariants on random histories, at every position of the log: each
//! funder's part of every figure comes from the envelope's financing plan, and the parts
//! add up to the figure to the cent (per envelope and per convention, for allocated,
//! committed, service done and paid); the national total is still the sum of the
//! territories and the unassigned.

use chrono::NaiveDate;
use domain::convention::*;
use domain::financing::{EnvelopeFinancing, FunderPart};
use domain::{Aggregate, CommandId, CommandMeta, ConventionId, DepartementCode, EnvelopeId, Money};
use projections::Projection;
use projections::budget::{BudgetView, Figures};
use projections::dashboard::{DashboardView, Indicators, Scope};
use proptest::prelude::*;
use rust_decimal::Decimal;
use store::handler::stream_name;
use store::{EventStore, MemoryStore, handle};

const CODE: &str = "ANCT-UNIFORMATION-2021";
const FUNDERS: [&str; 3] = ["ANCT", "Uniformation", "Région"];

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn id() -> ConventionId {
    ConventionId::for_code(CODE)
}

fn envelope(k: u8) -> EnvelopeId {
    EnvelopeId::for_name(id(), &format!("E{}", k % 3))
}

fn cents(m: Money) -> i64 {
    (m.amount() * Decimal::ONE_HUNDRED).try_into().unwrap()
}

/// A plan for `amount` among the first `n` funders, drawn from `pick` and `seed`: all to
/// one funder, rates with two decimals adding up to 100, or amounts adding up to it.
fn plan(n: usize, amount: Money, pick: u8, seed: u32) -> Vec<FunderPart> {
    let funders = &FUNDERS[..n];
    match pick % 3 {
        0 => vec![FunderPart::whole(funders[seed as usize % n])],
        1 => {
            // Cut 100.00 % into n rates of basis points at random points.
            let mut cuts: Vec<u32> = (1..n as u32).map(|i| (seed.rotate_left(i * 7) % 9_999) + 1).collect();
            cuts.sort();
            cuts.dedup();
            let mut bounds = vec![0];
            bounds.extend(cuts);
            bounds.push(10_000);
            bounds
                .windows(2)
                .zip(funders)
                .map(|(w, f)| FunderPart::rate(f, Decimal::new(i64::from(w[1] - w[0]), 2)))
                .collect()
        }
        _ => {
            let weights: Vec<Decimal> =
                (0..n).map(|i| Decimal::from(1 + (seed.rotate_left(i as u32 * 5) % 97))).collect();
            amount.split(&weights).into_iter().zip(funders).map(|(a, f)| FunderPart::amount(f, a)).collect()
        }
    }
}

fn sum(figures: impl Iterator<Item = Figures>) -> Figures {
    figures.fold(Figures::default(), |acc, f| Figures {
        allocated: acc.allocated + f.allocated,
        committed: acc.committed + f.committed,
        service_done: acc.service_done + f.service_done,
        paid: acc.paid + f.paid,
    })
}

struct History {
    store: MemoryStore,
    state: Convention,
    budget: BudgetView,
    dashboard: DashboardView,
    read: u64,
    n: u128,
}

impl History {
    /// Sends a command; a refused one writes nothing and is skipped (histories are
    /// random). Then folds what was written and checks the invariants.
    async fn send(&mut self, command: ConventionCommand) {
        self.n += 1;
        let meta = CommandMeta::new(CommandId::from(uuid::Uuid::from_u128(self.n)), "test");
        let _ = handle::<Convention>(&self.store, &stream_name::<Convention>(id()), &command, &meta).await;
        for e in self.store.read_all(self.read, 1_000).await.unwrap() {
            self.read = e.position;
            let event: ConventionEvent = e.payload.decode().unwrap();
            self.state.evolve(&event);
            self.budget.apply(&e).unwrap();
            self.dashboard.apply(&e).unwrap();
            self.check();
        }
    }

    fn check(&self) {
        let Some(budget) = self.budget.by_code(CODE) else { return };
        for envelope in &budget.envelopes {
            let parts = sum(envelope.funders().into_iter().map(|(_, f)| f));
            assert_eq!(parts, envelope.figures, "envelope {}: the funders' parts add up", envelope.name);
            let decided = &self.state.0.as_ref().unwrap().envelopes[&envelope.id];
            assert_eq!(
                (decided.allocated, decided.committed, decided.service_done, decided.paid),
                (
                    envelope.figures.allocated,
                    envelope.figures.committed,
                    envelope.figures.service_done,
                    envelope.figures.paid
                ),
                "the read model agrees with the decisions"
            );
        }
        assert_eq!(sum(budget.by_funder().into_iter().map(|(_, f)| f)), budget.figures(), "the convention's parts");
        let national = self.dashboard.total(&Scope::default());
        let mut territories = Indicators::default();
        for figures in self.dashboard.by_departement(&Scope::default()).values() {
            territories.add(figures);
        }
        assert_eq!(national, territories, "national = territories + unassigned");
    }
}

async fn history(funders: usize, shares: Vec<u32>, ops: Vec<(u8, u8, u32, u32)>) {
    let shares: Vec<FundingShare> = (0..funders)
        .map(|i| FundingShare { funder: FUNDERS[i].into(), amount: Money::cents(i64::from(shares[i]) * 100) })
        .collect();
    let total: Money = shares.iter().map(|s| s.amount).sum();
    let mut h = History {
        store: MemoryStore::new(),
        state: Convention::default(),
        budget: BudgetView::default(),
        dashboard: DashboardView::default(),
        read: 0,
        n: 0,
    };
    h.send(ConventionCommand::Sign(SignConvention {
        code: CODE.into(),
        partner: "OPCO Uniformation".into(),
        title: "Formations".into(),
        signed_on: d("2021-03-15"),
        period_start: d("2021-03-15"),
        period_end: d("2022-12-31"),
        total,
        shares,
        targets: vec![],
        departements: vec![],
        annex_caps: None,
    }))
    .await;
    let departements = [None, Some("29"), Some("75"), Some("2A"), Some("971")];
    let mut references = 0u32;
    for (op, k, x, y) in ops {
        let s = h.state.0.clone().unwrap();
        let reference = |i: u32| format!("R{}", i % references.max(1));
        let one_to = |max: Money, x: u32| Money::cents(1 + i64::from(x) % cents(max).max(1));
        let command = match op % 6 {
            0 => {
                let left = total.saturating_sub(s.envelopes.values().map(|e| e.allocated).sum());
                let amount = one_to(left, x);
                ConventionCommand::AllocateEnvelope(AllocateEnvelope {
                    convention_id: id(),
                    name: format!("E{}", k % 3),
                    kind: EnvelopeKind::Other,
                    amount,
                    allocated_on: d("2021-03-20"),
                    financing: Some(plan(funders, amount, (y % 3) as u8, y)),
                })
            }
            1 => {
                let Some(e) = s.envelopes.get(&envelope(k)) else { continue };
                references += 1;
                ConventionCommand::CommitFunds(CommitFunds {
                    convention_id: id(),
                    envelope_id: envelope(k),
                    reference: format!("R{}", references - 1),
                    amount: one_to(e.available(), x),
                    committed_on: d("2021-04-01"),
                    departement: departements[y as usize % departements.len()]
                        .map(|c| DepartementCode::parse(c).unwrap()),
                })
            }
            2..=4 => {
                let Some(c) = s.commitments.get(&reference(y)) else { continue };
                let (max, done) = match op % 6 {
                    2 => (c.committed.saturating_sub(c.service_done), "release"),
                    3 => (c.committed.saturating_sub(c.service_done), "serve"),
                    _ => (c.service_done.saturating_sub(c.paid), "pay"),
                };
                let amount = one_to(max, x);
                let reference = reference(y);
                match done {
                    "release" => ConventionCommand::ReleaseFunds(ReleaseFunds {
                        convention_id: id(),
                        reference,
                        amount,
                        released_on: d("2021-05-01"),
                    }),
                    "serve" => ConventionCommand::RecordServiceDone(RecordServiceDone {
                        convention_id: id(),
                        reference,
                        amount,
                        done_on: d("2021-05-01"),
                    }),
                    _ => ConventionCommand::RecordPayment(RecordPayment {
                        convention_id: id(),
                        reference,
                        amount,
                        paid_on: d("2021-06-01"),
                    }),
                }
            }
            _ => {
                let Some(e) = s.envelopes.get(&envelope(k)) else { continue };
                ConventionCommand::SignAmendment(SignAmendment {
                    convention_id: id(),
                    signed_on: d("2021-04-15"),
                    reason: "Avenant".into(),
                    total: None,
                    shares: None,
                    period_end: None,
                    envelopes: vec![],
                    annex_caps: None,
                    financing: vec![EnvelopeFinancing {
                        envelope_id: envelope(k),
                        parts: plan(funders, e.allocated, (x % 3) as u8, x ^ y),
                    }],
                })
            }
        };
        h.send(command).await;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn funders_parts_add_up_to_every_figure_at_every_position(
        funders in 1usize..=3,
        shares in proptest::collection::vec(1u32..5_000_000, 3),
        ops in proptest::collection::vec((0u8..6, any::<u8>(), any::<u32>(), any::<u32>()), 1..80),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(history(funders, shares, ops));
    }
}
