//! Plans made for the templates of `ODOO_TEMPLATES`, once each, ever.

use saas_core::config::TemplateSpec;
use saas_core::template_plans::seed;
use saas_testkit::TestDb;
use sqlx::PgPool;
use uuid::Uuid;

async fn world(built: &[&str]) -> anyhow::Result<(TestDb, PgPool)> {
    let db = TestDb::new("seeding").await?;
    let pool = db.pool().await?;
    saas_core::db::MIGRATOR.run(&pool).await?;
    let server = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO servers (id, name, public_url, internal_url, pg_url, filestore_root, capacity)
         VALUES ($1, 'odoo-1', 'http://x', 'http://odoo:8069', 'postgres://odoo@db/postgres', '/f', 10)",
    )
    .bind(server)
    .execute(&pool)
    .await?;
    for name in built {
        sqlx::query("INSERT INTO server_templates (server_id, name) VALUES ($1, $2)")
            .bind(server)
            .bind(format!("tpl_{name}"))
            .execute(&pool)
            .await?;
    }
    Ok((db, pool))
}

fn spec(name: &str) -> TemplateSpec {
    TemplateSpec {
        name: name.to_owned(),
        modules: vec!["base".into(), "web".into()],
    }
}

async fn plans(pool: &PgPool) -> anyhow::Result<Vec<(String, String, bool)>> {
    Ok(
        sqlx::query_as("SELECT code, template, created_automatically FROM plans ORDER BY code")
            .fetch_all(pool)
            .await?,
    )
}

#[tokio::test]
async fn each_built_template_gets_one_plan_once_ever() -> anyhow::Result<()> {
    let (_db, pool) = world(&["basic", "standard"]).await?;
    let specs = [spec("basic"), spec("standard"), spec("not_built")];
    let made = seed(&pool, &specs).await?;
    assert_eq!(made.len(), 2);
    assert_eq!(
        plans(&pool).await?,
        [
            ("basic".to_owned(), "basic".to_owned(), true),
            ("standard".to_owned(), "standard".to_owned(), true)
        ]
    );
    let (active, trial, modules): (bool, i32, Vec<String>) =
        sqlx::query_as("SELECT active, trial_days, modules FROM plans WHERE code = 'basic'")
            .fetch_one(&pool)
            .await?;
    assert!(active && trial > 0 && modules == ["base", "web"]);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'plan.create' AND actor = 'system:worker'",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(audited, 2);

    // An operator renames one and deletes the other: neither comes back.
    sqlx::query("UPDATE plans SET name = 'Starter', code = 'starter' WHERE code = 'basic'")
        .execute(&pool)
        .await?;
    sqlx::query("DELETE FROM plans WHERE code = 'standard'")
        .execute(&pool)
        .await?;
    assert!(seed(&pool, &specs).await?.is_empty());
    assert_eq!(
        plans(&pool).await?,
        [("starter".to_owned(), "basic".to_owned(), true)]
    );
    let deleted: Option<Uuid> =
        sqlx::query_scalar("SELECT plan_id FROM seeded_template_plans WHERE template = 'standard'")
            .fetch_one(&pool)
            .await?;
    assert_eq!(deleted, None, "the decision is kept after the plan went");

    // Built later: seeded then.
    sqlx::query(
        "INSERT INTO server_templates (server_id, name) SELECT id, 'tpl_not_built' FROM servers",
    )
    .execute(&pool)
    .await?;
    assert_eq!(seed(&pool, &specs).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn an_operators_plan_or_code_is_respected_and_racing_workers_make_one() -> anyhow::Result<()>
{
    let (_db, pool) = world(&["basic", "crm", "shop"]).await?;
    // A plan already on tpl_crm, and the code "shop" taken by a plan on basic.
    sqlx::query(
        "INSERT INTO plans (id, code, name, max_users, max_storage_mb, max_backups, template)
         VALUES ($1, 'crm-pro', 'CRM', 5, 100, 1, 'crm'), ($2, 'shop', 'Shop', 5, 100, 1, 'basic')",
    )
    .bind(Uuid::new_v4())
    .bind(Uuid::new_v4())
    .execute(&pool)
    .await?;
    let specs = [spec("crm"), spec("shop")];
    let (a, b) = tokio::join!(seed(&pool, &specs), seed(&pool, &specs));
    assert_eq!(a?.len() + b?.len(), 1, "two workers made two plans");
    assert_eq!(
        plans(&pool).await?,
        [
            ("crm-pro".to_owned(), "crm".to_owned(), false),
            ("shop".to_owned(), "basic".to_owned(), false),
            ("shop-auto".to_owned(), "shop".to_owned(), true),
        ]
    );
    let decided: i64 = sqlx::query_scalar("SELECT count(*) FROM seeded_template_plans")
        .fetch_one(&pool)
        .await?;
    assert_eq!(decided, 2);
    Ok(())
}
