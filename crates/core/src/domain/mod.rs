//! Domain rules: pure functions and types, no I/O.

pub mod plan;
pub mod subdomain;
pub mod tenant;

pub use plan::{LimitExceeded, PlanLimits, Usage};
pub use subdomain::{Subdomain, SubdomainError};
pub use tenant::{TenantState, TransitionRefused, transition};
