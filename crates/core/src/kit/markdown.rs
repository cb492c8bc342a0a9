//! Markdown for reports: a table cell that cannot break its table.

/// Text made safe for one cell of a Markdown table: pipes escaped, line
/// breaks written as `<br>` (which GitHub's tables show as breaks).
pub fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace("\r\n", "<br>").replace(['\n', '\r'], "<br>")
}

#[cfg(test)]
mod tests {
    #[test]
    fn cells_keep_their_table_whole() {
        assert_eq!(super::cell("a | b\nc"), "a \\| b<br>c");
    }
}
