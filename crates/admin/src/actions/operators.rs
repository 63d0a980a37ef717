//! Operators (owners only) and each operator's own API tokens.

use saas_core::auth::tokens::{self, ApiToken, Owner};
use secrecy::SecretString;
use serde::Deserialize;
use uuid::Uuid;

use super::record;
use crate::auth::{CurrentOperator, Role};
use crate::error::{Error, Result};
use crate::params::{check_text, required_text};
use crate::repo::operators::{self, OperatorRow, UpdateError, valid_email};
use crate::state::AppState;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOperator {
    pub email: String,
    pub role: String,
    pub password: String,
    #[serde(default)]
    pub display_name: String,
}

pub fn parse_role(raw: &str) -> Result<Role> {
    raw.trim()
        .parse()
        .map_err(|err: String| Error::invalid("role", err))
}

/// Validates and stores a new operator (also used by `admin create-operator`
/// and the bootstrap owner, with `user` None).
pub async fn insert(
    db: &sqlx::PgPool,
    user: Option<&CurrentOperator>,
    new: NewOperator,
) -> Result<OperatorRow> {
    let email = required_text("email", &new.email, 254)?.to_lowercase();
    if !valid_email(&email) {
        return Err(Error::invalid("email", "must be an email address"));
    }
    let role = parse_role(&new.role)?;
    let display_name = check_text("display_name", &new.display_name, 200)?;
    saas_core::auth::password::check_policy(&new.password)
        .map_err(|err| Error::invalid("password", err.to_string()))?;
    let hash = saas_core::auth::password::hash(SecretString::from(new.password)).await?;
    let mut tx = db.begin().await?;
    let row = operators::create(&mut tx, &email, &display_name, role, &hash)
        .await?
        .ok_or_else(|| Error::Conflict {
            message: "an operator with this email exists".to_owned(),
            field: Some("email".to_owned()),
        })?;
    let actor = user.map_or_else(|| "system:admin-cli".to_owned(), |u| u.actor().name);
    saas_core::audit::record(
        &mut tx,
        &saas_core::audit::Entry {
            actor: &actor,
            action: "operator.create",
            target: Some(format!("operator:{}", row.id)),
            address: user.and_then(|u| u.address),
            details: serde_json::json!({ "email": email, "role": role }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}

pub async fn create(
    state: &AppState,
    user: &CurrentOperator,
    new: NewOperator,
) -> Result<OperatorRow> {
    user.require(Role::Owner)?;
    insert(&state.db, Some(user), new).await
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorPatch {
    pub role: Option<String>,
    pub disabled: Option<bool>,
}

pub async fn update(
    state: &AppState,
    user: &CurrentOperator,
    id: Uuid,
    patch: OperatorPatch,
) -> Result<OperatorRow> {
    user.require(Role::Owner)?;
    let role = patch.role.as_deref().map(parse_role).transpose()?;
    let mut tx = state.db.begin().await?;
    let row = operators::update(&mut tx, id, role, patch.disabled)
        .await
        .map_err(|err| match err {
            UpdateError::LastOwner => Error::conflict(err.to_string()),
            UpdateError::Database(err) => err.into(),
        })?
        .ok_or(Error::NotFound("operator"))?;
    record(
        &mut tx,
        user,
        "operator.update",
        format!("operator:{id}"),
        serde_json::json!({ "role": role, "disabled": patch.disabled }),
    )
    .await?;
    tx.commit().await?;
    state.forget_tokens();
    Ok(row)
}

/// Creates one of the caller's own API tokens; the secret is returned once.
pub async fn create_token(
    state: &AppState,
    user: &CurrentOperator,
    name: &str,
) -> Result<(ApiToken, String)> {
    let name = required_text("name", name, 100)?;
    let mut tx = state.db.begin().await?;
    let (token, secret) = tokens::create(&mut tx, Owner::Operator, user.id(), &name).await?;
    record(
        &mut tx,
        user,
        "token.create",
        format!("token:{}", token.id),
        serde_json::json!({ "name": name }),
    )
    .await?;
    tx.commit().await?;
    Ok((token, secret))
}

pub async fn revoke_token(state: &AppState, user: &CurrentOperator, id: Uuid) -> Result<()> {
    let mut tx = state.db.begin().await?;
    if !tokens::revoke(&mut tx, Owner::Operator, user.id(), id).await? {
        return Err(Error::NotFound("token"));
    }
    record(
        &mut tx,
        user,
        "token.revoke",
        format!("token:{id}"),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    state.forget_tokens();
    Ok(())
}
