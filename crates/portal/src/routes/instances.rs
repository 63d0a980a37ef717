//! Web UI: the customer's instances, one instance's page and its forms.

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use saas_core::backups::{self, Backup};
use saas_core::customer_tenants::{self as scoped};
use saas_core::tenants::Tenant;
use serde::Deserialize;
use uuid::Uuid;

use crate::actions::{self, CreateInstance};
use crate::auth::{SignedIn, Web};
use crate::error::{AppError, PageError};
use crate::extract::{Form, Query};
use crate::state::AppState;
use crate::views::{
    BackupView, DomainView, FormError, InstancePage, InstanceView, InstancesPage, Nav,
    NewInstancePage, OperationView, PlanView, render,
};

pub fn router(state: &AppState) -> Router<AppState> {
    let upload_limit = usize::try_from(state.settings.max_upload_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1 << 20);
    Router::new()
        .route("/instances", get(list).post(create))
        .route("/instances/new", get(new_form))
        .route("/instances/{id}", get(show))
        .route("/instances/{id}/backups", post(backup_now))
        .route(
            "/instances/{id}/upload",
            post(upload)
                .layer(DefaultBodyLimit::max(upload_limit))
                .layer(axum::middleware::from_fn_with_state(
                    state.settings.upload_timeout,
                    saas_core::edge::timeout::extend,
                )),
        )
        .route("/instances/{id}/plan", post(change_plan))
        .route("/instances/{id}/admin-password", post(reset_admin_password))
        .route("/instances/{id}/delete", post(delete))
        .route("/instances/{id}/domains", post(add_domain))
        .route(
            "/instances/{id}/domains/{domain_id}/primary",
            post(make_primary),
        )
        .route(
            "/instances/{id}/domains/{domain_id}/remove",
            post(remove_domain),
        )
}

/// An id from the path; a malformed one is simply not found.
pub fn parse_id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound)
}

pub fn nav(who: &SignedIn) -> Nav {
    Nav {
        email: who.customer.email.clone(),
        csrf: who.csrf_token(),
        verified: who.customer.email_verified_at.is_some(),
    }
}

async fn list(State(state): State<AppState>, Web(who): Web) -> Result<Response, PageError> {
    let plans = scoped::active_plans(&state.db).await?;
    let tenants = scoped::list(&state.db, who.customer.id).await?;
    let deleted = scoped::recently_deleted(&state.db, who.customer.id).await?;
    let ids: Vec<Uuid> = tenants.iter().map(|t| t.id).collect();
    let primaries = saas_core::domains::live_primaries(&state.db, &ids).await?;
    let page = InstancesPage {
        nav: nav(&who),
        live: i64::try_from(tenants.len()).unwrap_or(i64::MAX),
        max_instances: plans.first().map_or(0, |p| p.max_instances),
        instances: tenants
            .iter()
            .map(|t| InstanceView::new(&state, t, &plans, primaries.get(&t.id).map(String::as_str)))
            .collect(),
        deleted: deleted
            .iter()
            .map(|t| InstanceView::new(&state, t, &plans, None))
            .collect(),
    };
    Ok(render(&page))
}

async fn new_form(State(state): State<AppState>, Web(who): Web) -> Result<Response, PageError> {
    let plans = scoped::active_plans(&state.db).await?;
    Ok(render(&NewInstancePage {
        nav: nav(&who),
        plans: PlanView::list(&plans, ""),
        subdomain: String::new(),
        base_domain: state.base_domain.clone(),
        error: None,
    }))
}

#[derive(Deserialize)]
struct CreateForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    plan: String,
    subdomain: String,
    admin_password: String,
}

async fn create(
    State(state): State<AppState>,
    Web(who): Web,
    Form(form): Form<CreateForm>,
) -> Result<Response, PageError> {
    who.check_csrf(&form.csrf_token)?;
    let input = CreateInstance {
        subdomain: &form.subdomain,
        plan: &form.plan,
        admin_password: &form.admin_password,
    };
    match actions::create_instance(&state, &who, &input).await {
        Ok((tenant, _)) => Ok(Redirect::to(&format!("/instances/{}", tenant.id)).into_response()),
        Err(err @ (AppError::Internal(_) | AppError::Unavailable(_))) => Err(err.into()),
        Err(err) => {
            let plans = scoped::active_plans(&state.db).await?;
            let page = NewInstancePage {
                nav: nav(&who),
                plans: PlanView::list(&plans, &form.plan),
                subdomain: form.subdomain.clone(),
                base_domain: state.base_domain.clone(),
                error: Some(FormError::from(&err)),
            };
            Ok((err.status(), render(&page)).into_response())
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Done {
    done: String,
}

fn notice(done: &str) -> Option<String> {
    let text = match done {
        "backup" => "Backup requested: it appears in the list when it is done.",
        "restore" => "Restore requested: the instance is replaced with the backup shortly.",
        "upload" => "Upload accepted and checked: the instance is being restored from it.",
        "plan" => "Plan change requested.",
        "password" => {
            "New Odoo admin password requested: it replaces the old one within a few seconds."
        }
        "domain" => {
            "Domain added: create its DNS records below; we check them and get its certificate by ourselves."
        }
        "primary" => "Primary domain chosen: Odoo's links use it once it is live.",
        "domain-removed" => "Domain removed: it no longer reaches this instance.",
        _ => return None,
    };
    Some(text.to_owned())
}

/// The instance page, with an error next to the form that failed.
pub async fn page(
    state: &AppState,
    who: &SignedIn,
    tenant: &Tenant,
    error: Option<&AppError>,
    notice: Option<String>,
) -> Result<Response, PageError> {
    page_with_input(state, who, tenant, error, notice, "").await
}

/// [`page`], the add-domain form keeping what was typed.
async fn page_with_input(
    state: &AppState,
    who: &SignedIn,
    tenant: &Tenant,
    error: Option<&AppError>,
    notice: Option<String>,
    domain_input: &str,
) -> Result<Response, PageError> {
    let plans = scoped::active_plans(&state.db).await?;
    let mut all_plans = plans.clone();
    if !all_plans.iter().any(|p| p.id == tenant.plan_id)
        && let Some(current) = scoped::plan(&state.db, &tenant.plan_id.to_string()).await?
    {
        all_plans.push(current);
    }
    let backups = backups::list_for_tenant(&state.db, tenant.id).await?;
    let max_backups = all_plans
        .iter()
        .find(|p| p.id == tenant.plan_id)
        .map_or(0, |p| p.max_backups);
    let pushed_out = backups::manual_beyond(&state.db, tenant.id, i64::from(max_backups) - 1)
        .await?
        .into_iter()
        .next();
    let operations = scoped::operations(&state.db, tenant.id, 10).await?;
    let pending = operations.iter().filter(|o| !o.state.is_final()).count();
    let odoo_login = scoped::odoo_login(&state.db, tenant.id)
        .await?
        .unwrap_or_else(|| who.customer.email.clone());
    let own_domains = crate::domains::list(state, tenant).await?;
    let live_primary = own_domains
        .iter()
        .find(|d| d.is_primary && d.state == saas_core::domain::DomainState::Live)
        .map(|d| d.domain.as_str());
    let max_domains = all_plans
        .iter()
        .find(|p| p.id == tenant.plan_id)
        .map_or(0, |p| p.max_domains);
    let page = InstancePage {
        nav: nav(who),
        instance: InstanceView::new(state, tenant, &all_plans, live_primary),
        domains: own_domains
            .iter()
            .map(|d| DomainView::new(d, crate::domains::records(state, tenant, d)))
            .collect(),
        max_domains,
        domain_input: domain_input.to_owned(),
        odoo_login,
        backup_note: backup_note(max_backups, &backups, pushed_out.as_ref()),
        backups: backups.iter().map(BackupView::new).collect(),
        operations: operations.iter().map(OperationView::new).collect(),
        plans: PlanView::list(&plans, &tenant.plan_id.to_string()),
        error: error.map(FormError::from),
        notice,
        max_upload_mb: state.settings.max_upload_bytes / (1024 * 1024),
        pending,
    };
    let status = error.map_or(axum::http::StatusCode::OK, AppError::status);
    Ok((status, render(&page)).into_response())
}

/// How many manual and uploaded backups the plan keeps, and which one the
/// next would remove.
fn backup_note(max_backups: i32, backups: &[Backup], pushed_out: Option<&Backup>) -> String {
    if max_backups <= 0 {
        return "Your plan keeps no manual or uploaded backups.".to_owned();
    }
    let manual = backups
        .iter()
        .filter(|b| backups::MANUAL_KINDS.contains(&b.kind.as_str()))
        .count();
    let mut note =
        format!("Your plan keeps {max_backups} manual or uploaded backups; you have {manual}.");
    if let Some(oldest) = pushed_out {
        note.push_str(&format!(
            " The next one removes the oldest, the {} backup of {}.",
            oldest.kind,
            oldest.created_at.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    note
}

async fn show(
    State(state): State<AppState>,
    Web(who): Web,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    let tenant = actions::instance(&state, &who, parse_id(&id)?, true).await?;
    page(&state, &who, &tenant, None, notice(&done.done)).await
}

/// Runs a form action on one of the customer's instances: on success back to
/// its page with a notice, on a user error its page with the message.
async fn on_instance<F, Fut, T>(
    state: &AppState,
    who: &SignedIn,
    id: &str,
    csrf: &str,
    done: &str,
    action: F,
) -> Result<Response, PageError>
where
    F: FnOnce(Tenant) -> Fut,
    Fut: std::future::Future<Output = Result<T, AppError>>,
{
    who.check_csrf(csrf)?;
    let tenant = actions::instance(state, who, parse_id(id)?, false).await?;
    match action(tenant.clone()).await {
        Ok(_) => Ok(Redirect::to(&format!("/instances/{}?done={done}", tenant.id)).into_response()),
        Err(
            err
            @ (AppError::Invalid { .. } | AppError::Conflict { .. } | AppError::TooLarge { .. }),
        ) => page(state, who, &tenant, Some(&err), None).await,
        Err(err) => Err(err.into()),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CsrfForm {
    csrf_token: String,
}

async fn backup_now(
    State(state): State<AppState>,
    Web(who): Web,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    let (state_ref, who_ref) = (&state, &who);
    on_instance(
        &state,
        &who,
        &id,
        &form.csrf_token,
        "backup",
        |tenant| async move { actions::backup_now(state_ref, who_ref, &tenant).await },
    )
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PlanForm {
    csrf_token: String,
    plan: String,
}

async fn change_plan(
    State(state): State<AppState>,
    Web(who): Web,
    Path(id): Path<String>,
    Form(form): Form<PlanForm>,
) -> Result<Response, PageError> {
    let (state_ref, who_ref, plan) = (&state, &who, form.plan.as_str());
    on_instance(
        &state,
        &who,
        &id,
        &form.csrf_token,
        "plan",
        |tenant| async move { actions::change_plan(state_ref, who_ref, &tenant, plan).await },
    )
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PasswordForm {
    csrf_token: String,
    admin_password: String,
    admin_password_repeat: String,
}

async fn reset_admin_password(
    State(state): State<AppState>,
    Web(who): Web,
    Path(id): Path<String>,
    Form(form): Form<PasswordForm>,
) -> Result<Response, PageError> {
    let (state_ref, who_ref, form_ref) = (&state, &who, &form);
    on_instance(
        &state,
        &who,
        &id,
        &form.csrf_token,
        "password",
        |tenant| async move {
            if form_ref.admin_password != form_ref.admin_password_repeat {
                return Err(AppError::invalid(
                    "admin_password_repeat",
                    "the two passwords differ; type the same one twice",
                ));
            }
            actions::reset_admin_password(state_ref, who_ref, &tenant, &form_ref.admin_password)
                .await
        },
    )
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ConfirmForm {
    csrf_token: String,
    confirm: String,
}

async fn delete(
    State(state): State<AppState>,
    Web(who): Web,
    Path(id): Path<String>,
    Form(form): Form<ConfirmForm>,
) -> Result<Response, PageError> {
    who.check_csrf(&form.csrf_token)?;
    let tenant = actions::instance(&state, &who, parse_id(&id)?, false).await?;
    match actions::delete(&state, &who, &tenant, &form.confirm).await {
        Ok(_) => Ok(Redirect::to(&format!("/instances/{}", tenant.id)).into_response()),
        Err(err @ (AppError::Invalid { .. } | AppError::Conflict { .. })) => {
            page(&state, &who, &tenant, Some(&err), None).await
        }
        Err(err) => Err(err.into()),
    }
}

/// `multipart/form-data` with `csrf_token`, `confirm`, then `file` (in the
/// form's order): the token is checked before a byte of the file is read.
async fn upload(
    State(state): State<AppState>,
    Web(who): Web,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, PageError> {
    // Ownership first: another customer's instance is not found, whatever the body.
    let tenant = actions::instance(&state, &who, parse_id(&id)?, false).await?;
    let mut multipart = Multipart::from_request(request, &state)
        .await
        .map_err(|e| AppError::invalid("file", format!("expected a multipart form: {e}")))?;
    let mut csrf_ok = false;
    let mut confirm = String::new();
    let mut received = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(err) => {
                return Err(
                    AppError::invalid("file", format!("the upload is malformed: {err}")).into(),
                );
            }
        };
        match field.name().unwrap_or("") {
            "csrf_token" => {
                let value = field.text().await.unwrap_or_default();
                who.check_csrf(&value)?;
                csrf_ok = true;
            }
            "confirm" => confirm = field.text().await.unwrap_or_default(),
            "file" => {
                if !csrf_ok {
                    return Err(AppError::Csrf.into());
                }
                match crate::upload::receive(field, state.settings.max_upload_bytes).await {
                    Ok(r) => received = Some(r),
                    Err(err @ (AppError::Invalid { .. } | AppError::TooLarge { .. })) => {
                        return page(&state, &who, &tenant, Some(&err), None).await;
                    }
                    Err(err) => return Err(err.into()),
                }
            }
            _ => {}
        }
    }
    if !csrf_ok {
        return Err(AppError::Csrf.into());
    }
    let Some(received) = received else {
        let err = AppError::invalid("file", "choose a zip file to upload");
        return page(&state, &who, &tenant, Some(&err), None).await;
    };
    match actions::upload_and_restore(&state, &who, &tenant, received, &confirm).await {
        Ok(_) => Ok(Redirect::to(&format!("/instances/{}?done=upload", tenant.id)).into_response()),
        Err(err @ (AppError::Invalid { .. } | AppError::Conflict { .. })) => {
            page(&state, &who, &tenant, Some(&err), None).await
        }
        Err(err) => Err(err.into()),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DomainForm {
    csrf_token: String,
    domain: String,
}

/// Adds a domain; refused input comes back in the form, with the reason.
async fn add_domain(
    State(state): State<AppState>,
    Web(who): Web,
    Path(id): Path<String>,
    Form(form): Form<DomainForm>,
) -> Result<Response, PageError> {
    who.check_csrf(&form.csrf_token)?;
    let tenant = actions::instance(&state, &who, parse_id(&id)?, false).await?;
    match crate::domains::add(&state, &who, &tenant, &form.domain).await {
        Ok(_) => Ok(Redirect::to(&format!("/instances/{}?done=domain", tenant.id)).into_response()),
        Err(err @ (AppError::Invalid { .. } | AppError::Conflict { .. })) => {
            page_with_input(&state, &who, &tenant, Some(&err), None, &form.domain).await
        }
        Err(err) => Err(err.into()),
    }
}

async fn make_primary(
    State(state): State<AppState>,
    Web(who): Web,
    Path((id, domain_id)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    let (state_ref, who_ref) = (&state, &who);
    on_instance(
        &state,
        &who,
        &id,
        &form.csrf_token,
        "primary",
        |tenant| async move {
            let domain_id = parse_id(&domain_id)?;
            crate::domains::make_primary(state_ref, who_ref, &tenant, domain_id).await
        },
    )
    .await
}

/// Removes a domain; removing one that is already gone (a second click)
/// lands on the same page as the first.
async fn remove_domain(
    State(state): State<AppState>,
    Web(who): Web,
    Path((id, domain_id)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    let (state_ref, who_ref) = (&state, &who);
    on_instance(
        &state,
        &who,
        &id,
        &form.csrf_token,
        "domain-removed",
        |tenant| async move {
            let domain_id = parse_id(&domain_id)?;
            match crate::domains::remove(state_ref, who_ref, &tenant, domain_id).await {
                Ok(_) | Err(AppError::NotFound) => Ok(()),
                Err(err) => Err(err),
            }
        },
    )
    .await
}
