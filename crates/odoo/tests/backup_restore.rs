//! Backup -> restore round trips and broken archives, against the real PostgreSQL.

mod common;

use std::io::Write as _;
use std::path::Path;

use common::{World, config_params, fast_hash, restorable_state, table_fingerprints};
use saas_odoo::{
    BackupStore, OdooError, ProvisionOptions, RestoreOptions, backup_tenant, provision,
    restore_tenant, restore_tenant_from_file,
};
use sha2::{Digest as _, Sha256};
use sqlx::Connection as _;
use url::Url;
use zip::write::SimpleFileOptions;

/// Restore options for tenant database `db` as the world provisions it.
fn options_for(world: &World, db: &str) -> anyhow::Result<RestoreOptions> {
    Ok(RestoreOptions::new(
        world.tenant_id(db),
        Url::parse(&format!("https://{db}.saas.test"))?,
    ))
}

async fn provisioned(world: &World, name: &str) -> anyhow::Result<String> {
    let db = world.db(name);
    let spec = world.spec(&db, &format!("{name}@example.test"), fast_hash("pw"))?;
    let options = ProvisionOptions {
        probe: None,
        ..ProvisionOptions::default()
    };
    provision(&world.server, &spec, &options).await?;
    world.add_attachments(&db, 4).await?;
    Ok(db)
}

async fn sequence_value(world: &World, db: &str, name: &str) -> anyhow::Result<i64> {
    let mut conn = world.connect(db).await?;
    Ok(
        sqlx::query_scalar(&format!("SELECT last_value FROM {name}"))
            .fetch_one(&mut conn)
            .await?,
    )
}

fn staging_leftovers(world: &World) -> anyhow::Result<Vec<String>> {
    Ok(std::fs::read_dir(&world.server.filestore_root)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect())
}

#[tokio::test]
async fn backup_then_restore_gives_back_the_same_tenant() -> anyhow::Result<()> {
    let world = World::new().await?;
    let db = provisioned(&world, "rt").await?;
    {
        let mut conn = world.connect(&db).await?;
        sqlx::query("CREATE SEQUENCE base_registry_signaling")
            .execute(&mut conn)
            .await?;
        sqlx::query("CREATE SEQUENCE base_cache_signaling_default")
            .execute(&mut conn)
            .await?;
        sqlx::query("SELECT nextval('base_registry_signaling')")
            .execute(&mut conn)
            .await?;
    }
    let before = restorable_state(&world, &db).await?;
    let params_before = config_params(&world, &db).await?;
    let files_before = world.filestore_hashes(&db)?;
    assert_eq!(files_before.len(), 7);

    let backups = world.dir.path().join("backups");
    let store = BackupStore::from_url(&format!("file://{}", backups.display()))?;
    let key = saas_odoo::backup_key(&db);
    let info = backup_tenant(&world.server, &db, &store, &key).await?;

    // The object on disk is what the report says, and a zip Odoo can read.
    let object = backups.join(&key);
    let bytes = std::fs::read(&object)?;
    assert_eq!(bytes.len() as u64, info.size_bytes);
    assert_eq!(hex::encode(Sha256::digest(&bytes)), info.sha256);
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&object)?)?;
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()?;
    assert!(names.contains(&"dump.sql".to_owned()) && names.contains(&"manifest.json".to_owned()));
    assert_eq!(
        names.iter().filter(|n| n.starts_with("filestore/")).count(),
        7
    );
    let manifest: serde_json::Value = serde_json::from_reader(zip.by_name("manifest.json")?)?;
    assert_eq!(manifest["odoo_dump"], "1");
    assert_eq!(manifest["db_name"], db.as_str());
    assert_eq!(manifest["major_version"], "18.0");
    assert_eq!(manifest["version"], "18.0");
    assert!(
        manifest["pg_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("15"))
    );
    assert_eq!(manifest["modules"]["base"], "18.0.1.3");
    assert_eq!(manifest["modules"].as_object().map(|m| m.len()), Some(12));
    python_can_read(&object)?;

    // The tenant changes after the backup, and Odoo holds a connection and has
    // bumped its registry sequence.
    {
        let mut conn = world.connect(&db).await?;
        sqlx::query("INSERT INTO res_partner (name, active) VALUES ('after backup', true)")
            .execute(&mut conn)
            .await?;
        sqlx::query("UPDATE res_users SET login = 'changed' WHERE id = 2")
            .execute(&mut conn)
            .await?;
        for _ in 0..40 {
            sqlx::query("SELECT nextval('base_registry_signaling')")
                .execute(&mut conn)
                .await?;
        }
    }
    let old_signal = sequence_value(&world, &db, "base_registry_signaling").await?;
    let first_file = files_before.keys().next().cloned().unwrap_or_default();
    std::fs::remove_file(world.server.filestore_dir(&db)?.join(&first_file))?;
    std::fs::write(
        world.server.filestore_dir(&db)?.join("new-after-backup"),
        b"x",
    )?;
    let mut odoo_session = world.connect(&db).await?;
    assert_ne!(restorable_state(&world, &db).await?, before);

    let options = options_for(&world, &db)?;
    let report = restore_tenant(&world.server, &db, &store, &key, &options).await?;
    assert!(report.replaced_existing);
    assert_eq!(report.filestore_files, 7);
    assert_eq!(
        restorable_state(&world, &db).await?,
        before,
        "tables identical but for the tenant's identity"
    );
    let params = config_params(&world, &db).await?;
    assert_eq!(
        params.get("web.base.url"),
        params_before.get("web.base.url")
    );
    assert_eq!(
        params.get("database.uuid"),
        Some(&options.tenant_id.to_string())
    );
    assert_ne!(
        params.get("database.secret"),
        params_before.get("database.secret")
    );
    assert_eq!(
        world.filestore_hashes(&db)?,
        files_before,
        "filestore identical"
    );
    assert!(
        sqlx::query("SELECT 1")
            .execute(&mut odoo_session)
            .await
            .is_err(),
        "old sessions closed"
    );
    assert!(
        sequence_value(&world, &db, "base_registry_signaling").await? > old_signal,
        "registry signaled"
    );
    assert!(sequence_value(&world, &db, "base_cache_signaling_default").await? > 1);
    assert_eq!(
        world.databases().await?,
        vec![db.clone()],
        "no side databases left"
    );
    assert!(
        staging_leftovers(&world)?.is_empty(),
        "{:?}",
        staging_leftovers(&world)?
    );

    let owner: String =
        sqlx::query_scalar("SELECT tableowner::text FROM pg_tables WHERE tablename = 'res_users'")
            .fetch_one(&mut world.connect(&db).await?)
            .await?;
    assert_eq!(
        owner,
        common::ROLE,
        "restored objects belong to the Odoo role"
    );
    Ok(())
}

fn python_can_read(zip: &Path) -> anyhow::Result<()> {
    let script = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\nprint(len(z.namelist()))";
    match std::process::Command::new("python3")
        .args(["-c", script])
        .arg(zip)
        .output()
    {
        Ok(out) => {
            anyhow::ensure!(
                out.status.success(),
                "python zipfile: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(())
        }
        Err(e) => {
            eprintln!("python3 not available ({e}); skipping the Python zipfile cross-check");
            Ok(())
        }
    }
}

/// A zip like Odoo's database manager makes (seekable writer, directory entries).
fn odoo_style_zip(path: &Path, entries: &[(&str, Vec<u8>)]) -> anyhow::Result<()> {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path)?);
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        if name.ends_with('/') {
            zip.add_directory(*name, options)?;
        } else {
            zip.start_file(*name, options)?;
            zip.write_all(data)?;
        }
    }
    zip.finish()?;
    Ok(())
}

async fn pg_dump(db: &str) -> anyhow::Result<Vec<u8>> {
    let out = tokio::process::Command::new("pg_dump")
        .args(["--no-owner", &saas_testkit::database_url(db)?])
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out.stdout)
}

#[tokio::test]
async fn restores_an_odoo_manager_zip_as_a_new_tenant() -> anyhow::Result<()> {
    let world = World::new().await?;
    // The sealed template refuses connections: dump an open copy of it.
    let source = world.template_copy("source").await?;
    let mut entries = vec![
        (
            "manifest.json",
            br#"{"odoo_dump": "1", "db_name": "x", "version": "18.0"}"#.to_vec(),
        ),
        ("dump.sql", pg_dump(&source).await?),
        ("filestore/", Vec::new()),
    ];
    let files = world.filestore_hashes(&world.template)?;
    let tpl_dir = world.server.filestore_dir(&world.template)?;
    let names: Vec<String> = files.keys().map(|k| format!("filestore/{k}")).collect();
    for (name, key) in names.iter().zip(files.keys()) {
        entries.push((name.as_str(), std::fs::read(tpl_dir.join(key))?));
    }
    let path = world.dir.path().join("odoo.zip");
    odoo_style_zip(&path, &entries)?;

    let db = world.db("imported");
    let report =
        restore_tenant_from_file(&world.server, &db, &path, &options_for(&world, &db)?).await?;
    assert!(!report.replaced_existing);
    assert_eq!(
        report.manifest.as_ref().map(|m| m["version"].clone()),
        Some("18.0".into())
    );
    assert_eq!(
        restorable_state(&world, &db).await?,
        restorable_state(&world, &source).await?
    );
    assert_eq!(world.filestore_hashes(&db)?, files);
    let owner: String = sqlx::query_scalar(
        "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
    )
    .bind(&db)
    .fetch_one(&mut world.connect(&db).await?)
    .await?;
    assert_eq!(owner, common::ROLE);
    Ok(())
}

#[tokio::test]
async fn broken_archives_fail_clearly_and_leave_the_tenant_untouched() -> anyhow::Result<()> {
    let world = World::new().await?;
    let db = provisioned(&world, "safe").await?;
    let before = table_fingerprints(&world, &db).await?;
    let files_before = world.filestore_hashes(&db)?;
    let store = BackupStore::from_url(&format!("file://{}", world.dir.path().join("b").display()))?;
    let good = backup_tenant(&world.server, &db, &store, "good.zip").await?;
    let good_bytes = std::fs::read(world.dir.path().join("b/good.zip"))?;
    let dump = pg_dump(&db).await?;
    let dir = world.dir.path();

    let truncated = dir.join("truncated.zip");
    std::fs::write(&truncated, &good_bytes[..good_bytes.len() / 2])?;
    let tail_cut = dir.join("tail-cut.zip");
    std::fs::write(&tail_cut, &good_bytes[..good_bytes.len() - 10])?;
    let not_zip = dir.join("not.zip");
    std::fs::write(&not_zip, b"PK\x03\x04 this is not really a zip")?;
    let dotdot = dir.join("dotdot.zip");
    odoo_style_zip(
        &dotdot,
        &[
            ("dump.sql", dump.clone()),
            ("filestore/../../evil.txt", b"owned".to_vec()),
        ],
    )?;
    let absolute = dir.join("absolute.zip");
    odoo_style_zip(
        &absolute,
        &[
            ("dump.sql", dump.clone()),
            ("/tmp/evil.txt", b"owned".to_vec()),
        ],
    )?;
    let link = dir.join("link.zip");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&link)?);
        zip.start_file("dump.sql", SimpleFileOptions::default())?;
        zip.write_all(&dump)?;
        zip.add_symlink(
            "filestore/ab/passwd",
            "/etc/passwd",
            SimpleFileOptions::default(),
        )?;
        zip.finish()?;
    }
    let foreign = dir.join("foreign.zip");
    odoo_style_zip(&foreign, &[("readme.txt", b"holiday photos".to_vec())])?;
    let bad_sql = dir.join("bad-sql.zip");
    odoo_style_zip(
        &bad_sql,
        &[("dump.sql", b"CREATE TABLE oops (;\n".to_vec())],
    )?;
    let not_odoo = dir.join("not-odoo.zip");
    odoo_style_zip(
        &not_odoo,
        &[("dump.sql", b"CREATE TABLE t (i int);\n".to_vec())],
    )?;
    let mut flipped = good_bytes.clone();
    let middle = flipped.len() / 3;
    for b in &mut flipped[middle..middle + 64] {
        *b ^= 0x5a;
    }
    let corrupt = dir.join("corrupt.zip");
    std::fs::write(&corrupt, &flipped)?;

    let cases: [(&Path, &str); 10] = [
        (&truncated, "truncated"),
        (&tail_cut, "truncated"),
        (&not_zip, "zip"),
        (&dotdot, ".."),
        (&absolute, "absolute"),
        (&link, "symbolic link"),
        (&foreign, "dump.sql is missing"),
        (&bad_sql, "psql"),
        (&not_odoo, "not an Odoo database"),
        (&corrupt, ""),
    ];
    for (path, reason) in cases {
        let result =
            restore_tenant_from_file(&world.server, &db, path, &options_for(&world, &db)?).await;
        let err = match result {
            Err(e) => e,
            Ok(r) => anyhow::bail!("{}: restore should fail, got {r:?}", path.display()),
        };
        let text = format!("{err}");
        assert!(text.contains(reason), "{}: {text}", path.display());
        assert!(
            matches!(
                err,
                OdooError::InvalidArchive(_)
                    | OdooError::DumpFailed { .. }
                    | OdooError::VerificationFailed(_)
            ),
            "{}: {err:?}",
            path.display()
        );
        assert_eq!(
            table_fingerprints(&world, &db).await?,
            before,
            "{}",
            path.display()
        );
        assert_eq!(
            world.filestore_hashes(&db)?,
            files_before,
            "{}",
            path.display()
        );
        assert_eq!(
            world.databases().await?,
            vec![db.clone()],
            "{}",
            path.display()
        );
        assert!(staging_leftovers(&world)?.is_empty(), "{}", path.display());
    }
    assert!(
        !dir.join("evil.txt").exists() && !world.server.filestore_root.join("evil.txt").exists()
    );
    assert!(!Path::new("/tmp/evil.txt").exists());

    // A backup that is not there fails (the error kind changed with the
    // copies checks; not pinned down here), and nothing changed.
    let missing = restore_tenant(
        &world.server,
        &db,
        &store,
        "missing.zip",
        &options_for(&world, &db)?,
    )
    .await;
    assert!(missing.is_err(), "a missing backup restored: {missing:?}");
    assert_eq!(world.databases().await?, vec![db.clone()]);
    assert!(good.size_bytes > 0);
    // The connection of an Odoo still works after all this.
    let mut conn = sqlx::PgConnection::connect(&saas_testkit::database_url(&db)?).await?;
    sqlx::query("SELECT 1").execute(&mut conn).await?;
    Ok(())
}

#[tokio::test]
async fn a_restore_interrupted_mid_swap_is_repaired_by_the_next_one() -> anyhow::Result<()> {
    let world = World::new().await?;
    let db = provisioned(&world, "mid").await?;
    let before = table_fingerprints(&world, &db).await?;
    // As if the worker died between the two renames of a swap: the tenant's
    // database renamed aside, a half-restored one left behind.
    common::admin_exec(&format!(r#"ALTER DATABASE "{db}" CONNECTION LIMIT 0"#)).await?;
    common::admin_exec(&format!(
        r#"ALTER DATABASE "{db}" RENAME TO "{db}_old_abcdefgh""#
    ))
    .await?;
    common::admin_exec(&format!(r#"CREATE DATABASE "{db}_restore_abcdefgh""#)).await?;
    assert_eq!(world.databases().await?.len(), 2);

    // Even a restore of a broken archive first gives the tenant its database back.
    let broken = world.dir.path().join("broken.zip");
    std::fs::write(&broken, b"PK\x03\x04 broken")?;
    assert!(matches!(
        restore_tenant_from_file(&world.server, &db, &broken, &options_for(&world, &db)?).await,
        Err(OdooError::InvalidArchive(_))
    ));
    assert_eq!(world.databases().await?, vec![db.clone()]);
    assert_eq!(table_fingerprints(&world, &db).await?, before);
    let limit: i32 = sqlx::query_scalar("SELECT datconnlimit FROM pg_database WHERE datname = $1")
        .bind(&db)
        .fetch_one(&mut world.connect(&db).await?)
        .await?;
    assert_eq!(limit, -1, "Odoo may connect again");
    Ok(())
}
