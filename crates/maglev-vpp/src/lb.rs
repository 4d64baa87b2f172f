//! The lb plugin's API in domain terms, over [`Client`].
//!
//! [`LbApi`] hides the wire structs and the difference between VPP releases
//! with the v2 messages (weights, `lb_conf_get`, `lb_as_v2_dump`; VPP master
//! since 2026-05) and those without (up to v26.06).
//!
//! Releases up to 26.06 also have the handler bugs FD.io fixed in "lb: API
//! bugfix" (the commit that added `lb_conf_get`), so [`Dialect::Legacy`]
//! encodes around them (read from 26.06's `src/plugins/lb/api.c`):
//! - the prefix length is used as an `ip46` length: an IPv4 /32 must be sent
//!   as /128 (sent as /32 it becomes an IPv6 VIP);
//! - `encap` is compared without `ntohl`: it is sent byte-swapped;
//! - `lb_vip_dump` truncates the protocol and table length to 0 and lists
//!   deleted VIPs: VIPs are read from `show lb vips verbose` instead;
//! - `lb_as_dump` filters on the port in the wrong byte order and compares
//!   the raw 16-byte address: a per-VIP dump sends the port byte-swapped and
//!   the IPv4 address in its `ip46` form.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::binapi::*;
use crate::client::Client;
use crate::error::Error;
use crate::lbcli::{parse_show_vips, CliVip};

/// A VIP as VPP keys it: prefix, protocol and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VipKey {
    /// Prefix address.
    pub address: IpAddr,
    /// Prefix length (32/128 for a host VIP).
    pub prefix_len: u8,
    /// IP protocol: 6 TCP, 17 UDP, 255 any (always 255 when `port` is 0).
    pub protocol: u8,
    /// Port; 0 = all ports.
    pub port: u16,
}

impl VipKey {
    /// A host VIP (/32 or /128). Port 0 forces protocol 255, as VPP does.
    pub fn host(address: IpAddr, protocol: u8, port: u16) -> VipKey {
        VipKey {
            address,
            prefix_len: if address.is_ipv4() { 32 } else { 128 },
            protocol: if port == 0 { 255 } else { protocol },
            port,
        }
    }

    fn prefix(&self) -> Prefix {
        Prefix::new(self.address, self.prefix_len)
    }

    fn from_api(vip: &LbVip) -> VipKey {
        VipKey {
            address: vip.pfx.address.to_ip(),
            prefix_len: vip.pfx.len,
            protocol: vip.protocol.0,
            port: vip.port,
        }
    }
}

impl fmt::Display for VipKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.protocol {
            6 => "tcp".to_string(),
            17 => "udp".to_string(),
            255 => "any".to_string(),
            p => format!("proto{p}"),
        };
        write!(
            f,
            "{}/{} {proto}:{}",
            self.address, self.prefix_len, self.port
        )
    }
}

/// How VPP forwards to the application servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encap {
    /// GRE over IPv4 (IPv4 ASes).
    Gre4,
    /// GRE over IPv6 (IPv6 ASes).
    Gre6,
    /// L3 DSR.
    L3dsr,
    /// NAT44.
    Nat4,
    /// NAT66.
    Nat6,
    /// A value this client does not know.
    Other(u32),
}

impl Encap {
    fn to_api(self) -> LbEncapType {
        LbEncapType(match self {
            Encap::Gre4 => 0,
            Encap::Gre6 => 1,
            Encap::L3dsr => 2,
            Encap::Nat4 => 3,
            Encap::Nat6 => 4,
            Encap::Other(v) => v,
        })
    }

    fn from_api(e: LbEncapType) -> Encap {
        match e.0 {
            0 => Encap::Gre4,
            1 => Encap::Gre6,
            2 => Encap::L3dsr,
            3 => Encap::Nat4,
            4 => Encap::Nat6,
            v => Encap::Other(v),
        }
    }
}

/// A VIP to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VipSpec {
    /// Key.
    pub key: VipKey,
    /// Encapsulation.
    pub encap: Encap,
    /// Hash on the source address only (v2 only).
    pub src_ip_sticky: bool,
    /// Maglev table size: a power of two, never 0.
    pub new_flows_table_length: u32,
}

/// A VIP as `lb_vip_dump` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VipInfo {
    /// Key.
    pub key: VipKey,
    /// Encapsulation.
    pub encap: Encap,
    /// The table length as VPP reports it: a u16, so 65536 and up wrap
    /// (65536 reads 0). Do not compare it with the configured length.
    pub flow_table_length: u16,
}

/// An application server as the AS dump reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsInfo {
    /// The VIP it belongs to.
    pub vip: VipKey,
    /// Its address.
    pub address: IpAddr,
    /// False for an AS deleted but not yet garbage-collected.
    pub used: bool,
    /// Weight (v2 dumps only).
    pub weight: Option<u8>,
    /// New-flow table slots pointing at it (v2 dumps only).
    pub num_buckets: Option<u32>,
}

/// VPP's global lb settings (`lb_conf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LbConfig {
    /// GRE4 outer source.
    pub ip4_src_address: Ipv4Addr,
    /// GRE6 outer source.
    pub ip6_src_address: Ipv6Addr,
    /// Sticky buckets per worker; `u32::MAX` in a set means "keep".
    pub sticky_buckets_per_core: u32,
    /// Sticky entry timeout in seconds; `u32::MAX` in a set means "keep".
    pub flow_timeout: u32,
}

/// What `show_version` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// Program name.
    pub program: String,
    /// Version string.
    pub version: String,
    /// Build date.
    pub build_date: String,
    /// Build directory.
    pub build_directory: String,
}

/// How a VPP's lb handlers read their messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// lb API 1.2.0 and later (with `lb_conf_get`): as the `.api` says.
    Fixed,
    /// lb API 1.1.0 and earlier (VPP 26.06 and older releases): the
    /// handler bugs listed in the module documentation.
    Legacy,
}

/// The lb API of one VPP connection.
#[derive(Debug, Clone)]
pub struct LbApi {
    client: Client,
    v2: bool,
    vip_v2: bool,
    dialect: Dialect,
}

impl LbApi {
    /// Wraps `client`, detecting from its message table whether VPP has the
    /// v2 messages.
    pub fn new(client: Client) -> LbApi {
        let v2 = client.supports::<LbAddDelAsV2>()
            && client.supports::<LbAsSetWeight>()
            && client.supports::<LbAsV2Dump>();
        // lb_add_del_vip_v2 (src_ip_sticky) is older than the weight messages.
        let vip_v2 = client.supports::<LbAddDelVipV2>();
        // The bugfix commit added lb_conf_get: its absence marks the bugs.
        let dialect = if client.supports::<LbConfGet>() {
            Dialect::Fixed
        } else {
            Dialect::Legacy
        };
        LbApi {
            client,
            v2,
            vip_v2,
            dialect,
        }
    }

    /// How this VPP's handlers must be spoken to.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The VIP prefix as this VPP's handlers read it.
    fn wire_prefix(&self, key: &VipKey) -> Prefix {
        let mut p = key.prefix();
        if self.dialect == Dialect::Legacy && key.address.is_ipv4() {
            p.len = p.len.saturating_add(96);
        }
        p
    }

    fn wire_encap(&self, encap: Encap) -> LbEncapType {
        let e = encap.to_api();
        match self.dialect {
            Dialect::Fixed => e,
            Dialect::Legacy => LbEncapType(e.0.swap_bytes()),
        }
    }

    /// Whether VPP's lb plugin is loaded at all (its oldest message is in
    /// the message table).
    pub fn has_lb_plugin(&self) -> bool {
        self.client.supports::<LbAddDelVip>() && self.client.supports::<LbVipDump>()
    }

    /// Whether VPP has the v2 AS messages (weights, set-weight, v2 dump).
    pub fn has_v2(&self) -> bool {
        self.v2
    }

    /// Whether VPP can report its lb settings (`lb_conf_get`).
    pub fn has_conf_get(&self) -> bool {
        self.client.supports::<LbConfGet>()
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `show_version`.
    pub async fn show_version(&self) -> Result<VersionInfo, Error> {
        let r = self.client.request(&ShowVersion).await?;
        Ok(VersionInfo {
            program: r.program,
            version: r.version,
            build_date: r.build_date,
            build_directory: r.build_directory,
        })
    }

    /// `cli_inband`: runs a debug CLI command and returns its output.
    pub async fn cli(&self, command: &str) -> Result<String, Error> {
        Ok(self
            .client
            .request(&CliInband {
                cmd: command.to_string(),
            })
            .await?
            .reply)
    }

    /// `lb_conf`.
    pub async fn conf_set(&self, conf: &LbConfig) -> Result<(), Error> {
        self.client
            .request(&LbConf {
                ip4_src_address: conf.ip4_src_address.octets(),
                ip6_src_address: conf.ip6_src_address.octets(),
                sticky_buckets_per_core: conf.sticky_buckets_per_core,
                flow_timeout: conf.flow_timeout,
            })
            .await?;
        Ok(())
    }

    /// `lb_conf_get` (VPP with the v2 messages only).
    pub async fn conf_get(&self) -> Result<LbConfig, Error> {
        let r = self.client.request(&LbConfGet).await?;
        Ok(LbConfig {
            ip4_src_address: Ipv4Addr::from(r.ip4_src_address),
            ip6_src_address: Ipv6Addr::from(r.ip6_src_address),
            sticky_buckets_per_core: r.sticky_buckets_per_core,
            flow_timeout: r.flow_timeout,
        })
    }

    /// Creates a VIP. `new_flows_table_length` 0 is refused here: VPP
    /// accepts it and then tries to allocate a 4-G-entry table.
    pub async fn vip_add(&self, spec: &VipSpec) -> Result<(), Error> {
        if spec.new_flows_table_length == 0 {
            return Err(Error::Unsupported(
                "new_flows_table_length 0 (VPP would allocate a 4G-entry table)",
            ));
        }
        let k = spec.key;
        if self.vip_v2 {
            self.client
                .request(&LbAddDelVipV2 {
                    pfx: self.wire_prefix(&k),
                    protocol: k.protocol,
                    port: k.port,
                    encap: self.wire_encap(spec.encap),
                    new_flows_table_length: spec.new_flows_table_length,
                    src_ip_sticky: spec.src_ip_sticky,
                    is_del: false,
                    ..Default::default()
                })
                .await?;
        } else {
            if spec.src_ip_sticky {
                return Err(Error::Unsupported(
                    "src-ip-sticky VIPs need lb_add_del_vip_v2",
                ));
            }
            self.client
                .request(&LbAddDelVip {
                    pfx: self.wire_prefix(&k),
                    protocol: k.protocol,
                    port: k.port,
                    encap: self.wire_encap(spec.encap),
                    new_flows_table_length: spec.new_flows_table_length,
                    is_del: false,
                    ..Default::default()
                })
                .await?;
        }
        Ok(())
    }

    /// Deletes a VIP (VPP marks its ASes unused, without flush).
    pub async fn vip_del(&self, key: &VipKey) -> Result<(), Error> {
        // The v1 message suffices for a delete and exists everywhere. The
        // table length is not looked at, but 0 must never be on the wire.
        self.client
            .request(&LbAddDelVip {
                pfx: self.wire_prefix(key),
                protocol: key.protocol,
                port: key.port,
                new_flows_table_length: 1024,
                is_del: true,
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    /// `show lb vips verbose`, parsed.
    pub async fn show_vips(&self) -> Result<Vec<CliVip>, Error> {
        Ok(parse_show_vips(&self.cli("show lb vips verbose").await?))
    }

    /// All live VIPs (`lb_vip_dump` ignores its filter anyway). On a
    /// [`Dialect::Legacy`] VPP the dump cannot say a VIP's protocol or
    /// whether it was deleted, so the VIPs come from the CLI.
    pub async fn vip_dump(&self) -> Result<Vec<VipInfo>, Error> {
        if self.dialect == Dialect::Legacy {
            return Ok(self
                .show_vips()
                .await?
                .into_iter()
                .filter(|v| !v.removed)
                .map(|v| VipInfo {
                    key: v.key,
                    encap: v.encap,
                    flow_table_length: v.table_len.unwrap_or(0) as u16,
                })
                .collect());
        }
        let details = self.client.dump(&LbVipDump::default()).await?;
        Ok(details
            .iter()
            .map(|d| VipInfo {
                key: VipKey::from_api(&d.vip),
                encap: Encap::from_api(d.encap),
                flow_table_length: d.flow_table_length,
            })
            .collect())
    }

    /// Adds an AS with `weight` (v1 VPP: always weight 100).
    pub async fn as_add(&self, vip: &VipKey, address: IpAddr, weight: u8) -> Result<(), Error> {
        if self.v2 {
            self.client
                .request(&LbAddDelAsV2 {
                    pfx: self.wire_prefix(vip),
                    protocol: vip.protocol,
                    port: vip.port,
                    as_address: address.into(),
                    weight,
                    is_del: false,
                    is_flush: false,
                })
                .await?;
        } else {
            self.client
                .request(&LbAddDelAs {
                    pfx: self.wire_prefix(vip),
                    protocol: vip.protocol,
                    port: vip.port,
                    as_address: address.into(),
                    is_del: false,
                    is_flush: false,
                })
                .await?;
        }
        Ok(())
    }

    /// Deletes an AS; `flush` evicts its sticky entries.
    pub async fn as_del(&self, vip: &VipKey, address: IpAddr, flush: bool) -> Result<(), Error> {
        self.client
            .request(&LbAddDelAs {
                pfx: self.wire_prefix(vip),
                protocol: vip.protocol,
                port: vip.port,
                as_address: address.into(),
                is_del: true,
                is_flush: flush,
            })
            .await?;
        Ok(())
    }

    /// Sets an active AS's weight; `flush` evicts its sticky entries (v2).
    pub async fn as_set_weight(
        &self,
        vip: &VipKey,
        address: IpAddr,
        weight: u8,
        flush: bool,
    ) -> Result<(), Error> {
        self.client
            .request(&LbAsSetWeight {
                pfx: self.wire_prefix(vip),
                protocol: vip.protocol,
                port: vip.port,
                as_address: address.into(),
                weight,
                is_flush: flush,
            })
            .await?;
        Ok(())
    }

    /// Every AS of the VIPs `vips`. A fixed VPP is asked once, unfiltered
    /// (its filter never matches IPv4 VIPs), and the answer filtered here;
    /// a [`Dialect::Legacy`] one loses the protocol in its answers, so each
    /// VIP is asked for with the filter encoded the way its handler reads it.
    pub async fn as_dump_of(&self, vips: &[VipKey]) -> Result<Vec<AsInfo>, Error> {
        if self.dialect == Dialect::Legacy {
            return self.legacy_as_dump(vips).await;
        }
        let wanted: std::collections::HashSet<&VipKey> = vips.iter().collect();
        let all = self.fixed_as_dump().await?;
        Ok(all
            .into_iter()
            .filter(|a| wanted.contains(&a.vip))
            .collect())
    }

    async fn legacy_as_dump(&self, vips: &[VipKey]) -> Result<Vec<AsInfo>, Error> {
        // Pipelined: one request per VIP in flight on the connection.
        let mut asks = tokio::task::JoinSet::new();
        for k in vips {
            let mut pfx = self.wire_prefix(k);
            // The handler memcpy's the union: IPv4 in its ip46 form.
            pfx.address.un = AddressUnion(crate::maglev::ip46(&k.address));
            let req = LbAsDump {
                pfx,
                protocol: k.protocol,
                port: k.port.swap_bytes(),
            };
            let client = self.client.clone();
            let k = *k;
            asks.spawn(async move { (k, client.dump(&req).await) });
        }
        let mut out = Vec::new();
        while let Some(joined) = asks.join_next().await {
            let (k, details) = joined.map_err(|e| Error::Io(std::io::Error::other(e)))?;
            out.extend(
                details?
                    .iter()
                    .filter(|d| d.vip.pfx.address.to_ip() == k.address && d.vip.port == k.port)
                    .map(|d| AsInfo {
                        vip: k,
                        address: d.app_srv.to_ip(),
                        used: d.flags & 1 != 0,
                        weight: None,
                        num_buckets: None,
                    }),
            );
        }
        Ok(out)
    }

    /// Every AS of every VIP (on a fixed VPP also those of deleted VIPs,
    /// until collected).
    pub async fn as_dump(&self) -> Result<Vec<AsInfo>, Error> {
        if self.dialect == Dialect::Legacy {
            let keys: Vec<VipKey> = self.vip_dump().await?.iter().map(|v| v.key).collect();
            return self.legacy_as_dump(&keys).await;
        }
        self.fixed_as_dump().await
    }

    async fn fixed_as_dump(&self) -> Result<Vec<AsInfo>, Error> {
        // An all-zero prefix selects everything.
        let all = Prefix::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0);
        let out: Vec<AsInfo> = if self.v2 {
            let details = self
                .client
                .dump(&LbAsV2Dump {
                    pfx: all,
                    protocol: 0,
                    port: 0,
                })
                .await?;
            details
                .iter()
                .map(|d| AsInfo {
                    vip: VipKey::from_api(&d.vip),
                    address: d.app_srv.to_ip(),
                    used: d.flags & 1 != 0,
                    weight: Some(d.weight),
                    num_buckets: Some(d.num_buckets),
                })
                .collect()
        } else {
            let details = self
                .client
                .dump(&LbAsDump {
                    pfx: all,
                    protocol: 0,
                    port: 0,
                })
                .await?;
            details
                .iter()
                .map(|d| AsInfo {
                    vip: VipKey::from_api(&d.vip),
                    address: d.app_srv.to_ip(),
                    used: d.flags & 1 != 0,
                    weight: None,
                    num_buckets: None,
                })
                .collect()
        };
        Ok(out)
    }
}
