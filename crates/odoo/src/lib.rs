//! The Odoo data plane of odoo-saas: everything the worker does to tenant databases
//! and filestores on an Odoo server. See the crate README for the API tour.

mod error;
mod filestore;
pub mod ident;
pub mod password;
pub mod probe;
pub mod provision;
pub mod server;
pub mod templates;

pub use error::{OdooError, Result};
pub use password::{
    ODOO_PBKDF2_ROUNDS, hash_password, hash_password_blocking, hash_password_with, verify_password,
};
pub use probe::{ProbeOptions, probe_odoo};
pub use provision::{
    AdminPassword, CrashPoint, PROVISIONED_MARKER, ProvisionOptions, ProvisionReport,
    ProvisionSpec, ProvisionStep, is_provisioned, provision, tenant_base_url,
};
pub use server::OdooServer;
pub use templates::{PlacementError, ServerLoad, TemplateInfo, choose_server, list_templates};
