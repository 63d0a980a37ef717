//! Talking to a real Odoo 18 the way a customer's browser and Odoo's own
//! database manager do, for the `ODOO_TEST_URL` suite and benchmarks: one
//! session per tenant (its `session_id` cookie, the tenant's Host header),
//! a page and every `/web/assets/...` bundle it references, JSON-RPC, and
//! the database manager's backup, restore, duplicate and drop (which need an
//! Odoo with `list_db = True` and its master password).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, HOST, SET_COOKIE};
use url::Url;

/// The `/web/assets/...` URLs a page references in `href="..."` or
/// `src="..."`, in order, without duplicates.
pub fn asset_links(html: &str) -> Vec<String> {
    let mut links = Vec::new();
    for attribute in ["href=\"", "src=\""] {
        for (at, _) in html.match_indices(attribute) {
            let rest = &html[at + attribute.len()..];
            let Some(end) = rest.find('"') else { continue };
            let link = &rest[..end];
            if link.starts_with("/web/assets/") && !links.iter().any(|l| l == link) {
                links.push(link.to_owned());
            }
        }
    }
    links
}

/// One fetched URL.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub path: String,
    pub status: StatusCode,
    pub bytes: usize,
    pub took: Duration,
}

/// A page and the bundles it references.
#[derive(Clone, Debug)]
pub struct PageLoad {
    pub page: Fetched,
    pub bundles: Vec<Fetched>,
    /// The page, then its bundles fetched `parallel` at a time, as a browser does.
    pub took: Duration,
}

impl PageLoad {
    /// Fails naming the first URL that did not answer 200 (or answered nothing).
    pub fn ensure_complete(&self) -> anyhow::Result<()> {
        for fetched in std::iter::once(&self.page).chain(&self.bundles) {
            ensure!(
                fetched.status == StatusCode::OK && fetched.bytes > 0,
                "{} answered {} with {} bytes",
                fetched.path,
                fetched.status,
                fetched.bytes
            );
        }
        ensure!(
            !self.bundles.is_empty(),
            "{} references no asset bundle",
            self.page.path
        );
        Ok(())
    }

    pub fn bundle_bytes(&self) -> usize {
        self.bundles.iter().map(|b| b.bytes).sum()
    }
}

/// A browser of one tenant: its Host header and its session cookie.
#[derive(Clone)]
pub struct TenantBrowser {
    odoo: Url,
    host: String,
    client: reqwest::Client,
    session: Option<String>,
}

impl TenantBrowser {
    /// Requests go to `odoo` with `Host: host` (Odoo's dbfilter picks the
    /// database from it), without following redirects.
    pub fn new(odoo: &Url, host: &str) -> anyhow::Result<Self> {
        Ok(Self {
            odoo: odoo.clone(),
            host: host.to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(300))
                .build()?,
            session: None,
        })
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        let mut request = self
            .client
            .request(method, self.odoo.join(path)?)
            .header(HOST, &self.host);
        if let Some(session) = &self.session {
            request = request.header(COOKIE, format!("session_id={session}"));
        }
        Ok(request)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<(Fetched, String)> {
        let started = Instant::now();
        let response = self.request(reqwest::Method::GET, path)?.send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        Ok((
            Fetched {
                path: path.to_owned(),
                status,
                bytes: body.len(),
                took: started.elapsed(),
            },
            String::from_utf8_lossy(&body).into_owned(),
        ))
    }

    /// `path` and every bundle it references, `parallel` bundles at a time.
    pub async fn load(&self, path: &str, parallel: usize) -> anyhow::Result<PageLoad> {
        let started = Instant::now();
        let (page, html) = self.get(path).await?;
        let links = asset_links(&html);
        let mut bundles = Vec::with_capacity(links.len());
        for chunk in links.chunks(parallel.max(1)) {
            let fetches = chunk.iter().map(|link| self.get(link));
            for fetched in futures::future::join_all(fetches).await {
                bundles.push(fetched?.0);
            }
        }
        Ok(PageLoad {
            page,
            bundles,
            took: started.elapsed(),
        })
    }

    /// Signs in through `/web/session/authenticate` (what the login form
    /// ends in); keeps the session cookie; returns the user id.
    pub async fn sign_in(&mut self, db: &str, login: &str, password: &str) -> anyhow::Result<i64> {
        let body = serde_json::json!({
            "jsonrpc": "2.0", "method": "call", "id": 1,
            "params": {"db": db, "login": login, "password": password},
        });
        let response = self
            .request(reqwest::Method::POST, "/web/session/authenticate")?
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let cookie = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("session_id="))
            .and_then(|v| v.split(';').next())
            .map(str::to_owned);
        let answer: serde_json::Value = response.json().await?;
        let uid = answer["result"]["uid"].as_i64();
        match (status, uid, cookie) {
            (StatusCode::OK, Some(uid), Some(cookie)) => {
                self.session = Some(cookie);
                Ok(uid)
            }
            _ => bail!("signing in to {db} as {login}: HTTP {status}: {answer}"),
        }
    }

    /// What a customer's first visit costs: the login page and its bundles,
    /// signing in, the web client (`/odoo`) and its bundles.
    pub async fn first_visit(
        &mut self,
        db: &str,
        login: &str,
        password: &str,
    ) -> anyhow::Result<FirstVisit> {
        let started = Instant::now();
        let login_page = self.load("/web/login", 6).await?;
        self.sign_in(db, login, password).await?;
        let web_client = self.load("/odoo", 6).await?;
        Ok(FirstVisit {
            login_page,
            web_client,
            took: started.elapsed(),
        })
    }
}

/// [`TenantBrowser::first_visit`]'s pages.
#[derive(Clone, Debug)]
pub struct FirstVisit {
    pub login_page: PageLoad,
    pub web_client: PageLoad,
    pub took: Duration,
}

impl FirstVisit {
    pub fn ensure_complete(&self) -> anyhow::Result<()> {
        self.login_page.ensure_complete()?;
        self.web_client.ensure_complete()
    }
}

/// JSON-RPC on `/jsonrpc` (`service`, `method`, `args`) through `host`;
/// returns `result`, or fails with Odoo's error.
pub async fn json_rpc(
    odoo: &Url,
    host: &str,
    service: &str,
    method: &str,
    args: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let body = serde_json::json!({
        "jsonrpc": "2.0", "method": "call", "id": 1,
        "params": {"service": service, "method": method, "args": args},
    });
    let answer: serde_json::Value = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?
        .post(odoo.join("/jsonrpc")?)
        .header(HOST, host)
        .json(&body)
        .send()
        .await?
        .json()
        .await?;
    if let Some(error) = answer.get("error") {
        bail!("{service}.{method}: {error}");
    }
    Ok(answer["result"].clone())
}

/// Odoo's database manager (`/web/database/*`, the `db` RPC service): an
/// Odoo with `list_db = True` on the same cluster and data_dir.
#[derive(Clone, Debug)]
pub struct DatabaseManager {
    pub url: Url,
    pub master_password: String,
}

impl DatabaseManager {
    fn client() -> anyhow::Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()?)
    }

    /// `/web/database/backup` as a zip (dump.sql, filestore, manifest.json),
    /// asked through `host`: Odoo backs up only a database its dbfilter lets
    /// that host see.
    pub async fn backup(&self, db: &str, host: &str) -> anyhow::Result<Vec<u8>> {
        let response = Self::client()?
            .post(self.url.join("/web/database/backup")?)
            .header(HOST, host)
            .form(&[
                ("master_pwd", self.master_password.as_str()),
                ("name", db),
                ("backup_format", "zip"),
            ])
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?.to_vec();
        ensure!(
            status == StatusCode::OK && body.starts_with(b"PK"),
            "Odoo's backup of {db}: HTTP {status}: {}",
            error_of(&String::from_utf8_lossy(&body))
        );
        Ok(body)
    }

    /// `/web/database/restore` of `zip` as a new database `name` (`copy`:
    /// Odoo gives it a new uuid, as "This database was copied").
    pub async fn restore(&self, name: &str, zip: &[u8], copy: bool) -> anyhow::Result<()> {
        let boundary = format!("odoo-saas-{}", crate::unique_suffix());
        let mut body = Vec::with_capacity(zip.len() + 1024);
        let mut field = |name: &str, value: &str| {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        };
        field("master_pwd", &self.master_password);
        field("name", name);
        field("copy", if copy { "true" } else { "false" });
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"backup_file\"; filename=\"backup.zip\"\r\nContent-Type: application/zip\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(zip);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let response = reqwest::Client::builder()
            .timeout(Duration::from_secs(600))
            .redirect(reqwest::redirect::Policy::none())
            .build()?
            .post(self.url.join("/web/database/restore")?)
            .header(
                CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await?;
        // Success redirects to /web/database/manager; a failure renders the
        // manager page with the error (200).
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        ensure!(
            status.is_redirection(),
            "Odoo's restore of {name}: HTTP {status}: {}",
            error_of(&text)
        );
        Ok(())
    }

    /// `db.duplicate_database` over JSON-RPC.
    pub async fn duplicate(&self, from: &str, to: &str) -> anyhow::Result<()> {
        let result = json_rpc(
            &self.url,
            self.url.host_str().context("manager URL has no host")?,
            "db",
            "duplicate_database",
            serde_json::json!([self.master_password, from, to]),
        )
        .await?;
        ensure!(
            result == serde_json::json!(true),
            "duplicate_database: {result}"
        );
        Ok(())
    }

    /// `db.drop` over JSON-RPC (database and filestore).
    pub async fn drop_database(&self, db: &str) -> anyhow::Result<()> {
        let result = json_rpc(
            &self.url,
            self.url.host_str().context("manager URL has no host")?,
            "db",
            "drop",
            serde_json::json!([self.master_password, db]),
        )
        .await?;
        ensure!(result == serde_json::json!(true), "drop {db}: {result}");
        Ok(())
    }
}

/// The error text of a database manager page (its alert), or the start of it.
fn error_of(html: &str) -> String {
    html.split("alert-danger")
        .nth(1)
        .and_then(|rest| rest.split('>').nth(1))
        .and_then(|rest| rest.split('<').next())
        .map(|e| e.trim().to_owned())
        .unwrap_or_else(|| html.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_bundles_a_page_references_once_each() {
        let html = r#"<link type="text/css" rel="stylesheet" href="/web/assets/618bd04/web.assets_web.min.css"/>
            <script type="text/javascript" src="/web/assets/c47ac95/web.assets_web.min.js" onerror="x"></script>
            <script src="/web/assets/c47ac95/web.assets_web.min.js"></script>
            <link rel="icon" href="/web/static/img/favicon.ico"/><a href="/web/assets"#;
        assert_eq!(
            asset_links(html),
            [
                "/web/assets/618bd04/web.assets_web.min.css",
                "/web/assets/c47ac95/web.assets_web.min.js"
            ]
        );
        assert!(asset_links("").is_empty());
    }
}
