//! The public URLs the platform generates (the portal's "Open" link, Odoo's
//! `web.base.url`, links in mails, admin's links to tenants), all from one
//! place: `PUBLIC_SCHEME`, `BASE_DOMAIN` and `PUBLIC_PORT`. The port is left
//! out when it is the scheme's default, as browsers do.

/// Where the platform is reached from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrls {
    scheme: String,
    base_domain: String,
    /// `None` for the scheme's default port.
    port: Option<u16>,
}

/// 80 for http, 443 for https.
pub fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

impl PublicUrls {
    /// `port` equal to the scheme's default counts as no port.
    pub fn new(scheme: &str, base_domain: &str, port: Option<u16>) -> Self {
        Self {
            scheme: scheme.to_owned(),
            base_domain: base_domain.to_owned(),
            port: port.filter(|p| *p != default_port(scheme)),
        }
    }

    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    pub fn base_domain(&self) -> &str {
        &self.base_domain
    }

    /// The port URLs carry, `None` when it is the scheme's default.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// `host[:port]`: the `Host` a browser sends for a name under the base
    /// domain (`label` "portal" gives `portal.<base domain>[:port]`).
    pub fn authority(&self, label: &str) -> String {
        match self.port {
            Some(port) => format!("{label}.{}:{port}", self.base_domain),
            None => format!("{label}.{}", self.base_domain),
        }
    }

    /// `<base domain>[:port]`, what follows `<label>.` in every authority.
    pub fn base_authority(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.base_domain),
            None => self.base_domain.clone(),
        }
    }

    /// `scheme://label.<base domain>[:port]`, without a trailing slash.
    pub fn origin(&self, label: &str) -> String {
        format!("{}://{}", self.scheme, self.authority(label))
    }

    /// A tenant's Odoo: `scheme://<subdomain>.<base domain>[:port]`.
    pub fn tenant(&self, subdomain: &str) -> String {
        self.origin(subdomain)
    }

    /// The portal's origin, where links in customers' mails point.
    pub fn portal(&self) -> String {
        self.origin("portal")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports_are_omitted() {
        let http = PublicUrls::new("http", "saas.localhost", Some(80));
        assert_eq!(http.tenant("acme"), "http://acme.saas.localhost");
        let https = PublicUrls::new("https", "saas.example.com", Some(443));
        assert_eq!(https.portal(), "https://portal.saas.example.com");
        assert_eq!(
            PublicUrls::new("https", "x.test", None).tenant("a"),
            "https://a.x.test"
        );
    }

    #[test]
    fn other_ports_are_in_every_url() {
        let urls = PublicUrls::new("http", "saas.localhost", Some(8081));
        assert_eq!(urls.tenant("acme"), "http://acme.saas.localhost:8081");
        assert_eq!(urls.portal(), "http://portal.saas.localhost:8081");
        assert_eq!(urls.authority("admin"), "admin.saas.localhost:8081");
        assert_eq!(urls.base_authority(), "saas.localhost:8081");
        // 443 is not the default of http, nor 80 of https.
        assert_eq!(
            PublicUrls::new("http", "d.test", Some(443)).tenant("a"),
            "http://a.d.test:443"
        );
        assert_eq!(
            PublicUrls::new("https", "d.test", Some(80)).tenant("a"),
            "https://a.d.test:80"
        );
    }
}
