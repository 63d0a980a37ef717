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
                "schema": { "type": "string" } }));
        }
        let role = match spec.role {
            Some(role) => format!("Role: {role} or above."),
            None => "Called by Alertmanager with the webhook token.".to_owned(),
        };
        let mut responses = json!({
            "200": { "description": "OK", "content": { "application/json": {} } },
            "401": error_response("no or unknown bearer token"),
            "403": error_response("the caller's role may not do this"),
            "404": error_response("not found"),
        });
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
