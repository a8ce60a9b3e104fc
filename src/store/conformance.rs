//! The cases every store must pass, run against each one (object_store's
//! pattern): `file://` here, `s3://` on s3s-fs in `s3/tests.rs`.
//! [`store_conformance!`] makes one test per case for a store.

use bytes::Bytes;

use super::{CreateOutcome, Part, PartWriter, Store, StoreError};

const MIB: usize = 1024 * 1024;

/// Makes one `#[tokio::test]` per conformance case; `$make` is an
/// expression, awaited inside each test, giving `(guard, store)`, where the
/// guard keeps the store's backing (a directory, a server) alive.
macro_rules! store_conformance {
    ($make:expr) => {
        mod conformance {
            use super::*;
            use crate::store::conformance as case;

            #[tokio::test(flavor = "multi_thread")]
            async fn puts_gets_lists_and_deletes() {
                let (_guard, store) = $make;
                case::puts_gets_lists_and_deletes(&store).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn reads_ranges() {
                let (_guard, store) = $make;
                case::reads_ranges(&store).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn publishes_many_parts_in_order_only_on_complete() {
                let (_guard, store) = $make;
                case::publishes_many_parts_in_order_only_on_complete(&store).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn creates_only_if_absent() {
                let (_guard, store) = $make;
                case::creates_only_if_absent(&store).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn an_upload_never_replaces_an_object() {
                let (_guard, store) = $make;
                case::an_upload_never_replaces_an_object(&store).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn replaces_only_at_the_expected_version() {
                let (_guard, store) = $make;
                case::replaces_only_at_the_expected_version(&store).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn an_object_being_replaced_is_never_missing() {
                let (_guard, store) = $make;
                case::an_object_being_replaced_is_never_missing(std::sync::Arc::new(store)).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn an_aborted_upload_publishes_nothing() {
                let (_guard, store) = $make;
                case::an_aborted_upload_publishes_nothing(&store).await;
            }
        }
    };
}
pub(crate) use store_conformance;

fn keys(store_listing: Vec<super::ObjectMeta>) -> Vec<String> {
    store_listing.into_iter().map(|m| m.key).collect()
}

/// Distinct, position-dependent bytes, so a part out of place shows.
fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ (i >> 12) as u8 ^ seed)
        .collect::<Vec<u8>>()
        .into()
}

fn assert_not_found(result: Result<impl std::fmt::Debug, StoreError>) {
    match result {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

pub(crate) async fn puts_gets_lists_and_deletes(store: &dyn Store) {
    for (key, data) in [
        ("prod/1/a", "hello world"),
        ("prod/1/b", "b"),
        ("prod/2/a", "x"),
        ("production/1/a", "y"),
        ("staging/1/a", "z"),
    ] {
        let created = store
            .create_if_absent(key, Bytes::from_static(data.as_bytes()))
            .await
            .unwrap();
        assert_eq!(created, CreateOutcome::Created, "{key}");
    }
    assert_eq!(store.get("prod/1/a").await.unwrap(), "hello world");
    assert_eq!(store.head("prod/1/a").await.unwrap().size, 11);
    assert_eq!(
        keys(store.list("prod/").await.unwrap()),
        ["prod/1/a", "prod/1/b", "prod/2/a"]
    );
    assert_eq!(keys(store.list("prod").await.unwrap()).len(), 4);
    assert_eq!(keys(store.list("").await.unwrap()).len(), 5);
    assert!(store.list("nothing/").await.unwrap().is_empty());
    let sizes: Vec<u64> = store
        .list("prod/1/")
        .await
        .unwrap()
        .iter()
        .map(|m| m.size)
        .collect();
    assert_eq!(sizes, [11, 1]);

    store.delete("prod/2/a").await.unwrap();
    store.delete("prod/2/a").await.unwrap();
    assert_not_found(store.get("prod/2/a").await);
    assert_not_found(store.head("prod/2/a").await);
    assert_not_found(store.get_range("prod/2/a", 0..1).await);
    assert_eq!(
        keys(store.list("prod/").await.unwrap()),
        ["prod/1/a", "prod/1/b"]
    );
    assert!(matches!(
        store.get("../escape").await,
        Err(StoreError::InvalidKey { .. })
    ));
}

pub(crate) async fn reads_ranges(store: &dyn Store) {
    store
        .create_if_absent("s/i/obj", Bytes::from_static(b"hello world"))
        .await
        .unwrap();
    assert_eq!(store.get_range("s/i/obj", 0..5).await.unwrap(), "hello");
    assert_eq!(store.get_range("s/i/obj", 6..11).await.unwrap(), "world");
    // Past the end: what there is, then nothing.
    assert_eq!(store.get_range("s/i/obj", 6..50).await.unwrap(), "world");
    assert_eq!(store.get_range("s/i/obj", 20..30).await.unwrap(), "");
    assert_eq!(store.get_range("s/i/obj", 3..3).await.unwrap(), "");
}

/// 12 parts of 5 MiB (S3's minimum) and a short last one: 60 MiB and a bit.
pub(crate) async fn publishes_many_parts_in_order_only_on_complete(store: &dyn Store) {
    let key = "s/i/db.pgdump.zst.age";
    let mut parts: Vec<Bytes> = (0..12).map(|n| pattern(5 * MIB, n)).collect();
    parts.push(pattern(MIB / 3, 99));
    let mut writer = PartWriter::new(store.start_upload(key).await.unwrap(), 4);
    for part in &parts {
        writer.put(Part::new(part.clone())).await.unwrap();
    }
    writer.flush().await.unwrap();
    assert!(store.list("").await.unwrap().is_empty(), "visible too soon");
    writer.complete().await.unwrap();

    let whole = parts.concat();
    assert_eq!(store.head(key).await.unwrap().size, whole.len() as u64);
    assert!(store.get(key).await.unwrap() == whole, "bytes differ");
    for boundary in [5 * MIB, 35 * MIB, 60 * MIB] {
        let range = (boundary - 7) as u64..(boundary + 7) as u64;
        assert_eq!(
            store.get_range(key, range).await.unwrap(),
            whole[boundary - 7..boundary + 7],
            "across {boundary}"
        );
    }
}

pub(crate) async fn creates_only_if_absent(store: &dyn Store) {
    let key = "s/i/manifest.json";
    let first = store
        .create_if_absent(key, Bytes::from_static(b"one"))
        .await
        .unwrap();
    let second = store
        .create_if_absent(key, Bytes::from_static(b"two"))
        .await
        .unwrap();
    assert_eq!(first, CreateOutcome::Created);
    assert_eq!(second, CreateOutcome::AlreadyExists);
    assert_eq!(store.get(key).await.unwrap(), "one");
}

pub(crate) async fn an_upload_never_replaces_an_object(store: &dyn Store) {
    for parts in [1, 2] {
        let key = format!("s/{parts}/x");
        store
            .create_if_absent(&key, Bytes::from_static(b"old"))
            .await
            .unwrap();
        let mut writer = PartWriter::new(store.start_upload(&key).await.unwrap(), 2);
        for n in 0..parts {
            writer.put(Part::new(pattern(5 * MIB, n))).await.unwrap();
        }
        let err = writer.complete().await.unwrap_err();
        assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
        assert_eq!(store.get(&key).await.unwrap(), "old");
    }
}

pub(crate) async fn an_aborted_upload_publishes_nothing(store: &dyn Store) {
    let mut writer = PartWriter::new(store.start_upload("s/i/a").await.unwrap(), 2);
    writer.put(Part::new(pattern(5 * MIB, 1))).await.unwrap();
    writer.put(Part::new(pattern(5 * MIB, 2))).await.unwrap();
    writer.flush().await.unwrap();
    writer.abort().await.unwrap();
    assert!(store.list("").await.unwrap().is_empty());
    assert_not_found(store.head("s/i/a").await);
}

pub(crate) async fn replaces_only_at_the_expected_version(store: &dyn Store) {
    let key = "s/lease.json";
    store
        .create_if_absent(key, Bytes::from_static(b"first"))
        .await
        .unwrap();
    let (data, v1) = store.get_versioned(key).await.unwrap();
    assert_eq!(data, "first");
    let v2 = store
        .replace_if_match(key, Bytes::from_static(b"second"), &v1)
        .await
        .unwrap()
        .expect("replaced at the version read");
    assert_ne!(v1, v2);
    let stale = store
        .replace_if_match(key, Bytes::from_static(b"third"), &v1)
        .await
        .unwrap();
    assert_eq!(stale, None, "replaced at an old version");
    let (data, v) = store.get_versioned(key).await.unwrap();
    assert_eq!((data, v), (Bytes::from_static(b"second"), v2));
    let gone = store
        .replace_if_match("s/none.json", Bytes::from_static(b"x"), &v1)
        .await
        .unwrap();
    assert_eq!(gone, None);
    assert_not_found(store.get("s/none.json").await);
    assert_eq!(keys(store.list("s/").await.unwrap()), [key]);
}

/// A lease being renewed must never look absent: a run taking the set's
/// lease at that moment would create its own and both would run.
pub(crate) async fn an_object_being_replaced_is_never_missing<S: Store + 'static>(
    store: std::sync::Arc<S>,
) {
    let key = "s/lease.json";
    store
        .create_if_absent(key, Bytes::from_static(b"0"))
        .await
        .unwrap();
    let replacer = {
        let store = std::sync::Arc::clone(&store);
        tokio::spawn(async move {
            for i in 1..=50u32 {
                let (_, version) = store.get_versioned(key).await.unwrap();
                let data = Bytes::from(i.to_string());
                let replaced = store.replace_if_match(key, data, &version).await.unwrap();
                assert!(replaced.is_some(), "replacement {i} failed");
            }
        })
    };
    while !replacer.is_finished() {
        let created = store
            .create_if_absent(key, Bytes::from_static(b"intruder"))
            .await
            .unwrap();
        assert_eq!(
            created,
            CreateOutcome::AlreadyExists,
            "the object went missing"
        );
    }
    replacer.await.unwrap();
    assert_eq!(store.get(key).await.unwrap(), "50");
}
