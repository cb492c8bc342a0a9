//! The server a physical restore replaces, as programs see it: its data
//! directory and the account that owns it, the copy recovered beside it
//! on a spare port (private socket, no archiving), and the swap's moves:
//! stop the server, rename the directories, start it again. Each move
//! looks at what is there first, so that a resumed run repeats none.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use postgres::Client;

use super::journal::Physical;
use crate::backup::BackupError;

/// An environment refusal: what is wrong and what to do (exit 3).
fn refuse(what: String, fix: &str) -> BackupError {
    BackupError::PgBackRest { what, fix: fix.to_string() }
}

/// The data directory's owner (uid, gid), once it is clear that this
/// process may act as that account: it runs as the owner, or as root
/// (then the server's programs run as the owner).
pub(super) fn owner_of(data_dir: &Path) -> Result<(u32, u32), BackupError> {
    let version = data_dir.join("PG_VERSION");
    let fix = "run Backstop on the database server's host as the data directory's owner \
               (usually postgres), or restore with pgBackRest yourself";
    if let Err(e) = std::fs::read_to_string(&version) {
        return Err(refuse(
            format!(
                "a physical restore replaces the server's data directory {}, and Backstop cannot \
                 read {} ({e})",
                data_dir.display(),
                version.display()
            ),
            fix,
        ));
    }
    let meta = std::fs::metadata(data_dir).map_err(BackupError::io(data_dir))?;
    let me = nix::unistd::Uid::effective().as_raw();
    if me != 0 && me != meta.uid() {
        let who = |uid: u32| {
            nix::unistd::User::from_uid(uid.into())
                .ok()
                .flatten()
                .map_or(format!("uid {uid}"), |u| u.name)
        };
        return Err(refuse(
            format!(
                "a physical restore replaces the server's data directory {}, owned by {}; \
                 Backstop runs as {}",
                data_dir.display(),
                who(meta.uid()),
                who(me)
            ),
            fix,
        ));
    }
    Ok((meta.uid(), meta.gid()))
}

/// Proves that the data directory of `p` on this host is the one the
/// server at the other end of the connection runs on: its control file
/// names the same system identifier and says it is in production (not a
/// standby of it), and its `postmaster.pid` names a live process here
/// listening on the server's port. A restore run from another host whose
/// disk holds a directory of the same name must not stop that one.
pub(super) fn same_server(
    p: &Physical,
    system_identifier: Option<&str>,
    port: u16,
) -> Result<(), BackupError> {
    let fix = "run Backstop on the database server's host, against the primary, as the data \
               directory's owner";
    let mut cmd = as_owner(p, p.bin_dir.join("pg_controldata"));
    cmd.env("LC_ALL", "C").arg(&p.data_dir);
    let out = cmd
        .output()
        .map_err(|source| BackupError::Spawn { tool: "pg_controldata".into(), source })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim_start_matches(':').trim().to_string())
            .unwrap_or_default()
    };
    let (local_id, state) = (field("Database system identifier"), field("Database cluster state"));
    let dir = p.data_dir.display();
    if system_identifier.is_some_and(|id| id != local_id) {
        return Err(refuse(
            format!(
                "{dir} on this host is cluster {local_id}, not the server's ({})",
                system_identifier.unwrap_or_default()
            ),
            fix,
        ));
    }
    if state != "in production" {
        return Err(refuse(format!("the cluster in {dir} on this host is {state:?}"), fix));
    }
    let pid_file = std::fs::read_to_string(p.data_dir.join("postmaster.pid")).unwrap_or_default();
    let lines: Vec<&str> = pid_file.lines().collect();
    let pid = lines.first().and_then(|l| l.trim().parse::<i32>().ok());
    let alive = pid
        .is_some_and(|pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok());
    let listening = lines.get(3).and_then(|l| l.trim().parse::<u16>().ok()) == Some(port);
    if !alive || !listening {
        return Err(refuse(
            format!("no server of {dir} runs on this host on port {port} (its postmaster.pid)"),
            fix,
        ));
    }
    Ok(())
}

/// The server's arguments from `<data_dir>/postmaster.opts` (the program
/// left out), as `pg_ctl -o` takes them.
pub(super) fn server_options(data_dir: &Path) -> Result<String, BackupError> {
    let path = data_dir.join("postmaster.opts");
    let text = std::fs::read_to_string(&path).map_err(BackupError::io(&path))?;
    let line = text.lines().next().unwrap_or_default();
    Ok(line.find(" \"").map_or(String::new(), |at| line[at + 1..].trim().to_string()))
}

/// A free TCP port for the copy (it listens on none; the port names its
/// socket).
pub(super) fn spare_port() -> Result<u16, BackupError> {
    crate::pg::cluster::free_port().map_err(BackupError::io("127.0.0.1"))
}

/// A program run as the data directory's owner, without the caller's PG*
/// settings.
fn as_owner(p: &Physical, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    if nix::unistd::Uid::effective().is_root() && p.owner.0 != 0 {
        cmd.uid(p.owner.0).gid(p.owner.1);
    }
    for var in ["PGDATA", "PGPORT", "PGHOST", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGOPTIONS"] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `cmd`; what it printed when it failed.
fn run(mut cmd: Command, what: &str) -> Result<(), BackupError> {
    crate::shell::die_with_parent(&mut cmd);
    let out = cmd.output().map_err(|source| BackupError::Spawn { tool: what.into(), source })?;
    if out.status.success() {
        return Ok(());
    }
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    Err(refuse(format!("{what} failed ({}): {}", out.status, said.trim()), ""))
}

fn pg_ctl(p: &Physical) -> Command {
    as_owner(p, p.bin_dir.join("pg_ctl"))
}

/// Whether a server runs on the data directory `dir`.
pub(super) fn running(p: &Physical, dir: &Path) -> bool {
    dir.join("postmaster.pid").exists()
        && pg_ctl(p)
            .arg("status")
            .arg("-D")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// Stops the server on `dir`, if one runs there.
pub(super) fn stop(p: &Physical, dir: &Path) -> Result<(), BackupError> {
    if !running(p, dir) {
        return Ok(());
    }
    let mut cmd = pg_ctl(p);
    cmd.args(["stop", "-m", "fast", "-w", "-t", "600", "-D"]).arg(dir);
    run(cmd, &format!("pg_ctl stop -D {}", dir.display()))
}

/// An empty directory of the owner's, mode 0700.
pub(super) fn fresh_dir(dir: &Path, owner: (u32, u32)) -> Result<(), BackupError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(BackupError::io(dir))?;
    }
    std::fs::create_dir(dir).map_err(BackupError::io(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(BackupError::io(dir))?;
    crate::pg::cluster::chown_tree(dir, owner).map_err(BackupError::io(dir))
}

/// Starts the copy in `restoring` on the spare port, over a private
/// socket in `run_dir` that trusts the owner's local sessions, and no
/// standby reads. Its files stay as restored: the settings are the
/// command line's. Archiving is on with no command: a copy that archived
/// would push its new timeline into the stanza while the server still
/// runs on the old one, but the copy keeps every segment and its timeline
/// history marked for archiving, so that the server started on it later
/// archives them with its own command, leaving no hole in the stanza.
pub(super) fn start_copy(
    p: &Physical,
    restoring: &Path,
    run_dir: &Path,
) -> Result<(), BackupError> {
    if running(p, restoring) {
        return Ok(());
    }
    if !run_dir.exists() {
        fresh_dir(run_dir, p.owner)?;
    }
    let hba = run_dir.join("pg_hba.conf");
    std::fs::write(&hba, "local all all trust\n").map_err(BackupError::io(&hba))?;
    crate::pg::cluster::chown_tree(&hba, p.owner).map_err(BackupError::io(&hba))?;
    let log = run_dir.join("copy.log");
    let mut options = format!(
        "-p {} -c listen_addresses='' -c unix_socket_directories='{}' -c hba_file='{}' \
         -c archive_mode=on -c archive_command=''{} -c hot_standby=off -c shared_buffers=128MB",
        p.port,
        run_dir.display(),
        hba.display(),
        // Where a library archives instead, it must be off too.
        if p.major >= 15 { " -c archive_library=''" } else { "" }
    );
    // A server whose configuration lives outside its data directory (as
    // Debian's clusters keep theirs in /etc) left none in the backup: the
    // copy gets empty files of its own, the command line saying the rest.
    // The server started on it after the swap reads its own again.
    if !restoring.join("postgresql.conf").exists() {
        for name in ["postgresql.conf", "pg_ident.conf"] {
            let path = run_dir.join(name);
            std::fs::write(&path, "").map_err(BackupError::io(&path))?;
            crate::pg::cluster::chown_tree(&path, p.owner).map_err(BackupError::io(&path))?;
        }
        options.push_str(&format!(
            " -c config_file='{}' -c ident_file='{}'",
            run_dir.join("postgresql.conf").display(),
            run_dir.join("pg_ident.conf").display()
        ));
    }
    let mut cmd = pg_ctl(p);
    cmd.args(["start", "-w", "-t", "86400", "-D"])
        .arg(restoring)
        .arg("-l")
        .arg(&log)
        .arg("-o")
        .arg(options);
    run(cmd, "starting the recovered copy").map_err(|e| with_log(e, &log))
}

/// `e` with the last lines of the server log `log`.
fn with_log(e: BackupError, log: &Path) -> BackupError {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(6).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    match e {
        BackupError::PgBackRest { what, fix } => {
            BackupError::PgBackRest { what: format!("{what}\n{}", tail.join("\n")), fix }
        }
        e => e,
    }
}

/// A session on `database` of the copy, as the URL's user (its roles are
/// the server's), exempt from freezes, once the copy ended its recovery
/// at the point (it takes no session before: no standby reads).
pub(super) fn copy_client(
    p: &Physical,
    restoring: &Path,
    run_dir: &Path,
    url: &str,
    database: &str,
) -> Result<Client, BackupError> {
    let user = url
        .parse::<postgres::Config>()
        .ok()
        .and_then(|c| c.get_user().map(str::to_string))
        .unwrap_or_else(|| "postgres".into());
    let mut config = postgres::Config::new();
    config.host_path(run_dir).port(p.port).user(&user).dbname(database);
    config.application_name("backstop");
    loop {
        let e = match config.connect(postgres::NoTls) {
            Ok(mut client) => {
                crate::freeze::exempt(&mut client)
                    .map_err(BackupError::db("exempting the session"))?;
                return Ok(client);
            }
            Err(e) => e,
        };
        let said = e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string());
        let recovering = said.contains("not accepting connections")
            || said.contains("starting up")
            || said.contains("in recovery");
        if !recovering || !running(p, restoring) {
            let e = refuse(format!("the recovered copy takes no session: {said}"), "");
            return Err(with_log(e, &run_dir.join("copy.log")));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs `[backup] server_stop` or `server_start` as given.
fn hook(argv: &[String], what: &str) -> Result<(), BackupError> {
    let (program, args) = argv.split_first().expect("called with a command");
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    run(cmd, &format!("[backup] {what} `{}`", argv.join(" ")))
}

/// Stops the server: `[backup] server_stop`, or `pg_ctl stop -m fast`.
pub(super) fn stop_server(p: &Physical) -> Result<(), BackupError> {
    if p.server_stop.is_empty() {
        return stop(p, &p.data_dir);
    }
    if !running(p, &p.data_dir) {
        return Ok(());
    }
    hook(&p.server_stop, "server_stop")?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while running(p, &p.data_dir) {
        if Instant::now() > deadline {
            return Err(refuse(
                format!("the server on {} still runs after server_stop", p.data_dir.display()),
                "check [backup] server_stop",
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Starts the server on its data directory: `[backup] server_start`, or
/// `pg_ctl start` with the arguments it ran with before; its log at `log`.
pub(super) fn start_server(p: &Physical, log: &Path) -> Result<(), BackupError> {
    if running(p, &p.data_dir) {
        return Ok(());
    }
    if !p.server_start.is_empty() {
        return hook(&p.server_start, "server_start");
    }
    let mut cmd = pg_ctl(p);
    cmd.args(["start", "-w", "-t", "86400", "-D"]).arg(&p.data_dir).arg("-l").arg(log);
    if !p.server_options.is_empty() {
        cmd.arg("-o").arg(&p.server_options);
    }
    run(cmd, "starting the server on the restored data directory").map_err(|e| with_log(e, log))
}

/// Waits until the server at `url` takes connections again.
pub(super) fn wait_accepting(url: &str, limit: Duration) -> Result<(), BackupError> {
    let deadline = Instant::now() + limit;
    loop {
        match crate::pg::connect(url, "backstop") {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Renames `from` to `to` and makes the rename durable.
pub(super) fn rename(from: &Path, to: &Path) -> Result<(), BackupError> {
    std::fs::rename(from, to).map_err(BackupError::io(from))?;
    let parent: PathBuf = to.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    crate::backup::manifest::sync_dir(&parent).map_err(BackupError::io(parent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_is_started_again_with_the_arguments_it_ran_with() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("postmaster.opts"),
            "/usr/lib/postgresql/16/bin/postgres \"-D\" \"/var/lib/pg data\" \"-p\" \"5433\"\n",
        )
        .unwrap();
        assert_eq!(
            server_options(dir.path()).unwrap(),
            "\"-D\" \"/var/lib/pg data\" \"-p\" \"5433\""
        );
        std::fs::write(dir.path().join("postmaster.opts"), "/usr/bin/postgres\n").unwrap();
        assert_eq!(server_options(dir.path()).unwrap(), "");
    }

    /// A directory of the same name that is another cluster, or not the
    /// one listening on the server's port, is not the server's.
    #[test]
    fn only_the_data_directory_of_the_server_connected_to_is_taken_for_it() {
        let cluster = crate::pg::cluster::Cluster::start().unwrap();
        let data_dir = cluster.dir().join("data");
        let id: String = cluster
            .connect("postgres")
            .unwrap()
            .query_one("select system_identifier::text from pg_control_system()", &[])
            .unwrap()
            .get(0);
        let p = Physical {
            step: super::super::journal::PhysicalStep::Checked,
            owner: owner_of(&data_dir).unwrap(),
            data_dir,
            bin_dir: cluster.bin().dir.clone(),
            major: cluster.bin().major,
            server_options: String::new(),
            port: 0,
            server_stop: vec![],
            server_start: vec![],
            incoming: None,
        };
        same_server(&p, Some(&id), cluster.port()).unwrap();
        let other = same_server(&p, Some("1234"), cluster.port()).unwrap_err().to_string();
        assert!(other.contains(&format!("is cluster {id}, not the server's (1234)")), "{other}");
        let port = same_server(&p, Some(&id), cluster.port() + 1).unwrap_err().to_string();
        assert!(port.contains("no server of"), "{port}");
    }

    #[test]
    fn a_data_directory_nobody_here_can_read_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let e = owner_of(&dir.path().join("data")).unwrap_err().to_string();
        assert!(e.contains("cannot read") && e.contains("PG_VERSION"), "{e}");
        assert!(e.contains("owner"), "{e}");
    }
}
