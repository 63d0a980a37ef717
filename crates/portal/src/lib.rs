//! portal service.
