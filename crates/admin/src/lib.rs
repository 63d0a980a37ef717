//! admin service.
