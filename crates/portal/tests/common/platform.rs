//! The real worker binary and an Odoo world behind a portal under test.

use std::path::Path;

use saas_testkit::ServiceProcess;
use saas_testkit::odoo::{OdooWorld, ROLE};

use super::{Options, ServerRow, TestApp};

/// The real worker for `app`'s database, Redis prefix and backup store,
/// built next to the portal's binary.
pub async fn start_worker(app: &TestApp, world: &OdooWorld) -> anyhow::Result<ServiceProcess> {
    let worker = saas_testkit::odoo::worker_binary(Path::new(env!("CARGO_BIN_EXE_portal")))?;
    world
        .start_worker(
            &worker,
            &app.db.url,
            &app.redis_prefix,
            app.backups_dir.path(),
        )
        .await
}

pub fn options(world: &OdooWorld) -> Options {
    Options {
        template: world.template.clone(),
        extra_env: Vec::new(),
        server: Some(ServerRow {
            internal_url: world.odoo_url.clone(),
            pg_url: saas_testkit::admin_database_url(),
            role: ROLE.to_owned(),
            filestore_root: world.filestore_root.to_string_lossy().into_owned(),
        }),
    }
}
