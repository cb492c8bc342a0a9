//! An error said whole: its message and each cause that adds something,
//! as one line for a report or an audit event.

/// The error with its causes, for messages that end up in one string
/// (gate refusals, manifests, the audit log).
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
