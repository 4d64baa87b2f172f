//! maglevc one-shot against a real maglevd (static backends) and the
//! simulator: text output with colour off, JSON shapes, exit codes.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

mod common;

use common::{free_port, rig};

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn one_shot_commands() {
    let r = rig();
    let o = r.run(&["show", "frontends"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        text(&o),
        "NAME  ADDRESS       PROTOCOL  PORT  STATE  ACTIVE POOL\nwww   203.0.113.80  tcp       443   up     primary\n"
    );
    // Prefixes.
    let o = r.run(&["sh", "ba"]);
    let t = text(&o);
    assert!(
        t.starts_with("NAME  ADDRESS    STATE  ENABLED  CHECK   LAST\n"),
        "{t}"
    );
    assert!(
        t.contains("s1    10.0.0.2   up     true     static  STATIC"),
        "{t}"
    );

    let o = r.run(&["show", "frontend", "www"]);
    let t = text(&o);
    assert!(
        t.contains("  s1              10.0.0.2   up     60      60         392"),
        "{t}"
    );
    assert!(t.contains("primary (active)"), "{t}");

    // The predicted table matches VPP's buckets (392/632 for 60/100 of 1024).
    let t = text(&r.run(&["show", "frontend", "www", "buckets"]));
    assert!(t.contains("s1       10.0.0.2   392      38.3%"), "{t}");
    assert!(t.contains("s2       10.0.0.10  632      61.7%"), "{t}");
    let t = text(&r.run(&["lookup", "frontend", "www", "198.51.100.7:40000"]));
    assert!(
        t.starts_with("198.51.100.7:40000 -> 203.0.113.80:443: slot "),
        "{t}"
    );

    // JSON shape.
    let o = r.run(&["-o", "json", "show", "backend", "s2"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["name"], "s2");
    assert_eq!(v["state"], "up");
    assert_eq!(v["check_type"], "static");
    assert!(v["transitions"].is_array() && v["frontends"][0] == "www");

    // Writes and dry runs.
    let o = r.run(&[
        "set", "frontend", "www", "pool", "primary", "backend", "s1", "weight", "100",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // VPP's state names the protocol as the config does.
    let o = r.run(&["show", "vpp", "lb", "state"]);
    assert!(text(&o).contains("203.0.113.80/32 tcp:443"), "{}", text(&o));
    let o = r.run(&["sync", "vpp", "lb", "state", "--dry-run"]);
    assert_eq!(text(&o), "in sync: nothing to do\n");
    let o = r.run(&["-o", "json", "config", "check"]);
    assert_eq!(o.status.code(), Some(0));
    // A bad file: exit 1 and, with -o json, the whole answer as JSON.
    let good = std::fs::read_to_string(&r.config).unwrap();
    std::fs::write(&r.config, good.replace("10.0.0.2", "0.0.0.0")).unwrap();
    let o = r.run(&["-o", "json", "config", "check"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)));
    assert_eq!(v["ok"], false);
    assert!(
        v["semantic_error"]
            .as_str()
            .unwrap()
            .contains("backends.s1.address"),
        "{v}"
    );
    let o = r.run(&["config", "check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("backends.s1.address"));
    std::fs::write(&r.config, good).unwrap();

    // Exit codes: 1 with the server's message only, 2 for usage.
    let o = r.run(&["show", "backend", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "no such backend: nope\n"
    );
    let o = r.run(&["set", "backend", "s1", "pause"]);
    assert_eq!(o.status.code(), Some(0));
    let o = r.run(&["set", "backend", "s1", "dis"]);
    assert_eq!(o.status.code(), Some(0));
    let o = r.run(&["set", "backend", "s1", "pause"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "s1: backend is disabled; enable it first\n"
    );
    let o = r.run(&["show", "bogus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown word \"bogus\""));
    let o = r.run(&["--output", "yaml", "show", "frontends"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn watch_events_num_3_returns_after_three_events() {
    let r = rig();
    let watcher = r
        .cmd()
        .args(["watch", "events", "num", "3", "backend", "frontend"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        r.run(&["set", "backend", "s1", "disable"]).status.code(),
        Some(0)
    );
    assert_eq!(
        r.run(&["set", "backend", "s1", "enable"]).status.code(),
        Some(0)
    );
    let out = watcher.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["type"], "frontend", "the current state first");
    assert_eq!(
        (&lines[1]["type"], &lines[1]["to"]),
        (&"backend".into(), &"disabled".into())
    );
}

#[test]
fn unreachable_server_is_exit_1() {
    let o = Command::new(env!("CARGO_BIN_EXE_maglevc"))
        .args([
            "--server",
            &format!("127.0.0.1:{}", free_port()),
            "--color",
            "false",
            "show",
            "frontends",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("cannot reach maglevd at 127.0.0.1:"),
        "{err}"
    );
    assert!(
        err.contains("Connection refused"),
        "the cause, not just \"transport error\": {err}"
    );
}

/// Drops SGR colour sequences.
fn uncolour(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("\x1b[") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find('m').expect("SGR ends with m");
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn colour_on_keeps_alignment_and_errors_are_red() {
    let r = rig();
    let mut c = Command::new(env!("CARGO_BIN_EXE_maglevc"));
    let o = c
        .args([
            "--server",
            &r.server,
            "--color",
            "true",
            "show",
            "frontends",
        ])
        .output()
        .unwrap();
    let coloured = text(&o);
    assert_eq!(
        coloured,
        "\x1b[34mNAME\x1b[0m  \x1b[34mADDRESS\x1b[0m       \x1b[34mPROTOCOL\x1b[0m  \x1b[34mPORT\x1b[0m  \x1b[34mSTATE\x1b[0m  \x1b[34mACTIVE POOL\x1b[0m\nwww   203.0.113.80  tcp       443   up     primary\n"
    );
    assert_eq!(uncolour(&coloured), text(&r.run(&["show", "frontends"])));
    for words in [["show", "backend", "s1"], ["show", "frontend", "www"]] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_maglevc"));
        let on = c
            .args(["--server", &r.server, "--color", "true"])
            .args(words)
            .output()
            .unwrap();
        let off = text(&r.run(&words));
        // Lines with an age ("158ms ago") tick between the two runs.
        let strip_times = |s: &str| -> Vec<String> {
            s.lines()
                .map(|l| if l.contains(" ago") { "(age)" } else { l }.to_string())
                .collect()
        };
        assert_eq!(strip_times(&uncolour(&text(&on))), strip_times(&off));
        assert!(text(&on).contains("\x1b[34m"), "labels are coloured");
    }
    let mut c = Command::new(env!("CARGO_BIN_EXE_maglevc"));
    let o = c
        .args([
            "--server", &r.server, "--color", "true", "show", "backend", "nope",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "\x1b[31mno such backend: nope\x1b[0m\n"
    );
}

#[test]
fn commands_piped_into_the_shell() {
    use std::io::Write;
    let r = rig();
    let run = |input: &str| {
        let mut child = r
            .cmd()
            .args(["--history", "none"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let o = run("sh fr\nshow version\n");
    assert_eq!(o.status.code(), Some(0));
    let t = text(&o);
    assert!(
        t.contains("www   203.0.113.80  tcp       443   up     primary\n"),
        "{t}"
    );
    assert!(
        t.contains(&format!("maglevc {}\n", maglev_cli::args::VERSION)),
        "{t}"
    );
    assert!(t.contains(" (commit ") && t.contains(", built 20"), "{t}");
    // A failed command makes the exit code, and the rest still runs.
    let o = run("show backend nope\nsh fr\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("www   203.0.113.80"));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "no such backend: nope\n"
    );
    assert_eq!(run("show nonsense\n").status.code(), Some(2));
}

#[test]
fn bash_completion_offers_words_and_live_names() {
    let r = rig();
    let o = r.run(&["--complete", "set", "backend", ""]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o), "s1\ns2\n");
    assert_eq!(
        text(&r.run(&["--complete", "sh", "ba"])),
        "backend\nbackends\n"
    );
    assert_eq!(
        text(&r.run(&["--complete", "set", "fr", "www", "pool", "p"])),
        "primary\n"
    );
    // maglevd unreachable: keywords still complete, names do not.
    let down = format!("127.0.0.1:{}", free_port());
    let o = Command::new(env!("CARGO_BIN_EXE_maglevc"))
        .args(["--server", &down, "--complete", "set", "b"])
        .output()
        .unwrap();
    assert_eq!(text(&o), "backend\n");

    // The generated script, run by bash itself.
    let dir = tempfile::tempdir().unwrap();
    maglev_cli::dist::write_all(dir.path()).unwrap();
    let script = dir.path().join("completions/maglevc.bash");
    // As bash calls it: COMP_LINE and COMP_POINT for the line, and
    // COMP_WORDS split at COMP_WORDBREAKS (so host:port is three words).
    let complete = |words: &[&str]| -> String {
        let mut line = env!("CARGO_BIN_EXE_maglevc").to_string();
        for w in words {
            line.push(' ');
            line.push_str(w);
        }
        let o = Command::new("bash")
            .arg("-c")
            .arg(
                r#"source "$1"; COMP_LINE="$2"; COMP_POINT=${#COMP_LINE}; read -ra COMP_WORDS <<< "${COMP_LINE//:/ : }"; [[ "$COMP_LINE" == *" " ]] && COMP_WORDS+=(""); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _maglevc; printf '%s\n' "${COMPREPLY[@]}""#,
            )
            .arg("_")
            .arg(&script)
            .arg(&line)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(
        complete(&["--server", &r.server, "set", "backend", ""]),
        "s1\ns2\n"
    );
    assert_eq!(
        complete(&["--server", &r.server, "show", "fr"]),
        "frontend\nfrontends\n"
    );
    assert_eq!(complete(&["--co"]), "--color\n");
    assert_eq!(complete(&["-o", ""]), "text\njson\n");
}
