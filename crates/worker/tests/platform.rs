//! The real worker binary running the real data plane against the Odoo 18
//! fixture template and a local server answering like Odoo: a tenant is
//! provisioned, backed up, suspended, resumed and deleted through operations
//! requested the way admin and portal request them.

mod common;

use std::io::Read as _;

use anyhow::{Context as _, ensure};
use common::{NewTenantSpec, Platform};
use saas_core::ops::OperationKind;
use saas_testkit::odoo::{OdooWorld, ROLE};
use serde_json::json;

#[tokio::test]
async fn a_tenant_lives_its_whole_life_through_the_worker() -> anyhow::Result<()> {
    let world = OdooWorld::new().await?;
    let platform = Platform::start(&world).await?;
    let pool = &platform.pool;

    let subdomain = format!("shop-{}", world.suffix);
    let requested = platform
        .active_tenant(
            &world,
            &NewTenantSpec {
                subdomain: &subdomain,
                max_backups: 5,
                max_storage_mb: 2048,
            },
        )
        .await?;
    let tenant = requested.tenant;
    let (login, stored) = common::admin_user(&subdomain).await?;
    ensure!(
        login == requested.login
            && stored.starts_with("$pbkdf2-sha512$600000$")
            && saas_core::auth::odoo_password::verify_password(&requested.password, &stored),
        "admin user not configured: {login} {stored}"
    );
    // The sealed copy went with the provision's success.
    ensure!(
        !saas_core::ops::secrets::held(pool, requested.provision).await?,
        "the sealed password outlived its provision"
    );
    let mut odoo = sqlx::PgConnection::connect(&saas_testkit::database_url(&subdomain)?).await?;
    let base_url: String =
        sqlx::query_scalar("SELECT value FROM ir_config_parameter WHERE key = 'web.base.url'")
            .fetch_one(&mut odoo)
            .await?;
    ensure!(
        base_url == format!("https://{subdomain}.saas.test"),
        "{base_url}"
    );
    let uuid: String =
        sqlx::query_scalar("SELECT value FROM ir_config_parameter WHERE key = 'database.uuid'")
            .fetch_one(&mut odoo)
            .await?;
    ensure!(uuid == tenant.to_string(), "database.uuid {uuid}");
    drop(odoo);
    let upstream = world.odoo_url.trim_start_matches("http://").to_owned();
    ensure!(
        platform.map().contains(&format!("{subdomain} {upstream};")),
        "map: {}",
        platform.map()
    );

    platform
        .run(tenant, OperationKind::Backup, json!({ "kind": "manual" }))
        .await?;
    let (key, size): (String, i64) =
        sqlx::query_as("SELECT object_key, size_bytes FROM backups WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_one(pool)
            .await?;
    let file = std::fs::File::open(platform.backups.join(&key))?;
    ensure!(i64::try_from(file.metadata()?.len())? == size);
    let mut zip = zip::ZipArchive::new(file)?;
    let mut manifest = String::new();
    zip.by_name("manifest.json")?
        .read_to_string(&mut manifest)?;
    ensure!(manifest.contains(&subdomain), "{manifest}");
    ensure!(zip.by_name("dump.sql").is_ok());

    platform
        .run(
            tenant,
            OperationKind::Suspend,
            json!({ "reason": "unpaid invoice" }),
        )
        .await?;
    ensure!(
        platform.map().contains(&format!("{subdomain} suspended;")),
        "map: {}",
        platform.map()
    );
    // Enforced where Odoo connects, not only in nginx: the Odoo role can no
    // longer open the tenant's database (XML-RPC through another host, crons).
    let as_odoo = saas_testkit::odoo::database_url_as(ROLE, &subdomain)?;
    match sqlx::PgConnection::connect(&as_odoo).await {
        Err(err) => ensure!(err.to_string().contains("permission denied"), "{err}"),
        Ok(_) => anyhow::bail!("the Odoo role connected to a suspended tenant"),
    }
    platform
        .run(tenant, OperationKind::Resume, json!({}))
        .await?;
    ensure!(
        platform.map().contains(&format!("{subdomain} {upstream};")),
        "map: {}",
        platform.map()
    );
    sqlx::PgConnection::connect(&as_odoo)
        .await
        .context("the Odoo role cannot connect after the resume")?;

    platform
        .run(tenant, OperationKind::CollectUsage, json!({}))
        .await?;
    let users: i32 = sqlx::query_scalar("SELECT usage_users FROM tenants WHERE id = $1")
        .bind(tenant)
        .fetch_one(pool)
        .await?;
    ensure!(users >= 1, "usage not collected");

    platform
        .run(tenant, OperationKind::Delete, json!({}))
        .await?;
    platform.wait_state(tenant, "deleted").await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&subdomain)
            .fetch_one(&mut sqlx::PgConnection::connect(&saas_testkit::admin_database_url()).await?)
            .await?;
    ensure!(!exists, "the tenant database survived its deletion");
    let final_backups: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM backups WHERE tenant_id = $1 AND kind = 'pre_delete'",
    )
    .bind(tenant)
    .fetch_one(pool)
    .await?;
    ensure!(final_backups == 1, "{final_backups} final backups");
    ensure!(
        !platform.map().contains(&subdomain),
        "map: {}",
        platform.map()
    );
    Ok(())
}

/// A server the worker cannot log in to: the log names the server and says
/// why, in PostgreSQL's own words, not only "database error".
#[tokio::test]
async fn a_failing_server_is_logged_with_the_cause() -> anyhow::Result<()> {
    let world = OdooWorld::new().await?;
    let role = format!("no_such_role_{}", world.suffix);
    let platform = Platform::start_after(&world, &[], async |pool| {
        sqlx::query(
            "INSERT INTO servers (id, name, public_url, internal_url, pg_url, filestore_root, capacity)
             VALUES ($1, 'unreachable', 'http://127.0.0.1:9', 'http://127.0.0.1:9', $2, '/nonexistent', 1)",
        )
        .bind(uuid::Uuid::new_v4())
        .bind(format!("postgres://{role}@127.0.0.1:5432/postgres"))
        .execute(pool)
        .await?;
        Ok(())
    })
    .await?;
    let expected = format!("role \"{role}\" does not exist");
    for _ in 0..100 {
        let log = platform.worker.log();
        if let Some(line) = log.lines().find(|l| l.contains("cannot list templates")) {
            ensure!(
                line.contains("unreachable") && line.contains(&expected),
                "the log line drops the cause: {line}"
            );
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!(
        "no \"cannot list templates\" line; log:\n{}",
        platform.worker.log()
    )
}

/// A fresh stack with ODOO_TEMPLATES set: the worker finds the template
/// built and offers a plan on it, on which a customer's instance becomes
/// active without an operator typing a template name.
#[tokio::test]
async fn the_first_start_offers_a_plan_per_built_template() -> anyhow::Result<()> {
    let world = OdooWorld::new().await?;
    let templates = format!("{}:base,web never_built:base", world.template);
    let platform = Platform::start_with(&world, &[("ODOO_TEMPLATES", templates.as_str())]).await?;
    let mut plan = None;
    for _ in 0..100 {
        plan = sqlx::query_as::<_, (uuid::Uuid, String, bool, bool)>(
            "SELECT id, code, created_automatically, active FROM plans WHERE template = $1",
        )
        .bind(&world.template)
        .fetch_optional(&platform.pool)
        .await?;
        if plan.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (plan, code, automatic, active) =
        plan.with_context(|| format!("no plan seeded; log:\n{}", platform.worker.log()))?;
    ensure!(automatic && active && code == world.template, "{code}");
    let others: i64 = sqlx::query_scalar("SELECT count(*) FROM plans WHERE id <> $1")
        .bind(plan)
        .fetch_one(&platform.pool)
        .await?;
    ensure!(others == 0, "a plan for a template nobody built");
    let customer = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO customers (id, email, company_name, password_hash) VALUES ($1, $2, 'Shop', 'x')",
    )
    .bind(customer)
    .bind(format!("first-{}@shop.test", world.suffix))
    .execute(&platform.pool)
    .await?;
    let (tenant, _) = saas_core::tenants::create(
        &platform.pool,
        Some(&platform.queue),
        &common::sealing_key(),
        &saas_core::tenants::NewTenant {
            customer_id: customer,
            plan_id: plan,
            subdomain: format!("first-{}", world.suffix),
            admin_password: secrecy::SecretString::from(common::ODOO_PASSWORD),
        },
        &saas_core::ops::Actor::system("test"),
    )
    .await?;
    platform.wait_state(tenant.id, "active").await
}

/// Behind a non-default port (PUBLIC_PORT), Odoo's web.base.url carries it;
/// provisioning's probe sends the Host a browser would.
#[tokio::test]
async fn web_base_url_carries_the_public_port() -> anyhow::Result<()> {
    let world = OdooWorld::new().await?;
    let platform = Platform::start_with(
        &world,
        &[("PUBLIC_SCHEME", "https"), ("PUBLIC_PORT", "8443")],
    )
    .await?;
    let subdomain = format!("port-{}", world.suffix);
    platform
        .active_tenant(
            &world,
            &NewTenantSpec {
                subdomain: &subdomain,
                max_backups: 1,
                max_storage_mb: 1024,
            },
        )
        .await?;
    let mut odoo = sqlx::PgConnection::connect(&saas_testkit::database_url(&subdomain)?).await?;
    let base_url: String =
        sqlx::query_scalar("SELECT value FROM ir_config_parameter WHERE key = 'web.base.url'")
            .fetch_one(&mut odoo)
            .await?;
    ensure!(
        base_url == format!("https://{subdomain}.saas.test:8443"),
        "{base_url}"
    );
    Ok(())
}

use sqlx::Connection as _;

/// An operator's plan change (admin requests it straight, without the
/// portal's check) to a plan allowing fewer own domains than the tenant
/// has fails for good, naming the limit; the tenant keeps its plan.
#[tokio::test]
async fn a_plan_change_below_the_tenants_domains_fails_naming_them() -> anyhow::Result<()> {
    let world = OdooWorld::new().await?;
    let platform = Platform::start(&world).await?;
    let pool = &platform.pool;
    let subdomain = format!("dom-{}", world.suffix);
    let requested = platform
        .active_tenant(
            &world,
            &NewTenantSpec {
                subdomain: &subdomain,
                max_backups: 5,
                max_storage_mb: 2048,
            },
        )
        .await?;
    let tenant = requested.tenant;
    for domain in ["erp.example.test", "shop.example.test"] {
        saas_core::domains::add(
            pool,
            None,
            tenant,
            domain,
            "saas.test",
            &saas_core::ops::Actor::system("test"),
        )
        .await?;
    }
    let small = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO plans (id, code, name, max_users, max_storage_mb, max_backups, max_domains, template)
         SELECT $1, $2, 'One domain', max_users, max_storage_mb, max_backups, 1, template
         FROM plans WHERE id = $3",
    )
    .bind(small)
    .bind(format!("one-domain-{}", world.suffix))
    .bind(requested.plan)
    .execute(pool)
    .await?;
    let changed = platform
        .run(
            tenant,
            OperationKind::ChangePlan,
            json!({ "plan_id": small }),
        )
        .await;
    let error = format!("{:#}", changed.err().context("the plan change succeeded")?);
    ensure!(
        error.contains("the plan allows 1 domains per instance and this one has 2"),
        "{error}"
    );
    let plan: uuid::Uuid = sqlx::query_scalar("SELECT plan_id FROM tenants WHERE id = $1")
        .bind(tenant)
        .fetch_one(pool)
        .await?;
    ensure!(plan == requested.plan, "the tenant's plan changed");
    Ok(())
}
