//! The Odoo data plane of odoo-saas: everything the worker does to tenant databases
//! and filestores on an Odoo server. See the crate README for the API tour.

pub mod access;
mod archive;
pub mod backup;
mod clone;
mod configure;
mod error;
mod filestore;
pub mod ident;
pub mod lifecycle;
pub mod marker;
pub mod ownership;
pub mod password;
mod pgtools;
pub mod probe;
pub mod provision;
pub mod restore;
pub mod routing;
pub mod server;
pub mod store;
pub mod store_sweep;
mod template_meta;
pub mod templates;

pub use access::{odoo_may_connect, resume_tenant, suspend_tenant};
pub use backup::{BackupInfo, Manifest, backup_key, backup_tenant};
pub use clone::drop_unfinished_clones;
pub use error::{OdooError, Result};
pub use lifecycle::{
    DeleteReport, FinalBackup, SYSTEM_LOGINS, Usage, collect_usage, delete_tenant,
};
pub use ownership::{TenantDatabase, is_provisioned, tenant_database};
pub use password::{
    ODOO_PBKDF2_ROUNDS, hash_password, hash_password_blocking, hash_password_with, verify_password,
};
pub use probe::{ProbeOptions, probe_odoo};
pub use provision::{
    AdminPassword, CrashPoint, PROVISIONED_MARKER, ProvisionOptions, ProvisionReport,
    ProvisionSpec, ProvisionStep, provision, tenant_base_url,
};
pub use restore::{RestoreReport, restore_tenant, restore_tenant_from_file};
pub use routing::{Route, RouteTarget, SUSPENDED, render_routing_map, write_routing_map};
pub use server::OdooServer;
pub use store::BackupStore;
pub use templates::{
    PlacementError, ServerLoad, TemplateInfo, choose_server, is_template_name, list_templates,
};
