//! Guest roles a crashed worker left behind: past the time in their name
//! (`saas_guest_<unix seconds>_<random>`, see `guest.rs`), they are dropped by
//! the reconciler, with the unfinished restores they own.

use chrono::Utc;
use sqlx::{Executor as _, PgConnection};

use crate::error::Result;
use crate::guest::{GUEST_PREFIX, RANDOM_LEN, drop_guest};
use crate::ident::{check_db_name, quoted};
use crate::server::OdooServer;
use saas_core::error_chain::Chain;

/// Drops the guest roles whose makers died: past the time in their name.
/// Databases such a guest still owns are restores that never finished and
/// are dropped; whatever else it owns or was granted, in any database
/// (`pg_shdepend` says which), is reassigned to the Odoo role or revoked.
/// Returns how many guests were dropped; one that cannot be is logged and
/// left for the next run.
#[tracing::instrument(skip_all)]
pub async fn drop_leftover_guests(server: &OdooServer) -> Result<usize> {
    let mut admin = server.connect_admin().await?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT rolname::text FROM pg_catalog.pg_roles WHERE rolname LIKE 'saas\\_guest\\_%'",
    )
    .fetch_all(&mut admin)
    .await?;
    let now = Utc::now().timestamp();
    let mut dropped = 0;
    for name in names {
        match deadline_of(&name) {
            Some(deadline) if deadline < now => {}
            _ => continue,
        }
        match drop_leftover(server, &mut admin, &name).await {
            Ok(()) => dropped += 1,
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "a leftover guest role could not be dropped yet")
            }
        }
    }
    if dropped > 0 {
        tracing::info!(
            dropped,
            "dropped guest roles left by an interrupted operation"
        );
    }
    Ok(dropped)
}

async fn drop_leftover(server: &OdooServer, admin: &mut PgConnection, name: &str) -> Result<()> {
    let owned: Vec<String> = sqlx::query_scalar(
        "SELECT d.datname::text FROM pg_catalog.pg_database d \
         JOIN pg_catalog.pg_roles r ON r.oid = d.datdba WHERE r.rolname = $1",
    )
    .bind(name)
    .fetch_all(&mut *admin)
    .await?;
    for db in owned {
        check_db_name(&db)?;
        admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quoted(&db)).as_str())
            .await?;
    }
    drop_guest(server, admin, name).await
}

/// The unix time in a guest's name, `saas_guest_<seconds>_<random>`; `None`
/// for any other name (a role this crate did not make is never touched).
fn deadline_of(name: &str) -> Option<i64> {
    let (seconds, random) = name.strip_prefix(GUEST_PREFIX)?.split_once('_')?;
    let random_ok = random.len() == RANDOM_LEN
        && random
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let seconds_ok = !seconds.is_empty() && seconds.bytes().all(|b| b.is_ascii_digit());
    if random_ok && seconds_ok {
        seconds.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_come_from_our_names_only() {
        assert_eq!(
            deadline_of("saas_guest_1700000000_abcdef012345"),
            Some(1_700_000_000)
        );
        for other in [
            "saas_guest_",
            "saas_guest_x_abcdef012345",
            "saas_guest_1700000000_short",
            "saas_guest_1700000000_ABCDEF012345",
            "saas_guest_1700000000_abcdef012345_x",
            "odoo",
            "saas_guestish_1_abcdef012345",
        ] {
            assert_eq!(deadline_of(other), None, "{other}");
        }
    }
}
