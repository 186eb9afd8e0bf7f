//! ROUTE-REFRESH message (RFC 2918) with the subtypes of enhanced route
//! refresh (RFC 7313).

use bytes::{BufMut, BytesMut};

use crate::error::DecodeError;
use crate::message::notification::{ErrorCode, Notification, RouteRefreshSubcode};
use crate::prefix::{AddressFamily, Afi, Safi};

/// The Message Subtype octet (formerly Reserved).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteRefreshSubtype {
    /// 0: a normal route refresh request.
    Request,
    /// 1: Beginning of Route Refresh (BoRR).
    Begin,
    /// 2: End of Route Refresh (EoRR).
    End,
    /// Any other value; RFC 7313 §4 says to ignore such a message.
    Other(u8),
}

impl From<u8> for RouteRefreshSubtype {
    fn from(v: u8) -> Self {
        match v {
            0 => RouteRefreshSubtype::Request,
            1 => RouteRefreshSubtype::Begin,
            2 => RouteRefreshSubtype::End,
            other => RouteRefreshSubtype::Other(other),
        }
    }
}

impl From<RouteRefreshSubtype> for u8 {
    fn from(s: RouteRefreshSubtype) -> u8 {
        match s {
            RouteRefreshSubtype::Request => 0,
            RouteRefreshSubtype::Begin => 1,
            RouteRefreshSubtype::End => 2,
            RouteRefreshSubtype::Other(v) => v,
        }
    }
}

/// A ROUTE-REFRESH message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RouteRefresh {
    /// The family to refresh.
    pub family: AddressFamily,
    /// Request, BoRR or EoRR.
    pub subtype: RouteRefreshSubtype,
}

impl RouteRefresh {
    /// A plain refresh request for `family`.
    pub fn request(family: AddressFamily) -> Self {
        RouteRefresh {
            family,
            subtype: RouteRefreshSubtype::Request,
        }
    }

    pub(crate) fn encode_body(&self, out: &mut BytesMut) {
        out.put_u16(self.family.afi.0);
        out.put_u8(self.subtype.into());
        out.put_u8(self.family.safi.0);
    }

    /// Decodes the body. The body must be exactly four octets: for BoRR and
    /// EoRR a wrong length is a ROUTE-REFRESH Message Error carrying the
    /// whole message (RFC 7313 §5); otherwise a Bad Message Length.
    pub(crate) fn decode_body(body: &[u8], frame: &[u8], length: u16) -> Result<Self, DecodeError> {
        if let [a0, a1, subtype, safi] = *body {
            return Ok(RouteRefresh {
                family: AddressFamily::new(Afi(u16::from_be_bytes([a0, a1])), Safi(safi)),
                subtype: subtype.into(),
            });
        }
        let notification = match body.get(2).map(|&s| RouteRefreshSubtype::from(s)) {
            Some(RouteRefreshSubtype::Begin | RouteRefreshSubtype::End) => Notification::new(
                ErrorCode::RouteRefresh,
                RouteRefreshSubcode::InvalidMessageLength,
                // Cut so the NOTIFICATION itself fits in 4096 octets.
                &frame[..frame.len().min(crate::message::MAX_MESSAGE_LEN - 21)],
            ),
            _ => Notification::bad_message_length(length),
        };
        Err(DecodeError::SessionReset(notification))
    }
}
