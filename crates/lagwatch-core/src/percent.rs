//! Percent-encoding as the documented APIs need it, in one place: the sets of characters each
//! URL part leaves readable, on top of the `percent-encoding` crate.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters is escaped: safe as a path segment and as
/// a query value (document keys, index names, query parameters).
pub const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// As [`COMPONENT`] but keeps `/`: a Blob or ADLS path, whose segments the service splits.
pub const PATH: &AsciiSet = &COMPONENT.remove(b'/');

/// A path segment or query value, escaped with [`COMPONENT`].
pub fn component(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// A multi-segment path, escaped with [`PATH`].
pub fn path(s: &str) -> String {
    utf8_percent_encode(s, PATH).to_string()
}

/// Decodes `%XX` escapes; an invalid escape is kept as it is and bytes that are not UTF-8
/// become U+FFFD, so a name a service returned is shown rather than dropped.
pub fn decode_lossy(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_keep_what_their_parts_allow() {
        assert_eq!(component("a b/c:d-e_f.g~h"), "a%20b%2Fc%3Ad-e_f.g~h");
        assert_eq!(path("a b/c:d.csv"), "a%20b/c%3Ad.csv");
        assert_eq!(component("a/b=c+"), "a%2Fb%3Dc%2B");
        assert_eq!(component("é"), "%C3%A9");
        assert_eq!(decode_lossy("My%20Work%2fspace%zz%"), "My Work/space%zz%");
        assert_eq!(decode_lossy(&component("ünï code/+")), "ünï code/+");
    }
}
