//! The shipped nginx configuration, run by the real nginx on loopback with
//! stub upstreams: `nginx -t`, routing by Host header, the tenant map, the
//! error pages, and the reload-on-change script of the nginx container.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use saas_deploy_checks::nginx::{BASE_DOMAIN, NginxPrefix, Upstreams};
use saas_deploy_checks::{http, read_yaml, repo_root, stub, template, tools};

fn stub_upstreams() -> (Upstreams, u16) {
    let upstreams = Upstreams {
        admin: format!("127.0.0.1:{}", stub::start("admin")),
        portal: format!("127.0.0.1:{}", stub::start("portal")),
        odoo_websocket_port: stub::start("odoo-websocket"),
    };
    (upstreams, stub::start("odoo"))
}

fn host(label: &str) -> String {
    format!("{label}.{BASE_DOMAIN}")
}

#[test]
fn nginx_accepts_the_shipped_configuration() {
    let Some(nginx) = tools::require("nginx") else {
        return;
    };
    let (upstreams, odoo) = stub_upstreams();
    let prefix = NginxPrefix::new(&upstreams);
    prefix.write_routing_map(&format!("acme 127.0.0.1:{odoo};\nsleepy suspended;\n"));
    tools::run_ok(Command::new(&nginx).args(prefix.args()).arg("-t"));
}

#[test]
fn templates_use_only_variables_the_nginx_container_gets() {
    let compose = read_yaml("compose.yml");
    let environment = compose["services"]["nginx"]["environment"]
        .as_mapping()
        .unwrap();
    let derived = ["NGINX_RESOLVER", "BASE_DOMAIN_REGEX"];
    for entry in std::fs::read_dir(repo_root().join("nginx/templates")).unwrap() {
        let path = entry.unwrap().path();
        for var in template::referenced(&std::fs::read_to_string(&path).unwrap()) {
            assert!(
                environment.contains_key(var.as_str()) || derived.contains(&var.as_str()),
                "{}: ${{{var}}} is neither in compose.yml's nginx environment nor derived",
                path.display()
            );
        }
    }
}

#[test]
fn nginx_routes_admin_portal_and_tenants_by_host() {
    let Some(nginx) = tools::require("nginx") else {
        return;
    };
    let (upstreams, odoo) = stub_upstreams();
    let prefix = NginxPrefix::new(&upstreams);
    prefix.write_routing_map(&format!(
        "# written by the worker\nacme 127.0.0.1:{odoo};\nsleepy suspended;\n"
    ));
    let _running = prefix.start(&nginx);
    let get = |label: &str, path: &str| http::get(prefix.port, &host(label), path).unwrap();

    let admin = get("admin", "/tenants");
    assert_eq!(admin.status, 200, "{admin:?}\n{}", prefix.log());
    assert!(admin.body.starts_with("stub=admin"), "{}", admin.body);
    assert!(
        admin
            .body
            .contains(&format!("X-Forwarded-Host: {}", host("admin"))),
        "{}",
        admin.body
    );
    assert!(
        admin.body.contains("X-Forwarded-Proto: http"),
        "{}",
        admin.body
    );
    assert!(
        admin.body.contains("X-Forwarded-For: 127.0.0.1"),
        "{}",
        admin.body
    );
    assert_eq!(admin.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(
        get("admin", "/metrics").status,
        404,
        "metrics are not served through the entrance"
    );

    let portal = get("portal", "/");
    assert!(portal.body.starts_with("stub=portal"), "{}", portal.body);

    let tenant = get("acme", "/web/login");
    assert_eq!(tenant.status, 200);
    assert!(tenant.body.starts_with("stub=odoo"), "{}", tenant.body);
    assert!(
        tenant.body.contains(&format!("Host: {}", host("acme"))),
        "Odoo's dbfilter needs the Host: {}",
        tenant.body
    );

    // Behind a published port (PUBLIC_PORT, e.g. 8081) Odoo builds its URLs,
    // and web.base.url when the admin signs in, from X-Forwarded-Host: it
    // carries the port; Host, for the dbfilter, is the bare name.
    let on_port = http::get(prefix.port, &format!("{}:8081", host("acme")), "/web/login").unwrap();
    assert!(
        on_port
            .body
            .contains(&format!("X-Forwarded-Host: {}:8081", host("acme"))),
        "{}",
        on_port.body
    );
    assert!(
        on_port
            .body
            .contains(&format!("Host: {}\r\n", host("acme")))
            || on_port.body.contains(&format!("Host: {}\n", host("acme"))),
        "{}",
        on_port.body
    );

    let websocket = get("acme", "/websocket");
    assert!(
        websocket.body.starts_with("stub=odoo-websocket"),
        "{}",
        websocket.body
    );
    assert!(
        websocket.body.contains("Connection: close")
            || websocket.body.contains("Connection: upgrade"),
        "{}",
        websocket.body
    );

    let suspended = get("sleepy", "/web/login");
    assert_eq!(suspended.status, 503);
    assert!(
        suspended.body.contains("This instance is suspended"),
        "{}",
        suspended.body
    );

    let unknown = get("nobody", "/");
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.body.contains("No instance here"),
        "{}",
        unknown.body
    );

    let manager = get("acme", "/web/database/manager");
    assert_eq!(
        manager.status, 403,
        "the database manager must be refused on tenant hosts"
    );
    assert_eq!(get("acme", "/web/database/selector").status, 403);

    assert_eq!(
        http::get(prefix.port, "elsewhere.example", "/")
            .unwrap()
            .status,
        404
    );
    assert_eq!(
        http::get(prefix.port, "127.0.0.1", "/healthz")
            .unwrap()
            .status,
        200
    );
}

#[test]
fn nginx_serves_a_friendly_page_when_admin_is_down() {
    let Some(nginx) = tools::require("nginx") else {
        return;
    };
    let closed = saas_deploy_checks::free_port();
    let upstreams = Upstreams {
        admin: format!("127.0.0.1:{closed}"),
        portal: format!("127.0.0.1:{closed}"),
        odoo_websocket_port: closed,
    };
    let prefix = NginxPrefix::new(&upstreams);
    let _running = prefix.start(&nginx);
    let admin = http::get(prefix.port, &host("admin"), "/").unwrap();
    assert_eq!(admin.status, 502);
    assert!(
        admin.body.contains("Temporarily unavailable"),
        "{}",
        admin.body
    );
}

/// Runs nginx/entrypoint.d/40-reload-on-routing-change.sh as the nginx image
/// would, with `nginx` on PATH pointing at the test prefix.
#[test]
fn nginx_reloads_when_the_worker_rewrites_the_map() {
    let Some(nginx) = tools::require("nginx") else {
        return;
    };
    let (upstreams, odoo) = stub_upstreams();
    let prefix = NginxPrefix::new(&upstreams);
    prefix.write_routing_map(&format!("acme 127.0.0.1:{odoo};\n"));
    let _running = prefix.start(&nginx);

    let args: Vec<String> = prefix.args().iter().map(|a| format!("'{a}'")).collect();
    let wrapper = prefix.scratch.write(
        "bin/nginx",
        &format!(
            "#!/bin/sh\nexec '{}' {} \"$@\"\n",
            nginx.display(),
            args.join(" ")
        ),
    );
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        wrapper.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let watcher = Watcher::start(
        &path,
        prefix.routing_map().parent().unwrap().to_str().unwrap(),
    );

    let status_of = |label: &str| http::get(prefix.port, &host(label), "/").unwrap().status;
    assert_eq!(status_of("newco"), 404);
    prefix.write_routing_map(&format!(
        "acme 127.0.0.1:{odoo};\nnewco 127.0.0.1:{odoo};\n"
    ));
    wait_until(
        || status_of("newco") == 200,
        "newco routed after the map changed",
        &prefix,
        &watcher,
    );

    prefix.write_routing_map(&format!("acme suspended;\nnewco 127.0.0.1:{odoo};\n"));
    wait_until(
        || status_of("acme") == 503,
        "acme suspended after the map changed",
        &prefix,
        &watcher,
    );

    // A broken map is not loaded: routing stays as it was.
    prefix.write_routing_map("acme 127.0.0.1:1\nnewco suspended;\n");
    wait_until(
        || watcher.log().contains("rejected"),
        "the broken map reported",
        &prefix,
        &watcher,
    );
    assert_eq!(status_of("newco"), 200);
    assert_eq!(status_of("acme"), 503);
}

struct Watcher {
    pgid: u32,
    log: std::path::PathBuf,
}

impl Watcher {
    fn start(path: &str, routing_dir: &str) -> Self {
        use std::os::unix::process::CommandExt;
        let log = std::env::temp_dir().join(format!("reload-watch-{}.log", std::process::id()));
        let file = std::fs::File::create(&log).unwrap();
        let script = repo_root().join("nginx/entrypoint.d/40-reload-on-routing-change.sh");
        let mut child = Command::new("sh")
            .arg(script)
            .env("PATH", path)
            .env("ROUTING_MAP_DIR", routing_dir)
            .env("ROUTING_MAP_POLL_SECS", "0.2")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .process_group(0)
            .spawn()
            .expect("start the reload script");
        let pgid = child.id();
        // The script starts its loop in the background and returns, as the
        // image's entrypoint expects.
        assert!(
            child.wait().unwrap().success(),
            "the script failed:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        let watcher = Self { pgid, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !watcher.log().contains("watching") {
            assert!(
                Instant::now() < deadline,
                "the loop did not start:\n{}",
                watcher.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        watcher
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-s", "TERM", "--", &format!("-{}", self.pgid)])
            .status();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn wait_until(mut done: impl FnMut() -> bool, what: &str, prefix: &NginxPrefix, watcher: &Watcher) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n--- watcher\n{}\n--- nginx\n{}",
            watcher.log(),
            prefix.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
