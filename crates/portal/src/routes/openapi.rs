//! The OpenAPI 3.1 description of `/api/v1`, served at `/api/openapi.json`,
//! generated from the route table ([`super::api::routes`]) so it lists
//! exactly what the router serves. Schemas say what the handlers accept:
//! lengths, the characters refused, required fields. Schemathesis checks
//! the two against each other in CI (`crates/portal/tests/schemathesis.rs`).

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::api::{Body, Param, routes};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(|| async { Json(document()) }))
}

/// Text without control characters (NUL, tabs, line breaks: no portal
/// field holds them, and they are refused with 422 naming the field).
const NO_CONTROL: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// Like [`NO_CONTROL`], with at least one character that is not white space.
const SOME_TEXT: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$";

fn text(max: u64) -> Value {
    json!({ "type": "string", "maxLength": max, "pattern": NO_CONTROL })
}

fn password() -> Value {
    json!({ "type": "string", "minLength": 12, "maxLength": 1024, "pattern": NO_CONTROL,
        "writeOnly": true,
        "description": "12 to 1024 characters, not one character repeated, not a common password" })
}

fn schemas() -> Value {
    json!({
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                "code": { "type": "string", "enum": ["invalid", "not_found", "conflict", "unauthorized", "csrf", "throttled", "too_large", "unavailable", "busy", "internal"] },
                "message": { "type": "string" },
                "field": { "type": ["string", "null"] }
            } } }
        },
        "NewInstance": {
            "type": "object",
            "required": ["subdomain", "admin_password"],
            "properties": {
                "subdomain": { "type": "string", "minLength": 1, "maxLength": 255, "pattern": NO_CONTROL,
                    "description": "3-63 letters, digits and hyphens (compared in lower case, surrounding spaces ignored), not reserved, not an IDNA label (`xn--`, `--` in positions 3-4), not taken: 422 naming `subdomain` otherwise" },
                "plan": { "type": "string", "maxLength": 255, "pattern": NO_CONTROL,
                    "description": "plan code or id; the first open plan when empty" },
                "admin_password": password()
            }
        },
        "PlanChange": {
            "type": "object", "required": ["plan"],
            "properties": { "plan": { "type": "string", "maxLength": 255, "pattern": SOME_TEXT, "description": "plan code or id" } }
        },
        "AdminPassword": {
            "type": "object", "required": ["admin_password"],
            "properties": { "admin_password": password() }
        },
        "Confirm": {
            "type": "object", "required": ["confirm"],
            "properties": { "confirm": { "type": "string", "maxLength": 255, "pattern": NO_CONTROL,
                "description": "the instance's subdomain, typed to confirm" } }
        },
        "NewDomain": {
            "type": "object", "required": ["domain"],
            "properties": { "domain": { "type": "string", "pattern": NO_CONTROL,
                "description": "a domain name such as erp.example.com, as typed: case, a trailing dot and surrounding spaces are ignored, Unicode names are stored IDNA-encoded. Refused with 422 naming `domain`: more than 253 characters, empty labels, wildcards, IP addresses, single labels, localhost, a scheme, port or path, the platform's own BASE_DOMAIN and its subdomains; with 409 naming `domain`: another instance's domain, or one more than the plan allows" } }
        },
        "NewToken": {
            "type": "object", "required": ["name"],
            "properties": { "name": { "type": "string", "minLength": 1, "maxLength": 100, "pattern": SOME_TEXT } }
        }
    })
}

fn parameter(param: Param) -> Value {
    match param {
        Param::Id => json!({ "name": "id", "in": "path", "required": true,
            "schema": { "type": "string", "format": "uuid" } }),
        Param::Name => json!({ "name": "name", "in": "path", "required": true,
            "description": "a subdomain to check, any text: the answer says whether it is available and why not",
            "schema": { "type": "string", "pattern": NO_CONTROL } }),
        Param::Confirm => json!({ "name": "confirm", "in": "query", "required": true,
            "description": "the instance's subdomain, typed to confirm", "schema": text(255) }),
        Param::DomainId => json!({ "name": "domain_id", "in": "path", "required": true,
            "description": "the id of one of the instance's domains",
            "schema": { "type": "string", "format": "uuid" } }),
    }
}

fn error(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": {
        "schema": { "$ref": "#/components/schemas/Error" } } } })
}

/// The whole document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for route in routes() {
        let spec = route.spec;
        let (status, what) = spec.ok;
        let ok = match (status, spec.path.ends_with("/download")) {
            (204, _) => json!({ "description": what }),
            (_, true) => json!({ "description": what, "content": { "application/zip": {
                "schema": { "type": "string", "contentMediaType": "application/zip" } } } }),
            _ => json!({ "description": what, "content": { "application/json": {
                "schema": { "type": "object" } } } }),
        };
        let mut responses = json!({
            status.to_string(): ok,
            "401": error("no, an unknown or a revoked bearer token"),
            "429": error("too many failed bearer tokens from this address"),
            "503": error("a dependency is unavailable, or too many password hashes at once"),
        });
        if !spec.params.is_empty() {
            responses["404"] =
                error("no such resource of yours (another customer's looks the same)");
        }
        if spec.body.is_some() || spec.params.contains(&Param::Confirm) {
            responses["422"] = error("a field is invalid; `field` names it");
        }
        if matches!(spec.body, Some(Body::Json(_))) {
            responses["400"] = error("the body is not JSON");
        }
        for refusal in spec.refusals {
            let description = match refusal {
                409 => {
                    "conflicts with the platform's state (an operation is running, the address is not verified, the instance is not active, a domain is another instance's or over the plan's limit); `field` names the input when there is one"
                }
                413 => "the upload is larger than MAX_UPLOAD_MB",
                _ => "refused by a business rule; `field` and `message` say which",
            };
            responses[refusal.to_string()] = error(description);
        }
        let mut operation = json!({
            "operationId": format!("{} {}", spec.method.to_lowercase(), spec.path),
            "summary": spec.summary,
            "parameters": spec.params.iter().map(|p| parameter(*p)).collect::<Vec<_>>(),
            "responses": responses,
        });
        match spec.body {
            Some(Body::Json(schema)) => {
                operation["requestBody"] = json!({ "required": true, "content": { "application/json": {
                    "schema": { "$ref": format!("#/components/schemas/{schema}") } } } });
            }
            Some(Body::Zip) => {
                // The body is read as it comes, whatever its Content-Type.
                let zip = json!({ "schema": { "type": "string", "format": "binary", "contentMediaType": "application/zip" } });
                operation["requestBody"] = json!({ "required": true, "content": {
                    "application/zip": zip.clone(), "application/octet-stream": zip } });
            }
            None => {}
        }
        paths
            .entry(spec.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()))[spec.method.to_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "odoo-saas portal API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Customers' instances, their own domains, backups, operations and API tokens. Authenticate with `Authorization: Bearer osc_...` (create tokens on the portal's API tokens page). Errors are `{\"error\": {\"code\", \"message\", \"field\"}}`; another customer's resource answers 404 exactly like a missing one."
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas(),
        }
    })
}
