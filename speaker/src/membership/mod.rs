//! Liveness of the speakers for layer 2: a SWIM membership (the `foca`
//! crate) over UDP on each Node's InternalIP, authenticated with a shared
//! key. [`core`] is the sans-IO part, [`join`] decides when a starting
//! speaker trusts its view; [`io`] runs them on a socket;
//! [`fuzzing`] is the body of the cargo-fuzz target for its datagrams.

pub mod core;
pub mod fuzzing;
pub mod io;
pub mod join;

pub use self::core::{Core, Member, Rejected, Timing};
