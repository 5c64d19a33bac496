//! Retries and contention through GraphQL: the same command sent 20 times at once, for
//! every mutation, is applied once and every sender gets the answer of that one write;
//! 64 commitments at once on one envelope are all decided on the money alone.

use super::*;

/// The mutations of the access matrix, each with a fixed command id.
fn every_mutation() -> Vec<(Operation, &'static str, Value)> {
    every_operation()
        .into_iter()
        .filter(|(_, query, _)| query.starts_with("mutation"))
        .enumerate()
        .map(|(i, (operation, query, mut input))| {
            input["commandId"] = json!(cmd(7_000 + i as u128));
            (operation, query, input)
        })
        .collect()
}

/// Someone allowed to send this operation.
fn sender(operation: Operation) -> Principal {
    match [Role::Anct, Role::Opco].into_iter().find(|r| auth::allowed(*r, operation)) {
        Some(role) => Principal::local(role, "retry"),
        None => brest_principal(),
    }
}

fn positions(answer: &Value) -> Vec<u64> {
    let mut found = Vec::new();
    if let Some(data) = answer["data"].as_object() {
        for payload in data.values() {
            if let Some(p) = payload["position"].as_u64() {
                found.push(p);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_sends_of_one_command_write_once_for_every_mutation() {
    for (operation, query, input) in every_mutation() {
        // What one send writes, on a log of its own.
        let alone = Api::for_matrix().await;
        let before = alone.written();
        let request = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(json!({ "input": input.clone() })));
        let single = serde_json::to_value(execute(&alone.schema, request, sender(operation)).await).unwrap();
        let wrote = alone.written() - before;

        let api = Api::for_matrix().await;
        let before = api.written();
        let sends: Vec<_> = (0..20)
            .map(|_| {
                let (schema, input) = (api.schema.clone(), input.clone());
                let principal = sender(operation);
                tokio::spawn(async move {
                    let request = async_graphql::Request::new(query)
                        .variables(async_graphql::Variables::from_json(json!({ "input": input })));
                    serde_json::to_value(execute(&schema, request, principal).await).unwrap()
                })
            })
            .collect();
        let mut answers = Vec::new();
        for s in sends {
            answers.push(s.await.unwrap());
        }
        let name = operation.name();
        assert_eq!(api.written() - before, wrote, "{name}: 20 sends wrote what one send writes");
        for answer in &answers {
            // The same outcome as the single send: an error only where it had one (closing
            // with open commitments), with the same code.
            assert_eq!(answer.get("errors").is_some(), single.get("errors").is_some(), "{name}: {answer} vs {single}");
            if let Some(errors) = answer["errors"].as_array() {
                assert_eq!(errors[0]["extensions"]["code"], single["errors"][0]["extensions"]["code"], "{name}");
            }
            assert_eq!(positions(answer), positions(&answers[0]), "{name}: every answer names the same write");
        }
        let firsts = answers.iter().filter(|a| a["data"].to_string().contains("\"duplicate\":false")).count();
        assert!(firsts <= 1, "{name}: at most one first answer, {firsts}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_commitments_on_one_envelope_none_refused_for_contention() {
    let api = Api::with_budget().await;
    let budget = api
        .query(r#"{ convention(code: "ANCT-UNIFORMATION-2021") { envelopes { name figures { available } } } }"#)
        .await;
    let available: rust_decimal::Decimal = budget["data"]["convention"]["envelopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "Formations certifiantes")
        .map(|e| e["figures"]["available"].as_str().unwrap().parse().unwrap())
        .unwrap();
    // Each commitment takes a 48th of what is available: 48 fit, 16 do not.
    let share = (available / rust_decimal::Decimal::from(48)).floor();
    let sends: Vec<_> = (0..64)
        .map(|i| {
            let schema = api.schema.clone();
            let input = commit_input(8_000 + i, &format!("CONCURRENT-{i}"), &share.to_string());
            tokio::spawn(async move {
                let request = async_graphql::Request::new(COMMIT)
                    .variables(async_graphql::Variables::from_json(json!({ "input": input })));
                serde_json::to_value(execute(&schema, request, Principal::local(Role::Anct, "load")).await).unwrap()
            })
        })
        .collect();
    let (mut accepted, mut exceeded) = (0, 0);
    for s in sends {
        let answer = s.await.unwrap();
        if answer.get("errors").is_none() {
            accepted += 1;
            continue;
        }
        match answer["errors"][0]["extensions"]["rule"].as_str() {
            Some("EnvelopeExceeded") => {
                assert_eq!(answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
                exceeded += 1
            }
            _ => panic!("refused for another reason than the money: {answer}"),
        }
    }
    assert_eq!((accepted, exceeded), (48, 16));
}
