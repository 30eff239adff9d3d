//! Which libvirt URIs a VM may be live-migrated to. A destination agent reports the URI its
//! libvirt takes migrations on; the source's libvirt opens it and sends the VM's memory there.
//! libvirt URIs can do much more than connect (`qemu+ext://…?command=` runs a program,
//! `?socket=`/`?keyfile=` name local files), so only `qemu+tcp://host[:port]/system` and
//! `qemu+tls://host[:port]/system` are accepted, with no user, query or fragment, and the
//! engine's client also requires `host` to be the destination's registered address.

use thiserror::Error;

use crate::agent_networks::url_host;

/// The schemes a migration URI may have.
pub const ALLOWED_SCHEMES: [&str; 2] = ["qemu+tcp", "qemu+tls"];

/// Why a migration URI is refused. The messages never quote the URI: it comes from an agent.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum MigrationUriError {
    #[error("its scheme is not qemu+tcp:// or qemu+tls://")]
    Scheme,
    #[error("it carries a user, a query or a fragment (libvirt options are not accepted)")]
    Options,
    #[error("its path is not /system")]
    Path,
    #[error("it names no host, or a malformed one")]
    Host,
    #[error("its port is not a number from 1 to 65535")]
    Port,
    #[error("its host is not the destination host's registered address")]
    NotTheHostsAddress,
}

/// A migration URI that passed [`parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MigrationUri<'a> {
    /// `qemu+tcp` or `qemu+tls`.
    pub scheme: &'a str,
    /// The host as written, IPv6 addresses in brackets (`[fd00::2]`).
    pub host: &'a str,
    pub port: Option<u16>,
}

/// Checks `uri` is `qemu+tcp|qemu+tls://host[:port]/system` and nothing more.
pub fn parse(uri: &str) -> Result<MigrationUri<'_>, MigrationUriError> {
    let (scheme, rest) = uri.split_once("://").ok_or(MigrationUriError::Scheme)?;
    if !ALLOWED_SCHEMES.contains(&scheme) {
        return Err(MigrationUriError::Scheme);
    }
    if rest.contains(['?', '#', '@']) {
        return Err(MigrationUriError::Options);
    }
    let (authority, path) = rest.split_once('/').ok_or(MigrationUriError::Path)?;
    if path != "system" {
        return Err(MigrationUriError::Path);
    }
    let (host, port) = split_host_port(authority)?;
    Ok(MigrationUri { scheme, host, port })
}

/// Checks `uri` with [`parse`] and that its host is the host of `agent_url` (the destination's
/// registered `http(s)://host:port` address), compared without regard to case.
pub fn check_for_host<'a>(
    uri: &'a str,
    agent_url: &str,
) -> Result<MigrationUri<'a>, MigrationUriError> {
    let parsed = parse(uri)?;
    let agent_host = url_host(agent_url).map_err(|_| MigrationUriError::NotTheHostsAddress)?;
    if !parsed.host.eq_ignore_ascii_case(agent_host) {
        return Err(MigrationUriError::NotTheHostsAddress);
    }
    Ok(parsed)
}

fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), MigrationUriError> {
    let (host, port, inner) = if let Some(bracketed) = authority.strip_prefix('[') {
        let end = bracketed.find(']').ok_or(MigrationUriError::Host)?;
        let (host, after) = authority.split_at(end + 2);
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(MigrationUriError::Host)?),
        };
        (host, port, &bracketed[..end])
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if host.contains(':') || port.is_some_and(|p| p.contains(':')) {
            return Err(MigrationUriError::Host);
        }
        (host, port, host)
    };
    let host_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':');
    if inner.is_empty() || !inner.chars().all(host_char) {
        return Err(MigrationUriError::Host);
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err(MigrationUriError::Port),
        },
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use MigrationUriError as E;

    #[test]
    fn plain_tcp_and_tls_uris_to_a_host_are_accepted() {
        for (uri, host, port) in [
            ("qemu+tcp://10.99.0.2/system", "10.99.0.2", None),
            ("qemu+tls://kvm-7.example.org:16514/system", "kvm-7.example.org", Some(16514)),
            ("qemu+tcp://[fd00::2]:16509/system", "[fd00::2]", Some(16509)),
        ] {
            let parsed = parse(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
            assert_eq!((parsed.host, parsed.port), (host, port), "{uri}");
        }
    }

    #[test]
    fn uris_that_run_programs_name_files_or_go_elsewhere_are_refused() {
        for (uri, why) in [
            ("qemu+ext:///system?command=/bin/sh", E::Scheme),
            ("qemu+ssh://root@10.0.0.2/system", E::Scheme),
            ("qemu+unix:///system?socket=/tmp/evil", E::Scheme),
            ("qemu:///system", E::Scheme),
            ("test:///default", E::Scheme),
            ("10.0.0.2", E::Scheme),
            ("qemu+tcp://10.0.0.2/system?no_verify=1", E::Options),
            ("qemu+tls://10.0.0.2/system?pkipath=/root", E::Options),
            ("qemu+tcp://user@10.0.0.2/system", E::Options),
            ("qemu+tcp://10.0.0.2/system#x", E::Options),
            ("qemu+tcp://10.0.0.2/session", E::Path),
            ("qemu+tcp://10.0.0.2", E::Path),
            ("qemu+tcp:///system", E::Host),
            ("qemu+tcp://10.0.0.2 /system", E::Host),
            ("qemu+tcp://fd00::2/system", E::Host),
            ("qemu+tcp://[fd00::2/system", E::Host),
            ("qemu+tcp://10.0.0.2:0/system", E::Port),
            ("qemu+tcp://10.0.0.2:x/system", E::Port),
            ("qemu+tcp://10.0.0.2:+1/system", E::Port),
            ("qemu+tcp://10.0.0.2:70000/system", E::Port),
        ] {
            assert_eq!(parse(uri), Err(why), "{uri}");
        }
    }

    #[test]
    fn the_uri_must_name_the_agents_own_host() {
        let agent = "http://10.99.0.2:7070";
        assert!(check_for_host("qemu+tcp://10.99.0.2/system", agent).is_ok());
        assert!(check_for_host("qemu+tcp://KVM-1/system", "https://kvm-1:7070/base").is_ok());
        assert!(check_for_host("qemu+tcp://[fd00::2]/system", "http://[fd00::2]:7070").is_ok());
        for (uri, agent) in [
            ("qemu+tcp://10.99.0.3/system", agent),
            ("qemu+tcp://10.99.0.2/system", "http://10.99.0.20:7070"),
            ("qemu+tcp://10.99.0.2/system", "not a url"),
        ] {
            assert_eq!(check_for_host(uri, agent), Err(E::NotTheHostsAddress), "{uri} {agent}");
        }
        assert_eq!(check_for_host("qemu+ext:///system", agent), Err(E::Scheme));
    }
}
