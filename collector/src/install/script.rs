//! `install.sh` as this collector serves it: the template `deploy/install.sh` with the
//! collector's URL, the CA agents should trust, the agent's data folder and the systemd unit
//! `deploy/lookout-agent.service` written into its marked lines.
//!
//! Every value goes into the script single-quoted ([`sh_quote`]), so nothing in it (a URL, a
//! PEM bundle, the unit's `$MAINPID`) is ever read by the shell as code. The URL comes from
//! `[server] public_url` or, without it, from the request's `Host` header, which is accepted
//! only when it is a host name or address and a port ([`host_is_plain`]): a script written
//! from a spoofed `Host` reaches only whoever spoofed it (the answer is `no-store`, so no shared
//! cache keeps it), and cannot carry anything but a host name into it.

/// The template (deploy/install.sh).
pub const TEMPLATE: &str = include_str!("../../../deploy/install.sh");

/// The unit the script installs, byte for byte (deploy/lookout-agent.service).
pub const UNIT: &str = include_str!("../../../deploy/lookout-agent.service");

/// Where the agent binary is installed; the unit's `ExecStart` starts it.
pub const BINARY_PATH: &str = "/usr/local/bin/lookout-agent";

/// The values written into the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Values<'a> {
    /// The collector's base URL, without a trailing `/`.
    pub url: &'a str,
    /// The PEM bundle agents should trust, or empty for the system's roots.
    pub ca: &'a str,
}

/// The script for `values`.
pub fn render(values: &Values<'_>) -> String {
    TEMPLATE
        // The usage line of the header comment, which is not quoted.
        .replace("curl -fsSL @URL@/", &format!("curl -fsSL {}/", values.url))
        .replace("@LOOKOUT_URL@", &sh_quote(values.url))
        .replace("@LOOKOUT_CA@", &sh_quote(values.ca))
        .replace("@LOOKOUT_DATA_DIR@", &sh_quote(&data_dir(UNIT)))
        .replace(
            "@LOOKOUT_VERSION@",
            &sh_quote(concat!("lookout ", env!("CARGO_PKG_VERSION"))),
        )
        .replace("@LOOKOUT_UNIT@", &sh_quote(UNIT))
}

/// `text` as one single-quoted shell word: each `'` closes the quote, is escaped, and reopens.
pub fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The agent's data folder under this unit: `/var/lib/<StateDirectory>`, which systemd makes
/// and gives to the service's user; `/var/lib/lookout-agent`, the agent's default, without one.
pub fn data_dir(unit: &str) -> String {
    let state = unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("StateDirectory="))
        .and_then(|v| v.split_whitespace().next())
        // `name:mode` sets the folder's mode in newer systemd.
        .map(|v| v.split(':').next().unwrap_or(v))
        .filter(|v| !v.is_empty());
    format!("/var/lib/{}", state.unwrap_or("lookout-agent"))
}

/// True when `host` (a `Host` header) is a DNS name, an IPv4 address or a bracketed IPv6
/// address, with an optional port: nothing else may reach the script.
pub fn host_is_plain(host: &str) -> bool {
    if host.is_empty() || host.len() > 255 {
        return false;
    }
    let (name, port) = match host.rsplit_once(':') {
        // `[::1]:7700`, `a.example:7700`; a bare IPv6 address is not a Host header.
        Some((name, port)) if !name.is_empty() && (!name.contains(':') || name.ends_with(']')) => {
            (name, Some(port))
        }
        Some(_) if !host.starts_with('[') => return false,
        Some(_) | None => (host, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let name_ok = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !name.starts_with(['-', '.'])
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }
    };
    port_ok && name_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_single_quoted_whatever_they_hold() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
        let script = render(&Values {
            url: "https://c.example:7700",
            ca: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        });
        for marker in [
            "@LOOKOUT_URL@",
            "@LOOKOUT_CA@",
            "@LOOKOUT_UNIT@",
            "@LOOKOUT_DATA_DIR@",
            "@LOOKOUT_VERSION@",
            "@URL@",
        ] {
            assert!(!script.contains(marker), "{marker} left in the script");
        }
        assert!(script.contains("LOOKOUT_URL='https://c.example:7700'\n"));
        assert!(script.contains("LOOKOUT_CA='-----BEGIN CERTIFICATE-----\nMIIB\n"));
        assert!(script.contains(&format!("LOOKOUT_UNIT={}\n", sh_quote(UNIT))));
        assert!(script.contains("curl -fsSL https://c.example:7700/install.sh | sudo sh"));
    }

    #[test]
    fn the_unit_starts_what_the_script_installs_with_the_files_it_writes() {
        let exec = UNIT
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .expect("ExecStart");
        assert!(exec.starts_with(BINARY_PATH), "{exec}");
        assert!(exec.contains("/etc/lookout/agent.toml"), "{exec}");
        assert!(
            UNIT.lines().any(|l| l
                .strip_prefix("EnvironmentFile=")
                .is_some_and(|f| f.trim_start_matches('-') == "/etc/lookout/agent.env")),
            "the unit reads /etc/lookout/agent.env, where the script keeps the token"
        );
        assert_eq!(data_dir(UNIT), "/var/lib/lookout-agent");
        assert_eq!(data_dir("StateDirectory=other:0700\n"), "/var/lib/other");
        assert_eq!(data_dir("[Service]\n"), "/var/lib/lookout-agent");
    }

    #[test]
    fn only_a_plain_host_and_port_is_taken_from_the_request() {
        for good in [
            "collector.example",
            "collector.example:7700",
            "127.0.0.1:7700",
            "[::1]:7700",
            "[::1]",
            "c-1.internal",
        ] {
            assert!(host_is_plain(good), "{good}");
        }
        for bad in [
            "",
            "a b",
            "a'b",
            "a\"b:1",
            "$(reboot)",
            "a;b",
            "a:port",
            "a:123456",
            "a:",
            "::1",
            "[::1",
            "[zz]:1",
            "-a.example",
            "a/b",
            "a@b",
            &"a".repeat(256),
        ] {
            assert!(!host_is_plain(bad), "{bad:?}");
        }
    }
}
