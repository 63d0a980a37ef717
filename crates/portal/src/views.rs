//! Page models and their askama templates (`crates/portal/templates`).

use askama::Template;
use axum::response::Response;
use saas_core::auth::tokens::ApiToken;
use saas_core::backups::Backup;
use saas_core::customer_tenants::{self as scoped, Plan};
use saas_core::domain::DomainState;
use saas_core::domains::{DnsRecord, DnsRecords, TenantDomain};
use saas_core::ops::Operation;
use saas_core::tenants::Tenant;

use crate::error::html;
use crate::state::AppState;

pub fn render<T: Template>(page: &T) -> Response {
    html(page.render())
}

/// The signed-in header: who, and the logout form's CSRF token.
pub struct Nav {
    pub email: String,
    pub csrf: String,
    pub verified: bool,
}

/// A message next to the form field it is about.
#[derive(Default)]
pub struct FormError {
    pub field: String,
    pub message: String,
}

impl FormError {
    pub fn from(err: &crate::error::AppError) -> Self {
        Self {
            field: err.field().unwrap_or("").to_owned(),
            message: err.to_string(),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub status: u16,
    pub message: String,
    /// The form or query field at fault, or empty.
    pub field: String,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub title: String,
    pub message: String,
    pub link: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "signup.html")]
pub struct SignupPage {
    pub csrf: String,
    pub email: String,
    pub company_name: String,
    pub error: Option<FormError>,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub csrf: String,
    pub email: String,
    pub next: String,
    pub error: Option<String>,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "forgot.html")]
pub struct ForgotPage {
    pub csrf: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "reset.html")]
pub struct ResetPage {
    pub csrf: String,
    pub token: String,
    pub error: Option<FormError>,
}

/// An instance as the pages show it.
pub struct InstanceView {
    pub id: String,
    pub subdomain: String,
    pub state: String,
    pub url: String,
    pub plan_name: String,
    pub busy: bool,
    pub trial_days_left: Option<i64>,
    pub users: i32,
    pub max_users: i32,
    pub storage_mb: i64,
    pub max_storage_mb: i32,
    pub suspend_reason: String,
    pub created_at: String,
}

impl InstanceView {
    /// `live_primary`: the instance's primary domain once it is live, where
    /// "Open" then points.
    pub fn new(
        state: &AppState,
        tenant: &Tenant,
        plans: &[Plan],
        live_primary: Option<&str>,
    ) -> Self {
        let plan = plans.iter().find(|p| p.id == tenant.plan_id);
        Self {
            id: tenant.id.to_string(),
            subdomain: tenant.subdomain.clone(),
            state: tenant.state.clone(),
            url: state.open_url(&tenant.subdomain, live_primary),
            plan_name: plan.map_or_else(|| "?".to_owned(), |p| p.name.clone()),
            busy: matches!(
                tenant.state.as_str(),
                "pending" | "provisioning" | "deleting"
            ),
            trial_days_left: scoped::trial_days_left(tenant.trial_ends_at, chrono::Utc::now()),
            users: tenant.usage_users,
            max_users: plan.map_or(0, |p| p.max_users),
            storage_mb: (tenant.usage_db_bytes + tenant.usage_filestore_bytes) / (1024 * 1024),
            max_storage_mb: plan.map_or(0, |p| p.max_storage_mb),
            suspend_reason: tenant.suspend_reason.clone().unwrap_or_default(),
            created_at: tenant.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }
}

#[derive(Template)]
#[template(path = "instances.html")]
pub struct InstancesPage {
    pub nav: Nav,
    pub instances: Vec<InstanceView>,
    pub deleted: Vec<InstanceView>,
    pub live: i64,
    pub max_instances: i32,
}

pub struct PlanView {
    pub code: String,
    pub name: String,
    pub summary: String,
    pub selected: bool,
}

impl PlanView {
    pub fn list(plans: &[Plan], selected: &str) -> Vec<Self> {
        let mut views: Vec<Self> = plans
            .iter()
            .filter(|p| p.active)
            .map(|p| Self {
                code: p.code.clone(),
                name: p.name.clone(),
                summary: summary(p),
                selected: selected == p.code || selected == p.id.to_string(),
            })
            .collect();
        if !views.iter().any(|v| v.selected)
            && let Some(first) = views.first_mut()
        {
            first.selected = true;
        }
        views
    }
}

fn summary(plan: &Plan) -> String {
    let price = if plan.price_cents == 0 {
        "free".to_owned()
    } else {
        format!(
            "{}.{:02} {}/month",
            plan.price_cents / 100,
            plan.price_cents % 100,
            plan.currency
        )
    };
    let trial = if plan.trial_days > 0 {
        format!(", {}-day trial", plan.trial_days)
    } else {
        String::new()
    };
    format!(
        "{} users, {} MB, {} backups kept, {} own domains, {price}{trial}",
        plan.max_users, plan.max_storage_mb, plan.max_backups, plan.max_domains
    )
}

#[derive(Template)]
#[template(path = "instance_new.html")]
pub struct NewInstancePage {
    pub nav: Nav,
    pub plans: Vec<PlanView>,
    pub subdomain: String,
    pub base_domain: String,
    pub error: Option<FormError>,
}

pub struct BackupView {
    pub id: String,
    pub kind: String,
    pub created_at: String,
    pub size: String,
    pub expires_at: String,
}

impl BackupView {
    pub fn new(backup: &Backup) -> Self {
        Self {
            id: backup.id.to_string(),
            kind: backup.kind.clone(),
            created_at: backup.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            size: human_size(backup.size_bytes),
            expires_at: backup
                .expires_at
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
        }
    }
}

pub fn human_size(bytes: i64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{:.1} KB", bytes as f64 / 1024.0)
    }
}

pub struct OperationView {
    pub id: String,
    pub kind: String,
    pub state: String,
    pub created_at: String,
    pub error: String,
}

impl OperationView {
    pub fn new(op: &Operation) -> Self {
        Self {
            id: op.id.to_string(),
            kind: op.kind.to_string(),
            state: op.state.to_string(),
            created_at: op.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            error: op.customer_error_text().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "instance.html")]
pub struct InstancePage {
    pub nav: Nav,
    pub instance: InstanceView,
    /// The login of the instance's Odoo admin user (the customer's email).
    pub odoo_login: String,
    pub backups: Vec<BackupView>,
    /// The plan's limit on manual and uploaded backups, and what the next
    /// one removes.
    pub backup_note: String,
    pub operations: Vec<OperationView>,
    pub plans: Vec<PlanView>,
    pub error: Option<FormError>,
    pub notice: Option<String>,
    pub max_upload_mb: u64,
    /// Operations queued or running: the page refreshes until they finish.
    pub pending: usize,
    pub domains: Vec<DomainView>,
    /// The plan's limit on the instance's own domains.
    pub max_domains: i32,
    /// What the add form held when it was refused.
    pub domain_input: String,
}

/// One of the instance's own domains, with the DNS records to create.
pub struct DomainView {
    pub id: String,
    /// As a person reads it (U-labels).
    pub name: String,
    /// As DNS and the records carry it (A-labels).
    pub ascii: String,
    pub state: &'static str,
    pub state_label: &'static str,
    pub reason: String,
    pub primary: bool,
    pub live: bool,
    pub records: Vec<DnsRecord>,
    /// When the certificate ends, once there is one.
    pub certificate_until: String,
}

impl DomainView {
    pub fn new(domain: &TenantDomain, records: DnsRecords) -> Self {
        let mut list = vec![records.txt, records.cname];
        list.extend(records.addresses);
        Self {
            id: domain.id.to_string(),
            name: domain.display_name(),
            ascii: domain.domain.clone(),
            state: domain.state.as_str(),
            state_label: domain.state.label(),
            reason: domain.reason.clone().unwrap_or_default(),
            primary: domain.is_primary,
            live: domain.state == DomainState::Live,
            records: list,
            certificate_until: domain
                .cert_not_after
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
        }
    }

    /// The steps a domain goes through, and whether this one is past each.
    pub fn steps(&self) -> Vec<(&'static str, bool)> {
        let reached = match self.state {
            "verified" | "issuing" => 1,
            "live" => 3,
            _ => 0,
        };
        ["DNS verified", "certificate issued", "live"]
            .into_iter()
            .enumerate()
            .map(|(i, step)| (step, i < reached))
            .collect()
    }
}

pub struct TokenView {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub last_used_at: String,
    pub revoked: bool,
}

impl TokenView {
    pub fn new(token: &ApiToken) -> Self {
        let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
        Self {
            id: token.id.to_string(),
            name: token.name.clone(),
            created_at: fmt(token.created_at),
            last_used_at: token.last_used_at.map(fmt).unwrap_or_default(),
            revoked: token.revoked_at.is_some(),
        }
    }
}

#[derive(Template)]
#[template(path = "tokens.html")]
pub struct TokensPage {
    pub nav: Nav,
    pub tokens: Vec<TokenView>,
    pub new_secret: Option<String>,
    pub error: Option<FormError>,
}
