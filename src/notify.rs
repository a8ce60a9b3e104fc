//! Telling monitors about backups: a POST to the set's `start` URL when a
//! backup starts, to `success` or `failure` when it ends (healthchecks.io's
//! convention: the failure's body is the error's last lines), and a JSON
//! document to `webhook` at both moments.
//!
//! A notification never changes a backup's outcome. Each is tried up to
//! [`ATTEMPTS`] times, `timeout` each, and what went wrong is logged as a
//! warning naming only the URL's scheme and host: the rest of a ping URL
//! (a healthchecks UUID, a token) is a secret. The start notifications are
//! sent while the backup runs, and the end ones after them, so a monitor
//! sees them in order.
//!
//! The webhook document, for `start`, `success` and `failure` alike (what a
//! run does not know yet is `null`):
//!
//! ```json
//! {"event": "failure", "outcome": "cancelled", "set": "prod",
//!  "backup_id": null, "started_at": "2026-12-02T01:00:00Z",
//!  "finished_at": "2026-12-02T01:00:09.5Z", "duration_seconds": 9.5,
//!  "objects": [], "error": "interrupted: …", "host": "db1",
//!  "sluice_version": "0.1.0"}
//! ```

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Request, StatusCode, Uri,
    header::{self, HeaderValue},
};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use jiff::Timestamp;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::{catalog::Manifest, config::NotifyConfig, redact};

/// Attempts per notification.
pub const ATTEMPTS: u32 = 3;
/// The wait before the second attempt; it doubles before each further one.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Lines of the error a failure notification carries.
const TAIL_LINES: usize = 20;
/// Bytes of the error a failure notification carries, at most.
const TAIL_BYTES: usize = 10_000;

const USER_AGENT: &str = concat!("sluice/", env!("CARGO_PKG_VERSION"));

/// How a backup run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The backup is committed and everything after it (pruning, the
    /// `after` hook) succeeded: sluice exits 0.
    Success,
    /// Something failed: the lease, the `before` hook, a dump, the store,
    /// pruning, the `after` hook.
    Failure,
    /// A signal (SIGTERM, Ctrl-C) stopped the run.
    Cancelled,
}

impl Outcome {
    /// As written in the webhook document.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// How a run ended, for its end notifications.
#[derive(Debug)]
pub struct End<'a> {
    /// The outcome.
    pub outcome: Outcome,
    /// The backup, if one was committed (also when something after the
    /// commit failed).
    pub manifest: Option<&'a Manifest>,
    /// The error, as sluice prints it, when the run did not succeed.
    pub error: Option<&'a str>,
}

/// The notifications of one backup run.
#[derive(Debug)]
pub struct Notifier {
    sender: Arc<Sender>,
    start: JoinHandle<()>,
}

impl Notifier {
    /// Sends the start notifications of a run of `set` in the background, so
    /// they never hold up the dump. Needs a Tokio runtime.
    pub fn start(config: &NotifyConfig, set: &str) -> Self {
        let endpoint = |key: &str, url: Option<&str>| {
            let parsed = Endpoint::parse(url?);
            if parsed.is_none() {
                tracing::warn!(
                    "notify.{key} is not an http:// or https:// URL, so nothing is sent to it"
                );
            }
            parsed
        };
        let sender = Arc::new(Sender {
            client: client(),
            timeout: config.timeout,
            start: endpoint("start", config.start.as_deref()),
            success: endpoint("success", config.success.as_deref()),
            failure: endpoint("failure", config.failure.as_deref()),
            webhook: endpoint("webhook", config.webhook.as_deref()),
            set: set.to_owned(),
            host: rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned(),
            started_at: Timestamp::now(),
            started: Instant::now(),
        });
        let start = tokio::spawn({
            let sender = Arc::clone(&sender);
            async move { sender.started().await }
        });
        Self { sender, start }
    }

    /// Sends the end notifications, once the start ones are done.
    pub async fn finish(self, end: &End<'_>) {
        let _ = self.start.await;
        self.sender.finished(end).await;
    }
}

/// A notification URL, ready to send to.
#[derive(Debug)]
struct Endpoint {
    /// The URL without its user name and password.
    uri: Uri,
    /// Basic authentication from the URL's `user:password@`, if any.
    authorization: Option<HeaderValue>,
    /// `scheme://host[:port]/…`, for messages.
    shown: String,
}

impl Endpoint {
    fn parse(url: &str) -> Option<Self> {
        let mut url = url::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))?;
        let host = url.host_str()?;
        let shown = match url.port() {
            Some(port) => format!("{}://{host}:{port}/…", url.scheme()),
            None => format!("{}://{host}/…", url.scheme()),
        };
        let authorization = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            let decode = |s: &str| percent_encoding::percent_decode_str(s).collect::<Vec<u8>>();
            let mut credentials = decode(url.username());
            credentials.push(b':');
            credentials.extend(decode(url.password().unwrap_or_default()));
            let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
            let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
            value.set_sensitive(true);
            Some(value)
        };
        url.set_username("").ok()?;
        url.set_password(None).ok()?;
        Some(Self {
            uri: url.as_str().parse().ok()?,
            authorization,
            shown,
        })
    }
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// An HTTP/1 client for http:// and https:// URLs, trusting the system's
/// CA certificates, on the rustls and aws-lc-rs the S3 client uses too.
fn client() -> HttpClient {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(Arc::clone(&provider))
        .unwrap_or_else(|e| {
            tracing::warn!(
                "https:// notifications will fail: no CA certificates were found ({e}); install the system's CA bundle (ca-certificates)"
            );
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("aws-lc-rs supports rustls's default protocol versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            HttpsConnectorBuilder::new().with_tls_config(config)
        });
    Client::builder(TokioExecutor::new()).build(tls.https_or_http().enable_http1().build())
}

/// What the notifications of one run share.
#[derive(Debug)]
struct Sender {
    client: HttpClient,
    timeout: Duration,
    start: Option<Endpoint>,
    success: Option<Endpoint>,
    failure: Option<Endpoint>,
    webhook: Option<Endpoint>,
    set: String,
    host: String,
    started_at: Timestamp,
    started: Instant,
}

impl Sender {
    async fn started(&self) {
        let document = self.document("start", None, None);
        tokio::join!(
            self.ping("start", self.start.as_ref(), String::new()),
            self.post_json("start", &document),
        );
    }

    async fn finished(&self, end: &End<'_>) {
        let error = end.error.map(tail);
        let (event, ping, body) = match end.outcome {
            Outcome::Success => ("success", &self.success, self.summary(end.manifest)),
            Outcome::Failure | Outcome::Cancelled => {
                ("failure", &self.failure, error.clone().unwrap_or_default())
            }
        };
        let document = self.document(event, Some(end), error.as_deref());
        tokio::join!(
            self.ping(event, ping.as_ref(), body),
            self.post_json(event, &document),
        );
    }

    /// The webhook document (see the module's documentation).
    fn document(
        &self,
        event: &str,
        end: Option<&End<'_>>,
        error: Option<&str>,
    ) -> serde_json::Value {
        let manifest = end.and_then(|e| e.manifest);
        let objects: Vec<_> = manifest
            .iter()
            .flat_map(|m| &m.objects)
            .map(|o| {
                json!({
                    "source": o.source,
                    "object": o.name,
                    "bytes_read": o.plaintext_size,
                    "bytes_stored": o.stored_size,
                })
            })
            .collect();
        let seconds = (self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
        json!({
            "event": event,
            "outcome": end.map(|e| e.outcome.as_str()),
            "set": self.set,
            "backup_id": manifest.map(|m| m.id.to_string()),
            "started_at": self.started_at,
            "finished_at": end.map(|_| Timestamp::now()),
            "duration_seconds": end.map(|_| seconds),
            "objects": objects,
            "error": error,
            "host": self.host,
            "sluice_version": env!("CARGO_PKG_VERSION"),
        })
    }

    /// The body of the success ping: `SET@ID: N bytes read, M stored in S s`.
    fn summary(&self, manifest: Option<&Manifest>) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        match manifest {
            Some(m) => {
                let read: u64 = m.objects.iter().map(|o| o.plaintext_size).sum();
                let stored: u64 = m.objects.iter().map(|o| o.stored_size).sum();
                format!(
                    "{}@{}: {read} bytes read, {stored} bytes stored, in {elapsed:.1} s\n",
                    m.set, m.id
                )
            }
            None => format!("{}: succeeded in {elapsed:.1} s\n", self.set),
        }
    }

    async fn ping(&self, what: &str, endpoint: Option<&Endpoint>, body: String) {
        if let Some(endpoint) = endpoint {
            let what = format!("the {what} ping");
            self.deliver(&what, endpoint, "text/plain; charset=utf-8", body.into())
                .await;
        }
    }

    async fn post_json(&self, event: &str, document: &serde_json::Value) {
        if let Some(endpoint) = &self.webhook {
            let what = format!("the webhook's {event} event");
            let body = serde_json::to_vec(document).expect("a JSON value serializes");
            self.deliver(&what, endpoint, "application/json", body.into())
                .await;
        }
    }

    /// POSTs `body`, retrying timeouts, connection errors and answers that
    /// say "later" (5xx, 408, 429); logs what went wrong.
    async fn deliver(&self, what: &str, endpoint: &Endpoint, content_type: &str, body: Bytes) {
        let to = &endpoint.shown;
        let mut delay = FIRST_RETRY;
        for attempt in 1..=ATTEMPTS {
            let sent = tokio::time::timeout(
                self.timeout,
                self.post(endpoint, content_type, body.clone()),
            )
            .await;
            let problem = match sent {
                Ok(Ok(status)) if status.is_success() => {
                    tracing::debug!("sent {what} to {to}");
                    return;
                }
                Ok(Ok(status)) if retried(status) => format!("it answered {status}"),
                Ok(Ok(status)) => {
                    tracing::warn!(
                        "could not send {what} to {to}: it answered {status}; check the URL (the backup's outcome is not affected)"
                    );
                    return;
                }
                Ok(Err(e)) => e,
                Err(_) => format!("no answer within {:?}", self.timeout),
            };
            if attempt < ATTEMPTS {
                tracing::warn!(
                    "could not send {what} to {to} (attempt {attempt} of {ATTEMPTS}): {problem}; trying again in {delay:?}"
                );
                tokio::time::sleep(delay).await;
                delay *= 2;
            } else {
                tracing::warn!(
                    "gave up sending {what} to {to} after {ATTEMPTS} attempts: {problem} (the backup's outcome is not affected)"
                );
            }
        }
    }

    async fn post(
        &self,
        endpoint: &Endpoint,
        content_type: &str,
        body: Bytes,
    ) -> Result<StatusCode, String> {
        let mut request = Request::post(endpoint.uri.clone())
            .header(header::CONTENT_TYPE, content_type)
            .header(header::USER_AGENT, USER_AGENT);
        if let Some(authorization) = &endpoint.authorization {
            request = request.header(header::AUTHORIZATION, authorization.clone());
        }
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        let response = self.client.request(request).await.map_err(|e| {
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text = format!("{text}: {c}");
                cause = c.source();
            }
            redact::credentials(&text).into_owned()
        })?;
        Ok(response.status())
    }
}

/// Whether an answer says to try again later.
fn retried(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// The last lines of an error, at most [`TAIL_BYTES`], with credentials in
/// URLs masked.
fn tail(error: &str) -> String {
    let lines: Vec<&str> = error.lines().collect();
    let kept = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
    let mut start = kept.len().saturating_sub(TAIL_BYTES);
    while !kept.is_char_boundary(start) {
        start += 1;
    }
    redact::credentials(&kept[start..]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_shown_by_scheme_and_host_only() {
        for (url, shown) in [
            (
                "https://hc-ping.com/5a1e0f7c-0000-4000-8000-000000000000/fail",
                "https://hc-ping.com/…",
            ),
            (
                "http://user:pw@127.0.0.1:8080/hook?token=abc",
                "http://127.0.0.1:8080/…",
            ),
            ("https://[::1]:443/x", "https://[::1]/…"),
        ] {
            assert_eq!(Endpoint::parse(url).unwrap().shown, shown);
        }
    }

    #[test]
    fn credentials_in_a_url_become_basic_authentication() {
        let endpoint = Endpoint::parse("https://ops:p%40ss%3Aw@hooks.example/in?x=1").unwrap();
        assert_eq!(endpoint.uri.to_string(), "https://hooks.example/in?x=1");
        let authorization = endpoint.authorization.unwrap();
        assert!(authorization.is_sensitive());
        // "ops:p@ss:w"
        assert_eq!(authorization, "Basic b3BzOnBAc3M6dw==");
        assert!(
            Endpoint::parse("https://hooks.example/in")
                .unwrap()
                .authorization
                .is_none()
        );
    }

    #[test]
    fn only_http_urls_are_endpoints() {
        for url in [
            "ftp://host/x",
            "file:///tmp/x",
            "mailto:ops@example.com",
            "not a url",
        ] {
            assert!(Endpoint::parse(url).is_none(), "{url}");
        }
    }

    #[test]
    fn the_tail_keeps_the_last_lines_and_masks_credentials() {
        let error: String = (1..=30)
            .map(|n| format!("line {n} postgres://app:hunter2@db/app\n"))
            .collect();
        let tail = tail(&error);
        assert_eq!(tail.lines().count(), TAIL_LINES);
        assert!(tail.starts_with("line 11 "), "{tail}");
        assert!(tail.ends_with("line 30 postgres://***@db/app"), "{tail}");
        assert!(!tail.contains("hunter2"));
    }

    #[test]
    fn the_tail_is_cut_to_its_byte_limit_on_a_character_boundary() {
        let error = "é".repeat(TAIL_BYTES);
        let tail = tail(&error);
        assert!(tail.len() <= TAIL_BYTES);
        assert!(tail.len() >= TAIL_BYTES - 1);
        assert!(tail.chars().all(|c| c == 'é'));
    }

    #[test]
    fn only_answers_that_say_later_are_retried() {
        for (status, again) in [
            (StatusCode::INTERNAL_SERVER_ERROR, true),
            (StatusCode::BAD_GATEWAY, true),
            (StatusCode::TOO_MANY_REQUESTS, true),
            (StatusCode::REQUEST_TIMEOUT, true),
            (StatusCode::NOT_FOUND, false),
            (StatusCode::UNAUTHORIZED, false),
        ] {
            assert_eq!(retried(status), again, "{status}");
        }
    }
}
