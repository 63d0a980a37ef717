//! Provisioning against the real PostgreSQL, with the Odoo 18 fixture as template.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{World, fast_hash};
use saas_odoo::{
    AdminPassword, CrashPoint, OdooError, ProbeOptions, ProvisionOptions, ProvisionStep,
    is_provisioned, list_templates, provision, verify_password,
};
use secrecy::SecretString;
use sqlx::Connection as _;

fn quick_probe() -> ProvisionOptions {
    // Generous bounds: concurrent clones of one template queue behind each
    // other, and CI machines are loaded; the busy and timeout cases have
    // tests of their own with short bounds.
    ProvisionOptions {
        busy_template_timeout: Duration::from_secs(60),
        probe: Some(ProbeOptions {
            timeout: Duration::from_secs(30),
            interval: Duration::from_millis(50),
            ..ProbeOptions::default()
        }),
        crash_at: None,
    }
}

struct Tenant {
    uuid: String,
    secret: String,
    create_date: String,
}

/// Checks everything a provisioned tenant must have; returns its identity.
async fn assert_provisioned(
    world: &World,
    db: &str,
    login: &str,
    password: &str,
) -> anyhow::Result<Tenant> {
    let mut conn = world.connect(db).await?;
    let param = |key: &'static str| {
        sqlx::query_scalar::<_, String>("SELECT value FROM ir_config_parameter WHERE key = $1")
            .bind(key)
    };
    let uuid = param("database.uuid").fetch_one(&mut conn).await?;
    let secret = param("database.secret").fetch_one(&mut conn).await?;
    let create_date = param("database.create_date").fetch_one(&mut conn).await?;
    let base_url = param("web.base.url").fetch_one(&mut conn).await?;
    assert_eq!(base_url, format!("https://{db}.saas.test"));
    assert!(
        param("saas.provisioned")
            .fetch_optional(&mut conn)
            .await?
            .is_some()
    );
    assert_eq!(
        uuid,
        world.tenant_id(db).to_string(),
        "database.uuid is the tenant id"
    );
    assert_ne!(
        secret, "fda31bfb-146b-438d-957b-a64f17d1cd21",
        "template secret kept"
    );
    assert!(create_date.starts_with(&chrono::Utc::now().format("%Y-").to_string()));

    let (company, partner_name): (String, String) = sqlx::query_as(
        "SELECT c.name, p.name FROM res_company c JOIN res_partner p ON p.id = c.partner_id WHERE c.id = 1",
    )
    .fetch_one(&mut conn)
    .await?;
    assert_eq!(company, format!("Company of {db}"));
    assert_eq!(partner_name, company);

    let (user_login, hash, email): (String, String, Option<String>) = sqlx::query_as(
        "SELECT u.login, u.password, p.email FROM res_users u JOIN res_partner p ON p.id = u.partner_id WHERE u.id = 2",
    )
    .fetch_one(&mut conn)
    .await?;
    assert_eq!(user_login, login);
    assert_eq!(email.as_deref(), Some(login));
    let (pw, h) = (password.to_owned(), hash.clone());
    assert!(
        tokio::task::spawn_blocking(move || verify_password(&pw, &h)).await?,
        "password verifies"
    );
    assert!(!verify_password("admin", &hash) || password == "admin");

    let owner: String = sqlx::query_scalar(
        "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
    )
    .bind(db)
    .fetch_one(&mut conn)
    .await?;
    assert_eq!(owner, common::ROLE);
    let (marker, acl): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT shobj_description(oid, 'pg_database'), datacl::text FROM pg_database WHERE datname = $1",
    )
    .bind(db)
    .fetch_one(&mut conn)
    .await?;
    assert_eq!(
        marker,
        Some(saas_odoo::marker::tenant_marker(world.tenant_id(db)))
    );
    // No `=c` entry: PUBLIC has no right to connect; the owner keeps its own.
    let acl = acl.unwrap_or_default();
    assert!(
        !acl.contains("{=") && !acl.contains(",="),
        "PUBLIC keeps rights: {acl}"
    );
    assert!(acl.contains(&format!("{}=CTc/", common::ROLE)), "{acl}");
    assert_eq!(
        world.filestore_hashes(db)?,
        world.filestore_hashes(&world.template)?
    );
    assert_eq!(world.filestore_hashes(db)?.len(), 3);
    Ok(Tenant {
        uuid,
        secret,
        create_date,
    })
}

#[tokio::test]
async fn provisions_several_tenants_concurrently() -> anyhow::Result<()> {
    let world = World::new().await?;
    let options = quick_probe();
    let tenants: Vec<(String, String, String)> = (0..3)
        .map(|i| {
            (
                world.db(&format!("c{i}")),
                format!("owner{i}@customer{i}.test"),
                format!("pw-{i}-Sécret"),
            )
        })
        .collect();
    // The first tenant goes through the real 600,000-round hashing; the others bring
    // a ready hash (debug builds hash slowly).
    let runs = tenants
        .iter()
        .enumerate()
        .map(|(i, (db, login, password))| {
            let credential = if i == 0 {
                AdminPassword::Plain(SecretString::from(password.clone()))
            } else {
                fast_hash(password)
            };
            let spec = world.spec(db, login, credential);
            let options = options.clone();
            let server = world.server.clone();
            async move {
                provision(&server, &spec?, &options)
                    .await
                    .map_err(anyhow::Error::from)
            }
        });
    let reports = futures::future::try_join_all(runs).await?;
    for report in &reports {
        assert!(report.created_database && report.copied_filestore && report.configured);
        assert!(report.probe_time.is_some());
    }
    let mut identities = HashSet::new();
    for (db, login, password) in &tenants {
        let tenant = assert_provisioned(&world, db, login, password).await?;
        assert!(identities.insert(tenant.uuid), "uuid is unique");
        assert!(identities.insert(tenant.secret), "secret is unique");
        let host = format!("{db}.saas.test");
        assert!(
            world.odoo.hosts().contains(&host),
            "probed with Host {host}"
        );
    }
    assert_eq!(world.databases().await?.len(), 3);

    // The template is listed with its size and installed modules.
    let templates = list_templates(&world.server).await?;
    let ours = templates
        .iter()
        .find(|t| t.name == world.template)
        .ok_or_else(|| anyhow::anyhow!("template not listed"))?;
    assert!(ours.size_bytes > 1_000_000);
    assert_eq!(ours.odoo_version.as_deref(), Some("18.0"));
    assert_eq!(
        ours.module_versions.get("base").map(String::as_str),
        Some("18.0.1.3")
    );
    assert_eq!(ours.modules.len(), 12);
    assert!(ours.modules.iter().any(|m| m == "base") && ours.modules.iter().any(|m| m == "web"));
    assert!(templates.iter().all(|t| t.name.starts_with("tpl_")));
    Ok(())
}

/// Whether `db` exists and carries the `saas.provisioned` parameter.
async fn configured(world: &World, db: &str) -> anyhow::Result<bool> {
    if !world.databases().await?.iter().any(|d| d == db) {
        return Ok(false);
    }
    let mut conn = world.connect(db).await?;
    Ok(sqlx::query_scalar::<_, String>(
        "SELECT value FROM ir_config_parameter WHERE key = 'saas.provisioned'",
    )
    .fetch_optional(&mut conn)
    .await?
    .is_some())
}

fn all_crash_points() -> Vec<CrashPoint> {
    ProvisionStep::ALL
        .iter()
        .flat_map(|s| [CrashPoint::During(*s), CrashPoint::After(*s)])
        .collect()
}

#[tokio::test]
async fn rerun_after_a_crash_at_any_point_converges() -> anyhow::Result<()> {
    let world = World::new().await?;
    for (i, point) in all_crash_points().into_iter().enumerate() {
        let db = world.db(&format!("k{i}"));
        let login = format!("crash{i}@example.test");
        let spec = world.spec(&db, &login, fast_hash("pw"))?;
        let crashing = ProvisionOptions {
            crash_at: Some(point),
            ..quick_probe()
        };
        match provision(&world.server, &spec, &crashing).await {
            Err(OdooError::Interrupted(p)) => assert_eq!(p, point),
            other => anyhow::bail!("{point:?}: expected an interruption, got {other:?}"),
        }
        let configured_already = matches!(
            point,
            CrashPoint::After(ProvisionStep::Configure)
                | CrashPoint::During(ProvisionStep::Probe)
                | CrashPoint::After(ProvisionStep::Probe)
        );
        // The clone carries the marker before it gets the tenant's name, so the
        // tenant's database exists (and is its own) from the rename on.
        let renamed = point != CrashPoint::During(ProvisionStep::CloneDatabase);
        assert_eq!(
            is_provisioned(&world.server, &db, spec.tenant_id).await?,
            renamed,
            "{point:?}"
        );
        assert_eq!(
            configured(&world, &db).await?,
            configured_already,
            "{point:?}"
        );
        if point == CrashPoint::During(ProvisionStep::CopyFilestore) {
            assert!(
                !world.server.filestore_dir(&db)?.exists(),
                "half copy never under the final name"
            );
        }

        let rerun = provision(&world.server, &spec, &quick_probe()).await?;
        assert_eq!(rerun.configured, !configured_already, "{point:?}");
        let first = assert_provisioned(&world, &db, &login, "pw").await?;

        // A third run changes nothing: same identity, nothing redone.
        let again = provision(&world.server, &spec, &quick_probe()).await?;
        assert!(!again.created_database && !again.copied_filestore && !again.configured);
        let second = assert_provisioned(&world, &db, &login, "pw").await?;
        assert_eq!(
            (first.uuid, first.secret, first.create_date),
            (second.uuid, second.secret, second.create_date)
        );

        let leftovers: Vec<_> = std::fs::read_dir(&world.server.filestore_root)?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".saas-"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "{point:?}: staging directories left: {leftovers:?}"
        );
    }
    assert_eq!(
        world.databases().await?.len(),
        all_crash_points().len(),
        "one database per tenant"
    );
    Ok(())
}

#[tokio::test]
async fn busy_template_fails_clearly_and_idle_sessions_are_closed() -> anyhow::Result<()> {
    let world = World::new().await?;
    // A sealed template refuses connections; one an operator reopened (or one
    // sealed before this platform version) can have sessions.
    common::admin_exec(&format!(
        r#"ALTER DATABASE "{}" WITH ALLOW_CONNECTIONS true"#,
        world.template
    ))
    .await?;
    let url = saas_testkit::database_url(&world.template)?;

    // An idle session on the template is closed and the clone goes through.
    let mut idle = sqlx::PgConnection::connect(&url).await?;
    let db = world.db("idle");
    provision(
        &world.server,
        &world.spec(&db, "a@b.test", fast_hash("x"))?,
        &quick_probe(),
    )
    .await?;
    assert!(
        sqlx::query("SELECT 1").execute(&mut idle).await.is_err(),
        "idle session was terminated"
    );

    // An active one is not killed: the clone gives up with a clear error.
    let mut busy = sqlx::PgConnection::connect(&url).await?;
    let sleeper = tokio::spawn(async move {
        sqlx::query("SELECT pg_sleep(4)")
            .execute(&mut busy)
            .await
            .map(|_| ())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let db = world.db("busy");
    let options = ProvisionOptions {
        busy_template_timeout: Duration::from_millis(700),
        ..quick_probe()
    };
    let err = provision(
        &world.server,
        &world.spec(&db, "a@b.test", fast_hash("x"))?,
        &options,
    )
    .await;
    match err {
        Err(OdooError::TemplateBusy { template, .. }) => assert_eq!(template, world.template),
        other => anyhow::bail!("expected TemplateBusy, got {other:?}"),
    }
    assert!(
        format!(
            "{}",
            OdooError::TemplateBusy {
                template: "t".into(),
                waited: Duration::from_secs(1)
            }
        )
        .contains("busy")
    );
    assert!(!world.databases().await?.contains(&db));
    sleeper.await??;
    Ok(())
}

/// After the first 200 the probe asks once more per Odoo worker, so every
/// worker has loaded the tenant's registry before the customer arrives; a
/// tenant that never answers gets no warming requests.
#[tokio::test]
async fn the_probe_warms_every_odoo_worker() -> anyhow::Result<()> {
    let world = World::new().await?;
    let db = world.db("warm");
    let spec = world.spec(&db, "warm@customer.test", fast_hash("pw"))?;
    let report = provision(&world.server, &spec, &quick_probe()).await?;
    assert!(report.probe_time.is_some());
    let host = format!("{db}.saas.test");
    let asked = world.odoo.hosts().iter().filter(|h| **h == host).count();
    // Probes before the tenant answered (none here: it is configured
    // before the probe starts), then one per worker.
    assert_eq!(asked, 1 + saas_odoo::probe::ODOO_HTTP_WORKERS, "{host}");

    let cold = world.db("cold");
    let spec = world.spec(&cold, "cold@customer.test", fast_hash("pw"))?;
    let options = ProvisionOptions {
        probe: Some(ProbeOptions {
            warm_requests: 0,
            ..quick_probe().probe.unwrap_or_default()
        }),
        ..quick_probe()
    };
    provision(&world.server, &spec, &options).await?;
    let host = format!("{cold}.saas.test");
    assert_eq!(world.odoo.hosts().iter().filter(|h| **h == host).count(), 1);
    Ok(())
}

#[tokio::test]
async fn probe_timeout_and_bad_inputs_are_reported() -> anyhow::Result<()> {
    let world = World::new().await?;
    let db = world.db("probe");
    let mut spec = world.spec(&db, "a@b.test", fast_hash("x"))?;
    spec.base_url = url::Url::parse("https://not-a-tenant.saas.test")?;
    let options = ProvisionOptions {
        probe: Some(ProbeOptions {
            timeout: Duration::from_millis(600),
            interval: Duration::from_millis(100),
            ..ProbeOptions::default()
        }),
        ..quick_probe()
    };
    match provision(&world.server, &spec, &options).await {
        Err(OdooError::ProbeTimeout { host, last, .. }) => {
            assert_eq!(host, "not-a-tenant.saas.test");
            assert!(last.contains("404"), "{last}");
        }
        other => anyhow::bail!("expected ProbeTimeout, got {other:?}"),
    }

    let mut missing = world.spec(&world.db("nt"), "a@b.test", fast_hash("x"))?;
    missing.template = format!("tpl_{}_missing", world.suffix);
    assert!(matches!(
        provision(&world.server, &missing, &quick_probe()).await,
        Err(OdooError::TemplateMissing(_))
    ));

    let mut bad = world.spec(&world.db("bad"), "a@b.test", fast_hash("x"))?;
    bad.db_name = "Robert'); DROP".into();
    assert!(matches!(
        provision(&world.server, &bad, &quick_probe()).await,
        Err(OdooError::Invalid { .. })
    ));

    // A database of that name owned by someone else is never taken over.
    let foreign = world.db("foreign");
    common::admin_exec(&format!(r#"CREATE DATABASE "{foreign}""#)).await?;
    let spec = world.spec(&foreign, "a@b.test", fast_hash("x"))?;
    assert!(matches!(
        provision(&world.server, &spec, &quick_probe()).await,
        Err(OdooError::ForeignDatabase { .. })
    ));
    Ok(())
}
