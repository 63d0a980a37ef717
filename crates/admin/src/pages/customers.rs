//! Customers: list, creation, detail with their tenants, disable/enable.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::{get, post};

use super::{Nav, query, render, see_other};
use crate::actions::customers::{self as actions, NewCustomer};
use crate::auth::{CsrfForm, PageUser};
use crate::error::{Error, PageResult};
use crate::filters;
use crate::params::{PageId, Params};
use crate::repo::{self, Page, customers::CustomerRow, tenants::TenantItem};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/customers", get(list).post(create))
        .route("/customers/{id}", get(detail))
        .route("/customers/{id}/status", post(set_status))
}

#[derive(Template)]
#[template(path = "customers.html")]
struct CustomersPage {
    nav: Nav,
    page: Page<CustomerRow>,
    q: String,
    next_link: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    params: Params,
) -> PageResult<Html<String>> {
    let filter = filters::customers(&params)?;
    let page = repo::customers::list(&state.db, &filter).await?;
    let q = params.get("q").unwrap_or("").to_owned();
    let next_link = page.next_cursor.as_ref().map(|c| {
        format!(
            "/customers?{}",
            query(&[("q", q.clone()), ("cursor", c.clone())])
        )
    });
    Ok(render(&CustomersPage {
        nav: Nav::new(&user, "customers"),
        page,
        q,
        next_link,
    })?)
}

async fn create(State(state): State<AppState>, CsrfForm(user, form): CsrfForm) -> PageResult {
    let new = NewCustomer {
        email: form.get("email").unwrap_or("").to_owned(),
        company_name: form.get("company_name").unwrap_or("").to_owned(),
    };
    let id = actions::create(&state, &user, new).await?;
    Ok(see_other(&format!("/customers/{id}")))
}

#[derive(Template)]
#[template(path = "customer.html")]
struct CustomerPage {
    nav: Nav,
    customer: CustomerRow,
    tenants: Vec<TenantItem>,
}

async fn detail(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    PageId(id): PageId,
) -> PageResult<Html<String>> {
    let (customer, tenants) = repo::customers::with_tenants(&state.db, id)
        .await?
        .ok_or(Error::NotFound("customer"))?;
    Ok(render(&CustomerPage {
        nav: Nav::new(&user, "customers"),
        customer,
        tenants,
    })?)
}

async fn set_status(
    State(state): State<AppState>,
    PageId(id): PageId,
    CsrfForm(user, form): CsrfForm,
) -> PageResult {
    let disabled = match form.get("status") {
        Some("disabled") => true,
        Some("enabled") => false,
        _ => return Err(Error::invalid("status", "must be enabled or disabled").into()),
    };
    actions::set_disabled(
        &state,
        &user,
        id,
        disabled,
        form.get("reason").unwrap_or(""),
    )
    .await?;
    Ok(see_other(&format!("/customers/{id}")))
}
