//! The server a physical restore replaces, as programs see it: its data
//! directory and the account that owns it, the copy recovered beside it
//! on a spare port (private socket, no archiving), and the swap's moves:
//! stop the server, rename the directories, start it again. Each move
//! looks at what is there first (the directories, and what runs on them:
//! `postmaster.rs`), so that a resumed run repeats none.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use postgres::Client;

use super::journal::{crash_point, Physical};
use super::postmaster;
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

/// Whether a server runs, or is starting, on the data directory `dir`
/// (`postmaster.pid` and the processes: see `postmaster.rs`).
pub(super) fn running(dir: &Path) -> bool {
    postmaster::on(dir).is_some()
}

/// Stops the server on `dir`, if one runs there. One still starting is
/// waited for until its `postmaster.pid` names it, which `pg_ctl stop`
/// needs.
pub(super) fn stop(p: &Physical, dir: &Path) -> Result<(), BackupError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match postmaster::on(dir) {
            None => return Ok(()),
            Some(found) if found.recorded => break,
            Some(found) if Instant::now() > deadline => {
                return Err(refuse(
                    format!(
                    "a server (pid {}) is starting on {} and wrote no postmaster.pid in a minute",
                    found.pid,
                    dir.display()
                ),
                    "stop that process, then run the restore again",
                ))
            }
            Some(_) => std::thread::sleep(Duration::from_millis(100)),
        }
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
    if running(restoring) {
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
    let deadline = Instant::now() + Duration::from_secs(86400);
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
        // No answer yet (a copy an earlier run started may not have made
        // its socket), or one that says it is on its way.
        let recovering = e.as_db_error().is_none()
            || said.contains("not accepting connections")
            || said.contains("starting up")
            || said.contains("in recovery");
        if !recovering || !running(restoring) || Instant::now() > deadline {
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
    if !running(&p.data_dir) {
        return Ok(());
    }
    hook(&p.server_stop, "server_stop")?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while running(&p.data_dir) {
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

/// Starts the server on its data directory (`[backup] server_start`, or
/// `pg_ctl start` with the arguments it ran with before; its log at
/// `log`) and waits until it takes sessions at `url`. What runs there is
/// looked at first: a server up or still starting (a run killed while it
/// started the server leaves that start going on) is waited for, never
/// started a second time.
pub(super) fn start_server(p: &Physical, log: &Path, url: &str) -> Result<(), BackupError> {
    if wait_for_server(p, url, Duration::ZERO)? {
        return Ok(());
    }
    if p.server_start.is_empty() {
        let mut cmd = pg_ctl(p);
        // -W: the wait is ours, by the server's own postmaster.pid.
        cmd.args(["start", "-W", "-D"]).arg(&p.data_dir).arg("-l").arg(log);
        let options = without_data_dir(&p.server_options, &p.data_dir);
        if !options.is_empty() {
            cmd.arg("-o").arg(options);
        }
        run(cmd, "starting the server on the restored data directory")
            .map_err(|e| with_log(e, log))?;
    } else {
        hook(&p.server_start, "server_start")?;
    }
    crash_point("starting");
    if wait_for_server(p, url, Duration::from_secs(5))? {
        return Ok(());
    }
    let e = refuse(
        format!("the server on {} stopped while it started", p.data_dir.display()),
        "see its log, fix what it says, then run the restore with --resume again",
    );
    Err(with_log(e, log))
}

/// Waits for the server on the data directory while one runs or starts
/// there (as long as its `postmaster.pid` says it is starting, then up to
/// ten minutes for a session at `url`): `true` once it takes sessions and
/// is the one on the data directory; `false` when none runs there (after
/// `grace`, for a start just launched to show).
fn wait_for_server(p: &Physical, url: &str, grace: Duration) -> Result<bool, BackupError> {
    let since = Instant::now();
    let mut ready_since: Option<Instant> = None;
    loop {
        let refused = match crate::pg::connect(url, "backstop") {
            Ok(mut client) => {
                same_data_dir(&mut client, p, url)?;
                return Ok(true);
            }
            Err(e) => e,
        };
        let waited_too_long = match postmaster::on(&p.data_dir) {
            None if since.elapsed() >= grace => return Ok(false),
            None => false,
            Some(found) if found.ready => {
                ready_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(600)
            }
            Some(_) => since.elapsed() > Duration::from_secs(86400),
        };
        if waited_too_long {
            return Err(refused.into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The server answering at `url` must be the one on the data directory,
/// not another that took its port while it was down.
fn same_data_dir(client: &mut Client, p: &Physical, url: &str) -> Result<(), BackupError> {
    let Ok(row) = client.query_one("select current_setting('data_directory')", &[]) else {
        return Ok(());
    };
    let theirs = PathBuf::from(row.get::<_, String>(0));
    let canonical = |d: &Path| std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf());
    if canonical(&theirs) == canonical(&p.data_dir) {
        return Ok(());
    }
    Err(refuse(
        format!(
            "{} is answered by the server of {}, not the one on {}",
            crate::pg::redact(url),
            theirs.display(),
            p.data_dir.display()
        ),
        "stop that server (it took the port while the restored one was down), then run the \
         restore with --resume again",
    ))
}

/// The server's arguments without the `-D` that names its data directory
/// itself: `pg_ctl start -D` gives that one, and passing it again would
/// add one more `-D` to the server's command line at every restore. A
/// `-D` naming another directory (a configuration directory whose
/// `postgresql.conf` sets `data_directory`) stays, being the one the
/// server goes by.
fn without_data_dir(options: &str, data_dir: &Path) -> String {
    let canonical = |d: &Path| std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf());
    let is_data_dir =
        |token: &str| canonical(Path::new(token.trim_matches('"'))) == canonical(data_dir);
    let tokens = arguments(options);
    let mut kept = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let bare = tokens[i].trim_matches('"');
        if (bare == "-D" || bare == "--pgdata") && tokens.get(i + 1).is_some_and(|t| is_data_dir(t))
        {
            i += 2;
            continue;
        }
        let joined = bare.strip_prefix("--pgdata=").or_else(|| bare.strip_prefix("-D"));
        if !joined.is_some_and(|d| !d.is_empty() && is_data_dir(d)) {
            kept.push(tokens[i]);
        }
        i += 1;
    }
    kept.join(" ")
}

/// The arguments of a `postmaster.opts` line as written: each in double
/// quotes (PostgreSQL does not escape quotes inside), or bare.
fn arguments(options: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut rest = options.trim_start();
    while !rest.is_empty() {
        let end = match rest.strip_prefix('"') {
            // Up to the quote that ends the argument: one before a space or the end.
            Some(inner) => inner
                .match_indices('"')
                .map(|(at, _)| at + 2)
                .find(|&end| rest[end..].is_empty() || rest[end..].starts_with(' '))
                .unwrap_or(rest.len()),
            None => rest.find(' ').unwrap_or(rest.len()),
        };
        tokens.push(&rest[..end]);
        rest = rest[end..].trim_start();
    }
    tokens
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

    #[test]
    fn the_server_is_started_again_without_a_second_data_directory() {
        let tmp = tempfile::Builder::new().prefix("pg data ").tempdir().unwrap();
        let (dir, d) = (tmp.path(), tmp.path().display());
        let opts = format!("\"-D\" \"{d}\" \"-p\" \"5433\"");
        assert_eq!(without_data_dir(&opts, dir), "\"-p\" \"5433\"");
        // The ones older restores added go too.
        let opts = format!("\"-D\" \"{d}\" \"-D\" \"{d}\" \"-c\" \"config_file=/etc/pg.conf\"");
        assert_eq!(without_data_dir(&opts, dir), "\"-c\" \"config_file=/etc/pg.conf\"");
        // A configuration directory is what the server goes by: it stays.
        let opts = "\"-D\" \"/etc/postgresql/16/main\" \"-p\" \"5433\"";
        assert_eq!(without_data_dir(opts, dir), opts);
        assert_eq!(
            without_data_dir(&format!("-p 5433 --pgdata={d}x"), dir),
            format!("-p 5433 --pgdata={d}x")
        );
        assert_eq!(without_data_dir("", dir), "");
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
