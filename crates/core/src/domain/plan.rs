//! Plan limits and the checks made against them.

use serde::{Deserialize, Serialize};

/// What a plan allows one tenant (and one customer) to use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanLimits {
    pub max_users: i32,
    pub max_storage_mb: i32,
    pub max_backups: i32,
    pub max_instances: i32,
    /// Customers' own domains per tenant (0: none).
    pub max_domains: i32,
    pub trial_days: i32,
}

/// What one tenant uses, as last collected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub users: i32,
    pub db_bytes: i64,
    pub filestore_bytes: i64,
}

impl Usage {
    pub fn storage_bytes(&self) -> i64 {
        self.db_bytes.saturating_add(self.filestore_bytes)
    }
}

/// One limit that usage goes beyond.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum LimitExceeded {
    #[error("{used} active users, the plan allows {allowed}")]
    Users { used: i32, allowed: i32 },
    #[error("{used_mb} MB of storage in use, the plan allows {allowed_mb} MB")]
    Storage { used_mb: i64, allowed_mb: i64 },
    #[error("{used} instances, the plan allows {allowed}")]
    Instances { used: i64, allowed: i64 },
    #[error("the plan allows {allowed} domains per instance and this one has {used}")]
    Domains { used: i64, allowed: i64 },
}

/// The most own domains a plan may allow per tenant (as the database's
/// CHECK on `plans.max_domains` says).
pub const MAX_DOMAINS_LIMIT: i32 = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidLimit {
    pub field: &'static str,
    pub reason: &'static str,
}

const MB: i64 = 1024 * 1024;

impl PlanLimits {
    /// Checks the limits are usable: each field named when it is not.
    pub fn validate(&self) -> Result<(), InvalidLimit> {
        let positive = [
            ("max_users", self.max_users),
            ("max_storage_mb", self.max_storage_mb),
            ("max_instances", self.max_instances),
        ];
        for (field, value) in positive {
            if value <= 0 {
                return Err(InvalidLimit {
                    field,
                    reason: "must be at least 1",
                });
            }
        }
        let non_negative = [
            ("max_backups", self.max_backups),
            ("trial_days", self.trial_days),
        ];
        for (field, value) in non_negative {
            if value < 0 {
                return Err(InvalidLimit {
                    field,
                    reason: "must not be negative",
                });
            }
        }
        if !(0..=MAX_DOMAINS_LIMIT).contains(&self.max_domains) {
            return Err(InvalidLimit {
                field: "max_domains",
                reason: "must be from 0 to 100",
            });
        }
        Ok(())
    }

    /// Every limit that `usage` goes beyond; empty when the tenant fits.
    pub fn exceeded_by(&self, usage: &Usage) -> Vec<LimitExceeded> {
        let mut exceeded = Vec::new();
        if usage.users > self.max_users {
            exceeded.push(LimitExceeded::Users {
                used: usage.users,
                allowed: self.max_users,
            });
        }
        let allowed_bytes = i64::from(self.max_storage_mb) * MB;
        if usage.storage_bytes() > allowed_bytes {
            exceeded.push(LimitExceeded::Storage {
                used_mb: (usage.storage_bytes() + MB - 1) / MB,
                allowed_mb: i64::from(self.max_storage_mb),
            });
        }
        exceeded
    }

    /// Whether a customer holding `live_instances` may create one more.
    pub fn allows_another_instance(&self, live_instances: i64) -> Result<(), LimitExceeded> {
        let allowed = i64::from(self.max_instances);
        if live_instances >= allowed {
            return Err(LimitExceeded::Instances {
                used: live_instances,
                allowed,
            });
        }
        Ok(())
    }

    pub fn is_trial(&self) -> bool {
        self.trial_days > 0
    }
}

/// Whether a tenant holding `domains` custom domains may add one more under
/// a plan allowing `max_domains` (`plans.max_domains`).
pub fn allows_another_domain(max_domains: i32, domains: i64) -> Result<(), LimitExceeded> {
    let allowed = i64::from(max_domains);
    if domains >= allowed {
        return Err(LimitExceeded::Domains {
            used: domains,
            allowed,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starter() -> PlanLimits {
        PlanLimits {
            max_users: 3,
            max_storage_mb: 1024,
            max_backups: 7,
            max_instances: 1,
            max_domains: 2,
            trial_days: 14,
        }
    }

    #[test]
    fn fitting_usage_exceeds_nothing() {
        let usage = Usage {
            users: 3,
            db_bytes: 512 * MB,
            filestore_bytes: 512 * MB,
        };
        assert!(starter().exceeded_by(&usage).is_empty());
    }

    #[test]
    fn each_exceeded_limit_is_reported() {
        let usage = Usage {
            users: 4,
            db_bytes: 1024 * MB,
            filestore_bytes: 1,
        };
        let exceeded = starter().exceeded_by(&usage);
        assert_eq!(
            exceeded,
            vec![
                LimitExceeded::Users {
                    used: 4,
                    allowed: 3
                },
                LimitExceeded::Storage {
                    used_mb: 1025,
                    allowed_mb: 1024
                },
            ]
        );
        assert_eq!(exceeded[0].to_string(), "4 active users, the plan allows 3");
    }

    #[test]
    fn instance_limit() {
        assert!(starter().allows_another_instance(0).is_ok());
        assert_eq!(
            starter().allows_another_instance(1),
            Err(LimitExceeded::Instances {
                used: 1,
                allowed: 1
            })
        );
    }

    #[test]
    fn domain_limit() {
        assert!(allows_another_domain(2, 1).is_ok());
        assert_eq!(
            allows_another_domain(2, 2),
            Err(LimitExceeded::Domains {
                used: 2,
                allowed: 2
            })
        );
        assert!(allows_another_domain(0, 0).is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let mut limits = starter();
        limits.max_users = 0;
        assert_eq!(limits.validate().map_err(|e| e.field), Err("max_users"));
        let mut limits = starter();
        limits.max_backups = -1;
        assert_eq!(limits.validate().map_err(|e| e.field), Err("max_backups"));
        for bad in [-1, 101] {
            let mut limits = starter();
            limits.max_domains = bad;
            assert_eq!(limits.validate().map_err(|e| e.field), Err("max_domains"));
        }
        let mut limits = starter();
        limits.max_domains = 0;
        assert!(limits.validate().is_ok(), "a plan may allow no domain");
        assert!(starter().validate().is_ok());
        assert!(starter().is_trial());
    }
}
