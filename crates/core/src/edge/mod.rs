//! The web edge every HTTP service shares: how connections are accepted and
//! cut off ([`server`]), how long a request may take ([`timeout`]), who the
//! client is behind a proxy ([`client_ip`]), and the headers every answer
//! carries ([`headers`]).

pub mod client_ip;
mod conn;
pub mod headers;
pub mod limits;
pub mod server;
pub mod timeout;

pub use client_ip::TrustedProxies;
pub use limits::HttpLimits;
