//! A type as a migration writes it, and whether changing a column to it
//! keeps every value the old type held.

/// A type as written in the migration: its name and modifiers, enough for
/// the live check to ask the catalog whether a change rewrites the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeSpec {
    /// Possibly schema-qualified, e.g. `pg_catalog.varchar`.
    pub name: String,
    /// Integer modifiers: `varchar(50)` has `[50]`, `numeric(10,2)` `[10, 2]`.
    pub modifiers: Vec<i64>,
    pub array: bool,
    /// A USING expression converts the values.
    pub using: bool,
}

impl TypeSpec {
    /// The type as people write it: `varchar(50)`, `integer[]`.
    pub fn display(&self) -> String {
        let base = self.name.strip_prefix("pg_catalog.").unwrap_or(&self.name);
        let base = match base {
            "int2" => "smallint",
            "int4" => "integer",
            "int8" => "bigint",
            "float4" => "real",
            "float8" => "double precision",
            "bpchar" => "char",
            "bool" => "boolean",
            other => other,
        };
        let mut out = base.to_string();
        if !self.modifiers.is_empty() {
            let mods: Vec<String> = self.modifiers.iter().map(i64::to_string).collect();
            out.push_str(&format!("({})", mods.join(",")));
        }
        if self.array {
            out.push_str("[]");
        }
        out
    }

    /// The bare type name without schema, lowercase.
    pub fn base(&self) -> &str {
        self.name.rsplit('.').next().unwrap_or(&self.name)
    }

    /// Whether every value of the type `old` (its catalog name, `int4`,
    /// `numeric`, `varchar`, and modifiers as written) fits this type
    /// unchanged: an integer into a wider integer, into `bigint`-safe
    /// floats, into `numeric` with room for its digits (Prisma's
    /// `DECIMAL(65,30)`) or into text; a `numeric` or `varchar` into one
    /// at least as wide. A `USING` conversion never counts as widening.
    pub fn widens(&self, old: &str, old_modifiers: &[i64]) -> bool {
        if self.using || self.array {
            return false;
        }
        let digits = |base: &str| match base {
            "int2" => Some(5),
            "int4" => Some(10),
            "int8" => Some(19),
            _ => None,
        };
        let new = self.base();
        let mods = self.modifiers.as_slice();
        match (old, new) {
            (_, "text") => matches!(old, "varchar" | "text" | "int2" | "int4" | "int8" | "numeric"),
            ("varchar", "varchar") => match (old_modifiers, mods) {
                (_, []) => true,
                ([o], [n]) => n >= o,
                _ => false,
            },
            (o, n) if digits(o).is_some() && digits(n).is_some() => digits(n) >= digits(o),
            ("int2" | "int4", "float8") => true,
            ("int2", "float4") => true,
            ("float4", "float8") => true,
            (o, "numeric") if digits(o).is_some() => match mods {
                [] => true,
                [p] => *p >= digits(o).unwrap_or(i64::MAX),
                [p, s] => p - s >= digits(o).unwrap_or(i64::MAX),
                _ => false,
            },
            ("numeric", "numeric") => {
                let (op, os) = match old_modifiers {
                    [p] => (*p, 0),
                    [p, s] => (*p, *s),
                    _ => return mods.is_empty(),
                };
                let (np, ns) = match mods {
                    [] => return true,
                    [p] => (*p, 0),
                    [p, s] => (*p, *s),
                    _ => return false,
                };
                ns >= os && np - ns >= op - os
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod widening {
    use super::TypeSpec;

    fn spec(name: &str, modifiers: &[i64]) -> TypeSpec {
        TypeSpec { name: name.into(), modifiers: modifiers.to_vec(), array: false, using: false }
    }

    #[test]
    fn widening_numeric_and_integer_changes_cut_nothing() {
        assert!(spec("pg_catalog.numeric", &[65, 30]).widens("int4", &[]));
        assert!(spec("pg_catalog.numeric", &[65, 30]).widens("int8", &[]));
        assert!(spec("pg_catalog.numeric", &[65, 30]).widens("numeric", &[10, 2]));
        assert!(spec("pg_catalog.int8", &[]).widens("int4", &[]));
        assert!(spec("pg_catalog.varchar", &[100]).widens("varchar", &[50]));
        assert!(spec("text", &[]).widens("varchar", &[50]));
        assert!(!spec("pg_catalog.numeric", &[10, 2]).widens("int8", &[]));
        assert!(!spec("pg_catalog.numeric", &[12, 4]).widens("numeric", &[12, 2]));
        assert!(!spec("pg_catalog.int4", &[]).widens("int8", &[]));
        assert!(!spec("pg_catalog.float4", &[]).widens("int4", &[]));
        let using = TypeSpec { using: true, ..spec("pg_catalog.int8", &[]) };
        assert!(!using.widens("int4", &[]));
    }
}
