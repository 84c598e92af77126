//! The one canonical form of a request path.
//!
//! The router matches the percent-decoded path, so a path that is spelled differently from the
//! one it decodes to (`/v%31/auth/login`, `//v1/…`, `/v1/./auth/…`) would be two paths to
//! anything that looks at the raw URI. Such paths are refused with 400 before routing, so
//! every layer sees one spelling of each route; what passes here decodes only in parameter
//! segments (`%20` in an id), never in the static segments that select a route.

/// Why a path is not canonical.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotCanonical {
    /// An unreserved character (`A-Z a-z 0-9 - . _ ~`) written as `%XX`.
    EncodedUnreserved,
    /// `%2F`, `%5C` or `%00`: an encoded slash, backslash or NUL.
    EncodedSeparator,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// An empty segment (`//`).
    EmptySegment,
    /// A `.` or `..` segment.
    DotSegment,
    /// A raw backslash or control character.
    BadCharacter,
}

impl NotCanonical {
    /// What is wrong, for the 400 message.
    pub fn message(self) -> &'static str {
        match self {
            NotCanonical::EncodedUnreserved => "the path percent-encodes a character that must be sent as itself",
            NotCanonical::EncodedSeparator => "the path contains an encoded slash, backslash or NUL",
            NotCanonical::BadEscape => "the path contains a `%` not followed by two hex digits",
            NotCanonical::EmptySegment => "the path contains an empty segment (`//`)",
            NotCanonical::DotSegment => "the path contains a `.` or `..` segment",
            NotCanonical::BadCharacter => "the path contains a backslash or a control character",
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Checks that `path` (the raw path of the request URI, without the query) is canonical.
pub fn check(path: &str) -> Result<(), NotCanonical> {
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(NotCanonical::BadEscape);
                };
                let decoded = hi << 4 | lo;
                if unreserved(decoded) {
                    return Err(NotCanonical::EncodedUnreserved);
                }
                if matches!(decoded, b'/' | b'\\' | 0) {
                    return Err(NotCanonical::EncodedSeparator);
                }
                i += 3;
            }
            b'\\' => return Err(NotCanonical::BadCharacter),
            b if b.is_ascii_control() => return Err(NotCanonical::BadCharacter),
            _ => i += 1,
        }
    }
    // The first segment is the empty one before the leading slash; a bare "/" is canonical.
    let mut segments = path.split('/').skip(1).peekable();
    while let Some(segment) = segments.next() {
        match segment {
            "" if segments.peek().is_some() => return Err(NotCanonical::EmptySegment),
            "." | ".." => return Err(NotCanonical::DotSegment),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_pass() {
        for p in [
            "/",
            "/v1/auth/login",
            "/v1/media/0192f0c2-7d3a-7e11-8000-000000000000/thumbnail",
            "/api/admin/beta/invite-codes/COSNAPBETA2025",
            "/v1/auth/login/",
            "/v1/media/a%20b",
            "/v1/media/caf%C3%A9",
            "/v1/x/a..b",
            "/v1/x/.hidden",
        ] {
            assert_eq!(check(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn every_spelling_that_decodes_to_another_path_is_refused() {
        for (p, why) in [
            ("/v%31/auth/login", NotCanonical::EncodedUnreserved),
            ("/%761/auth/login", NotCanonical::EncodedUnreserved),
            ("/v1/auth/logi%6E", NotCanonical::EncodedUnreserved),
            ("/v1/auth/log%2Din", NotCanonical::EncodedUnreserved),
            ("/v1/auth/%7Euser", NotCanonical::EncodedUnreserved),
            ("/v1%2Fauth/login", NotCanonical::EncodedSeparator),
            ("/v1/auth/login%2F", NotCanonical::EncodedSeparator),
            ("/v1/auth/login%2f", NotCanonical::EncodedSeparator),
            ("/v1/auth%5Clogin", NotCanonical::EncodedSeparator),
            ("/v1/auth/login%00", NotCanonical::EncodedSeparator),
            ("/v1/auth/%zz", NotCanonical::BadEscape),
            ("/v1/auth/%4", NotCanonical::BadEscape),
            ("/v1/auth/%", NotCanonical::BadEscape),
            ("//v1/auth/login", NotCanonical::EmptySegment),
            ("/v1//auth/login", NotCanonical::EmptySegment),
            ("/v1/./auth/login", NotCanonical::DotSegment),
            ("/v1/x/../auth/login", NotCanonical::DotSegment),
            ("/v1/auth/login/.", NotCanonical::DotSegment),
            ("/v1/auth/..", NotCanonical::DotSegment),
            ("/v1/auth\\login", NotCanonical::BadCharacter),
        ] {
            assert_eq!(check(p), Err(why), "{p}");
        }
    }
}
