//! Customers' own domains with the real parts: the real worker binary runs
//! `sync_domains` against dnsmasq (the DNS the worker and Pebble ask),
//! Pebble (Let's Encrypt's ACME test server) and real nginx serving the
//! challenges and then the certificate, chosen by SNI from the worker's
//! maps, to a client that trusts only Pebble's root.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use common::{NewTenantSpec, Platform};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use saas_core::domain::DomainState;
use saas_core::domains::{self, DomainError, TenantDomain};
use saas_core::ops::{Actor, OperationKind};
use saas_deploy_checks::nginx::{NginxPrefix, RunningNginx, Upstreams};
use saas_deploy_checks::{http, stub, tools};
use saas_testkit::odoo::OdooWorld;
use uuid::Uuid;

const BASE: &str = "saas.test";

/// A server process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Pebble's own HTTPS certificate for 127.0.0.1, from a CA of the test's
/// (Debian's pebble ships no test certificates): returns the CA's PEM.
fn pebble_tls(dir: &Path) -> anyhow::Result<String> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    let key = KeyPair::generate()?;
    let leaf = params.signed_by(&key, &ca)?;
    std::fs::write(dir.join("pebble-cert.pem"), leaf.pem())?;
    std::fs::write(dir.join("pebble-key.pem"), key.serialize_pem())?;
    std::fs::write(dir.join("pebble-ca.pem"), ca.pem())?;
    Ok(ca.pem())
}

struct Pebble {
    _process: Killed,
    port: u16,
    management: u16,
    /// Trusts Pebble's own HTTPS (ACME_CA_BUNDLE).
    ca_bundle: PathBuf,
    tls_ca: CertificateDer<'static>,
}

impl Pebble {
    fn start(dir: &Path, http_port: u16, dns_port: u16) -> anyhow::Result<Self> {
        let ca_pem = pebble_tls(dir)?;
        let port = saas_testkit::free_port()?;
        let management = saas_testkit::free_port()?;
        let config = serde_json::json!({ "pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.join("pebble-cert.pem"),
            "privateKey": dir.join("pebble-key.pem"),
            "httpPort": http_port,
            "tlsPort": saas_testkit::free_port()?,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(dir.join("pebble.json"), config.to_string())?;
        let log = std::fs::File::create(dir.join("pebble.log"))?;
        let child = Command::new("pebble")
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .arg("-dnsserver")
            .arg(format!("127.0.0.1:{dns_port}"))
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start pebble")?;
        let process = Killed(child);
        wait_port(port, "pebble")?;
        Ok(Self {
            _process: process,
            port,
            management,
            ca_bundle: dir.join("pebble-ca.pem"),
            tls_ca: CertificateDer::from_pem_slice(ca_pem.as_bytes())?,
        })
    }

    /// The root Pebble issues under (made anew at each start).
    fn issuing_root(&self) -> anyhow::Result<CertificateDer<'static>> {
        wait_port(self.management, "pebble's management")?;
        let config = client(std::slice::from_ref(&self.tls_ca));
        let answer = https_get(
            &config,
            self.management,
            "127.0.0.1",
            "127.0.0.1",
            "/roots/0",
        )?;
        anyhow::ensure!(answer.response.status == 200, "{:?}", answer.response);
        Ok(CertificateDer::from_pem_slice(
            answer.response.body.as_bytes(),
        )?)
    }
}

/// dnsmasq on a loopback port of its own with exactly `records`.
fn dnsmasq(port: u16, dir: &Path, records: &[String]) -> anyhow::Result<Killed> {
    let log = std::fs::File::create(dir.join("dnsmasq.log"))?;
    let child = Command::new(tools::find("dnsmasq").context("dnsmasq")?)
        .args([
            "-k",
            "-C",
            "/dev/null",
            &format!("--port={port}"),
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--user=root",
            "--log-queries",
            "--log-facility=-",
            &format!("--pid-file={}", dir.join("dnsmasq.pid").display()),
        ])
        .args(records)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("start dnsmasq")?;
    let process = Killed(child);
    std::thread::sleep(Duration::from_millis(300));
    Ok(process)
}

fn client(roots: &[CertificateDer<'static>]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        let _ = store.add(root.clone());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| panic!("{e}"))
            .with_root_certificates(store)
            .with_no_client_auth(),
    )
}

struct TlsAnswer {
    response: http::Response,
    leaf: CertificateDer<'static>,
}

fn https_get(
    config: &Arc<rustls::ClientConfig>,
    port: u16,
    name: &str,
    host: &str,
    path: &str,
) -> std::io::Result<TlsAnswer> {
    let server_name = ServerName::try_from(name.to_owned()).map_err(std::io::Error::other)?;
    let connection = rustls::ClientConnection::new(Arc::clone(config), server_name)
        .map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let response = http::exchange(&mut tls, host, path)?;
    let leaf = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first().cloned())
        .ok_or_else(|| std::io::Error::other("no certificate"))?;
    Ok(TlsAnswer { response, leaf })
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    })
}

struct Edge {
    prefix: NginxPrefix,
    https_port: u16,
    nginx: PathBuf,
}

impl Edge {
    fn new() -> anyhow::Result<Self> {
        let upstreams = Upstreams {
            admin: format!("127.0.0.1:{}", stub::start("admin")),
            portal: format!("127.0.0.1:{}", stub::start("portal")),
            odoo_websocket_port: stub::start("odoo-websocket"),
        };
        let prefix = NginxPrefix::new(&upstreams);
        let https_port = saas_testkit::free_port()?;
        let (ok, output) = prefix.run_https_script(&[
            ("NGINX_HTTPS_LISTEN_PORT", &https_port.to_string()),
            ("PUBLIC_SCHEME", "https"),
            ("PUBLIC_PORT", &https_port.to_string()),
            ("TLS_SELF_SIGNED", "true"),
        ]);
        anyhow::ensure!(ok, "16-https.sh: {output}");
        let nginx = tools::find("nginx").context("nginx")?;
        Ok(Self {
            prefix,
            https_port,
            nginx,
        })
    }

    /// Keys are mode 600 and owned by the worker's user; in compose nginx's
    /// workers run as that user (uid 101). Here the tests' user.
    fn start(&self) -> RunningNginx {
        let user = if is_root() { "user root;" } else { "" };
        self.prefix.start_with(&self.nginx, user)
    }

    /// What 40-reload-on-routing-change.sh does when the maps change.
    fn reload(&self) -> anyhow::Result<()> {
        let output = Command::new(&self.nginx)
            .args(self.prefix.args())
            .args(["-s", "reload"])
            .output()?;
        anyhow::ensure!(output.status.success(), "{output:?}");
        // The old workers finish; new handshakes reach the new ones.
        std::thread::sleep(Duration::from_millis(800));
        Ok(())
    }

    fn map_dir(&self) -> PathBuf {
        self.prefix.scratch.path().join("routing/domains")
    }
}

async fn wait_domain(
    platform: &Platform,
    id: Uuid,
    done: impl Fn(&TenantDomain) -> bool,
) -> anyhow::Result<TenantDomain> {
    for _ in 0..600 {
        if let Some(domain) = domains::find(&platform.pool, id).await?
            && done(&domain)
        {
            return Ok(domain);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let now = domains::find(&platform.pool, id).await?;
    anyhow::bail!(
        "domain never got there: {now:?}\nworker log:\n{}",
        platform.worker.log()
    )
}

fn actor() -> Actor {
    Actor::system("test")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customers_domain_is_verified_certified_served_renewed_and_removed() -> anyhow::Result<()>
{
    if tools::require("pebble").is_none()
        || tools::require("dnsmasq").is_none()
        || tools::require("nginx").is_none()
    {
        return Ok(());
    }
    let edge = Edge::new()?;
    let scratch = tempfile::tempdir()?;
    let dns_port = saas_testkit::free_port()?;
    let pebble = Pebble::start(scratch.path(), edge.prefix.port, dns_port)?;
    let world = OdooWorld::new().await?;
    let routing = edge.prefix.routing_map();
    let env = [
        ("ROUTING_MAP_PATH", routing.to_string_lossy().into_owned()),
        ("DNS_RESOLVERS", format!("127.0.0.1:{dns_port}")),
        (
            "ACME_DIRECTORY_URL",
            format!("https://127.0.0.1:{}/dir", pebble.port),
        ),
        (
            "ACME_CA_BUNDLE",
            pebble.ca_bundle.to_string_lossy().into_owned(),
        ),
        ("ACME_CONTACT_EMAIL", "ops@saas.test".to_owned()),
        ("WORKER_RETRY_BASE_MS", "300".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let platform = Platform::start_with(&world, &env).await?;
    let spec = |subdomain| NewTenantSpec {
        subdomain,
        max_backups: 3,
        max_storage_mb: 1024,
    };
    // Tenant databases live on the shared test cluster: names of this run.
    let run = &Uuid::new_v4().simple().to_string()[..8];
    let (acme_sub, globex_sub) = (format!("acme-{run}"), format!("globex-{run}"));
    // nginx answers Pebble's HTTP-01 requests from the start.
    let _nginx = edge.start();
    let acme = platform.active_tenant(&world, &spec(&acme_sub)).await?;
    let globex = platform.active_tenant(&world, &spec(&globex_sub)).await?;

    // Customers' input, as typed: normalised, refused when not theirs to claim.
    let (erp, created) = domains::add(
        &platform.pool,
        Some(&platform.queue),
        acme.tenant,
        " ERP.Acme.TEST. ",
        BASE,
        &actor(),
    )
    .await?;
    assert!(created && erp.is_primary && erp.domain == "erp.acme.test");
    let (again, created) = domains::add(
        &platform.pool,
        None,
        acme.tenant,
        "erp.acme.test",
        BASE,
        &actor(),
    )
    .await?;
    assert!(
        !created && again.id == erp.id,
        "a repeated add adds nothing"
    );
    let taken = domains::add(
        &platform.pool,
        None,
        globex.tenant,
        "erp.acme.test",
        BASE,
        &actor(),
    )
    .await;
    assert!(matches!(taken, Err(DomainError::Taken)), "{taken:?}");
    let ours = domains::add(
        &platform.pool,
        None,
        globex.tenant,
        "shop.saas.test",
        BASE,
        &actor(),
    )
    .await;
    assert!(
        matches!(&ours, Err(DomainError::Invalid(e)) if e.reason.contains("belong to the platform")),
        "{ours:?}"
    );
    // Two wrong setups on globex: no TXT record; a CNAME elsewhere.
    let (no_txt, _) = domains::add(
        &platform.pool,
        Some(&platform.queue),
        globex.tenant,
        "no-txt.globex.test",
        BASE,
        &actor(),
    )
    .await?;
    let (elsewhere, _) = domains::add(
        &platform.pool,
        Some(&platform.queue),
        globex.tenant,
        "elsewhere.globex.test",
        BASE,
        &actor(),
    )
    .await?;
    let limit = domains::add(
        &platform.pool,
        None,
        globex.tenant,
        "third.globex.test",
        BASE,
        &actor(),
    )
    .await;
    assert!(matches!(limit, Err(DomainError::Limit(_))), "{limit:?}");

    let _dns = dnsmasq(
        dns_port,
        scratch.path(),
        &[
            // Authoritative for these: a missing record is NXDOMAIN or
            // NODATA, as on the Internet, not a refusal.
            "--local=/test/".to_owned(),
            "--local=/example/".to_owned(),
            format!("--host-record={acme_sub}.{BASE},127.0.0.1"),
            format!("--host-record={globex_sub}.{BASE},127.0.0.1"),
            "--host-record=x.example,192.0.2.10".to_owned(),
            format!("--cname=erp.acme.test,{acme_sub}.{BASE}"),
            format!("--txt-record=_odoo-saas.erp.acme.test,{}", erp.token),
            "--host-record=no-txt.globex.test,127.0.0.1".to_owned(),
            "--cname=elsewhere.globex.test,x.example".to_owned(),
            format!(
                "--txt-record=_odoo-saas.elsewhere.globex.test,{}",
                elsewhere.token
            ),
        ],
    )?;

    let live = wait_domain(&platform, erp.id, |d| d.state == DomainState::Live).await?;
    // The maps are written once the sync has seen every domain of the
    // tenant: its operation's end, not the state, says they are there.
    platform.wait_idle(acme.tenant).await?;
    assert!(
        live.cert_issuer.is_some() && live.cert_not_after.is_some(),
        "{live:?}"
    );
    let stuck = wait_domain(&platform, no_txt.id, |d| d.reason.is_some()).await?;
    assert_eq!(
        stuck.reason.as_deref(),
        Some("TXT record not found at _odoo-saas.no-txt.globex.test")
    );
    assert_eq!(stuck.state, DomainState::PendingDns);
    let stuck = wait_domain(&platform, elsewhere.id, |d| d.reason.is_some()).await?;
    assert_eq!(stuck.reason.as_deref(), Some("CNAME points to x.example"));

    // The key is the worker's alone; nginx's maps name it.
    let store = edge
        .prefix
        .scratch
        .path()
        .join("routing/certs/erp.acme.test");
    let version = std::fs::read_dir(&store)?
        .next()
        .context("a certificate version")??
        .path();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(version.join("privkey.pem"))?.permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let keys = std::fs::read_to_string(edge.map_dir().join("keys.map"))?;
    assert!(keys.contains("erp.acme.test "), "{keys}");
    let tenants_map = std::fs::read_to_string(edge.map_dir().join("tenants.map"))?;
    assert!(
        tenants_map.contains(&format!("erp.acme.test {acme_sub};")),
        "{tenants_map}"
    );

    // The reload poller's part: the maps changed.
    edge.reload()?;
    let root = pebble.issuing_root()?;
    let trusting = client(&[root]);
    let name = "erp.acme.test";
    let authority = format!("{name}:{}", edge.https_port);
    let first = https_get(&trusting, edge.https_port, name, &authority, "/web/login")
        .with_context(|| edge.prefix.log())?;
    // The fake Odoo's dbfilter picked the tenant's database from the host
    // nginx handed it: the custom domain routes to the tenant.
    assert_eq!(
        first.response.status,
        200,
        "{:?}\n{}",
        first.response,
        edge.prefix.log()
    );
    let stored = CertificateDer::from_pem_file(version.join("fullchain.pem"))?;
    assert_eq!(
        first.leaf, stored,
        "nginx serves the certificate Pebble issued"
    );
    // Plain HTTP redirects to HTTPS on the same name.
    let plain = http::get(edge.prefix.port, name, "/web/login")?;
    assert_eq!(plain.status, 308, "{plain:?}");
    assert_eq!(
        plain.header("Location"),
        Some(format!("https://{authority}/web/login").as_str())
    );
    let database = https_get(
        &trusting,
        edge.https_port,
        name,
        &authority,
        "/web/database/manager",
    )?;
    assert_eq!(database.response.status, 403);

    // A forced renewal (the operator's retry): a new certificate, served
    // once nginx reloads.
    domains::retry(
        &platform.pool,
        Some(&platform.queue),
        erp.id,
        &actor(),
        Some("forced renewal"),
    )
    .await?;
    let renewed = wait_domain(&platform, erp.id, |d| {
        d.renew_requested_at.is_none() && d.renewed_at != live.renewed_at
    })
    .await?;
    assert!(renewed.renewal_error.is_none(), "{renewed:?}");
    platform.wait_idle(acme.tenant).await?;
    edge.reload()?;
    // A new client: a resumed TLS session would show the old certificate.
    let issuing_root = pebble.issuing_root()?;
    let trusting = client(std::slice::from_ref(&issuing_root));
    let second = https_get(&trusting, edge.https_port, name, &authority, "/web/login")?;
    assert_eq!(second.response.status, 200);
    assert_ne!(second.leaf, first.leaf, "the renewed certificate is served");

    // A renewal the CA cannot answer: the failure is recorded and counted,
    // the domain stays live and nginx keeps serving the current certificate.
    let current = std::fs::read_to_string(edge.map_dir().join("keys.map"))?;
    drop(pebble);
    domains::retry(
        &platform.pool,
        Some(&platform.queue),
        erp.id,
        &actor(),
        Some("renewal while the CA is down"),
    )
    .await?;
    let failed = wait_domain(&platform, erp.id, |d| d.renewal_error.is_some()).await?;
    platform.wait_idle(acme.tenant).await?;
    assert_eq!(failed.state, DomainState::Live, "{failed:?}");
    assert_eq!(failed.cert_not_after, renewed.cert_not_after, "{failed:?}");
    assert_eq!(
        std::fs::read_to_string(edge.map_dir().join("keys.map"))?,
        current,
        "the maps still name the current key"
    );
    edge.reload()?;
    let trusting = client(&[issuing_root]);
    let kept = https_get(&trusting, edge.https_port, name, &authority, "/web/login")?;
    assert_eq!(kept.response.status, 200);
    assert_eq!(
        kept.leaf, second.leaf,
        "the old certificate is still served"
    );
    let metrics = http::get(platform.port, "127.0.0.1", "/metrics")?;
    assert!(
        metrics
            .body
            .lines()
            .any(|line| line == "certificate_renewal_failures_total 1"),
        "{}",
        metrics.body
    );

    // Suspended: the suspended page, over HTTPS on the customer's domain.
    platform
        .run(acme.tenant, OperationKind::Suspend, serde_json::json!({}))
        .await?;
    edge.reload()?;
    let suspended = https_get(&trusting, edge.https_port, name, &authority, "/web/login")?;
    assert_eq!(suspended.response.status, 503, "{:?}", suspended.response);

    // Removed: route, certificate and map entries go; nginx no longer
    // completes a handshake for the name.
    domains::remove(
        &platform.pool,
        Some(&platform.queue),
        acme.tenant,
        erp.id,
        &actor(),
        Some("end of the test"),
    )
    .await?;
    platform.wait_idle(acme.tenant).await?;
    assert!(
        !store.exists(),
        "the certificate store still holds the domain"
    );
    for map in [
        "tenants.map",
        "certificates.map",
        "keys.map",
        "server-names.conf",
    ] {
        let text = std::fs::read_to_string(edge.map_dir().join(map))?;
        assert!(!text.contains("erp.acme.test"), "{map}: {text}");
    }
    edge.reload()?;
    assert!(
        https_get(&trusting, edge.https_port, name, &authority, "/web/login").is_err(),
        "nginx still serves the removed domain"
    );
    drop(platform);
    saas_testkit::odoo::drop_databases_containing(run).await?;
    Ok(())
}
