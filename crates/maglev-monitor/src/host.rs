//! The host's fully-qualified name for the header, like `hostname -f`:
//! the host name, then its canonical name from the resolver.

use std::time::Duration;

/// The FQDN, or the plain host name when the resolver does not answer
/// within `timeout` (a drill is no time to wait for DNS).
pub async fn fqdn(timeout: Duration) -> String {
    let short = dns_lookup::get_hostname().unwrap_or_else(|_| "localhost".to_string());
    let lookup = {
        let short = short.clone();
        tokio::task::spawn_blocking(move || canonical(&short))
    };
    match tokio::time::timeout(timeout, lookup).await {
        Ok(Ok(Some(name))) => name,
        _ => short,
    }
}

fn canonical(host: &str) -> Option<String> {
    let hints = dns_lookup::AddrInfoHints {
        flags: AI_CANONNAME,
        ..Default::default()
    };
    let mut it = dns_lookup::getaddrinfo(Some(host), None, Some(hints)).ok()?;
    it.find_map(|ai| ai.ok().and_then(|ai| ai.canonname))
        .filter(|n| !n.is_empty())
}

/// `AI_CANONNAME` (2 on Linux and the BSDs; dns-lookup does not export it).
const AI_CANONNAME: i32 = 2;
