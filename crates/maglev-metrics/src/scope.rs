//! What one scrape asks for: `/metrics?scope=global,frontend` and how the
//! body may travel (`Accept-Encoding: gzip`).
//!
//! At 64,000 backends the whole body is about 53 MB, nearly all of it
//! per-backend series; scraping the daemon, VPP and per-frontend series
//! every 15 s and the per-backend ones less often is the operator's
//! choice to make, so the default stays everything (as HAProxy's exporter
//! does with its `scope` parameter).

use std::fmt;

/// The groups of families a scrape can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scopes {
    /// The daemon, its probe engine, VPP, gRPC and the process: series
    /// that do not grow with the config.
    pub global: bool,
    /// One or a few series per frontend (state, panic, VIP packets).
    pub frontend: bool,
    /// Series per backend or pool member (state, health, probes,
    /// transitions, weights): nearly all of a large config's body.
    pub backend: bool,
}

impl Scopes {
    /// Everything: what `/metrics` without a `scope` serves.
    pub const ALL: Scopes = Scopes {
        global: true,
        frontend: true,
        backend: true,
    };

    /// The names `scope` takes, in the order they are written.
    pub const NAMES: [&'static str; 3] = ["global", "frontend", "backend"];

    /// The scopes a query string asks for: `scope` repeated or with a
    /// comma-separated list; none means everything.
    pub fn from_query(query: Option<&str>) -> Result<Scopes, QueryError> {
        let Some(query) = query.filter(|q| !q.is_empty()) else {
            return Ok(Scopes::ALL);
        };
        let mut asked = Scopes {
            global: false,
            frontend: false,
            backend: false,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if key != "scope" {
                return Err(QueryError::UnknownParameter(key.to_string()));
            }
            // Prometheus sends `params` percent-encoded: a comma as %2C.
            let value = value.replace("%2C", ",").replace("%2c", ",");
            for word in value.split(',') {
                match word {
                    "global" => asked.global = true,
                    "frontend" => asked.frontend = true,
                    "backend" => asked.backend = true,
                    _ => return Err(QueryError::UnknownScope(word.to_string())),
                }
            }
        }
        Ok(asked)
    }
}

/// A `/metrics` query that names something it does not serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// A parameter other than `scope`.
    UnknownParameter(String),
    /// A `scope` word that is not one of [`Scopes::NAMES`].
    UnknownScope(String),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = Scopes::NAMES.join(", ");
        match self {
            QueryError::UnknownParameter(p) => write!(
                f,
                "/metrics: unknown query parameter {p:?}: the only one is scope ({names})"
            ),
            QueryError::UnknownScope(s) => {
                write!(f, "/metrics?scope=: unknown scope {s:?}: expected {names}")
            }
        }
    }
}

impl std::error::Error for QueryError {}

/// Whether an `Accept-Encoding` header value takes gzip (a `q` of 0
/// refuses it; `*` takes anything).
pub fn accepts_gzip<'a>(values: impl IntoIterator<Item = &'a str>) -> bool {
    values.into_iter().flat_map(|v| v.split(',')).any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_from_queries() {
        assert_eq!(Scopes::from_query(None), Ok(Scopes::ALL));
        assert_eq!(Scopes::from_query(Some("")), Ok(Scopes::ALL));
        let gf = Scopes {
            global: true,
            frontend: true,
            backend: false,
        };
        assert_eq!(Scopes::from_query(Some("scope=global,frontend")), Ok(gf));
        assert_eq!(
            Scopes::from_query(Some("scope=global&scope=frontend")),
            Ok(gf)
        );
        assert_eq!(Scopes::from_query(Some("scope=frontend%2Cglobal")), Ok(gf));
        assert_eq!(
            Scopes::from_query(Some("scope=backend")),
            Ok(Scopes {
                global: false,
                frontend: false,
                backend: true
            })
        );
        assert_eq!(
            Scopes::from_query(Some("scope=global,servers")),
            Err(QueryError::UnknownScope("servers".into()))
        );
        assert_eq!(
            Scopes::from_query(Some("scope=")),
            Err(QueryError::UnknownScope(String::new()))
        );
        assert_eq!(
            Scopes::from_query(Some("name[]=x")),
            Err(QueryError::UnknownParameter("name[]".into()))
        );
        assert_eq!(
            QueryError::UnknownScope("servers".into()).to_string(),
            "/metrics?scope=: unknown scope \"servers\": expected global, frontend, backend"
        );
    }

    #[test]
    fn gzip_when_accepted() {
        // What Prometheus sends.
        assert!(accepts_gzip(["gzip"]));
        assert!(accepts_gzip(["deflate, GZIP;q=0.5"]));
        assert!(accepts_gzip(["br", "gzip"]));
        assert!(accepts_gzip(["*"]));
        assert!(!accepts_gzip(["gzip;q=0"]));
        assert!(!accepts_gzip(["gzip; q=0.0, identity"]));
        assert!(!accepts_gzip(["identity"]));
        assert!(!accepts_gzip(["gzipx"]));
        assert!(!accepts_gzip([]));
    }
}
