//! The Odoo admin passwords requests sealed for the worker
//! ([`saas_core::sealing`]): opened here, hashed by the data plane on a
//! blocking thread, never logged. The database erases the sealed copy when
//! the operation ends.

use saas_core::ops::{Operation, secrets};
use saas_core::sealing::Purpose;
use saas_odoo::AdminPassword;
use secrecy::SecretString;

use crate::handlers::HandlerError;
use crate::platform::{Inner, arg_str};

/// What the customer reads when their sealed password does not open.
const UNREADABLE: &str = "the password you chose could not be read back; our operators have been \
     notified (set it again with \"Reset Odoo admin password\" once the instance is ready)";

/// The sealed secret of `operation`, opened; `None` when it holds none (its
/// copy was erased when an earlier run of the operation ended). A blob that
/// does not open (another `SECRET_KEY`, another tenant's, altered) is a
/// permanent failure naming why.
async fn open(inner: &Inner, operation: &Operation) -> Result<Option<SecretString>, HandlerError> {
    let Some(sealed) =
        secrets::sealed(&inner.pool, operation.id, Purpose::OdooAdminPassword).await?
    else {
        return Ok(None);
    };
    inner
        .sealing
        .open(Purpose::OdooAdminPassword, operation.tenant_id, &sealed)
        .map(Some)
        .map_err(|err| {
            HandlerError::permanent(format!("the sealed admin password: {err}"))
                .telling_customer(UNREADABLE)
        })
}

/// The admin password a provision sets: the customer's, sealed with the
/// request. A provision retried after it failed for good has lost it; it
/// then gets a random password nobody knows, and the customer sets theirs
/// with a password reset (the instance page offers it). Operations queued
/// before sealing existed carry the hash in their arguments.
pub(crate) async fn provision_password(
    inner: &Inner,
    operation: &Operation,
) -> Result<AdminPassword, HandlerError> {
    if operation.args.get("admin_password_hash").is_some() {
        return Ok(AdminPassword::Hashed(
            arg_str(operation, "admin_password_hash")?.to_owned(),
        ));
    }
    match open(inner, operation).await? {
        Some(password) => Ok(AdminPassword::Plain(password)),
        None => {
            tracing::warn!(
                "the provision's sealed password was erased when an earlier run failed; \
                 the admin user gets a random one until the customer resets it"
            );
            Ok(AdminPassword::Plain(SecretString::from(
                saas_core::auth::random_token(24),
            )))
        }
    }
}

/// The new password of a password reset.
pub(crate) async fn reset_password(
    inner: &Inner,
    operation: &Operation,
) -> Result<SecretString, HandlerError> {
    open(inner, operation).await?.ok_or_else(|| {
        HandlerError::permanent(
            "the new password was erased when this operation ended; the customer sets it again",
        )
        .telling_customer("this reset can no longer run: set the new password again")
    })
}
