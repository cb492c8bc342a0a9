//! `${NAME}` references in config values, filled in from the environment
//! by the command that needs the value (a token or a URL is never read
//! from the environment by a command that does not use it).

/// Why a value could not be filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interpolation {
    /// `${NAME}` names a variable that is not set.
    Missing(String),
    /// A `${` without its `}`.
    Unterminated,
}

/// Replaces `${NAME}` with the variable's value; `$$` is a literal `$`.
pub fn interpolate(
    raw: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Interpolation> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail.find('}').ok_or(Interpolation::Unterminated)?;
            let var = &tail[..end];
            let value = lookup(var).ok_or_else(|| Interpolation::Missing(var.to_string()))?;
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// [`interpolate`] from the process environment.
pub fn from_env(raw: &str) -> Result<String, Interpolation> {
    interpolate(raw, |var| std::env::var(var).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_fills_variables_and_names_missing_ones() {
        let env = |v: &str| (v == "PW").then(|| "s3cret".to_string());
        assert_eq!(interpolate("postgres://u:${PW}@h/d", env).unwrap(), "postgres://u:s3cret@h/d");
        assert_eq!(interpolate("a$$b", env).unwrap(), "a$b");
        assert_eq!(interpolate("${NOPE}", env), Err(Interpolation::Missing("NOPE".into())));
        assert_eq!(interpolate("${NOPE", env), Err(Interpolation::Unterminated));
    }
}
