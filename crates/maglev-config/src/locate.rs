//! Where each key of the YAML file is, so that semantic errors (found long
//! after serde let go of the source) can still name a line and column.
//!
//! A second, event-level pass over the text records the position of every
//! mapping key and sequence item under its dotted path, and catches what
//! serde silently accepts: duplicate keys (the last one would win).

use std::collections::{HashMap, HashSet};

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use crate::error::{Diagnostic, Location};

/// Positions of the keys of one YAML document, by dotted path.
#[derive(Debug, Default)]
pub(crate) struct SourceIndex {
    positions: HashMap<String, Location>,
    /// Keys that appear twice in one mapping.
    pub duplicates: Vec<Diagnostic>,
    /// Whether the file uses YAML merge keys (`<<: *anchor`).
    pub has_merge_keys: bool,
    /// Where the nesting first went deeper than [`MAX_DEPTH`]: the file is
    /// refused before any recursive parser sees it.
    pub too_deep: Option<Location>,
}

/// The deepest nesting of mappings and sequences a config may have (a real
/// one needs about 8). Deeper input would overflow the stack of the YAML
/// parsers, which recurse.
pub(crate) const MAX_DEPTH: usize = 32;

impl SourceIndex {
    /// Indexes `text`. A file the event parser cannot read yields an empty
    /// index; serde reports the syntax error with its own position. The
    /// events are pulled one by one (the parser's own `load` recurses per
    /// level), so any depth is measured without risk.
    pub fn build(text: &str) -> SourceIndex {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        loop {
            match parser.next_token() {
                Ok((Event::StreamEnd, _)) => break,
                Ok((ev, mark)) => {
                    builder.on_event(ev, mark);
                    if builder.stack.len() > MAX_DEPTH {
                        return SourceIndex {
                            too_deep: Some(location(&mark)),
                            ..SourceIndex::default()
                        };
                    }
                }
                // The scanner reads ahead while a flow collection might
                // still turn out to be a key, so `[[[[…` trips its own
                // flow-depth limit before the events get this deep: the
                // same verdict, found as fast.
                Err(e) if e.info() == "recursion limit exceeded" => {
                    return SourceIndex {
                        too_deep: Some(location(e.marker())),
                        ..SourceIndex::default()
                    };
                }
                Err(_) => return SourceIndex::default(),
            }
        }
        builder.index
    }

    /// Position of `path` (relative to `maglev:`), or of its closest
    /// ancestor that exists in the file.
    pub fn locate(&self, path: &str) -> Option<Location> {
        let mut full = if path.is_empty() {
            "maglev".to_string()
        } else {
            format!("maglev.{path}")
        };
        loop {
            if let Some(loc) = self.positions.get(&full) {
                return Some(*loc);
            }
            let cut = full.rfind(['.', '['])?;
            full.truncate(cut);
        }
    }
}

enum Frame {
    Map {
        path: String,
        key: Option<String>,
        seen: HashSet<String>,
        /// A sequence item that is a mapping is located at its first key,
        /// because the parser marks a block mapping's start oddly.
        anchor_item: Option<String>,
    },
    Seq {
        path: String,
        index: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    index: SourceIndex,
}

fn location(mark: &Marker) -> Location {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Location {
        line: mark.line(),
        column: mark.col() + 1,
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Builder {
    fn record(&mut self, path: String, mark: &Marker) {
        self.index.positions.entry(path).or_insert(location(mark));
    }

    /// Path of a value node starting now, recording sequence items.
    fn value_path(&mut self, mark: &Marker, is_mapping: bool) -> (String, bool) {
        match self.stack.last_mut() {
            None => (String::new(), false),
            Some(Frame::Map { path, key, .. }) => {
                (join(path, key.as_deref().unwrap_or("?")), false)
            }
            Some(Frame::Seq { path, index }) => {
                let item = format!("{path}[{index}]");
                if is_mapping {
                    (item, true)
                } else {
                    self.record(item.clone(), mark);
                    (item, false)
                }
            }
        }
    }

    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, .. }) => *key = None,
            Some(Frame::Seq { index, .. }) => *index += 1,
            None => {}
        }
    }

    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) if self.expecting_key() => {
                let Some(Frame::Map {
                    path,
                    key,
                    seen,
                    anchor_item,
                }) = self.stack.last_mut()
                else {
                    return;
                };
                let child = join(path, &value);
                let item = anchor_item.take();
                if value == "<<" {
                    self.index.has_merge_keys = true;
                }
                if !seen.insert(value.clone()) {
                    let first = self.index.positions.get(&child).copied();
                    let rel = child.strip_prefix("maglev.").unwrap_or(&child).to_string();
                    let message = match first {
                        Some(loc) => format!("duplicate key (first defined at line {})", loc.line),
                        None => "duplicate key".to_string(),
                    };
                    self.index.duplicates.push(Diagnostic {
                        path: rel,
                        message,
                        location: Some(location(&mark)),
                    });
                }
                *key = Some(value);
                if let Some(item) = item {
                    self.record(item, &mark);
                }
                self.record(child, &mark);
            }
            Event::Scalar(..) | Event::Alias(_) => {
                self.value_path(&mark, false);
                self.value_done();
            }
            Event::MappingStart(..) => {
                let (path, anchor) = self.value_path(&mark, true);
                self.stack.push(Frame::Map {
                    anchor_item: anchor.then(|| path.clone()),
                    path,
                    key: None,
                    seen: HashSet::new(),
                });
            }
            Event::SequenceStart(..) => {
                let (path, _) = self.value_path(&mark, false);
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "maglev:\n  frontends:\n    www:\n      port: 80\n      pools:\n        - name: a\n          backends:\n            web1: {}\n        - name: b\n";

    #[test]
    fn finds_keys_and_items() {
        let idx = SourceIndex::build(TEXT);
        let at = |p: &str| idx.locate(p).map(|l| (l.line, l.column));
        assert_eq!(at("frontends.www.port"), Some((4, 7)));
        assert_eq!(at("frontends.www.pools[0]"), Some((6, 11)));
        assert_eq!(at("frontends.www.pools[0].backends.web1"), Some((8, 13)));
        assert_eq!(at("frontends.www.pools[1].name"), Some((9, 11)));
        // Missing paths fall back to the closest ancestor.
        assert_eq!(at("frontends.www.address"), Some((3, 5)));
        assert!(idx.duplicates.is_empty());
        assert!(!idx.has_merge_keys);
    }

    #[test]
    fn reports_duplicate_keys() {
        let idx = SourceIndex::build("maglev:\n  backends:\n    a: {}\n    a: {}\n");
        assert_eq!(idx.duplicates.len(), 1);
        let d = &idx.duplicates[0];
        assert_eq!(d.path, "backends.a");
        assert_eq!(d.location, Some(Location { line: 4, column: 5 }));
        assert!(d.message.contains("line 3"), "{}", d.message);
    }

    #[test]
    fn notices_merge_keys() {
        let idx = SourceIndex::build("maglev:\n  x: &d {a: 1}\n  y:\n    <<: *d\n");
        assert!(idx.has_merge_keys);
    }
}
