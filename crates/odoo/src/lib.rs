//! The Odoo data plane of odoo-saas: everything the worker does to tenant databases
//! and filestores on an Odoo server. See the crate README for the API tour.

pub mod access;
pub mod admin_password;
mod archive;
pub mod backup;
pub mod base_url;
mod budget;
mod clone;
mod compat;
mod configure;
mod customer;
mod dump_filter;
mod error;
mod filestore;
mod guest;
pub mod ident;
mod leftover_guests;
pub mod lifecycle;
pub mod marker;
pub mod ownership;
pub mod password;
mod pgtools;
pub mod probe;
pub mod provision;
mod psql_log;
pub mod restore;
pub mod restore_options;
mod restored_db;
mod restricted_psql;
pub mod routing;
mod scram;
pub mod server;
pub mod store;
pub mod store_sweep;
mod swap;
mod template_meta;
pub mod templates;
pub mod too_many_clients;

pub use access::{odoo_may_connect, resume_tenant, suspend_tenant};
pub use admin_password::{ADMIN_USER_ID, set_admin_password};
pub use backup::{BackupInfo, Manifest, backup_key, backup_tenant};
pub use base_url::set_base_url;
pub use clone::drop_unfinished_clones;
pub use error::{OdooError, Result};
pub use guest::GUEST_PREFIX;
pub use leftover_guests::drop_leftover_guests;
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
pub use restore::{
    RestoreReport, fetch_verified, restore_tenant, restore_tenant_from_copies,
    restore_tenant_from_file,
};
pub use restore_options::RestoreOptions;
pub use routing::{Route, RouteTarget, SUSPENDED, render_routing_map, write_routing_map};
pub use server::OdooServer;
pub use store::{BackupStore, Plain};
pub use templates::{
    PlacementError, ServerLoad, TemplateInfo, choose_server, is_template_name, list_templates,
};
pub use too_many_clients::{SlotWait, is_too_many_clients};
