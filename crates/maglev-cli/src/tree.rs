//! The maglevc command tree: keywords, slots, prefix matching, completion
//! and `?` help. Pure: names for slots come from the caller.
//!
//! A keyword matches by unique prefix, and an exact match wins (`sh ba` is
//! `show backends`). A slot takes any word (a name, a number); when the
//! caller knows the names, completion offers them.

use std::fmt;

/// What a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// A frontend name.
    Frontend,
    /// A backend name.
    Backend,
    /// A pool name.
    Pool,
    /// A health-check name.
    HealthCheck,
    /// A number.
    Number,
    /// A log level.
    LogLevel,
    /// A client address, optionally with `:port`.
    Address,
}

impl Slot {
    fn label(&self) -> &'static str {
        match self {
            Slot::Frontend => "<frontend>",
            Slot::Backend => "<backend>",
            Slot::Pool => "<pool>",
            Slot::HealthCheck => "<healthcheck>",
            Slot::Number => "<number>",
            Slot::LogLevel => "<level>",
            Slot::Address => "<address[:port]>",
        }
    }
}

/// Live names for slot completion.
pub trait Names {
    /// Candidate values of `slot` (empty when unknown). `frontend` is the
    /// frontend named earlier on the line, if any: pools belong to one.
    fn names(&self, slot: Slot, frontend: Option<&str>) -> Vec<String>;
}

/// No names known.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNames;

impl Names for NoNames {
    fn names(&self, slot: Slot, _frontend: Option<&str>) -> Vec<String> {
        match slot {
            Slot::LogLevel => ["debug", "info", "warn", "error"]
                .map(String::from)
                .to_vec(),
            _ => Vec::new(),
        }
    }
}

/// A resolved command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `show version`
    ShowVersion,
    /// `show frontends`
    ShowFrontends,
    /// `show frontend N [buckets]`
    ShowFrontend {
        /// Name.
        name: String,
        /// Show the predicted Maglev table.
        buckets: bool,
    },
    /// `show backends`
    ShowBackends,
    /// `show backend N`
    ShowBackend {
        /// Name.
        name: String,
    },
    /// `show healthchecks`
    ShowHealthChecks,
    /// `show healthcheck N`
    ShowHealthCheck {
        /// Name.
        name: String,
    },
    /// `show vpp info`
    ShowVppInfo,
    /// `show vpp lb state`
    ShowVppLbState,
    /// `show vpp lb counters`
    ShowVppLbCounters,
    /// `sync vpp lb state [N] [--dry-run]`
    SyncVppLbState {
        /// One frontend, or all.
        frontend: Option<String>,
        /// Plan only.
        dry_run: bool,
    },
    /// `set backend N pause|resume|enable|disable`
    SetBackend {
        /// Name.
        name: String,
        /// `pause`, `resume`, `enable` or `disable`.
        action: String,
    },
    /// `set frontend N pool P backend B weight W`
    SetWeight {
        /// Frontend.
        frontend: String,
        /// Pool.
        pool: String,
        /// Backend.
        backend: String,
        /// Weight.
        weight: u32,
    },
    /// `config check`
    ConfigCheck,
    /// `config reload`
    ConfigReload,
    /// `watch events [num N] [log [level L]] [backend] [frontend]`
    WatchEvents {
        /// Stop after this many.
        num: Option<u64>,
        /// Include log records.
        log: bool,
        /// Their level.
        level: Option<String>,
        /// Include backend transitions.
        backend: bool,
        /// Include frontend transitions.
        frontend: bool,
    },
    /// `lookup frontend N SRC[:PORT] [DST-PORT]`
    Lookup {
        /// Frontend.
        frontend: String,
        /// Client address, maybe with port.
        source: String,
        /// Destination port.
        dst_port: Option<u16>,
    },
    /// `quit` / `exit`
    Quit,
}

/// Why words did not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// Nothing typed.
    Empty,
    /// `word` (at `position`) matches none of `expected`.
    Unknown {
        /// The word.
        word: String,
        /// 0-based index.
        position: usize,
        /// What may stand there.
        expected: Vec<String>,
    },
    /// `word` is a prefix of several keywords.
    Ambiguous {
        /// The word.
        word: String,
        /// The keywords it could be.
        candidates: Vec<String>,
    },
    /// The command stops early: something must follow.
    Incomplete {
        /// What may follow.
        expected: Vec<String>,
    },
    /// A slot value is malformed (a number that is not one…).
    Invalid {
        /// The word.
        word: String,
        /// Why.
        why: String,
    },
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::Empty => f.write_str("no command"),
            ResolveError::Unknown { word, expected, .. } => {
                write!(f, "unknown word {word:?}; expected {}", expected.join(", "))
            }
            ResolveError::Ambiguous { word, candidates } => {
                write!(f, "{word:?} is ambiguous: {}", candidates.join(", "))
            }
            ResolveError::Incomplete { expected } => {
                write!(f, "incomplete command; expected {}", expected.join(", "))
            }
            ResolveError::Invalid { word, why } => write!(f, "{word:?}: {why}"),
        }
    }
}

impl std::error::Error for ResolveError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Kw(&'static str),
    Slot(Slot),
}

#[derive(Debug)]
struct Node {
    tok: Tok,
    help: &'static str,
    /// A command may end here.
    leaf: bool,
    /// After a child is consumed, the children are offered again (options).
    options: bool,
    next: Vec<Node>,
}

fn kw(word: &'static str, help: &'static str) -> Node {
    Node {
        tok: Tok::Kw(word),
        help,
        leaf: false,
        options: false,
        next: Vec::new(),
    }
}

fn slot(s: Slot, help: &'static str) -> Node {
    Node {
        tok: Tok::Slot(s),
        help,
        leaf: false,
        options: false,
        next: Vec::new(),
    }
}

impl Node {
    fn leaf(mut self) -> Node {
        self.leaf = true;
        self
    }
    fn options(mut self) -> Node {
        self.options = true;
        self
    }
    fn with(mut self, next: Vec<Node>) -> Node {
        self.next = next;
        self
    }
}

fn tree() -> Vec<Node> {
    use Slot::*;
    vec![
        kw("show", "show state").with(vec![
            kw("version", "maglevc's version").leaf(),
            kw("frontends", "every frontend (or one, by name)")
                .leaf()
                .with(vec![slot(Frontend, "frontend name").leaf().with(vec![kw(
                    "buckets",
                    "the predicted Maglev table",
                )
                .leaf()])]),
            kw("frontend", "one frontend").with(vec![slot(Frontend, "frontend name")
                .leaf()
                .with(vec![kw("buckets", "the predicted Maglev table").leaf()])]),
            kw("backends", "every backend (or one, by name)")
                .leaf()
                .with(vec![slot(Backend, "backend name").leaf()]),
            kw("backend", "one backend").with(vec![slot(Backend, "backend name").leaf()]),
            kw("healthchecks", "every health check (or one, by name)")
                .leaf()
                .with(vec![slot(HealthCheck, "health check name").leaf()]),
            kw("healthcheck", "one health check").with(vec![slot(
                HealthCheck,
                "health check name",
            )
            .leaf()]),
            kw("vpp", "VPP").with(vec![
                kw("info", "the connected VPP").leaf(),
                kw("lb", "VPP's load balancer").with(vec![
                    kw("state", "VIPs and application servers as VPP has them").leaf(),
                    kw("counters", "per-VIP packet counters").leaf(),
                ]),
            ]),
        ]),
        kw("sync", "reconcile VPP").with(vec![kw("vpp", "VPP").with(vec![kw(
            "lb",
            "load balancer",
        )
        .with(vec![kw("state", "sync every VIP, or one frontend's")
            .leaf()
            .options()
            .with(vec![
                slot(Frontend, "only this frontend").leaf(),
                kw("--dry-run", "show the plan, send nothing").leaf(),
            ])])])]),
        kw("set", "change state").with(vec![
            kw("backend", "operator action on a backend").with(vec![slot(Backend, "backend name")
                .with(vec![
                    kw("pause", "stop health checking").leaf(),
                    kw("resume", "restart health checking").leaf(),
                    kw("enable", "put back in service").leaf(),
                    kw("disable", "take out of service (flush)").leaf(),
                ])]),
            kw("frontend", "runtime weight of a pool member").with(vec![slot(
                Frontend,
                "frontend name",
            )
            .with(vec![kw("pool", "pool").with(vec![slot(Pool, "pool name")
                .with(vec![kw("backend", "backend").with(vec![slot(
                    Backend,
                    "backend name",
                )
                .with(vec![
                    kw("weight", "weight").with(vec![slot(Number, "0-100").leaf()])
                ])])])])])]),
        ]),
        kw("config", "the daemon's config").with(vec![
            kw("check", "validate the config file").leaf(),
            kw("reload", "reload it (like SIGHUP)").leaf(),
        ]),
        kw("watch", "stream events").with(vec![kw("events", "events, one JSON object per line")
            .leaf()
            .options()
            .with(vec![
                kw("num", "stop after N events").with(vec![slot(Number, "count").leaf()]),
                kw("log", "log records").leaf(),
                kw("level", "minimum log level").with(vec![slot(LogLevel, "level").leaf()]),
                kw("backend", "backend transitions").leaf(),
                kw("frontend", "frontend transitions").leaf(),
            ])]),
        kw("lookup", "which backend a new flow hits").with(vec![kw("frontend", "frontend").with(
            vec![slot(Frontend, "frontend name").with(vec![slot(
                Address,
                "client address[:port]",
            )
            .leaf()
            .with(vec![slot(Number, "destination port").leaf()])])],
        )]),
        kw("quit", "leave").leaf(),
        kw("exit", "leave").leaf(),
    ]
}

/// What matched: keywords and slot values, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Matched {
    Kw(&'static str),
    Value(Slot, String),
}

fn label(n: &Node) -> String {
    match n.tok {
        Tok::Kw(w) => w.to_string(),
        Tok::Slot(s) => s.label().to_string(),
    }
}

/// Walks `words`; returns what matched, the nodes that may follow, and
/// whether a command may end here.
fn walk<'a>(
    root: &'a [Node],
    words: &[&str],
) -> Result<(Vec<Matched>, Vec<&'a Node>, bool), ResolveError> {
    let mut offer: Vec<&Node> = root.iter().collect();
    let mut matched = Vec::new();
    let mut at_leaf = false;
    // The innermost node whose children are repeatable options.
    let mut options: Option<&Node> = None;
    for (i, word) in words.iter().enumerate() {
        let n = step(&offer, word, i)?;
        matched.push(match n.tok {
            Tok::Kw(w) => Matched::Kw(w),
            Tok::Slot(s) => Matched::Value(s, word.to_string()),
        });
        at_leaf = n.leaf;
        if n.options {
            options = Some(n);
            offer = n.next.iter().collect();
        } else if !n.next.is_empty() {
            offer = n.next.iter().collect();
        } else if let Some(o) = options {
            // An option is done: the options are offered again.
            offer = o.next.iter().collect();
        } else {
            offer = Vec::new();
        }
    }
    Ok((matched, offer, at_leaf))
}

/// Matches `word` among `nodes`: an exact keyword, then a unique keyword
/// prefix, then a slot.
fn step<'a>(nodes: &[&'a Node], word: &str, position: usize) -> Result<&'a Node, ResolveError> {
    if let Some(n) = nodes
        .iter()
        .find(|n| matches!(n.tok, Tok::Kw(w) if w == word))
    {
        return Ok(n);
    }
    let prefixed: Vec<&&Node> = nodes
        .iter()
        .filter(|n| matches!(n.tok, Tok::Kw(w) if w.starts_with(word)))
        .collect();
    match prefixed.as_slice() {
        [one] => return Ok(one),
        [] => {}
        // `backend` and `backends`: one family, the plural form (which
        // also takes a name) stands for both.
        many if many.iter().all(|n| {
            label(n).starts_with(&label(many[0])) || label(many[0]).starts_with(&label(n))
        }) =>
        {
            return Ok(many
                .iter()
                .max_by_key(|n| label(n).len())
                .expect("non-empty"))
        }
        many => {
            return Err(ResolveError::Ambiguous {
                word: word.to_string(),
                candidates: many.iter().map(|n| label(n)).collect(),
            })
        }
    }
    nodes
        .iter()
        .find(|n| matches!(n.tok, Tok::Slot(_)))
        .copied()
        .ok_or_else(|| ResolveError::Unknown {
            word: word.to_string(),
            position,
            expected: nodes.iter().map(|n| label(n)).collect(),
        })
}

fn number(word: &str) -> Result<u64, ResolveError> {
    word.parse().map_err(|_| ResolveError::Invalid {
        word: word.to_string(),
        why: "not a number".to_string(),
    })
}

/// Resolves a command line.
pub fn resolve(words: &[&str]) -> Result<Command, ResolveError> {
    if words.is_empty() {
        return Err(ResolveError::Empty);
    }
    let root = tree();
    let (matched, offer, at_leaf) = walk(&root, words)?;
    if !at_leaf {
        return Err(ResolveError::Incomplete {
            expected: offer.iter().map(|n| label(n)).collect(),
        });
    }
    let kws: Vec<&str> = matched
        .iter()
        .filter_map(|m| match m {
            Matched::Kw(w) => Some(*w),
            Matched::Value(..) => None,
        })
        .collect();
    let values: Vec<&str> = matched
        .iter()
        .filter_map(|m| match m {
            Matched::Value(_, v) => Some(v.as_str()),
            Matched::Kw(_) => None,
        })
        .collect();
    let v = |i: usize| values.get(i).map(|s| s.to_string()).unwrap_or_default();
    Ok(match kws.as_slice() {
        ["show", "version"] => Command::ShowVersion,
        ["show", "frontends"] if values.is_empty() => Command::ShowFrontends,
        ["show", "frontends"] => Command::ShowFrontend {
            name: v(0),
            buckets: false,
        },
        ["show", "frontends", "buckets"] => Command::ShowFrontend {
            name: v(0),
            buckets: true,
        },
        ["show", "frontend"] => Command::ShowFrontend {
            name: v(0),
            buckets: false,
        },
        ["show", "frontend", "buckets"] => Command::ShowFrontend {
            name: v(0),
            buckets: true,
        },
        ["show", "backends"] if values.is_empty() => Command::ShowBackends,
        ["show", "backends"] => Command::ShowBackend { name: v(0) },
        ["show", "backend"] => Command::ShowBackend { name: v(0) },
        ["show", "healthchecks"] if values.is_empty() => Command::ShowHealthChecks,
        ["show", "healthchecks"] => Command::ShowHealthCheck { name: v(0) },
        ["show", "healthcheck"] => Command::ShowHealthCheck { name: v(0) },
        ["show", "vpp", "info"] => Command::ShowVppInfo,
        ["show", "vpp", "lb", "state"] => Command::ShowVppLbState,
        ["show", "vpp", "lb", "counters"] => Command::ShowVppLbCounters,
        ["sync", "vpp", "lb", "state", rest @ ..] => Command::SyncVppLbState {
            frontend: values.first().map(|s| s.to_string()),
            dry_run: rest.contains(&"--dry-run"),
        },
        ["set", "backend", action] => Command::SetBackend {
            name: v(0),
            action: action.to_string(),
        },
        ["set", "frontend", "pool", "backend", "weight"] => {
            let w = number(&v(3))?;
            if w > 100 {
                return Err(ResolveError::Invalid {
                    word: v(3),
                    why: "weight must be 0..100".to_string(),
                });
            }
            Command::SetWeight {
                frontend: v(0),
                pool: v(1),
                backend: v(2),
                weight: w as u32,
            }
        }
        ["config", "check"] => Command::ConfigCheck,
        ["config", "reload"] => Command::ConfigReload,
        ["watch", "events", rest @ ..] => {
            let mut num = None;
            let mut level = None;
            for (i, m) in matched.iter().enumerate() {
                if let Matched::Value(Slot::Number, n) = m {
                    if matched.get(i.wrapping_sub(1)) == Some(&Matched::Kw("num")) {
                        num = Some(number(n)?);
                    }
                }
                if let Matched::Value(Slot::LogLevel, l) = m {
                    level = Some(l.clone());
                }
            }
            Command::WatchEvents {
                num,
                log: rest.contains(&"log") || level.is_some(),
                level,
                backend: rest.contains(&"backend"),
                frontend: rest.contains(&"frontend"),
            }
        }
        ["lookup", "frontend"] => Command::Lookup {
            frontend: v(0),
            source: v(1),
            dst_port: match values.get(2) {
                Some(p) => Some(p.parse().map_err(|_| ResolveError::Invalid {
                    word: p.to_string(),
                    why: "not a port".to_string(),
                })?),
                None => None,
            },
        },
        ["quit"] | ["exit"] => Command::Quit,
        _ => {
            return Err(ResolveError::Incomplete {
                expected: offer.iter().map(|n| label(n)).collect(),
            })
        }
    })
}

/// What may follow `words` (the `?` listing): (word or slot, help).
pub fn help(words: &[&str]) -> Result<Vec<(String, String)>, ResolveError> {
    let root = tree();
    let (_, offer, at_leaf) = walk(&root, words)?;
    let mut out: Vec<(String, String)> = offer
        .iter()
        .map(|n| (label(n), n.help.to_string()))
        .collect();
    if at_leaf && !words.is_empty() {
        out.push(("<enter>".to_string(), "run the command".to_string()));
    }
    Ok(out)
}

/// Completions of `partial` after `words`: keywords by prefix, and slot
/// values from `names`.
pub fn complete(words: &[&str], partial: &str, names: &dyn Names) -> Vec<String> {
    let root = tree();
    let Ok((matched, offer, _)) = walk(&root, words) else {
        return Vec::new();
    };
    let frontend = matched.iter().find_map(|m| match m {
        Matched::Value(Slot::Frontend, v) => Some(v.as_str()),
        _ => None,
    });
    let mut out: Vec<String> = Vec::new();
    for n in offer {
        match n.tok {
            Tok::Kw(w) if w.starts_with(partial) => out.push(w.to_string()),
            Tok::Kw(_) => {}
            Tok::Slot(s) => out.extend(
                names
                    .names(s, frontend)
                    .into_iter()
                    .filter(|v| v.starts_with(partial)),
            ),
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(line: &str) -> Result<Command, ResolveError> {
        resolve(&line.split_whitespace().collect::<Vec<_>>())
    }

    #[test]
    fn prefixes_resolve_and_exact_matches_win() {
        assert_eq!(r("sh ba"), Ok(Command::ShowBackends));
        assert_eq!(
            r("show backend web1"),
            Ok(Command::ShowBackend {
                name: "web1".into()
            })
        );
        // "backend" is exact although "backends" also starts with it.
        assert_eq!(
            r("sh backend web1"),
            Ok(Command::ShowBackend {
                name: "web1".into()
            })
        );
        assert_eq!(r("sh vp l s"), Ok(Command::ShowVppLbState));
        assert_eq!(r("sh vp l c"), Ok(Command::ShowVppLbCounters));
        assert_eq!(r("q"), Ok(Command::Quit));
        assert_eq!(
            r("show frontend www buckets"),
            Ok(Command::ShowFrontend {
                name: "www".into(),
                buckets: true
            })
        );
    }

    #[test]
    fn ambiguity_and_unknown_words_are_named() {
        assert_eq!(
            r("s"),
            Err(ResolveError::Ambiguous {
                word: "s".into(),
                candidates: vec!["show".into(), "sync".into(), "set".into()]
            })
        );
        // backend/backends is one family, not an ambiguity.
        assert_eq!(r("show fr"), Ok(Command::ShowFrontends));
        assert_eq!(
            r("sh ba web1"),
            Ok(Command::ShowBackend {
                name: "web1".into()
            })
        );
        let e = r("show bogus").unwrap_err();
        assert!(
            matches!(&e, ResolveError::Unknown { word, position: 1, .. } if word == "bogus"),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .contains("expected version, frontends, frontend"),
            "{e}"
        );
        let e = r("set backend web1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "incomplete command; expected pause, resume, enable, disable"
        );
        assert_eq!(r(""), Err(ResolveError::Empty));
    }

    #[test]
    fn every_command() {
        assert_eq!(r("show version"), Ok(Command::ShowVersion));
        assert_eq!(
            r("show healthcheck web"),
            Ok(Command::ShowHealthCheck { name: "web".into() })
        );
        assert_eq!(
            r("sync vpp lb state"),
            Ok(Command::SyncVppLbState {
                frontend: None,
                dry_run: false
            })
        );
        assert_eq!(
            r("sync vpp lb state www --dry-run"),
            Ok(Command::SyncVppLbState {
                frontend: Some("www".into()),
                dry_run: true
            })
        );
        assert_eq!(
            r("sync vpp lb state --dry-run"),
            Ok(Command::SyncVppLbState {
                frontend: None,
                dry_run: true
            })
        );
        assert_eq!(
            r("set backend web1 dis"),
            Ok(Command::SetBackend {
                name: "web1".into(),
                action: "disable".into()
            })
        );
        assert_eq!(
            r("set frontend www pool primary backend web1 weight 42"),
            Ok(Command::SetWeight {
                frontend: "www".into(),
                pool: "primary".into(),
                backend: "web1".into(),
                weight: 42
            })
        );
        assert!(matches!(
            r("set frontend www pool p backend b weight 101"),
            Err(ResolveError::Invalid { .. })
        ));
        assert!(matches!(
            r("set frontend www pool p backend b weight x"),
            Err(ResolveError::Invalid { .. })
        ));
        assert_eq!(r("config reload"), Ok(Command::ConfigReload));
        assert_eq!(
            r("watch events num 3 log level debug backend"),
            Ok(Command::WatchEvents {
                num: Some(3),
                log: true,
                level: Some("debug".into()),
                backend: true,
                frontend: false
            })
        );
        assert_eq!(
            r("watch events"),
            Ok(Command::WatchEvents {
                num: None,
                log: false,
                level: None,
                backend: false,
                frontend: false
            })
        );
        assert_eq!(
            r("lookup frontend www 198.51.100.7:40000 443"),
            Ok(Command::Lookup {
                frontend: "www".into(),
                source: "198.51.100.7:40000".into(),
                dst_port: Some(443)
            })
        );
    }

    struct Fixed;
    impl Names for Fixed {
        fn names(&self, slot: Slot, frontend: Option<&str>) -> Vec<String> {
            match (slot, frontend) {
                (Slot::Backend, _) => vec!["web1".into(), "web2".into(), "dns".into()],
                (Slot::Pool, Some("www")) => vec!["primary".into(), "fallback".into()],
                (Slot::Pool, _) => Vec::new(),
                _ => NoNames.names(slot, frontend),
            }
        }
    }

    #[test]
    fn completion_candidates() {
        assert_eq!(complete(&[], "s", &Fixed), ["set", "show", "sync"]);
        assert_eq!(complete(&["show"], "ba", &Fixed), ["backend", "backends"]);
        assert_eq!(complete(&["set", "backend"], "w", &Fixed), ["web1", "web2"]);
        assert_eq!(
            complete(&["set", "backend", "web1"], "", &Fixed),
            ["disable", "enable", "pause", "resume"]
        );
        assert_eq!(
            complete(&["watch", "events", "level"], "d", &Fixed),
            ["debug"]
        );
        assert_eq!(
            complete(&["watch", "events", "log"], "b", &Fixed),
            ["backend"]
        );
        assert!(complete(&["bogus"], "", &Fixed).is_empty());
        // Pools come from the frontend named earlier on the line.
        assert_eq!(
            complete(&["set", "fr", "www", "pool"], "", &Fixed),
            ["fallback", "primary"]
        );
        assert!(complete(&["set", "fr", "api", "pool"], "", &Fixed).is_empty());
    }

    #[test]
    fn question_mark_listing() {
        let h = help(&["show", "vpp"]).unwrap();
        let words: Vec<&str> = h.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(words, ["info", "lb"]);
        let h = help(&["show", "frontend", "www"]).unwrap();
        let words: Vec<&str> = h.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(words, ["buckets", "<enter>"]);
        let h = help(&["set", "frontend"]).unwrap();
        assert_eq!(h[0].0, "<frontend>");
        assert!(help(&["show", "nope"]).is_err());
    }
}
