//! Core of odoo-saas: configuration, the platform database, domain rules and
//! the plumbing every service shares.

pub mod audit;
pub mod auth;
pub mod backup_store;
pub mod backups;
pub mod config;
pub mod customer_tenants;
pub mod customers;
pub mod db;
pub mod domain;
pub mod domain_settings;
pub mod domains;
pub mod edge;
pub mod error_chain;
pub mod ops;
pub mod outbox;
pub mod public_url;
pub mod readiness;
pub mod run;
pub mod sealing;
pub mod service;
pub mod shared_redis;
pub mod startup;
pub mod telemetry;
pub mod template_plans;
pub mod tenants;

pub use config::{Config, Env, Service};
pub use startup::StartupError;
