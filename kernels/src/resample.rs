//! Resizing greyscale page images by bilinear interpolation, for OCR of scans whose own
//! resolution Tesseract cannot read (see `ingest.pdf`'s fallback for grainy low-resolution
//! scans): enlarging smooths grain the way a renderer's interpolation does.

/// `pixels` (`width` × `height`, one byte each, rows packed) resized to `new_width` ×
/// `new_height` by bilinear interpolation between pixel centres (edges clamped).
pub fn bilinear(
    pixels: &[u8],
    width: usize,
    height: usize,
    new_width: usize,
    new_height: usize,
) -> Vec<u8> {
    assert_eq!(pixels.len(), width * height, "image size");
    if width == 0 || height == 0 || new_width == 0 || new_height == 0 {
        return vec![255; new_width * new_height];
    }
    // Source coordinate of each output column, as (left index, weight of the right one in 1/256).
    let map = |n: usize, new_n: usize| -> Vec<(usize, u32)> {
        let scale = n as f64 / new_n as f64;
        (0..new_n)
            .map(|i| {
                let x = ((i as f64 + 0.5) * scale - 0.5).clamp(0.0, (n - 1) as f64);
                let x0 = (x.floor() as usize).min(n - 1);
                (x0, ((x - x0 as f64) * 256.0).round() as u32)
            })
            .collect()
    };
    let (xs, ys) = (map(width, new_width), map(height, new_height));
    let mut out = Vec::with_capacity(new_width * new_height);
    for &(y0, wy) in &ys {
        let y1 = (y0 + 1).min(height - 1);
        let (r0, r1) = (
            &pixels[y0 * width..][..width],
            &pixels[y1 * width..][..width],
        );
        for &(x0, wx) in &xs {
            let x1 = (x0 + 1).min(width - 1);
            let top = r0[x0] as u32 * (256 - wx) + r0[x1] as u32 * wx;
            let bottom = r1[x0] as u32 * (256 - wx) + r1[x1] as u32 * wx;
            out.push(((top * (256 - wy) + bottom * wy + (1 << 15)) >> 16) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_images_stay_flat_and_sizes_follow() {
        let out = bilinear(&[200; 6], 3, 2, 7, 5);
        assert_eq!(out.len(), 35);
        assert!(out.iter().all(|&p| p == 200));
    }

    #[test]
    fn doubling_interpolates_between_pixels() {
        // A black and a white pixel: enlarged twice, the middle two go a quarter and three
        // quarters of the way; the ends keep their values.
        let out = bilinear(&[0, 255], 2, 1, 4, 1);
        assert_eq!(out, [0, 64, 191, 255]);
    }

    #[test]
    fn same_size_is_a_copy() {
        let img: Vec<u8> = (0..12).map(|i| i * 20).collect();
        assert_eq!(bilinear(&img, 4, 3, 4, 3), img);
    }
}
