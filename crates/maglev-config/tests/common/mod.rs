//! Helpers shared by the config tests: a valid base document that each test
//! edits at one path, and assertions on the resulting diagnostics.

#![allow(dead_code)]

use maglev_config::{load_str, Diagnostic, ErrorClass, LoadError, Loaded};
use serde_yaml::Value;

/// A small valid config every semantic test starts from.
pub const BASE: &str = r#"
maglev:
  vpp:
    lb:
      ipv4-src-address: 198.51.100.1
      ipv6-src-address: 2001:db8::1
  healthchecks:
    web:
      type: http
  backends:
    web1: { address: 192.0.2.11, healthcheck: web }
    web2: { address: 192.0.2.12, healthcheck: web }
    web6: { address: 2001:db8:1::6, healthcheck: web }
  frontends:
    www:
      address: 203.0.113.80
      protocol: tcp
      port: 443
      pools:
        - name: primary
          backends:
            web1: {}
        - name: fallback
          backends:
            web2: {}
    www6:
      address: 2001:db8::80
      port: 80
      pools:
        - name: only
          backends:
            web6: {}
"#;

/// One edit of the base document: set `path` to the YAML `value`, or remove
/// it when `value` is `None`.
#[derive(Clone, Copy)]
pub struct Edit<'a>(pub &'a str, pub Option<&'a str>);

/// `set("frontends.www.port", "0")`
pub fn set<'a>(path: &'a str, value: &'a str) -> Edit<'a> {
    Edit(path, Some(value))
}

/// `remove("vpp.lb.ipv4-src-address")`
pub fn remove(path: &str) -> Edit<'_> {
    Edit(path, None)
}

fn segments(path: &str) -> Vec<Result<String, usize>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, rest) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            out.push(Ok(key.to_string()));
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            out.push(Err(idx.trim_end_matches(']').parse().unwrap()));
        }
    }
    out
}

/// The base document with `edits` applied, as YAML text.
pub fn edited(edits: &[Edit<'_>]) -> String {
    let mut doc: Value = serde_yaml::from_str(BASE).unwrap();
    for Edit(path, value) in edits {
        let segs = segments(path);
        let mut node = doc.get_mut("maglev").unwrap();
        for seg in &segs[..segs.len() - 1] {
            node = match seg {
                Ok(key) => {
                    let map = node.as_mapping_mut().expect("mapping on the way");
                    map.entry(Value::from(key.as_str()))
                        .or_insert_with(|| Value::Mapping(Default::default()))
                }
                Err(i) => &mut node.as_sequence_mut().expect("sequence on the way")[*i],
            };
        }
        match (segs.last().unwrap(), value) {
            (Ok(key), Some(v)) => {
                let v: Value = serde_yaml::from_str(v).unwrap();
                node.as_mapping_mut()
                    .unwrap()
                    .insert(Value::from(key.as_str()), v);
            }
            (Ok(key), None) => {
                node.as_mapping_mut().unwrap().remove(key.as_str());
            }
            (Err(i), Some(v)) => {
                node.as_sequence_mut().unwrap()[*i] = serde_yaml::from_str(v).unwrap()
            }
            (Err(i), None) => {
                node.as_sequence_mut().unwrap().remove(*i);
            }
        }
    }
    serde_yaml::to_string(&doc).unwrap()
}

/// Loads the edited base, expecting success.
pub fn load_ok(edits: &[Edit<'_>]) -> Loaded {
    let text = edited(edits);
    load_str(&text, "test.yaml")
        .unwrap_or_else(|e| panic!("expected valid, got:\n{e}\n---\n{text}"))
}

/// Loads the edited base, expecting semantic errors; returns them.
pub fn semantic(edits: &[Edit<'_>]) -> Vec<Diagnostic> {
    let text = edited(edits);
    match load_str(&text, "test.yaml") {
        Err(LoadError::Semantic(e)) => e.errors,
        Err(e) => panic!("expected a semantic error, got a parse error: {e}\n---\n{text}"),
        Ok(_) => panic!("expected a semantic error, config was valid\n---\n{text}"),
    }
}

/// Asserts exactly one semantic error, at `path`, whose message contains `needle`.
pub fn assert_one(edits: &[Edit<'_>], path: &str, needle: &str) {
    let errors = semantic(edits);
    assert_eq!(
        errors.len(),
        1,
        "expected one error at {path}, got: {:#?}",
        errors
    );
    assert_eq!(errors[0].path, path, "{:#?}", errors[0]);
    assert!(
        errors[0].message.contains(needle),
        "message {:?} lacks {needle:?}",
        errors[0].message
    );
    assert!(errors[0].location.is_some(), "no location for {path}");
}

/// Loads raw text expecting a parse error; returns it.
pub fn parse_err(text: &str) -> Diagnostic {
    match load_str(text, "test.yaml") {
        Err(e) => {
            assert_eq!(e.class(), ErrorClass::Parse, "{e}");
            e.diagnostics()[0].clone()
        }
        Ok(_) => panic!("expected a parse error for:\n{text}"),
    }
}
