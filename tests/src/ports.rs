//! Free loopback ports for servers that must be told their port before they start
//! (redis-server), or that must come back on the same one (a restarted control plane).

use std::net::TcpListener;

/// A loopback port that was free a moment ago (bound, read, released). Another process can
/// take it before the caller binds it; callers that can, retry with a new one.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
