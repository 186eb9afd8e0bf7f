//! Liveness of the speakers for layer 2: a SWIM membership (the `foca`
//! crate) over UDP on each Node's InternalIP, authenticated with a shared
//! key. [`core`] is the sans-IO part; [`io`] runs it on a socket;
//! [`fuzzing`] is the body of the cargo-fuzz target for its datagrams.

pub mod core;
pub mod fuzzing;
pub mod io;

pub use self::core::{Core, Member, Rejected, Timing};
