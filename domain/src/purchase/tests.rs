//! One given/when/then test per rule of a training purchase.

use super::*;
use crate::structure::Siret;
use crate::testing::given;
use PurchaseCommand as Cmd;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn id() -> PurchaseId {
    PurchaseId::for_request(CommandId(Uuid::from_u128(1)))
}

fn request() -> RequestPurchase {
    RequestPurchase {
        purchase_id: id(),
        convention_id: ConventionId::for_code("ANCT-UNIFORMATION-2021"),
        structure_id: StructureId::for_siret(&Siret::parse("73282932000074").unwrap()),
        departement: DepartementCode::parse("29").unwrap(),
        structure_kind: StructureKind::Association,
        provider: "Simplon".into(),
        title: "Titre professionnel Responsable d'espace de médiation numérique".into(),
        certification: Some("rncp34587".into()),
        blocks: vec![CompetencyBlock::DigitalPedagogyAutonomy, CompetencyBlock::DigitalCulture],
        metier: Metier::MediateurNumerique,
        hours: 140,
        trainees: 10,
        unit_cost: Money::parse("1250.50").unwrap(),
        session_start: d("2021-05-03"),
        session_end: d("2021-06-25"),
        requested_on: d("2021-04-15"),
    }
}

fn requested() -> PurchaseEvent {
    Purchase::default().decide(&Cmd::Request(Box::new(request()))).unwrap().remove(0)
}

fn approved() -> PurchaseEvent {
    PurchaseEvent::PurchaseApproved { amount: Money::parse("12505").unwrap(), approved_on: d("2021-04-20") }
}

fn attended(present: u32) -> PurchaseEvent {
    given::<Purchase>([requested(), approved()])
        .when(Cmd::RecordAttendance { purchase_id: id(), present, recorded_on: d("2021-06-25") })
        .events()
        .remove(0)
}

#[test]
fn a_request_charges_the_certifying_envelope_with_the_total() {
    let PurchaseEvent::PurchaseRequested(e) = requested() else { panic!() };
    assert_eq!(e.total, Money::parse("12505.00").unwrap());
    assert_eq!(e.envelope_kind, EnvelopeKind::CertifyingTrainings);
    assert_eq!(e.certification.as_deref(), Some("RNCP34587"));
    assert_eq!(e.blocks, [CompetencyBlock::DigitalCulture, CompetencyBlock::DigitalPedagogyAutonomy]);
    assert_eq!(e.warning, None);
}

#[test]
fn a_training_without_certification_goes_to_the_non_certifying_envelope() {
    let mut c = request();
    c.certification = None;
    let events = given::<Purchase>([]).when(Cmd::Request(Box::new(c))).events();
    let PurchaseEvent::PurchaseRequested(e) = &events[0] else { panic!() };
    assert_eq!(e.envelope_kind, EnvelopeKind::NonCertifyingTrainings);
}

#[test]
fn the_opco_channel_funds_private_employers_only() {
    for public in [StructureKind::CcasCias, StructureKind::CommuneOrEpci, StructureKind::Departement] {
        let mut c = request();
        c.structure_kind = public;
        given::<Purchase>([])
            .when(Cmd::Request(Box::new(c)))
            .then_err(PurchaseError::PrivateEmployersOnly { structure_kind: public });
    }
    for private in [StructureKind::Association, StructureKind::PrivateCompany, StructureKind::Other] {
        let mut c = request();
        c.structure_kind = private;
        given::<Purchase>([]).when(Cmd::Request(Box::new(c))).events();
    }
}

#[test]
fn no_block_no_funding() {
    let mut c = request();
    c.blocks.clear();
    given::<Purchase>([]).when(Cmd::Request(Box::new(c))).then_err(PurchaseError::NoBlock);
}

#[test]
fn a_block_is_listed_once() {
    let mut c = request();
    c.blocks.push(CompetencyBlock::DigitalCulture);
    given::<Purchase>([])
        .when(Cmd::Request(Box::new(c)))
        .then_err(PurchaseError::DuplicateBlock { block: CompetencyBlock::DigitalCulture });
}

#[test]
fn a_purchase_trains_at_least_one_trainee_for_at_least_one_hour_at_a_cost() {
    let mut c = request();
    c.trainees = 0;
    given::<Purchase>([])
        .when(Cmd::Request(Box::new(c)))
        .then_err(PurchaseError::Zero { field: "the number of trainees" });
    let mut c = request();
    c.hours = 0;
    given::<Purchase>([])
        .when(Cmd::Request(Box::new(c)))
        .then_err(PurchaseError::Zero { field: "the number of hours" });
    let mut c = request();
    c.unit_cost = Money::ZERO;
    given::<Purchase>([]).when(Cmd::Request(Box::new(c))).then_err(PurchaseError::Zero { field: "the unit cost" });
}

#[test]
fn a_certification_code_is_rncp_or_rs() {
    let mut c = request();
    c.certification = Some("CQP-12".into());
    given::<Purchase>([])
        .when(Cmd::Request(Box::new(c)))
        .then_err(PurchaseError::InvalidCertification { code: "CQP-12".into() });
    let mut c = request();
    c.certification = Some("RS5477".into());
    assert_eq!(given::<Purchase>([]).when(Cmd::Request(Box::new(c))).events().len(), 1);
}

#[test]
fn a_session_cannot_end_before_it_starts() {
    let mut c = request();
    c.session_end = d("2021-05-01");
    given::<Purchase>([])
        .when(Cmd::Request(Box::new(c)))
        .then_err(PurchaseError::SessionEndsBeforeStart { start: d("2021-05-03"), end: d("2021-05-01") });
}

#[test]
fn a_group_outside_8_to_15_is_accepted_with_a_warning() {
    for (trainees, warned) in [(7, true), (8, false), (15, false), (16, true)] {
        let mut c = request();
        c.trainees = trainees;
        let events = given::<Purchase>([]).when(Cmd::Request(Box::new(c))).events();
        let PurchaseEvent::PurchaseRequested(e) = &events[0] else { panic!() };
        assert_eq!(e.warning.is_some(), warned, "{trainees} trainees");
    }
}

#[test]
fn a_purchase_is_requested_once() {
    given::<Purchase>([requested()]).when(Cmd::Request(Box::new(request()))).then_err(PurchaseError::AlreadyRequested);
}

#[test]
fn approval_commits_the_total() {
    given::<Purchase>([requested()])
        .when(Cmd::Approve { purchase_id: id(), approved_on: d("2021-04-20") })
        .then([approved()]);
}

#[test]
fn only_a_requested_purchase_is_approved() {
    given::<Purchase>([requested(), approved()])
        .when(Cmd::Approve { purchase_id: id(), approved_on: d("2021-04-21") })
        .then_err(PurchaseError::WrongState { state: PurchaseState::Approved, action: "approved" });
    given::<Purchase>([])
        .when(Cmd::Approve { purchase_id: id(), approved_on: d("2021-04-21") })
        .then_err(PurchaseError::NotFound);
}

#[test]
fn attendance_does_service_for_the_present_and_releases_the_rest() {
    assert_eq!(
        attended(8),
        PurchaseEvent::AttendanceRecorded {
            present: 8,
            service_done: Money::parse("10004").unwrap(),
            released: Money::parse("2501").unwrap(),
            recorded_on: d("2021-06-25"),
        }
    );
}

#[test]
fn no_more_present_than_registered() {
    given::<Purchase>([requested(), approved()])
        .when(Cmd::RecordAttendance { purchase_id: id(), present: 11, recorded_on: d("2021-06-25") })
        .then_err(PurchaseError::MorePresentThanRegistered { present: 11, registered: 10 });
}

#[test]
fn attendance_needs_an_approved_purchase() {
    given::<Purchase>([requested()])
        .when(Cmd::RecordAttendance { purchase_id: id(), present: 5, recorded_on: d("2021-06-25") })
        .then_err(PurchaseError::WrongState { state: PurchaseState::Requested, action: "attended" });
}

#[test]
fn payment_pays_the_service_done() {
    given::<Purchase>([requested(), approved(), attended(8)])
        .when(Cmd::RecordPayment { purchase_id: id(), paid_on: d("2021-07-15") })
        .then([PurchaseEvent::PurchasePaid { amount: Money::parse("10004").unwrap(), paid_on: d("2021-07-15") }]);
    given::<Purchase>([requested(), approved()])
        .when(Cmd::RecordPayment { purchase_id: id(), paid_on: d("2021-07-15") })
        .then_err(PurchaseError::WrongState { state: PurchaseState::Approved, action: "paid" });
}

#[test]
fn cancelling_an_approved_purchase_releases_its_funds_and_attended_ones_cannot_be_cancelled() {
    let cancel = || Cmd::Cancel { purchase_id: id(), reason: "Session annulée".into(), cancelled_on: d("2021-05-01") };
    given::<Purchase>([requested(), approved()]).when(cancel()).then([PurchaseEvent::PurchaseCancelled {
        reason: "Session annulée".into(),
        released: Money::parse("12505").unwrap(),
        cancelled_on: d("2021-05-01"),
    }]);
    given::<Purchase>([requested()]).when(cancel()).then([PurchaseEvent::PurchaseCancelled {
        reason: "Session annulée".into(),
        released: Money::ZERO,
        cancelled_on: d("2021-05-01"),
    }]);
    given::<Purchase>([requested(), approved(), attended(8)])
        .when(cancel())
        .then_err(PurchaseError::WrongState { state: PurchaseState::Attended, action: "cancelled" });
}
