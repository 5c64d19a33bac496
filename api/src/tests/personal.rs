//! Erasure in the directory of persons through GraphQL (`forgetPerson`, ANCT only).

use super::*;

const FORGET: &str =
    "mutation($input: ForgetPersonInput!) { forgetPerson(input: $input) { person kind reason tokensRevoked } }";

/// The person the matrix erases (registered by [`matrix_person`]).
const MATRIX_PERSON: &str = "6d1c1a2e-0000-4000-8000-00000000f0f0";

pub(super) fn matrix_person(api: &Api) {
    api.state
        .use_cases
        .people()
        .add_agent_with_id(uuid::Uuid::parse_str(MATRIX_PERSON).unwrap(), "opco", "Matrice")
        .unwrap();
}

pub(super) fn matrix_operations() -> Vec<(Operation, &'static str, Value)> {
    vec![(Operation::ForgetPerson, FORGET, json!({ "person": MATRIX_PERSON }))]
}

fn code(answer: &Value) -> &Value {
    &answer["errors"][0]["extensions"]["code"]
}

#[tokio::test]
async fn anct_forgets_a_person_who_then_shows_as_erased_and_the_log_is_unchanged() {
    // Given an agent in the directory who acted, as their token's principal
    let api = Api::new();
    let person = api.state.use_cases.people().add_agent("opco", "Marie Dupont").unwrap();
    let marie = Principal {
        role: Role::Anct,
        structure: None,
        label: "Marie Dupont".into(),
        token_id: uuid::Uuid::from_u128(0x3f2a9c1e_0000_0000_0000_000000000000),
        person: Some(person),
    };
    let request = async_graphql::Request::new(
        "mutation($input: SignConventionInput!) { signConvention(input: $input) { position } }",
    )
    .variables(async_graphql::Variables::from_json(json!({ "input": sign_input() })));
    let signed = serde_json::to_value(execute(&api.schema, request, marie).await).unwrap();
    assert_eq!(signed.get("errors"), None, "{signed}");
    let events = api.store.read_all(0, 100).await.unwrap();
    assert!(events.iter().all(|e| e.metadata.actor == format!("anct:{person} (token 3f2a9c1e)")), "an id, no name");
    let written = api.written();

    // When ANCT forgets her
    let answer = api.run(FORGET, json!({ "person": person.to_string(), "reason": "demande de la personne" })).await;

    // Then the directory says so, nothing was written to the log
    insta::assert_json_snapshot!(answer, { ".data.forgetPerson.person" => "[person id]" }, @r#"
    {
      "data": {
        "forgetPerson": {
          "kind": "agent",
          "person": "[person id]",
          "reason": "demande de la personne",
          "tokensRevoked": []
        }
      }
    }
    "#);
    assert_eq!(api.written(), written, "the log is untouched");
    assert_eq!(api.state.use_cases.people().display(&person.to_string()), store::directory::ERASED);

    // And a second erasure, an unknown id, a malformed one are refused with their codes
    let again = api.run(FORGET, json!({ "person": person.to_string() })).await;
    assert_eq!(code(&again), "CONFLICT", "{again}");
    let unknown = api.run(FORGET, json!({ "person": uuid::Uuid::new_v4().to_string() })).await;
    assert_eq!(code(&unknown), "NOT_FOUND", "{unknown}");
    let malformed = api.run(FORGET, json!({ "person": "Marie Dupont" })).await;
    assert_eq!(code(&malformed), "BAD_USER_INPUT", "{malformed}");
    assert_eq!(malformed["errors"][0]["extensions"]["field"], "person");
    let forbidden = api.run_as(Role::Opco, FORGET, json!({ "person": person.to_string() })).await;
    assert_eq!(code(&forbidden), "FORBIDDEN", "{forbidden}");
}

#[tokio::test]
async fn a_reference_that_looks_like_personal_data_is_refused_naming_the_field() {
    let api = Api::new();
    ok(api.run(REGISTER, register_input(1, BREST)).await);
    let written = api.written();
    for (aidant, looks_like) in [
        ("marie@ccas.fr", "EMAIL_ADDRESS"),
        ("06 12 34 56 78", "PHONE_NUMBER"),
        ("185057512345678", "SOCIAL_SECURITY_NUMBER"),
    ] {
        let answer = api.run(REQUEST_HABILITATION, habilitation_request(2, BREST, aidant)).await;
        let error = &answer["errors"][0];
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{answer}");
        assert_eq!(error["extensions"]["field"], "aidant", "{answer}");
        assert_eq!(error["extensions"]["looksLike"], looks_like, "{answer}");
    }
    assert_eq!(api.written(), written, "nothing written");
}

#[tokio::test]
async fn an_aidant_is_recorded_by_an_id_shown_by_reference_then_as_erased() {
    let api = Api::new();
    ok(api.run(REGISTER, register_input(1, BREST)).await);
    let answer = ok(api.run(REQUEST_HABILITATION, habilitation_request(2, BREST, "AIDANT-SECRET-7")).await);
    assert_eq!(answer["data"]["requestHabilitation"]["habilitation"]["aidant"], "AIDANT-SECRET-7");
    let events = api.store.read_all(0, 100).await.unwrap();
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains("AIDANT-SECRET-7"), "the log holds the id, not the reference");
    let person = api.state.use_cases.people().find(store::PersonKind::Aidant, &structure_id(BREST), "AIDANT-SECRET-7");
    let person = person.unwrap().expect("issued");
    assert!(text.contains(&person.to_string().to_uppercase()), "as the domain writes references: in upper case");
    ok(api.run(FORGET, json!({ "person": person.to_string() })).await);
    let listed = ok(api.query("{ habilitations { aidant status } }").await);
    assert_eq!(listed["data"]["habilitations"][0]["aidant"], "personne effacée");
}

#[tokio::test]
async fn a_pix_candidate_is_recorded_by_an_id_and_a_candidate_that_looks_like_a_phone_number_is_refused() {
    let api = Api::new();
    let pix = sign_single(&api, 500, "ANCT-PIX-2021", "370000", "Certifications Pix", "CERTIFICATIONS").await;
    ok(api.run(REGISTER, register_input(510, BREST)).await);
    ok(api.run(OPEN_PIX, pix_input(520, pix, 2)).await);
    let certified = ok(api.run(CERTIFY, certify_input(521, campaign(520), "PIX-SECRET-1", 812)).await);
    let shown = &certified["data"]["recordPixCertification"]["campaign"]["certifications"][0]["candidate"];
    assert_eq!(shown, "PIX-SECRET-1", "shown by reference");
    let events = serde_json::to_string(&api.store.read_all(0, 100).await.unwrap()).unwrap();
    assert!(!events.contains("PIX-SECRET-1"), "the log holds the candidate's id");
    let written = api.written();
    let refused = api.run(CERTIFY, certify_input(522, campaign(520), "07 98 76 54 32", 500)).await;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    assert_eq!(refused["errors"][0]["extensions"]["field"], "candidate");
    assert_eq!(refused["errors"][0]["extensions"]["looksLike"], "PHONE_NUMBER");
    assert_eq!(api.written(), written, "nothing written");
}

#[tokio::test]
async fn free_text_holding_contact_details_or_a_nir_is_refused_in_any_mutation_and_nothing_is_written() {
    // Given an aidant's habilitation
    let step = |name: &str| HABILITATION_STEP.replace("STEP", name);
    let api = Api::new();
    ok(api.run(REGISTER, register_input(1, BREST)).await);
    ok(api.run(REQUEST_HABILITATION, habilitation_request(2, BREST, "AIDANT-1")).await);
    let written = api.written();
    // When a reason names how to reach a person
    for (reason, looks_like) in [
        ("Départ de la structure, joignable au 06 12 34 56 78", "PHONE_NUMBER"),
        ("Écrire à marie.dupont@ccas-brest.fr", "EMAIL_ADDRESS"),
        ("NIR 1 85 05 75 123 456 78 erroné", "SOCIAL_SECURITY_NUMBER"),
    ] {
        let answer = api.run(&step("refuseHabilitation"), hstep(3, "AIDANT-1", json!({ "reason": reason }))).await;
        // Then it is refused, naming the field and what the text looks like
        let error = &answer["errors"][0];
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{answer}");
        assert_eq!(error["extensions"]["field"], "$input.reason", "{answer}");
        assert_eq!(error["extensions"]["looksLike"], looks_like, "{answer}");
    }
    assert_eq!(api.written(), written, "nothing written");
    // A reason without them is taken
    ok(api.run(&step("refuseHabilitation"), hstep(4, "AIDANT-1", json!({ "reason": "Départ de la structure" }))).await);
    // And a query is not a write: its arguments are not held to the rule
    let asked = api.query(r#"{ habilitations(structureId: "marie@ccas.fr") { id } }"#).await;
    assert_eq!(asked["errors"][0]["extensions"]["field"], "structureId", "{asked}");
    assert_eq!(asked["errors"][0]["extensions"].get("looksLike"), None, "{asked}");
}
