//! A real headless Chromium (Debian's `chromium` and `chromium-driver`) driven over W3C
//! WebDriver: a handful of JSON calls, so no WebDriver crate and no TLS stack is needed.
//!
//! Every URL a page asks for is read from the DevTools network log, so the test fails on any
//! request a page makes to another host. Chromium's own background connections (Google
//! sign-in, time, push), which belong to no page and cannot all be switched off, go to a
//! local proxy that answers 403, so nothing leaves the machine.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Browser {
    driver: Child,
    url: String,
    session: String,
    client: reqwest::Client,
    /// First lines of every request that tried to leave the machine.
    pub outside: Arc<Mutex<Vec<String>>>,
    pub downloads: PathBuf,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Where chromedriver is, or `None` (allowed only outside CI).
pub fn driver_path() -> Option<PathBuf> {
    for candidate in ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"] {
        if Path::new(candidate).exists() {
            return Some(PathBuf::from(candidate));
        }
    }
    if std::env::var("CI").is_ok() {
        panic!("chromedriver is missing: scripts/test.sh installs chromium-driver");
    }
    eprintln!("skipping the browser test: no chromedriver (scripts/test.sh installs it)");
    None
}

async fn record_outside(listener: tokio::net::TcpListener, seen: Arc<Mutex<Vec<String>>>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 4096];
            let n = stream.read(&mut buffer).await.unwrap_or(0);
            let text = String::from_utf8_lossy(&buffer[..n]);
            let first = text.lines().next().unwrap_or("").to_string();
            if let Ok(mut seen) = seen.lock() {
                seen.push(first);
            }
            let _ = stream
                .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
                .await;
        });
    }
}

impl Browser {
    pub async fn start(driver: &Path) -> Browser {
        let outside = Arc::new(Mutex::new(Vec::new()));
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the recording proxy");
        let proxy_port = proxy.local_addr().expect("proxy address").port();
        tokio::spawn(record_outside(proxy, outside.clone()));
        let port = free_port();
        // Chromium on Linux takes its interface language (the date picker's order, the file
        // button) from the environment, as on a Japanese desktop; `--lang` alone is not enough.
        let driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .env("LANG", "C.UTF-8")
            .env("LANGUAGE", "ja")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if client.get(format!("{url}/status")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let downloads = profile.path().join("downloads");
        std::fs::create_dir_all(&downloads).expect("downloads dir");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"performance": "ALL"},
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--lang=ja", "--window-size=1400,1000",
                    // Chromium's own traffic (autofill, time, sign-in, safe browsing) is off,
                    // so that whatever reaches the recorder came from a page.
                    "--disable-features=AutofillServerCommunication,NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,DialMediaRouteProvider,Translate,CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions,PrivacySandboxSettings4,PasswordLeakDetection,SafeBrowsing,SafeBrowsingEnhancedProtection",
                    "--disable-domain-reliability", "--no-pings", "--disable-client-side-phishing-detection",
                    "--disable-default-apps", "--disable-extensions",
                    "--disable-component-extensions-with-background-pages", "--metrics-recording-only",
                    "--password-store=basic", "--use-mock-keychain", "--disable-breakpad",
                    "--no-default-browser-check", "--disable-search-engine-choice-screen",
                    format!("--user-data-dir={}", profile.path().join("profile").display()),
                    format!("--proxy-server=http://127.0.0.1:{proxy_port}"),
                ],
                "prefs": {
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false,
                    "intl.accept_languages": "ja",
                    "credentials_enable_service": false,
                    "profile.password_manager_enabled": false,
                    "profile.password_manager_leak_detection": false,
                    "safebrowsing.enabled": false,
                    "signin.allowed": false,
                }
            }
        }}});
        let reply: Value = client
            .post(format!("{url}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("new WebDriver session")
            .json()
            .await
            .expect("session reply");
        let session = reply["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {reply}"))
            .to_string();
        let browser = Browser {
            driver,
            url,
            session,
            client,
            outside,
            downloads,
            _profile: profile,
        };
        // Downloads in headless Chromium go where the test can read them.
        browser
            .call(
                "POST",
                "/goog/cdp/execute",
                json!({"cmd": "Browser.setDownloadBehavior", "params": {
                    "behavior": "allow", "downloadPath": browser.downloads.display().to_string()
                }}),
            )
            .await;
        // Chromium opens on its own new-tab page; what that page loads is not ours to judge.
        browser.go("about:blank").await;
        browser.page_requests().await;
        browser
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.url, self.session);
        let request = match method {
            "GET" => self.client.get(url),
            "DELETE" => self.client.delete(url),
            _ => self.client.post(url).json(&body),
        };
        let reply: Value = request
            .send()
            .await
            .expect("WebDriver call")
            .json()
            .await
            .expect("WebDriver reply");
        if let Some(error) = reply["value"].get("error") {
            panic!("WebDriver {path}: {error} {}", reply["value"]["message"]);
        }
        reply["value"].clone()
    }

    pub async fn go(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url })).await;
    }

    pub async fn find(&self, css: &str) -> String {
        let found = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("an element id")
            .to_string()
    }

    pub async fn count(&self, css: &str) -> usize {
        self.call(
            "POST",
            "/elements",
            json!({"using": "css selector", "value": css}),
        )
        .await
        .as_array()
        .map_or(0, Vec::len)
    }

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call("POST", &format!("/element/{id}/click"), json!({}))
            .await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call("POST", &format!("/element/{id}/clear"), json!({}))
            .await;
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Runs script in the page through WebDriver (the page itself runs none).
    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// The visible text of the page (empty while a page is replacing another, as after a
    /// `Refresh`, when there is no body yet).
    pub async fn text(&self) -> String {
        self.script(
            "return document.body ? document.body.innerText : ''",
            json!([]),
        )
        .await
        .as_str()
        .unwrap_or("")
        .to_string()
    }

    pub async fn current_url(&self) -> String {
        self.call("GET", "/url", Value::Null)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Saves a full-page screenshot.
    pub async fn screenshot(&self, path: &Path) {
        let height = self
            .script("return document.documentElement.scrollHeight", json!([]))
            .await
            .as_u64()
            .unwrap_or(1000);
        self.call(
            "POST",
            "/window/rect",
            json!({"width": 1400, "height": (height + 140).clamp(700, 6000)}),
        )
        .await;
        let png = self.call("GET", "/screenshot", Value::Null).await;
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or(""))
            .expect("a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, bytes).expect("write the screenshot");
        self.call(
            "POST",
            "/window/rect",
            json!({"width": 1400, "height": 1000}),
        )
        .await;
    }

    /// Waits until the page's text contains `needle`, reloading nothing; panics after 30 s.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        for _ in 0..300 {
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page never showed {needle:?}: {}", self.text().await);
    }

    /// Waits for a downloaded file whose name ends with `suffix`.
    pub async fn wait_for_download(&self, suffix: &str) -> Vec<u8> {
        // Chromium creates the file under its final name, empty, as the download starts,
        // writes it as `….crdownload` and renames that over it at the end: the download is
        // there when no `.crdownload` is left and the file is not empty (seen read empty once).
        for _ in 0..300 {
            if let Ok(entries) = std::fs::read_dir(&self.downloads) {
                let names: Vec<(String, std::path::PathBuf)> = entries
                    .flatten()
                    .map(|e| (e.file_name().to_string_lossy().to_string(), e.path()))
                    .collect();
                let writing = names.iter().any(|(name, _)| name.ends_with(".crdownload"));
                for (name, path) in &names {
                    if name.ends_with(suffix) && !writing {
                        let bytes = std::fs::read(path).expect("read the download");
                        if !bytes.is_empty() {
                            return bytes;
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no download ending in {suffix}");
    }

    /// Every resource the current page loaded that is not from `origin`.
    pub async fn foreign_resources(&self, origin: &str) -> Vec<String> {
        self.script(
            "return performance.getEntriesByType('resource').map(e => e.name)\
             .concat([location.href]).filter(u => !u.startsWith(arguments[0]));",
            json!([origin]),
        )
        .await
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
    }

    /// Every URL the pages asked for since the last call, from the DevTools network log
    /// (Chromium's own background connections belong to no page and are not in it).
    pub async fn page_requests(&self) -> Vec<String> {
        let entries = self
            .call("POST", "/se/log", json!({"type": "performance"}))
            .await;
        let mut urls = Vec::new();
        for entry in entries.as_array().into_iter().flatten() {
            let Some(message) = entry["message"].as_str() else {
                continue;
            };
            let Ok(message) = serde_json::from_str::<Value>(message) else {
                continue;
            };
            if message["message"]["method"] == "Network.requestWillBeSent" {
                if let Some(url) = message["message"]["params"]["request"]["url"].as_str() {
                    urls.push(url.to_string());
                }
            }
        }
        urls
    }

    /// What reached the local sink: Chromium's own background traffic (sign-in, time,
    /// push), which is kept off the network; pages are checked with [`page_requests`].
    pub fn outside_requests(&self) -> Vec<String> {
        self.outside.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub async fn quit(mut self) {
        let _ = self
            .client
            .delete(format!("{}/session/{}", self.url, self.session))
            .send()
            .await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
