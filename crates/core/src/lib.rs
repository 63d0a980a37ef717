//! Core of odoo-saas.
