//! `imagegen`: renders a deterministic procedural PNG from a text prompt.
//!
//! The first step of the seed paper's two-step workflow (generate an image,
//! then publish it). The prompt seeds everything: the palette, the fractal
//! (a Julia set whose constant is drawn from the prompt's hash) and the
//! overlaid shapes. The same prompt always yields the same bytes.
//!
//! Parameters: `size`, the side in pixels (default 256, 16..=1024);
//! `iterations`, the fractal's depth (default 64, 1..=1024), which makes the
//! tool as compute-heavy as wanted.

use errand_guest::{Context, ToolError, log};
use image::{ImageFormat, Rgb, RgbImage};

/// FNV-1a, 64-bit: a stable hash of the prompt.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Renders the image for `prompt`.
pub fn render(prompt: &str, size: u32, iterations: u32) -> RgbImage {
    let mut rng = Rng(fnv1a(prompt.as_bytes()));
    let palette: Vec<[f64; 3]> = (0..4)
        .map(|_| [rng.unit(), rng.unit(), rng.unit()])
        .collect();
    let angle = rng.unit() * std::f64::consts::TAU;
    let radius = 0.7885;
    let (cr, ci) = (radius * angle.cos(), radius * angle.sin());
    let zoom = 1.2 + rng.unit();
    let circles: Vec<(f64, f64, f64, usize)> = (0..6)
        .map(|_| {
            (
                rng.unit(),
                rng.unit(),
                0.03 + 0.12 * rng.unit(),
                (rng.next() % 4) as usize,
            )
        })
        .collect();
    let mut img = RgbImage::new(size, size);
    let s = f64::from(size);
    for (x, y, px) in img.enumerate_pixels_mut() {
        let (u, v) = (f64::from(x) / s, f64::from(y) / s);
        let (mut zr, mut zi) = ((u - 0.5) * 2.0 * zoom, (v - 0.5) * 2.0 * zoom);
        let mut n = 0;
        while n < iterations && zr * zr + zi * zi < 4.0 {
            let t = zr * zr - zi * zi + cr;
            zi = 2.0 * zr * zi + ci;
            zr = t;
            n += 1;
        }
        let t = f64::from(n) / f64::from(iterations.max(1));
        let (a, b) = (palette[0], palette[1]);
        let mut c = [0.0; 3];
        for k in 0..3 {
            c[k] = a[k] * (1.0 - t) + b[k] * t;
        }
        for (cx, cy, r, p) in &circles {
            let d = ((u - cx).powi(2) + (v - cy).powi(2)).sqrt();
            if d < *r {
                let w = 0.5 * (1.0 - d / r);
                for k in 0..3 {
                    c[k] = c[k] * (1.0 - w) + palette[*p][k] * w;
                }
            }
        }
        *px = Rgb([
            (c[0] * 255.0) as u8,
            (c[1] * 255.0) as u8,
            (c[2] * 255.0) as u8,
        ]);
    }
    img
}

/// Encodes `img` as PNG.
pub fn encode_png(img: &RgbImage) -> Result<Vec<u8>, String> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png)
        .map_err(|e| e.to_string())?;
    Ok(out.into_inner())
}

fn param(
    ctx: &Context,
    key: &str,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, ToolError> {
    match ctx.param(key) {
        None => Ok(default),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                ToolError::InvalidInput(format!("parameter {key}={v:?} must be in {range:?}"))
            }),
    }
}

fn invoke(input: &[u8], ctx: &Context) -> Result<Vec<u8>, ToolError> {
    let prompt = std::str::from_utf8(input)
        .map_err(|_| ToolError::InvalidInput("the prompt must be UTF-8 text".into()))?
        .trim();
    if prompt.is_empty() {
        return Err(ToolError::InvalidInput("the prompt is empty".into()));
    }
    let size = param(ctx, "size", 256, 16..=1024)?;
    let iterations = param(ctx, "iterations", 64, 1..=1024)?;
    log::info(
        "rendering",
        &[
            ("size", &size.to_string()),
            ("iterations", &iterations.to_string()),
        ],
    );
    encode_png(&render(prompt, size, iterations)).map_err(ToolError::Failed)
}

errand_guest::export_tool!(invoke);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_prompt_same_png_different_prompt_different_png() {
        let a = encode_png(&render("a red fox at dawn", 64, 32)).unwrap();
        let b = encode_png(&render("a red fox at dawn", 64, 32)).unwrap();
        let c = encode_png(&render("a blue whale at dusk", 64, 32)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(&a[..8], b"\x89PNG\r\n\x1a\n");
    }

    #[test]
    fn decodes_to_the_requested_size() {
        let png = encode_png(&render("x", 48, 8)).unwrap();
        let img = image::load_from_memory(&png).unwrap();
        assert_eq!((img.width(), img.height()), (48, 48));
    }
}
