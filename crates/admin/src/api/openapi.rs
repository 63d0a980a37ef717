//! The OpenAPI 3.1 document, generated from the route table.

use axum::Json;
use serde_json::{Map, Value, json};

use super::routes;

fn string(max: u64) -> Value {
    json!({ "type": "string", "maxLength": max })
}

fn schemas() -> Value {
    let int = json!({ "type": "integer" });
    let boolean = json!({ "type": "boolean" });
    let uuid = json!({ "type": "string", "format": "uuid" });
    json!({
        "Error": {
            "type": "object",
            "properties": { "error": { "type": "object", "properties": {
                "code": { "type": "string" }, "message": { "type": "string" },
                "field": { "type": ["string", "null"] } }, "required": ["code", "message"] } },
            "required": ["error"]
        },
        "NewTenant": {
            "type": "object", "additionalProperties": false,
            "properties": {
                "customer": { "type": "string", "description": "customer id or email" },
                "plan": { "type": "string", "description": "plan id or code" },
                "subdomain": { "type": "string", "pattern": "^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$" },
                "admin_password": { "type": "string", "minLength": 8, "maxLength": 128,
                    "description": "first password of the Odoo admin; generated and returned once when absent" }
            },
            "required": ["customer", "plan", "subdomain"]
        },
        "TenantChange": {
            "type": "object", "additionalProperties": false,
            "properties": {
                "reason": string(500),
                "backup_id": uuid.clone(),
                "plan": uuid.clone(),
                "skip_final_backup": boolean.clone()
            },
            "required": ["reason"]
        },
        "Reason": {
            "type": "object", "additionalProperties": false,
            "properties": { "reason": string(500) }, "required": ["reason"]
        },
        "NewCustomer": {
            "type": "object", "additionalProperties": false,
            "properties": { "email": string(254), "company_name": string(200) },
            "required": ["email", "company_name"]
        },
        "Plan": {
            "type": "object", "additionalProperties": false,
            "properties": {
                "code": { "type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{1,39}$" },
                "name": string(100), "max_users": int.clone(), "max_storage_mb": int.clone(),
                "max_backups": int.clone(), "max_instances": int.clone(),
                "max_domains": { "type": "integer", "description": "customers' own domains per tenant, 0 to 100 (422 naming the field otherwise); 2 when absent on creation" },
                "template": { "type": "string", "pattern": "^[a-z0-9_]{1,40}$", "description": "a template found on an active server (basic for tpl_basic; see GET /api/v1/servers/{id}); a plan keeps its own while it is missing" },
                "modules": { "type": "array", "items": { "type": "string" } },
                "trial_days": int.clone(), "grace_days": int.clone(), "backup_hour_utc": int.clone(),
                "price_cents": int.clone(), "currency": { "type": "string", "pattern": "^[A-Z]{3}$" },
                "active": boolean.clone()
            },
            "description": "code, name, max_users, max_storage_mb and template are required on creation"
        },
        "Server": {
            "type": "object", "additionalProperties": false,
            "properties": {
                "name": string(100), "public_url": string(500), "internal_url": string(500),
                "pg_url": string(500), "odoo_db_role": string(63), "filestore_root": string(500),
                "capacity": int.clone(), "active": boolean.clone()
            },
            "description": "every field but odoo_db_role and active is required on creation"
        },
        "NewOperator": {
            "type": "object", "additionalProperties": false,
            "properties": {
                "email": string(254), "role": { "enum": ["owner", "operator", "viewer"] },
                "password": { "type": "string", "minLength": 12 }, "display_name": string(200)
            },
            "required": ["email", "role", "password"]
        },
        "OperatorChange": {
            "type": "object", "additionalProperties": false,
            "properties": { "role": { "enum": ["owner", "operator", "viewer"] }, "disabled": boolean }
        },
        "NewToken": {
            "type": "object", "additionalProperties": false,
            "properties": { "name": string(100) }, "required": ["name"]
        },
        "AlertmanagerWebhook": {
            "type": "object",
            "properties": { "alerts": { "type": "array", "items": { "type": "object",
                "properties": { "status": { "enum": ["firing", "resolved"] },
                    "labels": { "type": "object" }, "annotations": { "type": "object" },
                    "startsAt": { "type": "string" }, "endsAt": { "type": "string" },
                    "fingerprint": { "type": "string" } } } } },
            "required": ["alerts"]
        }
    })
}

/// Text the API's query strings accept: anything without control
/// characters (refused with 422 naming the parameter).
const NO_CONTROL: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// The schema of query parameter `name` of the route at `path`, as
/// `crate::filters` reads it.
fn query_schema(path: &str, name: &str) -> Value {
    let text = |max: u64| json!({ "type": "string", "maxLength": max, "pattern": NO_CONTROL });
    match name {
        "q" => text(254),
        "actor" | "target" => text(300),
        "action" => text(100),
        "cursor" => json!({ "type": "string", "minLength": 1, "pattern": NO_CONTROL,
            "description": "next_cursor of the previous page, as given" }),
        "limit" => json!({ "type": "integer", "minimum": 1, "maximum": crate::filters::MAX_LIMIT }),
        "plan" | "server" | "customer" | "tenant" => json!({ "type": "string", "format": "uuid" }),
        "disabled" => json!({ "type": "boolean" }),
        "sort" => json!({ "enum": ["created", "name"] }),
        "since" | "until" => json!({ "type": "string", "format": "date-time",
            "description": "an RFC 3339 time, or a date (2024-01-31: midnight UTC)" }),
        "kind" => {
            json!({ "enum": saas_core::ops::OperationKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>() })
        }
        "state" if path.starts_with("/api/v1/operations") => {
            json!({ "enum": saas_core::ops::OperationState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>() })
        }
        "state" if path.starts_with("/api/v1/domains") => {
            json!({ "enum": saas_core::domain::DomainState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>() })
        }
        "state" => {
            json!({ "enum": saas_core::domain::TenantState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>() })
        }
        _ => text(500),
    }
}

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": {
        "schema": { "$ref": "#/components/schemas/Error" } } } })
}

/// The whole document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for route in routes() {
        let spec = route.spec;
        let mut parameters: Vec<Value> = Vec::new();
        for name in spec
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        {
            parameters.push(json!({ "name": name, "in": "path", "required": true,
                "schema": { "type": "string", "format": "uuid" } }));
        }
        for name in spec.query {
            parameters.push(json!({ "name": name, "in": "query", "required": false,
                "schema": query_schema(spec.path, name) }));
        }
        let role = match spec.role {
            Some(role) => format!("Role: {role} or above."),
            None => "Called by Alertmanager with the webhook token.".to_owned(),
        };
        let ok = if spec.path.ends_with(".csv") {
            json!({ "description": "OK", "content": { "text/csv": { "schema": { "type": "string" } } } })
        } else if spec.path.contains("/backups/{backup}") {
            json!({ "description": "OK", "content": { "application/zip": {
                "schema": { "type": "string", "contentMediaType": "application/zip" } } } })
        } else {
            json!({ "description": "OK", "content": { "application/json": { "schema": { "type": "object" } } } })
        };
        let mut responses = json!({
            "200": ok,
            "401": error_response("no, an unknown or a disabled operator's bearer token"),
            "403": error_response("the caller's role may not do this"),
            "404": error_response("not found"),
            "429": error_response("too many failed bearer tokens from this address"),
            "503": error_response("PostgreSQL or Redis is unavailable"),
        });
        if spec.method == "POST" && !spec.path.contains("/{") && spec.role.is_some() {
            responses["201"] = json!({ "description": "created", "content": { "application/json": { "schema": { "type": "object" } } } });
        }
        if spec.method == "DELETE" {
            responses["204"] = json!({ "description": "deleted" });
        }
        if !spec.query.is_empty() {
            responses["422"] = error_response("a query parameter is invalid; `field` names it");
        }
        if spec.body.is_some() {
            responses["400"] = error_response("the body is not JSON");
            responses["422"] = error_response("a field is invalid; `field` names it");
            responses["409"] = error_response("conflicts with the current state");
        }
        let mut operation = json!({
            "operationId": format!("{} {}", spec.method.to_lowercase(), spec.path),
            "summary": spec.summary,
            "description": role,
            "parameters": parameters,
            "responses": responses,
        });
        if let Some(body) = spec.body {
            operation["requestBody"] = json!({ "required": true, "content": { "application/json": {
                "schema": { "$ref": format!("#/components/schemas/{body}") } } } });
        }
        if spec.role.is_none() {
            operation["security"] = json!([{ "alertWebhook": [] }]);
        }
        let entry = paths
            .entry(spec.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[spec.method.to_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "odoo-saas admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Operators' API. Authenticate with `Authorization: Bearer <token>` (create tokens on the API tokens page). Errors are {\"error\": {\"code\", \"message\", \"field\"}}. Lists return {\"items\", \"next_cursor\"}: pass next_cursor as cursor for the next page."
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }],
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "alertWebhook": { "type": "http", "scheme": "bearer" }
            },
            "schemas": schemas()
        },
        "paths": paths,
    })
}

pub async fn serve() -> Json<Value> {
    Json(document())
}
