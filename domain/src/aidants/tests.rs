//! One given/when/then test per rule of Aidants Connect sessions and habilitations.

use super::*;
use crate::testing::given;
use HabilitationCommand as C;
use HabilitationEvent as E;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn session() -> SessionId {
    SessionId::for_command(CommandId(Uuid::from_u128(1)))
}

fn convention() -> ConventionId {
    ConventionId::for_code("ANCT-AIDANTS-CONNECT-2021")
}

fn habilitation() -> HabilitationId {
    HabilitationId::of(StructureId(Uuid::from_u128(7)), "aidant-42")
}

fn opened(capacity: u32) -> SessionEvent {
    TrainingSession::default()
        .decide(&SessionCommand::Open {
            session_id: session(),
            convention_id: convention(),
            capacity,
            seat_cost: Money::euros(125),
            held_on: d("2021-05-10"),
        })
        .unwrap()
        .remove(0)
}

fn reserve(h: HabilitationId) -> SessionCommand {
    SessionCommand::ReserveSeat { session_id: session(), habilitation_id: h }
}

#[test]
fn a_session_has_a_capacity() {
    let other = HabilitationId::of(StructureId(Uuid::from_u128(8)), "aidant-1");
    given::<TrainingSession>([
        opened(1),
        SessionEvent::SeatReserved { habilitation_id: other, held_on: d("2021-05-10") },
    ])
    .when(reserve(habilitation()))
    .then_err(SessionError::Full { capacity: 1 });
    given::<TrainingSession>([opened(1)])
        .when(reserve(habilitation()))
        .then([SessionEvent::SeatReserved { habilitation_id: habilitation(), held_on: d("2021-05-10") }]);
}

#[test]
fn a_seat_is_reserved_once_per_aidant() {
    let seated = SessionEvent::SeatReserved { habilitation_id: habilitation(), held_on: d("2021-05-10") };
    given::<TrainingSession>([opened(1), seated]).when(reserve(habilitation())).then([]);
}

#[test]
fn a_session_has_seats_and_a_cost() {
    let open = |capacity, cost| SessionCommand::Open {
        session_id: session(),
        convention_id: convention(),
        capacity,
        seat_cost: cost,
        held_on: d("2021-05-10"),
    };
    given::<TrainingSession>([])
        .when(open(0, Money::euros(125)))
        .then_err(SessionError::Zero { field: "the capacity" });
    given::<TrainingSession>([]).when(open(5, Money::ZERO)).then_err(SessionError::Zero { field: "the seat cost" });
    given::<TrainingSession>([]).when(reserve(habilitation())).then_err(SessionError::NotFound);
}

fn requested() -> E {
    E::HabilitationRequested {
        habilitation_id: habilitation(),
        structure_id: StructureId(Uuid::from_u128(7)),
        departement: DepartementCode::parse("974").unwrap(),
        aidant: "AIDANT-42".into(),
        cycle: 1,
        on: d("2021-04-01"),
    }
}

fn request() -> C {
    C::Request {
        habilitation_id: habilitation(),
        structure_id: StructureId(Uuid::from_u128(7)),
        departement: DepartementCode::parse("974").unwrap(),
        aidant: "aidant-42".into(),
        on: d("2021-04-01"),
    }
}

fn validated() -> E {
    E::EligibilityValidated { on: d("2021-04-05") }
}

fn registered() -> E {
    E::RegisteredToSession {
        session_id: session(),
        convention_id: convention(),
        seat_cost: Money::euros(125),
        on: d("2021-04-06"),
    }
}

fn trained() -> E {
    E::TrainingCompleted {
        convention_id: convention(),
        seat_cost: Money::euros(125),
        reference: habilitation().reference(1),
        on: d("2021-05-10"),
    }
}

fn habilitated() -> E {
    E::Habilitated { means: Means::Card, on: d("2021-05-20") }
}

#[test]
fn a_request_starts_the_first_cycle() {
    given::<Habilitation>([]).when(request()).then([requested()]);
}

#[test]
fn one_active_habilitation_per_aidant_per_structure() {
    given::<Habilitation>([requested(), validated(), registered(), trained(), habilitated()])
        .when(request())
        .then_err(HabilitationError::AlreadyActive { state: HabilitationState::Habilitated });
    // Once revoked, the aidant may ask again: a second cycle.
    let revoked = E::HabilitationRevoked { reason: "Départ de la structure".into(), on: d("2022-01-10") };
    let events = given::<Habilitation>([requested(), validated(), registered(), trained(), habilitated(), revoked])
        .when(request())
        .events();
    assert!(matches!(events[0], E::HabilitationRequested { cycle: 2, .. }));
}

#[test]
fn no_completed_training_no_habilitation() {
    for history in [vec![requested()], vec![requested(), validated()], vec![requested(), validated(), registered()]] {
        given::<Habilitation>(history)
            .when(C::Habilitate { habilitation_id: habilitation(), means: Means::App, on: d("2021-05-20") })
            .then_err(HabilitationError::NoCompletedTraining);
    }
    given::<Habilitation>([requested(), validated(), registered(), trained()])
        .when(C::Habilitate { habilitation_id: habilitation(), means: Means::Card, on: d("2021-05-20") })
        .then([habilitated()]);
}

#[test]
fn completing_the_training_charges_the_seat() {
    given::<Habilitation>([requested(), validated(), registered()])
        .when(C::CompleteTraining { habilitation_id: habilitation(), on: d("2021-05-10") })
        .then([trained()]);
    given::<Habilitation>([requested(), validated()])
        .when(C::CompleteTraining { habilitation_id: habilitation(), on: d("2021-05-10") })
        .then_err(HabilitationError::WrongState {
            state: HabilitationState::EligibilityValidated,
            action: "marked as trained",
        });
}

#[test]
fn registration_needs_validated_eligibility() {
    given::<Habilitation>([requested()])
        .when(C::RegisterToSession {
            habilitation_id: habilitation(),
            session_id: session(),
            convention_id: convention(),
            seat_cost: Money::euros(125),
            on: d("2021-04-06"),
        })
        .then_err(HabilitationError::WrongState {
            state: HabilitationState::Requested,
            action: "registered to a session",
        });
}

#[test]
fn refusal_and_cancellation_happen_at_the_start_with_a_reason() {
    given::<Habilitation>([requested()])
        .when(C::Refuse { habilitation_id: habilitation(), reason: " ".into(), on: d("2021-04-02") })
        .then_err(HabilitationError::MissingField { field: "the reason" });
    given::<Habilitation>([requested(), validated(), registered(), trained()])
        .when(C::Cancel { habilitation_id: habilitation(), reason: "Abandon".into(), on: d("2021-05-11") })
        .then_err(HabilitationError::WrongState { state: HabilitationState::TrainingCompleted, action: "cancelled" });
    given::<Habilitation>([requested()])
        .when(C::Refuse { habilitation_id: habilitation(), reason: "Hors périmètre".into(), on: d("2021-04-02") })
        .then([E::HabilitationRefused { reason: "Hors périmètre".into(), on: d("2021-04-02") }]);
}

#[test]
fn only_a_habilitated_aidant_is_revoked() {
    given::<Habilitation>([requested(), validated()])
        .when(C::Revoke { habilitation_id: habilitation(), reason: "Fin de contrat".into(), on: d("2022-01-10") })
        .then_err(HabilitationError::WrongState { state: HabilitationState::EligibilityValidated, action: "revoked" });
}

#[test]
fn an_aidant_reference_is_a_pseudonym_never_contact_details_or_a_nir() {
    use crate::personal::LooksLike;
    for (aidant, looks_like) in [
        ("marie.dupont@ccas-brest.fr", LooksLike::EmailAddress),
        ("06 12 34 56 78", LooksLike::PhoneNumber),
        ("1 85 05 75 123 456 78", LooksLike::SocialSecurityNumber),
    ] {
        let mut command = request();
        if let C::Request { aidant: a, .. } = &mut command {
            *a = aidant.into();
        }
        given::<Habilitation>([])
            .when(command)
            .then_err(HabilitationError::PersonalData { field: "the aidant reference", looks_like });
    }
}
