//! The `s3://bucket/prefix` store, for AWS S3 and S3-compatible servers
//! (MinIO, Ceph, R2, Wasabi, GCS's S3 API), with aws-sdk-s3.
//!
//! - Credentials come from the SDK's default chain (environment, profile
//!   files, SSO, container and instance roles) and never appear in a message.
//! - The SDK's retries are off: every call goes through [`retry`], the one
//!   retry layer, with per-attempt connect and read timeouts.
//! - An upload keeps its first part until a second one arrives: a one-part
//!   object is a single `PutObject` on `complete`; otherwise a multipart
//!   upload is created, parts upload concurrently (bounded by
//!   [`PartWriter`](super::PartWriter)), and `complete` publishes them in
//!   order. A failed, aborted or dropped upload is aborted on the server.
//! - Nothing is ever overwritten: `complete` and `create_if_absent` send
//!   `If-None-Match: *`.
//! - Parts carry the SHA-256 the backup computed for the manifest as their
//!   checksum (`x-amz-checksum-sha256`) when checksums are on or Object Lock
//!   requires them; with `object-lock`, everything created (not the lease's
//!   replacements) is written with its mode and retain-until date.

mod retry;
#[cfg(test)]
mod tests;

use std::{
    collections::BTreeMap,
    fmt,
    future::Future,
    ops::Range,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::{
    Client,
    config::{
        Region, RequestChecksumCalculation, ResponseChecksumValidation, retry::RetryConfig,
        timeout::TimeoutConfig,
    },
    primitives::{ByteStream, DateTime},
    types::{
        ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ObjectLockMode,
        ServerSideEncryption, StorageClass,
    },
};
use bytes::Bytes;
use sha2::Digest;
use tokio::sync::OnceCell;

use self::retry::{Backoff, Exhausted, Failure, Kind};
use super::{
    CreateOutcome, MultipartUpload, ObjectMeta, Part, PartFuture, PendingUpload, Store, StoreError,
    redact_url, validate_key,
};
use crate::config::{Checksums, LockMode, ObjectLock, StoreConfig};

/// A store in an S3 bucket, under an optional key prefix.
#[derive(Clone)]
pub struct S3Store {
    shared: Arc<Shared>,
}

/// What every request and upload of a store needs.
struct Shared {
    client: Client,
    bucket: String,
    /// Key prefix without a trailing `/`; empty for the bucket's root.
    root: String,
    /// The endpoint for messages (redacted), or "AWS S3".
    server: String,
    backoff: Backoff,
    /// Whether writes carry a SHA-256 checksum: with `checksums = "always"`
    /// and whenever Object Lock requires one.
    checksums: bool,
    object_lock: Option<ObjectLock>,
    storage_class: Option<StorageClass>,
    sse: Option<ServerSideEncryption>,
    sse_kms_key_id: Option<String>,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.shared.bucket)
            .field("root", &self.shared.root)
            .field("server", &self.shared.server)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// Opens the store an `s3://bucket/prefix` URL names, with the SDK's
    /// default credential chain and the S3 settings of `config`. No request
    /// is sent until the store is used.
    pub async fn open(url: &url::Url, config: &StoreConfig) -> Result<Self, StoreError> {
        let (bucket, root) = parse_url(url)?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts(config));
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let sdk = loader.load().await;
        if sdk.region().is_none() {
            return Err(StoreError::NoRegion {
                location: format!("s3://{bucket}"),
            });
        }
        Ok(Self::with_sdk_config(&sdk, bucket, root, config))
    }

    /// The store over an already loaded SDK configuration.
    fn with_sdk_config(
        sdk: &SdkConfig,
        bucket: String,
        root: String,
        config: &StoreConfig,
    ) -> Self {
        let (request, response) = match config.checksums {
            Checksums::Always => (
                RequestChecksumCalculation::WhenSupported,
                ResponseChecksumValidation::WhenSupported,
            ),
            Checksums::WhenRequired => (
                RequestChecksumCalculation::WhenRequired,
                ResponseChecksumValidation::WhenRequired,
            ),
        };
        let s3 = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(config.path_style)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts(config))
            .request_checksum_calculation(request)
            .response_checksum_validation(response)
            .build();
        let server = sdk
            .endpoint_url()
            .map_or_else(|| "AWS S3".to_owned(), |e| format!("at {}", redact_url(e)));
        Self {
            shared: Arc::new(Shared {
                client: Client::from_conf(s3),
                bucket,
                root,
                server,
                backoff: Backoff {
                    attempts: config.attempts.max(1),
                    first_delay: config.retry_delay,
                },
                checksums: config.checksums == Checksums::Always || config.object_lock.is_some(),
                object_lock: config.object_lock,
                storage_class: config.storage_class.as_deref().map(StorageClass::from),
                sse: config.sse.as_deref().map(ServerSideEncryption::from),
                sse_kms_key_id: config.sse_kms_key_id.clone(),
            }),
        }
    }
}

fn timeouts(config: &StoreConfig) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(config.connect_timeout)
        .read_timeout(config.read_timeout)
        .build()
}

/// Splits `s3://bucket/prefix` into the bucket and the prefix (no slashes
/// around it).
fn parse_url(url: &url::Url) -> Result<(String, String), StoreError> {
    let invalid = |reason: &str| StoreError::InvalidUrl {
        url: redact_url(url.as_str()),
        reason: reason.to_owned(),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "credentials do not belong in the URL; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile or a role",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || url.port().is_some() {
        return Err(invalid(
            "expected s3://bucket/prefix; set a server's address with `endpoint` under [store]",
        ));
    }
    let bucket = url.host_str().unwrap_or_default();
    if bucket.is_empty() {
        return Err(invalid("no bucket; expected s3://bucket/prefix"));
    }
    let root = url.path().trim_matches('/');
    if !root.is_empty() {
        validate_key(root).map_err(|e| invalid(&format!("bad prefix: {e}")))?;
    }
    Ok((bucket.to_owned(), root.to_owned()))
}

impl Shared {
    /// The full S3 key of a store key.
    fn full_key(&self, key: &str) -> Result<String, StoreError> {
        validate_key(key)?;
        Ok(self.join(key))
    }

    fn join(&self, key: &str) -> String {
        if self.root.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.root)
        }
    }

    /// The store key of a full S3 key, or `None` for a key outside the
    /// store's root.
    fn store_key<'a>(&self, full_key: &'a str) -> Option<&'a str> {
        if self.root.is_empty() {
            Some(full_key)
        } else {
            full_key.strip_prefix(&self.root)?.strip_prefix('/')
        }
    }

    /// The Object Lock mode and retain-until date for an object created
    /// now, when the store has `object-lock`.
    fn retention(&self) -> (Option<ObjectLockMode>, Option<DateTime>) {
        let Some(lock) = self.object_lock else {
            return (None, None);
        };
        let mode = match lock.mode {
            LockMode::Governance => ObjectLockMode::Governance,
            LockMode::Compliance => ObjectLockMode::Compliance,
        };
        let until = jiff::Timestamp::now().as_second() + i64::from(lock.days.get()) * 86_400;
        (Some(mode), Some(DateTime::from_secs(until)))
    }

    /// The checksum header's value for bytes with this SHA-256, when writes
    /// carry checksums.
    fn checksum(&self, sha256: &[u8; 32]) -> Option<String> {
        self.checksums
            .then(|| aws_smithy_types::base64::encode(sha256))
    }

    fn location(&self, full_key: &str) -> String {
        format!("s3://{}/{full_key}", self.bucket)
    }

    /// Runs one S3 call with retries.
    async fn call<T, F, Fut>(&self, op: &str, full_key: &str, call: F) -> Result<T, Exhausted>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let what = format!("{op} {}", self.location(full_key));
        self.backoff.run(&what, call).await
    }

    /// The store error for a call that failed for good.
    fn error(&self, op: &str, key: &str, full_key: &str, exhausted: Exhausted) -> StoreError {
        let location = self.location(full_key);
        match exhausted.failure.kind {
            // Only a read means "no such object"; elsewhere a 404 is a lost
            // upload (NoSuchUpload) or bucket, told as the server said it.
            Kind::NotFound if op == "read" => StoreError::NotFound {
                key: key.to_owned(),
            },
            Kind::AccessDenied => StoreError::AccessDenied { location },
            Kind::NoSuchBucket => StoreError::NoSuchBucket {
                bucket: self.bucket.clone(),
            },
            Kind::NotImplemented if op == LIST_UPLOADS => StoreError::ListUploadsUnsupported {
                server: self.server.clone(),
                location,
            },
            Kind::NotImplemented if op == "create" || op == "complete the upload of" => {
                StoreError::ConditionalWritesUnsupported {
                    server: self.server.clone(),
                    location,
                }
            }
            _ => StoreError::S3 {
                op: op.to_owned(),
                location,
                attempts: exhausted.attempts,
                detail: exhausted.failure.detail,
            },
        }
    }

    /// `PutObject` with `If-None-Match: *` (and the retention, with Object
    /// Lock); `data_object` applies the storage class (manifests keep the
    /// bucket's default). `sha256` is the data's, when already known.
    async fn put_if_absent(
        &self,
        key: &str,
        full_key: &str,
        data: Bytes,
        sha256: Option<[u8; 32]>,
        data_object: bool,
    ) -> Result<CreateOutcome, StoreError> {
        let checksum = if self.checksums {
            self.checksum(&sha256.unwrap_or_else(|| sha2::Sha256::digest(&data).into()))
        } else {
            None
        };
        let mut attempts = 0;
        let put = self
            .call("create", full_key, || {
                attempts += 1;
                let (lock_mode, retain_until) = self.retention();
                let request = self
                    .client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(full_key)
                    .if_none_match("*")
                    .set_checksum_algorithm(checksum.as_ref().map(|_| ChecksumAlgorithm::Sha256))
                    .set_checksum_sha256(checksum.clone())
                    .set_object_lock_mode(lock_mode)
                    .set_object_lock_retain_until_date(retain_until)
                    .set_storage_class(self.storage_class.clone().filter(|_| data_object))
                    .set_server_side_encryption(self.sse.clone())
                    .set_ssekms_key_id(self.sse_kms_key_id.clone())
                    .body(ByteStream::from(data.clone()));
                async move { request.send().await.map(drop).map_err(Failure::from_sdk) }
            })
            .await;
        match put {
            Ok(()) => Ok(CreateOutcome::Created),
            Err(e) if e.failure.kind == Kind::PreconditionFailed => {
                // After a lost response, the object that is there may be the
                // one an earlier attempt of this call wrote.
                if attempts > 1 && self.get(key, full_key).await? == data {
                    Ok(CreateOutcome::Created)
                } else {
                    Ok(CreateOutcome::AlreadyExists)
                }
            }
            // A server may answer 412 as soon as it has read the headers
            // and close the connection while a large body is still being
            // sent, so the client only sees the write fail. Whether an
            // object is there tells those apart from a real failure.
            Err(e) if e.failure.retryable => match self.size(key, full_key).await {
                Ok(size) if size == data.len() as u64 && self.get(key, full_key).await? == data => {
                    Ok(CreateOutcome::Created)
                }
                Ok(_) => Ok(CreateOutcome::AlreadyExists),
                Err(_) => Err(self.error("create", key, full_key, e)),
            },
            Err(e) => Err(self.error("create", key, full_key, e)),
        }
    }

    /// `HeadObject`: the object's size.
    async fn size(&self, key: &str, full_key: &str) -> Result<u64, StoreError> {
        let size = self
            .call("read", full_key, || {
                let request = self.client.head_object().bucket(&self.bucket).key(full_key);
                async move {
                    let out = request.send().await.map_err(Failure::from_sdk)?;
                    Ok(out.content_length.unwrap_or(0))
                }
            })
            .await
            .map_err(|e| self.error("read", key, full_key, e))?;
        Ok(u64::try_from(size).unwrap_or(0))
    }

    async fn get(&self, key: &str, full_key: &str) -> Result<Bytes, StoreError> {
        self.call("read", full_key, || {
            let request = self.client.get_object().bucket(&self.bucket).key(full_key);
            async move {
                let out = request.send().await.map_err(Failure::from_sdk)?;
                let body = out.body.collect().await.map_err(Failure::body)?;
                Ok(body.into_bytes())
            }
        })
        .await
        .map_err(|e| self.error("read", key, full_key, e))
    }
}

#[async_trait]
impl Store for S3Store {
    async fn start_upload(&self, key: &str) -> Result<Box<dyn MultipartUpload>, StoreError> {
        let full_key = self.shared.full_key(key)?;
        Ok(Box::new(S3Upload {
            shared: Arc::clone(&self.shared),
            key: key.into(),
            full_key: full_key.into(),
            first: None,
            parts: 0,
            size: 0,
            multipart: Arc::default(),
            finished: false,
        }))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        let s = &self.shared;
        let full_key = s.full_key(key)?;
        if range.start >= range.end {
            return Ok(Bytes::new());
        }
        let header = format!("bytes={}-{}", range.start, range.end - 1);
        let read = s
            .call("read", &full_key, || {
                let request = s
                    .client
                    .get_object()
                    .bucket(&s.bucket)
                    .key(&full_key)
                    .range(&header);
                async move {
                    let out = request.send().await.map_err(Failure::from_sdk)?;
                    // Read to the end at once: a response left half-read
                    // while the restore target is busy gets cut by the server.
                    let body = out.body.collect().await.map_err(Failure::body)?;
                    Ok(body.into_bytes())
                }
            })
            .await;
        match read {
            Err(e) if e.failure.kind == Kind::InvalidRange => Ok(Bytes::new()),
            other => other.map_err(|e| s.error("read", key, &full_key, e)),
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let full_key = self.shared.full_key(key)?;
        self.shared.get(key, &full_key).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        let full_key = self.shared.full_key(key)?;
        Ok(ObjectMeta {
            key: key.to_owned(),
            size: self.shared.size(key, &full_key).await?,
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let s = &self.shared;
        let full_prefix = s.join(prefix);
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = s
                .call("list", &full_prefix, || {
                    let request = s
                        .client
                        .list_objects_v2()
                        .bucket(&s.bucket)
                        .prefix(&full_prefix)
                        .set_continuation_token(token.clone());
                    async move { request.send().await.map_err(Failure::from_sdk) }
                })
                .await
                .map_err(|e| s.error("list", prefix, &full_prefix, e))?;
            for object in page.contents() {
                let Some(key) = object.key().and_then(|k| s.store_key(k)) else {
                    continue;
                };
                found.push(ObjectMeta {
                    key: key.to_owned(),
                    size: object
                        .size()
                        .and_then(|n| u64::try_from(n).ok())
                        .unwrap_or(0),
                });
            }
            token = page.next_continuation_token().map(str::to_owned);
            if !page.is_truncated().unwrap_or(false) || token.is_none() {
                break;
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let s = &self.shared;
        let full_key = s.full_key(key)?;
        let deleted = s
            .call("delete", &full_key, || {
                let request = s.client.delete_object().bucket(&s.bucket).key(&full_key);
                async move { request.send().await.map(drop).map_err(Failure::from_sdk) }
            })
            .await;
        match deleted {
            Err(e) if e.failure.kind == Kind::NotFound => Ok(()),
            other => other.map_err(|e| s.error("delete", key, &full_key, e)),
        }
    }

    async fn create_if_absent(&self, key: &str, data: Bytes) -> Result<CreateOutcome, StoreError> {
        let full_key = self.shared.full_key(key)?;
        self.shared
            .put_if_absent(key, &full_key, data, None, false)
            .await
    }

    async fn get_versioned(&self, key: &str) -> Result<(Bytes, String), StoreError> {
        let s = &self.shared;
        let full_key = s.full_key(key)?;
        s.call("read", &full_key, || {
            let request = s.client.get_object().bucket(&s.bucket).key(&full_key);
            async move {
                let out = request.send().await.map_err(Failure::from_sdk)?;
                let etag = out
                    .e_tag()
                    .ok_or_else(|| Failure::invalid("the server returned no ETag"))?
                    .to_owned();
                let body = out.body.collect().await.map_err(Failure::body)?;
                Ok((body.into_bytes(), etag))
            }
        })
        .await
        .map_err(|e| s.error("read", key, &full_key, e))
    }

    /// `PutObject` with `If-Match: <version>`.
    async fn replace_if_match(
        &self,
        key: &str,
        data: Bytes,
        version: &str,
    ) -> Result<Option<String>, StoreError> {
        let s = &self.shared;
        let full_key = s.full_key(key)?;
        let mut attempts = 0;
        let put = s
            .call("replace", &full_key, || {
                attempts += 1;
                let request = s
                    .client
                    .put_object()
                    .bucket(&s.bucket)
                    .key(&full_key)
                    .if_match(version)
                    .set_server_side_encryption(s.sse.clone())
                    .set_ssekms_key_id(s.sse_kms_key_id.clone())
                    .body(ByteStream::from(data.clone()));
                async move {
                    let out = request.send().await.map_err(Failure::from_sdk)?;
                    out.e_tag()
                        .map(str::to_owned)
                        .ok_or_else(|| Failure::invalid("the server returned no ETag"))
                }
            })
            .await;
        match put {
            Ok(etag) => Ok(Some(etag)),
            Err(e) if matches!(e.failure.kind, Kind::PreconditionFailed | Kind::NotFound) => {
                // After a lost answer the object may be this call's own write.
                if attempts > 1
                    && let Ok((current, etag)) = self.get_versioned(key).await
                    && current == data
                {
                    return Ok(Some(etag));
                }
                Ok(None)
            }
            Err(e) => Err(s.error("replace", key, &full_key, e)),
        }
    }

    async fn list_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, StoreError> {
        let s = &self.shared;
        let full_prefix = s.join(prefix);
        let mut found = Vec::new();
        let mut markers: (Option<String>, Option<String>) = (None, None);
        loop {
            let page = s
                .call(LIST_UPLOADS, &full_prefix, || {
                    let request = s
                        .client
                        .list_multipart_uploads()
                        .bucket(&s.bucket)
                        .prefix(&full_prefix)
                        .set_key_marker(markers.0.clone())
                        .set_upload_id_marker(markers.1.clone());
                    async move { request.send().await.map_err(Failure::from_sdk) }
                })
                .await
                .map_err(|e| s.error(LIST_UPLOADS, prefix, &full_prefix, e))?;
            for upload in page.uploads() {
                let (Some(key), Some(id)) = (
                    upload.key().and_then(|k| s.store_key(k)),
                    upload.upload_id(),
                ) else {
                    continue;
                };
                let Some(started) = upload
                    .initiated()
                    .and_then(|t| jiff::Timestamp::new(t.secs(), t.subsec_nanos() as i32).ok())
                else {
                    return Err(StoreError::S3 {
                        op: LIST_UPLOADS.to_owned(),
                        location: s.location(&full_prefix),
                        attempts: 1,
                        detail: format!("the server gave no start time for the upload of `{key}`"),
                    });
                };
                found.push(PendingUpload {
                    key: key.to_owned(),
                    id: id.to_owned(),
                    started,
                });
            }
            markers = (
                page.next_key_marker().map(str::to_owned),
                page.next_upload_id_marker().map(str::to_owned),
            );
            if !page.is_truncated().unwrap_or(false) || markers.0.is_none() {
                break;
            }
        }
        found.sort_by(|a, b| (&a.key, a.started).cmp(&(&b.key, b.started)));
        Ok(found)
    }

    async fn abort_pending(&self, upload: &PendingUpload) -> Result<(), StoreError> {
        // Not validated: the key is whatever the listing found, and on S3
        // no key can reach outside the bucket.
        let full_key = self.shared.join(&upload.key);
        abort_multipart(&self.shared, &upload.key, &full_key, &upload.id).await
    }

    /// `HeadObject`'s Object Lock retain-until date, with `object-lock`
    /// only. (AWS shows it only to credentials with `s3:GetObjectRetention`;
    /// moto does not implement `GetObjectRetention` itself.)
    async fn locked_until(&self, key: &str) -> Result<Option<jiff::Timestamp>, StoreError> {
        let s = &self.shared;
        if s.object_lock.is_none() {
            return Ok(None);
        }
        let full_key = s.full_key(key)?;
        let op = "read the retention of";
        let until = s
            .call(op, &full_key, || {
                let request = s.client.head_object().bucket(&s.bucket).key(&full_key);
                async move {
                    let out = request.send().await.map_err(Failure::from_sdk)?;
                    Ok(out
                        .object_lock_retain_until_date()
                        .map(|t| (t.secs(), t.subsec_nanos())))
                }
            })
            .await;
        let until = match until {
            Ok(until) => until,
            // Already gone: nothing keeps it.
            Err(e) if e.failure.kind == Kind::NotFound => None,
            Err(e) => return Err(s.error(op, key, &full_key, e)),
        };
        Ok(until
            .and_then(|(secs, nanos)| jiff::Timestamp::new(secs, nanos as i32).ok())
            .filter(|until| *until > jiff::Timestamp::now()))
    }
}

/// The operation `list_uploads` names in messages.
const LIST_UPLOADS: &str = "list the multipart uploads under";

/// The operation `abort_multipart` names in messages.
const ABORT: &str = "abort the multipart upload of";

/// The server side of a multipart upload, created with the second part.
#[derive(Default)]
struct Multipart {
    upload_id: OnceCell<String>,
    /// Part number → (ETag, SHA-256 checksum when checksums are on).
    done: Mutex<BTreeMap<i32, (String, Option<String>)>>,
}

/// An object being written to S3.
struct S3Upload {
    shared: Arc<Shared>,
    key: Arc<str>,
    full_key: Arc<str>,
    /// Part 1, kept until part 2 shows that the object needs a multipart
    /// upload (a lone part is one `PutObject` on `complete`).
    first: Option<Part>,
    /// Parts queued so far.
    parts: i32,
    /// Bytes queued so far.
    size: u64,
    multipart: Arc<Multipart>,
    finished: bool,
}

impl S3Upload {
    /// Uploads part `number`, creating the multipart upload first if no
    /// part has yet.
    fn upload_part(&self, number: i32, part: Part) -> PartFuture {
        let (shared, multipart) = (Arc::clone(&self.shared), Arc::clone(&self.multipart));
        let (key, full_key) = (Arc::clone(&self.key), Arc::clone(&self.full_key));
        Box::pin(async move {
            let upload_id = multipart
                .upload_id
                .get_or_try_init(|| create_multipart(&shared, &key, &full_key))
                .await?;
            let op = format!("upload part {number} of");
            let s = &shared;
            // The server checks it; CompleteMultipartUpload lists it again.
            let checksum = s.checksum(&part.sha256);
            let etag = s
                .call(&op, &full_key, || {
                    let request = s
                        .client
                        .upload_part()
                        .bucket(&s.bucket)
                        .key(&*full_key)
                        .upload_id(upload_id)
                        .part_number(number)
                        .set_checksum_algorithm(
                            checksum.as_ref().map(|_| ChecksumAlgorithm::Sha256),
                        )
                        .set_checksum_sha256(checksum.clone())
                        .body(ByteStream::from(part.data.clone()));
                    async move {
                        let out = request.send().await.map_err(Failure::from_sdk)?;
                        out.e_tag()
                            .map(str::to_owned)
                            .ok_or_else(|| Failure::invalid("the server returned no ETag"))
                    }
                })
                .await
                .map_err(|e| s.error(&op, &key, &full_key, e))?;
            multipart
                .done
                .lock()
                .expect("part list poisoned")
                .insert(number, (etag, checksum));
            Ok(())
        })
    }

    /// `CompleteMultipartUpload` with every part in order.
    async fn complete_multipart(&self, upload_id: &str) -> Result<(), StoreError> {
        let s = &self.shared;
        let parts: Vec<CompletedPart> = {
            let done = self.multipart.done.lock().expect("part list poisoned");
            (1..=self.parts)
                .map(|number| {
                    let (etag, checksum) = done.get(&number).ok_or_else(|| StoreError::S3 {
                        op: "complete the upload of".to_owned(),
                        location: s.location(&self.full_key),
                        attempts: 0,
                        detail: format!("part {number} was never stored"),
                    })?;
                    Ok(CompletedPart::builder()
                        .part_number(number)
                        .e_tag(etag)
                        .set_checksum_sha256(checksum.clone())
                        .build())
                })
                .collect::<Result<_, StoreError>>()?
        };
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(parts))
            .build();
        let result = s
            .call("complete the upload of", &self.full_key, || {
                let request = s
                    .client
                    .complete_multipart_upload()
                    .bucket(&s.bucket)
                    .key(&*self.full_key)
                    .upload_id(upload_id)
                    .if_none_match("*")
                    .multipart_upload(completed.clone());
                async move { request.send().await.map(drop).map_err(Failure::from_sdk) }
            })
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.attempts > 1 && self.completed_unseen().await => Ok(()),
            Err(e) => {
                let error = match e.failure.kind {
                    Kind::PreconditionFailed => StoreError::AlreadyExists {
                        key: self.key.to_string(),
                    },
                    _ => s.error("complete the upload of", &self.key, &self.full_key, e),
                };
                if let Err(abort) = abort_multipart(s, &self.key, &self.full_key, upload_id).await {
                    tracing::warn!("{abort}");
                }
                Err(error)
            }
        }
    }

    /// Whether an earlier attempt of `CompleteMultipartUpload` whose answer
    /// was lost did complete the upload. A retry then fails, as servers
    /// differ: the upload is gone (NoSuchUpload; s3s-fs says AccessDenied)
    /// or the object is there (PreconditionFailed). So after any failed
    /// retry, the object under the key is looked for: if it has exactly
    /// this upload's size, it is this upload's, as keys hold a fresh backup
    /// id that no other writer uses.
    async fn completed_unseen(&self) -> bool {
        match self.shared.size(&self.key, &self.full_key).await {
            Ok(size) if size == self.size => {
                tracing::info!(
                    "the answer to completing {} was lost, and the object is there, whole",
                    self.shared.location(&self.full_key)
                );
                true
            }
            _ => false,
        }
    }
}

async fn create_multipart(s: &Shared, key: &str, full_key: &str) -> Result<String, StoreError> {
    let op = "create a multipart upload for";
    s.call(op, full_key, || {
        let (lock_mode, retain_until) = s.retention();
        let request = s
            .client
            .create_multipart_upload()
            .bucket(&s.bucket)
            .key(full_key)
            .set_checksum_algorithm(s.checksums.then_some(ChecksumAlgorithm::Sha256))
            .set_object_lock_mode(lock_mode)
            .set_object_lock_retain_until_date(retain_until)
            .set_storage_class(s.storage_class.clone())
            .set_server_side_encryption(s.sse.clone())
            .set_ssekms_key_id(s.sse_kms_key_id.clone());
        async move {
            let out = request.send().await.map_err(Failure::from_sdk)?;
            out.upload_id()
                .map(str::to_owned)
                .ok_or_else(|| Failure::invalid("the server returned no upload id"))
        }
    })
    .await
    .map_err(|e| s.error(op, key, full_key, e))
}

async fn abort_multipart(
    s: &Shared,
    key: &str,
    full_key: &str,
    upload_id: &str,
) -> Result<(), StoreError> {
    let aborted = s
        .call(ABORT, full_key, || {
            let request = s
                .client
                .abort_multipart_upload()
                .bucket(&s.bucket)
                .key(full_key)
                .upload_id(upload_id);
            async move { request.send().await.map(drop).map_err(Failure::from_sdk) }
        })
        .await;
    match aborted {
        Err(e) if e.failure.kind == Kind::NotFound => Ok(()),
        other => other.map_err(|e| s.error(ABORT, key, full_key, e)),
    }
}

#[async_trait]
impl MultipartUpload for S3Upload {
    fn put_part(&mut self, part: Part) -> PartFuture {
        self.parts += 1;
        self.size += part.data.len() as u64;
        match self.parts {
            1 => {
                self.first = Some(part);
                Box::pin(async { Ok(()) })
            }
            2 => {
                let first = self.first.take().expect("part 1 is kept until part 2");
                let (one, two) = (self.upload_part(1, first), self.upload_part(2, part));
                Box::pin(async move { futures::future::try_join(one, two).await.map(drop) })
            }
            number => self.upload_part(number, part),
        }
    }

    async fn complete(mut self: Box<Self>) -> Result<(), StoreError> {
        self.finished = true;
        match self.multipart.upload_id.get().cloned() {
            Some(upload_id) => self.complete_multipart(&upload_id).await,
            None => {
                let part = self.first.take().unwrap_or_else(|| Part::new(Bytes::new()));
                match self
                    .shared
                    .put_if_absent(
                        &self.key,
                        &self.full_key,
                        part.data,
                        Some(part.sha256),
                        true,
                    )
                    .await?
                {
                    CreateOutcome::Created => Ok(()),
                    CreateOutcome::AlreadyExists => Err(StoreError::AlreadyExists {
                        key: self.key.to_string(),
                    }),
                }
            }
        }
    }

    async fn abort(mut self: Box<Self>) -> Result<(), StoreError> {
        self.finished = true;
        match self.multipart.upload_id.get() {
            Some(upload_id) => {
                abort_multipart(&self.shared, &self.key, &self.full_key, upload_id).await
            }
            None => Ok(()),
        }
    }
}

impl Drop for S3Upload {
    /// An upload dropped without `complete` or `abort` (a panic, a cancelled
    /// task) is aborted in the background, best effort; an
    /// `AbortIncompleteMultipartUpload` lifecycle rule catches the rest.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Some(upload_id) = self.multipart.upload_id.get().cloned() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (shared, key, full_key) = (
            Arc::clone(&self.shared),
            Arc::clone(&self.key),
            Arc::clone(&self.full_key),
        );
        runtime.spawn(async move {
            if let Err(e) = abort_multipart(&shared, &key, &full_key, &upload_id).await {
                tracing::warn!("{e}");
            }
        });
    }
}
