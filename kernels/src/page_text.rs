//! From a PDF page's characters (or an OCR engine's lines) to clean text: characters grouped
//! into lines, lines put in reading order across columns, running headers, footers and page
//! numbers removed across a document's pages, and lines joined into paragraphs with
//! end-of-line hyphenation repaired.
//!
//! Coordinates are PDF points with the origin at the bottom left, as PDF text layers give them.

use std::collections::HashMap;

/// One character of a text layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Char {
    /// The character.
    pub c: char,
    /// Left, right, bottom, top.
    pub bbox: [f32; 4],
    /// Font size in points.
    pub size: f32,
    /// Inserted by the PDF library (an inferred space or line break), without a box.
    pub generated: bool,
    /// The font maps this glyph to no or a wrong Unicode value.
    pub map_error: bool,
}

/// A line of text, with its box when it came from a text layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The text, without the line break.
    pub text: String,
    /// Left, right, bottom, top; None for OCR lines.
    pub bbox: Option<[f32; 4]>,
    /// Font size in points (0 when unknown).
    pub size: f32,
    /// The line starts a paragraph.
    pub para_start: bool,
}

/// Whether a page's text layer can be used, or why it cannot.
pub fn text_layer_problem(chars: &[Char], min_chars: usize) -> Option<String> {
    let mut n = 0usize;
    let mut bad = 0usize;
    for ch in chars
        .iter()
        .filter(|c| !c.generated && !c.c.is_whitespace())
    {
        n += 1;
        let u = ch.c as u32;
        if ch.map_error
            || ch.c == '\u{FFFD}'
            || (0xE000..=0xF8FF).contains(&u)
            || (ch.c.is_control())
        {
            bad += 1;
        }
    }
    if n < min_chars {
        return Some(if n == 0 {
            "no text layer".into()
        } else {
            format!("text layer has {n} characters")
        });
    }
    if bad * 10 > n {
        return Some(format!(
            "text layer garbled ({bad} of {n} characters have no Unicode mapping)"
        ));
    }
    None
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x3000..=0x303F | 0xFF00..=0xFFEF | 0x20000..=0x2A6DF)
}

/// Groups a page's characters (in content order) into lines.
pub fn lines(chars: &[Char]) -> Vec<Line> {
    let mut out: Vec<Line> = vec![];
    let mut cur = String::new();
    let mut bbox: Option<[f32; 4]> = None;
    let mut sizes = 0.0f32;
    let mut n = 0usize;
    let mut last_right = f32::NEG_INFINITY;
    let mut pending_space = false;
    let flush = |cur: &mut String,
                 bbox: &mut Option<[f32; 4]>,
                 sizes: &mut f32,
                 n: &mut usize,
                 out: &mut Vec<Line>| {
        let t = cur.trim();
        if !t.is_empty() {
            out.push(Line {
                text: t.to_string(),
                bbox: *bbox,
                size: if *n > 0 { *sizes / *n as f32 } else { 0.0 },
                para_start: false,
            });
        }
        cur.clear();
        *bbox = None;
        *sizes = 0.0;
        *n = 0;
    };
    for ch in chars {
        if ch.c == '\n' || ch.c == '\r' {
            flush(&mut cur, &mut bbox, &mut sizes, &mut n, &mut out);
            last_right = f32::NEG_INFINITY;
            pending_space = false;
            continue;
        }
        if ch.c.is_whitespace() {
            pending_space = true;
            continue;
        }
        // PDFium reports a hyphen it takes for end-of-line hyphenation as U+0002.
        let c = if ch.c == '\u{2}' { '-' } else { ch.c };
        let [l, r, b, t] = ch.bbox;
        let size = if ch.size > 0.0 {
            ch.size
        } else {
            (t - b).max(1.0)
        };
        if let Some(bb) = bbox {
            let mid = (b + t) / 2.0;
            let line_mid = (bb[2] + bb[3]) / 2.0;
            let line_h = (bb[3] - bb[2]).max(size * 0.5);
            // A new line: another baseline, a jump back to the left, or a gap wider than any
            // word space (the next column on the same baseline).
            let new_line = (mid - line_mid).abs() > line_h * 0.6
                || l < last_right - size * 1.5
                || l - last_right > size * 1.5;
            if new_line {
                flush(&mut cur, &mut bbox, &mut sizes, &mut n, &mut out);
                pending_space = false;
            } else if !pending_space && l - last_right > size * 0.2 {
                pending_space = true;
            }
        }
        if pending_space && !cur.is_empty() {
            let prev = cur.chars().last().unwrap_or(' ');
            if !(is_cjk(prev) && is_cjk(c)) {
                cur.push(' ');
            }
        }
        pending_space = false;
        cur.push(c);
        bbox = Some(match bbox {
            None => [l, r, b, t],
            Some(bb) => [bb[0].min(l), bb[1].max(r), bb[2].min(b), bb[3].max(t)],
        });
        sizes += size;
        n += 1;
        last_right = r;
    }
    flush(&mut cur, &mut bbox, &mut sizes, &mut n, &mut out);
    out
}

fn median(mut v: Vec<f32>) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Column gutters: x ranges that no column-width line crosses, with text on both sides.
fn gutters(lines: &[Line]) -> Vec<(f32, f32)> {
    let boxes: Vec<[f32; 4]> = lines.iter().filter_map(|l| l.bbox).collect();
    if boxes.len() < 6 {
        return vec![];
    }
    let minx = boxes.iter().map(|b| b[0]).fold(f32::INFINITY, f32::min);
    let maxx = boxes.iter().map(|b| b[1]).fold(f32::NEG_INFINITY, f32::max);
    let width = maxx - minx;
    if width < 50.0 {
        return vec![];
    }
    let narrow: Vec<&[f32; 4]> = boxes
        .iter()
        .filter(|b| b[1] - b[0] < 0.55 * width)
        .collect();
    if narrow.len() < 6 {
        return vec![];
    }
    let bins = width.ceil() as usize + 1;
    let mut cover = vec![0u32; bins];
    for b in &narrow {
        let (s, e) = (
            (b[0] - minx) as usize,
            ((b[1] - minx) as usize).min(bins - 1),
        );
        for c in &mut cover[s..=e] {
            *c += 1;
        }
    }
    let mut out = vec![];
    let lo = (0.15 * width) as usize;
    let hi = (0.85 * width) as usize;
    let mut i = lo;
    while i < hi {
        if cover[i] == 0 {
            let s = i;
            while i < bins && cover[i] == 0 {
                i += 1;
            }
            let (gs, ge) = (minx + s as f32, minx + i as f32);
            let left = narrow.iter().filter(|b| b[1] <= gs + 0.5).count();
            let right = narrow.iter().filter(|b| b[0] >= ge - 0.5).count();
            if ge - gs >= 6.0 && left >= 3 && right >= 3 {
                out.push((gs, ge));
            }
        }
        i += 1;
    }
    out
}

/// Puts a page's lines in reading order: columns left to right between the lines that span
/// them (titles, full-width figures' captions), each column top to bottom; and marks lines
/// that start a paragraph (a vertical gap, an indent, or a column change).
pub fn reading_order(mut lines: Vec<Line>) -> Vec<Line> {
    if lines.iter().any(|l| l.bbox.is_none()) {
        return lines;
    }
    let g = gutters(&lines);
    let column = |b: &[f32; 4]| -> Option<usize> {
        let mut col = 0;
        for (gs, ge) in &g {
            if b[0] < *ge - 0.5 && b[1] > *gs + 0.5 {
                return None;
            }
            if b[0] >= *ge - 0.5 {
                col += 1;
            }
        }
        Some(col)
    };
    let top = |l: &Line| l.bbox.expect("boxed")[3];
    lines.sort_by(|a, b| top(b).total_cmp(&top(a)));
    let mut ordered: Vec<Line> = Vec::with_capacity(lines.len());
    let mut region: Vec<(usize, Line)> = vec![];
    let flush = |region: &mut Vec<(usize, Line)>, ordered: &mut Vec<Line>| {
        // Stable sort keeps the top-to-bottom order inside each column.
        region.sort_by_key(|(c, _)| *c);
        let mut last_col = usize::MAX;
        for (c, mut l) in region.drain(..) {
            if c != last_col {
                l.para_start = true;
                last_col = c;
            }
            ordered.push(l);
        }
    };
    for l in lines {
        match column(&l.bbox.expect("boxed")) {
            Some(c) if !g.is_empty() => region.push((c, l)),
            _ => {
                flush(&mut region, &mut ordered);
                let mut l = l;
                // A line spanning the columns (a title) stands apart from them.
                l.para_start |= !g.is_empty();
                ordered.push(l);
            }
        }
    }
    flush(&mut region, &mut ordered);
    mark_paragraphs(&mut ordered);
    ordered
}

fn mark_paragraphs(lines: &mut [Line]) {
    let h = median(
        lines
            .iter()
            .filter_map(|l| l.bbox.map(|b| b[3] - b[2]))
            .collect(),
    );
    // The usual gap between lines of a paragraph: the median of the positive gaps.
    let gaps: Vec<f32> = lines
        .windows(2)
        .filter_map(|w| Some(w[0].bbox?[2] - w[1].bbox?[3]))
        .filter(|g| *g > 0.0)
        .collect();
    let line_gap = median(gaps);
    let left = median(lines.iter().filter_map(|l| l.bbox.map(|b| b[0])).collect());
    for i in 1..lines.len() {
        let (Some(p), Some(c)) = (lines[i - 1].bbox, lines[i].bbox) else {
            continue;
        };
        let gap = p[2] - c[3];
        let size_change = (lines[i].size - lines[i - 1].size).abs() > 1.0;
        let indent = c[0] - p[0] > h.max(4.0) && (p[0] - left).abs() < h;
        if gap > line_gap + 0.4 * h || gap < -2.0 * h || size_change || indent {
            lines[i].para_start = true;
        }
    }
}

/// Lines from OCR output: blank lines start paragraphs.
pub fn ocr_lines(text: &str) -> Vec<Line> {
    let mut out = vec![];
    let mut para = true;
    for raw in text.lines() {
        let t = collapse_cjk_spaces(raw.trim());
        if t.is_empty() {
            para = true;
            continue;
        }
        out.push(Line {
            text: t,
            bbox: None,
            size: 0.0,
            para_start: para,
        });
        para = false;
    }
    out
}

/// Removes the spaces OCR puts between Chinese characters.
pub fn collapse_cjk_spaces(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let prev = out.chars().last();
            let next = chars[i + 1..].iter().find(|c| **c != ' ').copied();
            if let (Some(p), Some(n)) = (prev, next) {
                if is_cjk(p) && is_cjk(n) {
                    continue;
                }
            }
            if prev == Some(' ') {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// A page's lines, for removing what repeats across a document's pages.
#[derive(Debug, Clone)]
pub struct PageLines {
    /// The lines in reading order.
    pub lines: Vec<Line>,
    /// Page height in points (for text-layer lines).
    pub height: f32,
}

fn is_page_number(s: &str) -> bool {
    let t = s.trim().to_lowercase();
    let t =
        t.trim_matches(|c: char| c == '-' || c == '–' || c == '—' || c == '|' || c.is_whitespace());
    if t.is_empty() {
        return false;
    }
    let t = t.strip_prefix("page").map(str::trim).unwrap_or(t);
    let t = t
        .strip_prefix('第')
        .and_then(|r| r.strip_suffix('页'))
        .map(str::trim)
        .unwrap_or(t);
    let parts: Vec<&str> = t
        .split(|c: char| c == '/' || c.is_whitespace())
        .filter(|p| !p.is_empty() && *p != "of")
        .collect();
    !parts.is_empty()
        && parts.len() <= 2
        && parts.iter().all(|p| {
            p.chars().all(|c| c.is_ascii_digit())
                || (p.len() <= 6 && p.chars().all(|c| "ivxlc".contains(c)))
        })
}

fn shape(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// Indices of the lines that can be running headers or footers: the first two and last two
/// lines of a page, within its top or bottom 12% when boxes are known.
fn margin_lines(p: &PageLines) -> Vec<usize> {
    let n = p.lines.len();
    let mut idx: Vec<usize> = vec![];
    // Lines in the visual order (by top) for text-layer pages; OCR lines are already visual.
    let mut order: Vec<usize> = (0..n).collect();
    if p.lines.iter().all(|l| l.bbox.is_some()) {
        order.sort_by(|&a, &b| {
            p.lines[b].bbox.expect("boxed")[3].total_cmp(&p.lines[a].bbox.expect("boxed")[3])
        });
    }
    for &i in order.iter().take(2).chain(order.iter().rev().take(2)) {
        let in_margin = match p.lines[i].bbox {
            Some(b) => b[2] > p.height * 0.88 || b[3] < p.height * 0.12,
            None => true,
        };
        if in_margin && !idx.contains(&i) {
            idx.push(i);
        }
    }
    idx
}

/// Removes page numbers and running headers and footers: margin lines that are page numbers,
/// or whose shape (digits folded) repeats on at least half the pages (and at least 3).
/// Returns how many lines were removed.
pub fn remove_running_lines(pages: &mut [PageLines]) -> usize {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let margins: Vec<Vec<usize>> = pages.iter().map(margin_lines).collect();
    for (p, idx) in pages.iter().zip(&margins) {
        let mut seen = std::collections::HashSet::new();
        for &i in idx {
            let s = shape(&p.lines[i].text);
            if seen.insert(s.clone()) {
                *counts.entry(s).or_default() += 1;
            }
        }
    }
    // On short documents a line must repeat on every page; on longer ones on half of them.
    let need = if pages.len() <= 3 {
        pages.len()
    } else {
        pages.len().div_ceil(2).max(3)
    };
    let mut removed = 0;
    for (p, idx) in pages.iter_mut().zip(margins) {
        let mut drop: Vec<usize> = idx
            .into_iter()
            .filter(|&i| {
                let t = &p.lines[i].text;
                is_page_number(t) || counts.get(&shape(t)).copied().unwrap_or(0) >= need
            })
            .collect();
        drop.sort_unstable();
        for i in drop.into_iter().rev() {
            let l = p.lines.remove(i);
            if l.para_start && i < p.lines.len() {
                p.lines[i].para_start = true;
            }
            removed += 1;
        }
    }
    removed
}

/// Joins lines into paragraphs (blank line between them): lines of a paragraph are joined by
/// a space (none between Chinese characters), and a word broken by a hyphen at a line end is
/// joined again.
pub fn to_text(lines: &[Line]) -> String {
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.text.trim();
        if t.is_empty() {
            continue;
        }
        if i > 0 && !out.is_empty() {
            if l.para_start {
                out.push_str("\n\n");
            } else {
                let prev = out.chars().last().unwrap_or(' ');
                let first = t.chars().next().unwrap_or(' ');
                let before_hyphen = out.chars().rev().nth(1).unwrap_or(' ');
                if (prev == '-' || prev == '\u{00AD}')
                    && before_hyphen.is_alphabetic()
                    && first.is_lowercase()
                {
                    out.pop();
                } else if !(is_cjk(prev) && is_cjk(first)) {
                    out.push(' ');
                }
            }
        }
        out.push_str(t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Characters for `text` laid out from (x, y) at 10 pt, 5 pt per character.
    fn chars(text: &str, x: f32, y: f32) -> Vec<Char> {
        let mut v = vec![];
        for (i, c) in text.chars().enumerate() {
            let l = x + 5.0 * i as f32;
            v.push(Char {
                c,
                bbox: [l, l + 4.5, y, y + 7.0],
                size: 10.0,
                generated: false,
                map_error: false,
            });
        }
        v.push(Char {
            c: '\n',
            bbox: [0.0; 4],
            size: 0.0,
            generated: true,
            map_error: false,
        });
        v
    }

    fn page(lines_at: &[(&str, f32, f32)]) -> Vec<Line> {
        let cs: Vec<Char> = lines_at
            .iter()
            .flat_map(|(t, x, y)| chars(t, *x, *y))
            .collect();
        reading_order(lines(&cs))
    }

    #[test]
    fn two_columns_read_column_by_column_under_a_title() {
        let mut spec = vec![("A Title Spanning Both Columns Of The Page", 50.0, 700.0)];
        let left = ["left one", "left two", "left three", "left four"];
        let right = ["right one", "right two", "right three", "right four"];
        // Content order interleaves the columns row by row, as some generators write them.
        for i in 0..4 {
            spec.push((left[i], 50.0, 680.0 - 12.0 * i as f32));
            spec.push((right[i], 250.0, 680.0 - 12.0 * i as f32));
        }
        let got: Vec<String> = page(&spec).into_iter().map(|l| l.text).collect();
        let mut want = vec!["A Title Spanning Both Columns Of The Page".to_string()];
        want.extend(left.iter().map(|s| s.to_string()));
        want.extend(right.iter().map(|s| s.to_string()));
        assert_eq!(got, want);
    }

    #[test]
    fn hyphenation_repaired_and_paragraphs_kept() {
        let ls = page(&[
            ("The treat-", 50.0, 700.0),
            ("ment was effective in well-", 50.0, 688.0),
            ("Known cases.", 50.0, 676.0),
            ("A new paragraph.", 50.0, 650.0),
        ]);
        assert_eq!(
            to_text(&ls),
            "The treatment was effective in well- Known cases.\n\nA new paragraph."
        );
    }

    #[test]
    fn spaces_from_gaps_and_none_between_chinese() {
        let mut cs = chars("Blood", 50.0, 700.0);
        cs.pop();
        cs.extend(chars("pressure", 80.0, 700.0));
        assert_eq!(lines(&cs)[0].text, "Blood pressure");
        let mut zh = chars("高血压", 50.0, 600.0);
        zh.pop();
        zh.extend(chars("患者", 70.0, 600.0));
        assert_eq!(lines(&zh)[0].text, "高血压患者");
        assert_eq!(collapse_cjk_spaces("高 血 压 is 病"), "高血压 is 病");
    }

    #[test]
    fn running_headers_footers_and_page_numbers_removed() {
        let mut pages: Vec<PageLines> = (1..=4)
            .map(|i| PageLines {
                lines: page(&[
                    ("Clinical Guideline 2024 Edition", 50.0, 770.0),
                    (
                        &format!("Body text of page {i} which differs."),
                        50.0,
                        600.0,
                    ),
                    (&format!("Page {i} of 4"), 280.0, 30.0),
                ]),
                height: 792.0,
            })
            .collect();
        assert_eq!(remove_running_lines(&mut pages), 8);
        for (i, p) in pages.iter().enumerate() {
            assert_eq!(
                to_text(&p.lines),
                format!("Body text of page {} which differs.", i + 1)
            );
        }
        assert!(is_page_number("- 12 -"));
        assert!(is_page_number("第 3 页"));
        assert!(is_page_number("xiv"));
        assert!(!is_page_number("Chapter 3"));
    }

    #[test]
    fn garbled_and_missing_text_layers() {
        assert_eq!(
            text_layer_problem(&[], 10).as_deref(),
            Some("no text layer")
        );
        let ok = chars("Aspirin reduces fever and pain.", 0.0, 0.0);
        assert_eq!(text_layer_problem(&ok, 10), None);
        let bad: Vec<Char> = ok
            .iter()
            .map(|c| Char {
                map_error: true,
                ..*c
            })
            .collect();
        assert!(text_layer_problem(&bad, 10)
            .unwrap()
            .starts_with("text layer garbled"));
    }
}
