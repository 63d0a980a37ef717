//! The first owner: from `ADMIN_BOOTSTRAP_EMAIL`/`ADMIN_BOOTSTRAP_PASSWORD`
//! at start when no operator exists, or from `admin create-operator`.

use saas_core::StartupError;
use secrecy::ExposeSecret;
use sqlx::PgPool;

use crate::actions::operators::{NewOperator, insert};
use crate::error::Error;
use crate::repo::operators;
use crate::settings::AdminSettings;

/// Creates the bootstrap owner if no operator exists yet (a concurrent
/// start that created it first is fine).
pub async fn bootstrap_owner(db: &PgPool, settings: &AdminSettings) -> Result<(), StartupError> {
    let Some((email, password)) = &settings.bootstrap else {
        return Ok(());
    };
    let internal = |err: String| StartupError::Internal(err);
    if operators::count(db)
        .await
        .map_err(|e| internal(saas_core::error_chain::chain(&e)))?
        > 0
    {
        return Ok(());
    }
    let created = insert(
        db,
        None,
        NewOperator {
            email: email.clone(),
            role: "owner".to_owned(),
            password: password.expose_secret().to_owned(),
            display_name: String::new(),
        },
    )
    .await;
    match created {
        Ok(row) => {
            tracing::info!(operator = %row.email, "created the bootstrap owner (ADMIN_BOOTSTRAP_EMAIL)");
            Ok(())
        }
        Err(Error::Conflict { .. }) => Ok(()),
        Err(err) => Err(internal(format!(
            "creating the bootstrap owner: {}",
            saas_core::error_chain::chain(&err)
        ))),
    }
}
