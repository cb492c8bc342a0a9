//! The patterns a wave names its databases with: `*` stands for any run
//! of characters, `?` for one, everything else for itself (`tenant-*`,
//! `eu-?-primary`). Whether a pattern can match a target whose name is a
//! template (`tenant-{name}`) is known before the query that fills it runs.

/// Whether `name` matches `pattern`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // can[j]: the pattern's first i characters match the name's first j.
    let mut can = vec![false; n.len() + 1];
    can[0] = true;
    for c in &p {
        let mut next = vec![false; n.len() + 1];
        match c {
            '*' => {
                let mut any = false;
                for j in 0..=n.len() {
                    any |= can[j];
                    next[j] = any;
                }
            }
            _ => {
                for j in 1..=n.len() {
                    next[j] = can[j - 1] && (*c == '?' || *c == n[j - 1]);
                }
            }
        }
        can = next;
    }
    can[n.len()]
}

/// Whether some name matches both `pattern` and `template`, whose
/// `{name}` stands for any run of characters.
pub fn may_match(pattern: &str, template: &str) -> bool {
    let a: Vec<char> = pattern.chars().collect();
    let b: Vec<char> = template.replace("{name}", "*").chars().collect();
    // both[i][j]: a[i..] and b[j..] share a name.
    let mut both = vec![vec![false; b.len() + 1]; a.len() + 1];
    for i in (0..=a.len()).rev() {
        for j in (0..=b.len()).rev() {
            both[i][j] = match (a.get(i), b.get(j)) {
                (None, None) => true,
                (Some('*'), _) => both[i + 1][j] || (j < b.len() && both[i][j + 1]),
                (_, Some('*')) => both[i][j + 1] || (i < a.len() && both[i + 1][j]),
                (Some(x), Some(y)) => (*x == '?' || *y == '?' || x == y) && both[i + 1][j + 1],
                _ => false,
            };
        }
    }
    both[0][0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_marks_match_as_written() {
        assert!(matches("tenant-*", "tenant-057"));
        assert!(matches("tenant-*", "tenant-"));
        assert!(!matches("tenant-*", "staging"));
        assert!(matches("*", "anything"));
        assert!(matches("eu-?-db", "eu-1-db"));
        assert!(!matches("eu-?-db", "eu-12-db"));
        assert!(matches("staging", "staging"));
        assert!(!matches("staging", "staging-2"));
        assert!(matches("*-primary", "eu-west-primary"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXcYYb"));
    }

    #[test]
    fn a_pattern_may_match_a_template_or_cannot() {
        assert!(may_match("tenant-*", "tenant-{name}"));
        assert!(may_match("tenant-0*", "tenant-{name}"));
        assert!(may_match("*-eu", "tenant-{name}"));
        assert!(!may_match("tenat-*", "tenant-{name}"));
        assert!(!may_match("staging", "tenant-{name}"));
        assert!(may_match("staging", "staging"));
        assert!(may_match("t?nant-1", "tenant-{name}"));
        assert!(!may_match("shard-*", "tenant-{name}-db"));
    }
}
