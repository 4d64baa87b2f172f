//! The YAML file as written: serde types that mirror `maglev.yaml` key for key.
//!
//! Nothing here is validated beyond "has the right shape"; that is the job of
//! `validate`, which turns these into the domain types of `model`. Keeping the
//! two apart means the rest of the workspace never sees an `Option` that
//! validation already resolved, and the file format can grow aliases without
//! touching the domain.
//!
//! Numbers that have a range are read as `i64` so that an out-of-range value
//! becomes a semantic error with a clear message, not a type error.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::duration::parse_duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(expecting = "a mapping with the single key `maglev`")]
pub(crate) struct RawFile {
    // `deserialize_with` makes the key required (serde fills a missing plain
    // `Option` with `None`) while `maglev:` with nothing under it still loads.
    #[serde(deserialize_with = "present_or_null")]
    pub maglev: Option<RawMaglev>,
}

fn present_or_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(deserializer)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[serde(
    expecting = "a mapping of maglev sections (healthchecker, vpp, healthchecks, backends, frontends)"
)]
pub(crate) struct RawMaglev {
    pub healthchecker: Option<RawHealthChecker>,
    pub vpp: Option<RawVpp>,
    pub healthchecks: Option<BTreeMap<String, RawHealthCheck>>,
    pub backends: Option<BTreeMap<String, RawBackend>>,
    pub frontends: Option<BTreeMap<String, RawFrontend>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[serde(expecting = "a mapping of health-checker settings")]
pub(crate) struct RawHealthChecker {
    pub transition_history: Option<i64>,
    pub netns: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[serde(expecting = "a mapping with the key `lb`")]
pub(crate) struct RawVpp {
    pub lb: Option<RawLb>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[serde(expecting = "a mapping of VPP lb settings")]
pub(crate) struct RawLb {
    pub ipv4_src_address: Option<IpAddr>,
    pub ipv6_src_address: Option<IpAddr>,
    pub sync_interval: Option<RawDuration>,
    pub sticky_buckets_per_core: Option<i64>,
    pub flow_timeout: Option<RawDuration>,
    pub startup_min_delay: Option<RawDuration>,
    pub startup_max_delay: Option<RawDuration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawCheckType {
    Http,
    Https,
    Tcp,
    Icmp,
    Grpc,
}

impl<'de> Deserialize<'de> for RawCheckType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use RawCheckType::*;
        let i = keyword(deserializer, &["http", "https", "tcp", "icmp", "grpc"])?;
        Ok([Http, Https, Tcp, Icmp, Grpc][i])
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[serde(expecting = "a health check mapping with at least `type`")]
pub(crate) struct RawHealthCheck {
    #[serde(rename = "type")]
    pub kind: RawCheckType,
    pub port: Option<i64>,
    pub interval: Option<RawDuration>,
    pub fast_interval: Option<RawDuration>,
    pub down_interval: Option<RawDuration>,
    pub timeout: Option<RawDuration>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
    pub params: Option<RawParams>,
    pub grpc: Option<RawGrpc>,
    pub flap: Option<RawFlap>,
    pub agent: Option<RawAgent>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[serde(expecting = "a mapping with `port` and optionally `interval` and `send`")]
pub(crate) struct RawAgent {
    pub port: Option<i64>,
    pub interval: Option<RawDuration>,
    pub send: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[serde(expecting = "a mapping with `max-transitions`, `window` and `hold-down`")]
pub(crate) struct RawFlap {
    pub max_transitions: Option<i64>,
    pub window: Option<RawDuration>,
    pub hold_down: Option<RawDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[serde(expecting = "a mapping of gRPC health probe settings")]
pub(crate) struct RawGrpc {
    pub service: Option<String>,
    pub authority: Option<String>,
    pub tls: Option<YamlBool>,
    pub insecure: Option<YamlBool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[serde(expecting = "a mapping of probe parameters")]
pub(crate) struct RawParams {
    pub path: Option<String>,
    pub host: Option<String>,
    pub method: Option<String>,
    pub response_codes: Option<StringOrInt>,
    pub response_regex: Option<String>,
    pub server_name: Option<String>,
    pub insecure: Option<YamlBool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[serde(expecting = "a backend mapping with at least `address`")]
pub(crate) struct RawBackend {
    pub address: Option<IpAddr>,
    pub healthcheck: Option<String>,
    pub enabled: Option<YamlBool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawProtocol {
    Tcp,
    Udp,
    Any,
}

impl<'de> Deserialize<'de> for RawProtocol {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use RawProtocol::*;
        let i = keyword(deserializer, &["tcp", "udp", "any"])?;
        Ok([Tcp, Udp, Any][i])
    }
}

/// Reads a keyword from `names`, case-insensitively (`TCP` and `tcp`
/// alike), and returns its index. The check runs inside the visitor so the
/// error carries the position of the word itself.
fn keyword<'de, D: Deserializer<'de>>(
    deserializer: D,
    names: &'static [&'static str],
) -> Result<usize, D::Error> {
    struct KeywordVisitor(&'static [&'static str]);
    impl Visitor<'_> for KeywordVisitor {
        type Value = usize;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "one of {}", self.0.join(", "))
        }
        fn visit_str<E: de::Error>(self, word: &str) -> Result<usize, E> {
            let lower = word.to_ascii_lowercase();
            self.0
                .iter()
                .position(|name| *name == lower)
                .ok_or_else(|| E::unknown_variant(word, self.0))
        }
    }
    deserializer.deserialize_str(KeywordVisitor(names))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[serde(expecting = "a frontend mapping with `address` and `pools`")]
pub(crate) struct RawFrontend {
    pub description: Option<String>,
    pub address: Option<IpAddr>,
    pub protocol: Option<RawProtocol>,
    pub port: Option<i64>,
    pub src_ip_sticky: Option<YamlBool>,
    pub flush_on_down: Option<YamlBool>,
    pub new_flows_table_length: Option<i64>,
    pub panic_threshold: Option<Percent>,
    pub slow_start: Option<RawDuration>,
    pub pools: Option<Vec<RawPool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[serde(expecting = "a pool mapping with `name` and `backends`")]
pub(crate) struct RawPool {
    pub name: Option<String>,
    pub backends: Option<BTreeMap<String, RawMember>>,
}

/// Pool membership: `web1: { weight: 50 }`, `web1: {}`, a bare `web1:` (YAML
/// null), or the shorthand `web1: 50`.
#[derive(Debug, Default)]
pub(crate) struct RawMember {
    pub weight: Option<i64>,
}

impl<'de> Deserialize<'de> for RawMember {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            weight: Option<i64>,
        }

        struct MemberVisitor;
        impl<'de> Visitor<'de> for MemberVisitor {
            type Value = RawMember;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a pool membership like `{ weight: 100 }`, a bare weight, or nothing")
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawMember, E> {
                Ok(RawMember::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<RawMember, E> {
                Ok(RawMember::default())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawMember, E> {
                Ok(RawMember { weight: Some(v) })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawMember, E> {
                Ok(RawMember {
                    weight: Some(i64::try_from(v).unwrap_or(i64::MAX)),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawMember, A::Error> {
                let full = Full::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawMember {
                    weight: full.weight,
                })
            }
        }
        deserializer.deserialize_any(MemberVisitor)
    }
}

/// A duration string (`2s`, `500ms`, `1m30s`). The bare number `0` is also
/// accepted because Go configs write `startup-min-delay: 0`; any other bare
/// number is ambiguous (Go would read it as nanoseconds) and is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawDuration(pub Duration);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"2s\" or \"500ms\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                parse_duration(v).map(RawDuration).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
                if v == 0 {
                    Ok(RawDuration(Duration::ZERO))
                } else {
                    Err(E::custom(format!(
                        "bare number {v} is not a duration: add a unit, e.g. \"{v}s\" or \"{v}ms\""
                    )))
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawDuration, E> {
                Err(E::custom(format!(
                    "bare number {v} is not a duration: add a unit, e.g. \"{v}s\""
                )))
            }
        }
        deserializer.deserialize_any(DurationVisitor)
    }
}

/// A boolean that also takes YAML 1.1 spellings (`yes`, `no`, `on`, `off`),
/// which Go's yaml.v3 accepts for boolean fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct YamlBool(pub bool);

impl<'de> Deserialize<'de> for YamlBool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BoolVisitor;
        impl Visitor<'_> for BoolVisitor {
            type Value = YamlBool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<YamlBool, E> {
                Ok(YamlBool(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<YamlBool, E> {
                match v {
                    "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Ok(YamlBool(true)),
                    "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Ok(YamlBool(false)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        deserializer.deserialize_any(BoolVisitor)
    }
}

/// `response-codes: 200` and `response-codes: "200-299,301"` both work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StringOrInt(pub String);

impl<'de> Deserialize<'de> for StringOrInt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SoiVisitor;
        impl Visitor<'_> for SoiVisitor {
            type Value = StringOrInt;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a status code or a list like \"200-299,301\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StringOrInt, E> {
                Ok(StringOrInt(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StringOrInt, E> {
                Ok(StringOrInt(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StringOrInt, E> {
                Ok(StringOrInt(v.to_string()))
            }
        }
        deserializer.deserialize_any(SoiVisitor)
    }
}

/// `panic-threshold: 50` and `panic-threshold: "50%"` both work; the range
/// is checked with the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Percent(pub String);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PercentVisitor;
        impl Visitor<'_> for PercentVisitor {
            type Value = Percent;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a percentage such as 50 or \"50%\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Percent, E> {
                Ok(Percent(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Percent, E> {
                Ok(Percent(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Percent, E> {
                Ok(Percent(v.to_string()))
            }
        }
        deserializer.deserialize_any(PercentVisitor)
    }
}
