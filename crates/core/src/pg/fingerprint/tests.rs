//! The picture: what counts as a difference, what is cosmetic, and the
//! one-look reading against the whole query.

use super::*;
use crate::pg::cluster::Cluster;

#[test]
fn acl_items_of_a_frozen_role_or_all_of_them_are_left_out() {
    let d = "r rls=false force=false persistence=p acl={postgres=arwdDxt/postgres,app=arw/postgres,\"we,ird\"=r/postgres}";
    let app = ["app".to_string()];
    assert_eq!(
        masked_acl(d, Some(&app)),
        "r rls=false force=false persistence=p acl={postgres=arwdDxt/postgres,\"we,ird\"=r/postgres}"
    );
    let weird = ["we,ird".to_string()];
    assert!(!masked_acl(d, Some(&weird)).contains("we,ird"));
    assert_eq!(masked_acl(d, None), "r rls=false force=false persistence=p");
    let maintain = "r acl={postgres=arwdDxtm/postgres,\"a=m\"=rm*/postgres,app=m/postgres}";
    assert_eq!(
        without_privilege(maintain, 'm'),
        "r acl={postgres=arwdDxt/postgres,\"a=m\"=r/postgres,app=/postgres}"
    );
}

const BASE: &str = "
    CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, plan text DEFAULT 'free');
    CREATE INDEX users_plan_idx ON users (plan);
    ALTER TABLE users ENABLE ROW LEVEL SECURITY;
    CREATE POLICY own ON users USING (email = current_user);
    CREATE VIEW pro_users AS SELECT id, email FROM users WHERE plan = 'pro';
    CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
    CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch();
    CREATE TYPE mood AS ENUM ('ok', 'meh');";

#[test]
fn privileges_listed_in_another_order_are_cosmetic() {
    let change = |before: &str, after: &str| Change {
        key: "function public.f(x integer)".into(),
        before: Some(before.into()),
        after: Some(after.into()),
    };
    let default = "CREATE FUNCTION f() acl={=X/postgres,postgres=X/postgres}";
    let granted_back = "CREATE FUNCTION f() acl={postgres=X/postgres,=X/postgres}";
    assert_eq!(
        change(default, granted_back).cosmetic(),
        Some("its privileges are the same, listed in another order")
    );
    // Another privilege, or a grant fewer, is a difference.
    assert_eq!(change(default, "CREATE FUNCTION f() acl={postgres=X/postgres}").cosmetic(), None);
    let quoted = "r acl={\"a,b\"=r/o,o=arwdDxt/o}";
    assert!(change(quoted, "r acl={o=arwdDxt/o,\"a,b\"=r/o}").cosmetic().is_some());
    assert_eq!(change(quoted, "r acl={o=arwdDxt/o,\"a\"=r/o,b=r/o}").cosmetic(), None);
}

fn schema_of(cluster: &Cluster, name: &str, sql: &str) -> Schema {
    cluster.create_database(name, None).unwrap();
    let mut client = cluster.connect(name).unwrap();
    client.batch_execute(sql).unwrap();
    Schema::read(&mut client).unwrap()
}

#[test]
fn behaviour_changes_differ_and_column_order_is_reported_apart() {
    let cluster = Cluster::start().unwrap();
    let base = schema_of(&cluster, "base", BASE);
    let same = schema_of(
        &cluster,
        "same",
        &format!("{BASE} CREATE SCHEMA backstop; CREATE TABLE backstop.applied (v text);"),
    );
    assert_eq!(base.fingerprint(), same.fingerprint(), "{:?}", base.differences(&same));

    let reordered = schema_of(
        &cluster,
        "reordered",
        &BASE.replace(
            "id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, plan text DEFAULT 'free'",
            "email text NOT NULL UNIQUE, id bigserial PRIMARY KEY, plan text DEFAULT 'free'",
        ),
    );
    assert!(base.differences(&reordered).is_empty(), "{:?}", base.differences(&reordered));
    assert_eq!(base.fingerprint(), reordered.fingerprint());
    assert_eq!(
        base.cosmetic_differences(&reordered),
        ["column order public.users changed: id, email, plan -> email, id, plan (only SELECT * and positional INSERT notice)"]
    );

    for (name, from, to, expect) in [
        ("default", "DEFAULT 'free'", "DEFAULT 'pro'", "column public.users.plan changed"),
        ("policy", "email = current_user", "true", "policy public.users.own changed"),
        ("view", "plan = 'pro'", "plan = 'team'", "view public.pro_users changed"),
        ("func", "RETURN NEW;", "RETURN OLD;", "function public.touch() changed"),
        (
            "rls",
            "ALTER TABLE users ENABLE ROW LEVEL SECURITY;",
            "",
            "relation public.users changed",
        ),
        ("enum", "('ok', 'meh')", "('ok')", "type public.mood changed"),
        (
            "index",
            "CREATE INDEX users_plan_idx ON users (plan);",
            "",
            "index public.users_plan_idx is gone",
        ),
    ] {
        let other = schema_of(&cluster, name, &BASE.replace(from, to));
        let diff = base.differences(&other);
        assert!(diff.iter().any(|d| d.starts_with(expect)), "{name}: {diff:?}");
        assert_ne!(base.fingerprint(), other.fingerprint(), "{name}");
    }
}

#[test]
fn a_comment_lost_changed_or_added_is_a_named_cosmetic_difference_outside_the_fingerprint() {
    let cluster = Cluster::start().unwrap();
    let commented = format!(
        "{BASE} COMMENT ON TABLE users IS 'people'; COMMENT ON COLUMN users.email IS 'where to write';
         COMMENT ON FUNCTION touch() IS 'keeps rows'; COMMENT ON TYPE mood IS 'how it feels';
         COMMENT ON INDEX users_plan_idx IS 'by plan'; COMMENT ON POLICY own ON users IS 'mine';"
    );
    let base = schema_of(&cluster, "cm_base", &commented);
    let other = schema_of(
        &cluster,
        "cm_other",
        &(commented
            .replace("'where to write'", "'where to send'")
            .replace("COMMENT ON TYPE mood IS 'how it feels';", "")
            .replace("COMMENT ON TABLE users IS 'people';", "")
            .replace("'mine'", "'it''s mine'")
            + " COMMENT ON VIEW pro_users IS 'who pays';"),
    );
    assert!(base.differences(&other).is_empty(), "{:?}", base.differences(&other));
    assert_eq!(base.fingerprint(), other.fingerprint(), "comments key no proof");
    let mut cosmetic = base.cosmetic_differences(&other);
    cosmetic.sort();
    assert_eq!(
        cosmetic,
        [
            "comment on column public.users.email: changed from 'where to write' to 'where to send'",
            "comment on policy public.users.own: changed from 'mine' to 'it''s mine'",
            "comment on relation public.pro_users: added ('who pays')",
            "comment on relation public.users: lost (it was 'people')",
            "comment on type public.mood: lost (it was 'how it feels')",
        ]
    );
    // A comment whose object is gone is no second difference.
    let no_index = schema_of(
        &cluster,
        "cm_no_index",
        &commented
            .replace("CREATE INDEX users_plan_idx ON users (plan);", "")
            .replace("COMMENT ON INDEX users_plan_idx IS 'by plan';", ""),
    );
    assert_eq!(base.differences(&no_index).len(), 1, "{:?}", base.differences(&no_index));
    assert!(base.cosmetic_differences(&no_index).is_empty());
}

#[test]
fn not_null_is_said_once_whatever_its_constraint_is_named() {
    let cluster = Cluster::start().unwrap();
    // On 18 the renamed table keeps `old_name_email_not_null`, the fresh
    // one gets `users_email_not_null`: the same schema all the same.
    let renamed = schema_of(
        &cluster,
        "nn_renamed",
        "CREATE TABLE old_name (id int NOT NULL, email text NOT NULL);
         ALTER TABLE old_name RENAME TO users;",
    );
    let fresh = schema_of(
        &cluster,
        "nn_fresh",
        "CREATE TABLE users (id int NOT NULL, email text NOT NULL);",
    );
    assert!(renamed.differences(&fresh).is_empty(), "{:?}", renamed.differences(&fresh));
    assert_eq!(renamed.fingerprint(), fresh.fingerprint());
    let nullable =
        schema_of(&cluster, "nn_nullable", "CREATE TABLE users (id int NOT NULL, email text);");
    let diff = fresh.differences(&nullable);
    assert_eq!(diff.len(), 1, "NOT NULL said once: {diff:?}");
    assert!(diff[0].starts_with("column public.users.email changed"), "{diff:?}");
    if cluster.bin().major >= 18 {
        // What only the constraint says still counts.
        let not_valid = schema_of(
            &cluster,
            "nn_not_valid",
            "CREATE TABLE users (id int NOT NULL, email text);
             ALTER TABLE users ADD CONSTRAINT email_nn NOT NULL email NOT VALID;",
        );
        let diff = fresh.differences(&not_valid);
        assert!(diff.iter().any(|d| d.starts_with("not null public.users.email")), "{diff:?}");
    }
}

/// One object of each kind a part of the picture has a probe for, and a
/// comment on each kind of object a comment part reads.
const EVERY_PROBED_KIND: &str = "
    CREATE TYPE kind AS ENUM ('a', 'b');
    CREATE FUNCTION kind_eq_text(kind, text) RETURNS bool LANGUAGE sql IMMUTABLE AS $$ SELECT $1::text = $2 $$;
    CREATE FUNCTION kind_of(int) RETURNS kind LANGUAGE sql IMMUTABLE AS $$ SELECT 'a'::kind $$;
    CREATE FUNCTION quiet() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
    CREATE RULE keep_users AS ON DELETE TO users DO INSTEAD NOTHING;
    CREATE FOREIGN DATA WRAPPER made_fdw;
    CREATE SERVER made_server FOREIGN DATA WRAPPER made_fdw;
    CREATE USER MAPPING FOR PUBLIC SERVER made_server OPTIONS (user 'u');
    CREATE FOREIGN TABLE remote (id int) SERVER made_server;
    CREATE CAST (int AS kind) WITH FUNCTION kind_of(int);
    CREATE OPERATOR === (LEFTARG = kind, RIGHTARG = text, FUNCTION = kind_eq_text);
    CREATE OPERATOR FAMILY made_family USING btree;
    CREATE OPERATOR CLASS made_ops FOR TYPE int USING hash AS OPERATOR 1 =, FUNCTION 1 hashint4(int);
    CREATE TEXT SEARCH PARSER made_parser (START = prsd_start, GETTOKEN = prsd_nexttoken, END = prsd_end, LEXTYPES = prsd_lextype);
    CREATE TEXT SEARCH TEMPLATE made_template (LEXIZE = dsimple_lexize);
    CREATE TEXT SEARCH DICTIONARY made_dict (TEMPLATE = simple);
    CREATE TEXT SEARCH CONFIGURATION made_config (COPY = simple);
    CREATE COLLATION made_collation (provider = libc, locale = 'C');
    CREATE CONVERSION made_conversion FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8;
    CREATE EVENT TRIGGER made_event ON ddl_command_end EXECUTE FUNCTION quiet();
    CREATE PUBLICATION made_pub FOR TABLE users;
    CREATE STATISTICS made_stats ON id, plan FROM users;
    ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC;
    CREATE LANGUAGE made_language HANDLER plpgsql_call_handler;
    CREATE ACCESS METHOD made_am TYPE TABLE HANDLER heap_tableam_handler;
    CREATE TRANSFORM FOR int LANGUAGE made_language (FROM SQL WITH FUNCTION prsd_lextype(internal), TO SQL WITH FUNCTION int4recv(internal));
    COMMENT ON TABLE users IS 'people';
    COMMENT ON COLUMN users.plan IS 'what they pay';
    COMMENT ON POLICY own ON users IS 'their own rows';
    COMMENT ON FUNCTION touch() IS 'keeps rows fresh';
    COMMENT ON TYPE mood IS 'how it went';";

/// The part's name in messages: the start of its keys.
fn named(parts: &[&Part]) -> Vec<String> {
    parts.iter().map(|p| p.select.split('\'').nth(1).unwrap_or("").trim().to_string()).collect()
}

#[test]
fn a_one_look_reading_skips_only_the_parts_with_nothing_to_read() {
    let cluster = Cluster::start().unwrap();
    for (name, sql) in
        [("plain", BASE.to_string()), ("every", format!("{BASE};{EVERY_PROBED_KIND}"))]
    {
        cluster.create_database(name, None).unwrap();
        let mut client = cluster.connect(name).unwrap();
        client.batch_execute(&sql).unwrap();
        let major = super::super::Prepared::default().major(&mut client).unwrap();
        if name == "every" && major >= 15 {
            client
                .batch_execute("CREATE PUBLICATION schema_pub FOR TABLES IN SCHEMA public")
                .unwrap();
        }
        let parts: Vec<Part> = parts().into_iter().filter(|p| p.reads(major)).collect();
        let (_, skipped) = probe(&mut client, &parts).unwrap();
        let skipped = named(&skipped);
        let whole = Schema::read_prepared(&mut client, &mut Default::default()).unwrap();
        assert_eq!(Schema::read(&mut client).unwrap(), whole, "{name}: skipped {skipped:?}");
        if name == "every" {
            assert_eq!(skipped, Vec::<String>::new(), "a probe missed its kind");
            // A kind made between the probe and the reading (here: every
            // kind, as if all were skipped) makes the whole query read.
            let (probed, plain): (Vec<&Part>, Vec<&Part>) =
                parts.iter().partition(|p| p.probe.is_some());
            let mut prepared = super::super::Prepared::default();
            let rows = read_parts(&mut client, &mut prepared, &plain, &probed, major).unwrap();
            assert_eq!(Schema::of(owned(&rows)), whole, "the guard let a skipped kind through");
        } else {
            for kind in ["operator class", "text search configuration", "publication", "comment on"]
            {
                assert!(skipped.iter().any(|s| s == kind), "{kind} not skipped: {skipped:?}");
            }
        }
    }
}
