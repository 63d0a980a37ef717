//! A world of its own for each test: an Odoo role, a template database loaded from
//! the Odoo 18 fixture with a small filestore and sealed like a real template
//! (`odoo/seal-template.sql`), a filestore root in a temporary directory, and a
//! local HTTP server that answers `/web/login` like Odoo. Every database whose
//! name contains the world's suffix is dropped at the end.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use saas_odoo::{AdminPassword, OdooServer, ProvisionSpec, hash_password_with};
use secrecy::SecretString;
use sha2::{Digest as _, Sha256};
use sqlx::{Connection as _, PgConnection};
use url::Url;
use uuid::Uuid;

pub mod archives;
pub mod fake_odoo;

pub use saas_testkit::odoo::{ROLE, admin_exec, ensure_role, fixture_path, seal_template};

pub struct World {
    pub suffix: String,
    pub server: OdooServer,
    pub template: String,
    pub dir: tempfile::TempDir,
    pub odoo: fake_odoo::FakeOdoo,
}

impl World {
    /// Role, sealed template `tpl_<suffix>` with 3 attachments in its filestore,
    /// fake Odoo. Built as `odoo/build-templates.sh` builds one: under
    /// `tpl_<suffix>__building`, filestore moved, then sealed.
    pub async fn new() -> anyhow::Result<World> {
        let suffix = saas_testkit::unique_suffix();
        let template = format!("tpl_{suffix}");
        let dir = tempfile::tempdir()?;
        let odoo = fake_odoo::FakeOdoo::start().await?;
        let server = OdooServer::new(
            SecretString::from(saas_testkit::admin_database_url()),
            ROLE,
            dir.path().join("filestore"),
            odoo.url.clone(),
        )?;
        let world = World {
            suffix,
            server,
            template,
            dir,
            odoo,
        };
        ensure_role().await?;
        let building = format!("{}__building", world.template);
        world.load_fixture(&building).await?;
        world.add_attachments(&building, 3).await?;
        std::fs::rename(
            world.server.filestore_dir(&building)?,
            world.server.filestore_dir(&world.template)?,
        )?;
        seal_template(&building, &world.template).await?;
        Ok(world)
    }

    /// The tenant id the world gives database `db` in [`World::spec`]: always the
    /// same for one name, so a rerun with a fresh spec is the same tenant.
    pub fn tenant_id(&self, db: &str) -> Uuid {
        let digest = Sha256::digest(format!("{}/{db}", self.suffix).as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// An open copy of the sealed template, `t_<suffix>_<name>` (a sealed
    /// template refuses connections, so tests that read it read a copy).
    pub async fn template_copy(&self, name: &str) -> anyhow::Result<String> {
        let db = self.db(name);
        admin_exec(&format!(
            r#"CREATE DATABASE "{db}" OWNER {ROLE} TEMPLATE "{}""#,
            self.template
        ))
        .await?;
        Ok(db)
    }

    /// A database name that the world's cleanup drops: `t_<suffix>_<name>`.
    pub fn db(&self, name: &str) -> String {
        format!("t_{}_{}", self.suffix, name)
    }

    /// Creates `db` owned by the test role and loads the fixture as that role.
    pub async fn load_fixture(&self, db: &str) -> anyhow::Result<()> {
        saas_testkit::odoo::load_fixture(db).await
    }

    /// Adds `n` attachments stored in the filestore of `db` (files + rows).
    pub async fn add_attachments(&self, db: &str, n: usize) -> anyhow::Result<()> {
        let mut conn = self.connect(db).await?;
        for i in 0..n {
            let content = format!("attachment {i} of {db}\n").repeat(50 + i);
            let sha1 = hex::encode(content_digest(content.as_bytes()));
            let fname = format!("{}/{}", &sha1[..2], sha1);
            let path = self.server.filestore_dir(db)?.join(&fname);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, content.as_bytes())?;
            sqlx::query(
                "INSERT INTO ir_attachment (name, type, store_fname, checksum, file_size, mimetype, res_model, res_id) \
                 VALUES ($1, 'binary', $2, $3, $4, 'text/plain', 'res.partner', 1)",
            )
            .bind(format!("file{i}.txt"))
            .bind(&fname)
            .bind(&sha1)
            .bind(content.len() as i32)
            .execute(&mut conn)
            .await?;
        }
        Ok(())
    }

    pub async fn connect(&self, db: &str) -> anyhow::Result<PgConnection> {
        Ok(PgConnection::connect(&saas_testkit::database_url(db)?).await?)
    }

    /// A spec for tenant `db` whose subdomain is the database name (dbfilter `^%d$`).
    pub fn spec(
        &self,
        db: &str,
        login: &str,
        password: AdminPassword,
    ) -> anyhow::Result<ProvisionSpec> {
        Ok(ProvisionSpec {
            tenant_id: self.tenant_id(db),
            db_name: db.to_owned(),
            template: self.template.clone(),
            base_url: Url::parse(&format!("https://{db}.saas.test"))?,
            company_name: format!("Company of {db}"),
            admin_login: login.to_owned(),
            admin_password: password,
        })
    }

    /// Files under the filestore of `db`: relative path -> sha256.
    pub fn filestore_hashes(&self, db: &str) -> anyhow::Result<BTreeMap<String, String>> {
        hash_tree(&self.server.filestore_dir(db)?)
    }

    /// Databases of this world (template excluded), sorted.
    pub async fn databases(&self) -> anyhow::Result<Vec<String>> {
        let mut admin = PgConnection::connect(&saas_testkit::admin_database_url()).await?;
        Ok(sqlx::query_scalar(
            "SELECT datname::text FROM pg_database WHERE datname LIKE $1 ORDER BY 1",
        )
        .bind(format!("t\\_{}\\_%", self.suffix))
        .fetch_all(&mut admin)
        .await?)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let suffix = self.suffix.clone();
        let handle = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                let _ = runtime.block_on(saas_testkit::odoo::drop_databases_containing(&suffix));
            }
        });
        let _ = handle.join();
    }
}

pub fn hash_tree(root: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                walk(base, &path, out)?;
            } else {
                let rel = path.strip_prefix(base)?.to_string_lossy().into_owned();
                out.insert(rel, hex::encode(Sha256::digest(std::fs::read(&path)?)));
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out)?;
    Ok(out)
}

/// A cheap hash for tests that only need realistic-looking store names.
pub fn fast_hash(password: &str) -> AdminPassword {
    AdminPassword::Hashed(hash_password_with(password, 1000, b"0123456789abcdef"))
}

/// Name-like 20-byte digest for attachment file names (content-addressed like Odoo).
fn content_digest(data: &[u8]) -> [u8; 20] {
    let digest = Sha256::digest(data);
    let mut out = [0u8; 20];
    out.copy_from_slice(&digest[..20]);
    out
}

/// Row counts and an md5 over every row, per fixture table, of database `db`.
pub async fn table_fingerprints(
    world: &World,
    db: &str,
) -> anyhow::Result<BTreeMap<String, (i64, String)>> {
    fingerprints_on(&mut world.connect(db).await?).await
}

/// [`table_fingerprints`] on a connection of the caller's choosing (a
/// database a hostile dump filled must not be read by a superuser: its views
/// and policies would run their functions with the superuser's rights).
pub async fn fingerprints_on(
    conn: &mut PgConnection,
) -> anyhow::Result<BTreeMap<String, (i64, String)>> {
    let mut out = BTreeMap::new();
    for table in [
        "res_users",
        "res_partner",
        "res_company",
        "ir_config_parameter",
        "ir_module_module",
        "ir_attachment",
    ] {
        let row: (i64, Option<String>) = sqlx::query_as(&format!(
            "SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t.id)) FROM {table} t"
        ))
        .fetch_one(&mut *conn)
        .await?;
        out.insert(table.to_owned(), (row.0, row.1.unwrap_or_default()));
    }
    Ok(out)
}

/// `ir_config_parameter` keys a restore sets to the tenant's own values.
pub const IDENTITY_KEYS: [&str; 4] = [
    "web.base.url",
    "database.secret",
    "database.uuid",
    "saas.provisioned",
];

/// `ir_config_parameter` of database `db`: key -> value.
pub async fn config_params(world: &World, db: &str) -> anyhow::Result<BTreeMap<String, String>> {
    config_params_on(&mut world.connect(db).await?).await
}

/// [`config_params`] on a connection of the caller's choosing.
pub async fn config_params_on(conn: &mut PgConnection) -> anyhow::Result<BTreeMap<String, String>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT key::text, value::text FROM ir_config_parameter")
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().collect())
}

/// [`table_fingerprints`] without `ir_config_parameter`, plus the parameters
/// a restore keeps (all but [`IDENTITY_KEYS`]): what a restore must give back
/// unchanged.
pub async fn restorable_state(
    world: &World,
    db: &str,
) -> anyhow::Result<(BTreeMap<String, (i64, String)>, BTreeMap<String, String>)> {
    let mut tables = table_fingerprints(world, db).await?;
    tables.remove("ir_config_parameter");
    let mut params = config_params(world, db).await?;
    params.retain(|key, _| !IDENTITY_KEYS.contains(&key.as_str()));
    Ok((tables, params))
}

/// Guest roles made for this world's databases (their comment names the
/// database) that still exist.
pub async fn guests_of(world: &World) -> anyhow::Result<Vec<String>> {
    let mut admin = PgConnection::connect(&saas_testkit::admin_database_url()).await?;
    Ok(sqlx::query_scalar(
        "SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'saas\\_guest\\_%' \
         AND strpos(coalesce(shobj_description(oid, 'pg_authid'), ''), $1) > 0",
    )
    .bind(&world.suffix)
    .fetch_all(&mut admin)
    .await?)
}

/// Files and directories whose name starts with a dot in the filestore root
/// (staging directories and downloads).
pub fn staging_leftovers(world: &World) -> anyhow::Result<Vec<String>> {
    let root = &world.server.filestore_root;
    if !root.exists() {
        return Ok(Vec::new());
    }
    Ok(std::fs::read_dir(root)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect())
}

/// Provisions tenant `name` of the world (probe skipped) with 4 attachments.
pub async fn provisioned(world: &World, name: &str) -> anyhow::Result<String> {
    let db = world.db(name);
    let spec = world.spec(&db, &format!("{name}@example.test"), fast_hash("pw"))?;
    let options = saas_odoo::ProvisionOptions {
        probe: None,
        ..saas_odoo::ProvisionOptions::default()
    };
    saas_odoo::provision(&world.server, &spec, &options).await?;
    world.add_attachments(&db, 4).await?;
    Ok(db)
}
