//! The kept picture against the picture read whole, listed and journaled.

use super::*;
use crate::pg::checksum::table_checksums;
use crate::pg::cluster::Cluster;

const BASE: &str = "
    CREATE TYPE mood AS ENUM ('ok', 'meh');
    CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, plan text DEFAULT 'free', m mood);
    CREATE TABLE orders (id bigserial PRIMARY KEY, user_id bigint REFERENCES users, total numeric CHECK (total >= 0));
    CREATE INDEX orders_user_idx ON orders (user_id);
    ALTER TABLE users ENABLE ROW LEVEL SECURITY;
    CREATE POLICY own ON users USING (email = current_user);
    CREATE VIEW pro_users AS SELECT id, email FROM users WHERE plan = 'pro';
    CREATE VIEW pro_orders AS SELECT o.id, p.email FROM orders o JOIN pro_users p ON p.id = o.user_id;
    CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
    CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch();
    CREATE SCHEMA extra;
    CREATE TABLE extra.things (id int);
    INSERT INTO users (email) VALUES ('a@x'), ('b@x');
    INSERT INTO orders (user_id, total) VALUES (1, 10);
    CREATE FOREIGN DATA WRAPPER w;
    CREATE SERVER s FOREIGN DATA WRAPPER w OPTIONS (host 'a');
    CREATE USER MAPPING FOR PUBLIC SERVER s OPTIONS (user 'u');
    CREATE FOREIGN TABLE ft (a int) SERVER s;
    CREATE TEXT SEARCH CONFIGURATION cfg (COPY = simple);
    CREATE SCHEMA pubs;
    CREATE TABLE pubs.events (id int PRIMARY KEY);
    CREATE PUBLICATION pub FOR TABLE orders;
    CREATE STATISTICS st ON id, user_id FROM orders;
    CREATE TYPE comp AS (a int);
    CREATE DOMAIN dom AS int CHECK (VALUE > 0);
    CREATE OPERATOR FAMILY fam USING btree;
    CREATE COLLATION coll (provider = libc, locale = 'C');
    CREATE FUNCTION quiet() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
    CREATE EVENT TRIGGER quiet ON ddl_command_end EXECUTE FUNCTION quiet();
    CREATE TABLE parted (id int, k int) PARTITION BY RANGE (id);
    CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10);
    CREATE TABLE parted_2 (id int, k int);
    CREATE TABLE refd (id int PRIMARY KEY);
    CREATE TABLE refr (r int);";

/// Changes of every kind a migration makes; each with the relations
/// whose rows it writes (as a rehearsal learns from the locks).
const CHANGES: &[(&str, &[&str])] = &[
    ("ALTER TABLE users RENAME TO members", &[]),
    ("ALTER TABLE members RENAME COLUMN email TO mail", &[]),
    ("ALTER TABLE orders DROP CONSTRAINT orders_total_check", &[]),
    ("DROP INDEX orders_user_idx", &[]),
    ("DROP POLICY own ON members", &[]),
    ("DROP TRIGGER users_touch ON members", &[]),
    ("CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$", &[]),
    ("ALTER TYPE mood ADD VALUE 'sad'", &[]),
    ("ALTER TYPE mood RENAME TO feeling", &[]),
    ("GRANT SELECT ON orders TO PUBLIC", &[]),
    ("GRANT UPDATE (total) ON orders TO PUBLIC", &[]),
    ("REVOKE UPDATE (total) ON orders FROM PUBLIC", &[]),
    ("GRANT EXECUTE ON FUNCTION touch() TO PUBLIC", &[]),
    ("ALTER TABLE members ALTER COLUMN plan SET DEFAULT 'pro'", &[]),
    ("ALTER TABLE members ALTER COLUMN plan DROP DEFAULT", &[]),
    ("DO $$ BEGIN EXECUTE 'CREATE TABLE made_in_do (a int)'; END $$", &[]),
    ("ALTER SCHEMA extra RENAME TO spare", &[]),
    ("CREATE ROLE tracked_reader; GRANT SELECT ON members TO tracked_reader", &[]),
    ("ALTER ROLE tracked_reader RENAME TO tracked_watcher", &[]),
    ("DROP VIEW pro_orders", &[]),
    ("INSERT INTO orders (user_id, total) VALUES (2, 5)", &["orders"]),
    ("DELETE FROM orders WHERE total = 5", &["orders"]),
    ("TRUNCATE spare.things", &[]),
    ("ALTER TABLE orders ALTER COLUMN total TYPE float8", &[]),
    ("ALTER TABLE members DISABLE ROW LEVEL SECURITY", &[]),
    ("DROP TABLE made_in_do", &[]),
    ("ALTER SERVER s OPTIONS (SET host 'b')", &[]),
    ("ALTER USER MAPPING FOR PUBLIC SERVER s OPTIONS (SET user 'v')", &[]),
    ("ALTER FOREIGN TABLE ft OPTIONS (ADD schema_name 'x')", &[]),
    ("ALTER SERVER s RENAME TO s2", &[]),
    ("ALTER TEXT SEARCH CONFIGURATION cfg DROP MAPPING FOR asciiword", &[]),
    ("ALTER PUBLICATION pub ADD TABLES IN SCHEMA pubs", &[]),
    ("ALTER PUBLICATION pub DROP TABLES IN SCHEMA pubs", &[]),
    ("ALTER PUBLICATION pub ADD TABLE spare.things", &[]),
    ("ALTER TABLE spare.things RENAME TO stuff", &[]),
    ("ALTER PUBLICATION pub DROP TABLE spare.stuff", &[]),
    ("CREATE PUBLICATION pub2 FOR TABLE spare.stuff, orders", &[]),
    ("ALTER PUBLICATION pub2 SET (publish = 'insert')", &[]),
    ("DROP PUBLICATION pub2", &[]),
    ("ALTER PUBLICATION pub ADD TABLE spare.stuff", &[]),
    ("ALTER STATISTICS st SET STATISTICS 50", &[]),
    ("ALTER TYPE comp ADD ATTRIBUTE b text", &[]),
    ("ALTER DOMAIN dom ADD CONSTRAINT small CHECK (VALUE < 100)", &[]),
    ("ALTER OPERATOR FAMILY fam USING btree ADD FUNCTION 1 (int4, int4) btint4cmp(int4, int4)", &[]),
    ("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC", &[]),
    ("ALTER TABLE orders SET (fillfactor = 70)", &[]),
    ("ALTER TABLE orders ALTER COLUMN total SET STATISTICS 200", &[]),
    ("ALTER EVENT TRIGGER quiet DISABLE", &[]),
    ("CREATE CAST (comp AS text) WITH INOUT", &[]),
    ("CREATE RULE no_delete AS ON DELETE TO orders DO INSTEAD NOTHING", &[]),
    ("ALTER COLLATION coll RENAME TO coll2", &[]),
    ("DROP TEXT SEARCH CONFIGURATION cfg", &[]),
    ("DROP SERVER s2 CASCADE", &[]),
    ("COMMENT ON TABLE members IS 'people'", &[]),
    ("COMMENT ON COLUMN members.mail IS 'where to write'", &[]),
    ("COMMENT ON COLUMN members.mail IS 'where to send'", &[]),
    ("COMMENT ON INDEX orders_pkey IS 'the key'", &[]),
    ("COMMENT ON FUNCTION touch() IS 'keeps rows fresh'", &[]),
    ("COMMENT ON TYPE feeling IS 'moods'", &[]),
    ("COMMENT ON CONSTRAINT orders_pkey ON orders IS 'one per order'", &[]),
    ("COMMENT ON VIEW pro_users IS 'who pays'", &[]),
    ("COMMENT ON SCHEMA public IS 'the app'", &[]),
    ("COMMENT ON COLUMN members.mail IS NULL", &[]),
    ("DROP FUNCTION touch() CASCADE", &[]),
    ("ALTER TABLE members ADD COLUMN gone int; ALTER TABLE members DROP COLUMN gone", &[]),
    ("ALTER TABLE orders ADD COLUMN note text", &[]),
    ("ALTER TABLE orders DROP COLUMN note", &[]),
    ("ALTER TABLE parted ATTACH PARTITION parted_2 FOR VALUES FROM (10) TO (20)", &[]),
    ("ALTER TABLE parted ADD COLUMN note text", &[]),
    ("CREATE INDEX parted_k ON parted (k)", &[]),
    ("ALTER TABLE parted DETACH PARTITION parted_1", &[]),
    ("ALTER TABLE refr ADD CONSTRAINT refr_fk FOREIGN KEY (r) REFERENCES refd", &[]),
    ("ALTER TABLE refr DROP CONSTRAINT refr_fk", &[]),
    ("SELECT 1 AS a INTO work_t; CREATE INDEX work_t_a ON work_t (a); DROP TABLE work_t", &[]),
    ("CREATE TEMP TABLE tmp_t (a int); DROP TABLE tmp_t", &[]),
    ("CREATE TABLE kids (x int); CREATE TABLE kid_1 () INHERITS (kids)", &[]),
    ("ALTER TABLE kids ADD COLUMN y int", &[]),
    ("ALTER TABLE kid_1 NO INHERIT kids", &[]),
    // A key's internal triggers on the table it references are in no
    // picture: the referenced table is not looked at again for them,
    // and a key that goes with it is still seen to go.
    ("CREATE TABLE refs_refd (r int REFERENCES refd)", &[]),
    ("ALTER TABLE refd DISABLE TRIGGER ALL", &[]),
    ("DROP TABLE refd CASCADE", &[]),
];

/// A throwaway cluster with a database `name` holding [`BASE`], and a
/// session on it.
fn based(name: &str) -> (Cluster, postgres::Client) {
    let cluster = Cluster::start().unwrap();
    cluster.create_database(name, None).unwrap();
    let mut client = cluster.connect(name).unwrap();
    client.batch_execute(BASE).unwrap();
    (cluster, client)
}

fn written(client: &mut impl GenericClient, tables: &[&str]) -> Written {
    if tables.is_empty() {
        return Written::None;
    }
    let oids = tables
        .iter()
        .map(|t| client.query_one("select $1::text::regclass::oid", &[t]).unwrap().get(0))
        .collect();
    Written::Some(oids)
}

#[test]
fn user_mappings_are_read_from_the_catalog_where_the_session_may() {
    use crate::pg::kinds::{INVENTORY, MAPPINGS_READ, MAPPINGS_SEEN};
    assert!(INVENTORY.contains(MAPPINGS_SEEN), "the view's rows are what a superuser reads apart");
    assert!(inventory_query(true).contains(MAPPINGS_READ));
    assert!(!inventory_query(false).contains(MAPPINGS_READ));
}

/// A refresh that finds the same snapshot and search_path reads
/// nothing more; a transaction that ends in between, even one that
/// began before the picture was read, or another search_path, is read.
#[test]
fn a_refresh_skips_only_when_no_transaction_ended_since() {
    let (cluster, mut client) = based("stamped");
    let mut other = cluster.connect("stamped").unwrap();
    let mut prepared = Prepared::default();
    let mut tracked = Tracked::read(&mut client, &mut prepared).unwrap();
    let mut running = other.transaction().unwrap();
    running.batch_execute("CREATE TABLE late (a int)").unwrap();
    // A later transaction ends first: the next to come is past the
    // running one's, which only the list of running ones shows.
    client.batch_execute("CREATE TABLE early (a int)").unwrap();
    tracked.refresh(&mut client, &mut prepared).unwrap();
    tracked.refresh(&mut client, &mut prepared).unwrap();
    assert_eq!(tracked.schema(), Schema::read(&mut client).unwrap(), "nothing ended yet");
    running.commit().unwrap();
    tracked.refresh(&mut client, &mut prepared).unwrap();
    let whole = Schema::read(&mut client).unwrap();
    assert!(whole.objects.iter().any(|o| o.key == "relation public.late"));
    assert_eq!(tracked.schema(), whole, "a transaction begun before the picture, ended after");
    client.batch_execute("SET search_path = extra, public").unwrap();
    tracked.refresh(&mut client, &mut prepared).unwrap();
    assert_eq!(tracked.schema(), Schema::read(&mut client).unwrap(), "another search_path");
}

/// With the journal on, transactions of another database (a second copy
/// of a rehearsal) do not make a refresh read again; this database's
/// changes, and a role made anywhere, do.
#[test]
fn a_journaled_refresh_skips_while_only_other_databases_change() {
    let (cluster, mut client) = based("journal_stamp");
    cluster.create_database("elsewhere", None).unwrap();
    let mut elsewhere = cluster.connect("elsewhere").unwrap();
    let mut prepared = Prepared::default();
    let mut tracked = Tracked::read_journaled(&mut client, &mut prepared).unwrap();
    // The first look takes the journal's stamp.
    client.batch_execute("CREATE TABLE first (a int)").unwrap();
    tracked.refresh(&mut client, &mut prepared).unwrap();
    let since = tracked.since;
    elsewhere.batch_execute("CREATE TABLE there (a int); CREATE TABLE there_too (a int)").unwrap();
    tracked.refresh(&mut client, &mut prepared).unwrap();
    assert_eq!(tracked.since, since, "skipped: nothing changed in this database");
    client.batch_execute("CREATE TABLE here (a int)").unwrap();
    tracked.refresh(&mut client, &mut prepared).unwrap();
    assert!(tracked.since > since, "read again");
    assert_eq!(tracked.schema(), Schema::read(&mut client).unwrap());
    let since = tracked.since;
    elsewhere.batch_execute("CREATE ROLE made_elsewhere").unwrap();
    tracked.refresh(&mut client, &mut prepared).unwrap();
    assert!(tracked.since > since, "a role is the whole server's: read again");
    assert_eq!(tracked.schema(), Schema::read(&mut client).unwrap());
}

#[test]
fn a_kept_picture_is_the_picture_read_whole_after_every_kind_of_change() {
    follows_every_kind_of_change(false);
}

/// The same with the journal: every change found as the listing
/// finds it, whether the journal saw it or the look fell back.
#[test]
fn a_journaled_picture_is_the_picture_read_whole_after_every_kind_of_change() {
    follows_every_kind_of_change(true);
}

fn follows_every_kind_of_change(journal: bool) {
    let (_cluster, mut client) = based("tracked");
    let mut prepared = Prepared::default();
    let mut tracked = match journal {
        true => Tracked::read_journaled(&mut client, &mut prepared).unwrap(),
        false => Tracked::read(&mut client, &mut prepared).unwrap(),
    };
    assert_eq!(tracked.journal, journal);
    let mut answered = 0;
    for (sql, writes) in CHANGES {
        // Inside a transaction that is undone: the look sees the change.
        let whole_before = Schema::read(&mut client).unwrap();
        let sums_before = table_checksums(&mut client).unwrap();
        let mut tx = client.transaction().unwrap();
        tx.batch_execute(sql).unwrap();
        if journal && tracked.journaled(&mut tx, &mut prepared).unwrap().is_some() {
            answered += 1;
        }
        let w = written(&mut tx, writes);
        let (before, after) = tracked.look(&mut tx, &mut prepared, w).unwrap();
        let whole_after = Schema::read(&mut tx).unwrap();
        let sums_after = table_checksums(&mut tx).unwrap();
        tx.rollback().unwrap();
        assert_eq!(
            before.schema.differences(&after.schema),
            whole_before.differences(&whole_after),
            "{sql}: the part looked at differs as the whole does"
        );
        assert_eq!(
            before.schema.cosmetic_differences(&after.schema),
            whole_before.cosmetic_differences(&whole_after),
            "{sql}"
        );
        for t in &after.tables {
            assert!(sums_after.contains(t), "{sql}: {t:?} is the table's content now");
        }
        let changed: Vec<_> = sums_before.iter().filter(|t| !sums_after.contains(t)).collect();
        for t in changed {
            assert!(before.tables.contains(t), "{sql}: {} was written and is looked at", t.table);
        }
        // Then for real: the kept picture follows.
        client.batch_execute(sql).unwrap();
        let w = written(&mut client, writes);
        tracked.wrote(w);
        tracked.refresh(&mut client, &mut prepared).unwrap();
        assert_eq!(tracked.schema(), Schema::read(&mut client).unwrap(), "after {sql}");
        assert_eq!(tracked.tables(), table_checksums(&mut client).unwrap(), "after {sql}");
    }
    // Most changes are DDL the journal answers for (53 of 70 on 15): a
    // journal that always fell back to the listing would pass the rest.
    assert!(!journal || answered * 2 > CHANGES.len(), "journal answered {answered}");
}

/// The journal answers a look at what a command made, without the
/// listing; what it cannot see (a catalog written directly, a role
/// made, a GRANT on a schema) is found because the look lists the
/// catalogs then.
#[test]
fn the_journal_answers_for_commands_and_the_listing_for_what_it_cannot_see() {
    let (_cluster, mut client) = based("journaled");
    let mut prepared = Prepared::default();
    let mut tracked = Tracked::read_journaled(&mut client, &mut prepared).unwrap();
    let whole = |c: &mut postgres::Client| Schema::read(c).unwrap();
    assert!(
        !whole(&mut client).objects.iter().any(|o| o.key.contains("backstop_journal")),
        "the journal's own triggers are not in the picture"
    );
    client.batch_execute("CREATE TABLE seen (a int); ALTER TABLE refr ADD COLUMN b int").unwrap();
    let news = tracked.journaled(&mut client, &mut prepared).unwrap();
    let news = news.expect("the journal answers for commands on tables");
    assert!(news.owners.len() >= 2 && !news.whole, "{:?}", news.owners);
    tracked.refresh(&mut client, &mut prepared).unwrap();
    assert_eq!(tracked.schema(), whole(&mut client));
    // Made and dropped since the picture: the default's drop, which the
    // sequence's drop leads to, names a table that went too.
    let mut tx = client.transaction().unwrap();
    tx.batch_execute("CREATE TABLE brief (id serial PRIMARY KEY, v text UNIQUE); DROP TABLE brief")
        .unwrap();
    assert!(tracked.journaled(&mut tx, &mut prepared).unwrap().is_some(), "made and gone");
    tx.batch_execute(
        "ALTER TABLE refr ADD CONSTRAINT pos CHECK (b > 0); ALTER TABLE refr DROP CONSTRAINT pos",
    )
    .unwrap();
    let news =
        tracked.journaled(&mut tx, &mut prepared).unwrap().expect("a constraint made and gone");
    let refr: u32 = tx.query_one("select 'refr'::regclass::oid", &[]).unwrap().get(0);
    assert!(news.owners.contains(&Owner::Relation(refr)));
    tx.rollback().unwrap();
    // A GRANT on a table is reported without its objects: the table is
    // found by its row's age; one on a function is listed.
    client.batch_execute("GRANT SELECT ON seen TO PUBLIC").unwrap();
    let seen: u32 = client.query_one("select 'seen'::regclass::oid", &[]).unwrap().get(0);
    let news = tracked.journaled(&mut client, &mut prepared).unwrap().expect("a table's GRANT");
    assert!(news.owners.contains(&Owner::Relation(seen)), "{:?}", news.owners);
    tracked.refresh(&mut client, &mut prepared).unwrap();
    assert_eq!(tracked.schema(), whole(&mut client));
    client.batch_execute("GRANT INSERT (a) ON seen TO PUBLIC").unwrap();
    let news = tracked.journaled(&mut client, &mut prepared).unwrap().expect("a column's GRANT");
    assert!(news.owners.contains(&Owner::Relation(seen)), "{:?}", news.owners);
    tracked.refresh(&mut client, &mut prepared).unwrap();
    assert_eq!(tracked.schema(), whole(&mut client));
    // A table added to a publication, or taken out: the publication's.
    client.batch_execute("CREATE PUBLICATION feed; ALTER PUBLICATION feed ADD TABLE seen").unwrap();
    tracked.refresh(&mut client, &mut prepared).unwrap();
    assert_eq!(tracked.schema(), whole(&mut client));
    client.batch_execute("ALTER PUBLICATION feed DROP TABLE seen").unwrap();
    let news = tracked.journaled(&mut client, &mut prepared).unwrap().expect("a publication's");
    assert!(news.owners.iter().any(|o| matches!(o, Owner::Object(_, _))), "{:?}", news.owners);
    tracked.refresh(&mut client, &mut prepared).unwrap();
    assert_eq!(tracked.schema(), whole(&mut client));
    client.batch_execute("GRANT USAGE ON SCHEMA public TO PUBLIC").unwrap();
    assert!(tracked.journaled(&mut client, &mut prepared).unwrap().is_none(), "a schema's GRANT");
    tracked.refresh(&mut client, &mut prepared).unwrap();
    assert_eq!(tracked.schema(), whole(&mut client));
    // A column made NOT NULL behind the server's back.
    let direct = "UPDATE pg_attribute SET attnotnull = true
                   WHERE attrelid = 'refr'::regclass AND attname = 'r'";
    tracked.catalogs_written();
    client.batch_execute(direct).unwrap();
    tracked.refresh(&mut client, &mut prepared).unwrap();
    let now = whole(&mut client);
    assert!(now
        .objects
        .iter()
        .any(|o| o.key == "column public.refr.r" && o.definition.contains("not null")));
    assert_eq!(tracked.schema(), now);
    assert!(!tracked.listed_next, "the listing's refresh trusts the journal again");
}
