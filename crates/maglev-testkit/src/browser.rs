//! A real browser for page tests: Debian's headless Chromium driven by
//! chromedriver over W3C WebDriver (plain HTTP/1.1 on loopback, a few
//! endpoints, blocking). `cargo xtask test` installs both packages; a
//! plain `cargo test` without them skips, unless MAGLEV_REQUIRE_BROWSER is
//! set (CI sets it), then it fails.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{free_port, Kill};

/// Where Debian puts them.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Where Debian puts it.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A browser session; closed on drop.
#[derive(Debug)]
pub struct Browser {
    port: u16,
    session: String,
    _driver: Kill,
    _profile: tempfile::TempDir,
}

/// Whether a test may skip for want of a browser.
pub fn browser_or_skip(test: &str) -> Option<Browser> {
    let have = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !have {
        if std::env::var_os("MAGLEV_REQUIRE_BROWSER").is_some() {
            panic!("{test}: MAGLEV_REQUIRE_BROWSER is set but {CHROMIUM} or {CHROMEDRIVER} is missing (cargo xtask test installs them)");
        }
        eprintln!("{test}: skipped: no {CHROMIUM} / {CHROMEDRIVER} (apt-get install chromium chromium-driver)");
        return None;
    }
    Some(Browser::start())
}

fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    // chromedriver keeps the connection open whatever we ask: read the
    // header, then exactly Content-Length bytes.
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let body_at = loop {
        if let Some(i) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("chromedriver closed the connection".into());
        }
        out.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&out[..body_at]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no Content-Length from chromedriver")?;
    while out.len() < body_at + len {
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&out[body_at..]).into_owned();
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if let Some(err) = v["value"]["error"].as_str() {
        return Err(format!(
            "{err}: {}",
            v["value"]["message"].as_str().unwrap_or("")
        ));
    }
    Ok(v["value"].clone())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with an empty profile.
    pub fn start() -> Browser {
        let port = free_port();
        let driver = Kill(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver starts"),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while http(port, "GET", "/status", None).is_err() {
            assert!(Instant::now() < deadline, "chromedriver never answered");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().expect("temp dir");
        // Without the background-networking flags Chromium keeps trying
        // hosts this machine cannot reach.
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}});
        let v = http(port, "POST", "/session", Some(&caps)).expect("a browser session");
        let session = v["sessionId"].as_str().expect("a session id").to_string();
        Browser {
            port,
            session,
            _driver: driver,
            _profile: profile,
        }
    }

    fn call(&self, method: &str, what: &str, body: Option<&Value>) -> Result<Value, String> {
        http(
            self.port,
            method,
            &format!("/session/{}{what}", self.session),
            body,
        )
    }

    /// Opens a URL and waits for it to load.
    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(&json!({ "url": url })))
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    }

    /// Runs `script` (a function body; `return` what you want) in the page.
    pub fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": [] })),
        )
        .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Runs `script` until it returns something truthy (not null, false,
    /// 0 or ""), at most `within`; returns it and how long it took.
    pub fn wait(&self, what: &str, within: Duration, script: &str) -> (Value, Duration) {
        let start = Instant::now();
        loop {
            let v = self
                .call(
                    "POST",
                    "/execute/sync",
                    Some(&json!({ "script": script, "args": [] })),
                )
                .unwrap_or(Value::Null);
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return (v, start.elapsed());
            }
            if start.elapsed() > within {
                let body = self.eval("return document.body ? document.body.innerText : ''");
                panic!("{what}: not within {within:?}; the page says:\n{body}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The WebDriver id of the first element matching a CSS selector.
    fn find(&self, css: &str) -> String {
        let e = self
            .call(
                "POST",
                "/element",
                Some(&json!({ "using": "css selector", "value": css })),
            )
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        e.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("an element id")
            .to_string()
    }

    /// Clicks the first element matching a CSS selector, as a user would
    /// (a WebDriver element click, not a script).
    pub fn click(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/click"), Some(&json!({})))
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Types into the first element matching a CSS selector.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/clear"), Some(&json!({})))
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(&json!({ "text": text })),
        )
        .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        let v = self.call("GET", "/screenshot", None).expect("a screenshot");
        base64(v.as_str().unwrap_or(""))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.call("DELETE", "", None);
    }
}

fn base64(s: &str) -> Vec<u8> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| *c != b'=') {
        let Some(v) = A.iter().position(|a| *a == c) else {
            continue;
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
