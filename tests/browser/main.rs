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
                     meanDaysToReimbursed p90DaysToReimbursed meanDaysEndToEnd p90DaysEndToEnd overdueClaims lateFundsCalls }";

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
        ("p90DaysToReimbursed", r["p90DaysToReimbursed"].clone()),
        ("meanDaysEndToEnd", r["meanDaysEndToEnd"].clone()),
        ("p90DaysEndToEnd", r["p90DaysEndToEnd"].clone()),
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
#[cfg_attr(
    browser_missing,
    ignore = "chromium and chromedriver were not found when built (apt-get install chromium chromium-driver, then rebuild)"
)]
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
    assert_eq!(assert_figures(&page, "#claims", total).await, 14);
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
    assert!(page.find("#departements-table tr[data-departement='29']").await.is_some(), "the table is shown");
    assert_accessible(&page, "the dashboard, a département chosen").await;
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

/// Whether `css` is laid out (not hidden by `hidden` nor by a display rule).
async fn displayed(page: &Session, css: &str) -> bool {
    page.script(
        "const e = document.querySelector(arguments[0]); return !!e && e.getClientRects().length > 0",
        json!([css]),
    )
    .await
        == json!(true)
}

async fn sign_in(page: &Session, server: &Server, role: &str) {
    let field = page.wait_for("#token").await;
    page.type_into(&field, &server.tokens[role]).await;
    page.click(&page.find("#login-form button[type=submit]").await.unwrap()).await;
    page.wait_for("body[data-position]").await;
}

/// `per100k` of the page, in Rust: tenths rounded half up, with a decimal comma.
fn per_100k(count: u64, population: u64) -> String {
    let tenths = (count * 1_000_000 * 2 + population) / (2 * population);
    format!("{},{}", tenths / 10, tenths % 10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    browser_missing,
    ignore = "chromium and chromedriver were not found when built (apt-get install chromium chromium-driver, then rebuild)"
)]
async fn the_page_answers_the_comite_questions_by_territory_pace_and_delay_and_exports_them() {
    let Some((chromium, chromedriver)) = browser() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let driver = Driver::start(&chromedriver);
    let page = driver.session(&chromium, &dir.path().join("profile"), (1440, 900)).await;
    page.goto(&format!("{}/dashboard", server.url)).await;
    page.wait_for("#token").await;

    // Given the login screen, nothing of a session shows (the `hidden` attribute wins).
    for css in ["#session", "#live", "#logout", "#board"] {
        assert!(!displayed(&page, css).await, "{css} shows on the login screen");
    }
    sign_in(&page, &server, "copil").await;
    assert_eq!(page.script("return window.scrollY", json!([])).await, json!(0), "the header stays in sight");
    assert!(!displayed(&page, "#territory-figures").await, "no empty boxes before a territory is chosen");
    let updated = page.text(&page.find("#updated").await.unwrap()).await;
    assert!(
        updated.len() >= 18 && updated.contains(" à ") && updated.chars().filter(|c| *c == '/').count() == 2,
        "{updated}"
    );
    assert!(page.text(&page.find("#who").await.unwrap()).await.contains("copil"));

    // How much of the money is used: the plan's total, committed and paid, exactly the sums.
    let api = server
        .graphql(
            "copil",
            "{ conventions { code total periodStart periodEnd targets { kind quantity } budget { committed paid } }
               dashboard { targets { kind target reached } total { training { trainees } }
                 regions { region { code name population } indicators { training { trainees } } }
                 departements { edges { node { departement { code } } } } }
               annexClaims(status: SUBMITTED) { reference overdue }
               fundsCalls { number late } }",
            json!({}),
        )
        .await;
    let sum = |f: &dyn Fn(&Value) -> &Value| {
        api["conventions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| f(c).as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap())
            .sum::<rust_decimal::Decimal>()
    };
    for (key, want) in [
        ("total", sum(&|c| &c["total"])),
        ("committed", sum(&|c| &c["budget"]["committed"])),
        ("paid", sum(&|c| &c["budget"]["paid"])),
    ] {
        let dd = page.find(&format!("#headline [data-money={key}]")).await.unwrap();
        let value: rust_decimal::Decimal = page.attribute(&dd, "data-value").await.unwrap().parse().unwrap();
        assert_eq!(value, want, "{key}");
    }
    // Per funder, from the conventions' financing plans: the sums of the API's parts.
    let plans = server
        .graphql("copil", "{ conventions { id code funders { funder figures { committed paid } } } }", json!({}))
        .await;
    let mut by_funder: HashMap<String, (rust_decimal::Decimal, rust_decimal::Decimal)> = HashMap::new();
    for c in plans["conventions"].as_array().unwrap() {
        for f in c["funders"].as_array().unwrap() {
            let e = by_funder.entry(f["funder"].as_str().unwrap().to_string()).or_default();
            e.0 += f["figures"]["committed"].as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap();
            e.1 += f["figures"]["paid"].as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap();
        }
    }
    assert!(by_funder.len() >= 2, "the demo has several funders: {by_funder:?}");
    for (funder, (committed, paid)) in &by_funder {
        for (column, want) in [("committed", committed), ("paid", paid)] {
            let cell = page
                .find(&format!("#funders-table tr[data-funder='{funder}'] td[data-column={column}]"))
                .await
                .unwrap();
            let shown: rust_decimal::Decimal =
                page.attribute(&cell, "data-csv").await.unwrap().replace(',', ".").parse().unwrap();
            assert_eq!(shown, *want, "{funder} {column}");
        }
    }
    // What ANCT paid each partner: each convention's disbursements.
    for c in plans["conventions"].as_array().unwrap() {
        let d = server
            .graphql(
                "copil",
                "query($id: ID!) { disbursements(conventionId: $id) { received justified } }",
                json!({ "id": c["id"] }),
            )
            .await;
        let code = c["code"].as_str().unwrap();
        let row = page
            .wait_for(&format!("#disbursements-table tr[data-disbursement='{code}'] td[data-column=received]"))
            .await;
        let shown: rust_decimal::Decimal =
            page.attribute(&row, "data-csv").await.unwrap().replace(',', ".").parse().unwrap();
        assert_eq!(
            shown,
            d["disbursements"]["received"].as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap(),
            "{code}"
        );
    }
    // Millions fit their cards at 1440×900.
    let overflowing = page
        .script(
            "return [...document.querySelectorAll('.figures dd, .headline dd')]
                .filter(d => d.scrollWidth > d.clientWidth + 1).map(d => d.textContent)",
            json!([]),
        )
        .await;
    assert_eq!(overflowing, json!([]), "amounts overflow their cards");

    // Are we on track: the demo's conventions ended in 2022, so today a steady pace
    // expects the whole target, and the projection is what was reached.
    for t in api["dashboard"]["targets"].as_array().unwrap() {
        let kind = t["kind"].as_str().unwrap();
        let li = page.find(&format!("#targets li[data-target={kind}]")).await.unwrap();
        assert_eq!(page.attribute(&li, "data-expected").await, Some(t["target"].to_string()), "{kind}");
        assert_eq!(page.attribute(&li, "data-projected").await, Some(t["reached"].to_string()), "{kind}");
        assert!(page.text(&li).await.contains("attendus aujourd’hui"), "{kind}");
    }
    // Money against each convention's amount: the demo's periods are over, so a steady
    // pace expects the whole amount committed by today.
    for c in api["conventions"].as_array().unwrap() {
        let code = c["code"].as_str().unwrap();
        let card = page.find(&format!("#conventions [data-convention='{code}']")).await.unwrap();
        let expected: rust_decimal::Decimal =
            page.attribute(&card, "data-expected-committed").await.unwrap().parse().unwrap();
        assert_eq!(expected, c["total"].as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap(), "{code}");
    }
    // The monthly chart's text alternative ends on the last month of the period: the API's figure then.
    let last = page
        .script(
            "const rows = document.querySelectorAll('table[data-chart=TRAININGS] tbody tr');
             return rows.length ? [rows.length, rows[rows.length - 1].lastChild.textContent] : null",
            json!([]),
        )
        .await;
    let end = api["conventions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["targets"].as_array().unwrap().iter().any(|t| t["kind"] == "TRAININGS"))
        .map(|c| c["periodEnd"].as_str().unwrap()[..7].to_string())
        .max()
        .unwrap();
    let at_end = server
        .graphql(
            "copil",
            &format!("{{ dashboard(to: \"{end}\") {{ total {{ training {{ trainees }} }} }} }}"),
            json!({}),
        )
        .await;
    assert!(last[0].as_u64().unwrap() >= 2, "{last}");
    assert_eq!(
        digits(last[1].as_str().unwrap()),
        at_end["dashboard"]["total"]["training"]["trainees"].to_string(),
        "the chart's last point"
    );

    // Where do we lag: the régions in French order, all compared without a click, per inhabitant.
    let names = page
        .script("return [...document.querySelectorAll('#region option')].slice(1).map(o => o.textContent)", json!([]))
        .await;
    let names: Vec<&str> = names.as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    let at = |name: &str| names.iter().position(|n| *n == name).unwrap();
    assert_eq!(names.len(), 18);
    assert_eq!(names[0], "Auvergne-Rhône-Alpes");
    assert!(at("Hauts-de-France") < at("Île-de-France") && at("Île-de-France") < at("La Réunion"), "{names:?}");
    assert_eq!(
        page.script("return document.querySelectorAll('#regions-table tbody tr').length", json!([])).await,
        json!(19)
    );
    for r in api["dashboard"]["regions"].as_array().unwrap() {
        let (code, population) = (r["region"]["code"].as_str().unwrap(), r["region"]["population"].as_u64().unwrap());
        let trainees = r["indicators"]["training"]["trainees"].as_u64().unwrap();
        let cell =
            page.find(&format!("#regions-table tr[data-region='{code}'] td[data-column=traineesPer]")).await.unwrap();
        assert_eq!(page.text(&cell).await, per_100k(trainees, population), "région {code}");
    }
    // The départements: 101, sortable, the ten furthest behind flagged.
    assert_eq!(
        page.script(
            "return document.querySelectorAll('#departements-table tbody tr[data-departement]').length",
            json!([])
        )
        .await,
        json!(101)
    );
    let trainees = api["dashboard"]["total"]["training"]["trainees"].as_u64().unwrap();
    if trainees > 0 {
        assert_eq!(
            page.script("return document.querySelectorAll('#departements-table tr[data-behind]').length", json!([]))
                .await,
            json!(10)
        );
    }
    let page_ref = &page;
    let order = |dir: &'static str| async move {
        let page = page_ref;
        page.click(&page.find("#departements-table button.sort[data-key=traineesPer]").await.unwrap()).await;
        let th = page.find("#departements-table th[aria-sort]:has(button[data-key=traineesPer])").await.unwrap();
        assert_eq!(page.attribute(&th, "aria-sort").await.as_deref(), Some(dir));
        let values = page
            .script(
                "return [...document.querySelectorAll('#departements-table td[data-column=traineesPer]')]
                    .map(td => Number(td.dataset.csv.replace(',', '.')))",
                json!([]),
            )
            .await;
        values.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect::<Vec<_>>()
    };
    let up = order("ascending").await;
    assert!(up.windows(2).all(|w| w[0] <= w[1]), "{up:?}");
    let down = order("descending").await;
    assert!(down.windows(2).all(|w| w[0] >= w[1]), "{down:?}");

    // Each territory has its address; the back button and a shared link restore it;
    // Île-de-France zooms so that Paris can be clicked.
    page.click(&page.find("path.dep[data-code='29']").await.unwrap()).await;
    page.wait_for("#territory[data-code='29']").await;
    assert_eq!(page.script("return location.hash", json!([])).await, json!("#dep=29"));
    page.click(&page.find("#region option[value='11']").await.unwrap()).await;
    page.wait_for("#territory[data-kind='region'][data-code='11']").await;
    assert_eq!(page.script("return location.hash", json!([])).await, json!("#region=11"));
    page.wait_for("#map svg[data-zoom='11']").await;
    let paris = page
        .script("return document.querySelector(\"path.dep[data-code='75']\").getBoundingClientRect().width", json!([]))
        .await;
    assert!(paris.as_f64().unwrap() > 20.0, "Paris is {paris} px wide once zoomed");
    page.click(&page.find("path.dep[data-code='75']").await.unwrap()).await;
    page.wait_for("#territory[data-code='75']").await;
    page.script("history.back()", json!([])).await;
    page.wait_for("#territory[data-kind='region'][data-code='11']").await;
    shoot(&page, "ile-de-france").await;
    page.goto(&format!("{}/dashboard#dep=29", server.url)).await;
    page.wait_for("#territory[data-kind='departement'][data-code='29']").await;

    // The keyboard: the map is one Tab stop, arrows walk the INSEE order; skip links.
    assert_eq!(
        page.script("return document.querySelectorAll('path.dep[tabindex=\"0\"]').length", json!([])).await,
        json!(1)
    );
    page.script("document.querySelector(\"path.dep[data-code='01']\").focus()", json!([])).await;
    page.press("\u{E014}").await; // ArrowRight
    assert_eq!(page.script("return document.activeElement.dataset.code", json!([])).await, json!("02"));
    page.script("document.querySelector(\"path.dep[data-code='19']\").focus()", json!([])).await;
    page.press("\u{E014}").await;
    assert_eq!(
        page.script("return document.activeElement.dataset.code", json!([])).await,
        json!("2A"),
        "Corsica after 19"
    );
    assert_eq!(page.script("return document.querySelectorAll('a.skip').length", json!([])).await, json!(3));

    // How long reimbursements take: the late lists are the API's.
    let overdue = api["annexClaims"].as_array().unwrap().iter().filter(|c| c["overdue"] == true).count();
    assert_eq!(
        page.script("return document.querySelectorAll('#overdue-table tr[data-claim]').length", json!([])).await,
        json!(overdue)
    );
    let late = api["fundsCalls"].as_array().unwrap().iter().filter(|c| c["late"] == true).count();
    assert_eq!(
        page.script("return document.querySelectorAll('#late-calls-table tr[data-call]').length", json!([])).await,
        json!(late)
    );
    // Where each measure of the plan stands: the register, as the API has it.
    let register = server.graphql("copil", "{ measures { id status } }", json!({})).await;
    let measures = register["measures"].as_array().unwrap();
    assert_eq!(measures.len(), 19, "the report's measures are seeded");
    for m in measures {
        let row =
            page.find(&format!("#measures-table tr[data-measure='{}']", m["id"].as_str().unwrap())).await.unwrap();
        assert_eq!(page.attribute(&row, "data-status").await.as_deref(), m["status"].as_str());
    }
    assert!(measures.iter().any(|m| m["status"] == "LAUNCHED") && measures.iter().any(|m| m["status"] == "PROPOSED"));
    let labels = page.text(&page.find("#claims").await.unwrap()).await;
    assert!(
        labels.contains("Dépôt → paiement par l’OPCO")
            && labels.contains("Paiement par l’OPCO → remboursement par l’ANCT")
    );

    // A period applies to every section and is named in the headings.
    page.script(
        "document.getElementById('from').value = '2021-01'; document.getElementById('to').value = '2021-06'",
        json!([]),
    )
    .await;
    page.click(&page.find("#period-form button[type=submit]").await.unwrap()).await;
    page.wait_for("#glance-title .period-name").await;
    let wanted = server
        .graphql(
            "copil",
            &format!("{{ dashboard(from: \"2021-01\", to: \"2021-06\") {{ total {{ {FIGURES} }} }} }}"),
            json!({}),
        )
        .await;
    let started = Instant::now();
    while !page.text(&page.find("#glance-title").await.unwrap()).await.contains("de janv. 2021 à juin 2021") {
        assert!(started.elapsed() < PATIENCE, "the period is not named");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_figures(&page, "#national", &wanted["dashboard"]["total"]).await;

    // Exports: French CSV (BOM, `;`, decimal comma), formulas neutralised.
    let csv = page.script("return tableCsv(document.getElementById('regions-table'))", json!([])).await;
    let csv = csv.as_str().unwrap();
    assert!(csv.starts_with('\u{feff}'), "a BOM");
    assert!(csv.lines().next().unwrap().starts_with("\u{feff}Région;Population;Personnes formées;"), "{csv}");
    assert!(csv.contains("\r\nFrance entière;"), "a totals row");
    let injected = page
        .script(
            "const t = document.createElement('table'); t.innerHTML = '<tr><td>=HYPERLINK(\"x\")</td><td>12,5</td></tr>';
             return tableCsv(t)",
            json!([]),
        )
        .await;
    assert_eq!(injected, json!("\u{feff}\"'=HYPERLINK(\"\"x\"\")\";12,5\r\n"));

    // The report of a date: French errors, totals, digest, provenance of a figure.
    page.script("showReport('20211-01-01', '')", json!([])).await;
    let refusal = page.wait_for("#report .error").await;
    assert!(page.text(&refusal).await.starts_with("Date invalide"));
    page.script("showReport('2021-02-30', '')", json!([])).await;
    let refusal = page.wait_for("#report .error").await;
    let started = Instant::now();
    while !page.text(&refusal).await.contains("impossible : le serveur a refusé") {
        assert!(started.elapsed() < PATIENCE, "{}", page.text(&refusal).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!page.text(&refusal).await.contains("parse"), "no English from the server");
    page.script("showReport('2021-12-31', '')", json!([])).await;
    page.wait_for("#report-table tr.total").await;
    let report = server.graphql("copil", "{ report(asOf: \"2021-12-31\") }", json!({})).await;
    let header = &report["report"]["header"];
    assert_eq!(
        page.text(&page.find("#report-digest").await.unwrap()).await,
        format!("{}:{}", header["logPosition"], header["logDigest"].as_str().unwrap())
    );
    // The report's funders, partners' balances and annex costs: the report's figures.
    for c in report["report"]["conventions"].as_array().unwrap() {
        let code = c["code"].as_str().unwrap();
        let shown = page
            .script(
                "return [...document.querySelectorAll('#report-funders-table tbody tr:not(.total)')]
                    .filter(tr => tr.firstChild.textContent === arguments[0])
                    .map(tr => tr.querySelector('td[data-column=committed]').dataset.csv)",
                json!([code]),
            )
            .await;
        let want: Vec<String> = c["funders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["committed"].as_str().unwrap().replace('.', ","))
            .collect();
        assert_eq!(shown, json!(want), "{code}: funders");
    }
    assert_eq!(
        page.script(
            "return document.querySelectorAll('#report-balances-table tbody tr:not(.total)').length",
            json!([])
        )
        .await,
        json!(report["report"]["conventions"].as_array().unwrap().len())
    );
    let first = &report["report"]["conventions"][0];
    let code = first["code"].as_str().unwrap();
    let mut events = 0;
    for envelope in first["envelopes"].as_array().unwrap() {
        let provenance = server
            .graphql(
                "copil",
                "query($c: String!, $e: String!) { reportProvenance(asOf: \"2021-12-31\", conventionCode: $c, envelope: $e, figure: COMMITTED) { position } }",
                json!({ "c": code, "e": envelope["name"] }),
            )
            .await;
        events += provenance["reportProvenance"].as_array().unwrap().len();
    }
    page.click(
        &page
            .find(&format!("#report-table tr[data-convention='{code}'] td[data-column=committed] button"))
            .await
            .unwrap(),
    )
    .await;
    page.wait_for("#provenance-list").await;
    assert_eq!(
        page.script("return document.querySelectorAll('#provenance-list li').length", json!([])).await,
        json!(events)
    );
    assert_accessible(&page, "the page with its tables, a report and a provenance").await;

    // The print view: every table expanded, the date, the data's instant and the digest on top.
    page.script("window.dispatchEvent(new Event('beforeprint'))", json!([])).await;
    assert_eq!(
        page.script("return [...document.querySelectorAll('details')].every(d => d.open)", json!([])).await,
        json!(true)
    );
    let printed = page.text(&page.find("#print-header").await.unwrap()).await;
    let printed = if printed.is_empty() {
        page.script("return document.getElementById('print-header').textContent", json!([]))
            .await
            .as_str()
            .unwrap()
            .to_string()
    } else {
        printed
    };
    assert!(printed.contains("données à jour au") && printed.contains("empreinte du journal"), "{printed}");
    let print_rules = page
        .script(
            "return [...document.styleSheets].flatMap(s => [...s.cssRules])
                .filter(r => r.media && r.media.mediaText === 'print').map(r => r.cssText).join(' ')",
            json!([]),
        )
        .await;
    assert!(print_rules.as_str().unwrap().contains("button"), "the print view hides the buttons");
    page.close().await;

    // A phone: nothing wider than the screen.
    let phone = driver.phone(&chromium, &dir.path().join("phone"), (390, 844)).await;
    phone.goto(&format!("{}/dashboard", server.url)).await;
    sign_in(&phone, &server, "copil").await;
    phone.script("document.querySelector('#report-form').scrollIntoView()", json!([])).await;
    phone.script("showReport('2021-12-31', '')", json!([])).await;
    phone.wait_for("#report-table").await;
    let widths = phone
        .script(
            "return [document.documentElement.scrollWidth, window.innerWidth,
                [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 391
                    && !e.closest('.table-scroll')).slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)]",
            json!([]),
        )
        .await;
    assert_eq!(widths[1], json!(390), "the phone's width: {widths}");
    assert!(widths[0].as_u64() <= widths[1].as_u64(), "the page scrolls sideways at 390 px: {widths}");
    shoot(&phone, "phone").await;
    phone.close().await;
}
