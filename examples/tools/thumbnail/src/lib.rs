//! `thumbnail`: takes a PNG and returns a resized PNG.
//!
//! Parameters: `max` (default 128, 1..=2048), the longest side of the
//! result; the aspect ratio is kept and images are never enlarged.

use errand_guest::{Context, ToolError};
use image::{ImageFormat, imageops::FilterType};

/// Resizes `png` so its longest side is at most `max`, returning a PNG.
pub fn thumbnail(png: &[u8], max: u32) -> Result<Vec<u8>, ToolError> {
    let format = image::guess_format(png)
        .map_err(|_| ToolError::InvalidInput("input is not an image".into()))?;
    if format != ImageFormat::Png {
        return Err(ToolError::InvalidInput(format!(
            "input is {format:?}, expected PNG"
        )));
    }
    let img = image::load_from_memory_with_format(png, ImageFormat::Png)
        .map_err(|e| ToolError::InvalidInput(format!("cannot decode PNG: {e}")))?;
    let (w, h) = (img.width(), img.height());
    let scale = (f64::from(max) / f64::from(w.max(h))).min(1.0);
    let (nw, nh) = (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    );
    let small = img.resize_exact(nw, nh, FilterType::Triangle);
    let mut out = std::io::Cursor::new(Vec::new());
    small
        .write_to(&mut out, ImageFormat::Png)
        .map_err(|e| ToolError::Failed(e.to_string()))?;
    Ok(out.into_inner())
}

fn invoke(input: &[u8], ctx: &Context) -> Result<Vec<u8>, ToolError> {
    let max = match ctx.param("max") {
        None => 128,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=2048).contains(n))
            .ok_or_else(|| {
                ToolError::InvalidInput(format!("parameter max={v:?} must be 1..=2048"))
            })?,
    };
    thumbnail(input, max)
}

errand_guest::export_tool!(invoke);

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| Rgb([x as u8, y as u8, 7]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn shrinks_keeping_aspect() {
        let out = thumbnail(&png(200, 100), 50).unwrap();
        let img = image::load_from_memory(&out).unwrap();
        assert_eq!((img.width(), img.height()), (50, 25));
    }

    #[test]
    fn never_enlarges_and_rejects_non_png() {
        let out = thumbnail(&png(20, 10), 128).unwrap();
        let img = image::load_from_memory(&out).unwrap();
        assert_eq!((img.width(), img.height()), (20, 10));
        assert!(matches!(
            thumbnail(b"hello", 10),
            Err(ToolError::InvalidInput(_))
        ));
    }
}
