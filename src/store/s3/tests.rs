//! The S3 store against a real S3-protocol server: s3s-fs over a temporary
//! directory, in process behind HTTP on 127.0.0.1, with SigV4 checking on.

use std::{path::Path, time::Duration};

use aws_config::BehaviorVersion;
use aws_sdk_s3::config::{Credentials, Region};
use futures::StreamExt;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto::Builder,
};
use s3s::{auth::SimpleAuth, service::S3ServiceBuilder};

use super::*;
use crate::store::{Part, PartWriter};

const ACCESS_KEY: &str = "AKIDSLUICETEST";
const SECRET_KEY: &str = "sluice-test-secret";
const MIB: usize = 1024 * 1024;

struct Server {
    dir: tempfile::TempDir,
    endpoint: String,
}

/// Starts s3s-fs with one bucket, `bucket`.
async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bucket")).unwrap();
    let mut builder = S3ServiceBuilder::new(s3s_fs::FileSystem::new(dir.path()).unwrap());
    builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
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
    Server { dir, endpoint }
}

async fn store_with(server: &Server, bucket: &str, prefix: &str, secret: &str) -> S3Store {
    let mut config = StoreConfig::new(format!("s3://{bucket}/{prefix}"));
    config.path_style = true;
    config.retry_delay = Duration::from_millis(1);
    store_with_config(server, bucket, prefix, secret, &config).await
}

async fn store_with_config(
    server: &Server,
    bucket: &str,
    prefix: &str,
    secret: &str,
    config: &StoreConfig,
) -> S3Store {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&server.endpoint)
        .credentials_provider(Credentials::new(ACCESS_KEY, secret, None, None, "test"))
        .load()
        .await;
    S3Store::with_sdk_config(&sdk, bucket.into(), prefix.into(), config)
}

async fn store(server: &Server, prefix: &str) -> S3Store {
    store_with(server, "bucket", prefix, SECRET_KEY).await
}

/// Multipart uploads s3s-fs holds (its `.upload-<id>.json` files).
fn pending_uploads(root: &Path) -> usize {
    files_starting_with(root, ".upload-")
}

/// Files of multipart uploads s3s-fs still holds: uploads and their parts
/// (`.upload_id-<id>.part-<n>`).
fn upload_leftovers(root: &Path) -> usize {
    files_starting_with(root, ".upload")
}

fn files_starting_with(root: &Path, prefix: &str) -> usize {
    std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .count()
}

fn keys(listed: Vec<ObjectMeta>) -> Vec<String> {
    listed.into_iter().map(|m| m.key).collect()
}

fn pattern(len: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect::<Vec<u8>>(),
    )
}

crate::store::conformance::store_conformance!({
    let server = server().await;
    let store = store(&server, "team/sluice").await;
    (server, store)
});

#[tokio::test]
async fn objects_live_under_the_prefix_and_read_like_local_ones() {
    let server = server().await;
    let store = store(&server, "team/sluice").await;
    let created = store
        .create_if_absent("prod/1/a", Bytes::from_static(b"hello world"))
        .await
        .unwrap();
    assert_eq!(created, CreateOutcome::Created);
    store
        .create_if_absent("prod/2/a", Bytes::from_static(b"x"))
        .await
        .unwrap();
    store
        .create_if_absent("production/1/a", Bytes::from_static(b"y"))
        .await
        .unwrap();
    assert!(
        server
            .dir
            .path()
            .join("bucket/team/sluice/prod/1/a")
            .is_file()
    );

    assert_eq!(store.get("prod/1/a").await.unwrap(), "hello world");
    assert_eq!(store.get_range("prod/1/a", 6..11).await.unwrap(), "world");
    assert_eq!(store.get_range("prod/1/a", 6..50).await.unwrap(), "world");
    assert_eq!(store.get_range("prod/1/a", 20..30).await.unwrap(), "");
    assert_eq!(store.head("prod/1/a").await.unwrap().size, 11);
    assert_eq!(
        keys(store.list("prod/").await.unwrap()),
        ["prod/1/a", "prod/2/a"]
    );
    assert_eq!(keys(store.list("").await.unwrap()).len(), 3);
    assert!(store.list("nothing/").await.unwrap().is_empty());

    store.delete("prod/2/a").await.unwrap();
    store.delete("prod/2/a").await.unwrap();
    let err = store.get("prod/2/a").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let err = store.head("prod/2/a").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert!(store.get("../escape").await.is_err());
}

#[tokio::test]
async fn a_multipart_upload_publishes_its_parts_in_order_only_on_complete() {
    let server = server().await;
    let store = store(&server, "p").await;
    let parts = [pattern(5 * MIB, 1), pattern(5 * MIB, 2), pattern(MIB, 3)];
    let mut writer = PartWriter::new(store.start_upload("s/i/db.zst.age").await.unwrap(), 2);
    for part in &parts {
        writer.put(Part::new(part.clone())).await.unwrap();
    }
    writer.flush().await.unwrap();
    assert_eq!(pending_uploads(server.dir.path()), 1);
    assert!(store.list("").await.unwrap().is_empty());
    writer.complete().await.unwrap();

    let stored = store.get("s/i/db.zst.age").await.unwrap();
    assert_eq!(stored, parts.concat());
    let range = 5 * MIB as u64 - 3..5 * MIB as u64 + 3;
    assert_eq!(
        store
            .get_range("s/i/db.zst.age", range.clone())
            .await
            .unwrap(),
        stored[range.start as usize..range.end as usize]
    );
    assert_eq!(upload_leftovers(server.dir.path()), 0);
}

#[tokio::test]
async fn uploads_work_with_checksums_only_when_required() {
    let server = server().await;
    let mut config = StoreConfig::new("s3://bucket/p");
    config.path_style = true;
    config.checksums = Checksums::WhenRequired;
    let store = store_with_config(&server, "bucket", "p", SECRET_KEY, &config).await;
    let parts = [pattern(5 * MIB, 1), pattern(MIB, 2)];
    let mut upload = store.start_upload("s/i/o").await.unwrap();
    for part in &parts {
        upload.put_part(Part::new(part.clone())).await.unwrap();
    }
    upload.complete().await.unwrap();
    assert_eq!(store.get("s/i/o").await.unwrap(), parts.concat());
}

#[tokio::test]
async fn a_server_without_conditional_writes_is_named_with_the_fix() {
    let server = server().await;
    let store = store(&server, "p").await;
    let exhausted = Exhausted {
        failure: Failure::from_status(501, "NotImplemented", "NotImplemented (HTTP 501)".into()),
        attempts: 1,
    };
    let err = store
        .shared
        .error(
            "create",
            "s/i/manifest.json",
            "p/s/i/manifest.json",
            exhausted,
        )
        .to_string();
    assert!(
        err.contains(&format!("server at {}", server.endpoint)),
        "{err}"
    );
    assert!(err.contains("If-None-Match"), "{err}");
    assert!(err.contains("s3://bucket/p/s/i/manifest.json"), "{err}");
    assert!(err.contains("upgrade the server"), "{err}");
}

#[tokio::test]
async fn a_server_that_cannot_list_uploads_is_named_with_the_fix() {
    // s3s-fs answers ListMultipartUploads with 501 NotImplemented.
    let server = server().await;
    let store = store(&server, "p").await;
    let err = store.list_uploads("prod/").await.unwrap_err();
    assert!(
        matches!(err, StoreError::ListUploadsUnsupported { .. }),
        "{err}"
    );
    let err = err.to_string();
    assert!(
        err.contains(&format!("server at {}", server.endpoint)),
        "{err}"
    );
    assert!(err.contains("s3://bucket/p/prod/"), "{err}");
    assert!(err.contains("AbortIncompleteMultipartUpload"), "{err}");
}

#[tokio::test]
async fn a_single_part_object_is_one_put() {
    let server = server().await;
    let store = store(&server, "").await;
    let mut upload = store.start_upload("s/i/small").await.unwrap();
    upload
        .put_part(Part::new(Bytes::from_static(b"tiny")))
        .await
        .unwrap();
    assert_eq!(upload_leftovers(server.dir.path()), 0);
    upload.complete().await.unwrap();
    assert_eq!(store.get("s/i/small").await.unwrap(), "tiny");
}

#[tokio::test]
async fn aborted_and_dropped_uploads_leave_nothing_on_the_server() {
    let server = server().await;
    let store = store(&server, "").await;

    let mut upload = store.start_upload("s/i/aborted").await.unwrap();
    upload
        .put_part(Part::new(pattern(5 * MIB, 1)))
        .await
        .unwrap();
    upload
        .put_part(Part::new(pattern(5 * MIB, 2)))
        .await
        .unwrap();
    assert_eq!(pending_uploads(server.dir.path()), 1);
    upload.abort().await.unwrap();
    assert_eq!(upload_leftovers(server.dir.path()), 0);

    let mut upload = store.start_upload("s/i/dropped").await.unwrap();
    upload
        .put_part(Part::new(pattern(5 * MIB, 1)))
        .await
        .unwrap();
    upload
        .put_part(Part::new(pattern(5 * MIB, 2)))
        .await
        .unwrap();
    drop(upload);
    for _ in 0..100 {
        if upload_leftovers(server.dir.path()) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(upload_leftovers(server.dir.path()), 0);
    assert!(store.list("").await.unwrap().is_empty());
}

#[tokio::test]
async fn listing_pages_past_a_thousand_keys() {
    let server = server().await;
    let store = store(&server, "root").await;
    let written: Vec<CreateOutcome> = futures::stream::iter(0..1005)
        .map(|i| {
            let store = store.clone();
            async move {
                store
                    .create_if_absent(
                        &format!("set/{i:05}/manifest.json"),
                        Bytes::from_static(b"{}"),
                    )
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(written.iter().all(|o| *o == CreateOutcome::Created));
    let listed = keys(store.list("set/").await.unwrap());
    assert_eq!(listed.len(), 1005);
    assert_eq!(listed[0], "set/00000/manifest.json");
    assert_eq!(listed[1004], "set/01004/manifest.json");
}

#[tokio::test]
async fn wrong_credentials_and_missing_buckets_say_what_to_check() {
    let server = server().await;
    let store = store_with(&server, "bucket", "p", "wrong-secret").await;
    let err = store.get("s/i/x").await.unwrap_err().to_string();
    assert!(
        err.contains("access denied to s3://bucket/p/s/i/x"),
        "{err}"
    );
    assert!(err.contains("credentials"), "{err}");
    assert!(!err.contains("wrong-secret"), "{err}");

    let store = store_with(&server, "nobucket", "", SECRET_KEY).await;
    let err = store.list("").await.unwrap_err().to_string();
    assert!(err.contains("bucket `nobucket` does not exist"), "{err}");
}

#[test]
fn urls_name_a_bucket_and_an_optional_prefix() {
    let parse = |u: &str| parse_url(&url::Url::parse(u).unwrap());
    assert_eq!(parse("s3://b").unwrap(), ("b".into(), "".into()));
    assert_eq!(parse("s3://b/").unwrap(), ("b".into(), "".into()));
    assert_eq!(parse("s3://b/a/c/").unwrap(), ("b".into(), "a/c".into()));
    let err = parse("s3://key:secret@b/p").unwrap_err().to_string();
    assert!(!err.contains("secret"), "{err}");
    assert!(parse("s3://b:9000/p").is_err());
}
