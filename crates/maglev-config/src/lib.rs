//! Load and validate `maglev.yaml`, the configuration of maglevd.
//!
//! ```no_run
//! match maglev_config::load_file("/etc/vpp-maglev/maglev.yaml") {
//!     Ok(loaded) => {
//!         for w in &loaded.warnings {
//!             eprintln!("warning: {w}");
//!         }
//!         println!("{} frontends", loaded.config.frontends.len());
//!     }
//!     Err(e) => eprintln!("{e}"),
//! }
//! ```
//!
//! Loading has two stages with two error classes ([`ErrorClass`]):
//!
//! 1. **Parse**: the file is read into serde types that mirror the YAML.
//!    I/O errors, YAML syntax, wrong types, malformed scalars (durations,
//!    addresses, enum values), duplicate keys and unknown keys stop here, with
//!    the line and column of the problem.
//! 2. **Semantic**: the parsed file is checked against every rule (references,
//!    ranges, powers of two, address families, VIP overlaps…) and turned into
//!    the domain types of [`model`]. All problems are reported at once, each
//!    with its path below `maglev:` such as
//!    `frontends.www.pools[1].backends.web9`, and its position in the file.
//!
//! Configs written for the Go vpp-maglev load unchanged where their keys are
//! known: Go duration strings, YAML 1.1 booleans (`yes`/`no`) and merge keys
//! are accepted.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod duration;
mod error;
mod goflags;
mod locate;
pub mod model;
mod raw;
mod validate;

use std::path::Path;

pub use duration::{format_duration, parse_duration, DurationError};
pub use error::{Diagnostic, ErrorClass, LoadError, Location, ParseError, SemanticError};
pub use goflags::go_style_args;
pub use model::*;

use locate::SourceIndex;
use raw::RawFile;

/// A valid configuration and the warnings found while checking it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated configuration.
    pub config: Config,
    /// Things that are allowed but probably not meant (an unused backend…).
    pub warnings: Vec<Diagnostic>,
}

/// The largest config file [`load_file`] reads: far above any real config
/// (64,000 backends in 1,000 frontends take about 6 MB).
pub const MAX_FILE_BYTES: u64 = 32 << 20;

/// Reads and validates the config file at `path`.
///
/// Diagnostics name the file as `path` was given. Only a regular file of at
/// most [`MAX_FILE_BYTES`] is read: a FIFO, device or directory is refused
/// before it is opened (reading one could block or never end).
pub fn load_file(path: impl AsRef<Path>) -> Result<Loaded, LoadError> {
    use std::io::Read as _;
    let path = path.as_ref();
    let source_name = path.display().to_string();
    let fail = |message: String| {
        parse_error(
            &source_name,
            Diagnostic {
                path: String::new(),
                message,
                location: None,
            },
        )
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read file: {e}")))?;
    if !meta.is_file() {
        return Err(fail(
            "not a regular file (a FIFO, device or directory cannot be a config)".to_string(),
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(fail(format!(
            "file is {} bytes; the limit is {MAX_FILE_BYTES}",
            meta.len()
        )));
    }
    let mut text = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut text))
        .map_err(|e| fail(format!("cannot read file: {e}")))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(fail(format!(
            "file grew past the limit of {MAX_FILE_BYTES} bytes while read"
        )));
    }
    let text = String::from_utf8(text).map_err(|e| fail(format!("file is not UTF-8 text: {e}")))?;
    load_str(&text, &source_name)
}

/// Validates config text; `source_name` labels the diagnostics (a file name,
/// `<stdin>`, an RPC field…).
pub fn load_str(text: &str, source_name: &str) -> Result<Loaded, LoadError> {
    if text.trim().is_empty() {
        return Err(parse_error(
            source_name,
            Diagnostic {
                path: String::new(),
                message: "file is empty; expected a top-level `maglev:` key".to_string(),
                location: None,
            },
        ));
    }
    let index = SourceIndex::build(text);
    if let Some(at) = index.too_deep {
        return Err(parse_error(
            source_name,
            Diagnostic {
                path: String::new(),
                message: format!(
                    "nested deeper than {} levels of mappings and sequences",
                    locate::MAX_DEPTH
                ),
                location: Some(at),
            },
        ));
    }
    if let Some(dup) = index.duplicates.first() {
        return Err(parse_error(source_name, dup.clone()));
    }
    // A generic pass first: typed deserialization reads lazily and would
    // report a type error in front of a syntax error further down.
    let parse = |e: serde_yaml::Error| parse_error(source_name, serde_diagnostic(&e));
    let mut value: serde_yaml::Value = serde_yaml::from_str(text).map_err(parse)?;
    let raw: RawFile = if index.has_merge_keys {
        // serde_yaml applies `<<` merges only on a Value, which has no
        // positions; files without merge keys keep exact locations.
        value.apply_merge().map_err(parse)?;
        serde_yaml::from_value(value).map_err(parse)?
    } else {
        serde_yaml::from_str(text).map_err(parse)?
    };
    match validate::validate(raw.maglev.unwrap_or_default(), &index) {
        Ok(v) => Ok(Loaded {
            config: v.config,
            warnings: v.warnings,
        }),
        Err(invalid) => Err(LoadError::Semantic(SemanticError {
            source_name: source_name.to_string(),
            errors: invalid.errors,
            warnings: invalid.warnings,
        })),
    }
}

/// What `maglevd --check` prints for a load result: every problem and
/// warning as `file:line:col: level: path: message` (the shape editors jump
/// to), and a one-line verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// One line per error and warning.
    pub lines: Vec<String>,
    /// `file: OK (…)`, `file: parse error` or `file: N semantic errors`.
    pub verdict: String,
    /// The error class, `None` when valid.
    pub class: Option<ErrorClass>,
}

impl CheckReport {
    /// The report of loading `source`.
    pub fn new(source: &str, loaded: &Result<Loaded, LoadError>) -> CheckReport {
        let line = |d: &Diagnostic, level: &str| match d.location {
            Some(l) => format!("{source}:{}:{}: {level}: {d}", l.line, l.column),
            None => format!("{source}: {level}: {d}"),
        };
        match loaded {
            Ok(l) => {
                let c = &l.config;
                CheckReport {
                    lines: l.warnings.iter().map(|w| line(w, "warning")).collect(),
                    verdict: format!(
                        "{source}: OK ({} frontends, {} backends, {} health checks, {} warnings)",
                        c.frontends.len(),
                        c.backends.len(),
                        c.healthchecks.len(),
                        l.warnings.len()
                    ),
                    class: None,
                }
            }
            Err(e) => {
                let mut lines: Vec<String> =
                    e.diagnostics().iter().map(|d| line(d, "error")).collect();
                if let LoadError::Semantic(s) = e {
                    lines.extend(s.warnings.iter().map(|w| line(w, "warning")));
                }
                let n = e.diagnostics().len();
                let verdict = match e.class() {
                    ErrorClass::Parse => format!("{source}: parse error"),
                    ErrorClass::Semantic => {
                        format!(
                            "{source}: {n} semantic error{}",
                            if n == 1 { "" } else { "s" }
                        )
                    }
                };
                CheckReport {
                    lines,
                    verdict,
                    class: Some(e.class()),
                }
            }
        }
    }
}

fn parse_error(source_name: &str, diagnostic: Diagnostic) -> LoadError {
    LoadError::Parse(ParseError {
        source_name: source_name.to_string(),
        diagnostic,
    })
}

/// Splits serde_yaml's "path: message at line L column C" into its parts.
fn serde_diagnostic(e: &serde_yaml::Error) -> Diagnostic {
    let location = e.location().map(|l| Location {
        line: l.line(),
        column: l.column(),
    });
    let mut text = e.to_string();
    if let Some(l) = e.location() {
        // The position is reported separately; libyaml may add a second,
        // "while parsing … at line N" context, which stays in the text.
        let mark = format!(" at line {} column {}", l.line(), l.column());
        text = text.replacen(&mark, "", 1);
    }
    let (path, message) = match text.split_once(": ") {
        Some((p, m)) if p.starts_with("maglev") && !p.contains(' ') => {
            let p = p.strip_prefix("maglev").unwrap_or(p);
            (p.strip_prefix('.').unwrap_or(p).to_string(), m.to_string())
        }
        _ => (String::new(), text),
    };
    Diagnostic {
        path,
        message,
        location,
    }
}
