//! Imports through HTTP (`POST /import/{kind}`): the same tokens and matrix as GraphQL,
//! the report as JSON, a dry run that writes nothing, and a structure that may import only
//! its own claims.

use app::{Application, Settings};
use serde_json::Value;
use std::path::Path;
use store::EventStore;
use tokio::sync::oneshot;

const CSV: &str = "text/csv";

struct Running {
    url: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    client: reqwest::Client,
    log: std::sync::Arc<dyn EventStore>,
    /// The server's read models (a test waits for them to show a write: they follow the log).
    state: api::AppState,
}

impl Running {
    /// Stops the server. Our handles on its log and read models go first: the server
    /// waits (up to 10 s) to be the last one holding the log before it returns.
    async fn stop(self) {
        let Running { stop, task, log, state, .. } = self;
        drop((log, state));
        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
    }
}

async fn start(data_dir: &Path) -> Running {
    let log = app::open_store(data_dir).unwrap();
    let people = std::sync::Arc::new(store::Directory::open(data_dir).unwrap());
    scenarios::Scenario::Sample.seed_once(log.clone(), people, data_dir).await.unwrap();
    drop(log);
    let settings = Settings {
        data_dir: data_dir.to_path_buf(),
        store: None,
        directory: None,
        addr: "127.0.0.1:0".into(),
        demo: false,
        scenario: scenarios::Scenario::Sample,
        graphiql: false,
        rate_limit: 0,
    };
    let app = Application::build(&settings).await.expect("the application starts");
    let url = format!("http://{}", app.addr());
    let (log, state) = (app.state().store.clone(), app.state().clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    Running { url, stop, task, client: reqwest::Client::new(), log, state }
}

async fn token(dir: &Path, role: api::Role, structure: Option<uuid::Uuid>) -> String {
    let tokens = api::TokenStore::open(dir).unwrap();
    tokens.create(role, structure, api::Holder::Named(&format!("import {}", role.name()))).await.unwrap().1
}

impl Running {
    async fn import(&self, token: Option<&str>, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        let mut request =
            self.client.post(format!("{}{path}", self.url)).header("Content-Type", content_type).body(body);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON answer"))
    }

    fn head(&self) -> u64 {
        *self.log.head().borrow()
    }
}

fn file(kind: imports::Kind, lines: &[&[(&str, &str)]]) -> Vec<u8> {
    let headers: Vec<&str> = kind.columns().iter().map(|c| c.header).collect();
    let mut out = headers.join(";") + "\n";
    for line in lines {
        let cells: Vec<&str> =
            headers.iter().map(|h| line.iter().find(|(k, _)| k == h).map_or("", |(_, v)| *v)).collect();
        out += &(cells.join(";") + "\n");
    }
    out.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_import_their_files_under_their_roles_and_get_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let siret = scenarios::files::siret(7, 1);
    let buyer = domain::structure::StructureId::for_siret(&domain::structure::Siret::parse(&siret).unwrap());
    let (opco, anct) = (token(dir.path(), api::Role::Opco, None).await, token(dir.path(), api::Role::Anct, None).await);
    let own = token(dir.path(), api::Role::Structure, Some(buyer.0)).await;
    let other = token(dir.path(), api::Role::Structure, Some(uuid::Uuid::new_v4())).await;
    let copil = token(dir.path(), api::Role::Copil, None).await;

    let structures = file(
        imports::Kind::Structures,
        &[&[
            ("SIRET", &siret),
            ("Nom", "Les Clics d'Ajaccio"),
            ("Type", "association"),
            ("Département", "2A"),
            ("Effectif", "12"),
            ("Date d'enregistrement", "01/04/2021"),
        ]],
    );
    // Who may not: 401 without a token, 403 for a role the matrix does not allow, 415 for a
    // body not declared as a file; nothing written.
    let before = server.head();
    assert_eq!(server.import(None, "/import/structures", CSV, structures.clone()).await.0, 401);
    let (status, body) = server.import(Some(&copil), "/import/structures", CSV, structures.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("FORBIDDEN")));
    let (status, body) = server.import(Some(&own), "/import/structures", CSV, structures.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("FORBIDDEN")));
    let (status, body) = server.import(Some(&opco), "/import/structures", "text/plain", structures.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (415, Some("BAD_USER_INPUT")));
    let (status, body) = server.import(Some(&opco), "/import/nothing", CSV, structures.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("NOT_FOUND")));
    assert_eq!(server.head(), before);

    // A dry run decides and writes nothing; the import then writes what it said.
    let (status, dry) = server.import(Some(&opco), "/import/structures?dryRun=true", CSV, structures.clone()).await;
    assert_eq!((status, dry["dryRun"].as_bool(), dry["accepted"].as_u64()), (200, Some(true), Some(1)));
    assert_eq!(server.head(), before);
    let (status, report) = server.import(Some(&opco), "/import/structures", CSV, structures.clone()).await;
    assert_eq!((status, report["accepted"].as_u64()), (200, Some(1)), "{report}");
    let (_, again) = server.import(Some(&anct), "/import/structures", CSV, structures).await;
    assert_eq!((again["accepted"].as_u64(), again["alreadyThere"].as_u64()), (Some(0), Some(1)));

    // Purchases are the OPCO's: ANCT may not import them.
    let step = |s: &'static str, d: &'static str| vec![("Référence achat", "UNIF-E2E-1"), ("Étape", s), ("Date", d)];
    let mut request = step("demande", "15/03/2021");
    request.extend([
        ("Convention", "ANCT-UNIFORMATION-2021"),
        ("SIRET", siret.as_str()),
        ("Organisme de formation", "Les Bons Clics"),
        ("Intitulé", "Démarches en ligne"),
        ("Blocs", "1,2"),
        ("Métier", "cadre"),
        ("Heures", "14"),
        ("Stagiaires", "8"),
        ("Coût unitaire", "400"),
        ("Début de session", "03/05/2021"),
        ("Fin de session", "04/05/2021"),
    ]);
    let mut attendance = step("présence", "04/05/2021");
    attendance.push(("Présents", "8"));
    let purchases = file(imports::Kind::Purchases, &[&request, &step("accord", "25/03/2021"), &attendance]);
    assert_eq!(server.import(Some(&anct), "/import/purchases", CSV, purchases.clone()).await.0, 403);
    let (_, report) = server.import(Some(&opco), "/import/purchases", CSV, purchases).await;
    assert_eq!(report["accepted"].as_u64(), Some(3), "{report}");

    // Claims are the structures': each its own only.
    let claim: &[(&str, &str)] = &[
        ("Référence achat", "UNIF-E2E-1"),
        ("Référence stagiaire", "S-1"),
        ("Date de dépôt", "10/05/2021"),
        ("Repas : nombre", "2"),
        ("Repas : montant", "30,00"),
        ("Repas : justificatif", "=HYPERLINK(\"http://x\")"),
    ];
    let claims = file(imports::Kind::AnnexClaims, &[claim]);
    assert_eq!(server.import(Some(&opco), "/import/annex-claims", CSV, claims.clone()).await.0, 403);
    let (status, refused) = server.import(Some(&other), "/import/annex-claims", CSV, claims.clone()).await;
    assert_eq!((status, refused["refused"].as_u64()), (200, Some(1)));
    insta::assert_json_snapshot!("another_structures_claim", refused);
    let (_, accepted) = server.import(Some(&own), "/import/annex-claims", CSV, claims).await;
    assert_eq!(accepted["accepted"].as_u64(), Some(1), "{accepted}");

    // A file that cannot be read: 400, its line and column, nothing written.
    let before = server.head();
    let (status, body) = server.import(Some(&anct), "/import/habilitations", CSV, b"SIRET;Etape\n1;2\n".to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!((body["error"]["line"].as_u64(), body["error"]["column"].as_str()), (Some(1), Some("Référence aidant")));
    assert_eq!(server.head(), before);

    server.stop().await;
}

/// The sample's invented aidants are shown by their references (the log holds ids of the
/// data directory's directory of persons), and a partner's file naming one of them again
/// reaches the habilitation the seeder wrote: the same reference, the same id, the same
/// habilitation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_samples_aidants_show_by_reference_and_a_file_naming_one_again_reaches_its_habilitation() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let anct = token(dir.path(), api::Role::Anct, None).await;
    let query = |q: &'static str| {
        let request = server.client.post(format!("{}/graphql", server.url)).bearer_auth(&anct);
        async move {
            let response = request.json(&serde_json::json!({ "query": q })).send().await.unwrap();
            response.json::<Value>().await.unwrap()
        }
    };
    let habilitations = query("{ habilitations { aidant status } }").await;
    let shown: Vec<(String, String)> = habilitations["data"]["habilitations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["aidant"].as_str().unwrap().into(), h["status"].as_str().unwrap().into()))
        .collect();
    assert!(shown.contains(&("AIDANT-004".into(), "REQUESTED".into())), "{habilitations}");
    assert!(shown.contains(&("AIDANT-001".into(), "HABILITATED".into())), "{habilitations}");
    let events = server.log.read_all(0, 10_000).await.unwrap();
    assert!(events.iter().all(|e| !e.payload.as_str().contains("AIDANT-00")), "the log holds ids only");
    let siret = events
        .iter()
        .map(|e| e.payload.to_value())
        .find(|p| p["name"] == "Emmaüs Connect Paris")
        .map(|p| p["siret"].as_str().unwrap().to_string())
        .unwrap();

    // When a file validates the eligibility of the sample's AIDANT-004 (only requested)
    let line: &[(&str, &str)] =
        &[("SIRET", &siret), ("Référence aidant", "aidant-004"), ("Étape", "éligibilité"), ("Date", "28/04/2021")];
    let (status, report) =
        server.import(Some(&anct), "/import/habilitations", CSV, file(imports::Kind::Habilitations, &[line])).await;

    // Then it reaches the seeded habilitation (a new one would have been refused: not requested)
    assert_eq!((status, report["accepted"].as_u64()), (200, Some(1)), "{report}");
    let head = *server.log.head().borrow();
    assert!(server.state.wait_for(head, std::time::Duration::from_secs(10)).await, "the read models follow");
    let habilitations = query("{ habilitations { aidant status } }").await;
    let aidant_4 =
        habilitations["data"]["habilitations"].as_array().unwrap().iter().find(|h| h["aidant"] == "AIDANT-004");
    assert_eq!(aidant_4.unwrap()["status"], "ELIGIBILITY_VALIDATED", "{habilitations}");

    server.stop().await;
}
