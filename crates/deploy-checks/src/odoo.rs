//! What Odoo 18 accepts, as data: the options of its configuration file and
//! the flags of its command line.
//!
//! Source: Odoo 18.0 (`version_info = (18, 0, 0, FINAL, 0, '')`),
//! `odoo/tools/config.py`: the `dest` of every option `configmanager`
//! declares with `add_option` (the POSIX-only multi-process ones included),
//! plus the configuration-file-only options its constructor sets up
//! (`admin_passwd`, `csv_internal_sep`, `publisher_warranty_url`,
//! `reportgz`, `websocket_*`). Odoo reads any key of `[options]` without
//! complaint, so a misspelt option is silently ignored: that is what the
//! check against this list catches. Options that only some module reads
//! with `config.get(...)` are not listed; add one here with its source when
//! `odoo.conf` needs it. Deprecated aliases (`xmlrpc_port`, `xmlrpc_interface`,
//! `xmlrpc`, `geoip_database`, `osv_memory_age_limit`) are left out on purpose.

/// How Odoo parses an option's value from the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `True`/`False` (`true`/`false`): store_true/store_false options.
    Bool,
    /// optparse `int`.
    Int,
    /// optparse `float`.
    Float,
    /// optparse `choice`: one of these.
    Choice(&'static [&'static str]),
    /// Anything (paths, lists, regular expressions, strings).
    Text,
}

const LOG_LEVELS: &[&str] = &[
    "info",
    "debug_rpc",
    "warn",
    "test",
    "critical",
    "runbot",
    "debug_sql",
    "error",
    "debug",
    "debug_rpc_answer",
    "notset",
];
const SSL_MODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// Every `[options]` key of an Odoo 18 configuration file, with its kind.
pub const CONFIG_OPTIONS: &[(&str, Kind)] = &[
    // configuration file only
    ("admin_passwd", Kind::Text),
    ("csv_internal_sep", Kind::Text),
    ("publisher_warranty_url", Kind::Text),
    ("reportgz", Kind::Bool),
    ("websocket_keep_alive_timeout", Kind::Int),
    ("websocket_rate_limit_burst", Kind::Int),
    ("websocket_rate_limit_delay", Kind::Float),
    // common
    ("config", Kind::Text),
    ("save", Kind::Bool),
    ("init", Kind::Text),
    ("update", Kind::Text),
    ("without_demo", Kind::Text),
    ("import_partial", Kind::Text),
    ("pidfile", Kind::Text),
    ("addons_path", Kind::Text),
    ("upgrade_path", Kind::Text),
    ("pre_upgrade_scripts", Kind::Text),
    ("server_wide_modules", Kind::Text),
    ("data_dir", Kind::Text),
    // HTTP
    ("http_interface", Kind::Text),
    ("http_port", Kind::Int),
    ("gevent_port", Kind::Int),
    ("http_enable", Kind::Bool),
    ("proxy_mode", Kind::Bool),
    ("x_sendfile", Kind::Bool),
    // web
    ("dbfilter", Kind::Text),
    // testing
    ("test_file", Kind::Text),
    ("test_enable", Kind::Bool),
    ("test_tags", Kind::Text),
    ("screencasts", Kind::Text),
    ("screenshots", Kind::Text),
    // logging
    ("logfile", Kind::Text),
    ("syslog", Kind::Bool),
    ("log_handler", Kind::Text),
    ("log_db", Kind::Text),
    ("log_db_level", Kind::Text),
    ("log_level", Kind::Choice(LOG_LEVELS)),
    // SMTP
    ("email_from", Kind::Text),
    ("from_filter", Kind::Text),
    ("smtp_server", Kind::Text),
    ("smtp_port", Kind::Int),
    ("smtp_ssl", Kind::Bool),
    ("smtp_user", Kind::Text),
    ("smtp_password", Kind::Text),
    ("smtp_ssl_certificate_filename", Kind::Text),
    ("smtp_ssl_private_key_filename", Kind::Text),
    // database
    ("db_name", Kind::Text),
    ("db_user", Kind::Text),
    ("db_password", Kind::Text),
    ("pg_path", Kind::Text),
    ("db_host", Kind::Text),
    ("db_replica_host", Kind::Text),
    ("db_port", Kind::Int),
    ("db_replica_port", Kind::Int),
    ("db_sslmode", Kind::Choice(SSL_MODES)),
    ("db_maxconn", Kind::Int),
    ("db_maxconn_gevent", Kind::Int),
    ("db_template", Kind::Text),
    // internationalisation
    ("load_language", Kind::Text),
    ("language", Kind::Text),
    ("translate_out", Kind::Text),
    ("translate_in", Kind::Text),
    ("overwrite_existing_translations", Kind::Bool),
    ("translate_modules", Kind::Text),
    // security
    ("list_db", Kind::Bool),
    // advanced
    ("dev_mode", Kind::Text),
    ("shell_interface", Kind::Text),
    ("stop_after_init", Kind::Bool),
    ("osv_memory_count_limit", Kind::Int),
    ("transient_age_limit", Kind::Float),
    ("max_cron_threads", Kind::Int),
    ("limit_time_worker_cron", Kind::Int),
    ("unaccent", Kind::Bool),
    ("geoip_city_db", Kind::Text),
    ("geoip_country_db", Kind::Text),
    // multiprocessing (POSIX)
    ("workers", Kind::Int),
    ("limit_memory_soft", Kind::Int),
    ("limit_memory_soft_gevent", Kind::Int),
    ("limit_memory_hard", Kind::Int),
    ("limit_memory_hard_gevent", Kind::Int),
    ("limit_time_cpu", Kind::Int),
    ("limit_time_real", Kind::Int),
    ("limit_time_real_cron", Kind::Int),
    ("limit_request", Kind::Int),
];

/// Every long command-line flag of Odoo 18's server (same source).
pub const COMMAND_LINE_FLAGS: &[&str] = &[
    "--config",
    "--save",
    "--init",
    "--update",
    "--without-demo",
    "--import-partial",
    "--pidfile",
    "--addons-path",
    "--upgrade-path",
    "--pre-upgrade-scripts",
    "--load",
    "--data-dir",
    "--http-interface",
    "--http-port",
    "--gevent-port",
    "--no-http",
    "--proxy-mode",
    "--x-sendfile",
    "--db-filter",
    "--test-file",
    "--test-enable",
    "--test-tags",
    "--screencasts",
    "--screenshots",
    "--logfile",
    "--syslog",
    "--log-handler",
    "--log-web",
    "--log-sql",
    "--log-db",
    "--log-db-level",
    "--log-level",
    "--email-from",
    "--from-filter",
    "--smtp",
    "--smtp-port",
    "--smtp-ssl",
    "--smtp-user",
    "--smtp-password",
    "--smtp-ssl-certificate-filename",
    "--smtp-ssl-private-key-filename",
    "--database",
    "--db_user",
    "--db_password",
    "--pg_path",
    "--db_host",
    "--db_replica_host",
    "--db_port",
    "--db_replica_port",
    "--db_sslmode",
    "--db_maxconn",
    "--db_maxconn_gevent",
    "--db-template",
    "--load-language",
    "--language",
    "--i18n-export",
    "--i18n-import",
    "--i18n-overwrite",
    "--modules",
    "--no-database-list",
    "--dev",
    "--shell-interface",
    "--stop-after-init",
    "--osv-memory-count-limit",
    "--transient-age-limit",
    "--max-cron-threads",
    "--limit-time-worker-cron",
    "--unaccent",
    "--geoip-city-db",
    "--geoip-db",
    "--geoip-country-db",
    "--workers",
    "--limit-memory-soft",
    "--limit-memory-soft-gevent",
    "--limit-memory-hard",
    "--limit-memory-hard-gevent",
    "--limit-time-cpu",
    "--limit-time-real",
    "--limit-time-real-cron",
    "--limit-request",
];

/// The kind of `option`, or `None` when Odoo 18 has no such option.
pub fn config_option(option: &str) -> Option<Kind> {
    CONFIG_OPTIONS
        .iter()
        .find(|(name, _)| *name == option)
        .map(|(_, kind)| *kind)
}

/// Whether `value` is what Odoo makes of an option of `kind`; an empty
/// value or `False` unsets any option.
pub fn accepts(kind: Kind, value: &str) -> bool {
    if value.is_empty() || value == "False" || value == "false" {
        return true;
    }
    match kind {
        Kind::Bool => matches!(value, "True" | "true"),
        Kind::Int => value.parse::<i64>().is_ok(),
        Kind::Float => value.parse::<f64>().is_ok(),
        Kind::Choice(choices) => choices.contains(&value),
        Kind::Text => true,
    }
}

/// The `[section]`s of an INI file as Python's `RawConfigParser` reads
/// them (`;`/`#` comments, `key = value`), in order.
pub fn parse_ini(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push((name.to_owned(), Vec::new()));
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .or_else(|| line.split_once(':'))
            .unwrap_or_else(|| panic!("line {}: not key = value: {line}", number + 1));
        let section = sections
            .last_mut()
            .unwrap_or_else(|| panic!("line {}: {line} before any [section]", number + 1));
        section
            .1
            .push((key.trim().to_lowercase(), value.trim().to_owned()));
    }
    sections
}
