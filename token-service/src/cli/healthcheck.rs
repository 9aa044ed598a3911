//! `token-service healthcheck`: exits 0 when this host's check API answers `GET /healthz`
//! with 200 (the store answers too). Container images built `FROM scratch` have no shell or
//! curl, so the binary probes itself; compose and Kubernetes exec it as their healthcheck.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context as _};

/// The most of the answer that is read: the status line is all that counts.
const MAX_ANSWER: u64 = 4096;

/// `healthcheck` options.
#[derive(Debug, clap::Args)]
pub struct HealthcheckArgs {
    /// The check API's address, as `serve` was given it (an unspecified address such as
    /// `0.0.0.0` is probed on loopback).
    #[arg(long, env = "PTK_LISTEN", default_value = "127.0.0.1:10080")]
    pub addr: SocketAddr,
    /// Give up after this many milliseconds (connect, then each read and write).
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub timeout_ms: u64,
}

/// Where to connect: the listen address, with a wildcard replaced by loopback.
fn probe_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// One `GET /healthz`; Ok when the status is 200.
pub fn run(args: &HealthcheckArgs) -> anyhow::Result<()> {
    let addr = probe_addr(args.addr);
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .with_context(|| format!("cannot send to {addr}"))?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .with_context(|| format!("no answer from {addr}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("{addr} /healthz answered {status:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn wildcard_listen_addresses_are_probed_on_loopback() {
        let v4: SocketAddr = "0.0.0.0:10080".parse().unwrap();
        assert_eq!(probe_addr(v4).to_string(), "127.0.0.1:10080");
        let v6: SocketAddr = "[::]:10080".parse().unwrap();
        assert_eq!(probe_addr(v6).to_string(), "[::1]:10080");
        let fixed: SocketAddr = "10.1.2.3:99".parse().unwrap();
        assert_eq!(probe_addr(fixed), fixed);
    }
}
