//! Who may call what: anonymous requests are refused everywhere, viewers
//! change nothing, forms need their CSRF token, and the OpenAPI document
//! lists every API route.

mod common;

use anyhow::ensure;
use common::TestApp;
use serde_json::json;

/// Every page (GET) an operator can open; `{id}` is filled with a random id.
const PAGES: &[&str] = &[
    "/",
    "/tenants",
    "/tenants/new",
    "/tenants/{id}",
    "/tenants/{id}/live",
    "/domains",
    "/customers",
    "/customers/{id}",
    "/plans",
    "/plans/{id}",
    "/servers",
    "/servers/{id}",
    "/operations",
    "/queues",
    "/audit",
    "/audit.csv",
    "/operators",
    "/tokens",
    "/account",
];

/// Every form target (POST).
const FORMS: &[&str] = &[
    "/logout",
    "/tenants",
    "/tenants/{id}/actions/suspend",
    "/domains/{id}/retry",
    "/domains/{id}/remove",
    "/customers",
    "/customers/{id}/status",
    "/plans",
    "/plans/{id}",
    "/plans/{id}/delete",
    "/servers",
    "/servers/{id}",
    "/servers/{id}/delete",
    "/operations/{id}/retry",
    "/operations/{id}/cancel",
    "/operators",
    "/operators/{id}",
    "/tokens",
    "/tokens/{id}/revoke",
    "/account/totp/start",
    "/account/totp/confirm",
    "/account/totp/disable",
];

fn fill(path: &str) -> String {
    path.replace("{id}", &uuid::Uuid::new_v4().to_string())
        .replace("{backup}", &uuid::Uuid::new_v4().to_string())
}

#[tokio::test]
async fn anonymous_requests_are_refused_everywhere() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    for page in PAGES {
        let response = client.get(app.url(&fill(page))).send().await?;
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        ensure!(
            response.status() == 303 && location == "/login",
            "GET {page}: {} -> {location:?}",
            response.status()
        );
    }
    for form in FORMS {
        let response = client
            .post(app.url(&fill(form)))
            .form(&[("_csrf", "x")])
            .send()
            .await?;
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        ensure!(
            response.status() == 303 && location == "/login",
            "POST {form}: {} -> {location:?}",
            response.status()
        );
    }
    for route in admin::api::routes() {
        let spec = route.spec;
        let method: reqwest::Method = spec.method.parse()?;
        let response = client
            .request(method, app.url(&fill(spec.path)))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        ensure!(
            status == 401,
            "{} {}: {status} {body}",
            spec.method,
            spec.path
        );
        ensure!(
            body["error"]["code"] == "unauthorized",
            "{} {}: {body}",
            spec.method,
            spec.path
        );
    }
    // A made-up token is no better.
    let response = client
        .get(app.url("/api/v1/tenants"))
        .bearer_auth("osa_0000000000000000000000000000000000000000000000")
        .send()
        .await?;
    ensure!(response.status() == 401);
    Ok(())
}

#[tokio::test]
async fn openapi_document_lists_every_api_route() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let doc: serde_json::Value = reqwest::get(app.url("/api/openapi.json"))
        .await?
        .json()
        .await?;
    ensure!(doc["openapi"] == "3.1.0", "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    let routes = admin::api::routes();
    let mut documented = 0;
    for (path, item) in &paths {
        documented += item.as_object().map_or(0, |m| m.len());
        ensure!(path.starts_with("/api/v1/"), "unexpected path {path}");
    }
    ensure!(
        documented == routes.len(),
        "{documented} documented, {} routed",
        routes.len()
    );
    for route in &routes {
        let spec = &route.spec;
        let operation = &paths[spec.path][spec.method.to_lowercase()];
        ensure!(
            operation.is_object(),
            "{} {} missing",
            spec.method,
            spec.path
        );
        if let Some(body) = spec.body {
            ensure!(
                doc["components"]["schemas"][body].is_object(),
                "schema {body} missing"
            );
        }
    }
    // And each documented route is really served: an anonymous call gets
    // 401 from the handler, never 404/405 from the router.
    let client = reqwest::Client::new();
    for (path, item) in &paths {
        for method in item
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let response = client
                .request(method.to_uppercase().parse()?, app.url(&fill(path)))
                .send()
                .await?;
            ensure!(
                response.status() == 401,
                "{method} {path}: {}",
                response.status()
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_viewer_cannot_change_anything() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let owner = app.owner().await?;
    let owner_token = app.token(&owner).await?;
    let viewer = app.operator(&owner_token, "viewer").await?;
    let viewer_token = app.token(&viewer).await?;
    let seed = app.seed("basic").await?;
    let (status, created) = app
        .api(&owner_token, "POST", "/api/v1/tenants", Some(json!({
            "customer": seed.customer_email, "plan": seed.plan_code, "subdomain": "viewer-test", "admin_password": "secret-pass"
        })))
        .await?;
    ensure!(status == 201, "{status} {created}");
    let tenant = created["tenant"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // Every state-changing API route, with a body the owner could send.
    for route in admin::api::routes() {
        let spec = route.spec;
        if spec.method == "GET"
            || spec.path.starts_with("/api/v1/tokens")
            || spec.path == "/api/v1/alerts"
        {
            continue;
        }
        let id = match spec.path {
            p if p.starts_with("/api/v1/tenants") => tenant.clone(),
            p if p.starts_with("/api/v1/customers") => seed.customer.to_string(),
            p if p.starts_with("/api/v1/plans") => seed.plan.to_string(),
            p if p.starts_with("/api/v1/servers") => seed.server.to_string(),
            _ => uuid::Uuid::new_v4().to_string(),
        };
        let path = spec.path.replace("{id}", &id);
        let (status, body) = app
            .api(
                &viewer_token,
                spec.method,
                &path,
                Some(json!({ "reason": "viewer test" })),
            )
            .await?;
        ensure!(status == 403, "{} {path}: {status} {body}", spec.method);
    }
    // Every form, with the viewer's own valid CSRF token.
    let csrf = viewer.csrf("/tokens").await?;
    for form in FORMS {
        if form.starts_with("/tokens") || form.starts_with("/account") || *form == "/logout" {
            continue;
        }
        let path = form
            .replace("/tenants/{id}", &format!("/tenants/{tenant}"))
            .replace("/customers/{id}", &format!("/customers/{}", seed.customer))
            .replace("/plans/{id}", &format!("/plans/{}", seed.plan))
            .replace("/servers/{id}", &format!("/servers/{}", seed.server));
        let path = fill(&path);
        let response = viewer
            .post_form(
                &path,
                &[
                    ("_csrf", csrf.as_str()),
                    ("reason", "x"),
                    ("confirm", "yes"),
                    ("status", "disabled"),
                    ("email", "new@example.com"),
                    ("company_name", "X"),
                    ("code", "newplan"),
                    ("name", "X"),
                    ("max_users", "1"),
                    ("max_storage_mb", "1"),
                    ("template", "basic"),
                    ("role", "viewer"),
                    ("password", "plum-orbit-cedar-42"),
                    ("customer", &seed.customer_email),
                    ("plan", &seed.plan_code),
                    ("subdomain", "from-viewer"),
                ],
            )
            .await?;
        ensure!(
            response.status() == 403,
            "POST {path}: {}",
            response.status()
        );
    }
    // Nothing changed: only the owner's tenant creation and provision exist.
    let operations: i64 = sqlx::query_scalar("SELECT count(*) FROM operations")
        .fetch_one(&app.pool)
        .await?;
    ensure!(operations == 1, "{operations} operations");
    let viewer_audit: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE actor LIKE 'operator:viewer-%' AND action NOT IN ('operator.login', 'token.create')",
    )
    .fetch_one(&app.pool)
    .await?;
    ensure!(viewer_audit == 0, "viewer changed {viewer_audit} things");
    // The viewer still reads.
    let (status, _) = app
        .api(&viewer_token, "GET", "/api/v1/tenants", None)
        .await?;
    ensure!(status == 200);
    ensure!(viewer.get("/tenants").await?.status() == 200);
    ensure!(
        viewer.get("/operators").await?.status() == 403,
        "operators page is for owners"
    );
    Ok(())
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let owner = app.owner().await?;
    let fields = [
        ("code", "nocsrf"),
        ("name", "No CSRF"),
        ("max_users", "1"),
        ("max_storage_mb", "10"),
        ("template", "basic"),
    ];
    let without = owner.post_form("/plans", &fields).await?;
    ensure!(without.status() == 403, "no token: {}", without.status());
    let mut wrong = fields.to_vec();
    wrong.push(("_csrf", "0000"));
    let response = owner.post_form("/plans", &wrong).await?;
    ensure!(
        response.status() == 403,
        "wrong token: {}",
        response.status()
    );
    let plans: i64 = sqlx::query_scalar("SELECT count(*) FROM plans")
        .fetch_one(&app.pool)
        .await?;
    ensure!(plans == 0, "a plan was created without CSRF");
    // The login form has its own token (double submit).
    let anonymous = app.browser();
    let response = anonymous
        .post_form(
            "/login",
            &[
                ("email", common::OWNER_EMAIL),
                ("password", common::OWNER_PASSWORD),
            ],
        )
        .await?;
    ensure!(
        response.status() == 403,
        "login without token: {}",
        response.status()
    );
    // With the token it works.
    app.server_with_template("basic").await?;
    let csrf = owner.csrf("/plans").await?;
    let mut right = fields.to_vec();
    right.push(("_csrf", csrf.as_str()));
    let response = owner.post_form("/plans", &right).await?;
    ensure!(
        response.status() == 303,
        "with token: {}",
        response.status()
    );
    Ok(())
}
