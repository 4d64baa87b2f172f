//! Live names fetched in one go, for completion: the shell's Tab and
//! `maglevc --complete` (which the bash completion script calls).

use std::collections::BTreeMap;
use std::time::Duration;

use maglev_proto as pb;
use maglev_proto::maglev_client::MaglevClient;
use tonic::transport::Channel;

use crate::run::connect;
use crate::tree::{complete, Names, NoNames, Slot};

/// Frontends (with their pools), backends and health checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    /// Frontend name → its pools.
    pub frontends: BTreeMap<String, Vec<String>>,
    /// Backend names.
    pub backends: Vec<String>,
    /// Health-check names.
    pub healthchecks: Vec<String>,
}

impl Names for Fetched {
    fn names(&self, slot: Slot, frontend: Option<&str>) -> Vec<String> {
        match slot {
            Slot::Frontend => self.frontends.keys().cloned().collect(),
            Slot::Pool => frontend
                .and_then(|f| self.frontends.get(f))
                .cloned()
                .unwrap_or_default(),
            Slot::Backend => self.backends.clone(),
            Slot::HealthCheck => self.healthchecks.clone(),
            _ => NoNames.names(slot, frontend),
        }
    }
}

/// Asks maglevd for every name over `client`; a list it cannot get stays
/// empty (completion then offers keywords only).
pub async fn fetch_from(c: &mut MaglevClient<Channel>) -> Fetched {
    let mut out = Fetched::default();
    if let Ok(r) = c.list_frontends(pb::ListFrontendsRequest {}).await {
        out.frontends = r
            .into_inner()
            .frontends
            .into_iter()
            .map(|f| (f.name, f.pools.into_iter().map(|p| p.name).collect()))
            .collect();
    }
    if let Ok(r) = c.list_backends(pb::ListBackendsRequest {}).await {
        out.backends = r
            .into_inner()
            .backends
            .into_iter()
            .map(|b| b.name)
            .collect();
    }
    if let Ok(r) = c.list_health_checks(pb::ListHealthChecksRequest {}).await {
        out.healthchecks = r
            .into_inner()
            .healthchecks
            .into_iter()
            .map(|h| h.name)
            .collect();
    }
    out
}

/// Connects to maglevd at `server` and fetches every name, within `limit`.
pub async fn fetch(server: &crate::run::Server, limit: Duration) -> Fetched {
    let work = async {
        match connect(server).await {
            Ok(mut c) => fetch_from(&mut c).await,
            Err(_) => Fetched::default(),
        }
    };
    tokio::time::timeout(limit, work).await.unwrap_or_default()
}

/// Candidates for the last of `words` (the word being typed, possibly
/// empty) after the others.
pub fn candidates(words: &[String], names: &dyn Names) -> Vec<String> {
    let (partial, prior) = match words.split_last() {
        Some((last, prior)) => (last.as_str(), prior),
        None => ("", &[][..]),
    };
    let prior: Vec<&str> = prior.iter().map(String::as_str).collect();
    complete(&prior, partial, names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_from_fetched_names() {
        let f = Fetched {
            frontends: [(
                "www".to_string(),
                vec!["primary".to_string(), "fallback".to_string()],
            )]
            .into_iter()
            .collect(),
            backends: vec!["s1".into(), "s2".into()],
            healthchecks: vec!["web".into()],
        };
        let w = |s: &[&str]| -> Vec<String> { s.iter().map(|x| x.to_string()).collect() };
        assert_eq!(candidates(&w(&["sh", "ba"]), &f), ["backend", "backends"]);
        assert_eq!(candidates(&w(&["set", "backend", ""]), &f), ["s1", "s2"]);
        assert_eq!(
            candidates(&w(&["set", "frontend", "www", "pool", ""]), &f),
            ["fallback", "primary"]
        );
        assert_eq!(candidates(&w(&["show", "healthcheck", "w"]), &f), ["web"]);
        assert_eq!(
            candidates(&[], &f),
            ["config", "exit", "lookup", "quit", "set", "show", "sync", "watch"]
        );
    }
}
