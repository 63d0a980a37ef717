//! The tenant lifecycle: one function decides every allowed transition.
//!
//! ```text
//! pending -> provisioning -> active <-> suspended
//!                  |            |          |
//!                  v            v          v
//!                failed      deleting -> deleted
//! ```
//! A failed provision may be retried (`failed -> provisioning`) or given up
//! (`failed -> deleting`); a pending tenant may be cancelled (`-> deleting`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantState {
    Pending,
    Provisioning,
    Active,
    Suspended,
    Failed,
    Deleting,
    Deleted,
}

impl TenantState {
    pub const ALL: [TenantState; 7] = [
        TenantState::Pending,
        TenantState::Provisioning,
        TenantState::Active,
        TenantState::Suspended,
        TenantState::Failed,
        TenantState::Deleting,
        TenantState::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TenantState::Pending => "pending",
            TenantState::Provisioning => "provisioning",
            TenantState::Active => "active",
            TenantState::Suspended => "suspended",
            TenantState::Failed => "failed",
            TenantState::Deleting => "deleting",
            TenantState::Deleted => "deleted",
        }
    }

    /// Whether the tenant still holds its subdomain.
    pub fn is_live(self) -> bool {
        self != TenantState::Deleted
    }
}

impl fmt::Display for TenantState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tenant state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for TenantState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TenantState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a tenant cannot go from {from} to {to}")]
pub struct TransitionRefused {
    pub from: TenantState,
    pub to: TenantState,
}

/// Decides whether a tenant may move from `from` to `to`.
pub fn transition(from: TenantState, to: TenantState) -> Result<TenantState, TransitionRefused> {
    use TenantState::*;
    let allowed = matches!(
        (from, to),
        (Pending, Provisioning)
            | (Pending, Deleting)
            | (Provisioning, Active)
            | (Provisioning, Failed)
            | (Failed, Provisioning)
            | (Failed, Deleting)
            | (Active, Suspended)
            | (Suspended, Active)
            | (Active, Deleting)
            | (Suspended, Deleting)
            | (Deleting, Deleted)
    );
    if allowed {
        Ok(to)
    } else {
        Err(TransitionRefused { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::TenantState::*;
    use super::*;

    const ALLOWED: [(TenantState, TenantState); 11] = [
        (Pending, Provisioning),
        (Pending, Deleting),
        (Provisioning, Active),
        (Provisioning, Failed),
        (Failed, Provisioning),
        (Failed, Deleting),
        (Active, Suspended),
        (Suspended, Active),
        (Active, Deleting),
        (Suspended, Deleting),
        (Deleting, Deleted),
    ];

    #[test]
    fn every_pair_is_decided_as_the_diagram_says() {
        for from in TenantState::ALL {
            for to in TenantState::ALL {
                let expected = ALLOWED.contains(&(from, to));
                let got = transition(from, to);
                assert_eq!(got.is_ok(), expected, "{from} -> {to}");
                if let Err(refused) = got {
                    assert_eq!(
                        refused.to_string(),
                        format!("a tenant cannot go from {from} to {to}")
                    );
                }
            }
        }
    }

    #[test]
    fn deleted_is_final() {
        for to in TenantState::ALL {
            assert!(transition(Deleted, to).is_err());
        }
    }

    #[test]
    fn names_round_trip() {
        for state in TenantState::ALL {
            assert_eq!(state.as_str().parse::<TenantState>(), Ok(state));
        }
        assert!("archived".parse::<TenantState>().is_err());
    }
}
