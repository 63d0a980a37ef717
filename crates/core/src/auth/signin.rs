//! Sign-in throttling an attacker cannot turn against the account's owner.
//!
//! Counting wrong passwords per account alone lets anyone lock anyone out
//! (a few wrong guesses from anywhere, and the right password answers 429).
//! Here:
//! - attempts are limited per (account, address) and per address, so one
//!   source is stopped quickly while the owner, from another address,
//!   still signs in;
//! - failures per account from all addresses slow every further attempt on
//!   it (growing delays before the password is checked), and only a much
//!   higher ceiling refuses them outright (a distributed guess);
//! - once an account collects [`SignInLimits::notify_after`] failures, the
//!   caller is told to mail its owner, at most once per window.

use std::net::IpAddr;
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::sha256_hex;
use super::throttle::{self, Throttled};

/// The longest an attempt is slowed down.
pub const MAX_DELAY: Duration = Duration::from_secs(4);
const BASE_DELAY: Duration = Duration::from_millis(250);

/// How many attempts, per what, within one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInLimits {
    /// Attempts per (account, address).
    pub per_pair: u32,
    /// Attempts per address, whatever the account.
    pub per_address: u32,
    /// Failures per account from all addresses before it refuses every
    /// attempt until the window ends.
    pub per_account: u32,
    /// Failures per account after which every attempt on it is slowed.
    pub slow_after: u32,
    /// Failures per account that make its owner be told.
    pub notify_after: u32,
    pub window: Duration,
}

/// Sign-in throttling under one key prefix (one per service and form).
#[derive(Debug, Clone)]
pub struct SignInThrottle {
    prefix: String,
    pub limits: SignInLimits,
}

/// What a failed attempt leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// The account's failures within the window, this one included.
    pub failures: u32,
    /// Whether to tell the owner now (once per account and window).
    pub tell_owner: bool,
}

impl SignInThrottle {
    /// `prefix` such as `saas:portal:signin:`.
    pub fn new(prefix: impl Into<String>, limits: SignInLimits) -> Self {
        Self {
            prefix: prefix.into(),
            limits,
        }
    }

    fn account_key(&self, kind: &str, account: &str) -> String {
        format!(
            "{}{kind}:{}",
            self.prefix,
            sha256_hex(&account.to_lowercase())
        )
    }

    fn pair_key(&self, account: &str, address: Option<IpAddr>) -> String {
        let pair = format!("{}\u{0}{}", account.to_lowercase(), describe(address));
        format!("{}pair:{}", self.prefix, sha256_hex(&pair))
    }

    fn address_key(&self, address: Option<IpAddr>) -> String {
        format!("{}address:{}", self.prefix, describe(address))
    }

    /// Counts an attempt on `account` from `address`. Refused when the pair
    /// or the address is over its limit, or the account over its ceiling;
    /// otherwise the delay to wait before checking the password.
    pub async fn admit(
        &self,
        conn: &mut ConnectionManager,
        account: &str,
        address: Option<IpAddr>,
    ) -> Result<Result<Duration, Throttled>, redis::RedisError> {
        let limits = &self.limits;
        let pair = self.pair_key(account, address);
        if let Err(throttled) = throttle::hit(conn, &pair, limits.per_pair, limits.window).await? {
            return Ok(Err(throttled));
        }
        let from = self.address_key(address);
        if let Err(throttled) =
            throttle::hit(conn, &from, limits.per_address, limits.window).await?
        {
            return Ok(Err(throttled));
        }
        let (failures, left) =
            throttle::current(conn, &self.account_key("failed", account)).await?;
        if failures >= limits.per_account {
            return Ok(Err(Throttled { retry_after: left }));
        }
        Ok(Ok(delay_for(failures, limits.slow_after)))
    }

    /// Records a wrong password (or code) for `account`.
    pub async fn failed(
        &self,
        conn: &mut ConnectionManager,
        account: &str,
    ) -> Result<Failure, redis::RedisError> {
        let window = self.limits.window;
        let failures = throttle::count(conn, &self.account_key("failed", account), window).await?;
        let mut tell_owner = false;
        if failures >= self.limits.notify_after {
            let told: Option<String> = redis::cmd("SET")
                .arg(self.account_key("told", account))
                .arg(1)
                .arg("NX")
                .arg("EX")
                .arg(window.as_secs().max(1))
                .query_async(conn)
                .await?;
            tell_owner = told.is_some();
        }
        Ok(Failure {
            failures,
            tell_owner,
        })
    }

    /// A right password from `address`: that pair starts afresh. The
    /// account's failure count stays: an attack on it goes on regardless.
    pub async fn succeeded(
        &self,
        conn: &mut ConnectionManager,
        account: &str,
        address: Option<IpAddr>,
    ) -> Result<(), redis::RedisError> {
        throttle::reset(conn, &self.pair_key(account, address)).await
    }
}

fn describe(address: Option<IpAddr>) -> String {
    address.map_or_else(|| "unknown".to_owned(), |a| a.to_canonical().to_string())
}

/// Nothing below `slow_after` failures; then 250 ms, doubling every
/// `slow_after` more failures, up to [`MAX_DELAY`].
pub fn delay_for(failures: u32, slow_after: u32) -> Duration {
    if failures < slow_after {
        return Duration::ZERO;
    }
    let doublings = (failures - slow_after) / slow_after.max(1);
    BASE_DELAY
        .saturating_mul(1u32 << doublings.min(8))
        .min(MAX_DELAY)
}

/// The mail that tells an account's owner it is being attacked. It names
/// no address or other text a client sent.
pub fn attack_notice(
    service: &str,
    failures: u32,
    window: Duration,
    reset_link: Option<&str>,
) -> (String, String) {
    let minutes = window.as_secs().div_ceil(60);
    let subject = format!("Failed sign-ins to your {service} account");
    let mut body = format!(
        "There were {failures} failed attempts to sign in to your {service} account in the \
         last {minutes} minutes.\n\nIf that was not you, someone is guessing your password. \
         You can still sign in as usual (sign-ins to the account may be slowed while this \
         goes on), and a strong, unique password keeps it safe."
    );
    if let Some(link) = reset_link {
        body.push_str(&format!("\n\nTo choose a new password: {link}"));
    }
    body.push_str("\n\nWe send this message at most once in that time.\n");
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        assert_eq!(delay_for(0, 10), Duration::ZERO);
        assert_eq!(delay_for(9, 10), Duration::ZERO);
        assert_eq!(delay_for(10, 10), Duration::from_millis(250));
        assert_eq!(delay_for(19, 10), Duration::from_millis(250));
        assert_eq!(delay_for(20, 10), Duration::from_millis(500));
        assert_eq!(delay_for(30, 10), Duration::from_secs(1));
        assert_eq!(delay_for(1000, 10), MAX_DELAY);
        assert_eq!(delay_for(u32::MAX, 1), MAX_DELAY);
        assert_eq!(delay_for(5, 0), MAX_DELAY);
    }
}
