//! A real S3-protocol server for the tests: s3s-fs 0.14 over a temporary
//! directory, in process behind HTTP on 127.0.0.1 with SigV4 checking, and
//! a small fault-injecting proxy in front of it that fails chosen
//! `UploadPart` and `CompleteMultipartUpload` requests by count (an HTTP
//! 500, a connection dropped in the middle of the body, no answer, or an
//! answer lost after the server acted), can refuse every `DELETE` as a
//! role without delete permission would be, keeps each request's head for
//! the tests to look at, and passes everything else through.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto::Builder,
};
use s3s::{auth::SimpleAuth, service::S3ServiceBuilder};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use super::World;

pub const ACCESS_KEY: &str = "AKIDSLUICETEST";
pub const SECRET_KEY: &str = "sluice-test-secret";
pub const BUCKET: &str = "bucket";
/// The store's key prefix in the bucket.
pub const PREFIX: &str = "backups";

/// What the proxy does to a request it fails.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Answer `500 InternalError` without passing the request on.
    InternalError,
    /// Read part of the body, then close the connection.
    Drop,
    /// Read the request and never answer.
    Hang,
    /// Pass the request on, then drop the connection instead of relaying
    /// the server's answer: the request took effect, the client never knows.
    LoseAnswer,
}

type Rule = Box<dyn Fn(usize) -> Option<Fault> + Send + Sync>;

/// One kind of request: how many were seen, and which of them fail.
#[derive(Default)]
struct FaultPoint {
    seen: AtomicUsize,
    rule: Mutex<Option<Rule>>,
}

impl FaultPoint {
    /// Counts a request and says what to do to it.
    fn next(&self) -> Option<Fault> {
        let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        self.rule.lock().unwrap().as_ref().and_then(|r| r(n))
    }

    fn set(&self, rule: impl Fn(usize) -> Option<Fault> + Send + Sync + 'static) {
        *self.rule.lock().unwrap() = Some(Box::new(rule));
    }
}

/// The requests the proxy can fail, and what it saw.
#[derive(Default)]
struct Faults {
    upload_parts: FaultPoint,
    completes: FaultPoint,
    /// Answer every `DELETE` with 403 AccessDenied.
    refuse_deletes: AtomicBool,
    /// The head (request line and headers) of every request, in order.
    heads: Mutex<Vec<String>>,
}

/// s3s-fs behind the fault-injecting proxy.
pub struct S3Server {
    /// s3s-fs's root: `<root>/<bucket>/<key>` holds each object.
    pub root: tempfile::TempDir,
    /// The proxy's address, for `endpoint`.
    pub endpoint: String,
    faults: Arc<Faults>,
    _runtime: tokio::runtime::Runtime,
}

impl S3Server {
    pub fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join(BUCKET)).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let faults = Arc::new(Faults::default());
        let fs_root = root.path().to_owned();
        let (upstream, endpoint) = runtime.block_on(async {
            let upstream = serve_s3s_fs(&fs_root).await;
            let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let endpoint = format!("http://{}", proxy.local_addr().unwrap());
            (upstream, (proxy, endpoint))
        });
        let (proxy, endpoint) = endpoint;
        {
            let faults = Arc::clone(&faults);
            runtime.spawn(async move {
                while let Ok((client, _)) = proxy.accept().await {
                    let faults = Arc::clone(&faults);
                    tokio::spawn(async move {
                        let _ = relay(client, upstream, &faults).await;
                    });
                }
            });
        }
        Self {
            root,
            endpoint,
            faults,
            _runtime: runtime,
        }
    }

    /// Fails the `n`th `UploadPart` request (counting from 1) as `rule(n)`
    /// says.
    pub fn fail_upload_parts(&self, rule: impl Fn(usize) -> Option<Fault> + Send + Sync + 'static) {
        self.faults.upload_parts.set(rule);
    }

    /// Fails the `n`th `CompleteMultipartUpload` request as `rule(n)` says.
    pub fn fail_completes(&self, rule: impl Fn(usize) -> Option<Fault> + Send + Sync + 'static) {
        self.faults.completes.set(rule);
    }

    /// Answers every `DELETE` request (objects and multipart uploads) with
    /// 403 AccessDenied from now on, as S3 does for credentials without
    /// delete permission.
    pub fn refuse_deletes(&self) {
        self.faults.refuse_deletes.store(true, Ordering::SeqCst);
    }

    /// The head (request line and headers) of every request so far.
    pub fn request_heads(&self) -> Vec<String> {
        self.faults.heads.lock().unwrap().clone()
    }

    /// `UploadPart` requests seen so far, failed ones included.
    pub fn upload_part_requests(&self) -> usize {
        self.faults.upload_parts.seen.load(Ordering::SeqCst)
    }

    /// The file s3s-fs keeps an object of the store in.
    pub fn object_file(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(PREFIX).join(key)
    }

    /// An S3 client of the test's own (not sluice's) for this server, with
    /// the test credentials: what any other tool would see.
    pub fn client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .force_path_style(true)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "test",
            ))
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Files of multipart uploads s3s-fs still holds: `.upload-<id>.json`
    /// and the parts, `.upload_id-<id>.part-<n>`.
    pub fn pending_uploads(&self) -> usize {
        fs::read_dir(self.root.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".upload"))
            .count()
    }
}

async fn serve_s3s_fs(root: &Path) -> std::net::SocketAddr {
    let mut builder = S3ServiceBuilder::new(s3s_fs::FileSystem::new(root).unwrap());
    builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let service = service.clone();
            tokio::spawn(async move {
                let _ = Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    addr
}

/// Relays one request: its head is read and rewritten to
/// `Connection: close`, so each connection carries exactly one request and
/// requests can be counted (and failed) one by one.
async fn relay(
    mut client: TcpStream,
    upstream: std::net::SocketAddr,
    faults: &Faults,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 4096];
    let body_start = loop {
        let n = client.read(&mut byte).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&byte[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let text = String::from_utf8_lossy(&head[..body_start]).into_owned();
    faults.heads.lock().unwrap().push(text.clone());
    let request_line = text.lines().next().unwrap_or_default();
    if request_line.starts_with("DELETE ") && faults.refuse_deletes.load(Ordering::SeqCst) {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied (the test proxy refuses deletes)</Message></Error>";
        let response = format!(
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        client.write_all(response.as_bytes()).await?;
        client.shutdown().await?;
        while client.read(&mut byte).await? > 0 {}
        return Ok(());
    }
    let fault = if request_line.starts_with("PUT ") && request_line.contains("partNumber=") {
        faults.upload_parts.next()
    } else if request_line.starts_with("POST ") && request_line.contains("uploadId=") {
        faults.completes.next()
    } else {
        None
    };
    match fault {
        Some(Fault::InternalError) => {
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code><Message>injected by the test proxy</Message></Error>";
            let response = format!(
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            client.write_all(response.as_bytes()).await?;
            client.shutdown().await?;
            // Drain what the client still sends, so it reads the answer
            // instead of a reset.
            while client.read(&mut byte).await? > 0 {}
            Ok(())
        }
        Some(Fault::Hang) => {
            // Hold the connection until the client gives up on it.
            while client.read(&mut byte).await? > 0 {}
            Ok(())
        }
        Some(Fault::Drop) => {
            let mut seen = head.len() - body_start;
            while seen < 64 * 1024 {
                let n = client.read(&mut byte).await?;
                if n == 0 {
                    break;
                }
                seen += n;
            }
            Ok(())
        }
        Some(Fault::LoseAnswer) => {
            let mut server = forward(&text, &head[body_start..], upstream).await?;
            // Pass the rest of the request on, read the whole answer, and
            // drop it with the client's connection.
            let (mut from_server, mut to_server) = server.split();
            let (mut from_client, _to_client) = client.split();
            let pass_request = tokio::io::copy(&mut from_client, &mut to_server);
            let mut answer = Vec::new();
            tokio::select! {
                read = from_server.read_to_end(&mut answer) => read.map(drop),
                // The client gave up; the server has the whole request.
                _ = pass_request => Ok(()),
            }
        }
        None => {
            let mut server = forward(&text, &head[body_start..], upstream).await?;
            tokio::io::copy_bidirectional(&mut client, &mut server).await?;
            Ok(())
        }
    }
}

/// Opens a connection to the server and sends it a request's head (as
/// `Connection: close`) and the part of its body read so far.
async fn forward(
    head: &str,
    body_start: &[u8],
    upstream: std::net::SocketAddr,
) -> std::io::Result<TcpStream> {
    let mut rewritten = String::new();
    for line in head[..head.len() - 2].split_inclusive("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            rewritten.push_str(line);
        }
    }
    rewritten.push_str("Connection: close\r\n\r\n");
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(rewritten.as_bytes()).await?;
    server.write_all(body_start).await?;
    Ok(server)
}

/// A [`World`] whose store is `s3://bucket/backups` on an [`S3Server`],
/// configured through a config file (endpoint, path-style, 5 MiB parts,
/// millisecond retries) and credentials in the environment.
pub struct S3World {
    pub world: World,
    pub server: S3Server,
}

impl S3World {
    pub fn new() -> Self {
        Self::with_store_settings("")
    }

    /// Like [`S3World::new`], with more `[store]` lines, e.g.
    /// `read-timeout = "1s"`.
    pub fn with_store_settings(extra: &str) -> Self {
        let world = World::new();
        let server = S3Server::start();
        write_config(&world, BUCKET, &server.endpoint, extra);
        Self { world, server }
    }

    /// `sluice --config sluice.toml` with S3 credentials in its environment
    /// and no AWS profile, endpoint or instance metadata of the caller's.
    pub fn command(&self) -> std::process::Command {
        command(&self.world)
    }

    /// [`S3World::command`] with a time limit, for assertions.
    pub fn sluice(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::from_std(self.command());
        cmd.timeout(std::time::Duration::from_secs(120));
        cmd
    }

    /// `sluice backup SET -r … --source SPEC`; the command's output.
    pub fn backup(&self, set: &str, source: &str) -> std::process::Output {
        self.sluice()
            .args([
                "backup",
                set,
                "-r",
                &self.world.recipient,
                "--source",
                source,
            ])
            .output()
            .unwrap()
    }
}

/// Writes the world's `sluice.toml` for `s3://{bucket}/{PREFIX}` at
/// `endpoint` (path-style, 5 MiB parts, millisecond retries) plus `extra`
/// `[store]` lines, and empty AWS config files, so neither the caller's
/// profiles nor a warning about missing files reach the tests.
pub fn write_config(world: &World, bucket: &str, endpoint: &str, extra: &str) {
    fs::write(
        world.path("sluice.toml"),
        format!(
            "[store]\nurl = \"s3://{bucket}/{PREFIX}\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\npath-style = true\npart-size = \"5MiB\"\nparallel-parts = 2\nattempts = 4\nretry-delay = \"1ms\"\n{extra}\n"
        ),
    )
    .unwrap();
    fs::write(world.path("aws-config"), "").unwrap();
}

/// `sluice --config sluice.toml` in `world` (see [`write_config`]; signing
/// as [`World::command`] does) with S3 credentials in its environment and
/// no AWS profile, endpoint or instance metadata of the caller's.
pub fn command(world: &World) -> std::process::Command {
    let mut cmd = world.command();
    cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", world.path("aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", world.path("aws-config"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_S3")
        .args(["--config", "sluice.toml"]);
    cmd
}
