//! sluice's one retry layer for S3 (the SDK's own retries are disabled, so
//! a failing server costs `attempts` requests, not `attempts` × 3): every
//! call is classified once, and only what another attempt can fix — 5xx,
//! throttling, timeouts, connection resets, a response cut off — is retried,
//! with exponential backoff and jitter.

use std::{future::Future, time::Duration};

use aws_sdk_s3::{
    config::http::HttpResponse,
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
    primitives::ByteStreamError,
};
use aws_smithy_types::retry::ErrorKind;

/// The longest wait between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(20);

/// What kind of failure a request met, as far as callers care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// 404: no such key (or upload).
    NotFound,
    /// The bucket does not exist.
    NoSuchBucket,
    /// 403.
    AccessDenied,
    /// 412: a condition (`If-None-Match: *`) did not hold.
    PreconditionFailed,
    /// 501: the server does not implement the request or one of its headers.
    NotImplemented,
    /// 416: the range starts past the end of the object.
    InvalidRange,
    /// Anything else.
    Other,
}

/// One failed attempt.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) kind: Kind,
    pub(super) retryable: bool,
    pub(super) detail: String,
}

impl Failure {
    /// Classifies an SDK error.
    pub(super) fn from_sdk<E>(err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match &err {
            SdkError::TimeoutError(_) => Self::transient("the request timed out".to_owned()),
            SdkError::DispatchFailure(dispatch) => Self {
                kind: Kind::Other,
                // Transient: a connection closed before the answer came.
                retryable: dispatch.is_io()
                    || dispatch.is_timeout()
                    || dispatch.as_other() == Some(ErrorKind::TransientError),
                detail: DisplayErrorContext(&err).to_string(),
            },
            // A response that could not be read or parsed: most often the
            // connection dropped in the middle of it.
            SdkError::ResponseError(_) => Self::transient(DisplayErrorContext(&err).to_string()),
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                let code = err.code().unwrap_or("");
                let detail = match err.message() {
                    Some(message) if !code.is_empty() => {
                        format!("{code}: {message} (HTTP {status})")
                    }
                    _ if !code.is_empty() => format!("{code} (HTTP {status})"),
                    _ => format!("HTTP {status}"),
                };
                Self::from_status(status, code, detail)
            }
            _ => Self {
                kind: Kind::Other,
                retryable: false,
                detail: DisplayErrorContext(&err).to_string(),
            },
        }
    }

    /// Classifies a service error by its HTTP status and S3 error code.
    pub(super) fn from_status(status: u16, code: &str, detail: String) -> Self {
        let kind = match (status, code) {
            (_, "NoSuchBucket") => Kind::NoSuchBucket,
            (404, _) | (_, "NoSuchKey" | "NotFound" | "NoSuchUpload") => Kind::NotFound,
            (403, _) | (_, "AccessDenied") => Kind::AccessDenied,
            (412, _) | (_, "PreconditionFailed") => Kind::PreconditionFailed,
            (501, _) | (_, "NotImplemented") => Kind::NotImplemented,
            (416, _) | (_, "InvalidRange") => Kind::InvalidRange,
            _ => Kind::Other,
        };
        let throttled = matches!(
            code,
            "SlowDown"
                | "Throttling"
                | "ThrottlingException"
                | "RequestTimeout"
                | "RequestTimeoutException"
                | "InternalError"
                | "ServiceUnavailable"
                // Two conditional writes raced; the next attempt decides.
                | "ConditionalRequestConflict"
        );
        let retryable = kind == Kind::Other && (status >= 500 || status == 429 || throttled);
        Self {
            kind,
            retryable,
            detail,
        }
    }

    /// A response body that broke off while being read.
    pub(super) fn body(err: ByteStreamError) -> Self {
        Self::transient(format!(
            "the response was cut off: {}",
            DisplayErrorContext(&err)
        ))
    }

    /// A response that is well-formed but unusable (a missing field).
    pub(super) fn invalid(detail: &str) -> Self {
        Self {
            kind: Kind::Other,
            retryable: false,
            detail: detail.to_owned(),
        }
    }

    fn transient(detail: String) -> Self {
        Self {
            kind: Kind::Other,
            retryable: true,
            detail,
        }
    }
}

/// The last failure of a call, and how many attempts it took.
#[derive(Debug)]
pub(super) struct Exhausted {
    pub(super) failure: Failure,
    pub(super) attempts: u32,
}

/// How often and how patiently a call is retried.
#[derive(Clone, Copy, Debug)]
pub(super) struct Backoff {
    /// Attempts in all, at least 1.
    pub(super) attempts: u32,
    /// Wait before the second attempt; it doubles for each further one.
    pub(super) first_delay: Duration,
}

impl Backoff {
    /// Runs `call` until it succeeds, fails for good, or the attempts run
    /// out. `what` names the call in the warnings logged before retries.
    pub(super) async fn run<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T, Exhausted>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let attempts = self.attempts.max(1);
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(failure) if failure.retryable && attempt < attempts => {
                    let delay = self.delay(attempt);
                    tracing::warn!(
                        "{what} failed (attempt {attempt} of {attempts}): {}; retrying in {delay:.1?}",
                        failure.detail
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(failure) => {
                    return Err(Exhausted {
                        failure,
                        attempts: attempt,
                    });
                }
            }
        }
    }

    /// The wait after failed attempt `attempt`: exponential, capped, and
    /// jittered to between half and all of it, so parallel parts that
    /// failed together do not retry together.
    fn delay(&self, attempt: u32) -> Duration {
        let full = self
            .first_delay
            .saturating_mul(1 << (attempt - 1).min(20))
            .min(MAX_DELAY);
        let mut random = [0u8; 2];
        let jitter = match getrandom::fill(&mut random) {
            Ok(()) => f64::from(u16::from_le_bytes(random)) / f64::from(u16::MAX),
            Err(_) => 1.0,
        };
        full.mul_f64(0.5 + jitter / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn failure(status: u16, code: &str) -> Failure {
        Failure::from_status(status, code, String::new())
    }

    #[test]
    fn server_errors_and_throttling_are_retried_but_client_errors_are_not() {
        assert!(failure(500, "InternalError").retryable);
        assert!(failure(503, "SlowDown").retryable);
        assert!(failure(429, "").retryable);
        assert!(failure(400, "RequestTimeout").retryable);
        assert!(failure(409, "ConditionalRequestConflict").retryable);
        for (status, code, kind) in [
            (403, "AccessDenied", Kind::AccessDenied),
            (404, "NoSuchKey", Kind::NotFound),
            (404, "", Kind::NotFound),
            (404, "NoSuchBucket", Kind::NoSuchBucket),
            (412, "PreconditionFailed", Kind::PreconditionFailed),
            (501, "NotImplemented", Kind::NotImplemented),
            (400, "InvalidArgument", Kind::Other),
        ] {
            let f = failure(status, code);
            assert_eq!(f.kind, kind, "{status} {code}");
            assert!(!f.retryable, "{status} {code}");
        }
    }

    #[test]
    fn delays_grow_exponentially_and_stay_capped() {
        let backoff = Backoff {
            attempts: 10,
            first_delay: Duration::from_millis(100),
        };
        let d1 = backoff.delay(1);
        assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
        let d4 = backoff.delay(4);
        assert!(d4 >= Duration::from_millis(400) && d4 <= Duration::from_millis(800));
        assert!(backoff.delay(30) <= MAX_DELAY);
    }

    #[tokio::test]
    async fn a_call_is_retried_until_it_succeeds_or_attempts_run_out() {
        let backoff = Backoff {
            attempts: 3,
            first_delay: Duration::from_millis(1),
        };
        let calls = AtomicU32::new(0);
        let value = backoff
            .run("test", || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(failure(500, "InternalError")),
                    _ => Ok(7),
                }
            })
            .await
            .unwrap();
        assert_eq!((value, calls.load(Ordering::SeqCst)), (7, 2));

        let calls = AtomicU32::new(0);
        let err = backoff
            .run("test", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(failure(503, "SlowDown"))
            })
            .await
            .unwrap_err();
        assert_eq!((err.attempts, calls.load(Ordering::SeqCst)), (3, 3));

        let calls = AtomicU32::new(0);
        let err = backoff
            .run("test", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(failure(403, "AccessDenied"))
            })
            .await
            .unwrap_err();
        assert_eq!((err.attempts, calls.load(Ordering::SeqCst)), (1, 1));
    }
}
