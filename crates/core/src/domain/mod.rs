//! Domain rules: pure functions and types, no I/O.

pub mod custom_domain;
pub mod plan;
pub mod subdomain;
pub mod tenant;

pub use custom_domain::{DomainRefused, DomainState, normalize_domain};
pub use plan::{LimitExceeded, PlanLimits, Usage, allows_another_domain};
pub use subdomain::{Subdomain, SubdomainError};
pub use tenant::{TenantState, TransitionRefused, transition};
