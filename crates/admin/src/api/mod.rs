//! The JSON API under `/api/v1`. One table, [`routes`], builds both the
//! router and the OpenAPI document, so the document lists every route.

mod alerts;
mod catalog;
mod customers;
pub mod domains;
mod openapi;
mod operations;
mod operators;
mod tenants;

use axum::Router;
use axum::routing::{MethodFilter, MethodRouter, on};

use crate::auth::Role;
use crate::state::AppState;

pub use openapi::document;
pub use operations::{csv_response, live_workers};

/// What the OpenAPI document says about one route.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub method: &'static str,
    /// In axum's (and OpenAPI's) syntax: `/api/v1/tenants/{id}`.
    pub path: &'static str,
    pub summary: &'static str,
    /// The least role that may call it; `None` for the Alertmanager webhook.
    pub role: Option<Role>,
    /// Name of the request body's schema in `components.schemas`.
    pub body: Option<&'static str>,
    /// Query parameters.
    pub query: &'static [&'static str],
}

pub struct ApiRoute {
    pub spec: RouteSpec,
    handler: MethodRouter<AppState>,
}

fn filter(method: &str) -> MethodFilter {
    match method {
        "POST" => MethodFilter::POST,
        "PATCH" => MethodFilter::PATCH,
        "PUT" => MethodFilter::PUT,
        "DELETE" => MethodFilter::DELETE,
        _ => MethodFilter::GET,
    }
}

macro_rules! api {
    ($method:literal $path:literal, $role:expr, $summary:literal, $handler:expr $(, body = $body:literal)? $(, query = [$($q:literal),*])?) => {
        ApiRoute {
            spec: RouteSpec {
                method: $method,
                path: $path,
                summary: $summary,
                role: $role,
                body: None $(.or(Some($body)))?,
                query: &[$($($q),*)?],
            },
            handler: on(filter($method), $handler),
        }
    };
}

const VIEWER: Option<Role> = Some(Role::Viewer);
const OPERATOR: Option<Role> = Some(Role::Operator);
const OWNER: Option<Role> = Some(Role::Owner);

/// Every `/api/v1` route.
pub fn routes() -> Vec<ApiRoute> {
    vec![
        api!("GET" "/api/v1/me", VIEWER, "The calling operator", operators::me),
        api!("GET" "/api/v1/dashboard", VIEWER, "Counts: tenants by state, operations in 24 h, queue depth, firing alerts", operations::dashboard),
        api!("GET" "/api/v1/tenants", VIEWER, "List tenants", tenants::list, query = ["q", "state", "plan", "server", "customer", "sort", "cursor", "limit"]),
        api!("POST" "/api/v1/tenants", OPERATOR, "Create a tenant (provision operation)", tenants::create, body = "NewTenant"),
        api!("GET" "/api/v1/tenants/{id}", VIEWER, "A tenant with usage, plan and server", tenants::get),
        api!("GET" "/api/v1/tenants/{id}/operations", VIEWER, "A tenant's operations, newest first", tenants::operations),
        api!("GET" "/api/v1/tenants/{id}/backups", VIEWER, "A tenant's backups", tenants::backups),
        api!("GET" "/api/v1/tenants/{id}/backups/{backup}", OPERATOR, "Download a backup (Odoo-compatible zip, streamed)", tenants::download_backup),
        api!("GET" "/api/v1/tenants/{id}/audit", VIEWER, "Audit entries about a tenant", tenants::audit),
        api!("POST" "/api/v1/tenants/{id}/suspend", OPERATOR, "Suspend a tenant", tenants::suspend, body = "TenantChange"),
        api!("POST" "/api/v1/tenants/{id}/resume", OPERATOR, "Resume a suspended tenant", tenants::resume, body = "TenantChange"),
        api!("POST" "/api/v1/tenants/{id}/backup", OPERATOR, "Back a tenant up now", tenants::backup, body = "TenantChange"),
        api!("POST" "/api/v1/tenants/{id}/restore", OPERATOR, "Restore a tenant from one of its backups (backup_id)", tenants::restore, body = "TenantChange"),
        api!("POST" "/api/v1/tenants/{id}/change-plan", OPERATOR, "Move a tenant to another plan (plan)", tenants::change_plan, body = "TenantChange"),
        api!("POST" "/api/v1/tenants/{id}/delete", OPERATOR, "Delete a tenant (after a final backup unless skip_final_backup)", tenants::delete, body = "TenantChange"),
        api!("GET" "/api/v1/domains", VIEWER, "Customers' own domains, newest first: tenant, state, why it is stuck, certificate issuer and expiry, last renewal and its error", domains::list, query = ["state", "cursor", "limit"]),
        api!("POST" "/api/v1/domains/{id}/retry", OPERATOR, "Retry a domain: check its DNS again (a failed one starts over), or renew a live one's certificate now", domains::retry, body = "Reason"),
        api!("POST" "/api/v1/domains/{id}/remove", OPERATOR, "Remove a customer's domain: its route and certificate go", domains::remove, body = "Reason"),
        api!("GET" "/api/v1/customers", VIEWER, "List customers", customers::list, query = ["q", "disabled", "cursor", "limit"]),
        api!("POST" "/api/v1/customers", OPERATOR, "Create a customer", customers::create, body = "NewCustomer"),
        api!("GET" "/api/v1/customers/{id}", VIEWER, "A customer with their tenants", customers::get),
        api!("POST" "/api/v1/customers/{id}/disable", OPERATOR, "Disable a customer", customers::disable, body = "Reason"),
        api!("POST" "/api/v1/customers/{id}/enable", OPERATOR, "Enable a customer", customers::enable, body = "Reason"),
        api!("GET" "/api/v1/plans", VIEWER, "List plans", catalog::list_plans),
        api!("POST" "/api/v1/plans", OPERATOR, "Create a plan", catalog::create_plan, body = "Plan"),
        api!("GET" "/api/v1/plans/{id}", VIEWER, "A plan", catalog::get_plan),
        api!("PATCH" "/api/v1/plans/{id}", OPERATOR, "Change a plan", catalog::update_plan, body = "Plan"),
        api!("DELETE" "/api/v1/plans/{id}", OPERATOR, "Delete a plan no tenant uses (409 otherwise)", catalog::delete_plan),
        api!("GET" "/api/v1/servers", VIEWER, "List Odoo servers with capacity and tenant count", catalog::list_servers),
        api!("POST" "/api/v1/servers", OWNER, "Register an Odoo server", catalog::create_server, body = "Server"),
        api!("GET" "/api/v1/servers/{id}", VIEWER, "A server with the templates found on it", catalog::get_server),
        api!("PATCH" "/api/v1/servers/{id}", OWNER, "Change a server", catalog::update_server, body = "Server"),
        api!("DELETE" "/api/v1/servers/{id}", OWNER, "Remove a server no tenant uses (409 otherwise)", catalog::delete_server),
        api!("GET" "/api/v1/operations", VIEWER, "List operations", operations::list, query = ["state", "kind", "tenant", "cursor", "limit"]),
        api!("GET" "/api/v1/operations/{id}", VIEWER, "An operation", operations::get),
        api!("POST" "/api/v1/operations/{id}/retry", OPERATOR, "Retry a failed operation", operations::retry, body = "Reason"),
        api!("POST" "/api/v1/operations/{id}/cancel", OPERATOR, "Cancel a queued operation", operations::cancel, body = "Reason"),
        api!("GET" "/api/v1/queues", VIEWER, "Queue depth, failed operations, live workers", operations::queues),
        api!("GET" "/api/v1/workers", VIEWER, "Live workers with their heartbeat", operations::workers),
        api!("GET" "/api/v1/audit", VIEWER, "The audit log, newest first", operations::audit, query = ["actor", "action", "target", "since", "until", "cursor", "limit"]),
        api!("GET" "/api/v1/audit.csv", VIEWER, "The audit log as CSV (same filters, at most 50,000 rows)", operations::audit_csv, query = ["actor", "action", "target", "since", "until"]),
        api!("GET" "/api/v1/alerts", VIEWER, "Firing and recently resolved alerts", alerts::list),
        api!("POST" "/api/v1/alerts", None, "Alertmanager webhook (Authorization: Bearer ALERT_WEBHOOK_TOKEN)", alerts::receive, body = "AlertmanagerWebhook"),
        api!("GET" "/api/v1/operators", OWNER, "List operators", operators::list),
        api!("POST" "/api/v1/operators", OWNER, "Create an operator", operators::create, body = "NewOperator"),
        api!("GET" "/api/v1/operators/{id}", OWNER, "An operator", operators::get),
        api!("PATCH" "/api/v1/operators/{id}", OWNER, "Change an operator's role or disable them", operators::update, body = "OperatorChange"),
        api!("GET" "/api/v1/tokens", VIEWER, "The caller's API tokens", operators::list_tokens),
        api!("POST" "/api/v1/tokens", VIEWER, "Create an API token for the caller (secret shown once)", operators::create_token, body = "NewToken"),
        api!("DELETE" "/api/v1/tokens/{id}", VIEWER, "Revoke one of the caller's API tokens", operators::revoke_token),
    ]
}

/// The API's routes, plus `/api/openapi.json`.
pub fn router() -> Router<AppState> {
    let api = routes().into_iter().fold(Router::new(), |router, route| {
        router.route(route.spec.path, route.handler)
    });
    api.route("/api/openapi.json", axum::routing::get(openapi::serve))
}
