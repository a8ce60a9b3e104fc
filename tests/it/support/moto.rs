//! moto (PyPI), an emulator of AWS S3, for what s3s-fs lacks
//! (ListMultipartUploads): one server per test binary on 127.0.0.1, one
//! bucket per test. moto keeps everything in memory, so the buckets go
//! with the server when the test binary exits.
//!
//! The Python that runs it is `SLUICE_TEST_MOTO_PYTHON` (scripts/test.sh
//! installs a pinned moto into `.venv` and sets it), else `python3` if it
//! can import moto. Without either the tests fail, saying so: they are
//! never skipped.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use aws_sdk_s3::{
    Client,
    config::{BehaviorVersion, Credentials, Region},
};

use super::{
    World,
    s3::{ACCESS_KEY, PREFIX, SECRET_KEY},
};

/// Starts moto on a free port, prints the port, and runs until its stdin
/// closes, which happens when the test binary exits, however it exits.
const SERVER: &str = r#"
import logging, sys
logging.getLogger("werkzeug").setLevel(logging.ERROR)
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
"#;

/// The running server: its endpoint, and the process, whose stdin pipe
/// keeps it alive.
struct Moto {
    endpoint: String,
    _server: Child,
}

pub fn python() -> String {
    if let Ok(python) = std::env::var("SLUICE_TEST_MOTO_PYTHON") {
        return python;
    }
    let has_moto = Command::new("python3")
        .args(["-c", "import moto.server"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_moto,
        "the S3 gc tests need moto: run scripts/test.sh, which installs it into .venv, \
         or set SLUICE_TEST_MOTO_PYTHON to a Python with moto[server]==5.2.5"
    );
    "python3".to_owned()
}

fn endpoint() -> &'static str {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    &MOTO
        .get_or_init(|| {
            let python = python();
            let mut child = Command::new(&python)
                .args(["-c", SERVER])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("could not run {python} for moto: {e}"));
            let mut port = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut port)
                .unwrap();
            let port: u16 = port.trim().parse().unwrap_or_else(|_| {
                panic!("moto did not start under {python} (its error is above)")
            });
            Moto {
                endpoint: format!("http://127.0.0.1:{port}"),
                _server: child,
            }
        })
        .endpoint
}

/// A [`World`] whose store is `s3://<its own bucket>/backups` on moto, and
/// an SDK client to look at the bucket behind sluice's back.
pub struct MotoWorld {
    pub world: World,
    pub bucket: String,
    client: Client,
    runtime: tokio::runtime::Runtime,
}

impl MotoWorld {
    pub fn new() -> Self {
        Self::create(false, "")
    }

    /// A world whose bucket has S3 Object Lock enabled, with `extra`
    /// `[store]` lines (such as `object-lock = { … }`).
    pub fn with_object_lock(extra: &str) -> Self {
        Self::create(true, extra)
    }

    fn create(object_lock: bool, extra: &str) -> Self {
        static BUCKETS: AtomicUsize = AtomicUsize::new(0);
        let endpoint = endpoint();
        let bucket = format!(
            "sluice-{}-{}",
            std::process::id(),
            BUCKETS.fetch_add(1, Ordering::SeqCst)
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
            .force_path_style(true)
            .build();
        let client = Client::from_conf(config);
        runtime
            .block_on(
                client
                    .create_bucket()
                    .bucket(&bucket)
                    .object_lock_enabled_for_bucket(object_lock)
                    .send(),
            )
            .unwrap();
        let world = World::new();
        super::s3::write_config(&world, &bucket, endpoint, extra);
        Self {
            world,
            bucket,
            client,
            runtime,
        }
    }

    /// `sluice --config sluice.toml` with credentials for moto.
    pub fn command(&self) -> std::process::Command {
        super::s3::command(&self.world)
    }

    /// [`MotoWorld::command`] with a time limit, for assertions.
    pub fn sluice(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::from_std(self.command());
        cmd.timeout(std::time::Duration::from_secs(120));
        cmd
    }

    /// Starts a multipart upload of the store key `key` (as a backup does)
    /// and leaves it unfinished.
    pub fn start_upload(&self, key: &str) {
        self.runtime
            .block_on(
                self.client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(format!("{PREFIX}/{key}"))
                    .send(),
            )
            .unwrap();
    }

    /// The Object Lock mode and retain-until date (seconds since the epoch)
    /// of the store key `key`, as `HeadObject` shows them (moto 5.2.5 does
    /// not implement `GetObjectRetention`).
    pub fn retention(&self, key: &str) -> (String, i64) {
        let out = self
            .runtime
            .block_on(
                self.client
                    .head_object()
                    .bucket(&self.bucket)
                    .key(format!("{PREFIX}/{key}"))
                    .send(),
            )
            .unwrap();
        (
            out.object_lock_mode()
                .unwrap_or_else(|| panic!("no lock mode on {key}"))
                .as_str()
                .to_owned(),
            out.object_lock_retain_until_date().unwrap().secs(),
        )
    }

    /// Store keys of the bucket's objects, sorted.
    pub fn keys(&self) -> Vec<String> {
        let out = self
            .runtime
            .block_on(self.client.list_objects_v2().bucket(&self.bucket).send())
            .unwrap();
        let mut keys: Vec<String> = out
            .contents()
            .iter()
            .map(|o| {
                o.key()
                    .unwrap()
                    .strip_prefix(&format!("{PREFIX}/"))
                    .unwrap()
                    .to_owned()
            })
            .collect();
        keys.sort();
        keys
    }

    /// Store keys of the bucket's unfinished multipart uploads, sorted.
    pub fn pending_uploads(&self) -> Vec<String> {
        let out = self
            .runtime
            .block_on(
                self.client
                    .list_multipart_uploads()
                    .bucket(&self.bucket)
                    .send(),
            )
            .unwrap();
        assert!(!out.is_truncated().unwrap_or(false));
        let mut keys: Vec<String> = out
            .uploads()
            .iter()
            .map(|u| {
                let key = u.key().unwrap();
                key.strip_prefix(&format!("{PREFIX}/"))
                    .unwrap_or(key)
                    .to_owned()
            })
            .collect();
        keys.sort();
        keys
    }
}
