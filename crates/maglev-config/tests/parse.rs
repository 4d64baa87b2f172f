//! Parse errors: the file cannot be read into the schema. Each carries the
//! line and column of the problem and never reaches semantic validation.

mod common;

use common::parse_err;
use maglev_config::{load_file, ErrorClass, Location};

fn at(line: usize, column: usize) -> Option<Location> {
    Some(Location { line, column })
}

#[test]
fn yaml_syntax_error_has_position() {
    let d = parse_err("maglev:\n  backends:\n    a: b: c\n  frontends: {}\n");
    assert_eq!(d.location.map(|l| l.line), Some(3), "{d:?}");
    assert!(
        d.message.contains("mapping values are not allowed"),
        "{}",
        d.message
    );
}

#[test]
fn unknown_key_is_a_parse_error() {
    let d = parse_err("maglev:\n  backends:\n    a:\n      adress: 192.0.2.1\n");
    assert_eq!(d.path, "backends.a");
    assert!(
        d.message.contains("unknown field `adress`"),
        "{}",
        d.message
    );
    assert!(
        d.message.contains("`address`"),
        "suggests the known keys: {}",
        d.message
    );
    assert_eq!(d.location, at(4, 7));
}

#[test]
fn unknown_top_level_key() {
    let d = parse_err("maglev: {}\nextra: 1\n");
    assert!(d.message.contains("unknown field `extra`"), "{}", d.message);
    assert_eq!(d.location.map(|l| l.line), Some(2));
}

#[test]
fn unknown_section() {
    let d = parse_err("maglev:\n  frontend: {}\n");
    assert!(
        d.message.contains("unknown field `frontend`"),
        "{}",
        d.message
    );
    assert_eq!(d.location, at(2, 3));
}

#[test]
fn wrong_type() {
    let d = parse_err("maglev:\n  healthchecks:\n    web:\n      type: http\n      rise: two\n");
    assert_eq!(d.path, "healthchecks.web.rise");
    assert!(d.message.contains("invalid type"), "{}", d.message);
    assert_eq!(d.location, at(5, 13));
}

#[test]
fn bad_duration() {
    let d = parse_err("maglev:\n  vpp:\n    lb:\n      sync-interval: 30 seconds\n");
    assert_eq!(d.path, "vpp.lb.sync-interval");
    assert!(d.message.contains("invalid duration"), "{}", d.message);
    assert_eq!(d.location.map(|l| l.line), Some(4));
}

#[test]
fn bare_number_duration_is_rejected_except_zero() {
    let d = parse_err("maglev:\n  vpp:\n    lb:\n      sync-interval: 30\n");
    assert!(d.message.contains("add a unit"), "{}", d.message);
}

#[test]
fn bad_address() {
    let d = parse_err("maglev:\n  backends:\n    a: { address: 192.0.2.300 }\n");
    assert_eq!(d.path, "backends.a.address");
    assert_eq!(d.location.map(|l| l.line), Some(3));
}

#[test]
fn bad_enum_value() {
    let d = parse_err("maglev:\n  healthchecks:\n    web: { type: gopher }\n");
    assert!(
        d.message.contains("unknown variant `gopher`"),
        "{}",
        d.message
    );
    assert!(
        d.message.contains("`http`, `https`, `tcp`, `icmp`"),
        "{}",
        d.message
    );
    assert_eq!(d.location.map(|l| l.line), Some(3));
    let d = parse_err("maglev:\n  frontends:\n    www: { protocol: sctp }\n");
    assert!(d.message.contains("`tcp`, `udp`, `any`"), "{}", d.message);
    assert_eq!(d.path, "frontends.www.protocol");
}

#[test]
fn duplicate_key() {
    let d = parse_err(
        "maglev:\n  backends:\n    a: { address: 192.0.2.1 }\n    a: { address: 192.0.2.2 }\n",
    );
    assert_eq!(d.path, "backends.a");
    assert!(
        d.message
            .contains("duplicate key (first defined at line 3)"),
        "{}",
        d.message
    );
    assert_eq!(d.location, at(4, 5));
}

#[test]
fn missing_required_key_is_a_parse_error() {
    let d = parse_err("maglev:\n  healthchecks:\n    web: { port: 80 }\n");
    assert!(d.message.contains("missing field `type`"), "{}", d.message);
    assert_eq!(d.path, "healthchecks.web");
}

#[test]
fn not_a_mapping() {
    let d = parse_err("- just\n- a list\n");
    assert!(d.message.contains("single key `maglev`"), "{}", d.message);
    let d = parse_err("maglev:\n  backends: [a, b]\n");
    assert_eq!(d.path, "backends");
}

#[test]
fn maglev_key_required() {
    let d = parse_err("frontends: {}\n");
    assert!(
        d.message.contains("unknown field `frontends`"),
        "{}",
        d.message
    );
    let d = parse_err("# only a comment\n{}\n");
    assert!(
        d.message.contains("missing field `maglev`"),
        "{}",
        d.message
    );
}

#[test]
fn empty_file() {
    let d = parse_err("\n  \n");
    assert!(d.message.contains("empty"), "{}", d.message);
    let d = parse_err("\n# nothing but a comment\n");
    assert!(
        d.message.contains("missing field `maglev`"),
        "{}",
        d.message
    );
}

#[test]
fn unreadable_file() {
    let err = load_file("/nonexistent/maglev.yaml").unwrap_err();
    assert_eq!(err.class(), ErrorClass::Parse);
    assert!(err.to_string().contains("cannot read file"), "{err}");
    assert!(
        err.to_string().starts_with("/nonexistent/maglev.yaml: "),
        "{err}"
    );
}

#[test]
fn only_regular_files_of_bounded_size_are_read() {
    let dir = tempfile::tempdir().unwrap();
    // A FIFO would block the reader forever: refused without opening it.
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let err = load_file(&fifo).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    let err = load_file(dir.path()).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    // Past the limit: refused by size, not read.
    let big = dir.path().join("big.yaml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(maglev_config::MAX_FILE_BYTES + 1).unwrap();
    let err = load_file(&big).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Parse);
    assert!(err.to_string().contains("the limit is"), "{err}");
}

#[test]
fn deep_nesting_is_a_parse_error_not_a_stack_overflow() {
    // `maglev:` then 5,000 nested block sequences used to abort the
    // process (exit 134) in --check, at start, on reload and in CheckConfig.
    let text = format!("maglev:\n  {}\n", "- ".repeat(5000));
    let err = maglev_config::load_str(&text, "deep.yaml").unwrap_err();
    assert_eq!(err.class(), ErrorClass::Parse);
    assert!(err.to_string().contains("nested deeper than 32"), "{err}");
    let text = format!(
        "maglev:\n  backends: {}1{}\n",
        "{a: ".repeat(5000),
        "}".repeat(5000)
    );
    let err = maglev_config::load_str(&text, "deep.yaml").unwrap_err();
    assert_eq!(err.class(), ErrorClass::Parse);
}

#[test]
fn not_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.yaml");
    std::fs::write(&path, b"maglev:\n  x: \xff\xfe\n").unwrap();
    let err = load_file(&path).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Parse);
    assert!(err.to_string().contains("UTF-8"), "{err}");
}

#[test]
fn display_names_file_line_and_column() {
    let err = maglev_config::load_str("maglev:\n  bogus: 1\n", "etc/maglev.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "etc/maglev.yaml:2:3: unknown field `bogus`, expected one of `healthchecker`, `vpp`, `healthchecks`, `backends`, `frontends`"
    );
}

#[test]
fn deep_flow_sequences_are_refused_as_too_deep() {
    // `[[[[…` 60,000 deep (120 KB): the event pass used to give up on the
    // scanner's own flow limit and hand the text to serde_yaml, whose
    // scanner is quadratic in flow depth (15 s) before its recursion
    // limit. Now it is the nesting error, at the line of the nesting.
    let text = format!("maglev: {}{}\n", "[".repeat(60_000), "]".repeat(60_000));
    let err = maglev_config::load_str(&text, "deep.yaml").unwrap_err();
    assert_eq!(err.class(), ErrorClass::Parse);
    let msg = err.to_string();
    assert!(msg.contains("nested deeper than 32"), "{msg}");
    assert!(msg.contains("deep.yaml:1:"), "{msg}");
}
