//! Which agent addresses a management node sends commands to. A host's management address is
//! whatever the caller who added it typed, and the node POSTs there with the host's token: left
//! open, adding a host probes any address the node can reach (cloud metadata services, the
//! node's own admin ports). Some addresses never host an agent and are always refused
//! (unspecified, link-local such as 169.254.169.254, multicast, broadcast); an operator who
//! lists the agent networks (`oxstack serve --agent-network 10.20.0.0/16`) also refuses every
//! address outside them, and DNS names, which could be re-pointed after the check.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use thiserror::Error;

/// Why an agent address is refused. Messages name only what the caller typed or configured.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum AgentAddressError {
    #[error("`{0}` is not an http:// or https:// URL with a host")]
    NotAUrl(String),
    #[error("an agent URL carries no user or password")]
    UserInfo,
    #[error("{0} never hosts an agent (unspecified, link-local, multicast or broadcast)")]
    NeverAnAgent(IpAddr),
    #[error("{addr} is outside the agent networks this node may reach ({networks})")]
    OutsideNetworks { addr: IpAddr, networks: String },
    #[error("`{0}` is a DNS name; give the agent's IP address, as this node checks it against its agent networks ({1})")]
    NameWithNetworks(String, String),
}

/// The networks agents may be in; empty means any address that is not always refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentNetworks {
    allowed: Vec<IpNet>,
}

impl AgentNetworks {
    /// Networks in CIDR form (`10.20.0.0/16`, `fd00:20::/48`); a bare address is one host.
    pub fn parse(cidrs: &[String]) -> Result<Self, String> {
        let mut allowed = Vec::with_capacity(cidrs.len());
        for text in cidrs {
            let net = IpNet::from_str(text)
                .or_else(|_| IpAddr::from_str(text).map(IpNet::from))
                .map_err(|_| {
                    format!("`{text}` is not a network in CIDR form, e.g. 10.20.0.0/16")
                })?;
            allowed.push(net.trunc());
        }
        Ok(Self { allowed })
    }

    /// Checks the host of `agent_url` (`http://10.20.0.5:7070[/…]`).
    pub fn check(&self, agent_url: &str) -> Result<(), AgentAddressError> {
        let host = url_host(agent_url)?;
        let Ok(addr) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() else {
            return match self.allowed.is_empty() {
                true => Ok(()),
                false => Err(AgentAddressError::NameWithNetworks(host.into(), self.listed())),
            };
        };
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        if never_an_agent(addr) {
            return Err(AgentAddressError::NeverAnAgent(addr));
        }
        if self.allowed.is_empty() || self.allowed.iter().any(|net| net.contains(&addr)) {
            Ok(())
        } else {
            Err(AgentAddressError::OutsideNetworks { addr, networks: self.listed() })
        }
    }

    fn listed(&self) -> String {
        self.allowed.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    }
}

fn never_an_agent(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => {
            v4.is_unspecified() || v4.is_link_local() || v4.is_multicast() || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_unspecified() || v6.is_multicast() || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// The host of an `http(s)://host[:port][/…]` URL, IPv6 in brackets (an agent's address).
pub(crate) fn url_host(url: &str) -> Result<&str, AgentAddressError> {
    let not_a_url = || AgentAddressError::NotAUrl(url.chars().take(200).collect());
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(not_a_url)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(AgentAddressError::UserInfo);
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.find(']').map(|end| &authority[..end + 2]).ok_or_else(not_a_url)?,
        None => authority.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return Err(not_a_url());
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn networks(cidrs: &[&str]) -> AgentNetworks {
        AgentNetworks::parse(&cidrs.iter().map(|c| c.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn addresses_that_never_host_an_agent_are_refused_even_with_no_networks_listed() {
        let any = AgentNetworks::default();
        for url in [
            "http://10.0.0.5:7070",
            "http://127.0.0.1:7070/h3",
            "https://kvm-1.example.org:7070",
            "http://[fd00::5]:7070",
        ] {
            assert_eq!(any.check(url), Ok(()), "{url}");
        }
        for url in [
            "http://169.254.169.254/latest/meta-data",
            "http://0.0.0.0:7070",
            "http://224.0.0.1:7070",
            "http://255.255.255.255:7070",
            "http://[fe80::1]:7070",
            "http://[::ffff:169.254.169.254]:7070",
            "http://[::]:7070",
        ] {
            assert!(matches!(any.check(url), Err(AgentAddressError::NeverAnAgent(_))), "{url}");
        }
        assert_eq!(any.check("http://u:p@10.0.0.5:7070"), Err(AgentAddressError::UserInfo));
        assert!(matches!(any.check("ftp://10.0.0.5"), Err(AgentAddressError::NotAUrl(_))));
        assert!(matches!(any.check("http://:7070"), Err(AgentAddressError::NotAUrl(_))));
    }

    #[test]
    fn with_networks_listed_only_ip_addresses_inside_them_are_taken() {
        let listed = networks(&["10.20.0.0/16", "fd00:20::/48", "192.168.1.7"]);
        for url in ["http://10.20.3.4:7070", "http://[fd00:20::9]:7070", "http://192.168.1.7"] {
            assert_eq!(listed.check(url), Ok(()), "{url}");
        }
        for url in ["http://10.21.0.1:7070", "http://127.0.0.1:7070", "http://192.168.1.8"] {
            let refused = listed.check(url);
            assert!(matches!(refused, Err(AgentAddressError::OutsideNetworks { .. })), "{url}");
        }
        let by_name = listed.check("http://kvm-1.example.org:7070");
        assert!(matches!(by_name, Err(AgentAddressError::NameWithNetworks(..))), "{by_name:?}");
        assert!(AgentNetworks::parse(&["10.0.0.0/33".to_string()]).is_err());
        assert!(AgentNetworks::parse(&["ten".to_string()]).is_err());
    }
}
