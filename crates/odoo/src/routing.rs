//! The nginx routing map: one line per tenant, `<subdomain> <upstream>;` or
//! `<subdomain> suspended;`, for a `map` block that includes the file. Written to
//! a temporary file in the same directory and renamed, so nginx never reads half.

use std::io::Write as _;
use std::path::Path;

use crate::error::{OdooError, Result};

/// Where a subdomain goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteTarget {
    /// An nginx upstream name or `host:port`.
    Upstream(String),
    /// Served the "suspended" page instead of Odoo.
    Suspended,
}

/// One line of the map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub subdomain: String,
    pub target: RouteTarget,
}

/// The word the map uses for suspended tenants.
pub const SUSPENDED: &str = "suspended";

fn check_subdomain(label: &str) -> Result<()> {
    let ok = (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(OdooError::invalid(
            "subdomain",
            format!("{label:?} is not a lower-case RFC 1123 label"),
        ))
    }
}

fn check_upstream(upstream: &str) -> Result<()> {
    let ok = !upstream.is_empty()
        && upstream.len() <= 255
        && upstream != SUSPENDED
        && upstream.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
        });
    if ok {
        Ok(())
    } else {
        Err(OdooError::invalid(
            "upstream",
            format!("{upstream:?} must be a host[:port] or upstream name"),
        ))
    }
}

/// The map file body, sorted by subdomain; refuses duplicates and anything that
/// could break out of the `map` block.
pub fn render_routing_map(routes: &[Route]) -> Result<String> {
    let mut sorted: Vec<&Route> = routes.iter().collect();
    sorted.sort_by(|a, b| a.subdomain.cmp(&b.subdomain));
    let mut out = String::from("# Written by odoo-saas; do not edit.\n");
    let mut previous: Option<&str> = None;
    for route in sorted {
        check_subdomain(&route.subdomain)?;
        if previous == Some(route.subdomain.as_str()) {
            return Err(OdooError::invalid(
                "routing map",
                format!("subdomain {:?} appears twice", route.subdomain),
            ));
        }
        previous = Some(&route.subdomain);
        let target = match &route.target {
            RouteTarget::Upstream(upstream) => {
                check_upstream(upstream)?;
                upstream.as_str()
            }
            RouteTarget::Suspended => SUSPENDED,
        };
        out.push_str(&format!("{} {};\n", route.subdomain, target));
    }
    Ok(out)
}

/// Renders the map and replaces the file at `path` atomically.
pub async fn write_routing_map(path: &Path, routes: &[Route]) -> Result<()> {
    let body = render_routing_map(routes)?;
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || write_atomically(&path, body.as_bytes())).await?
}

fn write_atomically(path: &Path, body: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| OdooError::io(&dir, e))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".routing-map-")
        .tempfile_in(&dir)
        .map_err(|e| OdooError::io(&dir, e))?;
    temp.write_all(body)
        .map_err(|e| OdooError::io(temp.path(), e))?;
    temp.as_file()
        .sync_all()
        .map_err(|e| OdooError::io(temp.path(), e))?;
    // nginx (another user) must be able to read it.
    std::fs::set_permissions(
        temp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .map_err(|e| OdooError::io(temp.path(), e))?;
    temp.persist(path)
        .map_err(|e| OdooError::io(path, e.error))?;
    if let Ok(dir) = std::fs::File::open(&dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(sub: &str, target: RouteTarget) -> Route {
        Route {
            subdomain: sub.to_owned(),
            target,
        }
    }

    #[test]
    fn renders_sorted_lines() -> Result<()> {
        let body = render_routing_map(&[
            route("zeta", RouteTarget::Suspended),
            route("acme", RouteTarget::Upstream("odoo:8069".into())),
        ])?;
        assert_eq!(
            body,
            "# Written by odoo-saas; do not edit.\nacme odoo:8069;\nzeta suspended;\n"
        );
        Ok(())
    }

    #[test]
    fn refuses_injection_and_duplicates() {
        for bad in ["Acme", "a b", "a;b", "-a", "a-", "", "a}"] {
            assert!(
                render_routing_map(&[route(bad, RouteTarget::Suspended)]).is_err(),
                "{bad}"
            );
        }
        for bad in ["odoo; return 200", "x y", "", "suspended", "a{b}"] {
            assert!(
                render_routing_map(&[route("acme", RouteTarget::Upstream(bad.into()))]).is_err(),
                "{bad}"
            );
        }
        let dup = [
            route("acme", RouteTarget::Suspended),
            route("acme", RouteTarget::Suspended),
        ];
        assert!(render_routing_map(&dup).is_err());
    }
}
