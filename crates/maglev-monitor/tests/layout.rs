//! The screen with fixed data, drawn on ratatui's TestBackend at 80×24 and
//! 200×60, with colour on and off.

use std::time::{Duration, UNIX_EPOCH};

use maglev_monitor::stats::Class;
use maglev_monitor::view::{ErrorLine, Row, TallyRow};
use maglev_monitor::{render, Theme, Ui, View};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};
use ratatui::Terminal;

fn row(name: &str, addr: &str, kind: &str, ok: f64, n: u64, fail: u64, last: &str) -> Row {
    Row {
        name: name.into(),
        address: addr.into(),
        kind: kind.into(),
        ok: Some(ok),
        p50: "0.4ms".into(),
        p95: "1.2ms".into(),
        p99: "3.1ms".into(),
        max: "12ms".into(),
        n,
        fail,
        last: last.into(),
        last_ok: fail == 0,
    }
}

fn view(errors: usize) -> View {
    View {
        host: "lb1.example.net".into(),
        uptime: Duration::from_secs(630),
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(2),
        paused: false,
        rows: vec![
            row("www", "203.0.113.80:443", "https", 100.0, 6300, 0, "204"),
            row("api", "[2001:db8::80]:443", "https", 97.0, 6290, 3, "503"),
            row("smtp", "203.0.113.25:25", "tcp", 100.0, 6310, 0, "ok"),
        ],
        tallies: vec![
            TallyRow {
                name: "www".into(),
                entries: vec![
                    ("nginx0".into(), 3150, true),
                    ("nginx1".into(), 3150, false),
                ],
            },
            TallyRow {
                name: "api".into(),
                entries: vec![("api0".into(), 6287, true)],
            },
            TallyRow {
                name: "smtp".into(),
                entries: vec![],
            },
        ],
        errors: (0..errors)
            .map(|i| ErrorLine {
                at: UNIX_EPOCH + Duration::from_millis(1_795_000_000_000 + 100 * i as u64),
                vip: "api".into(),
                class: [Class::HttpErr, Class::Timeout, Class::NetErr, Class::Spike][i % 4],
                detail: format!("detail {i}"),
                count: 1 + (i % 2) as u64,
            })
            .collect(),
    }
}

fn draw(w: u16, h: u16, v: &View, color: bool) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    let mut ui = Ui::default();
    t.draw(|f| render(f, v, &mut ui, Theme { color }, "X-IPng-Frontend"))
        .unwrap();
    t.backend().buffer().clone()
}

fn lines(b: &Buffer) -> Vec<String> {
    let a = b.area;
    (0..a.height)
        .map(|y| {
            (0..a.width)
                .map(|x| b[(x, y)].symbol().to_string())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect()
}

#[test]
fn layout_80x24() {
    let b = draw(80, 24, &view(30), true);
    let got = lines(&b);
    let want = [
        "maglevt  lb1.example.net  up 10m30s  3 VIPs  every 100ms ±10%  timeout 2s",
        " VIPs ──────────────────────────────────────────────────────────────────────────",
        "NAME ADDRESS              OK%   P50   P95   P99   MAX       N  FAIL LAST",
        "www  203.0.113.80:443   100.0 0.4ms 1.2ms 3.1ms  12ms    6300     0 204",
        "api  [2001:db8::80]:443  97.0 0.4ms 1.2ms 3.1ms  12ms    6290     3 503",
        "smtp 203.0.113.25:25    100.0 0.4ms 1.2ms 3.1ms  12ms    6310     0 ok",
        " Answered by (X-IPng-Frontend) ─────────────────────────────────────────────────",
        "www   nginx0 3150 50%  nginx1 3150 50%",
        "api   api0 6287 100%",
        "smtp -",
        " Errors (30), newest first ─────────────────────────────────────────────────────",
    ];
    assert_eq!(&got[..want.len()], &want[..], "\n{}", got.join("\n"));
    // The error panel takes every remaining line but the hint.
    for (i, l) in got[want.len()..23].iter().enumerate() {
        assert!(l.contains(&format!("detail {i}")), "line {i}: {l}");
    }
    assert!(
        got[11] == "11:06:40.000 api http-err detail 0",
        "{}",
        got[11]
    );
    assert!(got[12].ends_with("detail 1 x2"), "{}", got[12]);
    assert_eq!(
        got[23],
        "q quit  p pause  r reset  Up/Down VIPs  PgUp/PgDn errors"
    );
    // Active tally values are bright, drained ones grey.
    let cell = |x: u16, y: u16| b[(x, y)].clone();
    let nginx0 = cell(6, 7);
    assert_eq!(nginx0.symbol(), "n");
    assert_eq!(nginx0.fg, Color::Indexed(15));
    assert!(nginx0.modifier.contains(Modifier::BOLD));
    let nginx1 = cell(23, 7);
    assert_eq!(nginx1.symbol(), "n");
    assert_eq!(nginx1.fg, Color::Indexed(244));
}

#[test]
fn layout_200x60_shows_the_kind_and_the_whole_address() {
    let b = draw(200, 60, &view(100), true);
    let got = lines(&b);
    assert_eq!(
        got[2],
        "NAME ADDRESS            KIND    OK%   P50   P95   P99   MAX       N  FAIL LAST"
    );
    assert!(
        got[4].starts_with("api  [2001:db8::80]:443 https  97.0"),
        "{}",
        got[4]
    );
    assert!(got[10].starts_with(" Errors (100), newest first"));
    // 60 lines: header, 4 table, 4 tally, error title, 48 errors, hint.
    assert!(got[11].contains("detail 0"));
    assert!(got[58].contains("detail 47"), "{}", got[58]);
    assert!(got[59].starts_with("q quit"));
}

#[test]
fn no_color_means_no_colour_but_drained_is_still_dim() {
    let b = draw(80, 24, &view(5), false);
    for y in 0..24 {
        for x in 0..80 {
            let c = &b[(x, y)];
            assert_eq!((c.fg, c.bg), (Color::Reset, Color::Reset), "({x},{y})");
        }
    }
    assert!(b[(23, 7)].modifier.contains(Modifier::DIM), "drained");
    assert!(b[(6, 7)].modifier.contains(Modifier::BOLD), "active");
}

#[test]
fn paused_scrolled_and_tiny_screens() {
    let mut v = view(3);
    v.paused = true;
    v.rows = (0..40)
        .map(|i| {
            row(
                &format!("vip{i:02}"),
                "192.0.2.1:80",
                "http",
                100.0,
                1,
                0,
                "200",
            )
        })
        .collect();
    v.tallies = Vec::new();
    let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let mut ui = Ui {
        vip_offset: 1000,
        error_offset: 1000,
    };
    t.draw(|f| render(f, &v, &mut ui, Theme { color: true }, "H"))
        .unwrap();
    let got = lines(t.backend().buffer());
    assert!(got[0].contains("PAUSED"), "{}", got[0]);
    // Scrolled to the end: the last VIP is on screen, the offset clamped.
    assert!(
        got.iter().any(|l| l.starts_with("vip39")),
        "{}",
        got.join("\n")
    );
    assert!(ui.vip_offset < 40);
    assert_eq!(ui.error_offset, 0, "three errors fit");
    // Nothing panics on a very small terminal.
    for (w, h) in [(10, 3), (1, 1), (80, 5)] {
        draw(w, h, &view(10), true);
    }
}
