//! worker service.
