//! First run offers something: each template `ODOO_TEMPLATES` names gets a
//! plan the first time it is found built on a server, so a fresh stack lets
//! a customer create an instance before an operator has set up plans.
//!
//! Each template is seeded once, ever: the decision is a row of
//! `seeded_template_plans`, kept whatever becomes of the plan, so a plan an
//! operator changed or deleted is never made again. A template some plan
//! already uses is recorded without making another.

use sqlx::PgPool;
use uuid::Uuid;

use crate::audit;
use crate::config::TemplateSpec;

/// Limits of a seeded plan: a modest free trial an operator adjusts.
const MAX_USERS: i32 = 5;
const MAX_STORAGE_MB: i32 = 2048;
const MAX_BACKUPS: i32 = 3;
const TRIAL_DAYS: i32 = 14;

/// A plan made for a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededPlan {
    pub template: String,
    pub plan_id: Uuid,
    pub code: String,
}

/// `basic_crm` -> `Basic crm`.
fn display_name(template: &str) -> String {
    let words = template.replace('_', " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Plan codes to try for `template`: plan codes are 2-40 of `[a-z0-9_-]`
/// starting with a letter or digit.
fn candidate_codes(template: &str) -> Vec<String> {
    let trimmed = template.trim_start_matches('_');
    let base = match trimmed.len() {
        0 => "plan".to_owned(),
        1 => format!("{trimmed}-plan"),
        _ => trimmed.to_owned(),
    };
    let suffix = &Uuid::new_v4().simple().to_string()[..6];
    let short: String = base.chars().take(32).collect();
    vec![
        base.clone(),
        format!("{short}-auto"),
        format!("{short}-{suffix}"),
    ]
}

/// Seeds a plan for every template of `specs` that a server holds and that
/// was never seeded; returns the plans made.
#[tracing::instrument(skip_all)]
pub async fn seed(pool: &PgPool, specs: &[TemplateSpec]) -> Result<Vec<SeededPlan>, sqlx::Error> {
    let mut made = Vec::new();
    for spec in specs {
        if let Some(plan) = seed_one(pool, spec).await? {
            tracing::info!(template = %spec.name, code = %plan.code, "plan created for a new template");
            made.push(plan);
        }
    }
    Ok(made)
}

async fn seed_one(pool: &PgPool, spec: &TemplateSpec) -> Result<Option<SeededPlan>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let built: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM server_templates st JOIN servers s ON s.id = st.server_id
                        WHERE s.active AND st.name = 'tpl_' || $1)",
    )
    .bind(&spec.name)
    .fetch_one(&mut *tx)
    .await?;
    if !built {
        return Ok(None);
    }
    // The row is the decision: a concurrent worker that inserted it first
    // makes the plan, this one nothing.
    let decided = sqlx::query(
        "INSERT INTO seeded_template_plans (template) VALUES ($1) ON CONFLICT (template) DO NOTHING",
    )
    .bind(&spec.name)
    .execute(&mut *tx)
    .await?;
    if decided.rows_affected() == 0 {
        return Ok(None);
    }
    let in_use: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM plans WHERE template = $1)")
            .bind(&spec.name)
            .fetch_one(&mut *tx)
            .await?;
    if in_use {
        tx.commit().await?;
        return Ok(None);
    }
    let mut code = None;
    for candidate in candidate_codes(&spec.name) {
        let taken: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM plans WHERE code = $1)")
            .bind(&candidate)
            .fetch_one(&mut *tx)
            .await?;
        if !taken {
            code = Some(candidate);
            break;
        }
    }
    let Some(code) = code else {
        tx.commit().await?;
        return Ok(None);
    };
    let id = Uuid::new_v4();
    let name = display_name(&spec.name);
    sqlx::query(
        "INSERT INTO plans (id, code, name, max_users, max_storage_mb, max_backups, template, modules,
                            trial_days, created_automatically)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, true)",
    )
    .bind(id)
    .bind(&code)
    .bind(&name)
    .bind(MAX_USERS)
    .bind(MAX_STORAGE_MB)
    .bind(MAX_BACKUPS)
    .bind(&spec.name)
    .bind(&spec.modules)
    .bind(TRIAL_DAYS)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE seeded_template_plans SET plan_id = $2 WHERE template = $1")
        .bind(&spec.name)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        &audit::Entry {
            actor: "system:worker",
            action: "plan.create",
            target: Some(format!("plan:{id}")),
            address: None,
            details: serde_json::json!({
                "code": code,
                "name": name,
                "template": spec.name,
                "created_automatically": true,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Some(SeededPlan {
        template: spec.name.clone(),
        plan_id: id,
        code,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_fit_the_plan_rules() {
        assert_eq!(display_name("basic"), "Basic");
        assert_eq!(display_name("sales_crm"), "Sales crm");
        let codes = candidate_codes("x");
        assert_eq!(codes[0], "x-plan");
        assert_eq!(candidate_codes("__")[0], "plan");
        assert_eq!(candidate_codes("_crm")[0], "crm");
        let long = "a".repeat(40);
        for code in candidate_codes(&long)
            .iter()
            .chain(&codes)
            .chain(&candidate_codes("_"))
        {
            assert!((2..=40).contains(&code.len()), "{code}");
            assert!(code.as_bytes()[0].is_ascii_alphanumeric(), "{code}");
            assert!(
                code.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'_'
                    || b == b'-'),
                "{code}"
            );
        }
    }
}
