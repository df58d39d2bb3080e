//! Dynamic authorization (RFC 5176): when a connected device loses its right to its VLAN
//! (revoked, lost, noncompliant or stale, owner disabled or out of contract), poortwachter
//! tells the device's NAS to end the session (Disconnect-Request) or move it (CoA-Request).
//! [`packet`] is the codec, [`client`] the UDP exchange, [`enforcer`] the task that follows
//! the registry and decides whom to kick.

pub mod client;
pub mod counters;
pub mod enforcer;
pub mod packet;
