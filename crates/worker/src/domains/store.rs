//! The certificate store (`CERT_STORE_DIR`) and what nginx reads from it:
//! each issuance in a directory of its own, `<domain>/<unix time>/` with
//! `privkey.pem` (mode 600) and `fullchain.pem`, so a renewal never puts a
//! new key beside an old chain while nginx loads them per handshake; and
//! the maps in `domains/` beside the routing map, each written to a
//! temporary file and renamed (nginx/README.md, "Custom domains").

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret as _;

use super::acme::{Issued, domain_dir};

/// Writes `body` at `path` through a temporary file in the same directory,
/// with `mode`; the directory is made (mode `dir_mode`) when missing.
fn write_atomically(path: &Path, body: &[u8], mode: u32, dir_mode: u32) -> Result<(), String> {
    let dir = path
        .parent()
        .ok_or_else(|| format!("{} has no directory", path.display()))?;
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|err| format!("{}: {err}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode))
            .map_err(|err| format!("{}: {err}", dir.display()))?;
    }
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|err| format!("{}: {err}", dir.display()))?;
    // tempfile makes it 600; a public file is widened before its content
    // is there, a private one never is.
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(mode))
        .map_err(|err| format!("{}: {err}", temp.path().display()))?;
    temp.write_all(body)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(|err| format!("{}: {err}", temp.path().display()))?;
    temp.persist(path)
        .map_err(|err| format!("{}: {}", path.display(), err.error))?;
    Ok(())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| format!("a file task stopped: {err}"))?
}

/// A secret file (mode 600): the ACME account, private keys.
pub async fn write_private(path: &Path, body: &[u8]) -> Result<(), String> {
    let (path, body) = (path.to_path_buf(), body.to_vec());
    blocking(move || write_atomically(&path, &body, 0o600, 0o700)).await
}

/// A file nginx reads (mode 644): challenge answers, maps, chains.
pub async fn write_public(path: &Path, body: &[u8]) -> Result<(), String> {
    let (path, body) = (path.to_path_buf(), body.to_vec());
    blocking(move || write_atomically(&path, &body, 0o644, 0o755)).await
}

/// What a certificate says about itself.
#[derive(Debug, Clone)]
pub struct CertificateFacts {
    pub issuer: String,
    pub not_after: DateTime<Utc>,
}

/// The issuer (its common name, else the whole name) and expiry of the
/// first certificate of `chain_pem`.
pub fn facts(chain_pem: &str) -> Result<CertificateFacts, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(chain_pem.as_bytes())
        .map_err(|err| format!("the CA sent no PEM certificate: {err}"))?;
    let certificate = pem
        .parse_x509()
        .map_err(|err| format!("the CA sent an unreadable certificate: {err}"))?;
    let issuer = certificate
        .issuer()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| certificate.issuer().to_string());
    let not_after = DateTime::from_timestamp(certificate.validity().not_after.timestamp(), 0)
        .ok_or("the certificate's expiry is out of range")?;
    Ok(CertificateFacts { issuer, not_after })
}

/// Installs a new certificate of `domain`: a new version directory, key
/// first. Returns the directory.
pub async fn install(cert_store: &Path, domain: &str, issued: &Issued) -> Result<PathBuf, String> {
    let base = domain_dir(cert_store, domain);
    let mut version = Utc::now().timestamp();
    while base.join(version.to_string()).exists() {
        version += 1;
    }
    let dir = base.join(version.to_string());
    write_private(
        &dir.join("privkey.pem"),
        issued.key_pem.expose_secret().as_bytes(),
    )
    .await?;
    write_public(&dir.join("fullchain.pem"), issued.chain_pem.as_bytes()).await?;
    Ok(dir)
}

/// The newest complete version of `domain`'s certificate, if any.
pub fn current(cert_store: &Path, domain: &str) -> Option<PathBuf> {
    versions(&domain_dir(cert_store, domain)).pop()
}

/// Complete versions, oldest first.
fn versions(base: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    let mut found: Vec<(i64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: i64 = entry.file_name().to_str()?.parse().ok()?;
            let path = entry.path();
            (path.join("privkey.pem").is_file() && path.join("fullchain.pem").is_file())
                .then_some((version, path))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, path)| path).collect()
}

/// A domain nginx serves: its tenant's subdomain and certificate.
#[derive(Debug, Clone)]
pub struct Served {
    pub domain: String,
    pub subdomain: String,
    pub certificate: PathBuf,
}

fn nginx_path(path: &Path) -> Result<String, String> {
    let text = path
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))?;
    if text.is_empty()
        || text
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | ';' | '{' | '}' | '$' | '\\'))
    {
        return Err(format!("{text:?} cannot be named in an nginx map"));
    }
    Ok(text.to_owned())
}

fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// The four files nginx includes, by name.
pub fn render_maps(served: &[Served]) -> Result<Vec<(&'static str, String)>, String> {
    let header = "# Written by odoo-saas; do not edit.\n";
    let mut tenants = String::from(header);
    let mut certificates = String::from(header);
    let mut keys = String::from(header);
    let mut names = String::from(header);
    let mut sorted: Vec<&Served> = served.iter().collect();
    sorted.sort_by(|a, b| a.domain.cmp(&b.domain));
    for entry in &sorted {
        if !safe_name(&entry.domain) || !safe_name(&entry.subdomain) {
            return Err(format!(
                "{:?} -> {:?} cannot be written into an nginx map",
                entry.domain, entry.subdomain
            ));
        }
        let chain = nginx_path(&entry.certificate.join("fullchain.pem"))?;
        let key = nginx_path(&entry.certificate.join("privkey.pem"))?;
        tenants.push_str(&format!("{} {};\n", entry.domain, entry.subdomain));
        certificates.push_str(&format!("{} {chain};\n", entry.domain));
        keys.push_str(&format!("{} {key};\n", entry.domain));
    }
    if !sorted.is_empty() {
        let list: Vec<&str> = sorted.iter().map(|e| e.domain.as_str()).collect();
        names.push_str(&format!("server_name {};\n", list.join(" ")));
    }
    Ok(vec![
        ("certificates.map", certificates),
        ("keys.map", keys),
        ("tenants.map", tenants),
        ("server-names.conf", names),
    ])
}

/// Writes the maps into `map_dir`, certificates before routes, so a name
/// nginx routes always has its certificate.
pub async fn write_maps(map_dir: &Path, served: &[Served]) -> Result<(), String> {
    for (name, body) in render_maps(served)? {
        let path = map_dir.join(name);
        let unchanged = tokio::fs::read_to_string(&path)
            .await
            .is_ok_and(|old| old == body);
        if !unchanged {
            write_public(&path, body.as_bytes()).await?;
        }
    }
    Ok(())
}

/// Removes what the store holds for domains not in `keep` (removed
/// domains), all but the two newest versions of the others (the one nginx
/// may still have loaded stays until the next issuance), and challenge
/// answers older than an hour (an attempt cut off by a crash).
pub async fn sweep(
    cert_store: &Path,
    challenge_dir: &Path,
    keep: Vec<String>,
) -> Result<usize, String> {
    let (cert_store, challenge_dir) = (cert_store.to_path_buf(), challenge_dir.to_path_buf());
    blocking(move || {
        let mut removed = 0;
        if let Ok(entries) = std::fs::read_dir(&cert_store) {
            for entry in entries.filter_map(Result::ok) {
                let path = entry.path();
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if !path.is_dir() || !safe_name(&name) {
                    continue;
                }
                if keep.contains(&name) {
                    let old = versions(&path);
                    for stale in old.iter().take(old.len().saturating_sub(2)) {
                        std::fs::remove_dir_all(stale)
                            .map_err(|err| format!("{}: {err}", stale.display()))?;
                    }
                } else {
                    std::fs::remove_dir_all(&path)
                        .map_err(|err| format!("{}: {err}", path.display()))?;
                    removed += 1;
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(&challenge_dir) {
            let hour = std::time::Duration::from_secs(3600);
            for entry in entries.filter_map(Result::ok) {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > hour);
                if old {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(removed)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_sorted_and_refuse_what_would_break_them() -> Result<(), String> {
        let served = [
            Served {
                domain: "shop.example".into(),
                subdomain: "globex".into(),
                certificate: PathBuf::from("/certs/shop.example/2"),
            },
            Served {
                domain: "erp.acme.example".into(),
                subdomain: "acme".into(),
                certificate: PathBuf::from("/certs/erp.acme.example/1"),
            },
        ];
        let maps = render_maps(&served)?;
        let get = |name: &str| {
            maps.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, body)| body.clone())
                .unwrap_or_default()
        };
        assert!(
            get("tenants.map").ends_with("erp.acme.example acme;\nshop.example globex;\n"),
            "{}",
            get("tenants.map")
        );
        assert!(
            get("keys.map").contains("erp.acme.example /certs/erp.acme.example/1/privkey.pem;\n")
        );
        assert!(get("server-names.conf").ends_with("server_name erp.acme.example shop.example;\n"));
        // No domain: only the header comment, no entry.
        assert!(
            render_maps(&[])?
                .iter()
                .all(|(_, body)| body.lines().all(|line| line.starts_with('#')))
        );
        for (domain, dir) in [
            ("a;b.example", "/certs"),
            ("evil.example", "/certs dir"),
            ("evil.example", "/certs/$x"),
        ] {
            let bad = Served {
                domain: domain.into(),
                subdomain: "acme".into(),
                certificate: PathBuf::from(dir),
            };
            assert!(render_maps(&[bad]).is_err(), "{domain} {dir}");
        }
        Ok(())
    }
}
