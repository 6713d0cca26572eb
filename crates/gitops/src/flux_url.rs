//! Remote URLs the way Flux needs them: `^(http|https|ssh)://`, scp-like SSH rewritten.

/// Converts a git remote URL into one Flux accepts: scp-like `user@host:path` becomes
/// `ssh://user@host/path`; `http(s)://` and `ssh://` are kept; anything else is `None`.
pub fn flux_url(url: &str) -> Option<String> {
    let url = url.trim();
    if url.starts_with("ssh://") || url.starts_with("http://") || url.starts_with("https://") {
        return Some(url.to_owned());
    }
    if url.contains("://") {
        return None;
    }
    // scp-like: [user@]host:path (no slash before the first colon)
    let colon = url.find(':')?;
    let (host, path) = (&url[..colon], &url[colon + 1..]);
    if host.is_empty() || host.contains('/') || path.is_empty() {
        return None;
    }
    let path = path.trim_start_matches('/');
    Some(format!("ssh://{host}/{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scp_like_urls_become_ssh_urls() {
        assert_eq!(
            flux_url("git@github.com:org/fleet.git").as_deref(),
            Some("ssh://git@github.com/org/fleet.git")
        );
        assert_eq!(
            flux_url("host:/srv/fleet.git").as_deref(),
            Some("ssh://host/srv/fleet.git")
        );
        assert_eq!(
            flux_url("ssh://git@h:2222/x.git").as_deref(),
            Some("ssh://git@h:2222/x.git")
        );
        assert_eq!(
            flux_url("https://h/x.git").as_deref(),
            Some("https://h/x.git")
        );
        assert_eq!(flux_url("/local/path"), None);
        assert_eq!(flux_url("file:///x"), None);
    }
}
