//! Delete, usage and the nginx routing map.

mod common;

use std::path::Path;

use common::{World, fast_hash};
use saas_odoo::{
    BackupStore, FinalBackup, ProvisionOptions, Route, RouteTarget, collect_usage, delete_tenant,
    provision, write_routing_map,
};
use sqlx::Connection as _;

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

#[tokio::test]
async fn delete_drops_database_and_filestore_and_is_idempotent() -> anyhow::Result<()> {
    let world = World::new().await?;
    let db = provisioned(&world, "del").await?;
    let keep = provisioned(&world, "keep").await?;
    let mut odoo_session = sqlx::PgConnection::connect(&saas_testkit::database_url(&db)?).await?;
    assert!(world.server.filestore_dir(&db)?.exists());

    let store = BackupStore::from_url(&format!(
        "file://{}",
        world.dir.path().join("final").display()
    ))?;
    let final_backup = Some(FinalBackup {
        store: &store,
        key: "final/del.zip",
    });
    let report = delete_tenant(&world.server, &db, final_backup).await?;
    assert!(report.dropped_database && report.removed_filestore);
    let info = report
        .final_backup
        .ok_or_else(|| anyhow::anyhow!("no final backup"))?;
    assert_eq!(store.size("final/del.zip").await?, info.size_bytes);
    assert_eq!(info.manifest.db_name, db);
    assert_eq!(world.databases().await?, vec![keep.clone()]);
    assert!(!world.server.filestore_dir(&db)?.exists());
    assert!(
        world.server.filestore_dir(&keep)?.exists(),
        "other tenants untouched"
    );
    assert!(
        sqlx::query("SELECT 1")
            .execute(&mut odoo_session)
            .await
            .is_err()
    );

    common::admin_exec(&format!(r#"CREATE DATABASE "{db}_restore_abcdefgh""#)).await?;
    let again = delete_tenant(&world.server, &db, final_backup).await?;
    assert_eq!(
        world.databases().await?,
        vec![keep.clone()],
        "restore leftovers dropped"
    );
    assert!(!again.dropped_database && !again.removed_filestore);
    assert!(again.final_backup.is_none(), "nothing left to back up");
    assert!(delete_tenant(&world.server, "../x", None).await.is_err());

    // Without a final backup, when the operator says so.
    let report = delete_tenant(&world.server, &keep, None).await?;
    assert!(report.dropped_database && report.final_backup.is_none());
    assert!(world.databases().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn usage_counts_sizes_and_internal_users_only() -> anyhow::Result<()> {
    let world = World::new().await?;
    let db = provisioned(&world, "use").await?;
    let usage = collect_usage(&world.server, &db).await?;
    assert_eq!(
        usage.active_users, 1,
        "only the admin: system, public and template users excluded"
    );
    assert!(usage.db_bytes > 1_000_000);
    let files: u64 = std::fs::read_dir(world.server.filestore_dir(&world.template)?)?
        .filter_map(|e| e.ok())
        .map(|d| {
            std::fs::read_dir(d.path())
                .map(|f| {
                    f.filter_map(|e| e.ok())
                        .filter_map(|e| e.metadata().ok())
                        .map(|m| m.len())
                        .sum::<u64>()
                })
                .unwrap_or(0)
        })
        .sum();
    assert!(files > 0);
    assert_eq!(usage.filestore_bytes, files);

    let mut conn = world.connect(&db).await?;
    for (login, active, share) in [
        ("u1@x.test", true, false),
        ("u2@x.test", true, false),
        ("portal@x.test", true, true),
        ("gone@x.test", false, false),
    ] {
        sqlx::query("INSERT INTO res_users (login, active, share, company_id, partner_id) VALUES ($1, $2, $3, 1, 3)")
            .bind(login)
            .bind(active)
            .bind(share)
            .execute(&mut conn)
            .await?;
    }
    assert_eq!(collect_usage(&world.server, &db).await?.active_users, 3);
    Ok(())
}

fn nginx_available() -> anyhow::Result<bool> {
    let found = std::process::Command::new("nginx")
        .arg("-v")
        .output()
        .is_ok();
    if !found {
        anyhow::ensure!(
            std::env::var_os("CI").is_none(),
            "nginx is required under CI (apt-get install nginx-light)"
        );
        eprintln!("nginx not installed: skipping the nginx -t check of the routing map");
    }
    Ok(found)
}

fn nginx_test(dir: &Path, map: &Path) -> anyhow::Result<std::process::Output> {
    std::fs::create_dir_all(dir.join("tmp"))?;
    let d = dir.display();
    let conf = format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 16; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n\
         fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n\
         map $tenant $odoo_upstream {{\n    default \"\";\n    include {map};\n  }}\n\
         server {{\n    listen 127.0.0.1:8999;\n    server_name ~^(?<tenant>[a-z0-9-]+)\\.saas\\.test$;\n\
         location / {{\n      if ($odoo_upstream = suspended) {{ return 503; }}\n      proxy_pass http://$odoo_upstream;\n    }}\n  }}\n}}\n",
        map = map.display()
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    Ok(std::process::Command::new("nginx")
        .arg("-t")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf_path)
        .output()?)
}

#[tokio::test]
async fn routing_map_is_written_atomically_and_nginx_accepts_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let map = dir.path().join("maps/tenants.map");
    let routes = vec![
        Route {
            subdomain: "acme".into(),
            target: RouteTarget::Upstream("odoo:8069".into()),
        },
        Route {
            subdomain: "big-corp".into(),
            target: RouteTarget::Upstream("10.0.0.7:8069".into()),
        },
        Route {
            subdomain: "late-payer".into(),
            target: RouteTarget::Suspended,
        },
    ];
    write_routing_map(&map, &routes).await?;
    let body = std::fs::read_to_string(&map)?;
    assert!(body.contains("\nacme odoo:8069;\n") && body.contains("\nlate-payer suspended;\n"));

    // Suspending rewrites the whole file; no temporary file stays behind.
    let mut suspended = routes.clone();
    suspended[0].target = RouteTarget::Suspended;
    write_routing_map(&map, &suspended).await?;
    assert!(std::fs::read_to_string(&map)?.contains("\nacme suspended;\n"));
    let names: Vec<String> = std::fs::read_dir(dir.path().join("maps"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["tenants.map"]);
    assert!(
        write_routing_map(
            &map,
            &[Route {
                subdomain: "x;y".into(),
                target: RouteTarget::Suspended
            }]
        )
        .await
        .is_err()
    );
    assert!(
        std::fs::read_to_string(&map)?.contains("acme suspended;"),
        "a refused map leaves the old one"
    );

    if !nginx_available()? {
        return Ok(());
    }
    let out = nginx_test(dir.path(), &map)?;
    assert!(
        out.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The check is real: nginx refuses a broken map.
    let broken = dir.path().join("broken.map");
    std::fs::write(&broken, "acme odoo:8069\nzeta suspended;\n}")?;
    let out = nginx_test(dir.path(), &broken)?;
    assert!(!out.status.success(), "nginx accepted a broken map");
    Ok(())
}
