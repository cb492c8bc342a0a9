use super::*;

#[test]
fn another_databases_scheme_is_named_without_the_rest_of_the_url() {
    for url in ["mysql://a:MyS3cret@h/x", "postgress://a:MyS3cret@h/x", "jdbc:postgresql://h/"] {
        let err = parse(url).unwrap_err();
        let text = err.to_string();
        let scheme = url.split("://").next().unwrap();
        assert!(err.exit_code() == 2 && text.contains(&format!("{scheme}://")), "{text}");
        assert!(text.contains("postgres://user:password@host:port/database"), "{text}");
        assert!(!text.contains("MyS3cret") && !text.contains("unexpected EOF"), "{text}");
    }
    assert!(parse("postgresql://h/db").is_ok());
    assert!(parse("host=h dbname=db options='-c x=a://b'").is_ok());
}

#[test]
fn an_unencoded_at_in_the_password_shows_no_part_and_says_how_to_encode() {
    // Regression: `ops:S3cr@w0rd@host` printed `ops:****@w0rd@…` and
    // looked `w0rd@host` up as a host name.
    let url = "postgres://ops:S3cr@w0rd@db.example.com/app";
    assert_eq!(redact(url), HIDDEN_URL);
    let err = parse(url).err().unwrap().to_string();
    assert!(!err.contains("w0rd") && !err.contains("S3cr"), "{err}");
    assert!(err.contains("%40"), "{err}");
    assert!(parse("postgres://ops:S3cr%40w0rd@db.example.com/app").is_ok());
}

#[test]
fn redact_masks_passwords_in_urls_and_keyword_strings() {
    assert_eq!(
        redact("postgres://app:s3cret@db.example:5432/prod"),
        "postgres://app:****@db.example:5432/prod"
    );
    assert_eq!(
        redact("postgres://app@h/db?password=s3cret&sslmode=require"),
        "postgres://app:****@h:5432/db?sslmode=require"
    );
    assert_eq!(redact("host=h password=s3cret dbname=x"), "postgres://:****@h/x");
    assert_eq!(
        redact("postgres://app:s3cret@/db?host=/tmp/sock&port=5"),
        "postgres://app:****@/db?host=/tmp/sock&port=5"
    );
    assert_eq!(redact("postgresql://h/db"), "postgres://h:5432/db");
}

#[test]
fn an_unknown_parameter_is_named_in_the_error() {
    for conn in ["postgres://u:pw@h/db?sslmodee=require", "host=h sslmodee=require password=pw"] {
        let Err(err) = parse(conn) else { panic!("{conn}: an unknown parameter is refused") };
        let err = err.to_string();
        assert!(err.contains("unknown parameter `sslmodee`"), "{err}");
        assert!(!err.contains("pw"), "{err}");
    }
}

#[test]
fn passwords_that_look_like_url_parts_are_masked_too() {
    // A `/` or `?` before the `@` ended the masked part at the wrong place.
    for url in [
        "postgres://postgres:Sekr1t/Pw0rd@127.0.0.1:5432/app",
        "postgres://postgres:Sekr1t?Pw0rd@127.0.0.1:1/app",
        "postgres://postgres:Sekr1t%40Pw0rd@127.0.0.1:1/app",
    ] {
        let shown = redact(url);
        assert!(!shown.contains("Sekr1t") && !shown.contains("Pw0rd"), "{url} -> {shown}");
        assert!(shown.contains(":****@127.0.0.1:"), "{shown}");
    }
    // Unparsable: hidden whole, never echoed.
    assert_eq!(redact("postgres:Sekr1tPw0rd@127.0.0.1:1/app"), HIDDEN_URL);
    // key=value: quoted with spaces, spaces around `=`.
    let shown = redact("host=h password='correct horse battery staple' dbname=x");
    assert!(!shown.contains("horse") && !shown.contains("staple"), "{shown}");
    let shown = redact("host=h password = x9y8z7 dbname=x");
    assert!(!shown.contains("x9y8z7"), "{shown}");
}

#[test]
fn libpq_target_keeps_the_password_off_the_command_line() {
    let t =
        LibpqTarget::from_url("postgres://app:s3cret@db.example:6543/prod", Some("other")).unwrap();
    assert_eq!(
        t.conninfo,
        "host='db.example' port='6543' user='app' dbname='other' sslmode='prefer'"
    );
    assert_eq!(t.password.as_deref(), Some("s3cret"));
    let sock = LibpqTarget::from_url("postgres://u@/d?host=/tmp/x&port=5", None).unwrap();
    assert_eq!(sock.conninfo, "host='/tmp/x' port='5' user='u' dbname='d' sslmode='prefer'");
}

#[test]
fn libpq_tools_get_the_urls_tls_settings() {
    let t = LibpqTarget::from_url(
        "postgres://app:pw@db/prod?sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20x.pem",
        None,
    )
    .unwrap();
    assert_eq!(
        t.conninfo,
        "host='db' port='5432' user='app' dbname='prod' sslmode='verify-full' sslrootcert='/etc/ca x.pem'"
    );
}

#[test]
fn tls_parameters_are_read_from_urls_and_keyword_strings() {
    let url = parse("postgres://u:pw@h/d?sslmode=verify-ca&application_name=x&sslrootcert=/ca.pem")
        .unwrap();
    assert_eq!(url.tls.mode, SslMode::VerifyCa);
    assert_eq!(url.tls.root_cert.as_deref(), Some("/ca.pem"));
    assert_eq!(url.config.get_ssl_mode(), DriverSslMode::Require);
    assert_eq!(url.config.get_application_name(), Some("x"));

    let kv =
        parse(r"host=h sslmode = 'verify-full' password='a b\'c' sslrootcert=/x\ y.pem").unwrap();
    assert_eq!(kv.tls.mode, SslMode::VerifyFull);
    assert_eq!(kv.tls.root_cert.as_deref(), Some("/x y.pem"));
    assert_eq!(kv.config.get_password(), Some(&b"a b'c"[..]));

    let plain = parse("postgres://h/d?sslmode=disable").unwrap();
    assert_eq!(plain.config.get_ssl_mode(), DriverSslMode::Disable);
    let default = parse("postgres://h/d").unwrap();
    assert_eq!(default.tls.mode, SslMode::Prefer);
    // libpq never uses TLS over a Unix socket, whatever sslmode says.
    let socket = parse("postgres://u@/d?host=/tmp&sslmode=require").unwrap();
    assert_eq!(socket.config.get_ssl_mode(), DriverSslMode::Disable);
}

#[test]
fn an_unknown_sslmode_names_the_accepted_values() {
    let err = parse("postgres://u:s3cret@h/d?sslmode=sometimes").unwrap_err();
    assert!(matches!(err, ConnectError::BadUrl { .. }));
    let text = err.to_string();
    assert!(text.contains("sslmode=sometimes is not one of disable, allow, prefer, require, verify-ca, verify-full"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    let half = parse("host=h sslcert=/c.pem").unwrap_err();
    assert!(half.to_string().contains("sslcert and sslkey go together"), "{half}");
}

#[test]
fn verification_follows_libpq() {
    let settings = |mode, root: Option<&str>| TlsSettings {
        mode,
        root_cert: root.map(str::to_string),
        cert: None,
        key: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "").unwrap();
    let ca_text = ca.to_str().unwrap();
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    assert_eq!(settings(SslMode::Require, Some(missing)).check(), Ok(Check::Nothing));
    assert_eq!(
        settings(SslMode::Require, Some(ca_text)).check(),
        Ok(Check::Chain(Roots::File(ca.clone())))
    );
    assert_eq!(
        settings(SslMode::VerifyFull, Some(ca_text)).check(),
        Ok(Check::ChainAndName(Roots::File(ca.clone())))
    );
    let err = settings(SslMode::VerifyCa, Some(missing)).check().unwrap_err();
    assert!(err.contains("does not exist") && err.contains("sslmode=require"), "{err}");
    assert_eq!(
        settings(SslMode::VerifyFull, Some("system")).check(),
        Ok(Check::ChainAndName(Roots::System))
    );
    assert!(settings(SslMode::Require, Some("system")).check().is_err());
}

#[test]
fn bad_url_is_a_usage_error_without_the_password() {
    let err = parse_url("postgres://app:s3cret@host:notaport/db").unwrap_err();
    assert!(matches!(err, ConnectError::BadUrl { .. }));
    assert!(!err.to_string().contains("s3cret"), "{err}");
    let err = parse_url("postgres://app:s3cret@host:notaport/db?sslmode=verify-full").unwrap_err();
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

/// The hosts and ports the driver will try, as text.
fn targets(conn: &str) -> (Vec<String>, Vec<u16>) {
    let config = parse_url(conn).unwrap();
    (host_names(&config), config.get_ports().to_vec())
}

#[test]
fn a_host_or_port_given_twice_is_read_as_libpq_reads_it() {
    let hosts = |h: &[&str]| h.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // The query's host replaces the one before the path; its port stays.
    assert_eq!(
        targets("postgres://app@localhost:6000/db?host=/run/pg"),
        (hosts(&["/run/pg"]), vec![6000])
    );
    assert_eq!(
        targets("postgres://app:pw@[::1]:6001/db?sslmode=disable&host=/run/pg"),
        (hosts(&["/run/pg"]), vec![6001])
    );
    // The query's port replaces the one before the path; the host stays.
    assert_eq!(
        targets("postgres://app@db.example:1/db?port=6002"),
        (hosts(&["db.example"]), vec![6002])
    );
    assert_eq!(targets("postgres://app@a:1,b:2/db?port=7,8"), (hosts(&["a", "b"]), vec![7, 8]));
    // A key written twice keeps its last value.
    assert_eq!(
        targets("postgres://app@/db?host=/nowhere&host=/run/pg&port=6003"),
        (hosts(&["/run/pg"]), vec![6003])
    );
    assert_eq!(
        targets("host=/nowhere port=1 dbname=db host=/run/pg port=6004"),
        (hosts(&["/run/pg"]), vec![6004])
    );
    // Nothing given twice: as written.
    assert_eq!(targets("postgres://app@a:1,b:2/db"), (hosts(&["a", "b"]), vec![1, 2]));
    assert_eq!(targets("host=a,b port=1,2"), (hosts(&["a", "b"]), vec![1, 2]));
    // What is shown and what the libpq tools get say the same.
    assert_eq!(
        redact("postgres://app:s3cret@localhost:6000/db?host=/run/pg"),
        "postgres://app:****@/db?host=/run/pg&port=6000"
    );
    let tool = LibpqTarget::from_url("postgres://app:s3cret@localhost:6000/db?host=/run/pg", None);
    let conninfo = tool.unwrap().conninfo;
    assert!(
        conninfo.starts_with("host='/run/pg' port='6000' user='app' dbname='db'"),
        "{conninfo}"
    );
}

#[test]
fn a_session_goes_to_the_socket_a_url_query_names_as_psql_does() {
    let cluster = crate::pg::cluster::Cluster::start().unwrap();
    // Over TCP this URL reaches the same server with the right password:
    // only the way the session came in tells which host was used.
    let url = format!("{}?host={}", cluster.url("postgres"), cluster.dir().display());
    let mut client = connect(&url, "test").unwrap();
    let from: Option<String> =
        client.query_one("select inet_client_addr()::text", &[]).unwrap().get(0);
    assert_eq!(from, None, "the session came over TCP from {from:?}, not over the socket");
}
