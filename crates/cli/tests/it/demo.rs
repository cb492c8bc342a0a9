//! `backstop demo` end to end: it starts its own throwaway cluster, so this
//! also proves the cluster code as root (via the `postgres` user) and, when
//! run as root, as a normal user.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn backstop() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("backstop")
}

#[test]
fn demo_holds_every_expectation_and_leaves_no_cluster_behind() {
    let out = Command::new(backstop()).arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("demo passed: 16/16 expectations held"), "{stdout}");
    // Every expectation held (a breaching trigger in watch's output is ✗ too, indented).
    assert!(!stdout.lines().any(|l| l.starts_with('✗')), "{stdout}");
    for line in [
        "v2 that fails half-way is rolled back: statement 5/6 failed (42703",
        "v2 that drops protected table users is refused: protected table users was dropped",
        "v2 passes the verification suite: 12/12 checks passed",
        "    ✅ clients are private: users A and B (as role authenticated) each see only their own row of clients",
        "    ✅ protected tables kept every row: 3 table(s), 2250 rows, equal to snapshot v1",
        "a leaky policy planted afterwards is caught: ❌ clients are private: user A can read 1 row(s) of user B's",
        "rollback restores the v1 schema: schema fingerprint",
        "✓ v2 applied again by `backstop migrate`, behind a verified backup",
        "✓ the app fails at 8 %: watch --auto B turns the flags off, sees no recovery, escalates to B and restores",
        "ROLLBACK: method A",
        "✓ method A: flags off",
        "ROLLBACK: method B",
        "past the escalation window of 3 s",
        "✓ method B: restore",
        "✓ the rows written since v2 are kept in the pre-restore snapshot: 2 clients in database",
        "*Incident 1 resolved: MeetSolis*",
        "clients (3 row(s), 2 distinct user_id, RLS OFF)",
        "✓ scenario C: an RLS leak in v2 is counted, exported and reverted",
        "Subject: MeetSolis: some of your data may have been visible to other users",
        "may have let other users see client records",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    // The cluster dir named in no output is gone: none of ours is left for this pid.
    let port = stdout
        .lines()
        .next()
        .and_then(|l| l.split("port ").nth(1))
        .and_then(|p| p.split(' ').next())
        .unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_err(),
        "the demo's server still listens on {port}"
    );
}

#[test]
fn missing_server_binaries_exit_3_with_the_install_hint() {
    let empty = tempfile::tempdir().unwrap();
    let out =
        Command::new(backstop()).arg("demo").env("BACKSTOP_PG_BIN", empty.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("apt-get install postgresql"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// As root the cluster runs as `postgres`; here the whole tool runs as that
/// normal user, which takes the other path through the cluster code.
#[test]
fn demo_runs_as_a_normal_user() {
    if !nix::unistd::Uid::effective().is_root() {
        // Not root: the first test above already ran as a normal user.
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.path().join("backstop");
    std::fs::copy(backstop(), &copy).unwrap();
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(&copy)
        .arg("demo")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("demo passed: 16/16"), "{stdout}");
}
