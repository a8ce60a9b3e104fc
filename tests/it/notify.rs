//! Notifications: a local HTTP endpoint receives the start and success
//! pings and the webhook's JSON; a failed backup sends its error's tail with
//! no secret in it; endpoints that are down, answer 500 or never answer are
//! retried and logged, and never fail the backup; https:// works against a
//! server whose CA the system trusts, and only then.

use std::{
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    thread::sleep,
    time::{Duration, Instant},
};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use crate::support::World;

/// A healthchecks check's secret part, as in `https://hc-ping.com/UUID`.
const UUID: &str = "5a1e0f7c-2b6d-4c3e-9f00-5ec7e7c0ffee";
/// The webhook's basic-authentication password.
const HOOK_PASSWORD: &str = "hook-pw-Zq81";
/// The database password a failing dump prints in its connection URL.
const DB_PASSWORD: &str = "db-pw-Kx27";

/// One request an [`Endpoint`] received.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub(crate) path: String,
    /// The request line and headers, as sent.
    pub(crate) head: String,
    pub(crate) body: String,
}

impl Received {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// A local HTTP/1.1 endpoint on its own threads: it records every request
/// and answers each with `status`, or never answers when `status` is None.
pub(crate) struct Endpoint {
    pub(crate) url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Endpoint {
    pub(crate) fn start(status: Option<u16>) -> Self {
        Self::serve("http", move |connection, log| {
            serve(connection, status, log)
        })
    }

    /// An endpoint that answers 200 over TLS with `tls`'s certificate.
    fn start_tls(tls: &Tls) -> Self {
        let certificates = CertificateDer::pem_file_iter(&tls.certificate)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&tls.key).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certificates, key)
            .unwrap(),
        );
        Self::serve("https", move |connection, log| {
            let tls = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            serve(rustls::StreamOwned::new(tls, connection), Some(200), log)
        })
    }

    /// Accepts connections on 127.0.0.1, each handled by `handle` on its
    /// own thread.
    fn serve(
        scheme: &str,
        handle: impl Fn(TcpStream, &Mutex<Vec<Received>>) + Clone + Send + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("{scheme}://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        std::thread::spawn(move || {
            for connection in listener.incoming().flatten() {
                let (log, handle) = (Arc::clone(&log), handle.clone());
                std::thread::spawn(move || handle(connection, &log));
            }
        });
        Self { url, received }
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn on(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

/// Reads one request from `connection`, records it, and answers it (then
/// closes), or holds the connection open without answering.
fn serve(connection: impl Read + Write, status: Option<u16>, log: &Mutex<Vec<Received>>) {
    let mut reader = BufReader::new(connection);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let length = head
        .lines()
        .find_map(|l| {
            let (key, value) = l.split_once(':')?;
            key.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let path = head.split(' ').nth(1).unwrap().to_owned();
    log.lock().unwrap().push(Received {
        path,
        head,
        body: String::from_utf8(body).unwrap(),
    });
    match status {
        Some(status) => {
            let connection = reader.get_mut();
            let _ = write!(
                connection,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = connection.flush();
        }
        None => sleep(Duration::from_secs(60)),
    }
}

/// A test CA's certificate, and a certificate for 127.0.0.1 it signed,
/// made with the openssl command-line tool.
struct Tls {
    ca: PathBuf,
    certificate: PathBuf,
    key: PathBuf,
}

impl Tls {
    fn make(dir: &Path) -> Self {
        let openssl = |args: &str| {
            let out = Command::new("openssl")
                .current_dir(dir)
                .args(args.split_whitespace())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl {args}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
        openssl(&format!(
            "req -x509 -days 1 -subj /CN=sluice-test-CA {key} -keyout ca.key -out ca.pem"
        ));
        openssl(&format!(
            "req -subj /CN=127.0.0.1 {key} -keyout leaf.key -out leaf.csr"
        ));
        fs::write(
            dir.join("leaf.ext"),
            "subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n",
        )
        .unwrap();
        openssl(
            "x509 -req -days 1 -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -extfile leaf.ext -out leaf.pem",
        );
        Self {
            ca: dir.join("ca.pem"),
            certificate: dir.join("leaf.pem"),
            key: dir.join("leaf.key"),
        }
    }
}

/// A URL nothing listens on.
fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// Set `prod` with one command source (`backup` is its argv, as TOML) and
/// the given `notify` table.
fn world(backup: &str, notify: &str) -> World {
    let w = World::new();
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{store}\"\n[keys]\nrecipients = [\"{recipient}\"]\n[sets.prod]\nnotify = {{ {notify} }}\n[[sets.prod.sources]]\nname = \"db\"\nkind = \"command\"\nbackup = {backup}\n",
            store = w.store_url(),
            recipient = w.recipient,
        ),
    )
    .unwrap();
    w
}

/// healthchecks.io-style ping URLs on `endpoint`, as `notify` keys.
fn pings(endpoint: &Endpoint) -> String {
    let base = format!("{}/{UUID}", endpoint.url);
    format!("start = \"{base}/start\", success = \"{base}\", failure = \"{base}/fail\"")
}

fn backup(w: &World) -> std::process::Output {
    w.sluice()
        .args(["--config", "sluice.toml", "backup", "prod"])
        .env("SLUICE_TEST_DB_PASSWORD", DB_PASSWORD)
        .output()
        .unwrap()
}

/// Checks that `text` holds none of `secrets`.
fn assert_none_of(secrets: &[&str], what: &str, text: &str) {
    for secret in secrets {
        assert!(!text.contains(secret), "{what} holds `{secret}`:\n{text}");
    }
}

#[test]
fn a_backup_pings_start_and_success_and_posts_both_events_to_the_webhook() {
    let monitor = Endpoint::start(Some(200));
    let w = world(
        r#"["sh", "-c", "printf 'twelve bytes'"]"#,
        &format!("{}, webhook = \"{}/hook\"", pings(&monitor), monitor.url),
    );
    let out = backup(&w);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let backup = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let id = backup.split_once('@').unwrap().1;

    let paths: Vec<String> = monitor.received().iter().map(|r| r.path.clone()).collect();
    let start = format!("/{UUID}/start");
    let success = format!("/{UUID}");
    assert_eq!(monitor.on(&start).len(), 1, "{paths:?}");
    assert_eq!(monitor.on(&success).len(), 1, "{paths:?}");
    assert!(monitor.on(&format!("/{UUID}/fail")).is_empty(), "{paths:?}");
    // The start ping and the webhook's start event may arrive in either
    // order, but both before the end.
    let position = |path: &str| paths.iter().position(|p| p == path).unwrap();
    assert!(position(&start) < position(&success), "{paths:?}");
    let ping = &monitor.on(&success)[0];
    assert!(ping.head.starts_with("POST "), "{}", ping.head);
    assert!(
        ping.body.starts_with(&format!("{backup}: ")),
        "{}",
        ping.body
    );

    let hooks = monitor.on("/hook");
    assert_eq!(hooks.len(), 2, "{paths:?}");
    assert_eq!(hooks[0].header("content-type"), Some("application/json"));
    let (started, ended) = (hooks[0].json(), hooks[1].json());
    assert_eq!(started["event"], "start");
    assert_eq!(started["set"], "prod");
    assert!(started["outcome"].is_null());
    assert_eq!(ended["event"], "success");
    assert_eq!(ended["outcome"], "success");
    assert_eq!(ended["set"], "prod");
    assert_eq!(ended["backup_id"], id);
    assert_eq!(ended["started_at"], started["started_at"]);
    assert!(ended["duration_seconds"].as_f64().unwrap() >= 0.0);
    assert!(ended["finished_at"].is_string());
    assert!(ended["error"].is_null());
    assert!(!ended["host"].as_str().unwrap().is_empty());
    assert_eq!(ended["sluice_version"], env!("CARGO_PKG_VERSION"));
    let objects = ended["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 1, "{ended}");
    assert_eq!(objects[0]["source"], "db");
    assert_eq!(objects[0]["object"], "db.out.zst.age");
    assert_eq!(objects[0]["bytes_read"], 12);
    let stored = fs::metadata(w.object_path(&backup, "db.out.zst.age")).unwrap();
    assert_eq!(objects[0]["bytes_stored"], stored.len());
}

#[test]
fn a_failed_backup_sends_its_error_tail_without_secrets() {
    let monitor = Endpoint::start(Some(200));
    let w = world(
        r#"["sh", "-c", "echo \"pg_dump: error: connection to $0 failed: FATAL: password authentication failed (dsn: host=db password=$1)\" >&2; exit 1", "postgres://app:${SLUICE_TEST_DB_PASSWORD}@db.internal:5432/app", "${SLUICE_TEST_DB_PASSWORD}"]"#,
        &format!(
            "{}, webhook = \"{}\"",
            pings(&monitor),
            monitor
                .url
                .replace("http://", &format!("http://ops:{HOOK_PASSWORD}@"))
                + "/hook"
        ),
    );
    let out = backup(&w);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );
    let list = w
        .sluice()
        .args(["--config", "sluice.toml", "list", "prod", "--json"])
        .env("SLUICE_TEST_DB_PASSWORD", DB_PASSWORD)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "[]");

    let fail = monitor.on(&format!("/{UUID}/fail"));
    assert_eq!(fail.len(), 1, "{:?}", monitor.received());
    assert!(monitor.on(&format!("/{UUID}")).is_empty());
    assert!(
        fail[0]
            .body
            .contains("connection to postgres://***@db.internal:5432/app failed: FATAL: password authentication failed (dsn: host=db password=***"),
        "{}",
        fail[0].body
    );
    let hooks = monitor.on("/hook");
    assert_eq!(hooks.len(), 2);
    assert!(
        hooks[1]
            .header("authorization")
            .unwrap()
            .starts_with("Basic ")
    );
    let ended = hooks[1].json();
    assert_eq!(ended["event"], "failure");
    assert_eq!(ended["outcome"], "failure");
    assert!(ended["backup_id"].is_null());
    assert_eq!(ended["objects"], serde_json::json!([]));
    let error = ended["error"].as_str().unwrap();
    assert!(error.contains("password authentication failed"), "{error}");
    assert_eq!(error, fail[0].body);

    // The ping URLs hold the UUID, and the webhook's password goes in its
    // Authorization header, base64-encoded, as basic authentication does.
    for request in monitor.received() {
        assert_none_of(
            &[HOOK_PASSWORD, DB_PASSWORD],
            "a request's head",
            &request.head,
        );
        assert_none_of(
            &[HOOK_PASSWORD, DB_PASSWORD],
            "a request's body",
            &request.body,
        );
    }
    assert_none_of(
        &[UUID, HOOK_PASSWORD, DB_PASSWORD],
        "sluice's stderr",
        &stderr,
    );
}

#[test]
fn endpoints_that_are_down_fail_or_hang_do_not_fail_the_backup() {
    let failing = Endpoint::start(Some(500));
    let hanging = Endpoint::start(None);
    let down = closed_port_url();
    let w = world(
        r#"["echo", "dump"]"#,
        &format!(
            "start = \"{}/{UUID}/start\", success = \"{}/{UUID}\", webhook = \"{down}/{UUID}\", timeout = \"1s\"",
            hanging.url, failing.url
        ),
    );
    let started = Instant::now();
    let out = backup(&w);
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(w.listed_ids("prod").len(), 1);

    // Three attempts each, a warning naming only the scheme and host.
    assert_eq!(failing.received().len(), 3, "{stderr}");
    assert_eq!(hanging.received().len(), 3, "{stderr}");
    for (what, url) in [
        ("the success ping", &failing.url),
        ("the start ping", &hanging.url),
        ("the webhook's start event", &down),
        ("the webhook's success event", &down),
    ] {
        assert!(
            stderr.contains(&format!(
                "gave up sending {what} to {url}/… after 3 attempts"
            )),
            "{what}: {stderr}"
        );
    }
    assert!(stderr.contains("it answered 500"), "{stderr}");
    assert!(stderr.contains("no answer within 1s"), "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert_none_of(&[UUID], "sluice's stderr", &stderr);
    // Each round: the attempts' time limits plus 1 s and 2 s between them.
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
}

#[test]
fn a_backup_stopped_by_sigterm_is_reported_as_cancelled() {
    let monitor = Endpoint::start(Some(200));
    // The dump runs in sluice's directory and says when it has started.
    let w = world(
        r#"["sh", "-c", "touch dumping; sleep 30"]"#,
        &format!("{}, webhook = \"{}/hook\"", pings(&monitor), monitor.url),
    );
    let mut sluice = Command::new(assert_cmd::cargo::cargo_bin("sluice"))
        .current_dir(w.dir.path())
        .args(["--config", "sluice.toml", "backup", "prod"])
        .env_remove("SLUICE_CONFIG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !w.path("dumping").exists() {
        assert!(Instant::now() < deadline, "the dump never started");
        sleep(Duration::from_millis(20));
    }
    let kill = Command::new("kill")
        .args(["-TERM", &sluice.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = sluice.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "sluice did not stop after SIGTERM"
        );
        sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1));

    let fail = monitor.on(&format!("/{UUID}/fail"));
    assert_eq!(fail.len(), 1, "{:?}", monitor.received());
    assert!(fail[0].body.contains("interrupted"), "{}", fail[0].body);
    let hooks = monitor.on("/hook");
    assert_eq!(hooks.len(), 2);
    let ended = hooks[1].json();
    assert_eq!(ended["event"], "failure");
    assert_eq!(ended["outcome"], "cancelled");
}

#[test]
fn notifications_go_over_https_to_a_server_the_system_trusts() {
    let (ours, theirs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (tls, other_ca) = (Tls::make(ours.path()), Tls::make(theirs.path()).ca);
    let monitor = Endpoint::start_tls(&tls);
    let w = world(r#"["echo", "dump"]"#, &pings(&monitor));
    // SSL_CERT_FILE stands in for the system's CA bundle.
    let backup = |ca_bundle: &Path| {
        let out = w
            .sluice()
            .args(["--config", "sluice.toml", "backup", "prod"])
            .env("SSL_CERT_FILE", ca_bundle)
            .env_remove("SSL_CERT_DIR")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        stderr
    };

    let stderr = backup(&other_ca);
    assert!(monitor.received().is_empty(), "{stderr}");
    assert!(stderr.contains("invalid peer certificate"), "{stderr}");

    let stderr = backup(&tls.ca);
    assert!(!stderr.contains("WARN"), "{stderr}");
    assert_eq!(monitor.on(&format!("/{UUID}/start")).len(), 1);
    assert_eq!(monitor.on(&format!("/{UUID}")).len(), 1);
}
