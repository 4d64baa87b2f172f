//! maglevd-frontend's HTTP surface against real maglevds: the JSON API,
//! the event stream's replay and resync, and the admin side's gate
//! (credentials, session, CSRF, origin), with the simulator's call log as
//! the witness that a refused action changed nothing.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{until_state, Backend, Daemon, Frontend};

fn both_up(s: &serde_json::Value) -> bool {
    s["maglevds"].as_array().is_some_and(|ms| {
        ms.iter().all(|m| {
            m["connected"] == true
                && m["frontends"][0]["pools"][0]["backends"]
                    .as_array()
                    .is_some_and(|bs| {
                        bs.iter()
                            .all(|b| b["state"] == "up" && b["buckets"].as_u64() > Some(0))
                    })
        })
    })
}

/// Reads an event stream for `for_` and returns what came.
fn sse(port: u16, path: &str, last_id: Option<&str>, for_: Duration) -> String {
    match last_id {
        Some(id) => sse_with(port, path, &[("Last-Event-ID", id)], for_),
        None => sse_with(port, path, &[], for_),
    }
}

fn sse_with(port: u16, path: &str, headers: &[(&str, &str)], for_: Duration) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n{extra}\r\n"
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let end = std::time::Instant::now() + for_;
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while std::time::Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn state_versions_and_the_event_stream() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start();
    let a = Daemon::start(dir.path(), "a", backend.port);
    let f = Frontend::start(dir.path(), &format!("lb1={}", a.socket), &[]);
    let s = until_state(&f, "maglevd programmed", Duration::from_secs(15), both_up);
    let m = &s["maglevds"][0];
    assert_eq!(m["name"], "lb1");
    let fe = &m["frontends"][0];
    assert_eq!(fe["why"], "primary: 2 of 2 up");
    assert_eq!(fe["pools"][0]["backends"][0]["configured_weight"], 60);
    assert_eq!(m["vpp"]["connected"], true);
    // One maglevd by name; an unknown one is 404.
    let one = f.json("/view/api/state/lb1");
    assert_eq!(one["maglevd"]["name"], "lb1");
    assert_eq!(
        f.request("GET", "/view/api/state/nope", &[], "").status,
        404
    );
    let list = f.json("/view/api/maglevds");
    assert_eq!(list[0]["connected"], true);
    let v = f.json("/view/api/version");
    assert_eq!(v["name"], "maglevd-frontend");
    assert_eq!(f.request("GET", "/healthz", &[], "").body, "ok\n");
    let page = f.request("GET", "/view/", &[], "");
    assert_eq!(page.status, 200);
    for (h, want) in [
        ("content-security-policy", "script-src 'self'"),
        ("content-security-policy", "frame-ancestors 'none'"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert!(
            page.header(h).is_some_and(|v| v.contains(want)),
            "{h}: {:?}",
            page.headers
        );
    }
    assert!(!page.body.contains("<script>"), "no inline script");
    assert_eq!(f.request("POST", "/view/api/state", &[], "").status, 405);

    // The stream: retry hint, headers, then replay from an id.
    let id = s["last_event_id"].as_str().unwrap().to_string();
    let (epoch, seq) = id.split_once('-').unwrap();
    let seq: u64 = seq.parse().unwrap();
    let text = sse(
        f.port,
        "/view/api/events",
        Some(&format!("{epoch}-{}", seq - 1)),
        Duration::from_millis(400),
    );
    assert!(text.contains("text/event-stream"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("x-accel-buffering: no"),
        "{text}"
    );
    assert!(text.contains("retry: "), "{text}");
    assert!(
        text.contains(&format!("id: {id}\n")),
        "the last event is replayed: {text}"
    );
    assert!(!text.contains("event: resync"), "{text}");
    // Another run's id, or one never issued: resync.
    let text = sse(
        f.port,
        "/view/api/events",
        Some("1-1"),
        Duration::from_millis(300),
    );
    assert!(text.contains("event: resync"), "{text}");
    // Log records go to admins only.
    assert!(!text.contains("event: log"), "{text}");
}

#[test]
fn admin_is_closed_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start();
    let a = Daemon::start(dir.path(), "a", backend.port);
    let f = Frontend::start(dir.path(), &a.socket, &[]);
    for path in ["/admin/", "/admin/api/session", "/admin/api/events"] {
        let r = f.request("GET", path, &[("Authorization", "Basic b3BzOnB3")], "");
        assert_eq!(r.status, 404, "{path}");
    }
    assert!(f.log().contains("event=\"admin-disabled\""), "{}", f.log());
    // The read-only side works meanwhile.
    assert_eq!(f.request("GET", "/view/", &[], "").status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_needs_credentials_a_session_a_token_and_the_same_origin() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start();
    let a = Daemon::start(dir.path(), "a", backend.port);
    let f = Frontend::start(
        dir.path(),
        &format!("lb1={}", a.socket),
        &[
            ("MAGLEV_FRONTEND_USER", "ops"),
            ("MAGLEV_FRONTEND_PASSWORD", "pw"),
        ],
    );
    until_state(&f, "programmed", Duration::from_secs(15), both_up);
    // No or wrong credentials: 401 with a challenge.
    let r = f.request("GET", "/admin/", &[], "");
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|v| v.starts_with("Basic")));
    let r = f.request("GET", "/admin/", &[("Authorization", "Basic b3BzOnB4")], "");
    assert_eq!(r.status, 401);
    // Right ones: the page and a session cookie.
    let r = f.request("GET", "/admin/", &[("Authorization", "Basic b3BzOnB3")], "");
    assert_eq!(r.status, 200);
    let cookie = r
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(r.header("set-cookie").unwrap().contains("HttpOnly"));
    let session = f.json_with("/admin/api/session", &cookie);
    let csrf = session["csrf"].as_str().unwrap().to_string();
    let origin = f.url("");
    let body = r#"{"maglevd":"lb1","action":"disable","backend":"s2"}"#;
    let writes_before = a.writes();
    let refused = [
        // No token, a wrong token, no Origin, another origin, GET.
        (
            "POST",
            vec![("Cookie", cookie.as_str()), ("Origin", origin.as_str())],
            403,
        ),
        (
            "POST",
            vec![
                ("Cookie", cookie.as_str()),
                ("Origin", origin.as_str()),
                ("X-CSRF-Token", "00"),
            ],
            403,
        ),
        (
            "POST",
            vec![("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())],
            403,
        ),
        (
            "POST",
            vec![
                ("Cookie", cookie.as_str()),
                ("Origin", "http://evil.example"),
                ("X-CSRF-Token", csrf.as_str()),
            ],
            403,
        ),
        (
            "GET",
            vec![
                ("Cookie", cookie.as_str()),
                ("Origin", origin.as_str()),
                ("X-CSRF-Token", csrf.as_str()),
            ],
            405,
        ),
        // Basic credentials alone (no session yet) cannot carry a token.
        (
            "POST",
            vec![
                ("Authorization", "Basic b3BzOnB3"),
                ("Origin", origin.as_str()),
                ("X-CSRF-Token", csrf.as_str()),
            ],
            403,
        ),
    ];
    for (method, headers, want) in refused {
        let r = f.request(method, "/admin/api/action", &headers, body);
        assert_eq!(r.status, want, "{method} {headers:?}: {}", r.body);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.writes(), writes_before, "a refused action reached VPP");
    let mut c = a.client().await;
    let s2 = c
        .get_backend(maglev_proto::GetBackendRequest { name: "s2".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s2.state, "up", "a refused action changed maglevd");
    // With all of it: done, and VPP hears of it.
    let ok_headers = [
        ("Cookie", cookie.as_str()),
        ("Origin", origin.as_str()),
        ("X-CSRF-Token", csrf.as_str()),
        ("Content-Type", "application/json"),
    ];
    let r = f.request("POST", "/admin/api/action", &ok_headers, body);
    assert_eq!(r.status, 200, "{}", r.body);
    let s = until_state(&f, "s2 disabled on the page", Duration::from_secs(3), |s| {
        s["maglevds"][0]["frontends"][0]["pools"][0]["backends"][1]["state"] == "disabled"
    });
    assert_eq!(
        s["maglevds"][0]["frontends"][0]["pools"][0]["backends"][1]["effective_weight"],
        0
    );
    a.writes_after(
        writes_before.len(),
        "disable reached VPP as weight 0 with a flush",
        |new| {
            new.contains("as_address: Address { af: ADDRESS_IP4, un: AddressUnion([10, 0, 0, 10,")
                && new.contains("weight: 0")
                && new.contains("is_flush: true")
        },
    );
    assert!(
        f.log()
            .contains("event=\"admin-action\" user=ops maglevd=lb1 action=disable backend=s2"),
        "{}",
        f.log()
    );
    // Bad requests are named.
    let r = f.request(
        "POST",
        "/admin/api/action",
        &ok_headers,
        r#"{"maglevd":"lb1","action":"explode","backend":"s2"}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("not one of"), "{}", r.body);
    let r = f.request(
        "POST",
        "/admin/api/action",
        &ok_headers,
        r#"{"maglevd":"lb9","action":"pause","backend":"s2"}"#,
    );
    assert_eq!(r.status, 404);
    let r = f.request(
        "POST",
        "/admin/api/action",
        &ok_headers,
        r#"{"maglevd":"lb1","action":"pause","backend":"nope"}"#,
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let r = f.request("POST", "/admin/api/action", &ok_headers, r#"{"maglevd":"lb1","action":"weight","backend":"s1","frontend":"www","pool":"primary","weight":101}"#);
    assert_eq!(r.status, 400, "{}", r.body);
    // The admin stream carries log records.
    let text = sse_with(
        f.port,
        "/admin/api/events",
        &[
            ("Cookie", &cookie),
            ("Last-Event-ID", &format!("{}-0", session_epoch(&f))),
        ],
        Duration::from_millis(500),
    );
    assert!(text.contains("event: log"), "{text}");
}

fn session_epoch(f: &Frontend) -> String {
    let s = f.json("/view/api/state");
    s["last_event_id"]
        .as_str()
        .unwrap()
        .split('-')
        .next()
        .unwrap()
        .to_string()
}

trait JsonWith {
    fn json_with(&self, path: &str, cookie: &str) -> serde_json::Value;
}

impl JsonWith for Frontend {
    fn json_with(&self, path: &str, cookie: &str) -> serde_json::Value {
        let r = self.request("GET", path, &[("Cookie", cookie)], "");
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }
}

#[test]
fn a_password_hash_works_and_a_bad_one_is_refused_at_start() {
    let mut child = std::process::Command::new(common::frontend_bin())
        .arg("--hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"pw\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("pbkdf2-sha256$"), "{hash}");
    let dir = tempfile::tempdir().unwrap();
    let f = Frontend::start(
        dir.path(),
        "127.0.0.1:1",
        &[
            ("MAGLEV_FRONTEND_USER", "ops"),
            ("MAGLEV_FRONTEND_PASSWORD_HASH", &hash),
        ],
    );
    assert_eq!(
        f.request("GET", "/admin/", &[("Authorization", "Basic b3BzOnB3")], "")
            .status,
        200
    );
    assert_eq!(
        f.request("GET", "/admin/", &[("Authorization", "Basic b3BzOnB4")], "")
            .status,
        401
    );
    let out = std::process::Command::new(common::frontend_bin())
        .args(["--server", "127.0.0.1:1", "--listen", "127.0.0.1:0"])
        .env("MAGLEV_FRONTEND_USER", "ops")
        .env("MAGLEV_FRONTEND_PASSWORD_HASH", "md5$x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("MAGLEV_FRONTEND_PASSWORD_HASH"), "{err}");
}

#[test]
fn a_maglevd_that_is_down_or_dies_holds_up_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start();
    let a = Daemon::start(dir.path(), "a", backend.port);
    let mut b = Daemon::start(dir.path(), "b", backend.port);
    // `gone` never answers (a closed port); lb1 and lb2 work.
    let f = Frontend::start(
        dir.path(),
        &format!("lb1={},gone=127.0.0.1:1,lb2={}", a.socket, b.socket),
        &[],
    );
    let s = until_state(&f, "lb1 and lb2 programmed", Duration::from_secs(15), |s| {
        let m = s["maglevds"].as_array().unwrap();
        [&m[0], &m[2]].iter().all(|m| {
            m["connected"] == true
                && m["frontends"][0]["pools"][0]["backends"][0]["buckets"].as_u64() > Some(0)
        })
    });
    let gone = &s["maglevds"][1];
    assert_eq!(gone["connected"], false);
    assert!(
        gone["error"].as_str().unwrap().contains("refused"),
        "{gone}"
    );
    // lb2 dies: its dot goes red at once (its event stream breaks), lb1
    // keeps following.
    let died = std::time::Instant::now();
    b.kill();
    until_state(&f, "lb2 down", Duration::from_secs(6), |s| {
        s["maglevds"][2]["connected"] == false
    });
    eprintln!("lb2 seen down after {:?}", died.elapsed());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut cl = a.client().await;
        cl.pause_backend(maglev_proto::BackendActionRequest { name: "s2".into() })
            .await
            .unwrap();
    });
    until_state(&f, "lb1 still followed", Duration::from_secs(3), |s| {
        s["maglevds"][0]["frontends"][0]["pools"][0]["backends"][1]["state"] == "paused"
    });
    // SIGHUP changes nothing (a lost terminal must not stop it).
    let pid = f.pid();
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(f.request("GET", "/healthz", &[], "").status, 200);
}
