//! The literal values of a JavaScript, TypeScript or JSON5 settings file
//! (`drizzle.config.ts`, `prisma.config.ts`, graphile-migrate's `.gmrc`),
//! read as data: nothing is run.

/// A string literal a JavaScript or TypeScript config sets: its key path
/// (`["migrations", "path"]`), value and line.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct JsValue {
    pub(super) key: Vec<String>,
    pub(super) value: String,
    pub(super) line: usize,
}

/// The literal string values of the object keys in a JavaScript or
/// TypeScript file, with the keys of the objects around them. Comments and
/// other strings do not count; a value that is not a literal (an
/// environment variable, a call) is not read.
pub(super) fn js_values(text: &str) -> Vec<JsValue> {
    let tokens = js_tokens(text);
    let mut out = Vec::new();
    let mut path: Vec<Option<String>> = Vec::new();
    let mut pending: Option<String> = None;
    for (i, (tok, line)) in tokens.iter().enumerate() {
        match tok {
            Tok::Punct('{') => {
                path.push(pending.take());
            }
            Tok::Punct('}') => {
                path.pop();
            }
            Tok::Word(w) | Tok::Str(w)
                if matches!(tokens.get(i + 1), Some((Tok::Punct(':'), _))) =>
            {
                pending = Some(w.clone());
                if let Some((Tok::Str(value), _)) = tokens.get(i + 2) {
                    let mut key: Vec<String> = path.iter().flatten().cloned().collect();
                    key.push(w.clone());
                    out.push(JsValue { key, value: value.clone(), line: *line });
                    pending = None;
                }
            }
            Tok::Punct(',') => pending = None,
            _ => {}
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Str(String),
    Punct(char),
}

/// Words, string literals and punctuation of JavaScript, with their lines;
/// comments skipped. Template literals count as strings when they hold no
/// `${`.
fn js_tokens(text: &str) -> Vec<(Tok, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
                i += 2;
            }
            '"' | '\'' | '`' => {
                let start_line = line;
                let mut value = String::new();
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    line += usize::from(chars[i] == '\n');
                    value.push(chars[i]);
                    i += 1;
                }
                i += 1;
                if !(c == '`' && value.contains("${")) {
                    out.push((Tok::Str(value), start_line));
                }
            }
            c if c.is_alphanumeric() || c == '_' || c == '$' => {
                let mut word = String::new();
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
                {
                    word.push(chars[i]);
                    i += 1;
                }
                out.push((Tok::Word(word), line));
            }
            c if c.is_whitespace() => i += 1,
            c => {
                out.push((Tok::Punct(c), line));
                i += 1;
            }
        }
    }
    out
}
