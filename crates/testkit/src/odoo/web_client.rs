//! The fixture's web client, in the shape a real Odoo 18 serves it (read off
//! `18.0-20250702` with `odoo/odoo.conf` and a template built by
//! `odoo/build-templates.sh`):
//!
//! - `GET /web/login`: an HTML page whose `<link href>` and `<script src>` /
//!   `data-src` name the login page's three bundles as
//!   `/web/assets/<version>/<bundle>.min.<css|js>`;
//! - `POST /web/session/authenticate` (JSON-RPC `db`, `login`, `password`):
//!   checks the password against `res_users.password` of the Host's database
//!   (passlib `pbkdf2_sha512`, as Odoo does) and sets a `session_id` cookie;
//! - `GET /odoo`: signed in, the web client page naming its three bundles;
//!   otherwise a 303 to `/web/login?redirect=/odoo`;
//! - `GET /web/assets/<version>/<bundle>`: the bundle's `ir_attachment`
//!   (`res_model = 'ir.ui.view'`, `url` = the path) in the Host's database,
//!   read from `<filestore>/<database>/<store_fname>`. A file missing from the
//!   filestore answers 200 with no bytes (Odoo's `_file_read` logs and returns
//!   `b''`); a stale version answers 303 to the current one; a bundle with no
//!   attachment is compiled: made, written to the tenant's filestore and
//!   stored as an attachment, and counted ([`FixtureWeb::compiled`]), which is
//!   what a customer's first page costs a real Odoo when assets did not come
//!   with the template.
//!
//! A template gets its bundles as `build-templates.sh` warms them:
//! [`store_bundles`] writes them to the template's filestore and database.
//! Bundle contents are deterministic per name and size, so their versions
//! (the first 7 hex digits of their sha1, as Odoo's checksum of the addons'
//! files) are the same in every world.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use rand::Rng as _;
use sha1::Digest as _;
use sqlx::{Connection as _, PgConnection};

/// Which page references a bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    Login,
    WebClient,
}

/// One compiled asset bundle, as Odoo 18 names and stores it.
#[derive(Clone, Debug)]
pub struct Bundle {
    /// `web.assets_web.min.js`, ...: the attachment's name and the URL's last segment.
    pub name: &'static str,
    pub mimetype: &'static str,
    pub page: Page,
    /// The bytes Odoo serves.
    pub content: Arc<Vec<u8>>,
    /// 40 hex digits: the attachment's checksum and filestore name.
    pub sha1: String,
}

impl Bundle {
    /// `/web/assets/<version>/<name>`.
    pub fn url(&self) -> String {
        format!("/web/assets/{}/{}", &self.sha1[..7], self.name)
    }

    /// `<2 hex>/<sha1>`, the attachment's `store_fname`.
    pub fn store_fname(&self) -> String {
        format!("{}/{}", &self.sha1[..2], self.sha1)
    }
}

/// The six bundles of `tpl_basic` (base, web, contacts) and their sizes on
/// the real Odoo 18: 9.2 MB in all.
const REAL_BUNDLES: [(&str, &str, Page, usize); 6] = [
    (
        "web.assets_frontend.min.css",
        "text/css",
        Page::Login,
        483_422,
    ),
    (
        "web.assets_frontend_minimal.min.js",
        "application/javascript",
        Page::Login,
        14_857,
    ),
    (
        "web.assets_frontend_lazy.min.js",
        "application/javascript",
        Page::Login,
        1_790_829,
    ),
    (
        "web.assets_web_print.min.css",
        "text/css",
        Page::WebClient,
        975_419,
    ),
    (
        "web.assets_web.min.css",
        "text/css",
        Page::WebClient,
        970_950,
    ),
    (
        "web.assets_web.min.js",
        "application/javascript",
        Page::WebClient,
        4_977_877,
    ),
];

/// The bundles at their real sizes divided by `divisor` (1: the real
/// 9.2 MB; tests use a larger one to keep every tenant's filestore small).
pub fn bundles(divisor: usize) -> Vec<Bundle> {
    REAL_BUNDLES
        .iter()
        .map(|&(name, mimetype, page, size)| {
            let content = compiled(name, mimetype, (size / divisor.max(1)).max(64));
            let sha1 = hex::encode(sha1::Sha1::digest(&content));
            Bundle {
                name,
                mimetype,
                page,
                content: Arc::new(content),
                sha1,
            }
        })
        .collect()
}

/// Deterministic CSS or JavaScript of exactly `size` bytes.
fn compiled(name: &str, mimetype: &str, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 128);
    let mut i = 0u64;
    while out.len() < size {
        let line = if mimetype == "text/css" {
            format!(
                ".o_{}_{i}{{color:#{:06x};margin:{}px}}\n",
                name.len(),
                i % 0xff_ffff,
                i % 97
            )
        } else {
            format!("odoo.define(\"{name}/{i}\",[],function(){{\"use strict\";return {i};}});\n")
        };
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out.truncate(size);
    out
}

/// Stores `bundles` in database `db` and in `filestore` (its files'
/// directory), as Odoo does when warm-assets.py fetches them.
pub async fn store_bundles(db: &str, filestore: &Path, bundles: &[Bundle]) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(&crate::database_url(db)?).await?;
    for bundle in bundles {
        store_bundle(&mut conn, filestore, bundle).await?;
    }
    Ok(())
}

async fn store_bundle(
    conn: &mut PgConnection,
    filestore: &Path,
    bundle: &Bundle,
) -> anyhow::Result<()> {
    let path = filestore.join(bundle.store_fname());
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    tokio::fs::write(&path, bundle.content.as_slice())
        .await
        .with_context(|| format!("writing {}", path.display()))?;
    sqlx::query(
        "INSERT INTO ir_attachment (name, res_model, res_id, type, url, store_fname, checksum,
                                    mimetype, public, file_size, company_id, create_uid, write_uid,
                                    create_date, write_date)
         VALUES ($1, 'ir.ui.view', 0, 'binary', $2, $3, $4, $5, true, $6, 1, 1, 1,
                 now() at time zone 'UTC', now() at time zone 'UTC')",
    )
    .bind(bundle.name)
    .bind(bundle.url())
    .bind(bundle.store_fname())
    .bind(&bundle.sha1)
    .bind(bundle.mimetype)
    .bind(i32::try_from(bundle.content.len())?)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The fixture's Odoo web server state: where tenants' files are, the
/// signed-in sessions and the bundles compiled on request.
pub struct FixtureWeb {
    filestore_root: PathBuf,
    bundles: Vec<Bundle>,
    sessions: Mutex<HashMap<String, (String, i64)>>,
    compiled: AtomicUsize,
}

impl FixtureWeb {
    pub fn new(filestore_root: PathBuf, bundles: Vec<Bundle>) -> Arc<Self> {
        Arc::new(Self {
            filestore_root,
            bundles,
            sessions: Mutex::new(HashMap::new()),
            compiled: AtomicUsize::new(0),
        })
    }

    /// Bundles compiled because a tenant's database did not have them.
    pub fn compiled(&self) -> usize {
        self.compiled.load(Ordering::SeqCst)
    }

    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/web/login", get(login_page))
            .route("/web/session/authenticate", post(authenticate))
            .route("/odoo", get(web_client))
            .route("/web/assets/{version}/{name}", get(asset))
            .with_state(Arc::clone(self))
    }
}

type Shared = State<Arc<FixtureWeb>>;

/// The database `dbfilter = ^%d$` picks for this request: the first label
/// of the Host, when it names a database the worker finished provisioning.
async fn tenant(headers: &HeaderMap) -> Option<(String, PgConnection)> {
    let host = headers.get("host").and_then(|h| h.to_str().ok())?;
    let db = host.split('.').next()?.to_owned();
    if db.is_empty()
        || !db
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    let mut conn = PgConnection::connect(&crate::database_url(&db).ok()?)
        .await
        .ok()?;
    let marker: Option<String> =
        sqlx::query_scalar("SELECT value FROM ir_config_parameter WHERE key = 'saas.provisioned'")
            .fetch_optional(&mut conn)
            .await
            .ok()?;
    marker.map(|_| (db, conn))
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "404: Not Found").into_response()
}

fn html(body: String) -> Response {
    ([(CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// The bundles `page` references, at the version of the addons' files (Odoo
/// renders the version it computes, whatever is stored, and compiles a
/// missing bundle when it is requested).
fn page_links(web: &FixtureWeb, page: Page) -> Vec<(Bundle, String)> {
    web.bundles
        .iter()
        .filter(|b| b.page == page)
        .map(|b| (b.clone(), b.url()))
        .collect()
}

fn link_of(bundle: &Bundle, url: &str) -> String {
    match (bundle.page, bundle.name) {
        (_, name) if name.ends_with(".css") && name.contains("print") => {
            format!(r#"<link type="text/css" rel="stylesheet" href="{url}" media="print"/>"#)
        }
        (Page::WebClient, name) if name.ends_with(".css") => {
            format!(r#"<link type="text/css" rel="stylesheet" href="{url}" media="screen"/>"#)
        }
        (_, name) if name.ends_with(".css") => {
            format!(r#"<link type="text/css" rel="stylesheet" href="{url}"/>"#)
        }
        (_, name) if name.contains("lazy") => format!(
            r#"<script type="text/javascript" defer="defer" data-src="{url}" onerror="__odooAssetError=1"></script>"#
        ),
        (Page::Login, _) => format!(
            r#"<script type="text/javascript" defer="defer" src="{url}" onerror="__odooAssetError=1"></script>"#
        ),
        (Page::WebClient, _) => format!(
            r#"<script type="text/javascript" src="{url}" onerror="__odooAssetError=1"></script>"#
        ),
    }
}

fn page_html(title_class: &str, links: &[(Bundle, String)], body: &str) -> String {
    let head: Vec<String> = links.iter().map(|(b, url)| link_of(b, url)).collect();
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\"/>\n<title>Odoo</title>\n\
         <link type=\"image/x-icon\" rel=\"shortcut icon\" href=\"/web/static/img/favicon.ico\"/>\n\
         {}\n</head>\n<body class=\"{title_class}\">{body}</body>\n</html>\n",
        head.join("\n")
    )
}

async fn login_page(State(web): Shared, headers: HeaderMap) -> Response {
    if tenant(&headers).await.is_none() {
        return not_found();
    }
    html(page_html(
        "bg-100",
        &page_links(&web, Page::Login),
        "<form role=\"form\" method=\"post\" class=\"oe_login_form\" action=\"/web/login\">\
         <input type=\"text\" name=\"login\" id=\"login\"/>\
         <input type=\"password\" name=\"password\" id=\"password\"/>\
         <button type=\"submit\" class=\"btn btn-primary\">Log in</button></form>",
    ))
}

fn server_error(e: &anyhow::Error) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")).into_response()
}

fn session_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("session_id="))
        .map(str::to_owned)
}

async fn web_client(State(web): Shared, headers: HeaderMap) -> Response {
    let Some((db, _)) = tenant(&headers).await else {
        return not_found();
    };
    let signed_in = session_of(&headers).is_some_and(|session| {
        web.sessions
            .lock()
            .is_ok_and(|sessions| sessions.get(&session).is_some_and(|(d, _)| *d == db))
    });
    if !signed_in {
        return (
            StatusCode::SEE_OTHER,
            [(LOCATION, "/web/login?redirect=%2Fodoo%3F")],
        )
            .into_response();
    }
    html(page_html(
        "o_web_client",
        &page_links(&web, Page::WebClient),
        "",
    ))
}

/// Odoo's JSON-RPC error for a refused sign-in.
fn access_denied(id: &serde_json::Value) -> Response {
    Json(serde_json::json!({
        "jsonrpc": "2.0", "id": id,
        "error": {"code": 200, "message": "Odoo Server Error",
                  "data": {"name": "odoo.exceptions.AccessDenied", "message": "Access Denied"}},
    }))
    .into_response()
}

async fn authenticate(
    State(web): Shared,
    headers: HeaderMap,
    Json(request): Json<serde_json::Value>,
) -> Response {
    let id = request["id"].clone();
    let Some((db, mut conn)) = tenant(&headers).await else {
        return not_found();
    };
    let params = &request["params"];
    let (Some(asked), Some(login), Some(password)) = (
        params["db"].as_str(),
        params["login"].as_str(),
        params["password"].as_str(),
    ) else {
        return access_denied(&id);
    };
    // dbfilter: only the Host's database.
    if asked != db {
        return access_denied(&id);
    }
    let user: Option<(i32, Option<String>)> =
        match sqlx::query_as("SELECT id, password FROM res_users WHERE login = $1 AND active")
            .bind(login)
            .fetch_optional(&mut conn)
            .await
        {
            Ok(user) => user,
            Err(e) => return server_error(&e.into()),
        };
    let Some((uid, Some(hash))) = user else {
        return access_denied(&id);
    };
    let password = password.to_owned();
    let verified = tokio::task::spawn_blocking(move || verify_pbkdf2_sha512(&password, &hash))
        .await
        .unwrap_or(false);
    if !verified {
        return access_denied(&id);
    }
    let session: String = {
        let mut rng = rand::rng();
        (0..72)
            .map(|_| {
                char::from(
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                        [rng.random_range(0..62)],
                )
            })
            .collect()
    };
    if let Ok(mut sessions) = web.sessions.lock() {
        sessions.insert(session.clone(), (db.clone(), i64::from(uid)));
    }
    let mut response = Json(serde_json::json!({
        "jsonrpc": "2.0", "id": id,
        "result": {"uid": uid, "db": db, "is_system": uid == 2, "is_admin": uid == 2,
                   "server_version": "18.0-20250702"},
    }))
    .into_response();
    if let Ok(cookie) = HeaderValue::from_str(&format!(
        "session_id={session}; HttpOnly; Path=/; Max-Age=604800"
    )) {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    response
}

/// passlib's `$pbkdf2-sha512$<rounds>$<salt>$<checksum>` (adapted base64).
fn verify_pbkdf2_sha512(password: &str, hash: &str) -> bool {
    let ab64 = |s: &str| {
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(s.replace('.', "+"))
            .ok()
    };
    let mut parts = hash.split('$');
    let (Some(""), Some("pbkdf2-sha512"), Some(rounds), Some(salt), Some(checksum), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Ok(rounds), Some(salt), Some(checksum)) =
        (rounds.parse::<u32>(), ab64(salt), ab64(checksum))
    else {
        return false;
    };
    if !(1..=10_000_000).contains(&rounds) || checksum.is_empty() {
        return false;
    }
    let mut derived = vec![0u8; checksum.len()];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password.as_bytes(), &salt, rounds, &mut derived);
    derived == checksum
}

async fn asset(
    State(web): Shared,
    headers: HeaderMap,
    UrlPath((version, name)): UrlPath<(String, String)>,
) -> Response {
    let Some((db, mut conn)) = tenant(&headers).await else {
        return not_found();
    };
    let path = format!("/web/assets/{version}/{name}");
    let stored: Result<Option<(Option<String>, Option<String>)>, _> = sqlx::query_as(
        "SELECT store_fname, mimetype FROM ir_attachment
          WHERE res_model = 'ir.ui.view' AND url = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(&path)
    .fetch_optional(&mut conn)
    .await;
    let (store_fname, mimetype) = match stored {
        Ok(Some((Some(store_fname), mimetype))) => (store_fname, mimetype),
        Ok(Some((None, _))) => return bundle_response(Vec::new(), None),
        Ok(None) => {
            let Some(bundle) = web.bundles.iter().find(|b| b.name == name) else {
                return not_found();
            };
            if bundle.url() != path {
                return (StatusCode::SEE_OTHER, [(LOCATION, bundle.url())]).into_response();
            }
            // Not stored: compile it into the tenant, as Odoo does.
            if let Err(e) = store_bundle(&mut conn, &web.filestore_root.join(&db), bundle).await {
                return server_error(&e);
            }
            web.compiled.fetch_add(1, Ordering::SeqCst);
            return bundle_response(bundle.content.to_vec(), Some(bundle.mimetype.to_owned()));
        }
        Err(e) => return server_error(&e.into()),
    };
    if store_fname.contains("..") || store_fname.starts_with('/') {
        return not_found();
    }
    // A file missing from the filestore reads as no bytes, as in Odoo.
    let content = tokio::fs::read(web.filestore_root.join(&db).join(&store_fname))
        .await
        .unwrap_or_default();
    bundle_response(content, mimetype)
}

fn bundle_response(content: Vec<u8>, mimetype: Option<String>) -> Response {
    let mut response = content.into_response();
    let headers = response.headers_mut();
    if let Some(Ok(value)) = mimetype.map(|m| HeaderValue::from_str(&format!("{m}; charset=utf-8")))
    {
        headers.insert(CONTENT_TYPE, value);
    }
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_are_the_same_in_every_world_and_of_the_asked_size() {
        let (a, b) = (bundles(100), bundles(100));
        assert_eq!(a.len(), 6);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.sha1, y.sha1);
            assert!(x.url().starts_with("/web/assets/") && x.url().ends_with(x.name));
        }
        assert_eq!(a[5].content.len(), 4_977_877 / 100);
    }

    #[test]
    fn verifies_passlib_hashes_and_refuses_the_rest() {
        // passlib.hash.pbkdf2_sha512.using(rounds=1000, salt=b"0123456789abcdef").hash("pw")
        let salt = b"0123456789abcdef";
        let mut checksum = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<sha2::Sha512>(b"pw", salt, 1000, &mut checksum);
        let enc = |b: &[u8]| {
            base64::engine::general_purpose::STANDARD_NO_PAD
                .encode(b)
                .replace('+', ".")
        };
        let hash = format!("$pbkdf2-sha512$1000${}${}", enc(salt), enc(&checksum));
        assert!(verify_pbkdf2_sha512("pw", &hash));
        assert!(!verify_pbkdf2_sha512("pW", &hash));
        assert!(!verify_pbkdf2_sha512("pw", "pw"));
        assert!(!verify_pbkdf2_sha512("pw", "$pbkdf2-sha512$0$x$y"));
        assert!(!verify_pbkdf2_sha512("pw", &format!("{hash}$extra")));
    }
}
