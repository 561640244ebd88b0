//! Global binarisation of greyscale page images before OCR, by Otsu's threshold: the grey
//! level that best separates ink from paper (maximal between-class variance).
//!
//! Whether it helps depends on the image (Tesseract 5.3, noisy test scans, character errors):
//! on PDFium renderings of Chinese scans it does (3.2% to 2.1% at 300 dpi, eng+chi_sim), and on
//! Chinese scans read at their own resolution (2.5% to 2.1% at 200 dpi, 2.9% to 1.7% at 300);
//! on English scans read at their own resolution it does not (0.20% to 0.73–0.81% at 200 dpi),
//! since Tesseract's recogniser reads grey. `ingest.pdf` applies it accordingly.

/// Otsu's threshold of a greyscale image: pixels below it are ink.
pub fn otsu_threshold(pixels: &[u8]) -> u8 {
    let mut hist = [0u64; 256];
    for &p in pixels {
        hist[p as usize] += 1;
    }
    let total = pixels.len() as f64;
    if total == 0.0 {
        return 128;
    }
    let sum_all: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &h)| i as f64 * h as f64)
        .sum();
    let (mut w0, mut sum0) = (0.0f64, 0.0f64);
    let (mut best, mut best_t) = (-1.0f64, 128u8);
    for t in 1..256usize {
        w0 += hist[t - 1] as f64;
        sum0 += (t - 1) as f64 * hist[t - 1] as f64;
        let w1 = total - w0;
        if w0 == 0.0 || w1 == 0.0 {
            continue;
        }
        let (m0, m1) = (sum0 / w0, (sum_all - sum0) / w1);
        let between = w0 * w1 * (m0 - m1) * (m0 - m1);
        if between > best {
            best = between;
            best_t = t as u8;
        }
    }
    best_t
}

/// Binarises in place: black below Otsu's threshold, white from it. Returns the threshold.
pub fn binarize(pixels: &mut [u8]) -> u8 {
    let t = otsu_threshold(pixels);
    for p in pixels.iter_mut() {
        *p = if *p < t { 0 } else { 255 };
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_splits_ink_from_paper() {
        // 70% paper around 230, 30% ink around 40, with some spread.
        let mut img: Vec<u8> = (0..1000)
            .map(|i| {
                if i % 10 < 7 {
                    220 + (i % 20) as u8
                } else {
                    30 + (i % 25) as u8
                }
            })
            .collect();
        let t = binarize(&mut img);
        // Every threshold above the darkest paper-free gap separates the two; Otsu takes the first.
        assert!((55..=220).contains(&t), "threshold {t}");
        assert_eq!(img.iter().filter(|&&p| p == 0).count(), 300);
        assert!(img.iter().all(|&p| p == 0 || p == 255));
    }

    #[test]
    fn flat_images_do_not_panic() {
        assert_eq!(otsu_threshold(&[]), 128);
        let mut white = vec![255u8; 64];
        binarize(&mut white);
        assert!(white.iter().all(|&p| p == 255));
    }
}
