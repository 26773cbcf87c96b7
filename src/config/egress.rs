//! `delivery.*` as the transport takes it: the proxy, `no_proxy` and extra CAs checked, and
//! `extra_ca_pem` read from its file when it names one.

use super::Delivery;

impl Delivery {
    /// The transport's settings: `extra_ca_pem` read from its file when it is a path.
    pub fn egress(&self) -> Result<crate::delivery::Egress, String> {
        let extra_ca_pem = match self.extra_ca_pem.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(pem) if pem.starts_with("-----BEGIN") => Some(pem.to_string()),
            Some(path) => {
                Some(std::fs::read_to_string(path).map_err(|e| format!("delivery.extra_ca_pem: reading {path}: {e}"))?)
            }
        };
        if let Some(pem) = &extra_ca_pem {
            crate::delivery::clients::certificates(pem, "delivery.extra_ca_pem")?;
        }
        if let Some(url) = self.proxy_url.as_deref().filter(|u| !u.trim().is_empty()) {
            crate::delivery::egress::parse_proxy_url(url)?;
        }
        crate::delivery::egress::NoProxy::parse(&self.no_proxy)?;
        Ok(crate::delivery::Egress {
            allow_private_networks: self.allow_private_networks,
            proxy_url: self.proxy_url.clone().filter(|u| !u.trim().is_empty()),
            no_proxy: self.no_proxy.clone(),
            extra_ca_pem,
        })
    }

    /// [`Delivery::egress`]'s problem, if any, with the key it is about.
    pub(super) fn egress_checked(&self) -> Result<(), (&'static str, String)> {
        let Err(problem) = self.egress() else { return Ok(()) };
        // Each problem begins with the key it is about.
        let key = ["delivery.proxy_url", "delivery.no_proxy", "delivery.extra_ca_pem"]
            .into_iter()
            .find(|k| problem.starts_with(k))
            .unwrap_or("delivery");
        let problem = problem.strip_prefix(key).unwrap_or(&problem).trim_start_matches(": ");
        Err((key, problem.to_string()))
    }
}
