//! Line charts as PNG images, for reports: axes with tick labels, one coloured line per series,
//! a legend and a title, drawn with a built-in 5×7 pixel font. No dependencies beyond zlib.

use std::io::Write;

/// A line chart.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    /// Drawn above the plot.
    pub title: String,
    /// Below the x axis.
    pub x_label: String,
    /// The series: a name and its (x, y) points in x order. Points with a non-finite y are
    /// skipped.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// The y range; by default the data's.
    pub y_range: Option<(f64, f64)>,
}

/// Distinct colours (Tableau 10).
const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Canvas {
        Canvas {
            w,
            h,
            px: vec![255; w * h * 3],
        }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            let i = (y as usize * self.w + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3]) {
        for y in y0..=y1 {
            for x in x0..=x1 {
                self.set(x, y, c);
            }
        }
    }

    /// A line two pixels wide (Bresenham).
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3]) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.set(x, y, c);
            self.set(x + 1, y, c);
            self.set(x, y + 1, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Text in the 5×7 font, top-left at (x, y); returns the width drawn.
    fn text(&mut self, x: i64, y: i64, s: &str, c: [u8; 3]) -> i64 {
        let mut cx = x;
        for ch in s.chars() {
            let g = glyph(ch);
            for (row, bits) in g.iter().enumerate() {
                for col in 0..5 {
                    if bits & (1 << (4 - col)) != 0 {
                        self.set(cx + col, y + row as i64, c);
                    }
                }
            }
            cx += 6;
        }
        cx - x
    }

    fn png(&self) -> Vec<u8> {
        let mut raw = Vec::with_capacity((self.w * 3 + 1) * self.h);
        for row in self.px.chunks(self.w * 3) {
            raw.push(0); // filter: none
            raw.extend_from_slice(row);
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&raw).expect("writing to memory");
        let idat = z.finish().expect("writing to memory");
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&(self.w as u32).to_be_bytes());
        ihdr.extend_from_slice(&(self.h as u32).to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace
        chunk(&mut out, b"IHDR", &ihdr);
        chunk(&mut out, b"IDAT", &idat);
        chunk(&mut out, b"IEND", &[]);
        out
    }
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

/// A tick label: few digits, exponent for very small or large numbers.
fn label(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Draws `chart` as a `width`×`height` PNG.
pub fn line_chart_png(chart: &Chart, width: u32, height: u32) -> Vec<u8> {
    let (w, h) = (width.max(200) as i64, height.max(120) as i64);
    let mut c = Canvas::new(w as usize, h as usize);
    let legend_w = chart
        .series
        .iter()
        .map(|(n, _)| n.chars().count() as i64 * 6 + 24)
        .max()
        .unwrap_or(0)
        .min(w / 3);
    let (left, right, top, bottom) = (64, w - 16 - legend_w, 24, h - 34);
    let points = chart
        .series
        .iter()
        .flat_map(|(_, p)| p.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in points {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if let Some((a, b)) = chart.y_range {
        (y0, y1) = (a, b);
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 < 1e-12 {
        (y0, y1) = (y0 - 0.5, y1 + 0.5);
    }
    let px = |x: f64| left + ((x - x0) / (x1 - x0) * (right - left) as f64).round() as i64;
    let py = |y: f64| bottom - ((y - y0) / (y1 - y0) * (bottom - top) as f64).round() as i64;
    let ink = [40, 40, 40];
    let grid = [225, 225, 225];
    for i in 0..=4 {
        let yv = y0 + (y1 - y0) * i as f64 / 4.0;
        let y = py(yv);
        c.rect(left, y, right, y, grid);
        let l = label(yv);
        c.text(left - 6 - l.len() as i64 * 6, y - 3, &l, ink);
        let xv = x0 + (x1 - x0) * i as f64 / 4.0;
        let x = px(xv);
        c.rect(x, top, x, bottom, grid);
        let l = label(xv);
        c.text(x - l.len() as i64 * 3, bottom + 5, &l, ink);
    }
    c.rect(left, top, left, bottom, ink);
    c.rect(left, bottom, right, bottom, ink);
    c.text(left, 8, &chart.title, ink);
    let xl = chart.x_label.len() as i64 * 6;
    c.text((left + right - xl) / 2, bottom + 18, &chart.x_label, ink);
    for (i, (name, pts)) in chart.series.iter().enumerate() {
        let col = PALETTE[i % PALETTE.len()];
        let pts: Vec<(i64, i64)> = pts
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|(x, y)| (px(*x), py(y.clamp(y0, y1))))
            .collect();
        for p in pts.windows(2) {
            c.line(p[0], p[1], col);
        }
        if pts.len() < 30 {
            for &(x, y) in &pts {
                c.rect(x - 2, y - 2, x + 2, y + 2, col);
            }
        }
        let ly = top + 4 + i as i64 * 14;
        c.rect(right + 12, ly, right + 20, ly + 7, col);
        c.text(right + 24, ly, name, ink);
    }
    c.png()
}

/// The 5×7 glyph of `ch` (rows top down, 5 bits each, leftmost the highest); letters are
/// drawn lower case, unknown characters as a box.
fn glyph(ch: char) -> [u8; 7] {
    let b = |r: [&str; 7]| {
        let mut g = [0u8; 7];
        for (i, row) in r.iter().enumerate() {
            g[i] = u8::from_str_radix(row, 2).unwrap_or(0);
        }
        g
    };
    match ch.to_ascii_lowercase() {
        '0' => b([
            "01110", "10001", "10011", "10101", "11001", "10001", "01110",
        ]),
        '1' => b([
            "00100", "01100", "00100", "00100", "00100", "00100", "01110",
        ]),
        '2' => b([
            "01110", "10001", "00001", "00010", "00100", "01000", "11111",
        ]),
        '3' => b([
            "11111", "00010", "00100", "00010", "00001", "10001", "01110",
        ]),
        '4' => b([
            "00010", "00110", "01010", "10010", "11111", "00010", "00010",
        ]),
        '5' => b([
            "11111", "10000", "11110", "00001", "00001", "10001", "01110",
        ]),
        '6' => b([
            "00110", "01000", "10000", "11110", "10001", "10001", "01110",
        ]),
        '7' => b([
            "11111", "00001", "00010", "00100", "01000", "01000", "01000",
        ]),
        '8' => b([
            "01110", "10001", "10001", "01110", "10001", "10001", "01110",
        ]),
        '9' => b([
            "01110", "10001", "10001", "01111", "00001", "00010", "01100",
        ]),
        'a' => b([
            "00000", "00000", "01110", "00001", "01111", "10001", "01111",
        ]),
        'b' => b([
            "10000", "10000", "10110", "11001", "10001", "10001", "11110",
        ]),
        'c' => b([
            "00000", "00000", "01110", "10000", "10000", "10001", "01110",
        ]),
        'd' => b([
            "00001", "00001", "01101", "10011", "10001", "10001", "01111",
        ]),
        'e' => b([
            "00000", "00000", "01110", "10001", "11111", "10000", "01110",
        ]),
        'f' => b([
            "00110", "01001", "01000", "11100", "01000", "01000", "01000",
        ]),
        'g' => b([
            "00000", "01111", "10001", "10001", "01111", "00001", "01110",
        ]),
        'h' => b([
            "10000", "10000", "10110", "11001", "10001", "10001", "10001",
        ]),
        'i' => b([
            "00100", "00000", "01100", "00100", "00100", "00100", "01110",
        ]),
        'j' => b([
            "00010", "00000", "00110", "00010", "00010", "10010", "01100",
        ]),
        'k' => b([
            "10000", "10000", "10010", "10100", "11000", "10100", "10010",
        ]),
        'l' => b([
            "01100", "00100", "00100", "00100", "00100", "00100", "01110",
        ]),
        'm' => b([
            "00000", "00000", "11010", "10101", "10101", "10001", "10001",
        ]),
        'n' => b([
            "00000", "00000", "10110", "11001", "10001", "10001", "10001",
        ]),
        'o' => b([
            "00000", "00000", "01110", "10001", "10001", "10001", "01110",
        ]),
        'p' => b([
            "00000", "00000", "11110", "10001", "11110", "10000", "10000",
        ]),
        'q' => b([
            "00000", "00000", "01101", "10011", "01111", "00001", "00001",
        ]),
        'r' => b([
            "00000", "00000", "10110", "11001", "10000", "10000", "10000",
        ]),
        's' => b([
            "00000", "00000", "01110", "10000", "01110", "00001", "11110",
        ]),
        't' => b([
            "01000", "01000", "11100", "01000", "01000", "01001", "00110",
        ]),
        'u' => b([
            "00000", "00000", "10001", "10001", "10001", "10011", "01101",
        ]),
        'v' => b([
            "00000", "00000", "10001", "10001", "10001", "01010", "00100",
        ]),
        'w' => b([
            "00000", "00000", "10001", "10001", "10101", "10101", "01010",
        ]),
        'x' => b([
            "00000", "00000", "10001", "01010", "00100", "01010", "10001",
        ]),
        'y' => b([
            "00000", "00000", "10001", "10001", "01111", "00001", "01110",
        ]),
        'z' => b([
            "00000", "00000", "11111", "00010", "00100", "01000", "11111",
        ]),
        '.' => b([
            "00000", "00000", "00000", "00000", "00000", "01100", "01100",
        ]),
        '-' => b([
            "00000", "00000", "00000", "11111", "00000", "00000", "00000",
        ]),
        '_' => b([
            "00000", "00000", "00000", "00000", "00000", "00000", "11111",
        ]),
        ':' => b([
            "00000", "01100", "01100", "00000", "01100", "01100", "00000",
        ]),
        '/' => b([
            "00000", "00001", "00010", "00100", "01000", "10000", "00000",
        ]),
        '(' => b([
            "00010", "00100", "01000", "01000", "01000", "00100", "00010",
        ]),
        ')' => b([
            "01000", "00100", "00010", "00010", "00010", "00100", "01000",
        ]),
        '+' => b([
            "00000", "00100", "00100", "11111", "00100", "00100", "00000",
        ]),
        '%' => b([
            "11000", "11001", "00010", "00100", "01000", "10011", "00011",
        ]),
        ' ' => [0; 7],
        _ => b([
            "11111", "10001", "10001", "10001", "10001", "10001", "11111",
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_valid_png_with_the_series_in_colour() {
        let chart = Chart {
            title: "training loss".into(),
            x_label: "step".into(),
            series: vec![
                (
                    "web".into(),
                    (0..50).map(|i| (i as f64, 5.0 - i as f64 * 0.05)).collect(),
                ),
                ("textbook".into(), vec![(0.0, 4.0), (49.0, 2.0)]),
            ],
            y_range: None,
        };
        let png = line_chart_png(&chart, 480, 240);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 480);
        // The IDAT inflates to one filter byte and 480 RGB pixels per row.
        let start = png.windows(4).position(|w| w == b"IDAT").unwrap();
        let len = u32::from_be_bytes(png[start - 4..start].try_into().unwrap()) as usize;
        let mut raw = vec![];
        use std::io::Read;
        flate2::read::ZlibDecoder::new(&png[start + 4..start + 4 + len])
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(raw.len(), 240 * (480 * 3 + 1));
        let has = |c: [u8; 3]| {
            raw.chunks(480 * 3 + 1)
                .any(|r| r[1..].chunks(3).any(|p| p == c))
        };
        assert!(has(PALETTE[0]) && has(PALETTE[1]));
    }

    #[test]
    fn tick_labels_stay_short() {
        assert_eq!(label(3.0), "3");
        assert_eq!(label(2.456), "2.46");
        assert_eq!(label(0.25), "0.250");
        assert_eq!(label(0.00003), "3.0e-5");
    }
}
