//! HTTPS on the platform hosts, with the real nginx and the real
//! nginx/entrypoint.d/16-https.sh: the operator's certificate (made here by a
//! test CA, root -> intermediate -> wildcard) is served for admin., portal.
//! and the tenants' hosts to a client that trusts only that CA; routing,
//! suspension, the `/web/database` block, websockets and the security
//! headers are the same as over HTTP; plain HTTP redirects when a certificate
//! exists and serves when none does; and the self-signed first start.

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use saas_deploy_checks::nginx::{BASE_DOMAIN, NginxPrefix, RunningNginx, Upstreams};
use saas_deploy_checks::{free_port, http, read_yaml, repo_root, stub, template, tools};

const HSTS: &str = "max-age=31536000";

fn host(label: &str) -> String {
    format!("{label}.{BASE_DOMAIN}")
}

/// The operator's certificate: a wildcard for the base domain (and the
/// domain itself) issued through an intermediate by a root the test owns.
struct OperatorCertificate {
    root: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
    /// Leaf then intermediate, as certbot's fullchain.pem.
    fullchain_pem: String,
    key_pem: String,
}

fn ca_params(name: &str, constraints: BasicConstraints) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

fn operator_certificate() -> OperatorCertificate {
    let root = CertifiedIssuer::self_signed(
        ca_params("deploy-checks test root", BasicConstraints::Unconstrained),
        KeyPair::generate().unwrap(),
    )
    .unwrap();
    let intermediate = CertifiedIssuer::signed_by(
        ca_params(
            "deploy-checks test intermediate",
            BasicConstraints::Constrained(0),
        ),
        KeyPair::generate().unwrap(),
        &root,
    )
    .unwrap();
    let names = vec![format!("*.{BASE_DOMAIN}"), BASE_DOMAIN.to_owned()];
    let mut params = CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("*.{BASE_DOMAIN}"));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().unwrap();
    let leaf = params.signed_by(&key, &intermediate).unwrap();
    OperatorCertificate {
        root: root.der().clone(),
        leaf: leaf.der().clone(),
        fullchain_pem: format!("{}{}", leaf.pem(), intermediate.pem()),
        key_pem: key.serialize_pem(),
    }
}

impl OperatorCertificate {
    /// Puts fullchain.pem and privkey.pem where compose mounts TLS_CERT_DIR.
    fn install(&self, prefix: &NginxPrefix) {
        let dir = prefix.tls_dir();
        std::fs::write(dir.join("fullchain.pem"), &self.fullchain_pem).unwrap();
        std::fs::write(dir.join("privkey.pem"), &self.key_pem).unwrap();
    }
}

/// A client that trusts only `roots` and speaks only `versions`.
fn client_for(
    roots: &[CertificateDer<'static>],
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth(),
    )
}

fn trusting(roots: &[CertificateDer<'static>]) -> Arc<ClientConfig> {
    client_for(roots, rustls::DEFAULT_VERSIONS)
}

struct TlsAnswer {
    response: http::Response,
    /// The certificate nginx presented (the leaf).
    leaf: CertificateDer<'static>,
    version: rustls::ProtocolVersion,
}

/// `GET path` over TLS to 127.0.0.1:`port`, as a browser on
/// `https://<name>:<port>` sends it (SNI `name`, `Host: name:port`): the
/// client verifies the chain and that the certificate names `name`.
fn https_get(
    config: &Arc<ClientConfig>,
    port: u16,
    name: &str,
    path: &str,
) -> std::io::Result<TlsAnswer> {
    https_get_with_host(config, port, name, &format!("{name}:{port}"), path)
}

/// The same with a `Host` header other than the name the TLS session is for.
fn https_get_with_host(
    config: &Arc<ClientConfig>,
    port: u16,
    name: &str,
    host_header: &str,
    path: &str,
) -> std::io::Result<TlsAnswer> {
    https_request(config, port, name, host_header, path, "")
}

/// `GET path` over TLS with SNI `name`, `Host: host_header` and `headers`.
fn https_request(
    config: &Arc<ClientConfig>,
    port: u16,
    name: &str,
    host_header: &str,
    path: &str,
    headers: &str,
) -> std::io::Result<TlsAnswer> {
    let server_name = ServerName::try_from(name.to_owned()).map_err(std::io::Error::other)?;
    let connection = rustls::ClientConnection::new(Arc::clone(config), server_name)
        .map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let response = http::exchange_with_headers(&mut tls, host_header, path, headers)?;
    let leaf = tls.conn.peer_certificates().expect("a certificate")[0].clone();
    let version = tls.conn.protocol_version().expect("a protocol version");
    Ok(TlsAnswer {
        response,
        leaf,
        version,
    })
}

fn header_count(response: &http::Response, name: &str) -> usize {
    response
        .head
        .lines()
        .filter(|line| {
            line.split_once(':')
                .is_some_and(|(key, _)| key.trim().eq_ignore_ascii_case(name))
        })
        .count()
}

/// nginx with stub upstreams (admin sends its own HSTS, as admin does with
/// PUBLIC_SCHEME=https), a routing map with an active and a suspended
/// tenant, and an HTTPS port for the script.
struct Stack {
    prefix: NginxPrefix,
    https_port: u16,
}

impl Stack {
    fn new() -> Self {
        let upstreams = Upstreams {
            admin: format!(
                "127.0.0.1:{}",
                stub::start_with_headers("admin", "Strict-Transport-Security: max-age=60\r\n")
            ),
            portal: format!("127.0.0.1:{}", stub::start("portal")),
            odoo_websocket_port: stub::start("odoo-websocket"),
        };
        let odoo = stub::start("odoo");
        let prefix = NginxPrefix::new(&upstreams);
        prefix.write_routing_map(&format!("acme 127.0.0.1:{odoo};\nsleepy suspended;\n"));
        Self {
            prefix,
            https_port: free_port(),
        }
    }

    /// A stack with the operator's `certificate` installed, configured for
    /// https on its own HTTPS port; returns the script's output too.
    fn serving(certificate: &OperatorCertificate) -> (Self, String) {
        let stack = Self::new();
        certificate.install(&stack.prefix);
        let output = stack.configure("https", &stack.https_port.to_string(), false);
        (stack, output)
    }

    /// Runs 16-https.sh with PUBLIC_SCHEME, PUBLIC_PORT and TLS_SELF_SIGNED
    /// as given; panics if it fails.
    fn configure(&self, scheme: &str, public_port: &str, self_signed: bool) -> String {
        let (ok, output) = self.run_script(scheme, public_port, self_signed, &[]);
        assert!(ok, "16-https.sh failed:\n{output}");
        output
    }

    fn run_script(
        &self,
        scheme: &str,
        public_port: &str,
        self_signed: bool,
        more: &[(&str, &str)],
    ) -> (bool, String) {
        let port = self.https_port.to_string();
        let mut vars = vec![
            ("NGINX_HTTPS_LISTEN_PORT", port.as_str()),
            ("PUBLIC_SCHEME", scheme),
            ("PUBLIC_PORT", public_port),
            (
                "TLS_SELF_SIGNED",
                if self_signed { "true" } else { "false" },
            ),
        ];
        vars.extend_from_slice(more);
        self.prefix.run_https_script(&vars)
    }

    fn start(&self) -> RunningNginx {
        let nginx = tools::find("nginx").expect("nginx");
        tools::run_ok(Command::new(&nginx).args(self.prefix.args()).arg("-t"));
        self.prefix.start(&nginx)
    }

    fn https(&self, config: &Arc<ClientConfig>, label: &str, path: &str) -> TlsAnswer {
        https_get(config, self.https_port, &host(label), path).unwrap_or_else(|e| {
            panic!(
                "https://{}:{}{path}: {e}\n{}",
                host(label),
                self.https_port,
                self.prefix.log()
            )
        })
    }

    fn http(&self, host_header: &str, path: &str) -> http::Response {
        http::get(self.prefix.port, host_header, path).unwrap()
    }
}

#[test]
fn platform_hosts_answer_https_with_the_operators_certificate() {
    if tools::require("nginx").is_none() {
        return;
    }
    let certificate = operator_certificate();
    let (stack, output) = Stack::serving(&certificate);
    assert!(output.contains("HTTPS on port"), "{output}");
    let _running = stack.start();
    let client = trusting(std::slice::from_ref(&certificate.root));

    for (label, path, upstream) in [
        ("admin", "/tenants", "stub=admin"),
        ("portal", "/", "stub=portal"),
        ("acme", "/web/login", "stub=odoo\n"),
    ] {
        let answer = stack.https(&client, label, path);
        let response = &answer.response;
        assert_eq!(response.status, 200, "{label}: {response:?}");
        assert!(response.body.starts_with(upstream), "{label}: {response:?}");
        assert_eq!(
            answer.leaf, certificate.leaf,
            "{label}: not the operator's certificate"
        );
        assert!(
            response.body.contains("X-Forwarded-Proto: https"),
            "{label}: {}",
            response.body
        );
        assert!(
            response.body.contains(&format!(
                "X-Forwarded-Host: {}:{}",
                host(label),
                stack.https_port
            )),
            "{label}: {}",
            response.body
        );
        assert_eq!(response.header("X-Content-Type-Options"), Some("nosniff"));
        assert_eq!(response.header("X-Frame-Options"), Some("SAMEORIGIN"));
        assert_eq!(
            (
                header_count(response, "Strict-Transport-Security"),
                response.header("Strict-Transport-Security")
            ),
            (1, Some(HSTS)),
            "{label}: one HSTS header, nginx's: {response:?}"
        );
    }
    // Odoo's dbfilter reads the bare host name.
    let tenant = stack.https(&client, "acme", "/web/login").response;
    assert!(
        tenant.body.contains(&format!("Host: {}\r\n", host("acme")))
            || tenant.body.contains(&format!("Host: {}\n", host("acme"))),
        "{}",
        tenant.body
    );
    // Over nginx's own TLS the scheme is https whatever a client claims.
    let authority = format!("{}:{}", host("acme"), stack.https_port);
    let claimed = https_request(
        &client,
        stack.https_port,
        &host("acme"),
        &authority,
        "/web/login",
        "X-Forwarded-Proto: http\r\n",
    )
    .unwrap()
    .response;
    assert!(
        claimed.body.contains("X-Forwarded-Proto: https"),
        "{}",
        claimed.body
    );
    let websocket = stack.https(&client, "acme", "/websocket").response;
    assert!(
        websocket.body.starts_with("stub=odoo-websocket"),
        "{}",
        websocket.body
    );
    assert_eq!(
        stack.https(&client, "admin", "/metrics").response.status,
        404
    );
}

#[test]
fn tenant_routing_suspension_and_the_database_manager_block_hold_over_https() {
    if tools::require("nginx").is_none() {
        return;
    }
    let certificate = operator_certificate();
    let (stack, _) = Stack::serving(&certificate);
    let _running = stack.start();
    let client = trusting(std::slice::from_ref(&certificate.root));

    let suspended = stack.https(&client, "sleepy", "/web/login").response;
    assert_eq!(suspended.status, 503);
    assert!(
        suspended.body.contains("This instance is suspended"),
        "{}",
        suspended.body
    );
    assert_eq!(suspended.header("Strict-Transport-Security"), Some(HSTS));

    let unknown = stack.https(&client, "nobody", "/").response;
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.body.contains("No instance here"),
        "{}",
        unknown.body
    );

    for path in [
        "/web/database/manager",
        "/web/database/selector",
        "/web/database/backup",
    ] {
        let refused = stack.https(&client, "acme", path).response;
        assert_eq!(refused.status, 403, "{path}: {refused:?}");
        assert_eq!(refused.header("X-Frame-Options"), Some("SAMEORIGIN"));
    }
}

#[test]
fn the_client_verifies_the_chain_and_names_not_ours_get_no_handshake() {
    if tools::require("nginx").is_none() {
        return;
    }
    let certificate = operator_certificate();
    let (stack, _) = Stack::serving(&certificate);
    let _running = stack.start();

    // Another CA's client refuses the operator's certificate: the check
    // above is a real verification.
    let stranger = trusting(std::slice::from_ref(&operator_certificate().root));
    let refused = https_get(&stranger, stack.https_port, &host("admin"), "/");
    assert!(refused.is_err(), "a client of another CA accepted it");

    // A name that is not ours: the default server refuses the handshake
    // (an alert from nginx, not the client's verdict on a certificate).
    let client = trusting(std::slice::from_ref(&certificate.root));
    let Err(other) = https_get(&client, stack.https_port, "elsewhere.example", "/") else {
        panic!("a handshake for a name that is not ours");
    };
    assert!(other.to_string().contains("UnrecognisedName"), "{other}");
    // Nor does another Host inside our TLS session reach admin: it gets the
    // default server's 404, as over plain HTTP.
    let smuggled = https_get_with_host(
        &client,
        stack.https_port,
        &host("admin"),
        "elsewhere.example",
        "/",
    )
    .unwrap()
    .response;
    assert_eq!(smuggled.status, 404, "{smuggled:?}");

    // TLS 1.2 and 1.3 both work.
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let answer = https_get(
            &client_for(std::slice::from_ref(&certificate.root), &[version]),
            stack.https_port,
            &host("portal"),
            "/",
        )
        .unwrap();
        assert_eq!(answer.version, version.version);
        assert_eq!(answer.response.status, 200);
    }
}

/// TLS 1.0 and 1.1 and the TLS 1.2 suites without forward secrecy or AEAD
/// are refused by nginx (the openssl client offers them; nginx answers an
/// alert).
#[test]
fn old_protocols_and_weak_ciphers_are_refused() {
    if tools::require("nginx").is_none() {
        return;
    }
    let Some(openssl) = tools::require("openssl") else {
        return;
    };
    let certificate = operator_certificate();
    let (stack, _) = Stack::serving(&certificate);
    let _running = stack.start();
    let handshake = |args: &[&str]| {
        let connect = format!("127.0.0.1:{}", stack.https_port);
        let mut command = Command::new(&openssl);
        command
            .args(["s_client", "-connect", &connect, "-servername"])
            .arg(host("admin"))
            .args(args)
            .stdin(std::process::Stdio::null());
        tools::run(&mut command)
    };
    for old in ["-tls1", "-tls1_1"] {
        let (ok, output) = handshake(&[old, "-cipher", "DEFAULT@SECLEVEL=0"]);
        assert!(
            !ok && output.contains("alert protocol version"),
            "{old}: {output}"
        );
    }
    for weak in ["AES128-SHA", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA"] {
        let (ok, output) = handshake(&["-tls1_2", "-cipher", weak]);
        assert!(
            !ok && output.contains("alert handshake failure"),
            "{weak}: {output}"
        );
    }
    let (ok, output) = handshake(&["-tls1_2"]);
    assert!(ok && output.contains("TLSv1.2"), "{output}");
}

#[test]
fn plain_http_redirects_to_https_when_a_certificate_exists() {
    if tools::require("nginx").is_none() {
        return;
    }
    let certificate = operator_certificate();
    let stack = Stack::new();
    certificate.install(&stack.prefix);
    stack.configure("https", "8443", false);
    let _running = stack.start();

    for label in ["admin", "portal", "acme", "sleepy", "nobody"] {
        let answer = stack.http(
            &format!("{}:8081", host(label)),
            "/web/login?redirect=%2Fodoo&x=1",
        );
        assert_eq!(answer.status, 308, "{label}: {answer:?}");
        assert_eq!(
            answer.header("Location"),
            Some(
                format!(
                    "https://{}:8443/web/login?redirect=%2Fodoo&x=1",
                    host(label)
                )
                .as_str()
            ),
            "{label}"
        );
        assert_eq!(
            answer.header("Strict-Transport-Security"),
            None,
            "{label}: no HSTS over plain HTTP"
        );
    }
    // Even the database manager only redirects over plain HTTP.
    assert_eq!(
        stack.http(&host("acme"), "/web/database/manager").status,
        308
    );
    // The container's health check (any other name) still answers.
    assert_eq!(stack.http("127.0.0.1", "/healthz").status, 200);
}

#[test]
fn the_redirect_names_no_port_when_public_port_is_the_https_default() {
    if tools::require("nginx").is_none() {
        return;
    }
    let certificate = operator_certificate();
    for public_port in ["", "443"] {
        let stack = Stack::new();
        certificate.install(&stack.prefix);
        stack.configure("https", public_port, false);
        let _running = stack.start();
        let answer = stack.http(&host("portal"), "/signup?plan=basic");
        assert_eq!(answer.status, 308);
        assert_eq!(
            answer.header("Location"),
            Some(format!("https://{}/signup?plan=basic", host("portal")).as_str()),
            "PUBLIC_PORT={public_port:?}"
        );
    }
}

#[test]
fn plain_http_serves_as_before_without_a_certificate() {
    if tools::require("nginx").is_none() {
        return;
    }
    // No certificate and no self-signed one (TLS ends in front of nginx),
    // or PUBLIC_SCHEME=http: plain HTTP only.
    for (scheme, self_signed) in [("https", false), ("http", true), ("http", false)] {
        let stack = Stack::new();
        let output = stack.configure(scheme, "", self_signed);
        assert!(output.contains("HTTP only"), "{output}");
        assert!(
            !stack.prefix.scratch.path().join("conf.d/https").exists(),
            "{scheme}: includes written without a certificate"
        );
        assert!(!stack.prefix.self_signed_dir().exists());
        let _running = stack.start();
        let admin = stack.http(&host("admin"), "/tenants");
        assert_eq!(admin.status, 200, "{admin:?}");
        assert!(admin.body.starts_with("stub=admin"));
        assert!(admin.body.contains("X-Forwarded-Proto: http\r\n"));
        // Behind a TLS-terminating proxy its X-Forwarded-Proto is kept.
        let behind_proxy = http::exchange_with_headers(
            TcpStream::connect(("127.0.0.1", stack.prefix.port)).unwrap(),
            &host("admin"),
            "/",
            "X-Forwarded-Proto: https\r\n",
        )
        .unwrap();
        assert!(
            behind_proxy.body.contains("X-Forwarded-Proto: https"),
            "{}",
            behind_proxy.body
        );
        let tenant = stack.http(&host("acme"), "/web/login");
        assert!(tenant.body.starts_with("stub=odoo"), "{tenant:?}");
        assert_eq!(stack.http(&host("sleepy"), "/").status, 503);
        assert_eq!(
            stack.http(&host("acme"), "/web/database/manager").status,
            403
        );
        // The app's own HSTS passes through (a proxy in front serves HTTPS).
        assert_eq!(
            admin.header("Strict-Transport-Security"),
            Some("max-age=60")
        );
        assert!(
            TcpStream::connect(("127.0.0.1", stack.https_port)).is_err(),
            "{scheme}: something listens on the HTTPS port"
        );
    }
}

#[test]
fn with_public_scheme_http_a_certificate_serves_https_and_http_alike() {
    if tools::require("nginx").is_none() {
        return;
    }
    let certificate = operator_certificate();
    let stack = Stack::new();
    certificate.install(&stack.prefix);
    let output = stack.configure("http", "8081", false);
    assert!(output.contains("plain HTTP serves too"), "{output}");
    let _running = stack.start();
    let plain = stack.http(&host("acme"), "/web/login");
    assert_eq!(plain.status, 200, "{plain:?}");
    assert_eq!(plain.header("Strict-Transport-Security"), None);
    let client = trusting(std::slice::from_ref(&certificate.root));
    let secure = stack.https(&client, "acme", "/web/login");
    assert_eq!(secure.response.status, 200);
    assert_eq!(secure.leaf, certificate.leaf);
    assert_eq!(
        secure.response.header("Strict-Transport-Security"),
        Some(HSTS)
    );
}

/// The first start of `.env.example` (PUBLIC_SCHEME=https,
/// TLS_SELF_SIGNED=true, TLS_CERT_DIR empty): a self-signed certificate for
/// the base domain and its subdomains, kept, and made anew for a new domain.
#[test]
fn the_first_start_makes_a_self_signed_certificate_and_keeps_it() {
    if tools::require("nginx").is_none() || tools::require("openssl").is_none() {
        return;
    }
    let stack = Stack::new();
    let output = stack.configure("https", &stack.https_port.to_string(), true);
    assert!(
        output.contains("making a self-signed certificate"),
        "{output}"
    );
    let dir = stack.prefix.self_signed_dir();
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join("privkey.pem"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o077, 0, "privkey.pem is readable by others");
    let made = CertificateDer::from_pem_file(dir.join("fullchain.pem")).unwrap();
    let made_pem = file(&dir.join("fullchain.pem"));

    let _running = stack.start();
    // A browser that trusts it (as a developer may) verifies every host.
    let client = trusting(std::slice::from_ref(&made));
    for label in ["admin", "portal", "acme"] {
        let answer = stack.https(&client, label, "/");
        assert_eq!(answer.response.status, 200, "{label}");
        assert_eq!(answer.leaf, made, "{label}");
    }
    let redirect = stack.http(&host("admin"), "/");
    assert_eq!(redirect.status, 308);

    // A restart keeps it (a browser's exception stays valid) ...
    let again = stack.configure("https", &stack.https_port.to_string(), true);
    assert!(!again.contains("making"), "{again}");
    assert_eq!(file(&dir.join("fullchain.pem")), made_pem);
    // ... unless BASE_DOMAIN changed.
    let (ok, other) = stack.run_script("https", "", true, &[("BASE_DOMAIN", "other.test")]);
    assert!(
        ok && other.contains("making a self-signed certificate for other.test"),
        "{other}"
    );
    assert_ne!(file(&dir.join("fullchain.pem")), made_pem);
}

#[test]
fn the_https_script_refuses_half_a_certificate_and_bad_values() {
    let stack = Stack::new();
    std::fs::write(
        stack.prefix.tls_dir().join("fullchain.pem"),
        operator_certificate().fullchain_pem,
    )
    .unwrap();
    let (ok, output) = stack.run_script("https", "", false, &[]);
    assert!(!ok && output.contains("privkey.pem"), "{output}");

    let stack = Stack::new();
    for (name, value) in [
        ("TLS_SELF_SIGNED", "yes"),
        ("PUBLIC_SCHEME", "ftp"),
        ("PUBLIC_PORT", "84x3"),
    ] {
        let (ok, output) = stack.run_script("https", "", false, &[(name, value)]);
        assert!(!ok && output.contains(name), "{name}={value}: {output}");
    }
}

/// Every variable the script reads comes from compose's nginx environment
/// (the Kubernetes Deployment's is checked against compose's in
/// kubernetes.rs); NGINX_ENVSUBST_OUTPUT_DIR is the image's own.
#[test]
fn compose_gives_the_https_script_every_variable_it_reads() {
    let compose = read_yaml("compose.yml");
    let nginx = &compose["services"]["nginx"];
    let environment = nginx["environment"].as_mapping().unwrap();
    let script =
        std::fs::read_to_string(repo_root().join("nginx/entrypoint.d/16-https.sh")).unwrap();
    for var in template::referenced(&script) {
        if var == "NGINX_ENVSUBST_OUTPUT_DIR" || var.chars().any(|c| c.is_ascii_lowercase()) {
            continue;
        }
        assert!(
            environment.contains_key(var.as_str()),
            "16-https.sh reads {var}, which compose.yml does not give nginx"
        );
    }
    // The certificate directory and the self-signed volume are mounted
    // where the script looks, and the HTTPS port is the published one.
    let mounts: Vec<&str> = nginx["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let var = |name: &str| environment[name].as_str().unwrap().to_owned();
    assert!(
        mounts.contains(&format!("${{TLS_CERT_DIR:?}}:{}:ro,z", var("NGINX_TLS_DIR")).as_str()),
        "{mounts:?}"
    );
    assert!(
        mounts
            .iter()
            .any(|m| m.ends_with(&format!(":{}", var("NGINX_TLS_SELF_SIGNED_DIR")))),
        "{mounts:?}"
    );
    let ports = serde_yaml::to_string(&nginx["ports"]).unwrap();
    assert!(
        ports.contains(&format!(
            "${{NGINX_HTTPS_HOST_PORT:?}}:{}",
            var("NGINX_HTTPS_LISTEN_PORT")
        )),
        "{ports}"
    );
}

fn file(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}
