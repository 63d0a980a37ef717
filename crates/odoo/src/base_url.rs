//! Odoo's `web.base.url` of a live tenant: where its links and emails
//! point. Once a customer's own domain is live and primary, it names that
//! domain and is frozen (`web.base.url.freeze`), so an admin signing in
//! through the platform host does not move it back; without one it is the
//! tenant's platform URL again, unfrozen.
//!
//! The database is the customer's by now (see `admin_password`): the
//! platform's superuser only grants, and the writes run as a throw-away
//! guest that may touch `ir_config_parameter`'s key, value and dates only.
//!
//! A running Odoo keeps parameters in its memory: after the writes the
//! guest bumps `base_cache_signaling_default`, the sequence Odoo 18 polls
//! before each request to learn that its caches are stale. Unfrozen means
//! no `web.base.url.freeze` row: Odoo takes any non-empty value, `False`
//! included, as frozen (both checked on Odoo 18.0-20250702).

use std::time::Duration;

use sqlx::{Connection as _, Executor as _, PgConnection};
use uuid::Uuid;

use crate::error::{OdooError, Result};
use crate::guest::Guest;
use crate::ident::quoted;
use crate::ownership::{TenantDatabase, tenant_database};
use crate::server::OdooServer;

const WORK: Duration = Duration::from_secs(60);
const TEMP_FILES: u64 = 16 << 20;
const STEP: &str = "setting web.base.url";

/// Sets `web.base.url` of tenant `tenant_id`'s database `db` to `url`
/// (no trailing slash), frozen when `freeze`. Setting the same values again
/// changes nothing.
#[tracing::instrument(skip_all)]
pub async fn set_base_url(
    server: &OdooServer,
    db: &str,
    tenant_id: Uuid,
    url: &url::Url,
    freeze: bool,
) -> Result<()> {
    match tenant_database(server, db, tenant_id).await? {
        TenantDatabase::Ours => {}
        TenantDatabase::Missing => return Err(OdooError::DatabaseMissing(db.to_owned())),
        TenantDatabase::Foreign { reason } => {
            return Err(OdooError::ForeignDatabase {
                db: db.to_owned(),
                reason,
            });
        }
    }
    let value = url.as_str().trim_end_matches('/').to_owned();
    let mut admin = server.connect_admin().await?;
    let guest = Guest::create(&mut admin, "web.base.url", db, WORK, TEMP_FILES).await?;
    let result = async {
        guest.grant_connect(&mut admin, db).await?;
        let signals = grant_parameters(server, db, guest.name()).await?;
        let mut conn = guest.connect(server, db).await?;
        let written = async {
            set_param(&mut conn, "web.base.url", &value).await?;
            if freeze {
                set_param(&mut conn, "web.base.url.freeze", "True").await?;
            } else {
                sqlx::query("DELETE FROM public.ir_config_parameter WHERE key = $1")
                    .bind("web.base.url.freeze")
                    .execute(&mut conn)
                    .await
                    .map_err(OdooError::guest(STEP))?;
            }
            if signals {
                sqlx::query("SELECT nextval('public.base_cache_signaling_default')")
                    .execute(&mut conn)
                    .await
                    .map_err(OdooError::guest(STEP))?;
            }
            Ok::<(), OdooError>(())
        }
        .await;
        let _ = conn.close().await;
        written
    }
    .await;
    let finished = guest.finish(server, &mut admin).await;
    result?;
    finished
}

/// Grants the guest what it writes with; whether the database has Odoo's
/// cache signalling sequence (a database Odoo never ran has none).
async fn grant_parameters(server: &OdooServer, db: &str, guest: &str) -> Result<bool> {
    let mut conn = server.connect_db_for_ddl(db).await?;
    let (exists, signals): (bool, bool) = sqlx::query_as(
        "SELECT to_regclass('public.ir_config_parameter') IS NOT NULL \
                AND to_regclass('public.ir_config_parameter_id_seq') IS NOT NULL, \
         EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = 'public' AND c.relname = 'base_cache_signaling_default' \
                   AND c.relkind = 'S')",
    )
    .fetch_one(&mut conn)
    .await?;
    if !exists {
        let _ = conn.close().await;
        return Err(OdooError::VerificationFailed(
            "the database has no ir_config_parameter table".to_owned(),
        ));
    }
    let guest = quoted(guest);
    let mut sql = format!(
        "GRANT USAGE ON SCHEMA public TO {guest}; \
         GRANT SELECT (id, key), UPDATE (value, write_date), \
               INSERT (key, value, create_date, write_date), DELETE \
               ON TABLE public.ir_config_parameter TO {guest}; \
         GRANT USAGE ON SEQUENCE public.ir_config_parameter_id_seq TO {guest}"
    );
    if signals {
        sql.push_str(&format!(
            "; GRANT USAGE ON SEQUENCE public.base_cache_signaling_default TO {guest}"
        ));
    }
    let granted = conn.execute(sql.as_str()).await;
    let _ = conn.close().await;
    granted?;
    Ok(signals)
}

async fn set_param(conn: &mut PgConnection, key: &str, value: &str) -> Result<()> {
    let updated = sqlx::query(
        "UPDATE public.ir_config_parameter SET value = $2, write_date = now() AT TIME ZONE 'UTC' \
         WHERE key = $1",
    )
    .bind(key)
    .bind(value)
    .execute(&mut *conn)
    .await
    .map_err(OdooError::guest(STEP))?;
    if updated.rows_affected() == 0 {
        sqlx::query(
            "INSERT INTO public.ir_config_parameter (key, value, create_date, write_date) \
             VALUES ($1, $2, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC')",
        )
        .bind(key)
        .bind(value)
        .execute(&mut *conn)
        .await
        .map_err(OdooError::guest(STEP))?;
    }
    Ok(())
}
