//! The two error classes of a config load, and the diagnostics they carry.

use std::fmt;

/// A place in the YAML source, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// Line, starting at 1.
    pub line: usize,
    /// Column, starting at 1.
    pub column: usize,
}

/// One problem (or warning) at one place of the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Dotted path below `maglev:`, e.g. `frontends.www.pools[1].backends.web9`.
    /// Empty when the problem is with the file as a whole.
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
    /// Where in the file, when known.
    pub location: Option<Location>,
}

impl Diagnostic {
    /// Renders the diagnostic prefixed with the file name and position, like
    /// a compiler: `maglev.yaml:12:7: frontends.www.port: ...`.
    pub fn display_in<'a>(&'a self, source: &'a str) -> impl fmt::Display + 'a {
        DisplayIn { diag: self, source }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

struct DisplayIn<'a> {
    diag: &'a Diagnostic,
    source: &'a str,
}

impl fmt::Display for DisplayIn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.diag.location {
            Some(loc) => write!(
                f,
                "{}:{}:{}: {}",
                self.source, loc.line, loc.column, self.diag
            ),
            None => write!(f, "{}: {}", self.source, self.diag),
        }
    }
}

/// Which of the two classes an error belongs to. The class decides the
/// `maglevd --check` exit code (1 parse, 2 semantic) and which field of the
/// `CheckConfig`/`ReloadConfig` reply carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The file could not be read into the schema.
    Parse,
    /// The file has the right shape but breaks a rule.
    Semantic,
}

/// The file could not be read into the schema: I/O error, YAML syntax, wrong
/// type, malformed scalar (duration, address, enum value), duplicate or
/// unknown key. Parsing stops at the first such problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// File name (or other label) of the source.
    pub source_name: String,
    /// The problem.
    pub diagnostic: Diagnostic,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.diagnostic.display_in(&self.source_name).fmt(f)
    }
}

impl std::error::Error for ParseError {}

/// The file parsed but breaks one or more rules. Holds every problem found,
/// in file order, and the warnings found alongside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemanticError {
    /// File name (or other label) of the source.
    pub source_name: String,
    /// All problems, at least one.
    pub errors: Vec<Diagnostic>,
    /// Warnings found in the same pass.
    pub warnings: Vec<Diagnostic>,
}

impl fmt::Display for SemanticError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            e.display_in(&self.source_name).fmt(f)?;
        }
        Ok(())
    }
}

impl std::error::Error for SemanticError {}

/// Why a config could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// See [`ParseError`].
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// See [`SemanticError`].
    #[error("{0}")]
    Semantic(#[from] SemanticError),
}

impl LoadError {
    /// The error class.
    pub fn class(&self) -> ErrorClass {
        match self {
            LoadError::Parse(_) => ErrorClass::Parse,
            LoadError::Semantic(_) => ErrorClass::Semantic,
        }
    }

    /// Every diagnostic, one per problem.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            LoadError::Parse(e) => std::slice::from_ref(&e.diagnostic),
            LoadError::Semantic(e) => &e.errors,
        }
    }
}
