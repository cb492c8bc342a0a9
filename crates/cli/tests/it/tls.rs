//! TLS to the database with libpq's `sslmode` values, against a throwaway
//! cluster whose TCP port rejects every connection without TLS.

use std::path::PathBuf;
use std::sync::LazyLock;

use crate::common::*;
use backstop_core::pg::cluster::Cluster;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;

/// The TLS cluster and the files a client needs.
struct Tls {
    cluster: Cluster,
    /// The CA that signed the server's certificate (for `localhost` only).
    ca: PathBuf,
    /// A CA that signed nothing the server has.
    other_ca: PathBuf,
    /// A client certificate and key for the role `certuser`, by `ca`.
    client_cert: PathBuf,
    client_key: PathBuf,
    _files: TempDir,
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A certificate by `ca` for the names given, with the common name `cn`: (cert, key) PEM.
fn issue(ca: &CertifiedIssuer<'static, KeyPair>, names: &[&str], cn: &str) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

static TLS: LazyLock<Tls> = LazyLock::new(|| {
    let ca = new_ca("backstop test CA");
    let (cert, key) = issue(&ca, &["localhost"], "localhost");
    let cluster = Cluster::start_with_tls(&cert, &key).expect("TLS cluster starts");

    let files = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let ca_path = write("ca.pem", &ca.pem());
    let other_ca = write("other-ca.pem", &new_ca("someone else's CA").pem());
    let (client_cert, client_key) = issue(&ca, &[], "certuser");
    let client_cert = write("client.crt", &client_cert);
    let client_key = write("client.key", &client_key);

    // `certuser` logs in by client certificate alone.
    let data = cluster.dir().join("data");
    std::fs::write(data.join("ca.crt"), ca.pem()).unwrap();
    let hba = std::fs::read_to_string(data.join("pg_hba.conf")).unwrap();
    std::fs::write(data.join("pg_hba.conf"), format!("hostssl all certuser all cert\n{hba}"))
        .unwrap();
    let mut admin = cluster.connect("postgres").unwrap();
    for sql in [
        "CREATE ROLE certuser LOGIN SUPERUSER",
        "ALTER SYSTEM SET ssl_ca_file = 'ca.crt'",
        "SELECT pg_reload_conf()",
    ] {
        admin.batch_execute(sql).unwrap();
    }
    drop(admin);

    Tls { cluster, ca: ca_path, other_ca, client_cert, client_key, _files: files }
});

/// A project on the TLS cluster.
fn project(label: &str) -> Project {
    Project::on(&TLS.cluster, label)
}

/// The project's URL with `host` for 127.0.0.1 and `query` added.
fn url(p: &Project, host: &str, query: &str) -> String {
    format!("{}?{query}", p.url.replace("@127.0.0.1:", &format!("@{host}:")))
}

/// The password in a cluster URL, to check that no output shows it.
fn password(p: &Project) -> String {
    let after = p.url.split_once("://postgres:").unwrap().1;
    after.split_once('@').unwrap().0.to_string()
}

#[track_caller]
fn no_password(p: &Project, run: &Run) {
    assert!(!run.all().contains(&password(p)), "the password was printed:\n{}", run.all());
}

#[test]
fn sslmode_require_reaches_a_server_that_rejects_plain_connections() {
    let p = project("tls_require");
    p.run_with_url(&url(&p, "127.0.0.1", "sslmode=require"), &["status"]).expect_code(0);
}

#[test]
fn no_sslmode_is_prefer_and_uses_tls_when_offered() {
    let p = project("tls_prefer");
    p.run_with_url(&p.url, &["status"]).expect_code(0);
}

#[test]
fn sslmode_disable_against_a_tls_only_server_says_to_use_require() {
    let p = project("tls_disable");
    let run = p.run_with_url(&url(&p, "127.0.0.1", "sslmode=disable"), &["status"]);
    run.expect_code(3).expect_output("no encryption").expect_output("use sslmode=require");
    no_password(&p, &run);
}

#[test]
fn verify_full_with_the_servers_ca_and_host_name_connects() {
    let p = project("tls_verify_full");
    let query = format!("sslmode=verify-full&sslrootcert={}", TLS.ca.display());
    p.run_with_url(&url(&p, "localhost", &query), &["status"]).expect_code(0);
}

#[test]
fn verify_full_also_works_in_a_keyword_connection_string() {
    let p = project("tls_keywords");
    let conninfo = format!(
        "host=localhost port={} user=postgres password='{}' dbname={} sslmode = verify-full sslrootcert='{}'",
        TLS.cluster.port(),
        password(&p),
        p.db,
        TLS.ca.display()
    );
    p.run_with_url(&conninfo, &["status"]).expect_code(0);
}

#[test]
fn verify_full_with_another_ca_fails_and_names_the_fix() {
    let p = project("tls_wrong_ca");
    let query = format!("sslmode=verify-full&sslrootcert={}", TLS.other_ca.display());
    let run = p.run_with_url(&url(&p, "localhost", &query), &["status"]);
    run.expect_code(3)
        .expect_output("not signed by a CA in")
        .expect_output("sslrootcert=")
        .expect_output("sslmode=require");
    no_password(&p, &run);
}

#[test]
fn verify_full_with_a_host_the_certificate_does_not_name_fails() {
    let p = project("tls_wrong_host");
    let query = format!("sslmode=verify-full&sslrootcert={}", TLS.ca.display());
    let run = p.run_with_url(&url(&p, "127.0.0.1", &query), &["status"]);
    run.expect_code(3)
        .expect_output("not issued for host 127.0.0.1")
        .expect_output("sslmode=verify-ca");
    no_password(&p, &run);
}

#[test]
fn verify_ca_checks_the_chain_but_not_the_host_name() {
    let p = project("tls_verify_ca");
    let right = format!("sslmode=verify-ca&sslrootcert={}", TLS.ca.display());
    p.run_with_url(&url(&p, "127.0.0.1", &right), &["status"]).expect_code(0);
    let wrong = format!("sslmode=verify-ca&sslrootcert={}", TLS.other_ca.display());
    p.run_with_url(&url(&p, "127.0.0.1", &wrong), &["status"])
        .expect_code(3)
        .expect_output("not signed by a CA");
}

#[test]
fn require_with_a_root_certificate_verifies_the_chain_as_libpq_does() {
    let p = project("tls_require_root");
    let query = format!("sslmode=require&sslrootcert={}", TLS.other_ca.display());
    p.run_with_url(&url(&p, "127.0.0.1", &query), &["status"])
        .expect_code(3)
        .expect_output("not signed by a CA");
}

#[test]
fn a_verify_mode_without_a_root_certificate_file_is_a_config_error() {
    let p = project("tls_no_root");
    let query = "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem";
    let run = p.run_with_url(&url(&p, "localhost", query), &["status"]);
    run.expect_code(2).expect_output("/nonexistent/ca.pem does not exist");
    no_password(&p, &run);
}

#[test]
fn an_unknown_sslmode_is_a_usage_error_listing_the_modes() {
    let p = project("tls_bogus_mode");
    let run = p.run_with_url(&url(&p, "127.0.0.1", "sslmode=sometimes"), &["status"]);
    run.expect_code(2).expect_output(
        "sslmode=sometimes is not one of disable, allow, prefer, require, verify-ca, verify-full",
    );
    no_password(&p, &run);
}

#[test]
fn a_client_certificate_logs_in_without_a_password() {
    let p = project("tls_client_cert");
    let conninfo = format!(
        "host=localhost port={} user=certuser dbname={} sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
        TLS.cluster.port(),
        p.db,
        TLS.ca.display(),
        TLS.client_cert.display(),
        TLS.client_key.display()
    );
    p.run_with_url(&conninfo, &["status"]).expect_code(0);
}

#[test]
fn backup_create_runs_pg_dump_over_tls() {
    let p = project("tls_backup");
    let run = p.run_with_url(
        &url(&p, "127.0.0.1", "sslmode=require"),
        &["backup", "create", "--format", "json"],
    );
    run.expect_code(0);
    assert_eq!(run.json()["database"].as_str(), Some(p.db.as_str()));
}

#[test]
fn sslmode_require_against_a_server_without_tls_says_so() {
    let p = Project::new("tls_plain_server");
    let run = p.run_with_url(&url(&p, "127.0.0.1", "sslmode=require"), &["status"]);
    run.expect_code(3).expect_output("does not accept TLS");
    no_password(&p, &run);
}
