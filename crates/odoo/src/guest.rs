//! Throw-away "guest" roles: the only PostgreSQL identity that runs SQL a
//! customer wrote, or reads anything inside a database a customer filled.
//! A customer's database can hold views, triggers, rules and operators that
//! run whenever someone touches them, with the rights of whoever does; a
//! guest has no rights worth having (no attributes, no memberships, CONNECT
//! only where the platform granted it, one session at a time), so whatever
//! fires, fires harmlessly. The platform's superuser session only does DDL
//! around it: CREATE/ALTER/DROP ROLE, GRANT, REASSIGN OWNED, DROP OWNED.
//!
//! A guest's name carries the time by which its maker promised to drop it,
//! `saas_guest_<unix seconds>_<random>`, so `drop_leftover_guests` can tell
//! the roles of a crashed worker from those still at work.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use rand::Rng as _;
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::{Connection as _, Executor as _, PgConnection};

use crate::error::{OdooError, Result};
use crate::ident::{check_db_name, quoted};
use crate::scram::scram_verifier;
use crate::server::OdooServer;

/// Prefix of every guest role's name.
pub const GUEST_PREFIX: &str = "saas_guest_";
/// Time given to a guest's maker, beyond the work itself, to drop it.
const FINISH_GRACE: Duration = Duration::from_secs(10 * 60);
/// How long a guest may log in at all, whatever the work.
const LOGIN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Limit of each statement of the platform's own guest sessions (not psql's):
/// a customer's view that sleeps must not hold a worker.
const STATEMENT_TIMEOUT: &str = "60s";
/// Work and temporary files of a guest that only reads.
const READ_TIME: Duration = Duration::from_secs(5 * 60);
const READ_TEMP_FILES: u64 = 1 << 30;
/// Length of the random part of a guest's name.
pub(crate) const RANDOM_LEN: usize = 12;

/// A guest role made by this process; [`Guest::finish`] drops it.
pub(crate) struct Guest {
    name: String,
    password: SecretString,
    temp_file_kb: u64,
}

impl Guest {
    /// `CREATE ROLE saas_guest_... LOGIN NOSUPERUSER ...` for `work` (how long its
    /// maker needs it) with temporary files bounded by `temp_file_bytes`;
    /// `purpose` and `db` go into its comment, for operators.
    pub(crate) async fn create(
        admin: &mut PgConnection,
        purpose: &str,
        db: &str,
        work: Duration,
        temp_file_bytes: u64,
    ) -> Result<Guest> {
        check_db_name(db)?;
        let now = Utc::now();
        let span = |d: Duration| {
            TimeDelta::from_std(d).map_err(|_| OdooError::invalid("guest lifetime", "too long"))
        };
        let deadline = now + span(work)? + span(FINISH_GRACE)?;
        let valid_until = now + span(LOGIN_LIFETIME.max(work + FINISH_GRACE))?;
        let name = format!(
            "{GUEST_PREFIX}{}_{}",
            deadline.timestamp(),
            random_text(RANDOM_LEN, b"abcdefghijklmnopqrstuvwxyz0123456789")
        );
        let guest = Guest {
            password: SecretString::from(random_password()),
            name,
            temp_file_kb: (temp_file_bytes / 1024).clamp(1024, i32::MAX as u64),
        };
        admin
            .execute(
                format!(
                    "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT \
                     NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 1 PASSWORD '{}' VALID UNTIL '{}'",
                    quoted(&guest.name),
                    scram_verifier(guest.password.expose_secret()),
                    valid_until.format("%Y-%m-%d %H:%M:%S+00")
                )
                .as_str(),
            )
            .await?;
        // temp_file_limit is superuser-only: the guest cannot lift it.
        let setup = format!(
            "ALTER ROLE {name} SET temp_file_limit = {temp_kb}; \
             COMMENT ON ROLE {name} IS 'odoo-saas guest: {purpose} {db}'",
            name = quoted(&guest.name),
            temp_kb = guest.temp_file_kb,
            purpose = purpose.replace('\'', "")
        );
        if let Err(e) = admin.execute(setup.as_str()).await {
            let _ = admin
                .execute(format!("DROP ROLE IF EXISTS {}", quoted(&guest.name)).as_str())
                .await;
            return Err(e.into());
        }
        Ok(guest)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// A session as the guest on `db`: the cluster of `server.pg_url`, the
    /// guest's name and password, `search_path` = public and a statement
    /// timeout set at start-up (where the database's own settings cannot undo
    /// them).
    pub(crate) async fn connect(&self, server: &OdooServer, db: &str) -> Result<PgConnection> {
        let options = server
            .options_as(&self.name, self.password.expose_secret(), db)?
            .application_name("saas-odoo-guest")
            .options([
                ("search_path", "public"),
                ("statement_timeout", STATEMENT_TIMEOUT),
            ]);
        // One session at a time (CONNECTION LIMIT 1): a session that just ended
        // may hold its slot a moment longer; and the cluster may be full.
        crate::too_many_clients::connect("connecting as a guest", server.slot_wait, &options).await
    }

    /// The whole environment of a psql that runs as the guest on `db`: where
    /// the cluster is, who the guest is, nothing else.
    pub(crate) fn psql_env(
        &self,
        server: &OdooServer,
        db: &str,
    ) -> Result<Vec<(&'static str, String)>> {
        check_db_name(db)?;
        let mut env = server.libpq_location()?;
        env.extend([
            ("PGUSER", self.name.clone()),
            ("PGPASSWORD", self.password.expose_secret().to_owned()),
            ("PGDATABASE", db.to_owned()),
            ("PGAPPNAME", "saas-odoo-restore".to_owned()),
        ]);
        Ok(env)
    }

    /// `GRANT CONNECT ON DATABASE db`: the one database the guest works in.
    pub(crate) async fn grant_connect(&self, admin: &mut PgConnection, db: &str) -> Result<()> {
        check_db_name(db)?;
        admin
            .execute(
                format!(
                    "GRANT CONNECT ON DATABASE {} TO {}",
                    quoted(db),
                    quoted(&self.name)
                )
                .as_str(),
            )
            .await?;
        Ok(())
    }

    /// `GRANT SELECT` on those of `public.<tables>` that exist in `db`.
    pub(crate) async fn grant_select(
        &self,
        server: &OdooServer,
        db: &str,
        tables: &[&str],
    ) -> Result<()> {
        let mut conn = server.connect_db_for_ddl(db).await?;
        let existing: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relname = ANY($1)",
        )
        .bind(tables.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>())
        .fetch_all(&mut conn)
        .await?;
        let mut sql = format!("GRANT USAGE ON SCHEMA public TO {};", quoted(&self.name));
        for table in existing {
            sql.push_str(&format!(
                "GRANT SELECT ON TABLE public.{} TO {};",
                quoted(&table),
                quoted(&self.name)
            ));
        }
        conn.execute(sql.as_str()).await?;
        let _ = conn.close().await;
        Ok(())
    }

    /// A new password, only the platform's own role settings, and every session
    /// of the guest ended: whatever the customer's SQL in database `db` learned
    /// or set (any role may `ALTER ROLE CURRENT_USER PASSWORD` or `SET` its own
    /// defaults) is worthless from here on.
    pub(crate) async fn lock_out(&mut self, admin: &mut PgConnection, db: &str) -> Result<()> {
        check_db_name(db)?;
        self.password = SecretString::from(random_password());
        admin
            .execute(
                format!(
                    "ALTER ROLE {name} PASSWORD '{verifier}'; \
                     ALTER ROLE {name} RESET ALL; \
                     ALTER ROLE {name} IN DATABASE {db} RESET ALL; \
                     ALTER ROLE {name} SET temp_file_limit = {temp_kb}",
                    name = quoted(&self.name),
                    verifier = scram_verifier(self.password.expose_secret()),
                    db = quoted(db),
                    temp_kb = self.temp_file_kb
                )
                .as_str(),
            )
            .await?;
        end_sessions(admin, &self.name).await
    }

    /// Drops the guest: what it owns anywhere goes to the Odoo role, its grants
    /// are revoked, then the role. Safe to call again.
    pub(crate) async fn finish(&self, server: &OdooServer, admin: &mut PgConnection) -> Result<()> {
        drop_guest(server, admin, &self.name).await
    }
}

/// Runs `read` on a session to `db` as a fresh guest that may only SELECT
/// those of `public.<tables>` that exist, then drops the guest (also when
/// `read` failed). The database's answers to `read` that are errors (a view
/// or policy of a customer's dump may raise anything) become
/// [`OdooError::GuestQueryFailed`] for `step`.
pub(crate) async fn read_as_guest<T>(
    server: &OdooServer,
    db: &str,
    tables: &[&str],
    step: &'static str,
    read: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
) -> Result<T> {
    let mut admin = server.connect_admin().await?;
    let guest = Guest::create(&mut admin, "read", db, READ_TIME, READ_TEMP_FILES).await?;
    let result = async {
        guest.grant_connect(&mut admin, db).await?;
        guest.grant_select(server, db, tables).await?;
        let mut conn = guest.connect(server, db).await?;
        let value = read(&mut conn).await.map_err(|e| e.in_guest(step));
        let _ = conn.close().await;
        value
    }
    .await;
    let finished = guest.finish(server, &mut admin).await;
    let value = result?;
    finished?;
    Ok(value)
}

/// Ends the guest's sessions, then in every database where it owns or was
/// granted something: `REASSIGN OWNED BY guest TO <odoo role>; DROP OWNED BY
/// guest`; then the same for shared objects and `DROP ROLE`.
pub(crate) async fn drop_guest(
    server: &OdooServer,
    admin: &mut PgConnection,
    name: &str,
) -> Result<()> {
    end_sessions(admin, name).await?;
    let databases: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT d.datname::text FROM pg_catalog.pg_shdepend s \
         JOIN pg_catalog.pg_database d ON d.oid = s.dbid \
         JOIN pg_catalog.pg_roles r ON r.oid = s.refobjid \
         WHERE s.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass AND r.rolname = $1",
    )
    .bind(name)
    .fetch_all(&mut *admin)
    .await?;
    let cleanup = format!(
        "REASSIGN OWNED BY {guest} TO {odoo}; DROP OWNED BY {guest}",
        guest = quoted(name),
        odoo = quoted(&server.odoo_db_role)
    );
    for db in databases {
        let mut conn = server.connect_db_for_ddl(&db).await?;
        conn.execute(cleanup.as_str()).await?;
        let _ = conn.close().await;
    }
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)")
            .bind(name)
            .fetch_one(&mut *admin)
            .await?;
    if exists {
        // Shared objects (a database it owns, its CONNECT grants) are
        // handled from any database.
        admin.execute(cleanup.as_str()).await?;
        admin
            .execute(format!("DROP ROLE IF EXISTS {}", quoted(name)).as_str())
            .await?;
    }
    Ok(())
}

/// Terminates every session of role `name` and waits (up to 5 s each) until
/// they are gone.
async fn end_sessions(admin: &mut PgConnection, name: &str) -> Result<()> {
    sqlx::query(
        "SELECT pg_catalog.pg_terminate_backend(pid, 5000) FROM pg_catalog.pg_stat_activity \
         WHERE usename = $1",
    )
    .bind(name)
    .execute(admin)
    .await?;
    Ok(())
}

fn random_password() -> String {
    random_text(
        40,
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    )
}

fn random_text(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_and_random() {
        let a = random_password();
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, random_password());
    }
}
