//! `console.*`: what the web console and the tenant portal allow the browser.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Console {
    /// The pages that may frame the tenant portal: a CSP `frame-ancestors` source list
    /// (`'self'`, `https://dash.example.com`, `https://*.example.com`), or `'none'`.
    pub portal_frame_ancestors: String,
}

impl Default for Console {
    fn default() -> Self {
        Console {
            portal_frame_ancestors: "'none'".into(),
        }
    }
}

impl Console {
    /// `portal_frame_ancestors` as a checked source list, or what is wrong with it.
    pub fn frame_ancestors(&self) -> Result<Vec<String>, String> {
        let sources: Vec<String> = self
            .portal_frame_ancestors
            .split_ascii_whitespace()
            .map(str::to_string)
            .collect();
        if sources.is_empty() {
            return Err("is empty: give 'none' or the origins that may frame the portal".into());
        }
        if sources.len() > 1 && sources.iter().any(|s| s == "'none'") {
            return Err("'none' cannot be listed with other sources".into());
        }
        for source in &sources {
            if !is_source(source) {
                return Err(format!(
                    "{source:?} is not a frame-ancestors source: give 'self', 'none', or an origin such as \
                     https://dash.example.com (a leading *. for subdomains)"
                ));
            }
        }
        Ok(sources)
    }

    /// May the portal be framed at all?
    pub fn portal_framed(&self) -> bool {
        self.portal_frame_ancestors.trim() != "'none'"
    }
}

/// `'self'`, `'none'`, or `scheme://host[:port]` with `*.` allowed at the host's start.
fn is_source(source: &str) -> bool {
    if source == "'self'" || source == "'none'" {
        return true;
    }
    let Some((scheme, rest)) = source.split_once("://") else {
        return false;
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    let host = host.strip_prefix("*.").unwrap_or(host);
    matches!(scheme, "http" | "https")
        && !host.is_empty()
        && host
            .split('.')
            .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        && port.is_none_or(|p| p == "*" || (!p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(list: &str) -> Result<Vec<String>, String> {
        Console {
            portal_frame_ancestors: list.into(),
        }
        .frame_ancestors()
    }

    #[test]
    fn frame_ancestors_take_origins_self_or_none() {
        assert_eq!(check("'none'").unwrap(), ["'none'"]);
        // Any whitespace between sources (a TOML multi-line string); the list has none.
        assert_eq!(
            check("'self'\n\thttps://a.example\r\n").unwrap(),
            ["'self'", "https://a.example"]
        );
        assert_eq!(
            check(" 'self'  https://dash.example.com https://*.example.com:8443 http://localhost:3000 ").unwrap(),
            [
                "'self'",
                "https://dash.example.com",
                "https://*.example.com:8443",
                "http://localhost:3000"
            ]
        );
        for wrong in [
            "",
            "'none' 'self'",
            "none",
            "dash.example.com",
            "https://dash.example.com/path",
            "https://a.example; script-src *",
            "javascript://x",
            "https://",
            "https://a.example:99999x",
            "'unsafe-inline'",
        ] {
            assert!(check(wrong).is_err(), "{wrong:?} was accepted");
        }
        let framed = Console {
            portal_frame_ancestors: "https://dash.example.com".into(),
        };
        assert!(framed.portal_framed());
        assert!(!Console::default().portal_framed());
    }
}
