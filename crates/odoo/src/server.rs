//! An Odoo server as the data plane sees it: the PostgreSQL cluster holding its
//! databases, the role Odoo connects as, its filestore and its internal URL.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use secrecy::{ExposeSecret as _, SecretString};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, PgConnection};
use url::Url;

use crate::error::{OdooError, Result};
use crate::ident::{check_db_name, check_role};
use crate::too_many_clients::{self, SlotWait};

/// Connection facts of one Odoo server (a row of the platform's `servers` table).
#[derive(Clone, Debug)]
pub struct OdooServer {
    /// `postgres://user:pass@host:port/maintenance_db` of the cluster holding the
    /// tenant databases. The user must be able to create databases owned by
    /// `odoo_db_role`, terminate other sessions and use `DROP DATABASE ... WITH
    /// (FORCE)`: in practice a superuser of that cluster.
    pub pg_url: SecretString,
    /// The role Odoo connects as; it owns every tenant database (Odoo only serves
    /// databases its own role owns).
    pub odoo_db_role: String,
    /// The directory holding one filestore directory per database, i.e. Odoo's
    /// `<data_dir>/filestore` (the platform's `servers.filestore_root`).
    pub filestore_root: PathBuf,
    /// Odoo's internal URL, e.g. `http://odoo:8069`, used for the health probe.
    pub odoo_url: Url,
    /// How the platform's sessions wait for a connection slot when the
    /// cluster has none free (see `too_many_clients`).
    pub slot_wait: SlotWait,
}

impl OdooServer {
    /// Checks the role name and the PostgreSQL URL once.
    pub fn new(
        pg_url: SecretString,
        odoo_db_role: impl Into<String>,
        filestore_root: impl Into<PathBuf>,
        odoo_url: Url,
    ) -> Result<Self> {
        let server = Self {
            pg_url,
            odoo_db_role: odoo_db_role.into(),
            filestore_root: filestore_root.into(),
            odoo_url,
            slot_wait: SlotWait::default(),
        };
        check_role(&server.odoo_db_role)?;
        server.parsed_url()?;
        Ok(server)
    }

    fn parsed_url(&self) -> Result<Url> {
        let url = Url::parse(self.pg_url.expose_secret())
            .map_err(|e| OdooError::invalid("PostgreSQL URL", e.to_string()))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(OdooError::invalid(
                "PostgreSQL URL",
                "scheme must be postgres:// or postgresql://",
            ));
        }
        Ok(url)
    }

    fn options(&self) -> Result<PgConnectOptions> {
        let options = PgConnectOptions::from_str(self.pg_url.expose_secret())
            .map_err(|e| OdooError::invalid("PostgreSQL URL", e.to_string()))?;
        Ok(options
            .application_name("saas-odoo")
            .log_statements(tracing::log::LevelFilter::Debug))
    }

    /// A connection to the maintenance database named in `pg_url`.
    pub async fn connect_admin(&self) -> Result<PgConnection> {
        too_many_clients::connect(
            "connecting to the cluster",
            self.slot_wait,
            &self.options()?,
        )
        .await
    }

    /// A connection (as the platform's user) to database `db`.
    pub async fn connect_db(&self, db: &str) -> Result<PgConnection> {
        check_db_name(db)?;
        let options = self.options()?.database(db);
        too_many_clients::connect("connecting to a database", self.slot_wait, &options).await
    }

    /// A connection as the platform's user to database `db`, which a customer
    /// may have filled, for the platform's own DDL there (REASSIGN, DROP OWNED,
    /// GRANT) and catalog reads. `search_path` is only `pg_catalog`, set at
    /// start-up (which beats any `ALTER DATABASE ... SET` inside), so no name
    /// can resolve to a customer's object.
    pub(crate) async fn connect_db_for_ddl(&self, db: &str) -> Result<PgConnection> {
        check_db_name(db)?;
        let options = self
            .options()?
            .database(db)
            .options([("search_path", "pg_catalog")]);
        too_many_clients::connect("connecting to a database", self.slot_wait, &options).await
    }

    /// Connection options for role `user` with `password` on database `db`:
    /// host, port and TLS of `pg_url`, nothing of its user or password.
    pub(crate) fn options_as(
        &self,
        user: &str,
        password: &str,
        db: &str,
    ) -> Result<PgConnectOptions> {
        check_db_name(db)?;
        Ok(self
            .options()?
            .username(user)
            .password(password)
            .database(db))
    }

    /// Where database `db` keeps its files: `<filestore_root>/<db>`.
    pub fn filestore_dir(&self, db: &str) -> Result<PathBuf> {
        check_db_name(db)?;
        Ok(self.filestore_root.join(db))
    }

    /// `PG*` environment for `pg_dump`/`psql` on database `db` (the password never
    /// appears on a command line).
    pub(crate) fn libpq_env(&self, db: &str) -> Result<Vec<(&'static str, String)>> {
        check_db_name(db)?;
        let url = self.parsed_url()?;
        let mut env = vec![("PGDATABASE", db.to_owned())];
        if let Some(host) = url.host_str() {
            env.push(("PGHOST", host.trim_matches(['[', ']']).to_owned()));
        }
        if let Some(port) = url.port() {
            env.push(("PGPORT", port.to_string()));
        }
        if !url.username().is_empty() {
            env.push(("PGUSER", decode(url.username())));
        }
        if let Some(password) = url.password() {
            env.push(("PGPASSWORD", decode(password)));
        }
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "sslmode" => env.push(("PGSSLMODE", value.into_owned())),
                "host" => env.push(("PGHOST", value.into_owned())),
                "port" => env.push(("PGPORT", value.into_owned())),
                "user" => env.push(("PGUSER", value.into_owned())),
                _ => {}
            }
        }
        Ok(env)
    }

    /// `PGHOST`, `PGPORT` and `PGSSLMODE` of `pg_url`: where the cluster is,
    /// without whom to connect as.
    pub(crate) fn libpq_location(&self) -> Result<Vec<(&'static str, String)>> {
        // Any valid name will do: only the location entries are kept.
        Ok(self
            .libpq_env("postgres")?
            .into_iter()
            .filter(|(key, _)| matches!(*key, "PGHOST" | "PGPORT" | "PGSSLMODE"))
            .collect())
    }

    pub(crate) fn staging_path(&self, kind: &str, db: &str) -> PathBuf {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        self.filestore_root
            .join(format!(".saas-{kind}-{db}-{}", &suffix[..12]))
    }

    pub(crate) fn root(&self) -> &Path {
        &self.filestore_root
    }
}

fn decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_env_from_url() -> anyhow::Result<()> {
        let server = OdooServer::new(
            SecretString::from(
                "postgres://admin:p%40ss+w@db.internal:6543/postgres?sslmode=require",
            ),
            "odoo",
            "/var/lib/odoo/filestore",
            Url::parse("http://odoo:8069")?,
        )?;
        let env = server.libpq_env("acme")?;
        let get = |k: &str| {
            env.iter()
                .rev()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("PGHOST"), Some("db.internal"));
        assert_eq!(get("PGPORT"), Some("6543"));
        assert_eq!(get("PGUSER"), Some("admin"));
        assert_eq!(get("PGPASSWORD"), Some("p@ss+w"));
        assert_eq!(get("PGDATABASE"), Some("acme"));
        assert_eq!(get("PGSSLMODE"), Some("require"));
        assert_eq!(
            server.filestore_dir("acme")?,
            PathBuf::from("/var/lib/odoo/filestore/acme")
        );
        assert!(server.filestore_dir("../etc").is_err());
        assert!(server.libpq_env("a;b").is_err());
        Ok(())
    }

    #[test]
    fn rejects_bad_role_and_url() -> anyhow::Result<()> {
        let odoo = Url::parse("http://odoo:8069")?;
        assert!(
            OdooServer::new(
                SecretString::from("postgres://x@h/db"),
                "od;oo",
                "/x",
                odoo.clone()
            )
            .is_err()
        );
        assert!(OdooServer::new(SecretString::from("mysql://x@h/db"), "odoo", "/x", odoo).is_err());
        Ok(())
    }
}
