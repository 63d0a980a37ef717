//! Provisioning adopts a database under the tenant's name only when it carries the
//! tenant's own marker, and no tenant-level role can connect to a tenant database.

mod common;

use common::{ROLE, World, admin_exec, fast_hash};
use saas_odoo::{
    CrashPoint, OdooError, ProvisionOptions, ProvisionStep, TenantDatabase, drop_unfinished_clones,
    is_provisioned, marker::tenant_marker, provision, tenant_database,
};
use sqlx::{Connection as _, Executor as _};
use uuid::Uuid;

fn options() -> ProvisionOptions {
    ProvisionOptions {
        probe: None,
        ..ProvisionOptions::default()
    }
}

/// A database of the Odoo role holding something of its own, with `comment`.
async fn foreign_database(world: &World, db: &str, comment: Option<&str>) -> anyhow::Result<()> {
    admin_exec(&format!(r#"CREATE DATABASE "{db}" OWNER {ROLE}"#)).await?;
    if let Some(comment) = comment {
        admin_exec(&format!(r#"COMMENT ON DATABASE "{db}" IS '{comment}'"#)).await?;
    }
    let mut conn = world.connect(db).await?;
    conn.execute("CREATE TABLE precious (secret text); INSERT INTO precious VALUES ('theirs')")
        .await?;
    Ok(())
}

async fn still_untouched(world: &World, db: &str) -> anyhow::Result<()> {
    let mut conn = world.connect(db).await?;
    let secret: String = sqlx::query_scalar("SELECT secret FROM precious")
        .fetch_one(&mut conn)
        .await?;
    anyhow::ensure!(secret == "theirs");
    let configured: bool =
        sqlx::query_scalar("SELECT to_regclass('public.ir_config_parameter') IS NOT NULL")
            .fetch_one(&mut conn)
            .await?;
    anyhow::ensure!(!configured, "the foreign database was configured");
    anyhow::ensure!(
        !world.server.filestore_dir(db)?.exists(),
        "a filestore was copied for the foreign database"
    );
    Ok(())
}

#[tokio::test]
async fn a_database_without_the_tenants_marker_is_never_adopted() -> anyhow::Result<()> {
    let world = World::new().await?;
    let neighbour = Uuid::new_v4();
    let cases = [
        ("unmarked", None, "marker: none"),
        (
            "neighbours",
            Some(tenant_marker(neighbour)),
            "marker: another tenant's",
        ),
        ("scribbled", Some("made by hand".to_owned()), "marker: none"),
    ];
    for (name, comment, expected) in cases {
        let db = world.db(name);
        foreign_database(&world, &db, comment.as_deref()).await?;
        let spec = world.spec(&db, "a@b.test", fast_hash("x"))?;
        match provision(&world.server, &spec, &options()).await {
            Err(err @ OdooError::ForeignDatabase { .. }) => {
                let message = err.to_string();
                assert_eq!(
                    message,
                    format!(
                        "database {db:?} exists but was not created for this tenant \
                         (owner {ROLE:?}, {expected})"
                    )
                );
                assert!(!message.contains(&neighbour.to_string()), "{message}");
            }
            other => anyhow::bail!("{name}: expected ForeignDatabase, got {other:?}"),
        }
        still_untouched(&world, &db).await?;
        assert!(!is_provisioned(&world.server, &db, spec.tenant_id).await?);
        assert!(matches!(
            tenant_database(&world.server, &db, spec.tenant_id).await?,
            TenantDatabase::Foreign { .. }
        ));
    }
    // Nothing was left behind: no side clone, only the three foreign databases.
    assert_eq!(world.databases().await?.len(), 3);

    // The marker decides: to the neighbour, the same database is its own.
    assert!(is_provisioned(&world.server, &world.db("neighbours"), neighbour).await?);
    Ok(())
}

#[tokio::test]
async fn a_stale_side_clone_is_dropped_and_a_neighbours_is_not() -> anyhow::Result<()> {
    let world = World::new().await?;
    let db = world.db("stale");
    let spec = world.spec(&db, "a@b.test", fast_hash("x"))?;
    let crashing = ProvisionOptions {
        crash_at: Some(CrashPoint::During(ProvisionStep::CloneDatabase)),
        ..options()
    };
    assert!(matches!(
        provision(&world.server, &spec, &crashing).await,
        Err(OdooError::Interrupted(_))
    ));
    let left = world.databases().await?;
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with(&format!("{db}_clone_")), "{left:?}");
    assert!(!is_provisioned(&world.server, &db, spec.tenant_id).await?);

    // A look-alike side clone that carries another tenant's marker stays.
    let lookalike = format!("{db}_clone_zzzzzzzz");
    admin_exec(&format!(r#"CREATE DATABASE "{lookalike}" OWNER {ROLE}"#)).await?;
    admin_exec(&format!(
        r#"COMMENT ON DATABASE "{lookalike}" IS '{}'"#,
        tenant_marker(Uuid::new_v4())
    ))
    .await?;

    let report = provision(&world.server, &spec, &options()).await?;
    assert!(report.created_database && report.configured);
    assert_eq!(
        world.databases().await?,
        vec![db.clone(), lookalike.clone()]
    );
    assert!(is_provisioned(&world.server, &db, spec.tenant_id).await?);
    assert_eq!(
        tenant_database(&world.server, &db, spec.tenant_id).await?,
        TenantDatabase::Ours
    );

    // What a failed tenant's deletion cleans up: its own side clones only.
    assert!(matches!(
        provision(
            &world.server,
            &world.spec(&world.db("gone"), "a@b.test", fast_hash("x"))?,
            &crashing
        )
        .await,
        Err(OdooError::Interrupted(_))
    ));
    let gone = world.db("gone");
    assert_eq!(
        drop_unfinished_clones(&world.server, &gone, world.tenant_id(&gone)).await?,
        1
    );
    assert_eq!(world.databases().await?, vec![db, lookalike]);
    Ok(())
}

#[tokio::test]
async fn no_tenant_level_role_can_connect_to_a_tenant_database() -> anyhow::Result<()> {
    let world = World::new().await?;
    let db = world.db("closed");
    let spec = world.spec(&db, "a@b.test", fast_hash("x"))?;
    provision(&world.server, &spec, &options()).await?;

    let acl: Option<String> =
        sqlx::query_scalar("SELECT datacl::text FROM pg_database WHERE datname = $1")
            .bind(&db)
            .fetch_one(&mut world.connect(&db).await?)
            .await?;
    let acl = acl.unwrap_or_default();
    assert!(
        acl.starts_with('{') && !acl.contains("{=") && !acl.contains(",="),
        "PUBLIC keeps rights: {acl}"
    );

    // A fresh LOGIN role, like one a tenant could be given: refused.
    let tenant_role = format!("t_{}_someone", world.suffix);
    admin_exec(&format!("CREATE ROLE {tenant_role} LOGIN")).await?;
    let refused =
        sqlx::PgConnection::connect(&saas_testkit::odoo::database_url_as(&tenant_role, &db)?).await;
    admin_exec(&format!("DROP ROLE {tenant_role}")).await?;
    match refused {
        Err(err) => assert!(
            err.to_string().contains("CONNECT privilege")
                || err.to_string().contains("permission denied"),
            "{err}"
        ),
        Ok(_) => anyhow::bail!("a tenant-level role connected to a tenant database"),
    }
    // The Odoo role (the owner) still connects.
    sqlx::PgConnection::connect(&saas_testkit::odoo::database_url_as(ROLE, &db)?).await?;
    Ok(())
}
