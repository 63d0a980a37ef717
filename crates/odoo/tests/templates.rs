//! Sealed templates (`odoo/seal-template.sql`, run by the test world on the Odoo 18
//! fixture exactly as `odoo/build-templates.sh` runs it): closed to connections,
//! no known credential, listed from the catalog alone.

mod common;

use common::{ROLE, World, admin_exec, seal_template};
use saas_odoo::{list_templates, verify_password};
use sqlx::{Connection as _, Executor as _};

#[tokio::test]
async fn a_sealed_template_refuses_connections_and_keeps_no_known_password() -> anyhow::Result<()> {
    let world = World::new().await?;
    for url in [
        saas_testkit::database_url(&world.template)?,
        saas_testkit::odoo::database_url_as(ROLE, &world.template)?,
    ] {
        match sqlx::PgConnection::connect(&url).await {
            Err(err) => assert!(
                err.to_string()
                    .contains("is not currently accepting connections"),
                "{err}"
            ),
            Ok(_) => anyhow::bail!("connected to a sealed template"),
        }
    }
    let (is_template, allows): (bool, bool) =
        sqlx::query_as("SELECT datistemplate, datallowconn FROM pg_database WHERE datname = $1")
            .bind(&world.template)
            .fetch_one(&mut sqlx::PgConnection::connect(&saas_testkit::admin_database_url()).await?)
            .await?;
    assert!(is_template && !allows);

    // What a clone inherits: every user that had a password has one nobody knows.
    let copy = world.template_copy("copy").await?;
    let users: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT login, password FROM res_users ORDER BY id")
            .fetch_all(&mut world.connect(&copy).await?)
            .await?;
    let with_password: Vec<_> = users
        .iter()
        .filter_map(|(login, hash)| Some((login.clone(), hash.clone()?)))
        .collect();
    assert_eq!(
        with_password
            .iter()
            .map(|(l, _)| l.as_str())
            .collect::<Vec<_>>(),
        ["admin", "public"],
        "the fixture's users with a password"
    );
    for (login, hash) in with_password {
        assert!(hash.starts_with("$pbkdf2-sha512$"), "{login}: {hash}");
        for guess in ["admin", "public", ""] {
            assert!(
                !verify_password(guess, &hash),
                "{login} still has {guess:?}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn sealing_deletes_api_keys_and_records_modules_in_the_comment() -> anyhow::Result<()> {
    let world = World::new().await?;
    let building = format!("tpl_{}_keys__building", world.suffix);
    let template = format!("tpl_{}_keys", world.suffix);
    world.load_fixture(&building).await?;
    let mut conn = world.connect(&building).await?;
    // Odoo's table, reduced to what matters: a key planted in a template would
    // log into every tenant cloned from it.
    conn.execute(
        "CREATE TABLE res_users_apikeys (id serial PRIMARY KEY, user_id int, key varchar); \
         INSERT INTO res_users_apikeys (user_id, key) VALUES (2, 'planted')",
    )
    .await?;
    // An open session is closed by the seal (an Odoo cron worker may hold one).
    seal_template(&building, &template).await?;
    assert!(sqlx::query("SELECT 1").execute(&mut conn).await.is_err());

    let templates = list_templates(&world.server).await?;
    let sealed = templates
        .iter()
        .find(|t| t.name == template)
        .ok_or_else(|| anyhow::anyhow!("sealed template not listed: {templates:?}"))?;
    assert_eq!(sealed.odoo_version.as_deref(), Some("18.0"));
    assert_eq!(sealed.modules.len(), 12);
    assert_eq!(
        sealed
            .module_versions
            .get("base_import")
            .map(String::as_str),
        Some("18.0.2.0")
    );

    let copy = world.db("keys_copy");
    admin_exec(&format!(
        r#"CREATE DATABASE "{copy}" OWNER {ROLE} TEMPLATE "{template}""#
    ))
    .await?;
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM res_users_apikeys")
        .fetch_one(&mut world.connect(&copy).await?)
        .await?;
    assert_eq!(keys, 0);
    Ok(())
}

#[tokio::test]
async fn listing_ignores_what_is_not_a_sealed_template_of_the_odoo_role() -> anyhow::Result<()> {
    let world = World::new().await?;
    let s = &world.suffix;
    let comment = r#"{"odoo": "18.0", "modules": {"base": "18.0.1.3"}}"#;
    let look_alikes = [
        // Owned by someone else (the test's superuser), otherwise perfect.
        (format!("tpl_{s}_x"), None, true, false, Some(comment)),
        // Not marked as a template.
        (
            format!("tpl_{s}_y"),
            Some(ROLE),
            false,
            false,
            Some(comment),
        ),
        // Still being built.
        (
            format!("tpl_{s}_z__building"),
            Some(ROLE),
            true,
            false,
            Some(comment),
        ),
        // Never sealed: open to connections.
        (
            format!("tpl_{s}_open"),
            Some(ROLE),
            true,
            true,
            Some(comment),
        ),
        // Never sealed: no comment.
        (format!("tpl_{s}_bare"), Some(ROLE), true, false, None),
        // A comment that is not the seal's.
        (
            format!("tpl_{s}_odd"),
            Some(ROLE),
            true,
            false,
            Some("made by hand"),
        ),
    ];
    for (name, owner, is_template, open, comment) in &look_alikes {
        let owner = owner.map(|o| format!(" OWNER {o}")).unwrap_or_default();
        admin_exec(&format!(r#"CREATE DATABASE "{name}"{owner}"#)).await?;
        if let Some(comment) = comment {
            admin_exec(&format!(r#"COMMENT ON DATABASE "{name}" IS '{comment}'"#)).await?;
        }
        admin_exec(&format!(
            r#"ALTER DATABASE "{name}" WITH IS_TEMPLATE {is_template} ALLOW_CONNECTIONS {open}"#
        ))
        .await?;
    }
    let listed: Vec<String> = list_templates(&world.server)
        .await?
        .into_iter()
        .map(|t| t.name)
        .filter(|name| name.contains(s.as_str()))
        .collect();
    assert_eq!(listed, vec![world.template.clone()]);
    Ok(())
}
