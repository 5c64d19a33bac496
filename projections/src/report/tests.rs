//! The report's two time axes, its provenance and its corrections.

use super::*;
use domain::convention::*;
use domain::{CommandId, CommandMeta, DepartementCode};
use store::handler::stream_name;
use store::{MemoryStore, handle};

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

const CODE: &str = "ANCT-UNIFORMATION-2021";

fn id() -> ConventionId {
    ConventionId::for_code(CODE)
}

fn envelope() -> EnvelopeId {
    EnvelopeId::for_name(id(), "Formations")
}

async fn run(store: &MemoryStore, n: u128, c: ConventionCommand) {
    let meta = CommandMeta::new(CommandId(uuid::Uuid::from_u128(n)), "anct:test");
    handle::<Convention>(store, &stream_name::<Convention>(id()), &c, &meta).await.unwrap();
}

/// A commitment of 1 000 € in December; weeks later, a release of 300 € dated in
/// December too (a late correction). Returns the instant between the two recordings.
async fn late_correction(store: &MemoryStore) -> DateTime<Utc> {
    run(
        store,
        1,
        ConventionCommand::Sign(SignConvention {
            code: CODE.into(),
            partner: "OPCO Uniformation".into(),
            title: "Formations".into(),
            signed_on: d("2021-03-15"),
            period_start: d("2021-03-15"),
            period_end: d("2022-12-31"),
            total: Money::euros(4_400_000),
            shares: vec![
                FundingShare { funder: "ANCT".into(), amount: Money::euros(2_600_000) },
                FundingShare { funder: "Uniformation".into(), amount: Money::euros(1_800_000) },
            ],
            targets: vec![Target { kind: TargetKind::Trainings, quantity: 2_000 }],
            departements: vec![],
            annex_caps: None,
        }),
    )
    .await;
    run(
        store,
        2,
        ConventionCommand::AllocateEnvelope(AllocateEnvelope {
            convention_id: id(),
            name: "Formations".into(),
            kind: EnvelopeKind::NonCertifyingTrainings,
            amount: Money::euros(1_000_000),
            allocated_on: d("2021-03-20"),
            financing: Some(vec![
                domain::financing::FunderPart::rate("ANCT", rust_decimal::Decimal::from(60)),
                domain::financing::FunderPart::rate("Uniformation", rust_decimal::Decimal::from(40)),
            ]),
        }),
    )
    .await;
    run(
        store,
        3,
        ConventionCommand::CommitFunds(CommitFunds {
            convention_id: id(),
            envelope_id: envelope(),
            reference: "ACHAT-1".into(),
            amount: Money::euros(1_000),
            committed_on: d("2021-12-10"),
            departement: Some(DepartementCode::parse("29").unwrap()),
        }),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let known_then = Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    run(
        store,
        4,
        ConventionCommand::ReleaseFunds(ReleaseFunds {
            convention_id: id(),
            reference: "ACHAT-1".into(),
            amount: Money::euros(300),
            released_on: d("2021-12-20"),
        }),
    )
    .await;
    run(
        store,
        5,
        ConventionCommand::RecordServiceDone(RecordServiceDone {
            convention_id: id(),
            reference: "ACHAT-1".into(),
            amount: Money::euros(700),
            done_on: d("2022-01-10"),
        }),
    )
    .await;
    known_then
}

fn integrity() -> Integrity {
    Integrity { position: 5, digest: "digest".into(), first_break: None }
}

async fn report(store: &MemoryStore, cutoff: Cutoff) -> FinancialReport {
    replay(store, cutoff, 5).await.unwrap().finish(&integrity())
}

#[tokio::test]
async fn as_of_and_as_known_at_differ_after_a_late_correction() {
    let store = MemoryStore::new();
    let known_then = late_correction(&store).await;
    let as_of = report(&store, Cutoff { as_of: Some(d("2021-12-31")), as_known_at: None }).await;
    let as_known = report(&store, Cutoff { as_of: Some(d("2021-12-31")), as_known_at: Some(known_then) }).await;
    let committed = |r: &FinancialReport| r.conventions[0].envelopes[0].committed;
    assert_eq!(committed(&as_of), Money::euros(700), "the correction dated in December counts as of December");
    assert_eq!(committed(&as_known), Money::euros(1_000), "but it was not known on the earlier date");
    assert_eq!(as_of.header.events_after_as_of, 1, "the January service done");
    assert_eq!(as_known.header.events_recorded_later, 2);
    assert_eq!(as_of.corrections.len(), 1);
    assert_eq!(as_of.corrections[0].effect.as_deref(), Some("-300.00"));
    assert!(as_known.corrections.is_empty());
    assert_eq!(
        as_of.conventions[0].funders[0].committed + as_of.conventions[0].funders[1].committed,
        Money::euros(700)
    );
}

#[tokio::test]
async fn provenance_lists_the_events_behind_a_figure() {
    let store = MemoryStore::new();
    late_correction(&store).await;
    let builder = replay(&store, Cutoff::default(), 5).await.unwrap();
    let committed = builder.explain(id(), envelope(), Figure::Committed);
    let effects: Vec<_> = committed.iter().map(|e| (e.event_type.as_str(), e.effect.as_deref().unwrap())).collect();
    assert_eq!(effects, vec![("FundsCommitted", "+1000.00"), ("FundsReleased", "-300.00")]);
    assert_eq!(committed[0].actor, "anct:test");
    assert_eq!(committed[0].business_date, d("2021-12-10"));
    assert_eq!(builder.explain(id(), envelope(), Figure::ServiceDone).len(), 1);
    assert_eq!(builder.explain(id(), envelope(), Figure::Allocated)[0].effect.as_deref(), Some("+1000000.00"));
}

#[tokio::test]
async fn an_event_whose_basis_is_cut_off_is_listed_not_counted() {
    let store = MemoryStore::new();
    late_correction(&store).await;
    // As of before the convention was signed, nothing counts; nothing is skipped either,
    // since every convention event is dated after.
    let before = report(&store, Cutoff { as_of: Some(d("2021-01-01")), as_known_at: None }).await;
    assert!(before.conventions.is_empty());
    assert!(before.header.skipped.is_empty());
}

#[tokio::test]
async fn the_csv_opens_in_a_french_spreadsheet_or_plainly() {
    let store = MemoryStore::new();
    late_correction(&store).await;
    let r = report(&store, Cutoff::default()).await;
    let french = to_csv(&r, true);
    assert!(french.starts_with('\u{feff}'), "UTF-8 byte-order mark");
    assert!(french.contains("ANCT-UNIFORMATION-2021;OPCO Uniformation;Formations;NON_CERTIFYING_TRAININGS;1000000,00;700,00;700,00;0,00;999300,00\r\n"), "{french}");
    let plain = to_csv(&r, false);
    assert!(!plain.starts_with('\u{feff}'));
    assert!(plain.contains("ANCT-UNIFORMATION-2021,OPCO Uniformation,Formations,NON_CERTIFYING_TRAININGS,1000000.00,700.00,700.00,0.00,999300.00\r\n"), "{plain}");
}

#[tokio::test]
async fn fiscal_years_show_each_funders_engagements_payments_and_what_carries_over() {
    // Given 1 000 € committed in December 2021 (60 % ANCT, 40 % Uniformation), 300 €
    // released in December, 700 € served in January 2022, then 400 € paid in 2022,
    let store = MemoryStore::new();
    late_correction(&store).await;
    run(
        &store,
        6,
        ConventionCommand::RecordPayment(RecordPayment {
            convention_id: id(),
            reference: "ACHAT-1".into(),
            amount: Money::euros(400),
            paid_on: d("2022-02-01"),
        }),
    )
    .await;
    let r = replay(&store, Cutoff::default(), 6).await.unwrap().finish(&integrity());
    let years = &r.conventions[0].fiscal_years;
    let row = |year: i32, envelope: &str, funder: &str| {
        years.iter().find(|y| y.year == year && y.envelope == envelope && y.funder == funder).cloned().unwrap()
    };
    let dec = |s: &str| s.parse::<Decimal>().unwrap();
    // then 2021 shows ANCT's 600 € committed, 180 € released, 420 € carried over;
    let anct_2021 = row(2021, "Formations", "ANCT");
    assert_eq!((anct_2021.committed, anct_2021.released, anct_2021.paid), (dec("600.00"), dec("180.00"), dec("0.00")));
    assert_eq!(anct_2021.carried_over, dec("420.00"));
    // 2022 its 240 € paid out of what was carried over, 180 € still to pay;
    let anct_2022 = row(2022, "Formations", "ANCT");
    assert_eq!(
        (anct_2022.committed, anct_2022.service_done, anct_2022.paid),
        (dec("0.00"), dec("420.00"), dec("240.00"))
    );
    assert_eq!(anct_2022.carried_over, dec("180.00"));
    // and the convention's TOTAL per funder adds its envelopes; the funders' payments of
    // a year add up to the convention's payments of that year.
    let uniformation = row(2022, "TOTAL", "Uniformation");
    assert_eq!((uniformation.paid, uniformation.carried_over), (dec("160.00"), dec("120.00")));
    assert_eq!(row(2022, "TOTAL", "ANCT").paid + uniformation.paid, dec("400.00"));
    let csv = to_csv(&r, false);
    assert!(csv.contains("ANCT-UNIFORMATION-2021,2021,Formations,ANCT,600.00,180.00,0.00,0.00,420.00\r\n"), "{csv}");
    assert!(csv.contains("ANCT-UNIFORMATION-2021,Formations,Uniformation,400000.00,280.00,280.00,160.00\r\n"), "{csv}");
}

fn sum_of_effects(events: &[EventRef]) -> Money {
    let sum: rust_decimal::Decimal =
        events.iter().map(|e| e.effect.as_deref().unwrap().trim_start_matches('+').parse::<Decimal>().unwrap()).sum();
    Money::try_from(sum).unwrap()
}

#[tokio::test]
async fn a_funders_part_is_explained_by_its_moves_which_add_up_to_it() {
    // Given a 60/40 envelope, a commitment of 1 000 €, a release of 300 € and 700 € of
    // service done, then odd amounts whose split leaves cents to place.
    let store = MemoryStore::new();
    late_correction(&store).await;
    for (n, amount) in [(6u128, "0.05"), (7, "0.05"), (8, "333.33")] {
        run(
            &store,
            n,
            ConventionCommand::CommitFunds(CommitFunds {
                convention_id: id(),
                envelope_id: envelope(),
                reference: format!("ACHAT-{n}"),
                amount: Money::parse(amount).unwrap(),
                committed_on: d("2022-02-01"),
                departement: None,
            }),
        )
        .await;
    }
    // When each funder's committed part of the envelope is explained
    let builder = replay(&store, Cutoff::default(), 8).await.unwrap();
    let anct = builder.explain_funder(id(), Some(envelope()), Figure::Committed, "ANCT");
    let moves: Vec<_> = anct.iter().map(|e| (e.event_type.as_str(), e.effect.as_deref().unwrap())).collect();
    // Then each event shows the funder's own move, a release as a negative one
    assert_eq!(moves[..2], [("FundsCommitted", "+600.00"), ("FundsReleased", "-180.00")]);
    assert_eq!(anct[0].reference.as_deref(), Some("ACHAT-1"));
    // And, for every funder and figure, the moves add up to the funder's part in the report
    let funders = builder.funders_of(id());
    assert_eq!(funders, ["ANCT", "Uniformation"]);
    let report = builder.finish(&integrity());
    let convention = &report.conventions[0];
    for funder in &convention.funders {
        for (figure, want) in [
            (Figure::Allocated, funder.allocated),
            (Figure::Committed, funder.committed),
            (Figure::ServiceDone, funder.service_done),
            (Figure::Paid, funder.paid),
        ] {
            let again = replay(&store, Cutoff::default(), 8).await.unwrap();
            let whole = again.explain_funder(id(), None, figure, &funder.funder);
            assert_eq!(sum_of_effects(&whole), want, "{} {figure:?}", funder.funder);
        }
    }
    assert_eq!(
        convention.funders.iter().map(|f| f.committed).sum::<Money>(),
        convention.budget.committed,
        "the parts add up to the figure"
    );
}

#[tokio::test]
async fn a_partners_received_money_is_anct_s_and_co_funder_spending_its_funder_s() {
    // Given a signed convention and nothing disbursed yet
    let store = MemoryStore::new();
    late_correction(&store).await;
    let builder = replay(&store, Cutoff::default(), 5).await.unwrap();
    // Then no partner figure has events, under any funder
    assert!(builder.explain_funder(id(), None, Figure::Received, domain::disbursement::PAYER).is_empty());
    assert!(builder.explain_funder(id(), None, Figure::CoFunderSpent, "Uniformation").is_empty());
    // And a funder named in no plan explains nothing
    assert!(builder.explain_funder(id(), None, Figure::Committed, "Région").is_empty());
}
