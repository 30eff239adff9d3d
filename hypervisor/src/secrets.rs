//! Keeping secrets out of what is printed: a URL's password (a database's, a broker's), for
//! messages and logs. Agent tokens are [`crate::AgentToken`], whose `Debug` prints nothing.
//! And the hex form secrets, keys and signatures are written in ([`hex`], [`unhex`]).

/// `url` with the password of its user info replaced by `***`
/// (`postgres://oxstack:***@db:5432/oxstack`); a URL without one is returned as it is.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_owned() };
    let authority_end =
        url[scheme_end..].find(['/', '?', '#']).map_or(url.len(), |i| scheme_end + i);
    let Some(at) = url[scheme_end..authority_end].rfind('@').map(|i| scheme_end + i) else {
        return url.to_owned();
    };
    match url[scheme_end..at].find(':') {
        Some(colon) => format!("{}:***{}", &url[..scheme_end + colon], &url[at..]),
        None => url.to_owned(),
    }
}

/// `bytes` as lower-case hex digits.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of `text`, hex digits in pairs; `None` when it is not that.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_password_is_hidden() {
        for (url, shown) in [
            ("postgres://ox:s3cret@db:5432/ox", "postgres://ox:***@db:5432/ox"),
            ("amqp://guest:p%40ss@127.0.0.1:5672/%2f", "amqp://guest:***@127.0.0.1:5672/%2f"),
            ("postgres://ox:a:b@c@db/ox", "postgres://ox:***@db/ox"),
            ("postgres://ox@db/ox", "postgres://ox@db/ox"),
            ("postgres://db/ox?user=a@b", "postgres://db/ox?user=a@b"),
            ("sqlite://oxstack.db", "sqlite://oxstack.db"),
            ("sqlite::memory:", "sqlite::memory:"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
