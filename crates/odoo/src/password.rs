//! Odoo's password format (passlib `pbkdf2_sha512`). The one implementation
//! lives in `saas-core` (admin and portal hash a tenant's admin password
//! when it is requested); the data plane uses it from there.

pub use saas_core::auth::odoo_password::{
    ODOO_PBKDF2_ROUNDS, hash_password, hash_password_blocking, hash_password_with, verify_password,
};
