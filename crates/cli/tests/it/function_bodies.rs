//! A down that makes a function again, written otherwise than its up's
//! original but read the same by PostgreSQL's parsers (parentheses that
//! group nothing), leaves a cosmetic difference said apart, never a
//! defect; one that groups otherwise is a defect. Before, any body that
//! differed by more than whitespace, comments or case was a defect.

use crate::common::Project;

const ORIGINAL: &str = "CREATE FUNCTION total(a int, b int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  IF (a IS NULL) THEN RETURN (b + 0); END IF;
  RETURN (a + b) * 2;
END $$;";

fn replaced_with_down(label: &str, down_body: &str) -> Project {
    let p = Project::new(label);
    p.migration("1_total", ORIGINAL, Some("DROP FUNCTION total(int, int);"));
    let down = format!(
        "CREATE OR REPLACE FUNCTION total(a int, b int) RETURNS int LANGUAGE plpgsql AS $$\n{down_body}\n$$;"
    );
    p.migration(
        "2_total",
        "CREATE OR REPLACE FUNCTION total(a int, b int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN RETURN coalesce(a, 0) + b; END $$;",
        Some(&down),
    );
    p
}

fn class_of_2(p: &Project) -> (String, serde_json::Value) {
    let run = p.run(&["rehearse", "--format", "json"]);
    let json = run.json();
    let trip = json["round_trip"]["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["version"] == "2")
        .cloned()
        .unwrap();
    (trip["class"].as_str().unwrap().to_string(), json["round_trip"].clone())
}

#[test]
fn a_function_made_again_with_parentheses_that_group_nothing_is_cosmetic() {
    let p = replaced_with_down(
        "fn_parens_same",
        "begin\n  if a is null then return b + 0; end if;\n  return ((a + b)) * 2;\nend",
    );
    let (class, round_trip) = class_of_2(&p);
    assert_eq!(class, "cosmetic_only", "{round_trip:#}");
    let said = round_trip["cosmetic"].to_string();
    assert!(said.contains("function public.total(a integer, b integer)"), "{said}");
    assert!(said.contains("parentheses that group nothing"), "{said}");
}

#[test]
fn a_function_made_again_grouped_otherwise_is_a_defect() {
    let p = replaced_with_down(
        "fn_parens_other",
        "begin\n  if a is null then return (b + 0); end if;\n  return a + b * 2;\nend",
    );
    let (class, round_trip) = class_of_2(&p);
    assert_eq!(class, "defect", "{round_trip:#}");
}

/// The deploy proves such a down and the rollback takes it: its check
/// before COMMIT, which compares definitions by a hash of their text,
/// takes the text the down was proved to leave as put back, and says it
/// apart. Before, the deploy kept the down as proved and the rollback
/// refused it ("not as it was before the up").
#[test]
fn a_rollback_takes_a_function_made_again_written_otherwise_as_its_down_was_proved() {
    let p = replaced_with_down(
        "fn_parens_rollback",
        "begin\n  if a is null then return b + 0; end if;\n  return ((a + b)) * 2;\nend",
    );
    p.run(&["migrate"]).expect_code(0);
    let run = p.run(&["rollback", "--steps", "1", "--reason", "test"]);
    run.expect_code(0)
        .expect_output("✓ what the migrations touched is as it was before 2")
        .expect_output("function public.total(a integer, b integer): made again written otherwise");
    // The function is the down's: back to what 1 made, as read.
    let total: i32 = p.client().query_one("select total(1, 2)", &[]).unwrap().get(0);
    assert_eq!(total, 6);
}
