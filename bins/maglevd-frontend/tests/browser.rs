//! The page in a real browser (headless Chromium over WebDriver) against
//! real maglevds on the simulator: what it shows, how fast it follows a
//! backend dying, admin actions reaching VPP, resync after the dashboard
//! restarts, consistency between two peers, and names that are markup.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Daemon, Frontend};
use maglev_testkit::browser::browser_or_skip;

/// The row of backend `b` as the page shows it.
fn row(b: &str) -> String {
    format!(
        "const r = document.querySelector('details[data-frontend=\"www\"] tr[data-backend=\"{b}\"]');
         if (!r) return null;
         const t = (c) => r.querySelector(c).textContent;
         return {{ state: t('.state'), weight: t('.weight'), effective: t('.effective'),
                  buckets: t('.buckets'), age: t('.age') }};"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_follows_two_maglevds_live() {
    let Some(browser) = browser_or_skip("the_page_follows_two_maglevds_live") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut backend = Backend::start();
    let a = Daemon::start(dir.path(), "a", backend.port);
    let b = Daemon::start(dir.path(), "b", backend.port);
    let mut f = Frontend::start(
        dir.path(),
        &format!("lb1={},lb2={}", a.socket, b.socket),
        &[
            ("MAGLEV_FRONTEND_USER", "ops"),
            ("MAGLEV_FRONTEND_PASSWORD", "pw"),
        ],
    );
    browser.goto(&f.url("/view/"));
    // Tabs with green dots; the card opens on a click.
    browser.wait(
        "both maglevds connected",
        Duration::from_secs(15),
        "return [...document.querySelectorAll('#tabs button .dot.up')].length === 2",
    );
    browser.click("details[data-frontend=\"www\"] > summary");
    let (v, _) = browser.wait(
        "s1 up with its buckets",
        Duration::from_secs(10),
        &format!("const r = (() => {{ {} }})(); return r && r.state === 'up' && r.buckets !== '-' && r.buckets !== '0' ? r : null;", row("s1")),
    );
    assert_eq!(v["weight"], "60");
    assert_eq!(v["effective"], "60");
    let s2 = browser.eval(&row("s2"));
    assert_eq!(
        (s2["state"].as_str(), s2["weight"].as_str()),
        (Some("up"), Some("100"))
    );
    let n: u64 = v["buckets"].as_str().unwrap().parse().unwrap();
    let m: u64 = s2["buckets"].as_str().unwrap().parse().unwrap();
    assert_eq!(n + m, 1024, "every bucket of the 1024-slot table");
    let why = browser
        .eval("return document.querySelector('details[data-frontend=\"www\"] .why').textContent");
    assert_eq!(why, "primary: 2 of 2 up");
    // The description is markup from the config: shown as text, never run.
    let desc = browser.eval(
        "return [document.querySelector('details[data-frontend=\"www\"] .desc').textContent,
                 document.querySelectorAll('main img').length]",
    );
    assert_eq!(desc[0], "<img src=x onerror=alert(1)>");
    assert_eq!(desc[1], 0, "no element was made from a name");
    // Two peers with the same config: the same table.
    browser.wait(
        "consistent",
        Duration::from_secs(5),
        "const b = document.querySelector('#consistency .badge'); return b && b.textContent === 'consistent'",
    );

    // The backend dies: down and weight 0 on the page, without a reload.
    browser.eval("window.__marker = 1; return 1");
    let killed = Instant::now();
    backend.kill();
    let (_, took) = browser.wait(
        "s1 down and 0 within 2 s",
        Duration::from_secs(2),
        &format!(
            "const r = (() => {{ {} }})(); return r && r.state === 'down' && r.effective === '0'",
            row("s1")
        ),
    );
    let took_total = killed.elapsed();
    assert_eq!(
        browser.eval("return window.__marker"),
        1,
        "the page was not reloaded"
    );
    eprintln!("backend killed → page shows down/0 after {took_total:?} (poll {took:?})");
    let icon = browser
        .eval("return document.querySelector('details[data-frontend=\"www\"] .icon').textContent");
    assert_eq!(icon, "⚠️");

    // Both peers see it (each reads VPP's buckets at most once a second).
    browser.wait(
        "consistent after the kill",
        Duration::from_secs(5),
        "const b = document.querySelector('#consistency .badge'); return b && b.textContent === 'consistent'",
    );
    // A weight override on one peer: the page names the divergence, as
    // settling first and diverged once it has lasted 3 s.
    let mut cb = b.client().await;
    cb.set_frontend_pool_backend_weight(maglev_proto::SetWeightRequest {
        frontend: "www".into(),
        pool: "primary".into(),
        backend: "s2".into(),
        weight: 0,
    })
    .await
    .unwrap();
    browser.wait(
        "settling",
        Duration::from_secs(3),
        "const b = document.querySelector('#consistency .badge'); return b && b.textContent === 'settling'",
    );
    let (d, _) = browser.wait(
        "diverged",
        Duration::from_secs(8),
        "const r = document.querySelector('#consistency tr[data-vip]');
         return r && r.querySelector('.badge').textContent === 'diverged' ? r.textContent : null",
    );
    assert!(d.as_str().unwrap().contains("s2 lb1=1024 lb2=0"), "{d}");
    // Back to the same weight: consistent again.
    cb.set_frontend_pool_backend_weight(maglev_proto::SetWeightRequest {
        frontend: "www".into(),
        pool: "primary".into(),
        backend: "s2".into(),
        weight: 100,
    })
    .await
    .unwrap();
    browser.wait(
        "consistent again",
        Duration::from_secs(5),
        "const b = document.querySelector('#consistency .badge'); return b && b.textContent === 'consistent'",
    );

    // The dashboard restarts; meanwhile s2 is paused on lb1. The page
    // reconnects, resyncs, and shows it, still without a reload.
    f.restart();
    let mut ca = a.client().await;
    ca.pause_backend(maglev_proto::BackendActionRequest { name: "s2".into() })
        .await
        .unwrap();
    browser.wait(
        "s2 paused after the restart",
        Duration::from_secs(10),
        &format!(
            "const r = (() => {{ {} }})(); return r && r.state === 'paused'",
            row("s2")
        ),
    );
    assert_eq!(
        browser.eval("return window.__marker"),
        1,
        "the page was not reloaded"
    );
    ca.resume_backend(maglev_proto::BackendActionRequest { name: "s2".into() })
        .await
        .unwrap();

    // The laptop slept: the clock jumps and the watchdog opens a fresh
    // stream and reloads the state instead of trusting the old socket.
    let loads = "return performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/view/api/state')).length";
    let before = browser.eval(loads).as_u64().unwrap();
    browser.eval(
        "window.__realNow = Date.now; Date.now = () => window.__realNow.call(Date) + 60000; return 1",
    );
    browser.wait(
        "the watchdog reloads the state",
        Duration::from_secs(5),
        &format!("return ((() => {{ {loads} }})()) > {before}"),
    );
    browser.eval("Date.now = window.__realNow; return 1");
    assert_eq!(
        browser.eval("return window.__marker"),
        1,
        "the page was not reloaded"
    );

    // Admin without credentials: refused.
    // (A navigation would open the browser's login prompt; ask with fetch.)
    let refused = browser.eval(
        "return fetch('/admin/', { credentials: 'omit' }).then(async (r) => [r.status, r.headers.get('www-authenticate'), await r.text()])",
    );
    assert_eq!(refused[0], 401, "{refused}");
    assert!(
        refused[1].as_str().unwrap_or("").starts_with("Basic"),
        "{refused}"
    );
    assert!(
        !refused[2].as_str().unwrap_or("").contains("<html"),
        "no page without credentials: {refused}"
    );
    // Admin: credentials once, then the page's own buttons.
    let admin = f.url("/admin/").replace("http://", "http://ops:pw@");
    browser.goto(&admin);
    browser.wait(
        "admin page with actions",
        Duration::from_secs(10),
        "return document.querySelectorAll('#tabs button .dot.up').length === 2 && !document.getElementById('log').hidden",
    );
    // Logged in, a request without the session's CSRF token (what a
    // forged form or script on another page would send) changes nothing.
    let before = a.writes().len();
    let status = browser.eval(
        "return fetch(location.origin + '/admin/api/action', { method: 'POST', headers: { 'content-type': 'application/json' },
           body: JSON.stringify({ maglevd: 'lb1', action: 'disable', backend: 's2' }) }).then((r) => r.status)",
    );
    assert_eq!(status, 403);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(a.writes().len(), before, "a refused POST reached VPP");
    // The card's open state is kept in a cookie: it is open already.
    assert_eq!(
        browser.eval("return document.querySelector('details[data-frontend=\"www\"]').open"),
        true
    );
    let before = a.writes().len();
    browser.click(
        "details[data-frontend=\"www\"] tr[data-backend=\"s2\"] button[data-action=\"disable\"]",
    );
    browser.wait(
        "s2 disabled",
        Duration::from_secs(5),
        &format!("const r = (() => {{ {} }})(); return r && r.state === 'disabled' && r.effective === '0'", row("s2")),
    );
    a.writes_after(before, "the disable reached VPP", |new| {
        new.contains("AddressUnion([10, 0, 0, 10,")
            && new.contains("weight: 0")
            && new.contains("is_flush: true")
    });
    browser.click(
        "details[data-frontend=\"www\"] tr[data-backend=\"s2\"] button[data-action=\"enable\"]",
    );
    browser.wait(
        "s2 back",
        Duration::from_secs(5),
        &format!(
            "const r = (() => {{ {} }})(); return r && r.state === 'up' && r.effective === '100'",
            row("s2")
        ),
    );
    // A weight through the page's input.
    browser.type_into(
        "details[data-frontend=\"www\"] tr[data-backend=\"s2\"] input",
        "30",
    );
    browser.click(
        "details[data-frontend=\"www\"] tr[data-backend=\"s2\"] button[data-action=\"weight\"]",
    );
    browser.wait(
        "weight 30",
        Duration::from_secs(5),
        &format!(
            "const r = (() => {{ {} }})(); return r && r.weight === '30*' && r.effective === '30'",
            row("s2")
        ),
    );
    // The event log has the transitions, and pausing it holds the list.
    browser.wait(
        "event log",
        Duration::from_secs(5),
        "return [...document.querySelectorAll('#log-list li')].some((l) => l.textContent.includes('backend s2 enabled') || l.textContent.includes('s2 disabled →'))",
    );
    browser.click("#log-pause");
    assert_eq!(
        browser.eval("return document.getElementById('log-pause').textContent"),
        "resume"
    );

    // The screenshot for docs/dashboard.md.
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&out, png).unwrap();
    eprintln!("screenshot: {}", out.display());
}
