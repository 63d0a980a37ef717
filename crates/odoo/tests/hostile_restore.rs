//! A corpus of hostile dumps (see `hostile/payloads.rs`), each the Odoo 18
//! fixture plus one attack, zipped like a backup and restored into a
//! provisioned tenant. Whatever the outcome, nothing outside the new database
//! may change: roles and their attributes, other databases and their canary
//! rows, the server's configuration, files on the host; no guest role may be
//! left; what the customer is told holds no foreign data; a failed restore
//! leaves the tenant as it was; and after a successful one, the platform's
//! later sessions (usage, backup) run the dump's objects with a guest's
//! rights only (verification, identity, usage, the backup's module list,
//! the provisioned check).

mod common;
#[path = "hostile/payloads.rs"]
mod payloads;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use anyhow::Context as _;
use common::archives::{MANIFEST_18, fixture_with, write_backup};
use common::{
    ROLE, World, admin_exec, config_params_on, fingerprints_on, guests_of, provisioned,
    staging_leftovers, table_fingerprints,
};
use payloads::{Expect, Payload};
use saas_odoo::{
    BackupStore, OdooError, RestoreOptions, backup_tenant, collect_usage, restore_tenant_from_file,
};
use sqlx::{Connection as _, PgConnection};
use url::Url;

struct Arena {
    world: World,
    neighbour: String,
    platform: String,
    /// Where the attacks try to create files: writable by everyone.
    attack_dir: tempfile::TempDir,
    /// Nothing a customer reads may contain these.
    secrets: Vec<String>,
    store: BackupStore,
    /// The role this test reads the tenant's database as: a dump's views and
    /// policies run their functions with the reader's rights, so it must have
    /// none (read as the superuser, a trojan view would make the test itself
    /// the attack's vehicle).
    reader: String,
}

impl Arena {
    async fn new() -> anyhow::Result<Arena> {
        let world = World::new().await?;
        let neighbour = provisioned(&world, "neighbour").await?;
        let platform = world.db("platform");
        admin_exec(&format!(r#"CREATE DATABASE "{platform}""#)).await?;
        let canary = format!("canary-{}", world.suffix);
        for db in [&neighbour, &platform] {
            let mut conn = world.connect(db).await?;
            sqlx::raw_sql(&format!(
                "CREATE TABLE canary (v text); INSERT INTO canary VALUES ('{canary}-{db}')"
            ))
            .execute(&mut conn)
            .await?;
        }
        let attack_dir = tempfile::Builder::new().prefix("saas-hostile-").tempdir()?;
        std::fs::set_permissions(attack_dir.path(), std::fs::Permissions::from_mode(0o777))?;
        // The control: run by the superuser, such an attack does leave a file.
        let control = attack_dir.path().join("control");
        admin_exec(&format!(
            "COPY (SELECT 1) TO PROGRAM 'touch {}'",
            control.display()
        ))
        .await?;
        anyhow::ensure!(control.exists(), "the control attack left no file");
        std::fs::remove_file(&control)?;

        let secrets = vec![
            neighbour.clone(),
            platform.clone(),
            world.template.clone(),
            world.suffix.clone(),
            "postgres".to_owned(),
            ROLE.to_owned(),
            "canary".to_owned(),
            "saas_guest".to_owned(),
            "template1".to_owned(),
            "pwned".to_owned(),
            attack_dir.path().display().to_string(),
        ];
        let reader = format!("saas_reader_{}", world.suffix);
        admin_exec(&format!(r#"CREATE ROLE "{reader}" LOGIN NOINHERIT"#)).await?;
        Ok(Arena {
            reader,
            world,
            neighbour,
            platform,
            attack_dir,
            secrets,
            store: BackupStore::from_url("memory://")?,
        })
    }

    /// A tenant the payloads of one lane are restored into; `odoo_version`
    /// given, or read from the tenant's current database (which the previous
    /// payload filled) by the restore.
    async fn lane(&self, name: &str, odoo_version: Option<&str>) -> anyhow::Result<Lane> {
        let tenant = provisioned(&self.world, name).await?;
        let options = RestoreOptions {
            timeout: std::time::Duration::from_secs(120),
            odoo_version: odoo_version.map(str::to_owned),
            ..RestoreOptions::new(
                self.world.tenant_id(&tenant),
                Url::parse(&format!("https://{tenant}.saas.test"))?,
            )
            .with_plan_storage_mb(256)
        };
        Ok(Lane { tenant, options })
    }

    /// A session on the tenant's database as the reader, granted SELECT on its
    /// tables by the superuser (DDL only: nothing of the dump runs).
    async fn read_tenant(&self, lane: &Lane) -> anyhow::Result<PgConnection> {
        let (db, reader) = (&lane.tenant, &self.reader);
        admin_exec(&format!(
            r#"GRANT CONNECT ON DATABASE "{db}" TO "{reader}""#
        ))
        .await?;
        let mut ddl = self.world.connect(db).await?;
        sqlx::raw_sql(&format!(
            r#"GRANT USAGE ON SCHEMA public TO "{reader}";
               GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{reader}""#
        ))
        .execute(&mut ddl)
        .await?;
        let mut url = Url::parse(&saas_testkit::database_url(db)?)?;
        url.set_username(reader)
            .map_err(|()| anyhow::anyhow!("no user in the URL"))?;
        url.set_password(None)
            .map_err(|()| anyhow::anyhow!("no password in the URL"))?;
        Ok(PgConnection::connect(url.as_str()).await?)
    }

    async fn tenant_state(
        &self,
        lane: &Lane,
    ) -> anyhow::Result<(
        BTreeMap<String, (i64, String)>,
        BTreeMap<String, String>,
        BTreeMap<String, String>,
    )> {
        let mut conn = self.read_tenant(lane).await?;
        Ok((
            fingerprints_on(&mut conn).await?,
            self.world.filestore_hashes(&lane.tenant)?,
            config_params_on(&mut conn).await?,
        ))
    }

    async fn clean_up(&self, lanes: &[Lane]) -> anyhow::Result<()> {
        let reader = &self.reader;
        for lane in lanes {
            let mut conn = self.world.connect(&lane.tenant).await?;
            sqlx::raw_sql(&format!(r#"DROP OWNED BY "{reader}""#))
                .execute(&mut conn)
                .await?;
        }
        admin_exec(&format!(
            r#"DROP OWNED BY "{reader}"; DROP ROLE "{reader}""#
        ))
        .await
    }

    fn fill(&self, sql: &str, name: &str) -> String {
        let file = self.attack_dir.path().join(name);
        sql.replace("{FILE}", &file.display().to_string())
            .replace("{DIR}", &self.attack_dir.path().display().to_string())
            .replace("{ROLE}", ROLE)
            .replace("{NEIGHBOUR}", &self.neighbour)
            .replace("{PLATFORM}", &self.platform)
            .replace("{EVIL}", &format!("evil_{}", self.world.suffix))
    }

    /// Everything outside the tenant's database an attack could change, one
    /// line per fact.
    async fn outside(&self) -> anyhow::Result<Vec<String>> {
        let mut admin = PgConnection::connect(&saas_testkit::admin_database_url()).await?;
        let suffix = &self.world.suffix;
        let mut lines: Vec<String> = Vec::new();
        let queries = [
            "SELECT 'superuser ' || rolname FROM pg_roles WHERE rolsuper",
            // Every role but the guests (made and dropped by the platform as it
            // goes): its attributes and password.
            "SELECT 'role ' || concat_ws('|', rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, \
                 rolcanlogin, rolreplication, rolbypassrls, rolconnlimit, coalesce(rolpassword, '-'), \
                 coalesce(rolvaliduntil::text, '-')) FROM pg_authid WHERE rolname NOT LIKE 'saas\\_guest\\_%'",
            "SELECT 'member ' || pg_get_userbyid(roleid) || ' <- ' || pg_get_userbyid(member) \
                 FROM pg_auth_members",
            "SELECT 'setting ' || coalesce(pg_get_userbyid(nullif(setrole, 0)), 'all') || ' ' \
                 || coalesce(d.datname, 'all') || ' ' || setconfig::text \
                 FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase \
                 WHERE pg_get_userbyid(s.setrole) = $1 OR (s.setrole = 0 AND \
                 (s.setdatabase = 0 OR d.datname IN ($3, $4, 'postgres')))",
            // A GRANT without rights writes the default ACL out (a warning,
            // "no privileges were granted"): compare what the ACL means.
            "SELECT 'database ' || concat_ws('|', datname, pg_get_userbyid(datdba), \
                 coalesce(datacl, acldefault('d', datdba))::text, \
                 datconnlimit, datallowconn, datistemplate, coalesce(shobj_description(oid, 'pg_database'), '-')) \
                 FROM pg_database WHERE datname IN ('postgres', 'template0', 'template1') \
                 OR (strpos(datname, $2) > 0 AND strpos(datname, 'victim') = 0)",
            "SELECT 'auto.conf ' || pg_read_file('postgresql.auto.conf')",
        ];
        let params = [ROLE, suffix.as_str(), &self.neighbour, &self.platform];
        for sql in queries {
            // Each query binds the parameters it names ($1..$n).
            let used = (1..=params.len())
                .filter(|n| sql.contains(&format!("${n}")))
                .max()
                .unwrap_or(0);
            let mut query = sqlx::query_scalar::<_, String>(sql);
            for param in &params[..used] {
                query = query.bind(*param);
            }
            let rows = query
                .fetch_all(&mut admin)
                .await
                .with_context(|| sql.to_owned())?;
            lines.extend(rows);
        }
        for db in [&self.neighbour, &self.platform] {
            let mut conn = self.world.connect(db).await?;
            let canaries: Vec<String> = sqlx::query_scalar("SELECT v FROM canary ORDER BY v")
                .fetch_all(&mut conn)
                .await?;
            lines.extend(canaries.into_iter().map(|v| format!("canary {db} {v}")));
        }
        for (table, print) in table_fingerprints(&self.world, &self.neighbour).await? {
            lines.push(format!("neighbour {table} {print:?}"));
        }
        for entry in std::fs::read_dir(self.attack_dir.path())? {
            lines.push(format!("file {}", entry?.file_name().to_string_lossy()));
        }
        lines.sort();
        Ok(lines)
    }

    async fn check(&self, lane: &Lane, payload: &Payload) -> anyhow::Result<()> {
        let before = self.outside().await?;
        let tenant_before = self.tenant_state(lane).await?;
        let sql = self.fill(&payload.sql, payload.name);
        let zip = self.world.dir.path().join(format!("{}.zip", payload.name));
        write_backup(
            &zip,
            &fixture_with(sql.as_bytes(), payload.first)?,
            Some(MANIFEST_18),
            &[("ab/abcdef0123", b"an attachment")],
        )?;
        let result =
            restore_tenant_from_file(&self.world.server, &lane.tenant, &zip, &lane.options).await;
        let _ = std::fs::remove_file(&zip);
        match (payload.expect, &result) {
            (Expect::Refused, Err(OdooError::UnsafeDump { .. }))
            | (Expect::Fails, Err(_))
            | (Expect::Succeeds, Ok(_)) => {}
            (expect, outcome) => {
                let shown: String = format!("{outcome:?}").chars().take(600).collect();
                anyhow::bail!("expected {expect:?}, got {shown}");
            }
        }
        match &result {
            Err(err) => {
                let message = err.customer_message();
                for secret in &self.secrets {
                    anyhow::ensure!(
                        !message.contains(secret.as_str()),
                        "the customer message {message:?} holds {secret:?}"
                    );
                }
                if payload.name == "exception_with_foreign_names" {
                    anyhow::ensure!(
                        err.to_string().contains(&self.neighbour),
                        "the leak this payload tries is real (operators see it): {err}"
                    );
                }
                anyhow::ensure!(
                    self.tenant_state(lane).await? == tenant_before,
                    "the tenant changed"
                );
            }
            Ok(_) => self.after_success(lane, payload).await?,
        }
        let after = self.outside().await?;
        if after != before {
            let gone: Vec<&String> = before.iter().filter(|l| !after.contains(l)).collect();
            let new: Vec<&String> = after.iter().filter(|l| !before.contains(l)).collect();
            anyhow::bail!("outside the database: gone {gone:?}, new {new:?}");
        }
        let guests = guests_for(&lane.tenant).await?;
        anyhow::ensure!(guests.is_empty(), "guest roles left: {guests:?}");
        let databases = self.world.databases().await?;
        anyhow::ensure!(
            databases.contains(&lane.tenant)
                && !databases
                    .iter()
                    .any(|db| db.starts_with(&format!("{}_", lane.tenant))),
            "databases: {databases:?}"
        );
        let leftovers: Vec<String> = staging_leftovers(&self.world)?
            .into_iter()
            .filter(|name| name.contains(&lane.tenant))
            .collect();
        anyhow::ensure!(leftovers.is_empty(), "staging left: {leftovers:?}");
        Ok(())
    }

    /// The restored database is the Odoo role's, and the platform's later
    /// sessions run the dump's objects as guests only.
    async fn after_success(&self, lane: &Lane, payload: &Payload) -> anyhow::Result<()> {
        let mut admin = PgConnection::connect(&saas_testkit::admin_database_url()).await?;
        let state: (String, bool, bool, i32, i64) = sqlx::query_as(
            "SELECT pg_get_userbyid(datdba)::text, has_database_privilege('public', oid, 'CONNECT'), \
                    datistemplate, datconnlimit, \
                    (SELECT count(*) FROM pg_db_role_setting s WHERE s.setdatabase = d.oid) \
             FROM pg_database d WHERE datname = $1",
        )
        .bind(&lane.tenant)
        .fetch_one(&mut admin)
        .await?;
        anyhow::ensure!(
            state == (ROLE.to_owned(), false, false, -1, 0),
            "restored database: {state:?}"
        );
        anyhow::ensure!(
            saas_odoo::is_provisioned(
                &self.world.server,
                &lane.tenant,
                self.world.tenant_id(&lane.tenant)
            )
            .await
            .context("checking the provisioned marker")?,
            "the restored database carries the provisioned marker"
        );
        let usage = collect_usage(&self.world.server, &lane.tenant).await;
        if payload.name == "trojan_raising_for_later_readers" {
            let err = match usage {
                Err(err @ OdooError::GuestQueryFailed { .. }) => err,
                other => anyhow::bail!("usage should fail as the guest's query: {other:?}"),
            };
            anyhow::ensure!(err.to_string().contains(&self.neighbour), "{err}");
            let message = err.customer_message();
            for secret in &self.secrets {
                anyhow::ensure!(
                    !message.contains(secret.as_str()),
                    "the customer message {message:?} holds {secret:?}"
                );
            }
        } else {
            usage.context("collecting usage")?;
        }
        backup_tenant(
            &self.world.server,
            &lane.tenant,
            &self.store,
            &format!("{}.zip", payload.name),
        )
        .await
        .context("backing up")?;
        let mut conn = self.read_tenant(lane).await?;
        let logged: bool =
            sqlx::query_scalar("SELECT to_regclass('public.trojan_log') IS NOT NULL")
                .fetch_one(&mut conn)
                .await?;
        anyhow::ensure!(
            logged || !payload.name.starts_with("trojan_"),
            "the trojan's log is missing"
        );
        if logged {
            let runs: Vec<(String, String)> = sqlx::query_as("SELECT who, session FROM trojan_log")
                .fetch_all(&mut conn)
                .await?;
            // Fired by the platform (a guest) or by this test's reader: never
            // by anyone with rights.
            anyhow::ensure!(
                runs.iter().all(|(who, session)| session == who
                    && (who.starts_with("saas_guest_") || *who == self.reader)),
                "the trojan ran as {runs:?}"
            );
            // The platform's sessions did fire it: the restore's guest, and
            // for reads after the restore (usage, module list) guests of
            // their own; the provisioned check reads only the catalog.
            let guests: std::collections::BTreeSet<&String> = runs
                .iter()
                .map(|(who, _)| who)
                .filter(|who| who.starts_with("saas_guest_"))
                .collect();
            let fired_by = match payload.name {
                "trojan_trigger_on_config_parameters"
                | "trojan_policy_on_config_parameters"
                | "trojan_operator_for_the_usage_query" => 1,
                "trojan_raising_for_later_readers" => 0,
                _ => 2,
            };
            anyhow::ensure!(
                guests.len() >= fired_by,
                "the trojan fired for {} platform sessions only: {runs:?}",
                guests.len()
            );
        }
        Ok(())
    }
}

/// One tenant the payloads are restored into, one after the other.
struct Lane {
    tenant: String,
    options: RestoreOptions,
}

/// Guest roles made for database `db` (their comment names it) that exist.
async fn guests_for(db: &str) -> anyhow::Result<Vec<String>> {
    let mut admin = PgConnection::connect(&saas_testkit::admin_database_url()).await?;
    Ok(sqlx::query_scalar(
        "SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'saas\\_guest\\_%' \
         AND strpos(coalesce(shobj_description(oid, 'pg_authid'), ''), $1) > 0",
    )
    .bind(db)
    .fetch_all(&mut admin)
    .await?)
}

async fn run_lane(arena: &Arena, lane: &Lane, payloads: &[&Payload]) -> Vec<String> {
    let mut problems = Vec::new();
    for payload in payloads {
        if let Err(e) = arena.check(lane, payload).await {
            problems.push(format!("{}: {e:#}", payload.name));
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_dumps_cannot_reach_outside_their_database() -> anyhow::Result<()> {
    let arena = Arena::new().await?;
    let corpus = payloads::all();
    assert!(corpus.len() >= 30, "{}", corpus.len());
    // Two tenants take the payloads in turn, side by side.
    let lanes = match (
        arena.lane("victim_a", None).await,
        arena.lane("victim_b", Some("18.0")).await,
    ) {
        (Ok(a), Ok(b)) => [a, b],
        (a, b) => {
            arena.clean_up(&[]).await?;
            return Err(a
                .err()
                .or(b.err())
                .unwrap_or_else(|| anyhow::anyhow!("no lanes")));
        }
    };
    let first: Vec<&Payload> = corpus.iter().step_by(2).collect();
    let second: Vec<&Payload> = corpus.iter().skip(1).step_by(2).collect();
    let (mut problems, more) = tokio::join!(
        run_lane(&arena, &lanes[0], &first),
        run_lane(&arena, &lanes[1], &second)
    );
    problems.extend(more);
    arena.clean_up(&lanes).await?;
    assert!(
        problems.is_empty(),
        "{} of {} payloads:\n{}",
        problems.len(),
        corpus.len(),
        problems.join("\n")
    );
    let files: Vec<PathBuf> = std::fs::read_dir(arena.attack_dir.path())?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    assert!(files.is_empty(), "{files:?}");
    assert!(guests_of(&arena.world).await?.is_empty());
    let by_outcome: BTreeMap<String, usize> =
        corpus.iter().fold(BTreeMap::new(), |mut counts, p| {
            *counts.entry(format!("{:?}", p.expect)).or_default() += 1;
            counts
        });
    eprintln!("{} payloads: {by_outcome:?}", corpus.len());
    Ok(())
}
