//! Customers: created on a customer's behalf, disabled and enabled.

use secrecy::SecretString;
use serde::Deserialize;
use uuid::Uuid;

use super::record;
use crate::auth::{CurrentOperator, Role};
use crate::error::{Error, Result};
use crate::params::required_text;
use crate::repo::{customers, operators::valid_email};
use crate::state::AppState;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    pub email: String,
    pub company_name: String,
}

/// Creates a customer who sets a password through the portal's reset; until
/// then no password matches (the stored hash is of a discarded random one).
pub async fn create(state: &AppState, user: &CurrentOperator, new: NewCustomer) -> Result<Uuid> {
    user.require(Role::Operator)?;
    let email = required_text("email", &new.email, 254)?.to_lowercase();
    if !valid_email(&email) {
        return Err(Error::invalid("email", "must be an email address"));
    }
    let company = required_text("company_name", &new.company_name, 200)?;
    let unusable =
        saas_core::auth::password::hash(SecretString::from(saas_core::auth::random_token(32)))
            .await?;
    let mut tx = state.db.begin().await?;
    let id = customers::create(&mut tx, &email, &company, &unusable)
        .await?
        .ok_or_else(|| Error::Conflict {
            message: "a customer with this email exists".to_owned(),
            field: Some("email".to_owned()),
        })?;
    record(
        &mut tx,
        user,
        "customer.create",
        format!("customer:{id}"),
        serde_json::json!({ "email": email, "company_name": company }),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

pub async fn set_disabled(
    state: &AppState,
    user: &CurrentOperator,
    id: Uuid,
    disabled: bool,
    reason: &str,
) -> Result<()> {
    user.require(Role::Operator)?;
    let reason = required_text("reason", reason, crate::params::MAX_TEXT)?;
    let mut tx = state.db.begin().await?;
    let changed = customers::set_disabled(&mut tx, id, disabled)
        .await?
        .ok_or(Error::NotFound("customer"))?;
    let action = if disabled {
        "customer.disable"
    } else {
        "customer.enable"
    };
    record(
        &mut tx,
        user,
        action,
        format!("customer:{id}"),
        serde_json::json!({ "reason": reason, "changed": changed }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
