//! Session parameters, as configured by a BFDProfile.

/// Default receive and transmit interval, ms.
pub const DEFAULT_INTERVAL_MS: u32 = 300;
/// Default detect multiplier.
pub const DEFAULT_DETECT_MULTIPLIER: u8 = 3;
/// Default minimum TTL for multi-hop sessions.
pub const DEFAULT_MINIMUM_TTL: u8 = 254;

/// The parameters of a BFD session that come from a BFDProfile. Echo mode
/// (`echoMode`, `echoInterval`) is not supported: no echo packets are sent
/// and Required Min Echo RX Interval is always advertised as zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Profile {
    /// Minimum interval between received packets we can handle, ms
    /// (bfd.RequiredMinRxInterval). Zero asks the peer to send nothing.
    pub receive_interval_ms: u32,
    /// Minimum transmit interval we want, ms (bfd.DesiredMinTxInterval).
    /// Zero is treated as 1 µs: the RFC forbids advertising zero.
    pub transmit_interval_ms: u32,
    /// bfd.DetectMult; zero is treated as one.
    pub detect_multiplier: u8,
    /// Do not send anything until a packet from the peer was received
    /// (RFC 5880 §6.1, Passive role).
    pub passive_mode: bool,
    /// Smallest TTL (hop limit) accepted on multi-hop sessions (RFC 5883
    /// §5). Single-hop sessions always require 255 (RFC 5881 §5).
    pub minimum_ttl: u8,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            receive_interval_ms: DEFAULT_INTERVAL_MS,
            transmit_interval_ms: DEFAULT_INTERVAL_MS,
            detect_multiplier: DEFAULT_DETECT_MULTIPLIER,
            passive_mode: false,
            minimum_ttl: DEFAULT_MINIMUM_TTL,
        }
    }
}

fn ms_to_us(ms: u32) -> u32 {
    ms.saturating_mul(1000)
}

impl Profile {
    /// bfd.DesiredMinTxInterval in µs (never zero).
    pub fn desired_min_tx_us(&self) -> u32 {
        ms_to_us(self.transmit_interval_ms).max(1)
    }

    /// bfd.RequiredMinRxInterval in µs.
    pub fn required_min_rx_us(&self) -> u32 {
        ms_to_us(self.receive_interval_ms)
    }

    /// bfd.DetectMult (never zero).
    pub fn detect_mult(&self) -> u8 {
        self.detect_multiplier.max(1)
    }
}
