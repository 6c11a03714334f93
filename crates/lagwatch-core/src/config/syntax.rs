//! YAML syntax errors as one line naming where to look.
//!
//! The YAML scanner reports some errors where the token it was scanning began, not where the
//! offending character is: a tab that starts the line after a plain scalar (an unquoted URL)
//! is reported as "while scanning a plain scalar, found a tab" at the scalar's first
//! character, one line above the tab. Such positions are moved onto the tab itself.

/// The one-line message of a YAML syntax error in `text`: "… at line L, column C".
pub fn message(e: &serde_saphyr::Error, text: &str) -> String {
    // One line, "... at line 9, column 3": the default rendering adds a multi-line snippet
    // and hints at Rust options (`DuplicateKeyPolicy`).
    let rendered = e.render_with_options(serde_saphyr::render_options! {
        formatter: &serde_saphyr::UserMessageFormatter,
        snippets: serde_saphyr::SnippetMode::Off,
    });
    let Some(at) = e.location() else {
        return rendered;
    };
    if !rendered.to_ascii_lowercase().contains("found a tab") {
        return rendered;
    }
    match next_tab(text, at.line(), at.column()) {
        Some((line, column)) => tab_message(line, column),
        None => rendered,
    }
}

/// The message for a tab where YAML allows none.
fn tab_message(line: u64, column: u64) -> String {
    format!(
        "found a tab at line {line}, column {column}: YAML indents with spaces only; replace the tab with spaces"
    )
}

/// The first tab at or after 1-based `line`/`column` of `text`, as 1-based line and column.
pub fn next_tab(text: &str, line: u64, column: u64) -> Option<(u64, u64)> {
    for (i, l) in text.lines().enumerate() {
        let n = i as u64 + 1;
        if n < line {
            continue;
        }
        let skip = if n == line {
            usize::try_from(column.saturating_sub(1)).unwrap_or(usize::MAX)
        } else {
            0
        };
        if let Some(c) = l.chars().skip(skip).position(|ch| ch == '\t') {
            return Some((n, (c + skip) as u64 + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        let e = serde_saphyr::from_str::<serde_json::Value>(text).expect_err("a syntax error");
        message(&e, text)
    }

    #[test]
    fn a_tab_after_an_unquoted_url_is_reported_on_its_own_line() {
        let text = "instance: a\nsystems:\n  crm:\n    kind: dataverse\n    url: https://contoso.crm.dynamics.com\n\ttable: accounts\n";
        // The scanner itself says line 5 (the URL's line).
        let raw = serde_saphyr::from_str::<serde_json::Value>(text).expect_err("a tab");
        assert_eq!(raw.location().map(|l| l.line()), Some(5));
        assert_eq!(
            error(text),
            "found a tab at line 6, column 1: YAML indents with spaces only; replace the tab with spaces"
        );
    }

    #[test]
    fn a_tab_reported_in_place_keeps_its_position() {
        let text = "instance: a\nsystems:\n  crm:\n    kind: dataverse\n    url: \"https://contoso.crm.dynamics.com\"\n\ttable: accounts\n";
        assert!(error(text).contains("at line 6, column"), "{}", error(text));
    }

    #[test]
    fn other_errors_keep_the_scanners_words() {
        let text = "a: [1, 2\nb: 3\n";
        assert!(error(text).contains("line"), "{}", error(text));
        assert!(!error(text).contains("tab"));
    }

    #[test]
    fn next_tab_counts_from_the_column() {
        assert_eq!(next_tab("a\tb\n\tc", 1, 3), Some((2, 1)));
        assert_eq!(next_tab("a\tb", 1, 1), Some((1, 2)));
        assert_eq!(next_tab("ab", 1, 1), None);
    }
}
