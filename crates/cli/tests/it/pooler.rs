//! Commands through a real PgBouncer started by the test, in front of the
//! shared cluster. Before: through `pool_mode = transaction`, `migrate`
//! stopped at its backup with pg_dump's "unsupported startup parameter:
//! options" (after creating Backstop's schema), naming neither the pooler
//! nor the URL to use; through `pool_mode = session` it failed the same,
//! as pg_dump's startup options are refused in every mode.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::{DbExt, Project};

/// A PgBouncer running for one test, stopped on drop.
struct Bouncer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pgbouncer() -> Option<PathBuf> {
    let sbin = Path::new("/usr/sbin/pgbouncer");
    if sbin.is_file() {
        return Some(sbin.to_path_buf());
    }
    crate::common::program("pgbouncer", ".ci/tools/pgbouncer.sh")
}

impl Bouncer {
    /// PgBouncer with two databases in front of `url`'s: `tx` pooled by
    /// transaction, `session` by session. As root it runs as `postgres`
    /// (it refuses to run as root), so its files are readable by others.
    fn start(bin: &Path, url: &str) -> Bouncer {
        let config = backstop_core::pg::conn::parse_url(url).unwrap();
        let user = config.get_user().unwrap();
        let password = String::from_utf8(config.get_password().unwrap().to_vec()).unwrap();
        let db = config.get_dbname().unwrap();
        let port = config.get_ports()[0];
        let dir = tempfile::tempdir().unwrap();
        let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let own_port = listen.local_addr().unwrap().port();
        drop(listen);
        let server = format!("host=127.0.0.1 port={port} dbname={db} user={user}");
        let ini = format!(
            "[databases]\ntx = {server} pool_mode=transaction\nsession = {server} pool_mode=session\n\
             [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {own_port}\nunix_socket_dir =\n\
             auth_type = plain\nauth_file = {}\nlog_connections = 0\nlog_disconnections = 0\n",
            dir.path().join("users.txt").display()
        );
        std::fs::write(dir.path().join("pgbouncer.ini"), ini).unwrap();
        std::fs::write(dir.path().join("users.txt"), format!("\"{user}\" \"{password}\"\n"))
            .unwrap();
        let mut cmd = Command::new(bin);
        // Its log is not read: a pipe nobody empties would stop it.
        cmd.arg(dir.path().join("pgbouncer.ini")).stdout(Stdio::null()).stderr(Stdio::null());
        if nix::unistd::Uid::effective().is_root() {
            use std::os::unix::fs::PermissionsExt as _;
            use std::os::unix::process::CommandExt as _;
            let pg = nix::unistd::User::from_name("postgres").unwrap().expect("a postgres user");
            for f in ["", "pgbouncer.ini", "users.txt"] {
                let mode = if f.is_empty() { 0o755 } else { 0o644 };
                let path = dir.path().join(f);
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            cmd.uid(pg.uid.as_raw()).gid(pg.gid.as_raw());
        }
        let child = cmd.spawn().expect("pgbouncer starts");
        let bouncer = Bouncer { child, port: own_port, _dir: dir };
        // Started when it takes a connection: up to 200 tries, 50 ms apart.
        let listening = (0..200).any(|_| {
            let up = std::net::TcpStream::connect(("127.0.0.1", own_port)).is_ok();
            if !up {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            up
        });
        assert!(listening, "pgbouncer did not listen on port {own_port}");
        bouncer
    }

    fn url(&self, url: &str, database: &str) -> String {
        let config = backstop_core::pg::conn::parse_url(url).unwrap();
        let password = String::from_utf8(config.get_password().unwrap().to_vec()).unwrap();
        format!(
            "postgres://{}:{password}@127.0.0.1:{}/{database}",
            config.get_user().unwrap(),
            self.port
        )
    }
}

#[test]
fn a_transaction_pooler_is_refused_before_anything_and_a_session_pooler_works() {
    let Some(bin) = pgbouncer() else { return };
    let mut p = Project::new("pooler");
    p.migration("20240101000000_users", "CREATE TABLE users (id int PRIMARY KEY);\n", None);
    p.migration("20240102000000_email", "ALTER TABLE users ADD COLUMN email text;\n", None);
    let direct = p.url.clone();
    let bouncer = Bouncer::start(&bin, &direct);

    let config = backstop_core::pg::conn::parse_url(&direct).unwrap();
    let password = String::from_utf8(config.get_password().unwrap().to_vec()).unwrap();
    p.url = bouncer.url(&direct, "tx");
    // One statement at a time works through it.
    p.run(&["status"]).expect_code(0).expect_output("pending (2)");
    // A command that needs one session is refused, naming the pooler and
    // the URL to use, before it touches anything.
    let serve = ["serve", "--listen", "127.0.0.1:0"];
    for args in [&["migrate"][..], &["backup", "create"], &["rollback", "--yes"], &serve] {
        let run = p.run(args);
        run.expect_code(2)
            .expect_output(&format!("127.0.0.1:{} pools by transaction", bouncer.port))
            .expect_output("ran on one server process")
            .expect_output("pool_mode=session");
        assert!(!run.all().contains(&password), "the password is never printed");
    }
    let mut db = p.client();
    assert!(!db.history_schema_exists(), "nothing was created through the pooler");
    assert!(!db.exists("users"));

    // A session pooler keeps one server process per session: migrate,
    // its backup and its lock work, and so does the rollback.
    p.url = bouncer.url(&direct, "session");
    p.run(&["migrate"]).expect_code(0).expect_output("applied 20240102000000");
    assert_eq!(db.applied().len(), 2);
    p.run(&["rollback", "--yes"]).expect_code(0).expect_output("reverted 20240102000000");
    assert_eq!(db.applied().len(), 1);
}
