//! The remote cache (`assay push`, `pull`, `run --remote`, `verify
//! --remote`) through the real binary, on a directory remote and on a real
//! S3-compatible server: moto's, from `scripts/install-s3-server.sh`
//! (`ASSAY_S3_SERVER`), started here on 127.0.0.1. Under CI=true a missing
//! server fails the S3 tests; elsewhere they say they did not run.
//!
//! The CI use case end to end: machine A runs and pushes; machine B, a
//! fresh store with only the spec and its lockfile, verifies from the
//! remote and then writes a byte-identical report and lockfile without
//! measuring anything. Faults: a corrupt remote object, a push cut off
//! before its records, two pushers at once, a server stopped before and
//! in the middle of a push, refused credentials.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

use crate::support::{Workspace, assay_cmd};

/// `assay ARGS` in `ws` with extra environment; its output.
fn assay_in(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = assay_cmd();
    cmd.current_dir(ws.path()).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Machine A: the fixture run once.
fn machine_a() -> Workspace {
    let ws = Workspace::new();
    ws.run(&[]);
    ws
}

/// Machine B: the same spec and lockfile, an empty store.
fn machine_b(a: &Workspace) -> Workspace {
    let b = Workspace::with_spec(&std::fs::read_to_string(&a.spec).unwrap());
    std::fs::copy(a.lock_path(), b.lock_path()).unwrap();
    b
}

/// The report files and the lockfile, byte for byte.
fn outputs(ws: &Workspace) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = ["report.md", "report.json", "report.html"]
        .iter()
        .map(|f| ws.report(f))
        .collect();
    v.push(std::fs::read(ws.lock_path()).unwrap());
    v
}

/// Every object file under a directory remote (or store).
fn objects(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(root.join("objects")).unwrap() {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}

/// The CI use case on a remote: A pushes, B verifies from it and then
/// writes the same report and lockfile with nothing measured; a third
/// fresh store runs with `--remote` and pulls every node.
fn reproduce_elsewhere(a: &Workspace, remote: &[&str], env: &[(&str, &str)]) {
    let push = assay_in(a, &[&["push", "spec.yaml", "--json"], remote].concat(), env);
    assert!(push.status.success(), "{}", stderr(&push));
    let pushed = json_of(&push);
    assert_eq!(pushed["records_sent"], 11, "{pushed}");
    // A second push sends nothing: everything is there.
    let again = json_of(&assay_in(
        a,
        &[&["push", "spec.yaml", "--json"], remote].concat(),
        env,
    ));
    assert_eq!(
        (
            &again["records_sent"],
            &again["objects_sent"],
            &again["records_present"]
        ),
        (&Value::from(0), &Value::from(0), &Value::from(11)),
        "{again}"
    );

    let b = machine_b(a);
    let verify = assay_in(&b, &[&["verify", "spec.yaml"], remote].concat(), env);
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert!(
        stderr(&verify).contains("pulled 6 measured and prepared nodes"),
        "{}",
        stderr(&verify)
    );
    let run = b.run(&[]);
    assert_eq!(
        (&run["ran"], &run["cached"]),
        (&Value::from(0), &Value::from(11)),
        "{run}"
    );
    assert_eq!(
        outputs(&b),
        outputs(a),
        "B's report and lockfile differ from A's"
    );

    let c = machine_b(a);
    let out = assay_in(
        &c,
        &[&["run", "spec.yaml", "--json", "--remote"], remote].concat(),
        env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let run = json_of(&out);
    assert_eq!(
        (&run["ran"], &run["pulled"]),
        (&Value::from(0), &Value::from(11)),
        "{run}"
    );
    assert_eq!(outputs(&c), outputs(a));
}

#[test]
fn a_fresh_store_reproduces_the_report_from_a_directory_remote() {
    let a = machine_a();
    let remote = tempfile::tempdir().unwrap();
    let url = remote.path().to_str().unwrap();
    reproduce_elsewhere(&a, &["--remote-url", url], &[]);
    // The remote named once in the folder's `assay.yaml` instead.
    let d = machine_b(&a);
    std::fs::write(
        d.path().join("assay.yaml"),
        format!("remote:\n  url: {url}\n"),
    )
    .unwrap();
    let verify = assay_in(&d, &["verify", "spec.yaml", "--remote"], &[]);
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert_eq!(d.run(&[])["ran"], 0);
    // Without `--remote`, `run` and `verify` never touch a remote.
    let e = machine_b(&a);
    std::fs::copy(d.path().join("assay.yaml"), e.path().join("assay.yaml")).unwrap();
    assert_eq!(e.run(&[])["pulled"], 0);
    // The remote is laid out as a store: records name objects it holds.
    assert_eq!(
        std::fs::read_dir(remote.path().join("nodes"))
            .unwrap()
            .count(),
        11
    );
    assert!(!objects(remote.path()).is_empty());
}

#[test]
fn a_corrupt_remote_object_is_refused_and_named_and_never_stored() {
    let a = machine_a();
    let remote = tempfile::tempdir().unwrap();
    let url = remote.path().to_str().unwrap();
    assert!(
        assay_in(&a, &["push", "spec.yaml", "--remote-url", url], &[])
            .status
            .success()
    );
    let victim = objects(remote.path()).remove(0);
    let digest = victim.file_name().unwrap().to_str().unwrap().to_string();
    std::fs::write(&victim, b"not what the digest names").unwrap();

    let b = machine_b(&a);
    let pull = assay_in(&b, &["pull", "spec.yaml", "--remote-url", url], &[]);
    assert_eq!(pull.status.code(), Some(3), "{}", stderr(&pull));
    assert!(
        stderr(&pull).contains(&format!("{digest} is corrupt")),
        "{}",
        stderr(&pull)
    );
    let local = b.store().join("objects").join(&digest[..2]).join(&digest);
    assert!(!local.exists(), "the corrupt object entered the store");
}

#[test]
fn a_push_cut_off_before_its_records_shows_nothing_and_resumes() {
    let a = machine_a();
    let remote = tempfile::tempdir().unwrap();
    let url = remote.path().to_str().unwrap();
    let b = machine_b(&a);
    let pull_nothing = |b: &Workspace| {
        let pull = assay_in(
            b,
            &["pull", "spec.yaml", "--remote-url", url, "--json"],
            &[],
        );
        assert_eq!(pull.status.code(), Some(1), "{}", stderr(&pull));
        let pulled = json_of(&pull);
        assert_eq!(pulled["pulled"], 0, "{pulled}");
        assert_eq!(pulled["missing"].as_array().unwrap().len(), 11);
        let records = b.store().join("nodes");
        assert!(!records.exists() || std::fs::read_dir(records).unwrap().count() == 0);
    };

    // A remote that fails: a clear error naming it, exit 5, and a reader
    // sees no node.
    std::fs::write(remote.path().join("nodes"), b"").unwrap();
    let cut = assay_in(&a, &["push", "spec.yaml", "--remote-url", url], &[]);
    assert_eq!(cut.status.code(), Some(5), "{}", stderr(&cut));
    assert!(
        stderr(&cut).contains(&format!("remote {url}")),
        "{}",
        stderr(&cut)
    );
    std::fs::remove_file(remote.path().join("nodes")).unwrap();
    pull_nothing(&b);

    // A push cut off after its objects and before its records (the
    // remote as such a push leaves it): the objects are there, no reader
    // sees a node, and pushing again sends the records and no object.
    let full = json_of(&assay_in(
        &a,
        &["push", "spec.yaml", "--remote-url", url, "--json"],
        &[],
    ));
    assert_eq!(full["records_sent"], 11, "{full}");
    std::fs::remove_dir_all(remote.path().join("nodes")).unwrap();
    let landed = objects(remote.path()).len() as u64;
    pull_nothing(&b);
    let resumed = json_of(&assay_in(
        &a,
        &["push", "spec.yaml", "--remote-url", url, "--json"],
        &[],
    ));
    assert_eq!(resumed["records_sent"], 11, "{resumed}");
    assert_eq!(resumed["objects_sent"], 0, "{resumed}");
    assert_eq!(
        resumed["objects_present"].as_u64().unwrap(),
        landed,
        "{resumed}"
    );
    let pull = assay_in(
        &b,
        &["pull", "spec.yaml", "--remote-url", url, "--json"],
        &[],
    );
    assert!(pull.status.success(), "{}", stderr(&pull));
    assert_eq!(json_of(&pull)["pulled"], 11);
}

/// A torn record (a server that accepted a body cut off mid-upload stores
/// what arrived: moto stores it empty) is no record: a reader counts its
/// node missing rather than failing, and the next push replaces it.
#[test]
fn a_torn_remote_record_is_missing_to_a_reader_and_replaced_by_a_push() {
    let a = machine_a();
    let remote = tempfile::tempdir().unwrap();
    let url = remote.path().to_str().unwrap();
    let push = || {
        json_of(&assay_in(
            &a,
            &["push", "spec.yaml", "--remote-url", url, "--json"],
            &[],
        ))
    };
    assert_eq!(push()["records_sent"], 11);
    let torn = std::fs::read_dir(remote.path().join("nodes"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&torn, b"").unwrap();

    let b = machine_b(&a);
    let pull = assay_in(
        &b,
        &["pull", "spec.yaml", "--remote-url", url, "--json"],
        &[],
    );
    assert_eq!(pull.status.code(), Some(1), "{}", stderr(&pull));
    let seen = json_of(&pull);
    assert_eq!(seen["pulled"], 10, "{seen}");
    assert_eq!(seen["missing"].as_array().unwrap().len(), 1, "{seen}");

    let resumed = push();
    assert_eq!(resumed["records_sent"], 1, "{resumed}");
    assert_eq!(resumed["records_present"], 10, "{resumed}");
    assert!(std::fs::metadata(&torn).unwrap().len() > 0);
    let all = assay_in(
        &b,
        &["pull", "spec.yaml", "--remote-url", url, "--json"],
        &[],
    );
    assert!(all.status.success(), "{}", stderr(&all));
    assert_eq!(json_of(&all)["pulled"], 1);
}

/// Two `assay push` processes started together to one remote: each
/// record and object is created exactly once between them, and a record
/// already there is never replaced.
fn two_pushers(a: &Workspace, other: &Workspace, remote: &[&str], env: &[(&str, &str)]) {
    let spawn = |ws: &Workspace| -> Child {
        let mut cmd = assay_cmd();
        cmd.current_dir(ws.path())
            .args([&["push", "spec.yaml", "--json"], remote].concat())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    };
    let (first, second) = (spawn(a), spawn(other));
    let (first, second) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(second.status.success(), "{}", stderr(&second));
    let (x, y) = (json_of(&first), json_of(&second));
    let sum = |k: &str| x[k].as_u64().unwrap() + y[k].as_u64().unwrap();
    assert_eq!(sum("records_sent"), 11, "{x} {y}");
    assert_eq!(sum("records_sent") + sum("records_present"), 22);
    // Every distinct object the lockfile names, sent by exactly one.
    let lock: Value = serde_json::from_slice(&std::fs::read(a.lock_path()).unwrap()).unwrap();
    let distinct: std::collections::BTreeSet<&str> = lock["nodes"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|n| n["outputs"].as_object().unwrap().values())
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(sum("objects_sent"), distinct.len() as u64, "{x} {y}");
}

#[test]
fn two_pushers_at_once_create_each_record_once_and_never_overwrite() {
    let (a, other) = (machine_a(), machine_a());
    let remote = tempfile::tempdir().unwrap();
    let url = remote.path().to_str().unwrap();
    two_pushers(&a, &other, &["--remote-url", url], &[]);
    // A record on the remote is never replaced by a later push.
    let record = std::fs::read_dir(remote.path().join("nodes"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut text: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    text["duration_ms"] = 123456.0.into();
    let edited = serde_json::to_vec_pretty(&text).unwrap();
    std::fs::write(&record, &edited).unwrap();
    let again = json_of(&assay_in(
        &a,
        &["push", "spec.yaml", "--remote-url", url, "--json"],
        &[],
    ));
    assert_eq!(again["records_present"], 11);
    assert_eq!(std::fs::read(&record).unwrap(), edited);
}

// ---- a real S3-compatible server -------------------------------------------

/// moto's server on a free port of 127.0.0.1, stopped when dropped.
struct S3Server {
    child: Child,
    port: u16,
}

/// The credentials the S3 tests sign with (moto accepts any, unless told
/// to refuse); the secret must never be written anywhere.
const KEY_ID: &str = "AKIAASSAYTEST000001";
const SECRET: &str = "assay-test-secret-9f3c1e7b";

impl S3Server {
    /// None (after saying so) where no server is installed, outside CI.
    fn start(refuse_credentials: bool) -> Option<S3Server> {
        let bin = match std::env::var_os("ASSAY_S3_SERVER").filter(|v| !v.is_empty()) {
            Some(p) => PathBuf::from(p),
            None => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "ASSAY_S3_SERVER is not set: CI must install it (scripts/install-s3-server.sh)"
                );
                eprintln!(
                    "ASSAY_S3_SERVER not set: S3 remote test not run (scripts/install-s3-server.sh)"
                );
                return None;
            }
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if refuse_credentials {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
        }
        let child = cmd.spawn().unwrap();
        let server = S3Server { child, port };
        // Ready when it answers; a server that never does fails the test.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "moto_server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Some(server)
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Overwrite an object behind assay's back, signed by boto3 from
    /// moto's own environment (moto refuses unsigned writes over objects).
    fn overwrite(&self, bucket: &str, key: &str, body: &str) {
        let bin = PathBuf::from(std::env::var_os("ASSAY_S3_SERVER").unwrap());
        let python = bin.with_file_name("python");
        let script = format!(
            "import boto3; boto3.client('s3', endpoint_url='{}', aws_access_key_id='{KEY_ID}', aws_secret_access_key='x', region_name='us-east-1').put_object(Bucket='{bucket}', Key='{key}', Body=b'{body}')",
            self.endpoint()
        );
        let out = Command::new(python).args(["-c", &script]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// An unsigned request (moto takes them without auth): the status code.
    fn raw(&self, method: &str, path: &str, body: &[u8]) -> u16 {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut response = String::new();
        let _ = s.read_to_string(&mut response);
        response
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn creds() -> [(&'static str, &'static str); 3] {
    [
        ("AWS_ACCESS_KEY_ID", KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_REGION", "us-east-1"),
    ]
}

/// No file under `root` holds `needle`.
fn nowhere_in(root: &Path, needle: &[u8]) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries {
        let path = e.unwrap().path();
        if path.is_dir() {
            nowhere_in(&path, needle);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds the secret",
                path.display()
            );
        }
    }
}

#[test]
fn an_s3_remote_reproduces_the_report_and_survives_its_faults() {
    let Some(server) = S3Server::start(false) else {
        return;
    };
    assert_eq!(server.raw("PUT", "/cache", b""), 200);
    let endpoint = server.endpoint();
    let env = creds();
    let remote = [
        "--remote-url",
        "s3://cache/ci",
        "--remote-endpoint",
        endpoint.as_str(),
    ];
    let a = machine_a();
    reproduce_elsewhere(&a, &remote, &env);

    // Two pushers at once to a fresh prefix: each record created once.
    let other = machine_a();
    let fresh = [
        "--remote-url",
        "s3://cache/race",
        "--remote-endpoint",
        endpoint.as_str(),
    ];
    two_pushers(&a, &other, &fresh, &env);

    // A corrupt object (overwritten behind assay's back) is refused.
    let lock: Value = serde_json::from_slice(&std::fs::read(a.lock_path()).unwrap()).unwrap();
    let digest = lock["nodes"]["summarise"]["outputs"]["summary"]
        .as_str()
        .unwrap()
        .to_string();
    server.overwrite(
        "cache",
        &format!("ci/objects/{}/{digest}", &digest[..2]),
        "tampered",
    );
    let b = machine_b(&a);
    let pull = assay_in(&b, &[&["pull", "spec.yaml"][..], &remote].concat(), &env);
    assert_eq!(pull.status.code(), Some(3), "{}", stderr(&pull));
    assert!(
        stderr(&pull).contains(&format!("{digest} is corrupt")),
        "{}",
        stderr(&pull)
    );

    // No file of either machine, and nothing printed, holds the secret.
    for ws in [&a, &b, &other] {
        nowhere_in(ws.path(), SECRET.as_bytes());
    }
    assert!(!stderr(&pull).contains(SECRET));

    // The server stops: a clear error naming the remote, exit 5, and the
    // local store is as it was (a local run is still fully cached).
    drop(server);
    let down = assay_in(&a, &[&["push", "spec.yaml"][..], &remote].concat(), &env);
    assert_eq!(down.status.code(), Some(5), "{}", stderr(&down));
    assert!(
        stderr(&down).contains("remote s3://cache/ci"),
        "{}",
        stderr(&down)
    );
    let run = a.run(&[]);
    assert_eq!(run["cached"], 11, "{run}");
}

#[test]
fn an_s3_remote_that_refuses_the_credentials_is_a_clear_error() {
    let Some(server) = S3Server::start(true) else {
        return;
    };
    let endpoint = server.endpoint();
    let a = machine_a();
    let out = assay_in(
        &a,
        &[
            "push",
            "spec.yaml",
            "--remote-url",
            "s3://cache/x",
            "--remote-endpoint",
            &endpoint,
        ],
        &creds(),
    );
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refused the credentials"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains(SECRET));
    // And without any credentials, assay says where to put them (exit 2)
    // rather than asking a cloud metadata service.
    let none = assay_cmd()
        .current_dir(a.path())
        .args([
            "push",
            "spec.yaml",
            "--remote-url",
            "s3://cache/x",
            "--remote-endpoint",
            &endpoint,
        ])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("HOME", a.path())
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(2), "{}", stderr(&none));
    assert!(
        stderr(&none).contains("no S3 credentials"),
        "{}",
        stderr(&none)
    );
}

/// The S3 server stops mid-push: a proxy in front of moto cuts every
/// connection and stops listening once the push has sent a set number of
/// bytes, once half-way (among the objects) and once near the end (among
/// the records). Each time: exit 5 naming the remote; a reader on a fresh
/// store finds only whole nodes (a record whose objects are missing would
/// fail its pull with exit 5); and pushing again resumes, sending only what
/// is missing, after which the reader gets every node.
#[test]
fn an_s3_server_that_stops_mid_push_leaves_no_partial_node_and_the_push_resumes() {
    let Some(server) = S3Server::start(false) else {
        return;
    };
    assert_eq!(server.raw("PUT", "/cache", b""), 200);
    let upstream: std::net::SocketAddr = ([127, 0, 0, 1], server.port).into();
    let env = creds();
    let a = machine_a();
    let push = |url: &str, endpoint: &str| {
        assay_in(
            &a,
            &[
                "push",
                "spec.yaml",
                "--json",
                "--remote-url",
                url,
                "--remote-endpoint",
                endpoint,
            ],
            &env,
        )
    };

    // How many bytes a whole push sends, through a proxy that never cuts.
    let counting = assay_testkit::CutProxy::start(upstream, None).unwrap();
    let whole = push("s3://cache/whole", &counting.url());
    assert!(whole.status.success(), "{}", stderr(&whole));
    let total = counting.forwarded();
    let records_bytes: u64 = std::fs::read_dir(a.store().join("nodes"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(records_bytes < total / 2, "{records_bytes} of {total}");

    for (prefix, cut) in [("half", total / 2), ("late", total - records_bytes / 2)] {
        let url = format!("s3://cache/{prefix}");
        let proxy = assay_testkit::CutProxy::start(upstream, Some(cut)).unwrap();
        let cut_push = push(&url, &proxy.url());
        assert_eq!(cut_push.status.code(), Some(5), "{}", stderr(&cut_push));
        assert!(proxy.is_cut());
        assert!(
            stderr(&cut_push).contains(&format!("remote {url}")),
            "{}",
            stderr(&cut_push)
        );

        let b = machine_b(&a);
        let endpoint = server.endpoint();
        let remote = ["--remote-url", url.as_str(), "--remote-endpoint", &endpoint];
        let pull = |b: &Workspace| {
            assay_in(
                b,
                &[&["pull", "spec.yaml", "--json"][..], &remote].concat(),
                &env,
            )
        };
        let partial = pull(&b);
        assert_eq!(partial.status.code(), Some(1), "{}", stderr(&partial));
        let seen = json_of(&partial);
        let (pulled, missing) = (
            seen["pulled"].as_u64().unwrap(),
            seen["missing"].as_array().unwrap().len() as u64,
        );
        assert_eq!(pulled + missing, 11, "{seen}");
        assert!(missing > 0, "{prefix}: the cut push landed whole: {seen}");
        // Half-way is among the objects: no record can have been written.
        // Near the end, some records were: each is whole.
        match prefix {
            "half" => assert_eq!(pulled, 0, "{seen}"),
            _ => assert!(pulled > 0, "the late cut fell before the records: {seen}"),
        }

        let resumed = push(&url, &endpoint);
        assert!(resumed.status.success(), "{}", stderr(&resumed));
        let resumed = json_of(&resumed);
        assert_eq!(resumed["records_present"], pulled, "{prefix}: {resumed}");
        assert_eq!(resumed["records_sent"], missing, "{prefix}: {resumed}");
        assert!(
            resumed["objects_present"].as_u64().unwrap() > 0,
            "{prefix}: nothing landed before the cut: {resumed}"
        );
        let all = pull(&b);
        assert!(all.status.success(), "{}", stderr(&all));
        assert_eq!(json_of(&all)["pulled"], 11 - pulled, "{prefix}");
    }
}
