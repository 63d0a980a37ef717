//! The shipped nginx configuration, laid out in a scratch prefix exactly as
//! the nginx image lays it out under /etc/nginx, with templates rendered the
//! way its entrypoint renders them, and upstreams on 127.0.0.1.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::scratch::{ScratchDir, copy_tree};
use crate::{repo_root, template};

pub const BASE_DOMAIN: &str = "saas.test";

/// Where nginx should send admin, portal and tenant websocket traffic.
pub struct Upstreams {
    pub admin: String,
    pub portal: String,
    pub odoo_websocket_port: u16,
}

pub struct NginxPrefix {
    pub scratch: ScratchDir,
    pub port: u16,
}

impl NginxPrefix {
    /// Lays out nginx/ in a scratch prefix listening on a free loopback port.
    pub fn new(upstreams: &Upstreams) -> Self {
        let port = crate::free_port();
        // ROUTING_MAP_DIR is replaced by the prefix's own directory.
        Self::with_vars(template_vars(upstreams, port, ""))
    }

    /// Lays out nginx/ with the templates rendered from `vars` (every
    /// variable the templates use, NGINX_LISTEN_PORT included);
    /// ROUTING_MAP_DIR is replaced by a directory inside the prefix.
    pub fn with_vars(mut vars: BTreeMap<String, String>) -> Self {
        let scratch = ScratchDir::new("nginx");
        let root = repo_root().join("nginx");
        let prefix = scratch.path();
        std::fs::copy(root.join("nginx.conf"), prefix.join("nginx.conf")).unwrap();
        std::fs::copy(mime_types(), prefix.join("mime.types")).unwrap();
        copy_tree(&root.join("snippets"), &prefix.join("snippets")).unwrap();
        copy_tree(&root.join("html"), &prefix.join("html")).unwrap();
        let routing = scratch.dir("routing");
        scratch.dir("logs");
        vars.insert(
            "ROUTING_MAP_DIR".into(),
            routing.to_str().unwrap().to_owned(),
        );
        let port = vars["NGINX_LISTEN_PORT"]
            .parse()
            .expect("NGINX_LISTEN_PORT is a port number");
        for entry in std::fs::read_dir(root.join("templates")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let output = name
                .strip_suffix(".template")
                .expect("templates end in .template");
            let text = std::fs::read_to_string(&path).unwrap();
            let rendered =
                template::substitute(&text, &vars).unwrap_or_else(|e| panic!("{name}: {e}"));
            scratch.write(&format!("conf.d/{output}"), &rendered);
        }
        Self { scratch, port }
    }

    pub fn routing_map(&self) -> PathBuf {
        self.scratch.path().join("routing/tenants.map")
    }

    /// The worker's way of writing the map: a temporary file, then rename.
    pub fn write_routing_map(&self, contents: &str) {
        let temporary = self.scratch.path().join("routing/tenants.map.tmp");
        std::fs::write(&temporary, contents).unwrap();
        std::fs::rename(&temporary, self.routing_map()).unwrap();
    }

    /// nginx arguments selecting this prefix (and a pid file inside it).
    /// nginx honours only the last `-g`, so callers add directives here.
    pub fn args_with(&self, directives: &str) -> Vec<String> {
        let prefix = self.scratch.path().display();
        vec![
            "-p".into(),
            format!("{prefix}/"),
            "-c".into(),
            format!("{prefix}/nginx.conf"),
            "-e".into(),
            "stderr".into(),
            "-g".into(),
            format!("pid {prefix}/nginx.pid; {directives}"),
        ]
    }

    pub fn args(&self) -> Vec<String> {
        self.args_with("")
    }

    /// Starts nginx in the foreground; stopped when the returned guard drops.
    pub fn start(&self, nginx: &std::path::Path) -> RunningNginx {
        self.start_with(nginx, "")
    }

    /// [`NginxPrefix::start`] with more main-context `directives`.
    pub fn start_with(&self, nginx: &std::path::Path, directives: &str) -> RunningNginx {
        let log = std::fs::File::create(self.scratch.path().join("logs/nginx.log")).unwrap();
        let child = Command::new(nginx)
            .args(self.args_with(&format!("daemon off; {directives}")))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start nginx");
        let deadline = Instant::now() + Duration::from_secs(10);
        while crate::http::get(self.port, "probe.invalid", "/healthz").is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        RunningNginx { child }
    }

    /// Where the operator's certificate goes (NGINX_TLS_DIR, `TLS_CERT_DIR`
    /// in compose): `tls/` in the prefix.
    pub fn tls_dir(&self) -> PathBuf {
        self.scratch.dir("tls")
    }

    /// Where the script keeps a self-signed certificate
    /// (NGINX_TLS_SELF_SIGNED_DIR, the `nginx-tls` volume in compose).
    pub fn self_signed_dir(&self) -> PathBuf {
        self.scratch.path().join("self-signed")
    }

    /// Runs nginx/entrypoint.d/16-https.sh as the image's entrypoint does
    /// before rendering the templates, with this prefix's directories and
    /// BASE_DOMAIN; `vars` are the rest of its environment
    /// (NGINX_HTTPS_LISTEN_PORT, PUBLIC_SCHEME, PUBLIC_PORT, TLS_SELF_SIGNED).
    /// Returns whether it succeeded and what it printed.
    pub fn run_https_script(&self, vars: &[(&str, &str)]) -> (bool, String) {
        let script = repo_root().join("nginx/entrypoint.d/16-https.sh");
        let mut command = Command::new("sh");
        command
            .arg(script)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env(
                "NGINX_ENVSUBST_OUTPUT_DIR",
                self.scratch.path().join("conf.d"),
            )
            .env("NGINX_TLS_DIR", self.tls_dir())
            .env("NGINX_TLS_SELF_SIGNED_DIR", self.self_signed_dir())
            .env("BASE_DOMAIN", BASE_DOMAIN)
            .envs(vars.iter().copied());
        crate::tools::run(&mut command)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.path().join("logs/nginx.log")).unwrap_or_default()
    }
}

pub struct RunningNginx {
    child: Child,
}

impl Drop for RunningNginx {
    /// SIGTERM lets the master stop its workers (SIGKILL would orphan them,
    /// still listening); SIGKILL only if it does not exit in time.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-s", "TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The variables compose gives the nginx container, plus the two its
/// entrypoint derives, with loopback upstreams.
pub fn template_vars(
    upstreams: &Upstreams,
    port: u16,
    routing_dir: &str,
) -> BTreeMap<String, String> {
    [
        ("BASE_DOMAIN", BASE_DOMAIN.to_owned()),
        ("BASE_DOMAIN_REGEX", BASE_DOMAIN.replace('.', "\\.")),
        ("NGINX_RESOLVER", "127.0.0.1".to_owned()),
        ("MAX_UPLOAD_MB", "512".to_owned()),
        ("NGINX_LISTEN_PORT", port.to_string()),
        ("ADMIN_UPSTREAM", upstreams.admin.clone()),
        ("PORTAL_UPSTREAM", upstreams.portal.clone()),
        ("ROUTING_MAP_DIR", routing_dir.to_owned()),
        (
            "ODOO_WEBSOCKET_PORT",
            upstreams.odoo_websocket_port.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn mime_types() -> PathBuf {
    ["/etc/nginx/mime.types", "/usr/local/nginx/conf/mime.types"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("nginx's mime.types (installed with nginx)")
}
