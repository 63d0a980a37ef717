//! The attacks: each one is appended to (or put before) the Odoo 18 fixture
//! in a backup's `dump.sql`. Placeholders: `{DIR}` a directory the attacks
//! try to create files in (writable by everyone, so a successful attack
//! would leave one), `{FILE}` a file in it named for the payload, `{ROLE}`
//! the Odoo role, `{NEIGHBOUR}` another tenant's database, `{PLATFORM}` a
//! platform database, `{EVIL}` a prefix for roles and databases the attacks
//! try to create.

/// What a payload must lead to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The line filter refuses it before psql sees it (`UnsafeDump`).
    Refused,
    /// The restore fails (psql, PostgreSQL or the platform's checks say no).
    Fails,
    /// The restore succeeds; the attack did nothing outside the database.
    Succeeds,
}

pub struct Payload {
    pub name: &'static str,
    pub expect: Expect,
    /// Put before the fixture instead of after it.
    pub first: bool,
    pub sql: String,
}

fn p(name: &'static str, expect: Expect, sql: &str) -> Payload {
    Payload {
        name,
        expect,
        first: false,
        sql: sql.to_owned(),
    }
}

/// Logs who ran it (when it may write) and tries what a superuser could do.
const TROJAN_BODY: &str = r#"
  BEGIN INSERT INTO trojan_log VALUES (current_user, session_user); EXCEPTION WHEN OTHERS THEN NULL; END;
  BEGIN EXECUTE 'ALTER ROLE {ROLE} SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
  BEGIN EXECUTE 'ALTER ROLE {ROLE} PASSWORD ''pwned'''; EXCEPTION WHEN OTHERS THEN NULL; END;
  BEGIN EXECUTE 'CREATE ROLE {EVIL}_trojan SUPERUSER LOGIN'; EXCEPTION WHEN OTHERS THEN NULL; END;
  BEGIN EXECUTE $x$COPY (SELECT 1) TO PROGRAM 'touch {FILE}'$x$; EXCEPTION WHEN OTHERS THEN NULL; END;
  BEGIN EXECUTE $x$COPY (SELECT 1) TO '{FILE}.copy'$x$; EXCEPTION WHEN OTHERS THEN NULL; END;
"#;

fn trojan_function(returns: &str, result: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS trojan_log (who text, session text);\n\
         GRANT INSERT ON trojan_log TO PUBLIC;\n\
         CREATE FUNCTION trojan() RETURNS {returns} LANGUAGE plpgsql AS $$\nBEGIN{TROJAN_BODY}  RETURN {result};\nEND $$;\n"
    )
}

pub fn all() -> Vec<Payload> {
    use Expect::*;
    let mut list = vec![
        p(
            "set_role_postgres",
            Fails,
            "SET ROLE postgres;\nCREATE ROLE {EVIL}_a SUPERUSER;\n",
        ),
        p(
            "set_role_none",
            Fails,
            "SET ROLE NONE;\nCREATE ROLE {EVIL}_b;\n",
        ),
        p(
            "reset_role",
            Fails,
            "RESET ROLE;\nALTER ROLE {ROLE} SUPERUSER;\n",
        ),
        p(
            "session_authorization",
            Fails,
            "SET SESSION AUTHORIZATION postgres;\nALTER ROLE {ROLE} SUPERUSER;\n",
        ),
        p(
            "set_role_server_program",
            Fails,
            "SET ROLE pg_execute_server_program;\nCOPY (SELECT 1) TO PROGRAM 'touch {FILE}';\n",
        ),
        p("shell", Refused, "\\! touch {FILE}\n"),
        Payload {
            first: true,
            ..p("shell_on_the_first_line", Refused, "\\! touch {FILE}")
        },
        p(
            "connect_platform",
            Refused,
            "\\c {PLATFORM}\nUPDATE canary SET v = 'pwned';\n",
        ),
        p(
            "connect_neighbour",
            Refused,
            "\\connect {NEIGHBOUR}\nUPDATE canary SET v = 'pwned';\n",
        ),
        p("output_to_file", Refused, "\\o {FILE}\nSELECT 1;\n"),
        p("client_copy", Refused, "\\copy (SELECT 1) to '{FILE}'\n"),
        p(
            "gexec_line",
            Refused,
            "SELECT 'ALTER ROLE {ROLE} SUPERUSER'\n\\gexec\n",
        ),
        p(
            "gexec_mid_line",
            Fails,
            "SELECT 'ALTER ROLE {ROLE} SUPERUSER' \\gexec\n",
        ),
        p(
            "set_variable",
            Refused,
            "\\set evil 'ALTER ROLE {ROLE} SUPERUSER'\n:evil;\n",
        ),
        p("shell_mid_line", Fails, "SELECT 1; \\! touch {FILE}\n"),
        p(
            "shell_after_copy_data",
            Refused,
            "CREATE TABLE evil_copy (a text);\nCOPY public.evil_copy (a) FROM stdin;\n\\N\nrow\n\\.\n\\! touch {FILE}\n",
        ),
        p(
            "commands_inside_copy_data_are_data",
            Succeeds,
            "CREATE TABLE evil_copy (a text);\nCOPY public.evil_copy (a) FROM stdin;\n\\! touch {FILE}\n\\c {PLATFORM}\n\\.\nSELECT 1;\n",
        ),
        p(
            "copy_look_alike_in_a_string",
            Fails,
            "SELECT $$\nCOPY evil FROM stdin;\n$$;\n\\! touch {FILE}\n",
        ),
        p(
            "restrict_lines_of_the_dump",
            Succeeds,
            "\\unrestrict guessed-key\nSELECT 1;\n\\restrict another-key\nSELECT 2;\n",
        ),
        p(
            "copy_to_program",
            Fails,
            "COPY (SELECT 1) TO PROGRAM 'touch {FILE}';\n",
        ),
        p(
            "copy_from_program",
            Fails,
            "CREATE TABLE evil_prog (a text);\nCOPY evil_prog FROM PROGRAM 'touch {FILE}';\n",
        ),
        p(
            "copy_to_server_file",
            Fails,
            "COPY (SELECT 1) TO '{FILE}';\n",
        ),
        p(
            "copy_to_stdout",
            Succeeds,
            "COPY (SELECT datname FROM pg_database) TO STDOUT;\n",
        ),
        p("lo_import", Fails, "SELECT lo_import('/etc/passwd');\n"),
        p(
            "lo_export",
            Fails,
            "SELECT lo_export(lo_create(0), '{FILE}');\n",
        ),
        p(
            "pg_read_file",
            Fails,
            "SELECT pg_read_file('/etc/passwd');\n",
        ),
        p(
            "create_role",
            Fails,
            "CREATE ROLE {EVIL}_c SUPERUSER LOGIN PASSWORD 'x';\n",
        ),
        p(
            "alter_odoo_role_password",
            Fails,
            "ALTER ROLE {ROLE} PASSWORD 'pwned';\n",
        ),
        p(
            "alter_odoo_role_set",
            Fails,
            "ALTER ROLE {ROLE} SET search_path = evil;\n",
        ),
        p(
            "alter_all_roles_set",
            Fails,
            "ALTER ROLE ALL SET log_statement = 'none';\n",
        ),
        p("grant_odoo_role", Fails, "GRANT {ROLE} TO CURRENT_USER;\n"),
        p(
            // The platform database: a warning, nothing granted; the
            // neighbour, closed to PUBLIC, refuses outright.
            "grant_on_platform_database",
            Fails,
            "GRANT ALL ON DATABASE {PLATFORM} TO PUBLIC;\nGRANT CONNECT ON DATABASE {NEIGHBOUR} TO PUBLIC;\n",
        ),
        p(
            "dblink",
            Fails,
            "CREATE EXTENSION dblink;\nSELECT dblink_exec('dbname={PLATFORM}', 'UPDATE canary SET v = ''pwned''');\n",
        ),
        p("postgres_fdw", Fails, "CREATE EXTENSION postgres_fdw;\n"),
        p(
            "file_fdw",
            Fails,
            "CREATE EXTENSION file_fdw;\nCREATE SERVER files FOREIGN DATA WRAPPER file_fdw;\n",
        ),
        p("untrusted_language", Fails, "CREATE LANGUAGE plperlu;\n"),
        p(
            "event_trigger",
            Fails,
            "CREATE FUNCTION evil_et() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'ALTER ROLE {ROLE} SUPERUSER'; END $$;\n\
             CREATE EVENT TRIGGER evil_et ON ddl_command_start EXECUTE FUNCTION evil_et();\n",
        ),
        p(
            "alter_other_database",
            Fails,
            "ALTER DATABASE {NEIGHBOUR} CONNECTION LIMIT 0;\n",
        ),
        p(
            "rename_other_database",
            Fails,
            "ALTER DATABASE {NEIGHBOUR} RENAME TO {EVIL}_d;\n",
        ),
        p("drop_other_database", Fails, "DROP DATABASE {PLATFORM};\n"),
        p("create_database", Fails, "CREATE DATABASE {EVIL}_e;\n"),
        p(
            "own_database_given_away",
            Fails,
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I OWNER TO {ROLE}', current_database()); END $$;\n",
        ),
        p(
            "exception_with_foreign_names",
            Fails,
            "DO $$ BEGIN RAISE EXCEPTION 'leak: % / %', \
             (SELECT string_agg(datname, ',') FROM pg_database), \
             (SELECT string_agg(rolname, ',') FROM pg_roles); END $$;\n",
        ),
        p(
            "warning_spoofing_psql_output",
            Fails,
            "DO $$ BEGIN RAISE WARNING E'x\\npsql:<stdin>:1: ERROR:  42501: spoofed {NEIGHBOUR}'; \
             RAISE EXCEPTION 'boom %', (SELECT string_agg(datname, ',') FROM pg_database); END $$;\n",
        ),
        p(
            "alter_system",
            Fails,
            "ALTER SYSTEM SET log_statement = 'all';\n",
        ),
        p("load_library", Fails, "LOAD '/tmp/evil.so';\n"),
        p(
            "session_preload_libraries",
            Fails,
            "SET session_preload_libraries = 'evil';\n",
        ),
        p("checkpoint", Fails, "CHECKPOINT;\n"),
        p(
            "terminate_other_sessions",
            Fails,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid();\n",
        ),
        p(
            "guest_password_learned",
            Succeeds,
            "ALTER ROLE CURRENT_USER PASSWORD 'known-to-the-customer';\n",
        ),
        p(
            "guest_role_settings",
            Succeeds,
            "ALTER ROLE CURRENT_USER SET default_transaction_read_only = on;\n\
             DO $$ BEGIN EXECUTE format('ALTER ROLE CURRENT_USER IN DATABASE %I SET search_path = evil', current_database()); END $$;\n",
        ),
        p(
            "own_database_settings",
            Succeeds,
            "DO $$ BEGIN \
             EXECUTE format('ALTER DATABASE %I SET search_path = evil, public', current_database()); \
             EXECUTE format('ALTER DATABASE %I SET default_transaction_read_only = on', current_database()); \
             EXECUTE format('ALTER DATABASE %I CONNECTION LIMIT 0', current_database()); \
             END $$;\n",
        ),
        p(
            "own_database_as_template",
            Succeeds,
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I IS_TEMPLATE true', current_database()); END $$;\n",
        ),
        p(
            "security_definer_function",
            Fails,
            "CREATE FUNCTION evil_definer() RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN EXECUTE 'ALTER ROLE {ROLE} PASSWORD ''pwned'''; END $$;\n",
        ),
    ];
    list.extend(trojans());
    list.extend(very_long_lines());
    list
}

/// Objects aimed at the platform's later sessions: identity re-applied,
/// verification, usage, the backup's module list.
fn trojans() -> Vec<Payload> {
    use Expect::*;
    vec![
        Payload {
            name: "trojan_trigger_on_config_parameters",
            expect: Succeeds,
            first: false,
            sql: trojan_function("trigger", "NEW")
                + "CREATE TRIGGER trojan BEFORE INSERT OR UPDATE ON ir_config_parameter \
                   FOR EACH ROW EXECUTE FUNCTION trojan();\n",
        },
        p(
            "trojan_trigger_that_raises",
            Fails,
            "CREATE FUNCTION trojan() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN EXECUTE 'ALTER ROLE {ROLE} SUPERUSER'; RETURN NEW; END $$;\n\
             CREATE TRIGGER trojan BEFORE INSERT OR UPDATE ON ir_config_parameter \
             FOR EACH ROW EXECUTE FUNCTION trojan();\n",
        ),
        Payload {
            name: "trojan_view_as_res_users",
            expect: Succeeds,
            first: false,
            sql: trojan_function("boolean", "true")
                + "ALTER TABLE res_users RENAME TO res_users_data;\n\
                   CREATE VIEW res_users AS SELECT * FROM res_users_data WHERE trojan();\n",
        },
        Payload {
            name: "trojan_view_as_ir_module_module",
            expect: Succeeds,
            first: false,
            sql: trojan_function("boolean", "true")
                + "ALTER TABLE ir_module_module RENAME TO ir_module_module_data;\n\
                   CREATE VIEW ir_module_module AS SELECT * FROM ir_module_module_data WHERE trojan();\n",
        },
        Payload {
            name: "trojan_row_security_policy",
            expect: Succeeds,
            first: false,
            sql: trojan_function("boolean", "true")
                + "ALTER TABLE res_users ENABLE ROW LEVEL SECURITY;\n\
                   ALTER TABLE res_users FORCE ROW LEVEL SECURITY;\n\
                   CREATE POLICY trojan ON res_users USING (trojan());\n",
        },
        Payload {
            name: "trojan_policy_on_config_parameters",
            expect: Succeeds,
            first: false,
            sql: trojan_function("boolean", "true")
                + "ALTER TABLE ir_config_parameter ENABLE ROW LEVEL SECURITY;\n\
                   ALTER TABLE ir_config_parameter FORCE ROW LEVEL SECURITY;\n\
                   CREATE POLICY trojan ON ir_config_parameter USING (trojan()) WITH CHECK (trojan());\n",
        },
        // Quiet while the restore's guest (the owner) looks, loud for the
        // platform's later readers: the usage collection fails, and what the
        // customer reads of that failure must not quote the exception.
        p(
            "trojan_raising_for_later_readers",
            Succeeds,
            "CREATE TABLE trojan_log (who text, session text);\n\
             CREATE FUNCTION trojan() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN \
               IF current_user LIKE 'saas\\_guest\\_%' AND NOT pg_has_role(current_user, \
                  (SELECT relowner FROM pg_class WHERE relname = 'res_users_data'), 'USAGE') THEN \
                 RAISE EXCEPTION 'leak: %', (SELECT string_agg(datname, ',') FROM pg_database); \
               END IF; RETURN true; END $$;\n\
             ALTER TABLE res_users RENAME TO res_users_data;\n\
             CREATE VIEW res_users AS SELECT * FROM res_users_data WHERE trojan();\n",
        ),
        Payload {
            name: "trojan_operator_for_the_usage_query",
            expect: Succeeds,
            first: false,
            sql: trojan_function("boolean", "true")
                + "CREATE FUNCTION public.trojan_ne(character varying, text) RETURNS boolean \
                   LANGUAGE sql AS $$ SELECT trojan() AND $1::text <> $2 $$;\n\
                   CREATE OPERATOR public.<> (LEFTARG = character varying, RIGHTARG = text, FUNCTION = public.trojan_ne);\n",
        },
    ]
}

fn very_long_lines() -> Vec<Payload> {
    use Expect::*;
    vec![
        p(
            "very_long_line",
            Succeeds,
            &format!("SELECT length('{}') > 0;\n", "x".repeat(4 << 20)),
        ),
        p(
            "very_long_backslash_line",
            Refused,
            &format!("\\{}\n", "x".repeat(3 << 20)),
        ),
        p(
            "very_long_line_then_command",
            Refused,
            &format!("-- {}\n\\! touch {{FILE}}\n", "y".repeat(2 << 20)),
        ),
    ]
}
