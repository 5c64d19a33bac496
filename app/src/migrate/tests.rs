//! The migration of a log written before the directory of persons: references in clear
//! and the ids derived from them, as the entry points wrote them then.

use super::*;
use domain::aidants::{HabilitationCommand, Means, SessionId};
use domain::annex::ExpenseKind;
use domain::claim::{AnnexClaim, ClaimCommand, ExpenseLine};
use domain::funds_call::{FundsCallCommand, FundsCallId};
use domain::money::Money;
use domain::pix::{CampaignId, PixCommand};
use domain::territory::DepartementCode;
use domain::{ConventionId, aidants};
use projections::{BudgetView, Checkpointed, DashboardView, ProgrammesView, Projection, ReimbursementsView};
use std::sync::Arc;
use store::handler::stream_name;
use usecases::UseCases;
use usecases::programmes::AnnexClaimRequest;

const AIDANT: &str = "AIDANT-HIST-1";
const TRAINEE: &str = "STAGIAIRE-HIST-1";
const CANDIDATE: &str = "PIX-HIST-0001";

fn date(s: &str) -> chrono::NaiveDate {
    s.parse().unwrap()
}

fn meta() -> CommandMeta {
    CommandMeta::new(CommandId::new_random(), "opco:Marie Dupont (token 3f2a9c1e)")
}

/// A line of a file imported from the command line before the directory: its command id
/// derived from the line's content, the reference in clear among it.
fn imported(content: &str) -> CommandMeta {
    let id = CommandId(Uuid::new_v5(&TRACKER_NAMESPACE, format!("import:habilitations:{content}").as_bytes()));
    CommandMeta::new(id, "import:habilitations (ligne de commande, fichier sha256 0123abcd…)")
}

/// The first payload field `field` of an event of type `event_type`.
async fn first(log: &dyn EventStore, event_type: &str, field: &str) -> String {
    let events = log.read_all(0, 100_000).await.unwrap();
    let e = events.iter().find(|e| e.event_type == event_type).unwrap();
    e.payload.to_value()[field].as_str().unwrap().to_string()
}

/// What the old-style history wrote: the structure, the purchase, the campaign, and the
/// ids derived from the references as the entry points derived them then.
struct History {
    structure: StructureId,
    purchase: PurchaseId,
    campaign: CampaignId,
    habilitation: HabilitationId,
    claim: ClaimId,
    /// The imported lines' commands: the aidant's request, their registration (from the
    /// command line), the trainee's claim (over HTTP).
    imported: [CommandId; 3],
    /// The candidate's certification, sent with a random id.
    certification: CommandId,
}

/// The reimbursement saga on `store` from its start, sending through `uc`, as a
/// server's does.
async fn saga(store: &Arc<dyn EventStore>, uc: &Arc<UseCases>) -> sagas::ReimbursementProcess {
    sagas::ReimbursementProcess::start(
        store.clone(),
        Arc::new(sagas::MemoryCheckpoint::default()),
        Arc::new(sagas::SystemClock),
    )
    .await
    .unwrap()
    .with_use_cases(uc.clone())
}

/// Given a log as the version before the directory wrote it: the sample (seeded as this
/// version seeds it: its invented references already ids of the data directory's
/// directory, which the migration leaves alone), and an aidant trained and habilitated, a trainee's
/// claim paid, called and reimbursed, a Pix candidate certified, each by a reference in
/// clear with the ids derived from it, sent through the use cases as the entry points
/// sent them (the reimbursement saga acting after each step, as the server's does).
async fn old_style_log(data: &Path) -> History {
    let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(data.join(crate::LOG_FILE)).unwrap());
    let history = write_old_style_log(store, Arc::new(store::Directory::open(data).unwrap())).await;
    released(data).await;
    history
}

/// The history of [`old_style_log`] written into `store`, the sample's invented
/// references going into `people`.
async fn write_old_style_log(store: Arc<dyn EventStore>, people: Arc<Directory>) -> History {
    scenarios::demo::seed(store.clone(), people).await.unwrap();
    let uc = UseCases::new(store.clone());
    let mut saga = saga(&store, &uc).await;
    let structure = StructureId(scenarios::demo::demo_structure());
    let departement = DepartementCode::parse("75").unwrap();
    let session = SessionId::parse(&first(store.as_ref(), "AidantsConnectSessionOpened", "session_id").await).unwrap();
    let campaign =
        CampaignId(Uuid::parse_str(&first(store.as_ref(), "PixCampaignOpened", "campaign_id").await).unwrap());
    let purchase = PurchaseId::parse(&first(store.as_ref(), "AnnexClaimSubmitted", "purchase_id").await).unwrap();

    let habilitation = HabilitationId::of(structure, AIDANT);
    let step = |c| uc.habilitation(c, meta());
    let (request, registration) = (imported(&format!("{AIDANT}:demande")), imported(&format!("{AIDANT}:inscription")));
    let mut imported = [request.command_id, registration.command_id, CommandId(Uuid::nil())];
    let request_command = HabilitationCommand::Request {
        habilitation_id: habilitation,
        structure_id: structure,
        departement: departement.clone(),
        aidant: AIDANT.into(),
        on: date("2021-04-21"),
    };
    uc.habilitation(request_command, request).await.unwrap();
    step(HabilitationCommand::ValidateEligibility { habilitation_id: habilitation, on: date("2021-04-28") })
        .await
        .unwrap();
    uc.register_to_session(habilitation, session, date("2021-05-03"), registration).await.unwrap();
    step(HabilitationCommand::CompleteTraining { habilitation_id: habilitation, on: date("2021-05-17") })
        .await
        .unwrap();
    step(HabilitationCommand::Habilitate { habilitation_id: habilitation, means: Means::App, on: date("2021-05-25") })
        .await
        .unwrap();

    let certification = meta();
    let certification_id = certification.command_id;
    uc.pix(
        PixCommand::RecordCertification {
            campaign_id: campaign,
            candidate: CANDIDATE.into(),
            structure_id: structure,
            departement: departement.clone(),
            score: 700,
            certified_on: date("2021-06-11"),
        },
        certification,
    )
    .await
    .unwrap();

    let claim = ClaimId::of(purchase, TRAINEE);
    let line = ExpenseLine {
        kind: ExpenseKind::PublicTransport,
        quantity: 1,
        area: None,
        amount: Money::euros(57),
        receipt: "SNCF-HIST-0001".into(),
    };
    let request = AnnexClaimRequest {
        claim_id: claim,
        structure_id: Some(structure),
        purchase_id: purchase,
        trainee: TRAINEE.into(),
        lines: vec![line],
        submitted_on: date("2021-06-07"),
    };
    // A line imported over HTTP: the token holder's actor, an id derived from the line.
    let line = CommandId(Uuid::new_v5(&TRACKER_NAMESPACE, format!("import:claims:{TRAINEE}").as_bytes()));
    imported[2] = line;
    uc.submit_annex_claim(request, CommandMeta::new(line, "structure:Jean Martin (token 0badcafe)")).await.unwrap();
    let claim_step = |c| uc.plain::<AnnexClaim>(stream_name::<AnnexClaim>(claim.0), c, meta());
    claim_step(ClaimCommand::Approve { claim_id: claim, reductions: vec![], approved_on: date("2021-06-14") })
        .await
        .unwrap();
    saga.run_until_idle().await.unwrap();
    claim_step(ClaimCommand::RecordPayment { claim_id: claim, paid_on: date("2022-01-10") }).await.unwrap();
    saga.run_until_idle().await.unwrap();
    let uniformation = ConventionId::for_code("ANCT-UNIFORMATION-2021");
    let call = meta();
    let call_id = FundsCallId::for_command(call.command_id);
    let issue = FundsCallCommand::Issue {
        convention_id: uniformation,
        call_id,
        period_start: date("2022-01-01"),
        period_end: date("2022-03-31"),
        claims: Some(vec![claim]),
        issued_on: date("2022-04-05"),
        payment_days: None,
    };
    uc.funds_call(issue, call).await.unwrap();
    saga.run_until_idle().await.unwrap();
    let paid = FundsCallCommand::RecordPayment { convention_id: uniformation, call_id, paid_on: date("2022-04-20") };
    uc.funds_call(paid, meta()).await.unwrap();
    saga.run_until_idle().await.unwrap();
    drop((saga, uc, store));
    History { structure, purchase, campaign, habilitation, claim, imported, certification: certification_id }
}

/// Waits until nothing of this process writes the log of `data` any more: the use
/// cases' tasks let go of it in their own time, and the migration (another writer) needs
/// it, as an operator stops the server first.
async fn released(data: &Path) {
    let path = data.join(crate::LOG_FILE);
    let started = std::time::Instant::now();
    while let Err(e) = SqliteStore::open(&path) {
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "{e}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The files under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path).unwrap().windows(needle.len()).any(|w| w == needle.as_bytes()) {
            found.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    found
}

async fn fold<V: Projection + serde::Serialize>(log: &dyn EventStore) -> String {
    let mut view = Checkpointed::<V>::default();
    for e in log.read_all(0, 1_000_000).await.unwrap() {
        view.apply(&e).unwrap();
    }
    serde_json::to_string(&view.view).unwrap()
}

/// The read models the reports and dashboards are drawn from, folded from a log.
async fn views(path: &Path) -> Vec<String> {
    views_of(&SqliteStore::open_read_only(path).unwrap()).await
}

async fn views_of(log: &dyn EventStore) -> Vec<String> {
    vec![
        fold::<BudgetView>(log).await,
        fold::<DashboardView>(log).await,
        fold::<ReimbursementsView>(log).await,
        fold::<ProgrammesView>(log).await,
    ]
}

/// Every clear reference of the old log (kind, scope, as written) and derived id.
async fn clear_references(path: &Path) -> Vec<(PersonKind, String, String, Option<String>)> {
    clear_references_of(&SqliteStore::open_read_only(path).unwrap()).await
}

async fn clear_references_of(log: &dyn EventStore) -> Vec<(PersonKind, String, String, Option<String>)> {
    let mut found = Vec::new();
    for e in log.read_all(0, 1_000_000).await.unwrap() {
        let payload = e.payload.to_value();
        if let Some((site, reference)) = site(&e.event_type, &e.stream, &payload)
            && !is_id(&reference)
        {
            let derived = site.derived.map(|f| payload[f].as_str().unwrap().to_string());
            found.push((site.kind, site.scope, reference, derived));
        }
    }
    found
}

/// The reimbursement saga's commands in the log whose id is not the one the saga derives
/// from their cause (trigger event, claim, submission, call), as it does today: none when
/// a saga replaying the log would find every command it sent.
async fn saga_commands_not_derived_from_their_cause(path: &Path) -> Vec<String> {
    let log = SqliteStore::open_read_only(path).unwrap();
    let events = log.read_all(0, 1_000_000).await.unwrap();
    let claims: HashMap<Uuid, Uuid> = events
        .iter()
        .filter_map(|e| e.stream.strip_prefix("annexclaim-").and_then(|id| Uuid::parse_str(id).ok()))
        .map(|id| (id, id))
        .collect();
    let mut wrong = Vec::new();
    let mut seen = BTreeSet::new();
    for e in events.iter().filter(|e| e.metadata.actor == sagas::ACTOR) {
        let command = e.metadata.command_id.0;
        if !seen.insert((command, e.stream.clone())) {
            continue;
        }
        let mut named = Vec::new();
        ids_in(&e.stream, &claims, &mut named);
        ids_in(e.payload.as_str(), &claims, &mut named);
        let a = Append {
            command,
            actor: e.metadata.actor.clone(),
            causation: e.metadata.causation_id.map(|c| c.0),
            events: vec![],
            claims: named,
            changed: false,
        };
        // Derived from its cause: the same id comes back (a claim maps to itself here).
        let explained = saga_command(&a, &HashMap::new(), &|c: &Uuid| *c).is_some()
            || saga_id(&format!("{}:queue", a.causation.unwrap_or_default())) == command
            || e.payload.to_value()["call_id"].as_str().is_some_and(|call| saga_id(&format!("late:{call}")) == command);
        if !explained {
            wrong.push(format!("{} {} {command}", e.event_type, e.stream));
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_in_clear_and_the_ids_derived_from_them_leave_the_log_with_the_same_figures() {
    let root = tempfile::tempdir().unwrap();
    let (data, archive) = (root.path().join("data"), root.path().join("archive"));
    let history = old_style_log(&data).await;
    let log_path = data.join(crate::LOG_FILE);
    let old = store::sqlite::verify(&log_path, None).unwrap();
    let old_digest = format!("{}:{}", old.head_position, old.head_hash);
    let references = clear_references(&log_path).await;
    for (kind, reference) in
        [(PersonKind::Aidant, AIDANT), (PersonKind::Trainee, TRAINEE), (PersonKind::Candidate, CANDIDATE)]
    {
        assert!(references.iter().any(|r| r.0 == kind && r.2 == reference), "the old log names {reference}");
    }
    let before = views(&log_path).await;
    let old_stream = |log: &SqliteStore, stream: String| {
        let log = log.clone();
        async move { log.read_stream(&stream).await.unwrap() }
    };
    let (old_habilitation, old_claim) = {
        let log = SqliteStore::open_read_only(&log_path).unwrap();
        (
            old_stream(&log, stream_name::<aidants::Habilitation>(history.habilitation.0)).await,
            old_stream(&log, stream_name::<AnnexClaim>(history.claim.0)).await,
        )
    };
    assert_eq!(old_habilitation.len(), 5, "requested, eligible, registered, trained, habilitated");
    assert_eq!(saga_commands_not_derived_from_their_cause(&log_path).await, Vec::<String>::new());

    // When it is migrated
    let done = migrate(&data, &archive).await.unwrap();

    // Then each reference is in the directory only, with one id per reference and scope
    let directory = Directory::open(&data).unwrap();
    let mut ids = HashMap::new();
    for (kind, scope, reference, derived) in &references {
        assert_eq!(files_containing(&data, reference), vec![Directory::FILE.to_string()], "{reference}");
        let id = directory.find(*kind, scope, reference).unwrap().unwrap();
        if let Some(old) = derived {
            let new = derive(*kind, scope, id).unwrap().to_string();
            assert_eq!(files_containing(&data, old), Vec::<String>::new(), "the derived id {old} is gone");
            assert_eq!(ids.insert(old.clone(), new.clone()).unwrap_or(new.clone()), new, "one id per reference");
        }
    }
    assert_eq!(done.reference_persons, references.iter().map(|r| key(r.0, &r.1, &r.2)).collect::<BTreeSet<_>>().len());
    assert_eq!(done.references_replaced.values().sum::<u64>(), references.len() as u64);
    assert!(done.ids_remapped["habilitation"] >= 1 && done.ids_remapped["claim"] >= 1, "{done:?}");
    assert_eq!(done.streams_renamed, done.ids_remapped.values().sum::<u64>(), "one stream per habilitation, per claim");

    // the reimbursement saga's commands have the ids it derives today from their cause
    // (a claim's new id), and their events the ids derived from their command's
    assert!(done.command_ids_remapped >= 1, "{done:?}");
    assert_eq!(saga_commands_not_derived_from_their_cause(&log_path).await, Vec::<String>::new());

    // the aidant's and the trainee's streams are renamed for the ids the entry points
    // derive today, with all their events, and the ids they were known by elsewhere follow
    let log = SqliteStore::open(&log_path).unwrap();
    let people = Arc::new(Directory::open(&data).unwrap());
    let uc = UseCases::with_people(Arc::new(log.clone()), people);
    let aidant = uc.pseudonym(PersonKind::Aidant, &history.structure.0.to_string(), " aidant-hist-1 ").unwrap();
    let habilitation = HabilitationId::of(history.structure, &aidant);
    let trainee = uc.pseudonym(PersonKind::Trainee, &history.purchase.0.to_string(), TRAINEE).unwrap();
    let claim = ClaimId::of(history.purchase, &trainee);
    assert_eq!(ids[&history.habilitation.0.to_string()], habilitation.0.to_string());
    assert_eq!(ids[&history.claim.0.to_string()], claim.0.to_string());
    let migrated = log.read_stream(&stream_name::<aidants::Habilitation>(habilitation.0)).await.unwrap();
    assert_eq!(
        migrated.iter().map(|e| &e.event_type).collect::<Vec<_>>(),
        old_habilitation.iter().map(|e| &e.event_type).collect::<Vec<_>>()
    );
    assert_eq!(migrated[0].payload.to_value()["aidant"], aidant.to_uppercase(), "as the domain writes an id");
    assert_eq!(log.read_stream(&stream_name::<AnnexClaim>(claim.0)).await.unwrap().len(), old_claim.len());
    assert!(log.read_stream(&stream_name::<aidants::Habilitation>(history.habilitation.0)).await.unwrap().is_empty());
    let all = log.read_all(0, 1_000_000).await.unwrap();
    let carrying = |needle: &str, event_type: &str| {
        all.iter().any(|e| e.event_type == event_type && e.payload.as_str().contains(needle))
    };
    assert!(carrying(&habilitation.0.to_string(), "AidantsConnectSeatReserved"), "the seat");
    assert!(
        carrying(&habilitation.reference(1), "FundsCommitted")
            || carrying(&habilitation.reference(1), "ServiceDoneRecorded"),
        "the money on the convention"
    );
    assert!(carrying(&claim.0.to_string(), "ClaimantEnrolled"), "the roll of claimants");
    assert!(carrying(&claim.0.to_string(), "FundsCallIssued"), "the funds call listing it");
    assert!(carrying(&claim.reference(), "FundsCommitted"), "its money on the convention");
    let candidate = directory.find(PersonKind::Candidate, &history.campaign.0.to_string(), CANDIDATE).unwrap().unwrap();
    assert!(carrying(&candidate.to_string(), "PixCertificationRecorded"));
    // and the commands' records follow their streams
    let request = log.find_command(migrated[0].metadata.command_id).await.unwrap().unwrap();
    assert_eq!(request.outcome.stream, stream_name::<aidants::Habilitation>(habilitation.0));
    // the imported lines' commands, whose ids were derived from the reference, have new
    // ones (random), their events the ids derived from those, and the seat the id the
    // use case derives from its registration's
    let new_request = migrated[0].metadata.command_id;
    assert_ne!(new_request, history.imported[0]);
    assert!(log.find_command(history.imported[0]).await.unwrap().is_none());
    assert_eq!(migrated[0].event_id, EventId::for_command(new_request, 0));
    assert_eq!(migrated[0].metadata.correlation_id.0, new_request.0);
    let registered = migrated.iter().find(|e| e.event_type == "RegisteredToSession").unwrap();
    assert_ne!(registered.metadata.command_id, history.imported[1]);
    let seat = all
        .iter()
        .find(|e| {
            e.event_type == "AidantsConnectSeatReserved" && e.payload.as_str().contains(&habilitation.0.to_string())
        })
        .unwrap();
    let (registration, seat) = (registered.metadata.command_id, seat.metadata.command_id);
    assert!(
        seat == usecases::derived(registration, "acsession") || registration == usecases::derived(seat, "habilitation"),
        "the seat's command is the registration's companion"
    );
    let submitted = log.read_stream(&stream_name::<AnnexClaim>(claim.0)).await.unwrap().remove(0);
    let enrolled = all
        .iter()
        .find(|e| e.event_type == "ClaimantEnrolled" && e.payload.as_str().contains(&claim.0.to_string()))
        .unwrap();
    assert_ne!(submitted.metadata.command_id, history.imported[2], "the line imported over HTTP");
    assert_eq!(enrolled.metadata.command_id, usecases::derived(submitted.metadata.command_id, "claimroll"));
    // a command whose id was random (a client's) keeps it
    let certified = all.iter().find(|e| e.payload.as_str().contains(&candidate.to_string())).unwrap();
    assert_eq!(certified.metadata.command_id, history.certification);

    // the reimbursement saga, replaying the new log from its start (its checkpoint
    // lost), finds every command it sent and sends nothing again
    {
        let store: Arc<dyn EventStore> = Arc::new(log.clone());
        let head = *store.head().borrow();
        let mut saga = saga(&store, &uc).await;
        saga.run_until_idle().await.unwrap();
        let sent: Vec<String> = store
            .read_all(head, 1000)
            .await
            .unwrap()
            .iter()
            .map(|e| format!("{} {} {}", e.event_type, e.stream, e.metadata.command_id.0))
            .collect();
        assert_eq!(sent, Vec::<String>::new(), "the saga sent again");
    }

    // the same aidant given again through GraphQL (same structure, same reference)
    // finds the same habilitation: an active one, so the request is refused
    let store: Arc<dyn EventStore> = Arc::new(log.clone());
    let state = api::AppState::new(store.clone()).with_use_cases(uc.clone());
    assert!(state.wait_for(*store.head().borrow(), std::time::Duration::from_secs(20)).await);
    let schema = api::schema(state, false);
    let request = async_graphql::Request::new(
        "mutation($input: RequestHabilitationInput!) { requestHabilitation(input: $input) { position } }",
    )
    .variables(async_graphql::Variables::from_json(serde_json::json!({ "input": {
        "commandId": Uuid::new_v4().to_string(),
        "structureId": history.structure.0.to_string(),
        "aidant": "aidant-hist-1",
        "requestedOn": "2022-05-02",
    }})));
    let head = *store.head().borrow();
    let answer =
        serde_json::to_value(api::execute(&schema, request, api::Principal::local(api::Role::Anct, "t")).await)
            .unwrap();
    assert_eq!(answer["errors"][0]["extensions"]["code"], "CONFLICT", "{answer}");
    assert_eq!(answer["errors"][0]["extensions"]["rule"], "AlreadyActive", "{answer}");
    assert_eq!(*store.head().borrow(), head, "nothing written");

    // the new log verifies and is sealed with the old digest and what was done; the
    // archived old log still proves its digest
    drop((uc, log, schema, store));
    released(&data).await;
    let new = store::sqlite::verify(&log_path, None).unwrap();
    assert!(new.is_intact());
    assert_eq!(done.head, format!("{}:{}", new.head_position, new.head_hash));
    let archived =
        store::sqlite::verify(&archive.join(crate::LOG_FILE), Some((old.head_position, old.head_hash))).unwrap();
    assert!(archived.is_intact());
    assert_eq!(format!("{}:{}", archived.head_position, archived.head_hash), old_digest);
    let log = SqliteStore::open_read_only(&log_path).unwrap();
    let seal = log.read_all(new.head_position - 1, 1).await.unwrap().remove(0);
    assert_eq!(seal.event_type, SEAL);
    let seal = seal.payload.to_value();
    assert_eq!(seal["previousHead"], old_digest);
    assert_eq!(seal["referencesReplaced"]["aidant"], done.references_replaced["aidant"]);
    assert_eq!(seal["idsRemapped"]["claim"], done.ids_remapped["claim"]);

    // the read models give the same figures: the old ones, with each reference and
    // derived id read as its id
    let mut expected = before;
    for view in &mut expected {
        for (kind, scope, reference, _) in &references {
            let id = directory.find(*kind, scope, reference).unwrap().unwrap();
            *view = view
                .replace(&Value::from(reference.as_str()).to_string(), &Value::from(written(*kind, id)).to_string());
        }
        *view = substitute_ids(view, &ids).into_owned();
    }
    let after = views(&log_path).await;
    for (old, new) in expected.iter().zip(&after) {
        let (old, new): (Value, Value) = (serde_json::from_str(old).unwrap(), serde_json::from_str(new).unwrap());
        assert_eq!(old, new);
    }

    // the aidant's access request lists their events
    let access = crate::personal::subject_access(&crate::personal::Place::data(&data), AIDANT).await.unwrap();
    let types: Vec<&str> = access.persons[0].events.iter().map(|e| e.event_type.as_str()).collect();
    assert!(types.contains(&"HabilitationRequested") && types.contains(&"Habilitated"), "{types:?}");

    // When it is migrated again, it is refused, and nothing changes
    let again = migrate(&data, &root.path().join("archive-2")).await.unwrap_err();
    assert!(again.to_string().contains("nothing to migrate"), "{again}");
    assert_eq!(store::sqlite::verify(&log_path, None).unwrap().head_hash, new.head_hash);
    assert!(!root.path().join("archive-2").join(crate::LOG_FILE).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_written_partly_since_the_directory_keeps_the_newer_stream_of_the_same_aidant() {
    let root = tempfile::tempdir().unwrap();
    let (data, archive) = (root.path().join("data"), root.path().join("archive"));
    let history = old_style_log(&data).await;
    // Given an aidant habilitated by a reference in clear (before the directory), revoked,
    // then requested again through today's entry points (after it): a stream named by
    // the id derived from their id exists already
    let (old_events, newer) = {
        let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(data.join(crate::LOG_FILE)).unwrap());
        let uc = UseCases::with_people(store.clone(), Arc::new(Directory::open(&data).unwrap()));
        let revoke = HabilitationCommand::Revoke {
            habilitation_id: history.habilitation,
            reason: "fin de contrat".into(),
            on: date("2022-01-03"),
        };
        uc.habilitation(revoke, meta()).await.unwrap();
        let aidant = uc.pseudonym(PersonKind::Aidant, &history.structure.0.to_string(), AIDANT).unwrap();
        let newer = HabilitationId::of(history.structure, &aidant);
        let request = HabilitationCommand::Request {
            habilitation_id: newer,
            structure_id: history.structure,
            departement: DepartementCode::parse("75").unwrap(),
            aidant,
            on: date("2022-02-01"),
        };
        uc.habilitation(request, meta()).await.unwrap();
        (store.read_stream(&stream_name::<aidants::Habilitation>(history.habilitation.0)).await.unwrap(), newer)
    };
    released(&data).await;

    // When the log is migrated
    let done = migrate(&data, &archive).await.unwrap();

    // Then the newer stream keeps its name and its events, the older one takes a random
    // name with all of its events, and the reference is in no file but the directory
    assert_eq!(done.ids_remapped_at_random, 1, "{done:?}");
    assert_eq!(files_containing(&data, AIDANT), vec![Directory::FILE.to_string()]);
    let log = SqliteStore::open_read_only(data.join(crate::LOG_FILE)).unwrap();
    let streams: Vec<_> = log
        .read_all(0, 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| {
            e.event_type == "HabilitationRequested" && e.payload.as_str().contains(&history.structure.0.to_string())
        })
        .map(|e| (e.stream.clone(), e.payload.to_value()["aidant"].as_str().unwrap().to_string()))
        .collect();
    let newer_stream = stream_name::<aidants::Habilitation>(newer.0);
    let mine: Vec<_> =
        streams.iter().filter(|(_, a)| *a == streams.iter().find(|(s, _)| *s == newer_stream).unwrap().1).collect();
    assert_eq!(mine.len(), 2, "the same aidant's two habilitations: {streams:?}");
    let older = &mine.iter().find(|(s, _)| *s != newer_stream).unwrap().0;
    assert_ne!(older, &stream_name::<aidants::Habilitation>(history.habilitation.0));
    assert_eq!(log.read_stream(older).await.unwrap().len(), old_events.len());
    assert_eq!(log.read_stream(&newer_stream).await.unwrap().len(), 1);
    assert!(store::sqlite::verify(&data.join(crate::LOG_FILE), None).unwrap().is_intact());
}

/// Every text of a PostgreSQL log's events and command records (streams, actors,
/// payloads, fingerprints), read from its tables.
async fn log_text(url: &str) -> String {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let mut text = String::new();
    for query in [
        "SELECT stream || ' ' || actor || ' ' || payload FROM tracker_events ORDER BY position",
        "SELECT stream || ' ' || fingerprint FROM tracker_commands",
        "SELECT record FROM tracker_tokens",
    ] {
        for row in client.query(query, &[]).await.unwrap() {
            text.push_str(row.get::<_, &str>(0));
            text.push('\n');
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(postgres_missing, ignore = "needs TRACKER_TEST_POSTGRES_URL when built (.ci/run starts a server)")]
async fn a_postgresql_log_is_migrated_into_another_schema_and_the_old_one_stays_its_archive() {
    let test = "migrate-personal-data on PostgreSQL";
    let (Some(old), Some(new)) =
        (store::postgres::testing::fresh_url(test).await, store::postgres::testing::fresh_url(test).await)
    else {
        return;
    };
    // Given a log written as before the directory into a PostgreSQL schema, with a token
    // whose record holds its holder's name, and the saga's checkpoint and lease
    let log = store::PostgresStore::connect(&old).await.unwrap();
    let history =
        write_old_style_log(Arc::new(log.clone()), Arc::new(Directory::connect_postgres(&old).unwrap())).await;
    let token = api::TokenRecord {
        id: Uuid::new_v4(),
        hash: "0".repeat(64),
        role: api::Role::Opco,
        structure: None,
        person: None,
        label: "Marie Dupont".into(),
        created_at: chrono::Utc::now(),
        revoked_at: None,
    };
    let shared = store::SharedToken {
        id: token.id,
        hash: token.hash.clone(),
        record: serde_json::to_string(&token).unwrap(),
        revoked_at: None,
    };
    use store::ReplicaState;
    log.create_token(shared).await.unwrap();
    let holder = Uuid::new_v4();
    assert!(log.acquire_lease("reimbursement", holder, std::time::Duration::from_secs(60)).await.unwrap());
    assert!(log.save_checkpoint("reimbursement", holder, 7).await.unwrap());
    let before = log.verify(None).await.unwrap();
    let old_digest = format!("{}:{}", before.head_position, before.head_hash);
    let references = clear_references_of(&log).await;
    for reference in [AIDANT, TRAINEE, CANDIDATE, "Marie Dupont", &history.habilitation.0.to_string()] {
        assert!(log_text(&old).await.contains(reference), "the old log names {reference}");
    }
    let figures = views_of(&log).await;

    // When it is migrated into another schema
    let done = migrate_postgres(&old, &new).await.unwrap();

    // Then no reference, name or id derived from a reference is in the new log's tables
    let text = log_text(&new).await;
    let mut gone: Vec<String> = references.iter().map(|r| r.2.clone()).collect();
    gone.extend(references.iter().filter_map(|r| r.3.clone()));
    gone.extend(["Marie Dupont".to_string(), "Jean Martin".to_string()]);
    for needle in &gone {
        assert!(!text.contains(needle.as_str()), "{needle} is still in the new log");
    }
    assert!(done.actors_replaced >= 1 && done.references_replaced.values().sum::<u64>() == references.len() as u64);
    // the new schema's directory finds each person, and the token's holder
    let directory = Directory::connect_postgres(&new).unwrap();
    let mut ids = HashMap::new();
    for (kind, scope, reference, derived) in &references {
        let id = directory.find(*kind, scope, reference).unwrap().unwrap_or_else(|| panic!("{reference}"));
        if let Some(old) = derived {
            ids.insert(old.clone(), derive(*kind, scope, id).unwrap().to_string());
        }
    }
    let marie = directory.agent("opco", "Marie Dupont").unwrap();
    assert!(text.contains(&format!("opco:{marie} (token 3f2a9c1e)")), "the actor is the token holder's id");
    let migrated = store::PostgresStore::connect(&new).await.unwrap();
    let tokens = migrated.tokens().await.unwrap();
    let record: api::TokenRecord = serde_json::from_str(&tokens[0].record).unwrap();
    assert_eq!((record.id, record.person, record.label.as_str()), (token.id, Some(marie), ""));
    // the saga's checkpoint is copied, its lease is not
    assert_eq!(migrated.load_checkpoint("reimbursement").await.unwrap(), 7);
    assert!(migrated.acquire_lease("reimbursement", Uuid::new_v4(), std::time::Duration::from_secs(1)).await.unwrap());
    // the new log verifies, sealed with the old digest; the old one is as it was
    let after = migrated.verify(None).await.unwrap();
    assert!(after.is_intact(), "{after:?}");
    assert_eq!(done.head, format!("{}:{}", after.head_position, after.head_hash));
    let seal = migrated.read_all(after.head_position - 1, 1).await.unwrap().remove(0);
    assert_eq!(
        (seal.event_type.as_str(), seal.payload.to_value()["previousHead"].as_str()),
        (SEAL, Some(old_digest.as_str()))
    );
    let unchanged = log.verify(None).await.unwrap();
    assert!(unchanged.is_intact());
    assert_eq!(format!("{}:{}", unchanged.head_position, unchanged.head_hash), old_digest);
    assert!(log_text(&old).await.contains(AIDANT), "the old log is the archive, left as it was");
    // the read models give the same figures, each reference and derived id read as its id
    let mut expected = figures;
    for view in &mut expected {
        for (kind, scope, reference, _) in &references {
            let id = directory.find(*kind, scope, reference).unwrap().unwrap();
            *view = view
                .replace(&Value::from(reference.as_str()).to_string(), &Value::from(written(*kind, id)).to_string());
        }
        *view = substitute_ids(view, &ids).into_owned();
    }
    for (old, new) in expected.iter().zip(&views_of(&migrated).await) {
        let (old, new): (Value, Value) = (serde_json::from_str(old).unwrap(), serde_json::from_str(new).unwrap());
        assert_eq!(old, new);
    }

    // When it is migrated again into the same schema, it is refused, and nothing changes
    let again = migrate_postgres(&old, &new).await.unwrap_err();
    assert!(again.to_string().contains("holds a log already"), "{again}");
    assert_eq!(migrated.verify(None).await.unwrap().head_hash, after.head_hash);
}

#[test]
fn only_whole_ids_of_the_map_are_replaced_in_either_case() {
    let (old, new) = (Uuid::from_u128(1).to_string(), Uuid::from_u128(2).to_string());
    let ids = HashMap::from([(old.clone(), new.clone())]);
    let text = format!(r#"{{"a":"{old}","b":"AIDANTS-CONNECT-{old}-1","c":"{}","d":"x{old}"}}"#, old.to_uppercase());
    assert_eq!(
        substitute_ids(&text, &ids),
        format!(r#"{{"a":"{new}","b":"AIDANTS-CONNECT-{new}-1","c":"{}","d":"x{new}"}}"#, new.to_uppercase())
    );
    let other = Uuid::from_u128(3).to_string();
    assert!(matches!(substitute_ids(&other, &ids), Cow::Borrowed(_)), "another id is left alone");
    assert!(matches!(substitute_ids("é€ short", &ids), Cow::Borrowed(_)));
}
