//! Error type with a suggested HTTP status and a stable machine code.

/// Everything that can go wrong in [`crate::probe`] / [`crate::process`].
///
/// Every variant maps to a suggested HTTP status via [`PipelineError::status`] and to a stable,
/// machine-readable code via [`PipelineError::code`]. The codes are part of the public contract and
/// will not change; the human-readable `Display` text may.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The bytes are not a recognised image (empty input, text, random data, other file types).
    #[error("input is not a recognised image")]
    NotAnImage,
    /// The bytes are a known image (or media) format that the pipeline does not accept
    /// (GIF, BMP, TIFF, AVIF, HEIC, ...), or a JPEG/PNG/WebP variant the decoders cannot handle
    /// (e.g. arithmetic-coded or lossless JPEG).
    #[error("unsupported image format: {format}")]
    Unsupported {
        /// Short name of the detected format, e.g. `"gif"`.
        format: String,
    },
    /// The image ends before its data is complete (cut-off upload).
    #[error("image data is truncated")]
    Truncated,
    /// The image header or data is malformed.
    #[error("image data is corrupt: {0}")]
    Corrupt(String),
    /// The input is larger than [`crate::Limits::max_bytes`].
    #[error("input is {bytes} bytes, the limit is {max} bytes")]
    TooLarge {
        /// Size of the input.
        bytes: u64,
        /// The configured cap.
        max: u64,
    },
    /// The header declares more pixels than [`crate::Limits::max_pixels`]. Checked before any
    /// pixel data is decoded or allocated.
    #[error("image is {width}x{height} pixels, the limit is {max} pixels")]
    TooManyPixels {
        /// Declared width (as stored).
        width: u32,
        /// Declared height (as stored).
        height: u32,
        /// The configured cap.
        max: u64,
    },
    /// Re-encoding a variant failed. This is a server-side fault, not a client error.
    #[error("failed to encode a variant: {0}")]
    Encode(String),
}

impl PipelineError {
    /// Suggested HTTP status code.
    ///
    /// * 400 – not an image, truncated, corrupt
    /// * 413 – over the byte cap **and** over the pixel cap (a pixel bomb is "too large" for the
    ///   service in the same sense as an oversized body, so both share 413; the distinct
    ///   [`code`](Self::code) tells them apart)
    /// * 415 – recognised but unsupported format
    /// * 500 – encoder failure
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::NotAnImage | Self::Truncated | Self::Corrupt(_) => 400,
            Self::TooLarge { .. } | Self::TooManyPixels { .. } => 413,
            Self::Unsupported { .. } => 415,
            Self::Encode(_) => 500,
        }
    }

    /// Stable machine-readable error code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotAnImage => "NOT_AN_IMAGE",
            Self::Unsupported { .. } => "UNSUPPORTED_MEDIA_TYPE",
            Self::Truncated => "IMAGE_TRUNCATED",
            Self::Corrupt(_) => "IMAGE_CORRUPT",
            Self::TooLarge { .. } => "IMAGE_TOO_LARGE",
            Self::TooManyPixels { .. } => "IMAGE_TOO_MANY_PIXELS",
            Self::Encode(_) => "IMAGE_ENCODE_FAILED",
        }
    }

    /// `true` when the failure is the client's fault (4xx).
    #[must_use]
    pub fn is_client_error(&self) -> bool {
        (400..500).contains(&self.status())
    }

    pub(crate) fn corrupt(msg: impl Into<String>) -> Self {
        Self::Corrupt(msg.into())
    }

    pub(crate) fn unsupported(format: impl Into<String>) -> Self {
        Self::Unsupported { format: format.into() }
    }
}

impl From<image::ImageError> for PipelineError {
    fn from(err: image::ImageError) -> Self {
        use image::ImageError as E;
        match err {
            E::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => Self::Truncated,
            E::IoError(io) => Self::Corrupt(io.to_string()),
            E::Decoding(d) => {
                let text = d.to_string();
                if looks_truncated(&text) {
                    Self::Truncated
                } else {
                    Self::Corrupt(text)
                }
            }
            E::Unsupported(u) => Self::Unsupported { format: u.to_string() },
            E::Limits(l) => Self::Corrupt(format!("decoder limit exceeded: {l}")),
            E::Parameter(p) => Self::Corrupt(p.to_string()),
            E::Encoding(e) => Self::Encode(e.to_string()),
        }
    }
}

impl From<jpeg_decoder::Error> for PipelineError {
    fn from(err: jpeg_decoder::Error) -> Self {
        use jpeg_decoder::Error as E;
        match err {
            E::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => Self::Truncated,
            E::Io(io) => Self::Corrupt(io.to_string()),
            E::Format(s) => {
                if looks_truncated(&s) {
                    Self::Truncated
                } else {
                    Self::Corrupt(s)
                }
            }
            E::Unsupported(u) => Self::Unsupported {
                format: format!("jpeg ({u:?})"),
            },
            other => Self::Corrupt(other.to_string()),
        }
    }
}

fn looks_truncated(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("eof") || t.contains("end of file") || t.contains("unexpected end") || t.contains("truncated")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes() {
        let cases = [
            (PipelineError::NotAnImage, 400, "NOT_AN_IMAGE"),
            (PipelineError::Truncated, 400, "IMAGE_TRUNCATED"),
            (PipelineError::corrupt("x"), 400, "IMAGE_CORRUPT"),
            (PipelineError::TooLarge { bytes: 2, max: 1 }, 413, "IMAGE_TOO_LARGE"),
            (
                PipelineError::TooManyPixels {
                    width: 2,
                    height: 2,
                    max: 1,
                },
                413,
                "IMAGE_TOO_MANY_PIXELS",
            ),
            (PipelineError::unsupported("gif"), 415, "UNSUPPORTED_MEDIA_TYPE"),
            (PipelineError::Encode("x".into()), 500, "IMAGE_ENCODE_FAILED"),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status(), status, "{err}");
            assert_eq!(err.code(), code, "{err}");
            assert_eq!(err.is_client_error(), status < 500);
        }
    }
}
