//! Helpers of the end-to-end tests (the tests themselves live in tests/).
//!
//! - [`bgp`]: BGP interop labs (router and node namespaces, GoBGP, the
//!   `bgp-probe` runner).
//! - [`netns`]: network-namespace labs (bridge, hosts, commands inside
//!   them), cleaned up by Drop guards.
//! - [`speaker`]: building `ferrolb-speaker` and running `l2-probe`.
//! - [`require`]: the skip-or-fail rule for tests that need root and
//!   system tools.

pub mod bgp;
pub mod netns;
pub mod speaker;

/// Checks what a test needs: root (network namespaces and raw sockets)
/// and the given `(tool, Debian package)` pairs. Returns true when the
/// test can run. Otherwise prints `SKIPPED: <reason>` and returns false —
/// except when the `CI` environment variable is set, where a missing
/// prerequisite is a failure (panic), so CI never passes without running.
pub fn require(tools: &[(&str, &str)]) -> bool {
    let mut missing = Vec::new();
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("not running as root (network namespaces and raw sockets need it)".to_owned());
    }
    for (tool, package) in tools {
        if netns::find_tool(tool).is_none() {
            missing.push(format!(
                "`{tool}` not found (Debian package {package}; see tests/setup/apt-packages.txt)"
            ));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let reason = missing.join("; ");
    if std::env::var_os("CI").is_some() {
        panic!("CI is set, so this test must run, but: {reason}");
    }
    println!("SKIPPED: {reason}");
    false
}
