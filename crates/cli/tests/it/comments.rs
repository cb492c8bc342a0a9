//! Comments (`COMMENT ON`) compared by rehearse and downs (issue 43): a
//! comment a down leaves lost or changed is a named cosmetic difference,
//! never an error and never silence.

use crate::common::Project;

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
