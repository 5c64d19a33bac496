//! One given/when/then test per rule of the Convention aggregate, with the plan's figures.

use super::*;
use crate::testing::given;
use ConventionCommand as Cmd;
use ConventionEvent as Ev;
use chrono::NaiveDate;

const CODE: &str = "ANCT-UNIFORMATION-2021";

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn eur(amount: i64) -> Money {
    Money::euros(amount)
}

fn id() -> ConventionId {
    ConventionId::for_code(CODE)
}

fn envelope(name: &str) -> EnvelopeId {
    EnvelopeId::for_name(id(), name)
}

fn share(funder: &str, amount: i64) -> FundingShare {
    FundingShare { funder: funder.into(), amount: eur(amount) }
}

fn sign_command() -> SignConvention {
    SignConvention {
        code: CODE.into(),
        partner: "OPCO Uniformation".into(),
        title: "Formation des médiateurs et aidants numériques".into(),
        signed_on: d("2021-03-15"),
        period_start: d("2021-03-15"),
        period_end: d("2022-12-31"),
        total: eur(4_400_000),
        shares: vec![share("ANCT", 2_600_000), share("Uniformation", 1_800_000)],
        targets: vec![Target { kind: TargetKind::Trainings, quantity: 2_000 }],
        departements: vec![],
        annex_caps: None,
    }
}

fn signed() -> ConventionEvent {
    Convention::default().decide(&Cmd::Sign(sign_command())).unwrap().remove(0)
}

fn signed_in(departements: &[&str]) -> ConventionEvent {
    let mut c = sign_command();
    c.departements = departements.iter().map(|d| DepartementCode::parse(d).unwrap()).collect();
    Convention::default().decide(&Cmd::Sign(c)).unwrap().remove(0)
}

/// The two funders' parts of an envelope in proportion to their shares (as fixed
/// amounts): what most rules' tests need, with every funder within its share.
fn pro_rata(amount: i64) -> Vec<FunderPart> {
    let parts = eur(amount).split_by(&[eur(2_600_000), eur(1_800_000)]);
    vec![FunderPart::amount("ANCT", parts[0]), FunderPart::amount("Uniformation", parts[1])]
}

fn allocated(name: &str, amount: i64) -> ConventionEvent {
    Ev::EnvelopeAllocated(EnvelopeAllocated {
        envelope_id: envelope(name),
        name: name.into(),
        kind: EnvelopeKind::CertifyingTrainings,
        amount: eur(amount),
        allocated_on: d("2021-03-20"),
        financing: pro_rata(amount),
    })
}

fn allocate(name: &str, amount: i64) -> ConventionCommand {
    Cmd::AllocateEnvelope(AllocateEnvelope {
        convention_id: id(),
        name: name.into(),
        kind: EnvelopeKind::CertifyingTrainings,
        amount: eur(amount),
        allocated_on: d("2021-03-20"),
        financing: Some(pro_rata(amount)),
    })
}

fn committed(reference: &str, amount: i64) -> ConventionEvent {
    Ev::FundsCommitted(FundsCommitted {
        envelope_id: envelope("Formations"),
        reference: reference.into(),
        amount: eur(amount),
        committed_on: d("2021-04-01"),
        departement: None,
    })
}

fn commit(reference: &str, amount: i64) -> CommitFunds {
    CommitFunds {
        convention_id: id(),
        envelope_id: envelope("Formations"),
        reference: reference.into(),
        amount: eur(amount),
        committed_on: d("2021-04-01"),
        departement: None,
    }
}

fn served(reference: &str, amount: i64) -> ConventionEvent {
    Ev::ServiceDoneRecorded(ServiceDoneRecorded {
        envelope_id: envelope("Formations"),
        reference: reference.into(),
        amount: eur(amount),
        done_on: d("2021-06-01"),
    })
}

fn paid(reference: &str, amount: i64) -> ConventionEvent {
    Ev::PaymentRecorded(PaymentRecorded {
        envelope_id: envelope("Formations"),
        reference: reference.into(),
        amount: eur(amount),
        paid_on: d("2021-07-01"),
    })
}

fn amendment() -> SignAmendment {
    SignAmendment {
        convention_id: id(),
        signed_on: d("2021-10-01"),
        reason: "Avenant n°1".into(),
        total: None,
        shares: None,
        period_end: None,
        envelopes: vec![],
        annex_caps: None,
        financing: vec![],
    }
}

fn release(reference: &str, amount: i64) -> ConventionCommand {
    Cmd::ReleaseFunds(ReleaseFunds {
        convention_id: id(),
        reference: reference.into(),
        amount: eur(amount),
        released_on: d("2021-05-01"),
    })
}

fn serve(reference: &str, amount: i64) -> ConventionCommand {
    Cmd::RecordServiceDone(RecordServiceDone {
        convention_id: id(),
        reference: reference.into(),
        amount: eur(amount),
        done_on: d("2021-06-01"),
    })
}

fn pay(reference: &str, amount: i64) -> ConventionCommand {
    Cmd::RecordPayment(RecordPayment {
        convention_id: id(),
        reference: reference.into(),
        amount: eur(amount),
        paid_on: d("2021-07-01"),
    })
}

fn close() -> ConventionCommand {
    Cmd::Close(CloseConvention { convention_id: id(), closed_on: d("2023-01-15") })
}

// --- SignConvention --------------------------------------------------------------------

#[test]
fn signing_records_the_convention_with_its_code_normalised() {
    let mut c = sign_command();
    c.code = " anct-uniformation-2021".into();
    let events = given::<Convention>([]).when(Cmd::Sign(c)).events();
    let Ev::ConventionSigned(e) = &events[0] else { panic!("{events:?}") };
    assert_eq!(e.code, CODE);
    assert_eq!(e.convention_id, id());
    assert_eq!(e.total, eur(4_400_000));
}

#[test]
fn a_code_can_be_signed_only_once() {
    given::<Convention>([signed()])
        .when(Cmd::Sign(sign_command()))
        .then_err(ConventionError::AlreadySigned { code: CODE.into() });
}

#[test]
fn a_code_must_be_letters_digits_and_dashes() {
    let mut c = sign_command();
    c.code = "ANCT UNIFORMATION".into();
    given::<Convention>([])
        .when(Cmd::Sign(c))
        .then_err(ConventionError::InvalidCode { code: "ANCT UNIFORMATION".into() });
}

#[test]
fn partner_and_title_are_required() {
    let mut c = sign_command();
    c.partner = "  ".into();
    given::<Convention>([]).when(Cmd::Sign(c)).then_err(ConventionError::MissingField { field: "partner" });
}

#[test]
fn the_period_cannot_end_before_it_starts() {
    let mut c = sign_command();
    c.period_end = d("2021-01-01");
    given::<Convention>([])
        .when(Cmd::Sign(c))
        .then_err(ConventionError::PeriodEndsBeforeStart { start: d("2021-03-15"), end: d("2021-01-01") });
}

#[test]
fn the_total_must_be_positive() {
    let mut c = sign_command();
    c.total = Money::ZERO;
    given::<Convention>([]).when(Cmd::Sign(c)).then_err(ConventionError::ZeroAmount { field: "the total" });
}

#[test]
fn funding_shares_must_add_up_to_the_total_exactly() {
    let mut c = sign_command();
    c.shares = vec![
        share("ANCT", 2_600_000),
        FundingShare { funder: "Uniformation".into(), amount: Money::parse("1799999.99").unwrap() },
    ];
    given::<Convention>([]).when(Cmd::Sign(c)).then_err(ConventionError::SharesDoNotAddUp {
        total: eur(4_400_000),
        shares_sum: Money::parse("4399999.99").unwrap(),
    });
}

#[test]
fn at_least_one_funding_share_is_needed() {
    let mut c = sign_command();
    c.shares = vec![];
    given::<Convention>([]).when(Cmd::Sign(c)).then_err(ConventionError::NoFundingShare);
}

#[test]
fn a_funder_appears_once() {
    let mut c = sign_command();
    c.shares = vec![share("ANCT", 2_200_000), share("anct ", 2_200_000)];
    given::<Convention>([]).when(Cmd::Sign(c)).then_err(ConventionError::DuplicateFunder { funder: "anct ".into() });
}

#[test]
fn a_funding_share_must_be_positive() {
    let mut c = sign_command();
    c.shares.push(FundingShare { funder: "Pix".into(), amount: Money::ZERO });
    given::<Convention>([]).when(Cmd::Sign(c)).then_err(ConventionError::ZeroAmount { field: "a funding share" });
}

#[test]
fn targets_are_positive_and_unique() {
    let mut c = sign_command();
    c.targets.push(Target { kind: TargetKind::Trainings, quantity: 10 });
    given::<Convention>([])
        .when(Cmd::Sign(c))
        .then_err(ConventionError::DuplicateTarget { kind: TargetKind::Trainings });
    let mut c = sign_command();
    c.targets = vec![Target { kind: TargetKind::Habilitations, quantity: 0 }];
    given::<Convention>([])
        .when(Cmd::Sign(c))
        .then_err(ConventionError::ZeroTarget { kind: TargetKind::Habilitations });
}

// --- AllocateEnvelope ------------------------------------------------------------------

#[test]
fn allocating_an_envelope_within_the_total_is_accepted() {
    given::<Convention>([signed(), allocated("Formations", 4_000_000)])
        .when(allocate("Frais annexes", 400_000))
        .then([allocated("Frais annexes", 400_000)]);
}

#[test]
fn envelopes_together_never_exceed_the_total() {
    given::<Convention>([signed(), allocated("Formations", 4_000_000)])
        .when(allocate("Frais annexes", 400_001))
        .then_err(ConventionError::EnvelopesExceedTotal {
            total: eur(4_400_000),
            available: eur(400_000),
            requested: eur(400_001),
            allocated_after: eur(4_400_001),
        });
}

#[test]
fn an_envelope_name_is_used_once_per_convention() {
    given::<Convention>([signed(), allocated("Formations", 1_000)])
        .when(allocate("formations", 1_000))
        .then_err(ConventionError::DuplicateEnvelope { name: "formations".into() });
}

#[test]
fn an_unsigned_convention_accepts_nothing() {
    given::<Convention>([]).when(allocate("Formations", 1_000)).then_err(ConventionError::NotFound);
}

// --- SignAmendment ---------------------------------------------------------------------

#[test]
fn an_amendment_raises_the_total_with_matching_shares_and_numbers_itself() {
    let mut a = amendment();
    a.total = Some(eur(4_600_000));
    a.shares = Some(vec![share("ANCT", 2_800_000), share("Uniformation", 1_800_000)]);
    let events = given::<Convention>([signed()]).when(Cmd::SignAmendment(a)).events();
    let Ev::AmendmentSigned(e) = &events[0] else { panic!() };
    assert_eq!(e.number, 1);
    assert_eq!(e.total, Some(eur(4_600_000)));
}

#[test]
fn an_amendment_changing_the_total_must_keep_shares_adding_up() {
    let mut a = amendment();
    a.total = Some(eur(4_600_000));
    given::<Convention>([signed()])
        .when(Cmd::SignAmendment(a))
        .then_err(ConventionError::SharesDoNotAddUp { total: eur(4_600_000), shares_sum: eur(4_400_000) });
}

#[test]
fn an_amendment_can_never_bring_an_envelope_below_what_is_committed() {
    let mut a = amendment();
    a.envelopes = vec![EnvelopeAmount { envelope_id: envelope("Formations"), amount: eur(299_999) }];
    given::<Convention>([signed(), allocated("Formations", 1_000_000), committed("ACHAT-1", 300_000)])
        .when(Cmd::SignAmendment(a))
        .then_err(ConventionError::EnvelopeBelowCommitted {
            envelope_id: envelope("Formations"),
            envelope: "Formations".into(),
            committed: eur(300_000),
            requested: eur(299_999),
        });
}

#[test]
fn an_amendment_can_lower_an_envelope_down_to_what_is_committed() {
    let mut a = amendment();
    a.envelopes = vec![EnvelopeAmount { envelope_id: envelope("Formations"), amount: eur(300_000) }];
    // Its plan is by fixed amounts: the new amount comes with its new plan.
    a.financing = vec![EnvelopeFinancing { envelope_id: envelope("Formations"), parts: pro_rata(300_000) }];
    let events = given::<Convention>([signed(), allocated("Formations", 1_000_000), committed("ACHAT-1", 300_000)])
        .when(Cmd::SignAmendment(a))
        .events();
    assert_eq!(events.len(), 1);
}

#[test]
fn an_amendment_cannot_lower_the_total_below_the_envelopes() {
    let mut a = amendment();
    a.total = Some(eur(3_000_000));
    a.shares = Some(vec![share("ANCT", 3_000_000)]);
    given::<Convention>([signed(), allocated("Formations", 4_000_000)]).when(Cmd::SignAmendment(a)).then_err(
        ConventionError::EnvelopesExceedTotal {
            total: eur(3_000_000),
            available: Money::ZERO,
            requested: Money::ZERO,
            allocated_after: eur(4_000_000),
        },
    );
}

#[test]
fn an_amendment_raising_envelopes_stays_within_the_total() {
    let mut a = amendment();
    a.envelopes = vec![EnvelopeAmount { envelope_id: envelope("Formations"), amount: eur(4_500_000) }];
    given::<Convention>([signed(), allocated("Formations", 4_000_000)]).when(Cmd::SignAmendment(a)).then_err(
        ConventionError::EnvelopesExceedTotal {
            total: eur(4_400_000),
            available: eur(400_000),
            requested: eur(500_000),
            allocated_after: eur(4_500_000),
        },
    );
}

#[test]
fn an_amendment_can_extend_the_end_date_but_not_before_the_start() {
    let mut a = amendment();
    a.period_end = Some(d("2020-12-31"));
    given::<Convention>([signed()])
        .when(Cmd::SignAmendment(a))
        .then_err(ConventionError::PeriodEndsBeforeStart { start: d("2021-03-15"), end: d("2020-12-31") });
}

#[test]
fn an_amendment_must_change_something() {
    given::<Convention>([signed()]).when(Cmd::SignAmendment(amendment())).then_err(ConventionError::EmptyAmendment);
}

#[test]
fn an_amendment_names_known_envelopes_once() {
    let mut a = amendment();
    a.envelopes = vec![EnvelopeAmount { envelope_id: envelope("Inconnue"), amount: eur(1) }];
    given::<Convention>([signed()])
        .when(Cmd::SignAmendment(a))
        .then_err(ConventionError::UnknownEnvelope { envelope_id: envelope("Inconnue") });
    let mut a = amendment();
    let change = EnvelopeAmount { envelope_id: envelope("Formations"), amount: eur(1) };
    a.envelopes = vec![change.clone(), change];
    given::<Convention>([signed(), allocated("Formations", 10)])
        .when(Cmd::SignAmendment(a))
        .then_err(ConventionError::DuplicateEnvelopeChange { envelope_id: envelope("Formations") });
}

#[test]
fn the_second_amendment_is_number_two() {
    let mut first = amendment();
    first.period_end = Some(d("2023-06-30"));
    let history =
        [signed(), given::<Convention>([signed()]).when(Cmd::SignAmendment(first.clone())).events().remove(0)];
    let events = given::<Convention>(history).when(Cmd::SignAmendment(first)).events();
    let Ev::AmendmentSigned(e) = &events[0] else { panic!() };
    assert_eq!(e.number, 2);
}

// --- CommitFunds -----------------------------------------------------------------------

#[test]
fn committing_within_the_envelope_is_accepted() {
    given::<Convention>([signed(), allocated("Formations", 500_000)])
        .when(Cmd::CommitFunds(commit("ACHAT-1", 500_000)))
        .then([committed("ACHAT-1", 500_000)]);
}

#[test]
fn a_commitment_never_exceeds_what_the_envelope_has_available() {
    given::<Convention>([signed(), allocated("Formations", 500_000), committed("ACHAT-1", 100_000)])
        .when(Cmd::CommitFunds(commit("ACHAT-2", 400_001)))
        .then_err(ConventionError::EnvelopeExceeded {
            envelope_id: envelope("Formations"),
            envelope: "Formations".into(),
            available: eur(400_000),
            requested: eur(400_001),
        });
}

#[test]
fn released_funds_are_available_again() {
    let release_event = Ev::FundsReleased(FundsReleased {
        envelope_id: envelope("Formations"),
        reference: "ACHAT-1".into(),
        amount: eur(100_000),
        released_on: d("2021-05-01"),
    });
    given::<Convention>([signed(), allocated("Formations", 500_000), committed("ACHAT-1", 500_000), release_event])
        .when(Cmd::CommitFunds(commit("ACHAT-2", 100_000)))
        .then([committed("ACHAT-2", 100_000)]);
}

#[test]
fn a_reference_is_committed_once() {
    given::<Convention>([signed(), allocated("Formations", 500_000), committed("ACHAT-1", 100)])
        .when(Cmd::CommitFunds(commit("ACHAT-1", 100)))
        .then_err(ConventionError::ReferenceAlreadyCommitted { reference: "ACHAT-1".into() });
}

#[test]
fn commitments_go_to_a_known_envelope() {
    let mut c = commit("ACHAT-1", 100);
    c.envelope_id = envelope("Inconnue");
    given::<Convention>([signed()])
        .when(Cmd::CommitFunds(c))
        .then_err(ConventionError::UnknownEnvelope { envelope_id: envelope("Inconnue") });
}

#[test]
fn a_commitment_is_dated_within_the_convention_period() {
    let mut c = commit("ACHAT-1", 100);
    c.committed_on = d("2023-01-01");
    given::<Convention>([signed(), allocated("Formations", 500_000)]).when(Cmd::CommitFunds(c)).then_err(
        ConventionError::OutsidePeriod { date: d("2023-01-01"), start: d("2021-03-15"), end: d("2022-12-31") },
    );
}

#[test]
fn a_territorial_convention_commits_only_in_its_departements() {
    let mut c = commit("ACHAT-1", 100);
    c.departement = Some(DepartementCode::parse("29").unwrap());
    given::<Convention>([signed_in(&["22", "35"]), allocated("Formations", 500_000)])
        .when(Cmd::CommitFunds(c.clone()))
        .then_err(ConventionError::OutsideTerritory { departement: DepartementCode::parse("29").unwrap() });
    // A national convention takes every département.
    let events = given::<Convention>([signed(), allocated("Formations", 500_000)]).when(Cmd::CommitFunds(c)).events();
    assert_eq!(events.len(), 1);
}

#[test]
fn a_commitment_must_be_positive() {
    given::<Convention>([signed(), allocated("Formations", 500_000)])
        .when(Cmd::CommitFunds(commit("ACHAT-1", 0)))
        .then_err(ConventionError::ZeroAmount { field: "the committed amount" });
}

// --- ReleaseFunds ----------------------------------------------------------------------

#[test]
fn only_what_is_not_yet_served_can_be_released() {
    given::<Convention>([
        signed(),
        allocated("Formations", 500_000),
        committed("ACHAT-1", 1_000),
        served("ACHAT-1", 700),
    ])
    .when(release("ACHAT-1", 301))
    .then_err(ConventionError::ReleaseExceedsUnused {
        reference: "ACHAT-1".into(),
        releasable: eur(300),
        requested: eur(301),
    });
}

#[test]
fn releasing_an_unknown_reference_is_refused() {
    given::<Convention>([signed()])
        .when(release("ACHAT-9", 1))
        .then_err(ConventionError::UnknownReference { reference: "ACHAT-9".into() });
}

// --- RecordServiceDone and RecordPayment -----------------------------------------------

#[test]
fn service_done_never_exceeds_what_is_committed() {
    given::<Convention>([
        signed(),
        allocated("Formations", 500_000),
        committed("ACHAT-1", 1_000),
        served("ACHAT-1", 600),
    ])
    .when(serve("ACHAT-1", 401))
    .then_err(ConventionError::ServiceDoneExceedsCommitted {
        reference: "ACHAT-1".into(),
        remaining: eur(400),
        requested: eur(401),
    });
}

#[test]
fn service_done_within_the_commitment_is_recorded() {
    given::<Convention>([signed(), allocated("Formations", 500_000), committed("ACHAT-1", 1_000)])
        .when(serve("ACHAT-1", 1_000))
        .then([served("ACHAT-1", 1_000)]);
}

#[test]
fn payment_never_exceeds_the_service_done() {
    given::<Convention>([
        signed(),
        allocated("Formations", 500_000),
        committed("ACHAT-1", 1_000),
        served("ACHAT-1", 600),
        paid("ACHAT-1", 500),
    ])
    .when(pay("ACHAT-1", 101))
    .then_err(ConventionError::PaymentExceedsServiceDone {
        reference: "ACHAT-1".into(),
        payable: eur(100),
        requested: eur(101),
    });
}

#[test]
fn payment_of_the_service_done_is_recorded() {
    given::<Convention>([
        signed(),
        allocated("Formations", 500_000),
        committed("ACHAT-1", 1_000),
        served("ACHAT-1", 600),
    ])
    .when(pay("ACHAT-1", 600))
    .then([paid("ACHAT-1", 600)]);
}

// --- CloseConvention -------------------------------------------------------------------

#[test]
fn a_convention_closes_only_with_no_open_commitment() {
    given::<Convention>([
        signed(),
        allocated("Formations", 500_000),
        committed("ACHAT-1", 1_000),
        served("ACHAT-1", 600),
        paid("ACHAT-1", 600),
        committed("ACHAT-2", 50),
    ])
    .when(close())
    .then_err(ConventionError::OpenCommitments { count: 2, outstanding: eur(450) });
}

#[test]
fn a_fully_paid_or_released_convention_closes() {
    let release_rest = Ev::FundsReleased(FundsReleased {
        envelope_id: envelope("Formations"),
        reference: "ACHAT-1".into(),
        amount: eur(400),
        released_on: d("2022-12-01"),
    });
    given::<Convention>([
        signed(),
        allocated("Formations", 500_000),
        committed("ACHAT-1", 1_000),
        served("ACHAT-1", 600),
        paid("ACHAT-1", 600),
        release_rest,
    ])
    .when(close())
    .then([Ev::ConventionClosed(ConventionClosed { closed_on: d("2023-01-15") })]);
}

#[test]
fn a_closed_convention_accepts_no_more_commands() {
    let closed = Ev::ConventionClosed(ConventionClosed { closed_on: d("2023-01-15") });
    given::<Convention>([signed(), allocated("Formations", 500_000), closed])
        .when(Cmd::CommitFunds(commit("ACHAT-1", 1)))
        .then_err(ConventionError::Closed { code: CODE.into() });
}

// --- Events and errors as the log and the API see them ---------------------------------

#[test]
fn events_carry_their_business_date_and_type() {
    assert_eq!(signed().business_date(), d("2021-03-15"));
    assert_eq!(signed().event_type(), "ConventionSigned");
    assert_eq!(committed("A", 1).business_date(), d("2021-04-01"));
    let json = serde_json::to_value(committed("A", 1)).unwrap();
    assert_eq!(json["type"], "FundsCommitted");
    assert_eq!(json["amount"], "1.00");
    let back: ConventionEvent = serde_json::from_value(json).unwrap();
    assert_eq!(back, committed("A", 1));
}

#[test]
fn errors_name_their_rule_and_carry_their_figures() {
    let e = ConventionError::EnvelopeExceeded {
        envelope_id: envelope("Formations"),
        envelope: "Formations".into(),
        available: eur(400_000),
        requested: eur(400_001),
    };
    assert_eq!(e.rule(), "EnvelopeExceeded");
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["available"], "400000.00");
    assert_eq!(json["requested"], "400001.00");
    assert_eq!(json["envelopeId"], envelope("Formations").to_string());
}

#[test]
fn a_convention_gets_our_default_caps_when_it_sets_none() {
    let ConventionEvent::ConventionSigned(e) = signed() else { panic!("not a signature") };
    assert_eq!(e.annex_caps, crate::annex::AnnexCaps::ours());
}

#[test]
fn caps_must_be_positive() {
    let mut c = sign_command();
    let mut caps = crate::annex::AnnexCaps::ours();
    caps.per_meal = Money::ZERO;
    c.annex_caps = Some(caps);
    given::<Convention>([]).when(Cmd::Sign(c)).then_err(ConventionError::InvalidCaps { field: "perMeal" });
}

#[test]
fn caps_change_by_amendment_from_a_date_never_before_it() {
    let mut caps = crate::annex::AnnexCaps::ours();
    caps.per_meal = Money::cents(2_000);
    let mut a = amendment();
    a.annex_caps = Some(crate::annex::CapsChange { effective_on: d("2021-09-01"), caps: caps.clone() });
    given::<Convention>([signed()])
        .when(Cmd::SignAmendment(a.clone()))
        .then_err(ConventionError::RetroactiveCaps { effective_on: d("2021-09-01"), signed_on: d("2021-10-01") });
    a.annex_caps = Some(crate::annex::CapsChange { effective_on: d("2022-01-01"), caps: caps.clone() });
    let events = given::<Convention>([signed()]).when(Cmd::SignAmendment(a)).events();
    let state = Convention::fold(std::iter::once(&signed()).chain(events.iter()));
    let schedule = &state.0.as_ref().unwrap().caps;
    assert_eq!(crate::annex::caps_on(schedule, d("2021-12-31")).unwrap().per_meal, Money::cents(1_750));
    assert_eq!(crate::annex::caps_on(schedule, d("2022-01-01")).unwrap().per_meal, Money::cents(2_000));
}

// --- Business dates in order: signature ≤ allocation ≤ commitment ≤ service done ≤ payment ---

fn dated_before(what: &'static str, date: &str, earlier: &'static str, earlier_date: &str) -> ConventionError {
    ConventionError::DatedBefore { what, date: d(date), earlier, earlier_date: d(earlier_date) }
}

#[test]
fn an_envelope_is_not_allocated_before_the_signature() {
    let Cmd::AllocateEnvelope(mut c) = allocate("Formations", 10) else { unreachable!() };
    c.allocated_on = d("2021-03-14");
    given::<Convention>([signed()]).when(Cmd::AllocateEnvelope(c)).then_err(dated_before(
        "the allocation",
        "2021-03-14",
        "the convention's signature",
        "2021-03-15",
    ));
}

#[test]
fn an_amendment_is_not_signed_before_the_convention() {
    let mut c = amendment();
    c.period_end = Some(d("2023-12-31"));
    c.signed_on = d("2021-01-01");
    given::<Convention>([signed()]).when(Cmd::SignAmendment(c)).then_err(dated_before(
        "the amendment",
        "2021-01-01",
        "the convention's signature",
        "2021-03-15",
    ));
}

#[test]
fn money_is_not_committed_before_its_envelope_is_allocated() {
    let mut c = commit("ACHAT-1", 10);
    c.committed_on = d("2021-03-19");
    given::<Convention>([signed(), allocated("Formations", 100)]).when(Cmd::CommitFunds(c)).then_err(dated_before(
        "the commitment",
        "2021-03-19",
        "the envelope's allocation",
        "2021-03-20",
    ));
}

#[test]
fn service_is_not_done_and_money_not_released_before_the_commitment() {
    let Cmd::RecordServiceDone(mut c) = serve("ACHAT-1", 5) else { unreachable!() };
    c.done_on = d("2021-03-31");
    given::<Convention>([signed(), allocated("Formations", 100), committed("ACHAT-1", 10)])
        .when(Cmd::RecordServiceDone(c))
        .then_err(dated_before("the service done", "2021-03-31", "the commitment", "2021-04-01"));
    let Cmd::ReleaseFunds(mut c) = release("ACHAT-1", 5) else { unreachable!() };
    c.released_on = d("2021-03-31");
    given::<Convention>([signed(), allocated("Formations", 100), committed("ACHAT-1", 10)])
        .when(Cmd::ReleaseFunds(c))
        .then_err(dated_before("the release", "2021-03-31", "the commitment", "2021-04-01"));
}

#[test]
fn a_payment_pays_only_what_was_served_by_its_own_date() {
    let history = || {
        [
            signed(),
            allocated("Formations", 100),
            committed("ACHAT-1", 10),
            served("ACHAT-1", 4), // on 2021-06-01
            Ev::ServiceDoneRecorded(ServiceDoneRecorded {
                envelope_id: envelope("Formations"),
                reference: "ACHAT-1".into(),
                amount: eur(6),
                done_on: d("2021-08-01"),
            }),
        ]
    };
    // Paying 4 on 2021-07-01: served by then.
    given::<Convention>(history()).when(pay("ACHAT-1", 4)).then([paid("ACHAT-1", 4)]);
    // Paying 10 on 2021-07-01: only 4 served by then, the rest on 2021-08-01.
    given::<Convention>(history()).when(pay("ACHAT-1", 10)).then_err(dated_before(
        "the payment",
        "2021-07-01",
        "the service done it pays",
        "2021-08-01",
    ));
    // A payment dated 1990 never pays anything.
    let Cmd::RecordPayment(mut c) = pay("ACHAT-1", 4) else { unreachable!() };
    c.paid_on = d("1990-01-01");
    given::<Convention>(history()).when(Cmd::RecordPayment(c)).then_err(dated_before(
        "the payment",
        "1990-01-01",
        "the service done it pays",
        "2021-06-01",
    ));
}

#[test]
fn a_convention_is_not_closed_before_its_last_step() {
    let Cmd::Close(mut c) = close() else { unreachable!() };
    c.closed_on = d("2021-06-30");
    given::<Convention>([
        signed(),
        allocated("Formations", 100),
        committed("ACHAT-1", 10),
        served("ACHAT-1", 10),
        paid("ACHAT-1", 10),
    ])
    .when(Cmd::Close(c))
    .then_err(dated_before("the closing", "2021-06-30", "the last step it closes", "2021-07-01"));
}

// ---------------------------------------------------------------------------------------
// Financing plans
// ---------------------------------------------------------------------------------------

fn allocate_with(name: &str, amount: i64, financing: Option<Vec<FunderPart>>) -> ConventionCommand {
    let Cmd::AllocateEnvelope(mut c) = allocate(name, amount) else { unreachable!() };
    c.financing = financing;
    Cmd::AllocateEnvelope(c)
}

#[test]
fn an_envelope_of_a_convention_with_several_funders_says_who_pays_what() {
    given::<Convention>([signed()])
        .when(allocate_with("Formations", 1_000, None))
        .then_err(ConventionError::FinancingPlan { envelope: "Formations".into(), problem: PlanError::Needed });
}

#[test]
fn an_envelope_of_a_single_funder_is_all_its_own() {
    let mut c = sign_command();
    c.total = eur(370_000);
    c.shares = vec![share("ANCT", 370_000)];
    let signed = Convention::default().decide(&Cmd::Sign(c)).unwrap().remove(0);
    let events = given::<Convention>([signed]).when(allocate_with("Pix", 370_000, None)).events();
    let Ev::EnvelopeAllocated(e) = &events[0] else { panic!() };
    assert_eq!(e.financing, vec![FunderPart::whole("ANCT")]);
}

#[test]
fn annex_costs_can_be_all_ancts_while_trainings_are_shared() {
    // The ANCT–Uniformation convention: annex costs 100 % ANCT; trainings share the rest.
    let trainings =
        vec![FunderPart::amount("ANCT", eur(2_200_000)), FunderPart::amount("Uniformation", eur(1_800_000))];
    let events =
        given::<Convention>([signed()]).when(allocate_with("Formations", 4_000_000, Some(trainings.clone()))).events();
    let Ev::EnvelopeAllocated(e) = &events[0] else { panic!() };
    assert_eq!(e.financing, trainings);
    given::<Convention>([signed(), events[0].clone()])
        .when(allocate_with("Frais annexes", 400_000, Some(vec![FunderPart::whole("ANCT")])))
        .events();
}

#[test]
fn no_funder_pays_more_of_the_envelopes_than_its_share() {
    // All 4 M€ of trainings from ANCT would be 4 M€ of its 2.6 M€ share.
    given::<Convention>([signed()])
        .when(allocate_with("Formations", 4_000_000, Some(vec![FunderPart::whole("ANCT")])))
        .then_err(ConventionError::FunderShareExceeded {
            funder: "ANCT".into(),
            share: eur(2_600_000),
            planned: eur(4_000_000),
        });
}

#[test]
fn an_amendment_changes_a_plan_for_the_money_committed_after_it() {
    let mut a = amendment();
    let rates = vec![
        FunderPart::rate("ANCT", rust_decimal::Decimal::from(55)),
        FunderPart::rate("Uniformation", rust_decimal::Decimal::from(45)),
    ];
    a.financing = vec![EnvelopeFinancing { envelope_id: envelope("Formations"), parts: rates.clone() }];
    let events =
        given::<Convention>([signed(), allocated("Formations", 1_000_000)]).when(Cmd::SignAmendment(a)).events();
    let Ev::AmendmentSigned(e) = &events[0] else { panic!() };
    assert_eq!(e.financing[0].parts, rates);
    let mut state = Convention::default();
    for e in [signed(), allocated("Formations", 1_000_000), events[0].clone()] {
        state.evolve(&e);
    }
    assert_eq!(state.0.unwrap().envelopes[&envelope("Formations")].plan, rates);
}

#[test]
fn an_envelope_planned_by_amounts_changes_its_amount_with_its_plan() {
    let mut a = amendment();
    a.envelopes = vec![EnvelopeAmount { envelope_id: envelope("Formations"), amount: eur(900_000) }];
    given::<Convention>([signed(), allocated("Formations", 1_000_000)]).when(Cmd::SignAmendment(a)).then_err(
        ConventionError::FinancingPlan {
            envelope: "Formations".into(),
            problem: PlanError::AmountsDoNotAddUp { amount: eur(900_000), sum: eur(1_000_000) },
        },
    );
}

#[test]
fn an_envelope_recorded_before_plans_reads_as_the_conventions_shares() {
    let legacy: ConventionEvent = serde_json::from_value(serde_json::json!({
        "type": "EnvelopeAllocated", "envelope_id": envelope("Formations"), "name": "Formations",
        "kind": "CERTIFYING_TRAININGS", "amount": "4400.00", "allocated_on": "2021-03-20"
    }))
    .unwrap();
    let mut state = Convention::default();
    state.evolve(&signed());
    state.evolve(&legacy);
    let s = state.0.unwrap();
    let plan = &s.envelopes[&envelope("Formations")].plan;
    assert_eq!(financing::split(plan, eur(4_400)), vec![eur(2_600), eur(1_800)]);
}

// ---------------------------------------------------------------------------------------
// Disbursement schedule
// ---------------------------------------------------------------------------------------

fn schedule(rates: &[i64], amendment: Option<u32>) -> ConventionCommand {
    use crate::disbursement::Condition;
    let conditions = [Condition::Signature, Condition::StatementOfExpenses, Condition::FinalReport];
    Cmd::SetSchedule(SetSchedule {
        convention_id: id(),
        instalments: rates
            .iter()
            .enumerate()
            .map(|(i, r)| PlannedInstalment {
                label: format!("Versement n°{}", i + 1),
                share: crate::financing::Share::Rate(rust_decimal::Decimal::from(*r)),
                condition: conditions[i.min(2)],
            })
            .collect(),
        set_on: d("2021-03-15"),
        amendment,
    })
}

#[test]
fn the_schedule_pays_ancts_share_in_instalments_to_the_cent() {
    let events = given::<Convention>([signed()]).when(schedule(&[30, 50, 20], None)).events();
    let Ev::ScheduleSet(e) = &events[0] else { panic!() };
    let amounts: Vec<Money> = e.instalments.iter().map(|i| i.amount).collect();
    assert_eq!(amounts, vec![eur(780_000), eur(1_300_000), eur(520_000)]);
    given::<Convention>([signed()]).when(schedule(&[30, 50], None)).then_err(ConventionError::ScheduleDoesNotAddUp {
        problem: "rates add up to 80 %, not 100 % of ANCT's share".into(),
    });
}

#[test]
fn the_schedule_changes_only_by_an_amendment_signed_and_not_yet_used() {
    let first = given::<Convention>([signed()]).when(schedule(&[30, 50, 20], None)).events().remove(0);
    given::<Convention>([signed(), first.clone()])
        .when(schedule(&[40, 40, 20], None))
        .then_err(ConventionError::ScheduleChangeNeedsAmendment { amendment: None });
    given::<Convention>([signed(), first.clone()])
        .when(schedule(&[40, 40, 20], Some(1)))
        .then_err(ConventionError::ScheduleChangeNeedsAmendment { amendment: Some(1) });
    let mut a = amendment();
    a.period_end = Some(d("2023-06-30"));
    let avenant = given::<Convention>([signed()]).when(Cmd::SignAmendment(a)).events().remove(0);
    given::<Convention>([signed(), first, avenant]).when(schedule(&[40, 40, 20], Some(1))).events();
}

#[test]
fn only_a_convention_ancts_funds_has_a_schedule() {
    let mut c = sign_command();
    c.total = eur(100);
    c.shares = vec![share("Région", 100)];
    let signed = Convention::default().decide(&Cmd::Sign(c)).unwrap().remove(0);
    given::<Convention>([signed]).when(schedule(&[100], None)).then_err(ConventionError::NoAnctShare);
}

/// Properties over random histories: whatever commands come, in whatever order, the
/// accepted ones never break the convention's money identities.
mod properties {
    use super::*;
    use proptest::prelude::*;

    const ENVELOPES: [&str; 2] = ["Formations", "Frais annexes"];

    /// A random step: which command, on which envelope, which commitment, how many euros.
    fn command(kind: u8, on: usize, reference: u8, amount: i64) -> ConventionCommand {
        let name = ENVELOPES[on];
        let reference = format!("R{reference}");
        match kind {
            0 => allocate(name, amount),
            1 => Cmd::CommitFunds(CommitFunds { envelope_id: envelope(name), ..commit(&reference, amount) }),
            2 => Cmd::ReleaseFunds(ReleaseFunds {
                convention_id: id(),
                reference,
                amount: eur(amount),
                released_on: d("2021-05-01"),
            }),
            3 => Cmd::RecordServiceDone(RecordServiceDone {
                convention_id: id(),
                reference,
                amount: eur(amount),
                done_on: d("2021-06-01"),
            }),
            _ => Cmd::RecordPayment(RecordPayment {
                convention_id: id(),
                reference,
                amount: eur(amount),
                paid_on: d("2021-07-01"),
            }),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn paid_within_service_done_within_committed_within_allocated_within_the_total(
            steps in proptest::collection::vec((0u8..5, 0usize..2, 0u8..4, 1i64..3_000_000), 1..60),
        ) {
            let mut state = Convention::default();
            state.evolve(&signed());
            for (kind, on, reference, amount) in steps {
                if let Ok(events) = state.decide(&command(kind, on, reference, amount)) {
                    for e in &events {
                        state.evolve(e);
                    }
                }
                let s = state.0.as_ref().expect("signed");
                let allocated: Money = s.envelopes.values().map(|e| e.allocated).sum();
                prop_assert!(allocated <= s.total, "allocated {allocated} > total {}", s.total);
                for e in s.envelopes.values() {
                    prop_assert!(e.committed <= e.allocated, "{e:?}");
                    prop_assert!(e.service_done <= e.committed, "{e:?}");
                    prop_assert!(e.paid <= e.service_done, "{e:?}");
                }
                for c in s.commitments.values() {
                    prop_assert!(c.paid <= c.service_done && c.service_done <= c.committed, "{c:?}");
                }
            }
        }
    }
}
