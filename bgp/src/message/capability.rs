//! Capabilities advertised in OPEN (RFC 5492).
//!
//! Each capability is (code, one-octet length, value). Known codes are parsed
//! into typed variants; an unknown code, or a known code whose value does not
//! have the layout its RFC defines, is kept as [`Capability::Unknown`] with
//! its raw value and re-encoded unchanged, so the session layer sees exactly
//! what the peer sent and a malformed optional capability is simply not
//! negotiated.

use bytes::{BufMut, BytesMut};

use crate::error::EncodeError;
use crate::prefix::{AddressFamily, Afi, Safi};
use crate::wire;

/// Capability codes (IANA "Capability Codes").
pub mod code {
    /// Multiprotocol extensions (RFC 4760).
    pub const MULTIPROTOCOL: u8 = 1;
    /// Route refresh (RFC 2918).
    pub const ROUTE_REFRESH: u8 = 2;
    /// Extended next hop encoding (RFC 8950).
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    /// Extended message (RFC 8654).
    pub const EXTENDED_MESSAGE: u8 = 6;
    /// Graceful restart (RFC 4724).
    pub const GRACEFUL_RESTART: u8 = 64;
    /// Four-octet AS numbers (RFC 6793).
    pub const FOUR_OCTET_AS: u8 = 65;
    /// Enhanced route refresh (RFC 7313).
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
    /// FQDN / hostname (draft-walton-bgp-hostname-capability).
    pub const FQDN: u8 = 73;
}

/// One <AFI, SAFI> entry of the graceful restart capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GracefulRestartFamily {
    /// The address family.
    pub family: AddressFamily,
    /// The F bit: forwarding state was preserved across the restart.
    pub forwarding_preserved: bool,
}

/// The graceful restart capability (RFC 4724 §3, N bit from RFC 8538).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct GracefulRestart {
    /// The R bit: the sender has restarted.
    pub restart_state: bool,
    /// The N bit: the sender supports graceful restart for NOTIFICATION
    /// (RFC 8538).
    pub notification: bool,
    /// Restart time in seconds, 12 bits (0..=4095).
    pub restart_time: u16,
    /// Families for which the sender preserves forwarding state.
    pub families: Vec<GracefulRestartFamily>,
}

impl GracefulRestart {
    /// Largest restart time the 12-bit field holds.
    pub const MAX_RESTART_TIME: u16 = 0x0fff;
    const R_BIT: u8 = 0x80;
    const N_BIT: u8 = 0x40;
    const F_BIT: u8 = 0x80;
}

/// One entry of the extended next hop capability (RFC 8950 §3): NLRI of
/// `nlri_afi`/`nlri_safi` may carry a next hop of `next_hop_afi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExtendedNextHop {
    /// AFI of the NLRI.
    pub nlri_afi: Afi,
    /// SAFI of the NLRI (two octets in this capability).
    pub nlri_safi: u16,
    /// AFI of the next hop.
    pub next_hop_afi: Afi,
}

impl ExtendedNextHop {
    /// IPv4 unicast NLRI with an IPv6 next hop, the case FerroLB uses.
    pub const IPV4_UNICAST_OVER_IPV6: ExtendedNextHop = ExtendedNextHop {
        nlri_afi: Afi::IPV4,
        nlri_safi: 1,
        next_hop_afi: Afi::IPV6,
    };
}

/// A capability.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Code 1: multiprotocol extensions for one family.
    Multiprotocol(AddressFamily),
    /// Code 2: route refresh.
    RouteRefresh,
    /// Code 5: extended next hop encoding.
    ExtendedNextHop(Vec<ExtendedNextHop>),
    /// Code 6: extended messages up to 65535 octets.
    ExtendedMessage,
    /// Code 64: graceful restart.
    GracefulRestart(GracefulRestart),
    /// Code 65: four-octet AS numbers; the value is the sender's AS.
    FourOctetAs(u32),
    /// Code 70: enhanced route refresh.
    EnhancedRouteRefresh,
    /// Code 73: host and domain name.
    Fqdn {
        /// Host name.
        hostname: String,
        /// Domain name (often empty).
        domain: String,
    },
    /// Any other capability, or a known one with a malformed value.
    Unknown {
        /// Capability code.
        code: u8,
        /// Raw value.
        value: Vec<u8>,
    },
}

impl Capability {
    /// The capability code.
    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol(_) => code::MULTIPROTOCOL,
            Capability::RouteRefresh => code::ROUTE_REFRESH,
            Capability::ExtendedNextHop(_) => code::EXTENDED_NEXT_HOP,
            Capability::ExtendedMessage => code::EXTENDED_MESSAGE,
            Capability::GracefulRestart(_) => code::GRACEFUL_RESTART,
            Capability::FourOctetAs(_) => code::FOUR_OCTET_AS,
            Capability::EnhancedRouteRefresh => code::ENHANCED_ROUTE_REFRESH,
            Capability::Fqdn { .. } => code::FQDN,
            Capability::Unknown { code, .. } => *code,
        }
    }

    /// Parses one capability value. Never fails: a value that does not fit
    /// the layout of its code is kept as [`Capability::Unknown`].
    pub fn decode(code: u8, value: &[u8]) -> Capability {
        Self::decode_known(code, value).unwrap_or_else(|| Capability::Unknown {
            code,
            value: value.to_vec(),
        })
    }

    fn decode_known(code: u8, value: &[u8]) -> Option<Capability> {
        Some(match code {
            code::MULTIPROTOCOL => match *value {
                [a0, a1, _reserved, safi] => Capability::Multiprotocol(AddressFamily::new(
                    Afi(u16::from_be_bytes([a0, a1])),
                    Safi(safi),
                )),
                _ => return None,
            },
            code::ROUTE_REFRESH if value.is_empty() => Capability::RouteRefresh,
            code::EXTENDED_MESSAGE if value.is_empty() => Capability::ExtendedMessage,
            code::ENHANCED_ROUTE_REFRESH if value.is_empty() => Capability::EnhancedRouteRefresh,
            code::FOUR_OCTET_AS => match *value {
                [a, b, c, d] => Capability::FourOctetAs(u32::from_be_bytes([a, b, c, d])),
                _ => return None,
            },
            code::EXTENDED_NEXT_HOP => {
                if value.is_empty() || !value.len().is_multiple_of(6) {
                    return None;
                }
                let entries = value
                    .chunks_exact(6)
                    .map(|c| ExtendedNextHop {
                        nlri_afi: Afi(u16::from_be_bytes([c[0], c[1]])),
                        nlri_safi: u16::from_be_bytes([c[2], c[3]]),
                        next_hop_afi: Afi(u16::from_be_bytes([c[4], c[5]])),
                    })
                    .collect();
                Capability::ExtendedNextHop(entries)
            }
            code::GRACEFUL_RESTART => {
                let (&[flags, low], rest) = value.split_first_chunk::<2>()?;
                if rest.len() % 4 != 0 {
                    return None;
                }
                let families = rest
                    .chunks_exact(4)
                    .map(|c| GracefulRestartFamily {
                        family: AddressFamily::new(
                            Afi(u16::from_be_bytes([c[0], c[1]])),
                            Safi(c[2]),
                        ),
                        forwarding_preserved: c[3] & GracefulRestart::F_BIT != 0,
                    })
                    .collect();
                Capability::GracefulRestart(GracefulRestart {
                    restart_state: flags & GracefulRestart::R_BIT != 0,
                    notification: flags & GracefulRestart::N_BIT != 0,
                    restart_time: u16::from_be_bytes([flags & 0x0f, low]),
                    families,
                })
            }
            code::FQDN => {
                let (rest, hostname) = length_prefixed(value)?;
                let (rest, domain) = length_prefixed(rest)?;
                if !rest.is_empty() {
                    return None;
                }
                Capability::Fqdn {
                    hostname: std::str::from_utf8(hostname).ok()?.to_owned(),
                    domain: std::str::from_utf8(domain).ok()?.to_owned(),
                }
            }
            _ => return None,
        })
    }

    /// Appends the value (without code and length) to `out`.
    fn encode_value(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Capability::Multiprotocol(family) => {
                out.put_u16(family.afi.0);
                out.put_u8(0);
                out.put_u8(family.safi.0);
            }
            Capability::RouteRefresh
            | Capability::ExtendedMessage
            | Capability::EnhancedRouteRefresh => {}
            Capability::ExtendedNextHop(entries) => {
                for e in entries {
                    out.put_u16(e.nlri_afi.0);
                    out.put_u16(e.nlri_safi);
                    out.put_u16(e.next_hop_afi.0);
                }
            }
            Capability::GracefulRestart(gr) => {
                if gr.restart_time > GracefulRestart::MAX_RESTART_TIME {
                    return Err(EncodeError::RestartTimeTooLarge(gr.restart_time));
                }
                let mut flags = 0u8;
                if gr.restart_state {
                    flags |= GracefulRestart::R_BIT;
                }
                if gr.notification {
                    flags |= GracefulRestart::N_BIT;
                }
                let [hi, lo] = gr.restart_time.to_be_bytes();
                out.put_u8(flags | hi);
                out.put_u8(lo);
                for f in &gr.families {
                    out.put_u16(f.family.afi.0);
                    out.put_u8(f.family.safi.0);
                    out.put_u8(if f.forwarding_preserved {
                        GracefulRestart::F_BIT
                    } else {
                        0
                    });
                }
            }
            Capability::FourOctetAs(asn) => out.put_u32(*asn),
            Capability::Fqdn { hostname, domain } => {
                for name in [hostname, domain] {
                    if name.len() > usize::from(u8::MAX) {
                        return Err(EncodeError::CapabilityTooLong {
                            code: code::FQDN,
                            len: name.len(),
                        });
                    }
                    wire::put_u8_len_prefixed(out, name.as_bytes());
                }
            }
            Capability::Unknown { value, .. } => out.put_slice(value),
        }
        Ok(())
    }

    /// Appends code, length and value. Fails when the value exceeds 255
    /// octets or a field is out of range.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let mut value = BytesMut::new();
        self.encode_value(&mut value)?;
        if value.len() > usize::from(u8::MAX) {
            return Err(EncodeError::CapabilityTooLong {
                code: self.code(),
                len: value.len(),
            });
        }
        out.put_u8(self.code());
        wire::put_u8_len_prefixed(out, &value);
        Ok(())
    }

    /// Like [`encode`](Self::encode) but never fails: an over-long value is
    /// cut to 255 octets (used for NOTIFICATION data).
    pub(crate) fn encode_truncated(&self, out: &mut BytesMut) {
        let mut value = BytesMut::new();
        // Errors only arise from out-of-range fields; write what we have.
        let _ = self.encode_value(&mut value);
        value.truncate(usize::from(u8::MAX));
        out.put_u8(self.code());
        wire::put_u8_len_prefixed(out, &value);
    }

    /// Parses a run of capabilities (the value of a Capabilities optional
    /// parameter). Returns `None` when a capability overruns the parameter.
    pub(crate) fn decode_list(mut input: &[u8], out: &mut Vec<Capability>) -> Option<()> {
        while !input.is_empty() {
            let (rest, code) = wire::u8(input).ok()?;
            let (rest, value) = length_prefixed(rest)?;
            out.push(Capability::decode(code, value));
            input = rest;
        }
        Some(())
    }
}

/// Reads a one-octet length and that many octets.
fn length_prefixed(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (rest, len) = wire::u8(input).ok()?;
    wire::take(rest, usize::from(len)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(c: &Capability) -> Vec<u8> {
        let mut out = BytesMut::new();
        c.encode(&mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn known_layouts() {
        assert_eq!(
            enc(&Capability::Multiprotocol(AddressFamily::IPV6_UNICAST)),
            [1, 4, 0, 2, 0, 1]
        );
        assert_eq!(enc(&Capability::RouteRefresh), [2, 0]);
        assert_eq!(enc(&Capability::EnhancedRouteRefresh), [70, 0]);
        assert_eq!(enc(&Capability::ExtendedMessage), [6, 0]);
        assert_eq!(enc(&Capability::FourOctetAs(65551)), [65, 4, 0, 1, 0, 15]);
        assert_eq!(
            enc(&Capability::ExtendedNextHop(vec![
                ExtendedNextHop::IPV4_UNICAST_OVER_IPV6
            ])),
            [5, 6, 0, 1, 0, 1, 0, 2]
        );
        let gr = Capability::GracefulRestart(GracefulRestart {
            restart_state: true,
            notification: true,
            restart_time: 120,
            families: vec![GracefulRestartFamily {
                family: AddressFamily::IPV4_UNICAST,
                forwarding_preserved: true,
            }],
        });
        assert_eq!(enc(&gr), [64, 6, 0xc0, 120, 0, 1, 1, 0x80]);
        assert_eq!(
            enc(&Capability::Fqdn {
                hostname: "node-1".into(),
                domain: String::new()
            }),
            [73, 8, 6, b'n', b'o', b'd', b'e', b'-', b'1', 0]
        );
    }

    #[test]
    fn decode_matches_encode() {
        for cap in [
            Capability::Multiprotocol(AddressFamily::IPV4_UNICAST),
            Capability::FourOctetAs(64500),
            Capability::GracefulRestart(GracefulRestart {
                restart_time: 4095,
                ..Default::default()
            }),
            Capability::Unknown {
                code: 128,
                value: vec![1, 2, 3],
            },
        ] {
            let bytes = enc(&cap);
            let mut out = Vec::new();
            Capability::decode_list(&bytes, &mut out).unwrap();
            assert_eq!(out, [cap]);
        }
    }

    #[test]
    fn malformed_known_values_stay_raw() {
        assert_eq!(
            Capability::decode(65, &[0, 1, 0]),
            Capability::Unknown {
                code: 65,
                value: vec![0, 1, 0]
            }
        );
        assert_eq!(
            Capability::decode(2, &[0]),
            Capability::Unknown {
                code: 2,
                value: vec![0]
            }
        );
        assert!(matches!(
            Capability::decode(73, &[3, b'a', b'b']),
            Capability::Unknown { .. }
        ));
        assert!(matches!(
            Capability::decode(73, &[1, 0xff, 0]),
            Capability::Unknown { .. }
        ));
        assert!(matches!(
            Capability::decode(64, &[0, 1, 0, 1, 1]),
            Capability::Unknown { .. }
        ));
    }

    #[test]
    fn overrun_is_reported() {
        let mut out = Vec::new();
        assert!(Capability::decode_list(&[65, 4, 0, 0], &mut out).is_none());
        assert!(Capability::decode_list(&[65], &mut out).is_none());
    }

    #[test]
    fn restart_time_out_of_range() {
        let cap = Capability::GracefulRestart(GracefulRestart {
            restart_time: 4096,
            ..Default::default()
        });
        assert_eq!(
            cap.encode(&mut BytesMut::new()),
            Err(EncodeError::RestartTimeTooLarge(4096))
        );
    }
}
