//! `web.base.url` of a live tenant, as the worker sets it for a customer's
//! own domain: frozen and signalled to a running Odoo, then unfrozen by
//! removing the freeze (Odoo 18 reads any stored value, `False` too, as
//! frozen).

mod common;

use common::{World, provisioned};
use saas_odoo::set_base_url;
use url::Url;

async fn params(world: &World, db: &str) -> anyhow::Result<(String, Option<String>, i64)> {
    let mut conn = world.connect(db).await?;
    let url: String =
        sqlx::query_scalar("SELECT value FROM ir_config_parameter WHERE key = 'web.base.url'")
            .fetch_one(&mut conn)
            .await?;
    let freeze: Option<String> = sqlx::query_scalar(
        "SELECT value FROM ir_config_parameter WHERE key = 'web.base.url.freeze'",
    )
    .fetch_optional(&mut conn)
    .await?;
    let signalled: i64 = sqlx::query_scalar(
        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM base_cache_signaling_default",
    )
    .fetch_one(&mut conn)
    .await?;
    Ok((url, freeze, signalled))
}

#[tokio::test]
async fn a_custom_domain_is_frozen_signalled_and_unfrozen() -> anyhow::Result<()> {
    let world = World::new().await?;
    let db = provisioned(&world, "bu").await?;
    let tenant = world.tenant_id(&db);
    {
        // What a database Odoo has run has (the fixture, never run, has not).
        let mut conn = world.connect(&db).await?;
        sqlx::query("CREATE SEQUENCE base_cache_signaling_default")
            .execute(&mut conn)
            .await?;
    }

    let domain = Url::parse("https://erp.acme.test")?;
    set_base_url(&world.server, &db, tenant, &domain, true).await?;
    let (url, freeze, signalled) = params(&world, &db).await?;
    assert_eq!(url, "https://erp.acme.test");
    assert_eq!(freeze.as_deref(), Some("True"));
    assert_eq!(signalled, 1, "a running Odoo is told its caches are stale");

    // The same again changes nothing but the signal.
    set_base_url(&world.server, &db, tenant, &domain, true).await?;
    assert_eq!(params(&world, &db).await?.0, "https://erp.acme.test");

    let platform = Url::parse(&format!("https://{db}.saas.test/"))?;
    set_base_url(&world.server, &db, tenant, &platform, false).await?;
    let (url, freeze, signalled) = params(&world, &db).await?;
    assert_eq!(url, format!("https://{db}.saas.test"));
    assert_eq!(freeze, None, "unfrozen: no freeze row at all");
    assert_eq!(signalled, 3);
    Ok(())
}

#[tokio::test]
async fn a_database_without_the_signalling_sequence_is_still_set() -> anyhow::Result<()> {
    let world = World::new().await?;
    let db = provisioned(&world, "bn").await?;
    let tenant = world.tenant_id(&db);
    {
        // A customer's table in the sequence's place is not a sequence.
        let mut conn = world.connect(&db).await?;
        sqlx::query("CREATE TABLE base_cache_signaling_default (x int)")
            .execute(&mut conn)
            .await?;
    }
    let domain = Url::parse("https://erp.globex.test")?;
    set_base_url(&world.server, &db, tenant, &domain, true).await?;
    let mut conn = world.connect(&db).await?;
    let url: String =
        sqlx::query_scalar("SELECT value FROM ir_config_parameter WHERE key = 'web.base.url'")
            .fetch_one(&mut conn)
            .await?;
    assert_eq!(url, "https://erp.globex.test");
    Ok(())
}
