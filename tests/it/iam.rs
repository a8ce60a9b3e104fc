//! The IAM policies of docs/iam/ (README, "Least privilege"), checked on
//! moto with IAM enforced: the backup host backs up without any delete (its
//! lease is given back by a conditional overwrite) and may not prune; the
//! pruner prunes; a developer lists but cannot back up. And on s3s-fs
//! behind a proxy that refuses every delete, backups still succeed.
//!
//! What moto can check and what it cannot: moto matches each request's
//! Action and Resource against the policies, but evaluates S3 condition
//! keys (`s3:prefix`, `s3:if-none-match`, `s3:if-match`,
//! `s3:ObjectCreationOperation`) against no request values, so any
//! conditional statement would deny. The moto run therefore uses each
//! documented policy with its `Condition` blocks removed, and
//! `the_documented_policies_are_well_formed` checks the conditions' shape
//! and keys instead (AWS documents them under "Enforce conditional writes").

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, Command, Stdio},
};

use crate::support::{
    World, moto,
    s3::{self, PREFIX, S3World},
};

const BUCKET: &str = "iam-backups";
const SET: &str = "docs";

/// Starts a moto of its own (IAM is enforced process-wide), creates the
/// bucket with the documented lifecycle rule and one IAM user per
/// documented policy, then turns enforcement on and prints the endpoint
/// and each user's keys as JSON.
const SERVER: &str = r#"
import glob, json, logging, os, sys
logging.getLogger("werkzeug").setLevel(logging.ERROR)
import boto3
from moto import settings
from moto.server import ThreadedMotoServer
docs, bucket, prefix, set_name = sys.argv[1:5]
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
endpoint = "http://127.0.0.1:%d" % server.get_host_and_port()[1]
admin = dict(endpoint_url=endpoint, region_name="us-east-1",
             aws_access_key_id="admin", aws_secret_access_key="admin")
boto3.client("s3", **admin).create_bucket(Bucket=bucket)
iam = boto3.client("iam", **admin)
keys = {}
for path in sorted(glob.glob(os.path.join(docs, "*.json"))):
    role = os.path.basename(path)[:-5]
    text = open(path).read()
    text = text.replace("BUCKET", bucket).replace("PREFIX", prefix).replace("SET", set_name)
    if role == "lifecycle":
        boto3.client("s3", **admin).put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration=json.loads(text))
        continue
    policy = json.loads(text)
    for statement in policy["Statement"]:
        statement.pop("Condition", None)
    iam.create_user(UserName=role)
    iam.put_user_policy(UserName=role, PolicyName=role, PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=role)["AccessKey"]
    keys[role] = [key["AccessKeyId"], key["SecretAccessKey"]]
settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
print(json.dumps({"endpoint": endpoint, "keys": keys}), flush=True)
sys.stdin.read()
"#;

struct IamMoto {
    endpoint: String,
    keys: serde_json::Value,
    _server: Child,
}

fn docs() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/iam")
}

fn start() -> IamMoto {
    let python = moto::python();
    let mut child = Command::new(&python)
        .args(["-c", SERVER])
        .arg(docs())
        .args([BUCKET, PREFIX, SET])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let setup: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|_| panic!("moto with IAM did not start (its error is above)"));
    IamMoto {
        endpoint: setup["endpoint"].as_str().unwrap().to_owned(),
        keys: setup["keys"].clone(),
        _server: child,
    }
}

/// `sluice ARGS` with the keys of the IAM user `role`.
fn run(w: &World, moto: &IamMoto, role: &str, args: &[&str]) -> std::process::Output {
    let keys = &moto.keys[role];
    s3::command(w)
        .env("AWS_ACCESS_KEY_ID", keys[0].as_str().unwrap())
        .env("AWS_SECRET_ACCESS_KEY", keys[1].as_str().unwrap())
        .args(args)
        .output()
        .unwrap()
}

fn config(w: &World, moto: &IamMoto, set_extra: &str) {
    s3::write_config(w, BUCKET, &moto.endpoint, "");
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(w.path("sluice.toml"))
        .unwrap();
    write!(
        file,
        "[keys]\nrecipients = [\"{recipient}\"]\n\n[sets.{SET}]\nretention = {{ keep-last = 1 }}\n{set_extra}\n\n[[sets.{SET}.sources]]\nname = \"files\"\nkind = \"files\"\npath = \"{data}\"\n",
        recipient = w.recipient,
        data = w.path("data").display(),
    )
    .unwrap();
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn each_documented_role_can_do_its_job_and_no_more() {
    let moto = start();
    let w = World::new();
    fs::create_dir(w.path("data")).unwrap();
    fs::write(w.path("data/a.txt"), "hello").unwrap();
    config(&w, &moto, "");

    // The backup host backs up, twice in a row: no delete is needed to
    // give the lease back, so the second run finds the set free.
    let out = run(&w, &moto, "backup-host", &["backup", SET]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The second backup's prune must delete the first: refused, with the
    // way out named, and the backup itself committed.
    let out = run(&w, &moto, "backup-host", &["backup", SET]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is committed, but pruning"), "{err}");
    assert!(err.contains("access denied"), "{err}");
    assert!(err.contains("prune-after-backup = false"), "{err}");
    // As documented: the backup host does not prune.
    config(&w, &moto, "prune-after-backup = false");
    let out = run(&w, &moto, "backup-host", &["backup", SET]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&w, &moto, "backup-host", &["prune", SET]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("access denied"), "{err}");
    let listed = run(&w, &moto, "developer-read-only", &["list", SET, "--json"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let ids: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(ids.as_array().unwrap().len(), 3);

    // The pruner prunes (and takes and gives back the lease).
    let out = run(&w, &moto, "pruner", &["prune", SET]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = run(&w, &moto, "developer-read-only", &["list", SET, "--json"]);
    let ids: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(ids.as_array().unwrap().len(), 1);

    // A developer reads the catalog, but cannot write a backup.
    let id = ids[0]["id"].as_str().unwrap();
    let out = run(
        &w,
        &moto,
        "developer-read-only",
        &["show", &format!("{SET}@{id}")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&w, &moto, "developer-read-only", &["backup", SET]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("access denied"), "{err}");
}

#[test]
fn backups_succeed_one_after_another_when_the_store_refuses_every_delete() {
    let s = S3World::new();
    s.server.refuse_deletes();
    let data = s.world.path("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("a.txt"), "a").unwrap();
    let source = format!("docs=files:{}", data.display());
    for _ in 0..2 {
        let out = s.backup("docs", &source);
        let err = stderr(&out);
        // The second run finds the lease given back, not held.
        assert!(out.status.success(), "{err}");
        assert!(!err.contains("lease"), "{err}");
    }
    let deletes = s
        .server
        .request_heads()
        .into_iter()
        .filter(|head| head.starts_with("DELETE "))
        .count();
    assert_eq!(deletes, 0, "a backup sent a DELETE");
}

#[test]
fn the_documented_policies_are_well_formed() {
    let known_conditions = [
        ("StringLike", "s3:prefix"),
        ("Null", "s3:if-none-match"),
        ("Null", "s3:if-match"),
        ("Bool", "s3:ObjectCreationOperation"),
    ];
    let mut roles = Vec::new();
    for entry in fs::read_dir(docs()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let policy: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if name == "lifecycle" {
            let rule = &policy["Rules"][0];
            assert_eq!(rule["Status"], "Enabled");
            assert!(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"].is_u64());
            continue;
        }
        roles.push(name.clone());
        assert_eq!(policy["Version"], "2012-10-17", "{name}");
        for statement in policy["Statement"].as_array().unwrap() {
            let sid = statement["Sid"].as_str().unwrap();
            assert_eq!(statement["Effect"], "Allow", "{name} {sid}");
            let strings = |v: &serde_json::Value| -> Vec<String> {
                match v {
                    serde_json::Value::String(s) => vec![s.clone()],
                    serde_json::Value::Array(a) => {
                        a.iter().map(|s| s.as_str().unwrap().to_owned()).collect()
                    }
                    other => panic!("{name} {sid}: {other}"),
                }
            };
            for action in strings(&statement["Action"]) {
                assert!(action.starts_with("s3:"), "{name} {sid}: {action}");
                assert!(
                    name == "pruner" || action != "s3:DeleteObject",
                    "{name} may delete"
                );
            }
            for resource in strings(&statement["Resource"]) {
                assert!(
                    resource.starts_with("arn:aws:s3:::BUCKET"),
                    "{name} {sid}: {resource}"
                );
            }
            if let Some(condition) = statement.get("Condition") {
                for (operator, keys) in condition.as_object().unwrap() {
                    for key in keys.as_object().unwrap().keys() {
                        assert!(
                            known_conditions.contains(&(operator.as_str(), key.as_str())),
                            "{name} {sid}: {operator} {key}"
                        );
                    }
                }
            }
        }
    }
    roles.sort();
    assert_eq!(
        roles,
        [
            "backup-host",
            "developer-read-only",
            "pruner",
            "restore-host"
        ]
    );
}
