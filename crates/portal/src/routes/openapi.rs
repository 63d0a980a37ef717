//! The OpenAPI 3.1 description of `/api/v1`, served at `/api/openapi.json`.
//! Written out rather than derived: a test checks that every API route the
//! router serves is described here.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(|| async { Json(document()) }))
}

fn op(summary: &str, params: &[&str], body: Option<Value>, ok: (&str, &str)) -> Value {
    let mut parameters: Vec<Value> = params
        .iter()
        .map(|p| match *p {
            "confirm" => json!({ "name": "confirm", "in": "query", "required": true,
                "description": "the instance's subdomain, typed to confirm", "schema": { "type": "string" } }),
            name => json!({ "name": name, "in": "path", "required": true,
                "schema": { "type": "string", "format": "uuid" } }),
        })
        .collect();
    if params.contains(&"name") {
        parameters = vec![
            json!({ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }),
        ];
    }
    let mut operation = json!({
        "summary": summary,
        "parameters": parameters,
        "responses": {
            ok.0: { "description": ok.1, "content": { "application/json": { "schema": { "type": "object" } } } },
            "400": { "$ref": "#/components/responses/Error" },
            "401": { "$ref": "#/components/responses/Error" },
            "404": { "$ref": "#/components/responses/Error" },
            "409": { "$ref": "#/components/responses/Error" },
            "422": { "$ref": "#/components/responses/Error" },
            "429": { "$ref": "#/components/responses/Error" },
        },
    });
    if let Some(body) = body {
        operation["requestBody"] = body;
    }
    operation
}

fn json_body(properties: Value, required: &[&str]) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": {
        "type": "object", "properties": properties, "required": required } } } })
}

pub fn document() -> Value {
    let s = json!({ "type": "string" });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "odoo-saas portal API",
            "version": "1",
            "description": "Customers' instances, backups, operations and API tokens. Authenticate with `Authorization: Bearer osc_...` (create tokens on the portal's API tokens page). Errors are `{\"error\": {\"code\", \"message\", \"field\"}}`; another customer's resource answers 404 exactly like a missing one."
        },
        "security": [{ "bearer": [] }],
        "paths": {
            "/api/v1/plans": { "get": op("Plans open to new instances", &[], None, ("200", "plans")) },
            "/api/v1/subdomains/{name}": { "get": op("Whether a subdomain can be taken", &["name"], None, ("200", "availability")) },
            "/api/v1/instances": {
                "get": op("Your instances", &[], None, ("200", "instances")),
                "post": op("Create an instance (provisioned asynchronously)", &[],
                    Some(json_body(json!({ "subdomain": s, "plan": { "type": "string", "description": "plan code or id; the trial plan when empty" }, "admin_password": { "type": "string", "minLength": 12 } }), &["subdomain", "admin_password"])),
                    ("202", "instance and its provision operation")),
            },
            "/api/v1/instances/{id}": {
                "get": op("One instance with its recent operations", &["id"], None, ("200", "instance")),
                "delete": op("Delete an instance (final backup kept for the grace period)", &["id", "confirm"], None, ("202", "delete operation")),
            },
            "/api/v1/instances/{id}/plan": {
                "post": op("Change plan (refused with the reason when usage exceeds it)", &["id"],
                    Some(json_body(json!({ "plan": s }), &["plan"])), ("202", "change_plan operation")),
            },
            "/api/v1/instances/{id}/admin-password": {
                "post": op("Set a new password for the instance's Odoo admin user (its login is `odoo_login` of the instance); the worker writes it within seconds. Repeated while the first request waits, the newest password wins", &["id"],
                    Some(json_body(json!({ "admin_password": { "type": "string", "minLength": 12, "maxLength": 1024, "writeOnly": true } }), &["admin_password"])),
                    ("202", "reset_admin_password operation")),
            },
            "/api/v1/instances/{id}/operations": { "get": op("The instance's operations", &["id"], None, ("200", "operations")) },
            "/api/v1/instances/{id}/backups": {
                "get": op("The instance's backups", &["id"], None, ("200", "backups")),
                "post": op("Back up now", &["id"], None, ("202", "backup operation")),
            },
            "/api/v1/instances/{id}/backups/upload": {
                "post": {
                    "summary": "Upload an Odoo backup zip (dump.sql, filestore/, manifest.json) and restore the instance from it",
                    "parameters": [
                        { "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } },
                        { "name": "confirm", "in": "query", "required": true, "schema": { "type": "string" } }
                    ],
                    "requestBody": { "required": true, "content": { "application/zip": { "schema": { "type": "string", "contentMediaType": "application/zip" } } } },
                    "responses": {
                        "202": { "description": "backup recorded, restore requested" },
                        "413": { "$ref": "#/components/responses/Error" },
                        "422": { "$ref": "#/components/responses/Error" },
                        "404": { "$ref": "#/components/responses/Error" }
                    }
                }
            },
            "/api/v1/backups/{id}": { "get": op("One backup", &["id"], None, ("200", "backup")) },
            "/api/v1/backups/{id}/download": {
                "get": {
                    "summary": "Download a backup zip",
                    "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } }],
                    "responses": {
                        "200": { "description": "the zip", "content": { "application/zip": {} } },
                        "404": { "$ref": "#/components/responses/Error" }
                    }
                }
            },
            "/api/v1/backups/{id}/restore": {
                "post": op("Restore a backup into its instance", &["id"],
                    Some(json_body(json!({ "confirm": s }), &["confirm"])),
                    ("202", "restore operation")),
            },
            "/api/v1/operations/{id}": { "get": op("Status of one operation", &["id"], None, ("200", "operation")) },
            "/api/v1/tokens": {
                "get": op("Your API tokens (never their secrets)", &[], None, ("200", "tokens")),
                "post": op("Create a token; its secret is in this response only", &[],
                    Some(json_body(json!({ "name": s }), &["name"])), ("201", "token with secret")),
            },
            "/api/v1/tokens/{id}": { "delete": op("Revoke a token", &["id"], None, ("204", "revoked")) },
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                        "code": { "type": "string", "enum": ["invalid", "not_found", "conflict", "unauthorized", "csrf", "throttled", "too_large", "unavailable", "internal"] },
                        "message": { "type": "string" },
                        "field": { "type": ["string", "null"] }
                    } } }
                }
            },
            "responses": {
                "Error": { "description": "an error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
            }
        }
    })
}
