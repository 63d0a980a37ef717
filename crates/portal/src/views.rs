//! Page models and their askama templates (`crates/portal/templates`).

use askama::Template;
use axum::response::Response;
use saas_core::auth::tokens::ApiToken;
use saas_core::backups::Backup;
use saas_core::customer_tenants::{self as scoped, Plan};
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
    pub fn new(state: &AppState, tenant: &Tenant, plans: &[Plan]) -> Self {
        let plan = plans.iter().find(|p| p.id == tenant.plan_id);
        Self {
            id: tenant.id.to_string(),
            subdomain: tenant.subdomain.clone(),
            state: tenant.state.clone(),
            url: state.instance_url(&tenant.subdomain),
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
        "{} users, {} MB, {} backups kept, {price}{trial}",
        plan.max_users, plan.max_storage_mb, plan.max_backups
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
