//! Comments (`COMMENT ON`) compared by rehearse and downs (issue 43): a
//! comment a down leaves lost or changed is a named cosmetic difference,
//! never an error and never silence; a computed down puts the comments
//! back, also those on what it drops and makes again around a change.

use backstop_core::pg::fingerprint::Schema;
use serde_json::Value;

use crate::common::{DbExt, Project};

#[test]
fn rehearse_names_a_comment_an_authored_down_forgets_as_cosmetic() {
    let p = Project::new("comments_rehearse");
    p.migration(
        "1_items",
        "CREATE TABLE items (id int PRIMARY KEY, name text);
         COMMENT ON COLUMN items.id IS 'the key';
         COMMENT ON COLUMN items.name IS 'what it is called';",
        Some("DROP TABLE items;"),
    );
    // The down puts the table's comment back but forgets the column's.
    p.migration(
        "2_reword",
        "COMMENT ON TABLE items IS 'things for sale';
         COMMENT ON COLUMN items.name IS 'shown to buyers';",
        Some("COMMENT ON TABLE items IS NULL;"),
    );
    // The down forgets the comment the up removed.
    p.migration("3_uncomment", "COMMENT ON COLUMN items.id IS NULL;", Some("SELECT 1;"));
    // A down that puts it back is ok.
    p.migration(
        "4_function",
        "CREATE FUNCTION price() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
         COMMENT ON FUNCTION price() IS 'in cents';",
        Some("DROP FUNCTION price();"),
    );
    let run = p.run(&["rehearse", "--format", "json"]);
    run.expect_code(0);
    let json = run.json();
    let classes: Vec<(&str, &str)> = json["round_trip"]["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["version"].as_str().unwrap(), t["class"].as_str().unwrap()))
        .collect();
    assert_eq!(
        classes,
        [("1", "ok"), ("2", "cosmetic_only"), ("3", "cosmetic_only"), ("4", "ok")],
        "{:#}",
        json["round_trip"]
    );
    let messages: Vec<&str> = json["round_trip"]["cosmetic"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "down of 2: comment on column public.items.name: changed from 'what it is called' to 'shown to buyers'",
            "down of 3: comment on column public.items.id: lost (it was 'the key')",
        ],
        "{:#}",
        json["round_trip"]
    );
    let objects: Vec<&str> = json["round_trip"]["cosmetic"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["object"].as_str().unwrap())
        .collect();
    assert_eq!(
        objects,
        ["comment on column public.items.name", "comment on column public.items.id"]
    );
    assert!(
        json["steps"].as_array().unwrap().iter().all(|s| s["ok"] == true),
        "{:#}",
        json["steps"]
    );
}

/// Every comment of the user's schema: (what it is on, its text).
fn comments(p: &Project) -> Vec<String> {
    p.client().texts(
        "select pg_describe_object(d.classoid, d.objoid, d.objsubid) || ': ' || d.description
           from pg_description d where d.objoid >= 16384 order by 1",
    )
}

#[test]
fn downs_put_back_the_comments_an_up_changed_dropped_or_lost_around_a_change() {
    let p = Project::new("comments_downs");
    p.migration(
        "2024-08-01-000001_base",
        "CREATE TYPE mood AS ENUM ('ok', 'meh');
         COMMENT ON TYPE mood IS 'how it feels';
         CREATE TABLE t (id int PRIMARY KEY, email text, n int CONSTRAINT n_positive CHECK (n > 0), m mood);
         COMMENT ON TABLE t IS 'people';
         COMMENT ON COLUMN t.email IS 'where to write';
         COMMENT ON CONSTRAINT n_positive ON t IS 'no zero';
         CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
         COMMENT ON FUNCTION f() IS 'one';",
        None,
    );
    // Changed, dropped, and new on what was there.
    p.migration(
        "2024-08-01-000002_comments",
        "COMMENT ON TABLE t IS 'accounts';
         COMMENT ON COLUMN t.email IS NULL;
         COMMENT ON FUNCTION f() IS 'uno';
         COMMENT ON COLUMN t.id IS 'the key';",
        None,
    );
    // The comments kept on what the down drops and makes again: a check
    // the up changed, an enum type it swapped for labels in another order.
    p.migration(
        "2024-08-01-000003_swaps",
        "ALTER TABLE t DROP CONSTRAINT n_positive, ADD CONSTRAINT n_positive CHECK (n >= 0);
         COMMENT ON CONSTRAINT n_positive ON t IS 'no zero';
         CREATE TYPE mood_new AS ENUM ('meh', 'ok');
         ALTER TABLE t ALTER COLUMN m TYPE mood_new USING m::text::mood_new;
         DROP TYPE mood;
         ALTER TYPE mood_new RENAME TO mood;
         COMMENT ON TYPE mood IS 'how it feels';",
        None,
    );
    let downs: Value = p.run(&["downs", "--format", "json"]).expect_code(0).json();
    for d in downs.as_array().unwrap() {
        assert_eq!(
            (d["status"].as_str(), d["proved"].as_bool()),
            (Some("computed"), Some(true)),
            "{d:#}"
        );
        // Put back, not merely named as cosmetic.
        assert!(!d["notes"].to_string().contains("cosmetic"), "{d:#}");
    }
    let sql = |v: &str| {
        let d = downs.as_array().unwrap().iter().find(|d| d["version"] == v).unwrap();
        d["sql"].as_str().unwrap().to_string()
    };
    let comments_down = sql("2024-08-01-000002");
    for back in [
        "COMMENT ON TABLE public.t IS 'people'",
        "COMMENT ON COLUMN public.t.email IS 'where to write'",
        "COMMENT ON FUNCTION public.f() IS 'one'",
        "COMMENT ON COLUMN public.t.id IS NULL",
    ] {
        assert!(comments_down.contains(back), "{back} not in:\n{comments_down}");
    }
    let swaps_down = sql("2024-08-01-000003");
    let type_made = swaps_down.find("CREATE TYPE public.mood AS ENUM").expect(&swaps_down);
    let type_comment = swaps_down.find("COMMENT ON TYPE public.mood").expect(&swaps_down);
    assert!(type_made < type_comment, "{swaps_down}");
    let check_added = swaps_down.find("ADD CONSTRAINT n_positive").expect(&swaps_down);
    let check_comment = swaps_down.find("COMMENT ON CONSTRAINT n_positive").expect(&swaps_down);
    assert!(check_added < check_comment, "{swaps_down}");

    p.run(&["downs", "--write"]).expect_code(0);
    p.run(&["migrate", "--to", "2024-08-01-000001"]).expect_code(0);
    let (base, base_comments) = (Schema::read(&mut p.client()).unwrap(), comments(&p));
    assert_eq!(base_comments.len(), 5, "{base_comments:?}");
    p.run(&["migrate"]).expect_code(0);
    assert_ne!(comments(&p), base_comments);
    p.run(&["rollback", "--to", "2024-08-01-000001"]).expect_code(0);
    let back = Schema::read(&mut p.client()).unwrap();
    assert!(base.differences(&back).is_empty(), "{:#?}", base.differences(&back));
    assert!(base.cosmetic_differences(&back).is_empty(), "{:#?}", base.cosmetic_differences(&back));
    assert_eq!(comments(&p), base_comments);
}
