//! The Odoo data plane (being built).
