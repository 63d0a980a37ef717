//! A restore's bounds and what it leaves behind: byte limits (zip bomb, SQL
//! bomb, filestore bomb), time limit, backups from another Odoo or a newer
//! PostgreSQL, the tenant's identity re-applied, the database handed to the
//! Odoo role, and guest roles of a crashed worker dropped.

mod common;

use std::io::Write as _;
use std::time::{Duration, Instant};

use common::archives::{MANIFEST_18, fixture_sql, fixture_with, write_backup};
use common::{
    ROLE, World, admin_exec, config_params, guests_of, provisioned, staging_leftovers,
    table_fingerprints,
};
use saas_odoo::{
    BackupStore, OdooError, RestoreOptions, backup_tenant, drop_leftover_guests,
    restore_tenant_from_file,
};
use sqlx::{Connection as _, PgConnection};
use url::Url;
use uuid::Uuid;
use zip::write::SimpleFileOptions;

const MB: u64 = 1024 * 1024;

fn options(world: &World, db: &str, max_mb: u64) -> anyhow::Result<RestoreOptions> {
    Ok(RestoreOptions::new(
        world.tenant_id(db),
        Url::parse(&format!("https://{db}.saas.test"))?,
    )
    .with_plan_storage_mb(max_mb))
}

async fn admin() -> anyhow::Result<PgConnection> {
    Ok(PgConnection::connect(&saas_testkit::admin_database_url()).await?)
}

/// The tenant is as it was and the restore left nothing behind.
async fn assert_untouched(
    world: &World,
    db: &str,
    tables: &std::collections::BTreeMap<String, (i64, String)>,
    files: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<()> {
    assert_eq!(&table_fingerprints(world, db).await?, tables, "tables");
    assert_eq!(&world.filestore_hashes(db)?, files, "filestore");
    assert_eq!(world.databases().await?, vec![db.to_owned()], "databases");
    assert!(
        staging_leftovers(world)?.is_empty(),
        "{:?}",
        staging_leftovers(world)?
    );
    assert!(
        guests_of(world).await?.is_empty(),
        "{:?}",
        guests_of(world).await?
    );
    Ok(())
}

#[tokio::test]
async fn bombs_are_refused_at_the_limit_and_leave_nothing() -> anyhow::Result<()> {
    let world = World::new().await?;
    let db = provisioned(&world, "bombed").await?;
    let tables = table_fingerprints(&world, &db).await?;
    let files = world.filestore_hashes(&db)?;
    let limit_mb = 24;
    let options = options(&world, &db, limit_mb)?;

    // A zip bomb: dump.sql expands to 512 MB (written as a stream, never in
    // memory), the zip is well under 1 MB.
    let zip_bomb = world.dir.path().join("zip-bomb.zip");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_bomb)?);
        let deflated = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        zip.start_file("manifest.json", deflated)?;
        zip.write_all(MANIFEST_18.as_bytes())?;
        zip.start_file("dump.sql", deflated)?;
        zip.write_all(&fixture_sql()?)?;
        let padding = "-- padding of a zip bomb, harmless to psql\n".repeat(24_000);
        let mut written = 0u64;
        while written < 512 * MB {
            zip.write_all(padding.as_bytes())?;
            written += padding.len() as u64;
        }
        zip.finish()?;
    }
    let zip_size = std::fs::metadata(&zip_bomb)?.len();
    assert!(zip_size < 4 * MB, "a bomb, not a big file: {zip_size}");

    // A few bytes of SQL that would generate gigabytes.
    let sql_bomb = world.dir.path().join("sql-bomb.zip");
    write_backup(
        &sql_bomb,
        &fixture_with(
            // generate_series in the select list streams (no temporary file).
            b"CREATE TABLE bomb (i int, pad text);\n\
              INSERT INTO bomb SELECT generate_series(1, 5000000), repeat('x', 2000);\n",
            false,
        )?,
        Some(MANIFEST_18),
        &[],
    )?;

    // A filestore file of 256 MB of zeros.
    let file_bomb = world.dir.path().join("file-bomb.zip");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&file_bomb)?);
        let deflated = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        zip.start_file("dump.sql", deflated)?;
        zip.write_all(&fixture_sql()?)?;
        zip.start_file("filestore/ab/abcdef", deflated)?;
        let zeros = vec![0u8; MB as usize];
        for _ in 0..256 {
            zip.write_all(&zeros)?;
        }
        zip.finish()?;
    }

    for bomb in [&zip_bomb, &sql_bomb, &file_bomb] {
        let started = Instant::now();
        let result = restore_tenant_from_file(&world.server, &db, bomb, &options).await;
        let name = bomb.display();
        match &result {
            Err(OdooError::RestoreTooLarge { max_bytes, .. }) => {
                assert_eq!(*max_bytes, limit_mb * MB, "{name}");
            }
            other => anyhow::bail!("{name}: expected RestoreTooLarge, got {other:?}"),
        }
        let err = result.err().ok_or_else(|| anyhow::anyhow!("no error"))?;
        assert_eq!(
            err.customer_message(),
            "backup is larger than your plan's storage (24 MB)"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name}: stopped at the limit, not at the end ({:?})",
            started.elapsed()
        );
        assert_untouched(&world, &db, &tables, &files).await?;
    }

    // The same limit lets a normal backup through.
    let fine = world.dir.path().join("fine.zip");
    write_backup(
        &fine,
        &fixture_sql()?,
        Some(MANIFEST_18),
        &[("ab/abcd", b"x")],
    )?;
    restore_tenant_from_file(&world.server, &db, &fine, &options).await?;
    Ok(())
}

#[tokio::test]
async fn a_dump_running_too_long_is_stopped() -> anyhow::Result<()> {
    let world = World::new().await?;
    let db = provisioned(&world, "slow").await?;
    let tables = table_fingerprints(&world, &db).await?;
    let files = world.filestore_hashes(&db)?;
    let slow = world.dir.path().join("slow.zip");
    write_backup(
        &slow,
        &fixture_with(b"SELECT pg_sleep(600);\n", false)?,
        Some(MANIFEST_18),
        &[],
    )?;
    let options = RestoreOptions {
        timeout: Duration::from_secs(3),
        ..options(&world, &db, 1024)?
    };
    let started = Instant::now();
    let result = restore_tenant_from_file(&world.server, &db, &slow, &options).await;
    assert!(
        matches!(result, Err(OdooError::RestoreTimeout(_))),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_untouched(&world, &db, &tables, &files).await?;
    Ok(())
}

#[tokio::test]
async fn backups_from_another_odoo_or_a_newer_postgres_are_refused() -> anyhow::Result<()> {
    let world = World::new().await?;
    let db = provisioned(&world, "versions").await?;
    let tables = table_fingerprints(&world, &db).await?;
    let files = world.filestore_hashes(&db)?;
    let fixture = fixture_sql()?;
    let newer_dump = [
        &b"--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 15.20\n-- Dumped by pg_dump version 17.6 (Debian 17.6-1)\n\n"[..],
        &fixture,
    ]
    .concat();
    let from_newer_server = [
        &b"-- Dumped from database version 16.4\n-- Dumped by pg_dump version 15.20\n"[..],
        &fixture,
    ]
    .concat();
    let odoo17 =
        r#"{"odoo_dump": "1", "version": "17.0", "major_version": "17.0", "pg_version": "15.2"}"#;
    let pg17 = r#"{"odoo_dump": "1", "version": "18.0", "pg_version": "17.2"}"#;
    // (dump.sql, manifest.json, the server's Odoo if given, the refusal)
    type Case<'a> = (&'a [u8], Option<&'a str>, Option<&'a str>, &'a str);
    let cases: [Case; 5] = [
        (
            &fixture,
            Some(odoo17),
            None,
            "backup is from Odoo 17.0, this server runs Odoo 18.0",
        ),
        (
            &fixture,
            Some(odoo17),
            Some("18.0"),
            "backup is from Odoo 17.0, this server runs Odoo 18.0",
        ),
        (
            &fixture,
            Some(pg17),
            None,
            "backup is from PostgreSQL 17.2, this server runs PostgreSQL 15",
        ),
        (
            &newer_dump,
            Some(MANIFEST_18),
            None,
            "backup was made by pg_dump 17.6, this server runs PostgreSQL 15",
        ),
        (
            &from_newer_server,
            None,
            None,
            "backup is from PostgreSQL 16.4, this server runs PostgreSQL 15",
        ),
    ];
    for (i, (dump, manifest, odoo_version, message)) in cases.into_iter().enumerate() {
        let path = world.dir.path().join(format!("version-{i}.zip"));
        write_backup(&path, dump, manifest, &[])?;
        let options = RestoreOptions {
            odoo_version: odoo_version.map(str::to_owned),
            ..options(&world, &db, 1024)?
        };
        let result = restore_tenant_from_file(&world.server, &db, &path, &options).await;
        match result {
            Err(err @ OdooError::IncompatibleBackup(_)) => {
                assert_eq!(err.customer_message(), message, "case {i}");
            }
            other => anyhow::bail!("case {i}: expected IncompatibleBackup, got {other:?}"),
        }
        assert_untouched(&world, &db, &tables, &files).await?;
    }
    Ok(())
}

#[tokio::test]
async fn restore_gives_the_database_the_tenants_identity_and_the_odoo_role() -> anyhow::Result<()> {
    let world = World::new().await?;
    let source = provisioned(&world, "source").await?;
    let store = BackupStore::from_url("memory://")?;
    backup_tenant(&world.server, &source, &store, "source.zip").await?;
    let backup_params = config_params(&world, &source).await?;

    // Restored as another tenant: the backup's identity must not come along.
    let db = world.db("target");
    let tenant_id = Uuid::new_v4();
    let base_url = Url::parse("https://target.saas.test")?;
    let options = RestoreOptions::new(tenant_id, base_url).with_plan_storage_mb(512);
    saas_odoo::restore_tenant(&world.server, &db, &store, "source.zip", &options).await?;

    let params = config_params(&world, &db).await?;
    assert_eq!(
        params.get("web.base.url").map(String::as_str),
        Some("https://target.saas.test")
    );
    assert_eq!(params.get("database.uuid"), Some(&tenant_id.to_string()));
    assert!(params.contains_key("database.secret"));
    assert_ne!(
        params.get("database.secret"),
        backup_params.get("database.secret")
    );
    assert!(params.contains_key(saas_odoo::PROVISIONED_MARKER));
    let mut admin = admin().await?;
    let (owner, comment, public_connect, template, limit, settings): (
        String,
        Option<String>,
        bool,
        bool,
        i32,
        i64,
    ) = sqlx::query_as(
        "SELECT pg_get_userbyid(datdba)::text, shobj_description(oid, 'pg_database'), \
                has_database_privilege('public', oid, 'CONNECT'), datistemplate, datconnlimit, \
                (SELECT count(*) FROM pg_db_role_setting s WHERE s.setdatabase = d.oid) \
         FROM pg_database d WHERE datname = $1",
    )
    .bind(&db)
    .fetch_one(&mut admin)
    .await?;
    assert_eq!(owner, ROLE);
    assert_eq!(comment, Some(saas_odoo::marker::tenant_marker(tenant_id)));
    assert!(!public_connect, "PUBLIC may not connect");
    assert!(!template && limit == -1 && settings == 0);
    let mut conn = world.connect(&db).await?;
    let foreign: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) <> $1",
    )
    .bind(ROLE)
    .fetch_one(&mut conn)
    .await?;
    assert_eq!(foreign, 0, "every object belongs to the Odoo role");
    let schema_owner: String = sqlx::query_scalar(
        "SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = 'public'",
    )
    .fetch_one(&mut conn)
    .await?;
    assert_eq!(schema_owner, ROLE);
    assert!(guests_of(&world).await?.is_empty());

    // Now marked as this tenant's: another tenant may not restore over it.
    let other = RestoreOptions::new(Uuid::new_v4(), Url::parse("https://x.saas.test")?);
    let refused = saas_odoo::restore_tenant(&world.server, &db, &store, "source.zip", &other).await;
    assert!(
        matches!(refused, Err(OdooError::ForeignDatabase { .. })),
        "{refused:?}"
    );
    Ok(())
}

#[tokio::test]
async fn guests_left_by_a_crash_are_dropped() -> anyhow::Result<()> {
    let world = World::new().await?;
    let tenant = provisioned(&world, "crash").await?;
    // As a crashed worker leaves them: a restore guest owning its half-made
    // database and objects in it, and a read guest granted SELECT in a tenant.
    let crashed = format!("saas_guest_1000000000_{}00", world.suffix);
    let busy_deadline = chrono::Utc::now().timestamp() + 3600;
    let busy = format!("saas_guest_{busy_deadline}_{}01", world.suffix);
    let half_restored = world.db("crash_restore_abcdefgh");
    let outcome = crash_and_clean_up(&world, &tenant, &crashed, &busy, &half_restored).await;
    // The roles go whatever happened (the databases go with the world).
    for role in [&crashed, &busy] {
        if let Ok(mut conn) = world.connect(&tenant).await {
            let _ = sqlx::raw_sql(&format!(r#"DROP OWNED BY "{role}""#))
                .execute(&mut conn)
                .await;
        }
        let _ = admin_exec(&format!(r#"DROP OWNED BY "{role}""#)).await;
        let _ = admin_exec(&format!(r#"DROP ROLE IF EXISTS "{role}""#)).await;
    }
    outcome
}

async fn crash_and_clean_up(
    world: &World,
    tenant: &str,
    crashed: &str,
    busy: &str,
    half_restored: &str,
) -> anyhow::Result<()> {
    for role in [&crashed, &busy] {
        admin_exec(&format!(
            r#"CREATE ROLE "{role}" LOGIN NOINHERIT; COMMENT ON ROLE "{role}" IS 'odoo-saas guest: test {}'"#,
            world.suffix
        ))
        .await?;
    }
    admin_exec(&format!(
        r#"CREATE DATABASE "{half_restored}" OWNER "{crashed}""#
    ))
    .await?;
    admin_exec(&format!(
        r#"GRANT CONNECT ON DATABASE "{tenant}" TO "{crashed}", "{busy}""#
    ))
    .await?;
    {
        let mut conn = world.connect(half_restored).await?;
        sqlx::raw_sql(&format!(
            r#"ALTER SCHEMA public OWNER TO "{crashed}"; SET ROLE "{crashed}"; CREATE TABLE half (i int)"#
        ))
        .execute(&mut conn)
        .await?;
        let mut conn = world.connect(tenant).await?;
        sqlx::raw_sql(&format!(
            r#"GRANT SELECT ON res_users TO "{crashed}"; GRANT SELECT ON res_users TO "{busy}";
               CREATE TABLE left_by_crash (i int); ALTER TABLE left_by_crash OWNER TO "{crashed}""#
        ))
        .execute(&mut conn)
        .await?;
    }

    let dropped = drop_leftover_guests(&world.server).await?;
    assert!(dropped >= 1, "{dropped}");
    let mut admin = admin().await?;
    let roles: Vec<String> =
        sqlx::query_scalar("SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1) ORDER BY 1")
            .bind(vec![crashed.to_owned(), busy.to_owned()])
            .fetch_all(&mut admin)
            .await?;
    assert_eq!(
        roles,
        vec![busy.to_owned()],
        "only the guest past its time goes"
    );
    assert_eq!(
        world.databases().await?,
        vec![tenant.to_owned()],
        "its unfinished restore went with it"
    );
    let mut conn = world.connect(tenant).await?;
    let owner: String = sqlx::query_scalar(
        "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE relname = 'left_by_crash'",
    )
    .fetch_one(&mut conn)
    .await?;
    assert_eq!(owner, ROLE, "its objects went to the Odoo role");
    let acl: String =
        sqlx::query_scalar("SELECT relacl::text FROM pg_class WHERE relname = 'res_users'")
            .fetch_one(&mut conn)
            .await?;
    assert!(!acl.contains(crashed) && acl.contains(busy), "{acl}");

    // Running it again finds nothing more of this world.
    drop_leftover_guests(&world.server).await?;
    assert_eq!(guests_of(world).await?, vec![busy.to_owned()]);
    Ok(())
}
