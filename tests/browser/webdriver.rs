//! The few W3C WebDriver commands the browser test needs, spoken to Debian's
//! `chromedriver` over HTTP with the client the project already has (reqwest): a
//! WebDriver crate would bring a second HTTP stack and a TLS provider for a loopback
//! conversation of a dozen JSON calls.

use base64::Engine;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key WebDriver uses for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long a page may take to show what a step waits for.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A running `chromedriver`, killed on drop.
pub struct Driver {
    process: Child,
    url: String,
}

impl Driver {
    pub fn start(chromedriver: &str) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let process = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            // The page is in French; so are Chromium's own widgets (the date picker).
            .env("LANGUAGE", "fr")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {chromedriver}: {e}"));
        let driver = Driver { process, url: format!("http://127.0.0.1:{port}") };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < PATIENCE, "chromedriver did not answer on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        driver
    }

    /// A new headless Chromium window of the given size, with a fresh profile.
    pub async fn session(&self, chromium: &str, profile: &std::path::Path, size: (u32, u32)) -> Session {
        self.open(chromium, profile, size, None).await
    }

    /// A phone's screen (Chromium's device emulation: a window cannot be narrower than
    /// 500 px), `width` CSS pixels wide.
    pub async fn phone(&self, chromium: &str, profile: &std::path::Path, (w, h): (u32, u32)) -> Session {
        let metrics = json!({ "deviceMetrics": { "width": w, "height": h, "pixelRatio": 2.0, "mobile": true } });
        self.open(chromium, profile, (w.max(500), h), Some(metrics)).await
    }

    async fn open(
        &self,
        chromium: &str,
        profile: &std::path::Path,
        (w, h): (u32, u32),
        mobile: Option<Value>,
    ) -> Session {
        let http = reqwest::Client::new();
        // The flags that keep Chromium from calling outside (a closed network refuses it).
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--lang=fr-FR",
            &format!("--window-size={w},{h}"),
            &format!("--user-data-dir={}", profile.display()),
        ];
        let answer = call(
            &http,
            reqwest::Method::POST,
            &format!("{}/session", self.url),
            json!({ "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": match mobile {
                    Some(m) => json!({ "binary": chromium, "args": args, "mobileEmulation": m }),
                    None => json!({ "binary": chromium, "args": args }),
                },
            } } }),
        )
        .await
        .expect("chromedriver opens a Chromium session");
        let id = answer["sessionId"].as_str().expect("a session id").to_string();
        Session { http, base: format!("{}/session/{id}", self.url) }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

async fn call(http: &reqwest::Client, method: reqwest::Method, url: &str, body: Value) -> Result<Value, String> {
    let mut request = http.request(method.clone(), url);
    if method != reqwest::Method::GET {
        request = request.json(&body);
    }
    let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
    let answer: Value = response.json().await.map_err(|e| format!("{url}: {e}"))?;
    match answer["value"].get("error") {
        Some(error) => Err(format!("{error}: {}", answer["value"]["message"])),
        None => Ok(answer["value"].clone()),
    }
}

/// One browser window.
pub struct Session {
    http: reqwest::Client,
    base: String,
}

/// An element of the page.
#[derive(Clone)]
pub struct Element(String);

impl Session {
    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        call(&self.http, reqwest::Method::POST, &format!("{}{path}", self.base), body).await
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        call(&self.http, reqwest::Method::GET, &format!("{}{path}", self.base), Value::Null).await
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await.expect("the page loads");
    }

    pub async fn find(&self, css: &str) -> Option<Element> {
        let found = self.post("/element", json!({ "using": "css selector", "value": css })).await.ok()?;
        Some(Element(found[ELEMENT].as_str()?.to_string()))
    }

    /// Waits for an element matching `css`.
    pub async fn wait_for(&self, css: &str) -> Element {
        let started = Instant::now();
        loop {
            if let Some(e) = self.find(css).await {
                return e;
            }
            if started.elapsed() > PATIENCE {
                let shown = self.script("return document.body.innerText", json!([])).await;
                panic!("`{css}` did not appear within {PATIENCE:?}; the page shows:\n{shown}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, e: &Element) {
        self.post(&format!("/element/{}/click", e.0), json!({})).await.expect("the element takes a click");
    }

    pub async fn type_into(&self, e: &Element, text: &str) {
        self.post(&format!("/element/{}/value", e.0), json!({ "text": text })).await.expect("the field takes text");
    }

    pub async fn text(&self, e: &Element) -> String {
        self.get(&format!("/element/{}/text", e.0)).await.expect("text").as_str().unwrap_or_default().to_string()
    }

    pub async fn attribute(&self, e: &Element, name: &str) -> Option<String> {
        self.get(&format!("/element/{}/attribute/{name}", e.0)).await.ok()?.as_str().map(str::to_string)
    }

    /// Runs a script in the page; `arguments[i]` are `args`.
    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args })).await.expect("the script runs")
    }

    /// Presses a key (a WebDriver key code such as `\u{E007}`, Enter) where the focus is.
    pub async fn press(&self, key: &str) {
        let actions = json!({ "actions": [ { "type": "key", "id": "keyboard", "actions": [
            { "type": "keyDown", "value": key }, { "type": "keyUp", "value": key } ] } ] });
        self.post("/actions", actions).await.expect("the key is pressed");
    }

    /// Saves a PNG of the whole page: the window is stretched to the page's height for
    /// the shot, then given back its size.
    pub async fn screenshot(&self, path: &std::path::Path) {
        let size = self.get("/window/rect").await.expect("the window's size");
        let height = self
            .script(
                "window.scrollTo(0, 0); return document.documentElement.scrollHeight + window.outerHeight - window.innerHeight",
                json!([]),
            )
            .await;
        let _ = self.post("/window/rect", json!({ "width": size["width"], "height": height })).await;
        let shot = self.get("/screenshot").await.expect("a screenshot");
        let _ = self.post("/window/rect", json!({ "width": size["width"], "height": size["height"] })).await;
        let png = base64::engine::general_purpose::STANDARD.decode(shot.as_str().unwrap()).expect("base64 PNG");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    pub async fn close(self) {
        let _ = call(&self.http, reqwest::Method::DELETE, &self.base, Value::Null).await;
    }
}
