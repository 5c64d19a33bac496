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

/// The certifying envelope's committed figure, in the budget read model and in the report.
async fn committed_figures(api: &Api) -> (String, String) {
    let budget = ok(api
        .query(r#"{ convention(code: "ANCT-UNIFORMATION-2021") { envelopes { name figures { committed } } } }"#)
        .await);
    let read_model = budget["data"]["convention"]["envelopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "Formations certifiantes")
        .map(|e| e["figures"]["committed"].as_str().unwrap().to_string())
        .unwrap();
    let report = ok(api.query("{ report }").await);
    let replayed = report["data"]["report"]["conventions"][0]["envelopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "Formations certifiantes")
        .map(|e| e["committed"].as_str().unwrap().to_string())
        .unwrap();
    (read_model, replayed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_fails_inside_its_write_leaves_read_models_and_report_agreeing_with_the_log_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite3");
    let log = Arc::new(store::SqliteStore::open(&path).unwrap());
    let api = Api::with_budget_on(log.clone()).await;
    ok(api.run(REGISTER, register_input(600, BREST)).await);
    ok(api.run(REQUEST, purchase_input(700, 10)).await);
    let approve = json!({ "commandId": cmd(800), "purchaseId": purchase(700), "approvedOn": "2021-04-20" });
    // The approval writes the commitment (convention) and the approval (purchase): fail the
    // log after none, then after one, of those events.
    for fail_after in 0..2 {
        log.fail_next_write_after(fail_after);
        let failed = api.run(APPROVE, approve.clone()).await;
        assert_eq!(failed["errors"][0]["extensions"]["code"], "INTERNAL", "{failed}");
    }
    let head = api.written();
    drop(api);
    drop(log);

    // After a restart (once the read models' and the saga's tasks, stopped with the server,
    // have let go of the log), the read models and the report agree with it: no orphan money,
    let mut reopened = store::SqliteStore::open(&path);
    for _ in 0..100 {
        if reopened.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        reopened = store::SqliteStore::open(&path);
    }
    let log = Arc::new(reopened.unwrap());
    assert_eq!(*log.head().borrow(), head, "nothing of the failed writes survives");
    assert!(store::verify_store(log.as_ref(), true).await.unwrap().is_intact());
    let api = Api::on(log.clone());
    assert!(api.state.wait_for(head, std::time::Duration::from_secs(10)).await);
    let status = ok(api.query(&format!(r#"{{ purchase(id: "{}") {{ status committed }} }}"#, purchase(700))).await);
    assert_eq!(status["data"]["purchase"]["status"], "REQUESTED");
    assert_eq!(committed_figures(&api).await, ("12345.67".to_string(), "12345.67".to_string()));

    // and no stuck purchase: the same command, sent again, is applied whole.
    ok(api.run(APPROVE, approve).await);
    let status = ok(api.query(&format!(r#"{{ purchase(id: "{}") {{ status }} }}"#, purchase(700))).await);
    assert_eq!(status["data"]["purchase"]["status"], "APPROVED");
    // 10 trainees × 1 250.50 € committed on top of the 12 345.67 € already there.
    assert_eq!(committed_figures(&api).await, ("24850.67".to_string(), "24850.67".to_string()));
}
