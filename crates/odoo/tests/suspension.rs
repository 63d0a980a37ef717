//! Suspension is enforced where Odoo connects: the Odoo role loses CONNECT on the
//! tenant database and its sessions are closed; resume gives it back. The test
//! role is a LOGIN role and local auth is trust, so a connection attempt as it is
//! a real check of the privilege.

mod common;

use common::{ROLE, World, fast_hash};
use saas_odoo::{
    OdooError, ProvisionOptions, odoo_may_connect, provision, resume_tenant, suspend_tenant,
};
use sqlx::{Connection as _, PgConnection};

async fn provisioned(world: &World, name: &str) -> anyhow::Result<String> {
    let db = world.db(name);
    let spec = world.spec(&db, &format!("{name}@example.test"), fast_hash("pw"))?;
    let options = ProvisionOptions {
        probe: None,
        ..ProvisionOptions::default()
    };
    provision(&world.server, &spec, &options).await?;
    Ok(db)
}

async fn connect_as_odoo(db: &str) -> Result<PgConnection, sqlx::Error> {
    let url = saas_testkit::odoo::database_url_as(ROLE, db)
        .map_err(|e| sqlx::Error::Configuration(e.into()))?;
    PgConnection::connect(&url).await
}

async fn connection_limit(world: &World, db: &str) -> anyhow::Result<i32> {
    Ok(
        sqlx::query_scalar("SELECT datconnlimit FROM pg_database WHERE datname = $1")
            .bind(db)
            .fetch_one(&mut world.connect("postgres").await?)
            .await?,
    )
}

#[tokio::test]
async fn a_suspended_tenant_is_closed_to_odoo_until_resumed() -> anyhow::Result<()> {
    let world = World::new().await?;
    let db = provisioned(&world, "paused").await?;
    let neighbour = provisioned(&world, "neighbour").await?;

    let mut odoo_session = connect_as_odoo(&db).await?;
    sqlx::query("SELECT 1").execute(&mut odoo_session).await?;
    assert!(odoo_may_connect(&world.server, &db).await?);

    suspend_tenant(&world.server, &db).await?;
    assert!(
        sqlx::query("SELECT 1")
            .execute(&mut odoo_session)
            .await
            .is_err(),
        "the open session survived the suspension"
    );
    match connect_as_odoo(&db).await {
        Err(err) => assert!(err.to_string().contains("permission denied"), "{err}"),
        Ok(_) => anyhow::bail!("the Odoo role connected to a suspended tenant"),
    }
    assert!(!odoo_may_connect(&world.server, &db).await?);
    // Idempotent, and only this tenant: the neighbour stays open.
    suspend_tenant(&world.server, &db).await?;
    assert!(!odoo_may_connect(&world.server, &db).await?);
    connect_as_odoo(&neighbour).await?;
    // Not the restore's mechanism: the connection limit is left alone.
    assert_eq!(connection_limit(&world, &db).await?, -1);
    // The platform's own superuser sessions (backups) still connect.
    world.connect(&db).await?;

    resume_tenant(&world.server, &db).await?;
    resume_tenant(&world.server, &db).await?;
    connect_as_odoo(&db).await?;
    assert!(odoo_may_connect(&world.server, &db).await?);
    let acl: Option<String> =
        sqlx::query_scalar("SELECT datacl::text FROM pg_database WHERE datname = $1")
            .bind(&db)
            .fetch_one(&mut world.connect(&db).await?)
            .await?;
    assert_eq!(
        acl,
        Some(format!("{{{ROLE}=CTc/{ROLE}}}")),
        "as provisioned"
    );
    Ok(())
}

#[tokio::test]
async fn suspending_a_missing_database_says_so() -> anyhow::Result<()> {
    let world = World::new().await?;
    let db = world.db("nowhere");
    for result in [
        suspend_tenant(&world.server, &db).await,
        resume_tenant(&world.server, &db).await,
    ] {
        assert!(matches!(result, Err(OdooError::DatabaseMissing(ref d)) if *d == db));
    }
    assert!(matches!(
        suspend_tenant(&world.server, "a;b").await,
        Err(OdooError::Invalid { .. })
    ));
    Ok(())
}
