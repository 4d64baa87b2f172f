//! Conversions between std's IP types and the API's `address`/`prefix`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::binapi::{Address, AddressFamily, AddressUnion, Prefix};

impl From<IpAddr> for Address {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Address {
                af: AddressFamily::ADDRESS_IP4,
                un: AddressUnion::from_ip4(&a.octets()),
            },
            IpAddr::V6(a) => Address {
                af: AddressFamily::ADDRESS_IP6,
                un: AddressUnion::from_ip6(&a.octets()),
            },
        }
    }
}

impl Address {
    /// The address as a std type; an unknown family reads as IPv6, as VPP's
    /// own handlers do.
    pub fn to_ip(&self) -> IpAddr {
        if self.af == AddressFamily::ADDRESS_IP4 {
            IpAddr::V4(Ipv4Addr::from(self.un.ip4()))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.un.ip6()))
        }
    }
}

impl Prefix {
    /// A prefix of `len` bits.
    pub fn new(ip: IpAddr, len: u8) -> Self {
        Prefix {
            address: ip.into(),
            len,
        }
    }

    /// A host prefix: /32 or /128.
    pub fn host(ip: IpAddr) -> Self {
        let len = if ip.is_ipv4() { 32 } else { 128 };
        Prefix::new(ip, len)
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address.to_ip(), self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Encode;

    #[test]
    fn address_wire_form() {
        // NOTES.md §2.8: 192.0.2.10 as `address` and as a /32 `prefix`.
        let ip: IpAddr = "192.0.2.10".parse().unwrap();
        let mut w = Vec::new();
        Address::from(ip).encode(&mut w).unwrap();
        assert_eq!(w, [0, 192, 0, 2, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut w = Vec::new();
        Prefix::host(ip).encode(&mut w).unwrap();
        assert_eq!(w.len(), 18);
        assert_eq!(w[17], 32);
        assert_eq!(Address::from(ip).to_ip(), ip);
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(Address::from(v6).to_ip(), v6);
        assert_eq!(Prefix::host(v6).to_string(), "2001:db8::1/128");
    }
}
