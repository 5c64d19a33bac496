//! The dashboard page in a real browser: `tracker serve --demo` (the sample scenario),
//! Debian's headless Chromium driven through chromedriver, the copil token typed into the
//! page, and every figure the page shows checked against the GraphQL API's own answer.
//!
//! Chromium and chromedriver are installed by `.ci/run`, which sets
//! `TRACKER_BROWSER_TESTS=required` so that their absence fails CI; elsewhere the test
//! says that it is skipped. `CHROMIUM` and `CHROMEDRIVER` override the Debian paths.
//! Screenshots go to `target/tmp/dashboard-*.png` (the path is printed).

mod webdriver;

use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use webdriver::{Driver, PATIENCE, Session};

fn browser() -> Option<(String, String)> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let missing: Vec<&str> =
        [&chromium, &chromedriver].into_iter().filter(|p| !Path::new(p).exists()).map(|p| p.as_str()).collect();
    if missing.is_empty() {
        return Some((chromium, chromedriver));
    }
    let why = format!("{} not found (apt-get install chromium chromium-driver; `.ci/run` does)", missing.join(" and "));
    if std::env::var("TRACKER_BROWSER_TESTS").as_deref() == Ok("required") {
        panic!("browser test required but {why}");
    }
    eprintln!("browser test SKIPPED: {why}");
    None
}

/// `tracker serve --demo --scenario sample` on a free port; killed on drop.
struct Server {
    process: Child,
    data: PathBuf,
    url: String,
    tokens: HashMap<String, String>,
}

impl Server {
    fn start(data: &Path) -> Server {
        let mut process = Command::new(env!("CARGO_BIN_EXE_tracker"))
            .args(["serve", "--demo", "--scenario", "sample", "--addr", "127.0.0.1:0", "--data"])
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("tracker starts");
        let (lines, received) = std::sync::mpsc::channel();
        let stdout = process.stdout.take().unwrap();
        // Drains the output for as long as the server runs, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let (mut url, mut tokens) = (None, HashMap::new());
        let started = Instant::now();
        while tokens.len() < 5 {
            let line = received
                .recv_timeout(Duration::from_secs(120).saturating_sub(started.elapsed()))
                .expect("tracker serve --demo prints its address and the demo tokens");
            if let Some((_, address)) = line.split_once(" on http://") {
                url = Some(format!("http://{address}"));
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            if let [role, secret] = words[..]
                && secret.starts_with("ct_")
            {
                tokens.insert(role.to_string(), secret.to_string());
            }
        }
        Server {
            process,
            data: data.to_path_buf(),
            url: url.expect("the address is printed before the tokens"),
            tokens,
        }
    }

    /// Revokes the demo token of `role` with `tracker token revoke`, as an operator would.
    fn revoke(&self, role: &str) {
        let tracker = |args: &[&str]| {
            let out =
                Command::new(env!("CARGO_BIN_EXE_tracker")).args(args).arg("--data").arg(&self.data).output().unwrap();
            assert!(out.status.success(), "tracker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        };
        let list = tracker(&["token", "list"]);
        let id = list
            .lines()
            .find(|l| l.contains(&format!("demo {role}")) && l.ends_with("(active)"))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no active demo {role} token in:\n{list}"))
            .to_string();
        tracker(&["token", "revoke", &id]);
    }

    /// Commits 1 234,56 € on the OPCO convention, for the page to follow; returns the position.
    async fn commit(&self, reference: &str) -> u64 {
        let conventions = self.graphql("opco", "{ conventions { id code envelopes { id kind } } }", json!({})).await;
        let uniformation = conventions["conventions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["code"] == "ANCT-UNIFORMATION-2021")
            .expect("the demo's OPCO convention");
        let envelope =
            uniformation["envelopes"].as_array().unwrap().iter().find(|e| e["kind"] == "CERTIFYING_TRAININGS").unwrap();
        let committed = self
            .graphql(
                "opco",
                "mutation($input: CommitFundsInput!) { commitFunds(input: $input) { position } }",
                json!({ "input": { "conventionId": uniformation["id"], "envelopeId": envelope["id"], "reference": reference,
                                   "amount": "1234.56", "committedOn": "2021-09-01", "departement": "75" } }),
            )
            .await;
        committed["commitFunds"]["position"].as_u64().unwrap()
    }

    async fn graphql(&self, role: &str, query: &str, variables: Value) -> Value {
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/graphql", self.url))
            .bearer_auth(&self.tokens[role])
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("the API answers")
            .json()
            .await
            .expect("JSON");
        assert!(answer.get("errors").is_none(), "GraphQL refused {query}: {answer}");
        answer["data"].clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

const FIGURES: &str = "budget { committed serviceDone paid } training { trainees } habilitations { habilitated }
    pix { certifications } ccas { actions }
    reimbursements { claimed eligible approved paid reimbursed reductionsByCap meanDaysToPaid p90DaysToPaid
                     meanDaysToReimbursed overdueClaims lateFundsCalls }";

/// What each `data-figure` of the page must show, from the API's `Indicators`.
fn expected(i: &Value) -> HashMap<&'static str, Value> {
    let r = &i["reimbursements"];
    HashMap::from([
        ("committed", i["budget"]["committed"].clone()),
        ("serviceDone", i["budget"]["serviceDone"].clone()),
        ("paid", i["budget"]["paid"].clone()),
        ("trainees", i["training"]["trainees"].clone()),
        ("habilitated", i["habilitations"]["habilitated"].clone()),
        ("certifications", i["pix"]["certifications"].clone()),
        ("ccasActions", i["ccas"]["actions"].clone()),
        ("claimed", r["claimed"].clone()),
        ("eligible", r["eligible"].clone()),
        ("approved", r["approved"].clone()),
        ("claimsPaid", r["paid"].clone()),
        ("reimbursed", r["reimbursed"].clone()),
        ("reductionsByCap", r["reductionsByCap"].clone()),
        ("meanDaysToPaid", r["meanDaysToPaid"].clone()),
        ("p90DaysToPaid", r["p90DaysToPaid"].clone()),
        ("meanDaysToReimbursed", r["meanDaysToReimbursed"].clone()),
        ("overdueClaims", r["overdueClaims"].clone()),
        ("lateFundsCalls", r["lateFundsCalls"].clone()),
    ])
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Checks every figure shown in `container` against the API's answer: the value the page
/// holds, and the digits a reader sees (`39 268,87 €` for `39268.87`).
async fn assert_figures(page: &Session, container: &str, indicators: &Value) -> usize {
    let shown = page
        .script(
            "return [...document.querySelectorAll(arguments[0] + ' [data-figure]')]
                 .map(d => [d.dataset.figure, d.dataset.value ?? null, d.innerText])",
            json!([container]),
        )
        .await;
    let expected = expected(indicators);
    let shown = shown.as_array().expect("figures");
    assert!(!shown.is_empty(), "no figure in {container}");
    for figure in shown {
        let (name, value, text) = (figure[0].as_str().unwrap(), figure[1].as_str(), figure[2].as_str().unwrap());
        let want = expected.get(name).unwrap_or_else(|| panic!("the page shows an unknown figure {name}"));
        let context = format!("{container} {name}: the page shows {text:?} (value {value:?}), the API answered {want}");
        match want {
            Value::String(s) => {
                assert_eq!(value, Some(s.as_str()), "{context}");
                assert_eq!(digits(text), digits(s), "{context}");
            }
            Value::Number(n) => {
                assert_eq!(value.and_then(|v| v.parse::<f64>().ok()), n.as_f64(), "{context}");
                let number: String = text.chars().filter(|c| c.is_ascii_digit() || *c == ',').collect();
                assert_eq!(number.replace(',', ".").parse::<f64>().ok(), n.as_f64(), "{context}");
            }
            Value::Null => assert_eq!(text, "—", "{context}"),
            other => panic!("{context}: unexpected {other}"),
        }
    }
    shown.len()
}

async fn position(page: &Session) -> u64 {
    page.script("return Number(document.body.dataset.position || 0)", json!([])).await.as_u64().unwrap()
}

async fn wait_until_position(page: &Session, wanted: u64) {
    let started = Instant::now();
    while position(page).await < wanted {
        assert!(started.elapsed() < PATIENCE, "the page stayed at position {} (wanted {wanted})", position(page).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// axe-core 4.14.1 (Deque, MPL-2.0; licences alongside), vendored: the accessibility
/// rules of WCAG 2.1 A and AA, checked in the page as the user sees it.
const AXE: &str = include_str!("vendor/axe.min.js");

/// Fails with axe-core's findings if the page breaks a WCAG 2.1 A/AA rule or a best practice.
async fn assert_accessible(page: &Session, state: &str) {
    let violations = page
        .script(
            &format!(
                "{AXE}
                 ; return axe.run(document, {{ runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] }})
                     .then(r => r.violations.map(v => `${{v.id}} (${{v.impact}}): ${{v.help}}: ` +
                         v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')))"
            ),
            json!([]),
        )
        .await;
    let violations = violations.as_array().expect("axe's findings");
    assert!(violations.is_empty(), "{state}: accessibility violations:\n{violations:#?}");
}

fn screenshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("dashboard-{name}.png"))
}

async fn shoot(page: &Session, name: &str) {
    let path = screenshot_path(name);
    page.screenshot(&path).await;
    println!("screenshot: {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_page_shows_the_api_figures_follows_the_log_and_replays_a_date() {
    let Some((chromium, chromedriver)) = browser() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let driver = Driver::start(&chromedriver);
    let page = driver.session(&chromium, &dir.path().join("profile"), (1440, 1100)).await;

    // Given the page, when the copil member pastes the demo copil token…
    page.goto(&format!("{}/dashboard", server.url)).await;
    let field = page.wait_for("#token").await;
    assert_accessible(&page, "the login form").await;
    page.type_into(&field, &server.tokens["copil"]).await;
    page.click(&page.find("#login-form button[type=submit]").await.unwrap()).await;
    page.wait_for("body[data-position]").await;

    // …then the national figures are the API's.
    let national = server
        .graphql(
            "copil",
            &format!(
                "{{ dashboard {{ position targets {{ kind target reached }} total {{ {FIGURES} }} }}
                    conventions {{ code total budget {{ allocated committed serviceDone paid }} }} }}"
            ),
            json!({}),
        )
        .await;
    assert_eq!(position(&page).await, national["dashboard"]["position"].as_u64().unwrap());
    let total = &national["dashboard"]["total"];
    assert_eq!(assert_figures(&page, "#national", total).await, 8);
    assert_eq!(assert_figures(&page, "#claims", total).await, 11);
    let targets = national["dashboard"]["targets"].as_array().unwrap();
    assert!(!targets.is_empty());
    for t in targets {
        let li = page.find(&format!("#targets li[data-target={}]", t["kind"].as_str().unwrap())).await.expect("target");
        assert_eq!(page.attribute(&li, "data-reached").await, Some(t["reached"].to_string()));
        assert_eq!(page.attribute(&li, "data-goal").await, Some(t["target"].to_string()));
    }
    for c in national["conventions"].as_array().unwrap() {
        let code = c["code"].as_str().unwrap();
        let chart = page.find(&format!("[data-convention='{code}'] [role=img]")).await.expect("a chart per convention");
        let alternative = page.attribute(&chart, "aria-label").await.unwrap();
        for k in ["allocated", "committed", "serviceDone", "paid"] {
            let amount = c["budget"][k].as_str().unwrap();
            let (whole, cents) = amount.split_once('.').unwrap();
            assert!(
                digits(&alternative).contains(&format!("{}{cents}", digits(whole))),
                "{code}: the chart's text alternative {alternative:?} lacks {k} {amount}"
            );
        }
    }
    shoot(&page, "national").await;

    // When a département is clicked on the map, its figures are the API's for it.
    let finistere = page.wait_for("path.dep[data-code='29']").await;
    page.click(&finistere).await;
    page.wait_for("#territory[data-code='29']").await;
    let answer = server
        .graphql("copil", &format!("{{ dashboard(departement: \"29\") {{ total {{ {FIGURES} }} }} }}"), json!({}))
        .await;
    assert_eq!(assert_figures(&page, "#territory-figures", &answer["dashboard"]["total"]).await, 10);
    assert!(page.text(&page.find("#territory-title").await.unwrap()).await.contains("Finistère (29)"));
    page.click(&page.find("details summary").await.unwrap()).await;
    assert!(page.find("#departements-table tr[data-departement='29']").await.is_some());
    assert_accessible(&page, "the dashboard, a département chosen, the table open").await;
    shoot(&page, "departement").await;

    // When a région is chosen, its figures are shown and the others dimmed.
    page.click(&page.find("#region option[value='93']").await.expect("the région list")).await;
    page.wait_for("#territory[data-kind='region'][data-code='93']").await;
    let answer = server
        .graphql("copil", &format!("{{ dashboard(region: \"93\") {{ total {{ {FIGURES} }} }} }}"), json!({}))
        .await;
    assert_eq!(assert_figures(&page, "#territory-figures", &answer["dashboard"]["total"]).await, 10);
    assert!(
        page.find("path.dep.dimmed[data-code='29']").await.is_some(),
        "Finistère is outside Provence-Alpes-Côte d'Azur"
    );
    assert!(page.find("path.dep.dimmed[data-code='13']").await.is_none());

    // The map works from the keyboard: focus a département, press Enter.
    page.script("document.querySelector(\"path.dep[data-code='75']\").focus()", json!([])).await;
    page.press("\u{E007}").await;
    page.wait_for("#territory[data-kind='departement'][data-code='75']").await;

    // When an event arrives, the page follows without a reload.
    page.script("window.notReloaded = true", json!([])).await;
    wait_until_position(&page, server.commit("NAVIGATEUR-1").await).await;
    assert_eq!(page.script("return window.notReloaded === true", json!([])).await, json!(true));
    let live = page.find("#live[data-state='on']").await.expect("the page says it is live");
    assert_eq!(page.text(&live).await, "En direct");
    let now = server.graphql("copil", &format!("{{ dashboard {{ total {{ {FIGURES} }} }} }}"), json!({})).await;
    assert_eq!(
        now["dashboard"]["total"]["budget"]["committed"].as_str().unwrap(),
        {
            let before = total["budget"]["committed"].as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap();
            (before + rust_decimal::Decimal::new(123456, 2)).to_string()
        },
        "the commitment moved the national figure"
    );
    assert_figures(&page, "#national", &now["dashboard"]["total"]).await;
    let paris = server
        .graphql("copil", &format!("{{ dashboard(departement: \"75\") {{ total {{ {FIGURES} }} }} }}"), json!({}))
        .await;
    assert_figures(&page, "#territory-figures", &paris["dashboard"]["total"]).await;

    // The "as of" date: the replayed report of that date.
    page.script("document.getElementById('as-of').value = '2021-06-30'", json!([])).await;
    page.click(&page.find("#report-form button[type=submit]").await.unwrap()).await;
    page.wait_for("#report-table").await;
    let report = server.graphql("copil", "{ report(asOf: \"2021-06-30\") }", json!({})).await;
    let report_conventions = report["report"]["conventions"].as_array().unwrap();
    assert!(!report_conventions.is_empty());
    for c in report_conventions {
        let code = c["code"].as_str().unwrap();
        for (column, value) in
            [("total", &c["total"]), ("committed", &c["budget"]["committed"]), ("paid", &c["budget"]["paid"])]
        {
            let cell = page
                .find(&format!("#report-table tr[data-convention='{code}'] td[data-column='{column}']"))
                .await
                .unwrap();
            assert_eq!(page.attribute(&cell, "data-value").await.as_deref(), value.as_str(), "{code} {column}");
            assert_eq!(digits(&page.text(&cell).await), digits(value.as_str().unwrap()), "{code} {column}");
        }
    }
    assert!(page.text(&page.find("#report").await.unwrap()).await.contains("journal intègre"));
    assert_accessible(&page, "the dashboard with a report").await;
    page.script("document.getElementById('report-title').scrollIntoView()", json!([])).await;
    shoot(&page, "report").await;

    // The token lives in this session only; a token of another role is refused clearly.
    let stored = page.script("return [sessionStorage.length, localStorage.length]", json!([])).await;
    assert_eq!(stored, json!([1, 0]));
    page.click(&page.find("#logout").await.unwrap()).await;
    assert_eq!(page.script("return sessionStorage.length", json!([])).await, json!(0));
    let field = page.wait_for("#login:not([hidden]) #token").await;
    page.type_into(&field, &server.tokens["structure"]).await;
    page.click(&page.find("#login-form button[type=submit]").await.unwrap()).await;
    let refusal = page.wait_for("#login-error:not(:empty)").await;
    assert!(page.text(&refusal).await.contains("n’ouvre pas le tableau de bord"), "{}", page.text(&refusal).await);
    assert!(page.find("#board:not([hidden])").await.is_none());

    // A token revoked while the page is open sends the user back to the login form.
    let field = page.wait_for("#token").await;
    page.script("document.getElementById('token').value = ''", json!([])).await;
    page.type_into(&field, &server.tokens["copil"]).await;
    page.click(&page.find("#login-form button[type=submit]").await.unwrap()).await;
    page.wait_for("#board:not([hidden])").await;
    server.revoke("copil");
    server.commit("NAVIGATEUR-2").await;
    let refusal = page.wait_for("#login:not([hidden]) #login-error:not(:empty)").await;
    assert!(page.text(&refusal).await.contains("n’est plus valide"), "{}", page.text(&refusal).await);
    assert_eq!(page.script("return sessionStorage.length", json!([])).await, json!(0));

    page.close().await;
}
