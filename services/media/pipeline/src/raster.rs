//! An owned 8-bit pixel buffer plus the operations the pipeline needs on it: resize (via
//! fast_image_resize), EXIF orientation, alpha handling.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, RgbImage, RgbaImage};

use crate::PipelineError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Gray,
    Rgb,
    Rgba,
}

impl Kind {
    pub(crate) fn channels(self) -> usize {
        match self {
            Kind::Gray => 1,
            Kind::Rgb => 3,
            Kind::Rgba => 4,
        }
    }

    fn pixel_type(self) -> PixelType {
        match self {
            Kind::Gray => PixelType::U8,
            Kind::Rgb => PixelType::U8x3,
            Kind::Rgba => PixelType::U8x4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Raster {
    pub width: u32,
    pub height: u32,
    pub kind: Kind,
    pub data: Vec<u8>,
}

fn internal(e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Encode(format!("internal pixel-buffer error: {e}"))
}

impl Raster {
    pub(crate) fn new(width: u32, height: u32, kind: Kind, data: Vec<u8>) -> Result<Self, PipelineError> {
        let expected = (width as usize)
            .checked_mul(height as usize)
            .and_then(|p| p.checked_mul(kind.channels()))
            .ok_or_else(|| PipelineError::corrupt("image too large for this platform"))?;
        if data.len() != expected || width == 0 || height == 0 {
            return Err(PipelineError::corrupt(
                "decoded buffer does not match the image dimensions",
            ));
        }
        Ok(Self {
            width,
            height,
            kind,
            data,
        })
    }

    /// Normalises any decoded image into 8-bit gray, RGB or RGBA without copying when it is
    /// already one of those.
    pub(crate) fn from_dynamic(img: DynamicImage) -> Result<Self, PipelineError> {
        let (w, h) = (img.width(), img.height());
        let (kind, data) = match img {
            DynamicImage::ImageLuma8(b) => (Kind::Gray, b.into_raw()),
            DynamicImage::ImageRgb8(b) => (Kind::Rgb, b.into_raw()),
            DynamicImage::ImageRgba8(b) => (Kind::Rgba, b.into_raw()),
            DynamicImage::ImageLuma16(_) => (Kind::Gray, img.to_luma8().into_raw()),
            other if other.color().has_alpha() => (Kind::Rgba, other.to_rgba8().into_raw()),
            other => (Kind::Rgb, other.to_rgb8().into_raw()),
        };
        Self::new(w, h, kind, data)
    }

    /// Resizes to exactly `width` x `height` (Lanczos3 convolution; alpha-aware for RGBA).
    /// Returns `self` untouched when the size already matches.
    pub(crate) fn resized(self, width: u32, height: u32, resizer: &mut Resizer) -> Result<Self, PipelineError> {
        if (width, height) == (self.width, self.height) {
            return Ok(self);
        }
        let pt = self.kind.pixel_type();
        let src = ImageRef::new(self.width, self.height, &self.data, pt).map_err(internal)?;
        let mut dst = Image::new(width, height, pt);
        let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
        resizer.resize(&src, &mut dst, &opts).map_err(internal)?;
        Self::new(width, height, self.kind, dst.into_vec())
    }

    /// Applies an EXIF orientation (all eight values).
    pub(crate) fn oriented(self, orientation: Orientation) -> Result<Self, PipelineError> {
        if orientation == Orientation::NoTransforms {
            return Ok(self);
        }
        let (w, h, kind) = (self.width, self.height, self.kind);
        let mut img = match kind {
            Kind::Gray => GrayImage::from_raw(w, h, self.data).map(DynamicImage::ImageLuma8),
            Kind::Rgb => RgbImage::from_raw(w, h, self.data).map(DynamicImage::ImageRgb8),
            Kind::Rgba => RgbaImage::from_raw(w, h, self.data).map(DynamicImage::ImageRgba8),
        }
        .ok_or_else(|| internal("buffer size mismatch"))?;
        img.apply_orientation(orientation);
        Self::new(img.width(), img.height(), kind, img.into_bytes())
    }

    /// If an RGBA raster is fully opaque, drops the alpha channel in place.
    pub(crate) fn drop_opaque_alpha(mut self) -> Self {
        if self.kind != Kind::Rgba || !self.data.chunks_exact(4).all(|p| p[3] == 255) {
            return self;
        }
        let pixels = self.data.len() / 4;
        for i in 0..pixels {
            self.data.copy_within(i * 4..i * 4 + 3, i * 3);
        }
        self.data.truncate(pixels * 3);
        self.data.shrink_to_fit();
        self.kind = Kind::Rgb;
        self
    }

    /// RGB view for encoders that need it: gray is expanded, RGBA is composited on white.
    /// Borrows when already RGB.
    pub(crate) fn rgb(&self) -> std::borrow::Cow<'_, [u8]> {
        match self.kind {
            Kind::Rgb => std::borrow::Cow::Borrowed(&self.data),
            Kind::Gray => self.data.iter().flat_map(|&g| [g, g, g]).collect::<Vec<u8>>().into(),
            Kind::Rgba => {
                let mut out = Vec::with_capacity(self.data.len() / 4 * 3);
                for p in self.data.chunks_exact(4) {
                    let a = u32::from(p[3]);
                    let inv = 255 - a;
                    for &c in &p[..3] {
                        // c*a/255 + 255*(255-a)/255, rounded.
                        out.push(((u32::from(c) * a + 255 * inv + 127) / 255) as u8);
                    }
                }
                out.into()
            }
        }
    }
}

/// Largest dimensions with long side `long` preserving the aspect ratio of `w` x `h`
/// (rounded to nearest, at least 1 px). `long` must not exceed the long side of `w` x `h`.
pub(crate) fn fit_long_side(w: u32, h: u32, long: u32) -> (u32, u32) {
    let scale = |short: u32, long_src: u32| -> u32 {
        let v = (u64::from(short) * u64::from(long) * 2 + u64::from(long_src)) / (2 * u64::from(long_src));
        u32::try_from(v).unwrap_or(u32::MAX).max(1)
    };
    if w >= h {
        (long, scale(h, w))
    } else {
        (scale(w, h), long)
    }
}

/// Whether the orientation swaps width and height.
pub(crate) fn transposes(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit() {
        assert_eq!(fit_long_side(4000, 3000, 1280), (1280, 960));
        assert_eq!(fit_long_side(3000, 4000, 1280), (960, 1280));
        assert_eq!(fit_long_side(4000, 3000, 150), (150, 113)); // 112.5 rounds up
        assert_eq!(fit_long_side(10000, 1, 150), (150, 1));
        assert_eq!(fit_long_side(1, 10000, 150), (1, 150));
        assert_eq!(fit_long_side(100, 100, 100), (100, 100));
        assert_eq!(fit_long_side(1, 1, 1), (1, 1));
    }

    #[test]
    fn all_orientations_move_the_top_left_pixel() {
        // 3x2 RGB, top-left is marked.
        let mut data = vec![0u8; 3 * 2 * 3];
        data[0] = 255;
        let src = Raster::new(3, 2, Kind::Rgb, data).unwrap();
        let find = |r: &Raster| {
            let i = r.data.chunks_exact(3).position(|p| p[0] == 255).unwrap() as u32;
            (r.width, r.height, i % r.width, i / r.width)
        };
        let cases = [
            (1, (3, 2, 0, 0)),
            (2, (3, 2, 2, 0)), // mirror horizontally
            (3, (3, 2, 2, 1)), // rotate 180
            (4, (3, 2, 0, 1)), // mirror vertically
            (5, (2, 3, 0, 0)), // transpose
            (6, (2, 3, 1, 0)), // rotate 90 CW: top-left -> top-right
            (7, (2, 3, 1, 2)), // transverse
            (8, (2, 3, 0, 2)), // rotate 270 CW: top-left -> bottom-left
        ];
        for (exif, want) in cases {
            let o = Orientation::from_exif(exif).unwrap();
            let got = find(&src.clone().oriented(o).unwrap());
            assert_eq!(got, want, "orientation {exif}");
            assert_eq!(transposes(o), want.0 == 2, "orientation {exif}");
        }
    }

    #[test]
    fn alpha() {
        let r = Raster::new(2, 1, Kind::Rgba, vec![10, 20, 30, 255, 0, 0, 0, 0]).unwrap();
        assert_eq!(r.rgb().as_ref(), &[10, 20, 30, 255, 255, 255]);
        let r = r.drop_opaque_alpha();
        assert_eq!(r.kind, Kind::Rgba);
        let r = Raster::new(2, 1, Kind::Rgba, vec![10, 20, 30, 255, 1, 2, 3, 255])
            .unwrap()
            .drop_opaque_alpha();
        assert_eq!((r.kind, r.data.as_slice()), (Kind::Rgb, &[10, 20, 30, 1, 2, 3][..]));
        let g = Raster::new(2, 1, Kind::Gray, vec![7, 9]).unwrap();
        assert_eq!(g.rgb().as_ref(), &[7, 7, 7, 9, 9, 9]);
    }
}
