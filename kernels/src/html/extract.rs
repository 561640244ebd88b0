//! Main-text extraction: a page's article without its navigation, menus, banners, sidebars
//! and footers, with its title, canonical URL, language attribute and publication date.
//!
//! Three stages:
//!
//! 1. **Pruning.** Elements that never hold main text (`script`, `style`, `nav`, `footer`,
//!    `aside`, `form`, `iframe`, ...) are dropped, and so are elements whose `class`, `id` or
//!    `role` marks them as navigation, menus, breadcrumbs, cookie banners, share bars,
//!    comments, advertising or related links, unless they hold most of the page's prose.
//! 2. **Blocks.** The remaining tree is cut into blocks at block-level elements (`p`, `li`,
//!    `h1`–`h6`, `pre`, `blockquote`, table rows, the text of `div`s, ...). Each block is
//!    classified from its length, link density, stopword density and punctuation, then
//!    re-classified from its neighbours, as jusText does: short blocks between good ones are
//!    kept, headings just before good text are kept.
//! 3. **Region.** Every element scores the good text it contains minus half its boilerplate
//!    text; the best-scoring element is the main content region, and the good blocks inside it
//!    are the text, in document order.
//!
//! Lengths count characters, with a Han character weighing three (a Chinese sentence says in
//! 30 characters what an English one says in about 90); stopword density counts English
//! function words per word, and Chinese function characters per Han character.

use super::dom::{Data, Dom};
use std::collections::HashSet;
use std::sync::OnceLock;

/// What [`extract`] finds in a page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// `og:title`, else `<title>` (without the site name when the first `h1` shows which part
    /// is the page's), else the first `h1`.
    pub title: Option<String>,
    /// `<link rel="canonical">`, else `og:url`.
    pub canonical_url: Option<String>,
    /// The `lang` attribute of `<html>`, else a `content-language` meta tag.
    pub lang: Option<String>,
    /// The publication date from standard meta tags (`article:published_time`,
    /// `datePublished`, Dublin Core, `citation_publication_date`, ...), as written there.
    pub date: Option<String>,
    /// The main text: blocks in document order, headings, list items and table rows on lines
    /// of their own, paragraphs separated by blank lines.
    pub text: String,
}

/// Elements that never hold main text.
const DROP_TAGS: &[&str] = &[
    "script", "style", "noscript", "nav", "footer", "aside", "iframe", "svg", "canvas", "template",
    "button", "select", "input", "textarea", "object", "embed", "video", "audio", "map", "dialog",
    "menu", "head", "link", "meta", "label", "option",
];

/// ARIA roles of boilerplate.
const DROP_ROLES: &[&str] = &[
    "navigation",
    "banner",
    "contentinfo",
    "complementary",
    "menu",
    "menubar",
    "search",
    "dialog",
    "alertdialog",
    "toolbar",
    "tablist",
];

/// `class`/`id` tokens (split on non-alphanumerics) that mark boilerplate.
const DROP_TOKENS: &[&str] = &[
    "nav",
    "navbar",
    "navigation",
    "menu",
    "menus",
    "submenu",
    "megamenu",
    "breadcrumb",
    "breadcrumbs",
    "crumbs",
    "cookie",
    "cookies",
    "consent",
    "gdpr",
    "share",
    "sharing",
    "social",
    "comment",
    "comments",
    "disqus",
    "ad",
    "ads",
    "advert",
    "adverts",
    "advertisement",
    "adsbygoogle",
    "sponsor",
    "sponsored",
    "promo",
    "adv",
    "guanggao",
    "related",
    "recommended",
    "sidebar",
    "widget",
    "widgets",
    "footer",
    "masthead",
    "topbar",
    "popup",
    "modal",
    "newsletter",
    "subscribe",
    "signup",
    "login",
    "pagination",
    "pager",
    "toolbar",
    "skip",
    "hidden",
    "sr",
    "screenreader",
    "visually",
    "print",
    "tags",
    "tagcloud",
    "byline",
    "toc",
];

/// Substrings of a `class`/`id` that mark boilerplate wherever they occur.
const DROP_SUBSTRINGS: &[&str] = &[
    "breadcrumb",
    "cookie",
    "consent",
    "navbar",
    "navigation",
    "sidebar",
    "social",
    "sharing",
    "share-",
    "-share",
    "related",
    "newsletter",
    "advert",
    "comment",
    "site-header",
    "global-header",
];

/// Elements that start and end a block of text.
const BLOCK_TAGS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "center",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hgroup",
    "hr",
    "html",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "thead",
    "tfoot",
    "tr",
    "ul",
    "caption",
    "legend",
];

/// English function words.
const EN_STOPWORDS: &[&str] = &[
    "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any",
    "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both",
    "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "even",
    "few", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers",
    "him", "his", "how", "however", "i", "if", "in", "into", "is", "it", "its", "itself", "just",
    "less", "may", "me", "might", "more", "most", "much", "must", "my", "no", "nor", "not", "now",
    "of", "off", "often", "on", "once", "one", "only", "or", "other", "our", "out", "over", "own",
    "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "them", "then",
    "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up",
    "us", "usually", "very", "was", "we", "were", "what", "when", "where", "whether", "which",
    "while", "who", "whom", "why", "will", "with", "within", "without", "would", "you", "your",
    "yours", "many", "every", "will", "since", "than", "although", "though", "because", "per",
    "via", "people", "two", "three", "first", "like", "well", "make", "makes", "made", "get",
    "gets", "take", "takes", "see", "way", "time",
];

/// Chinese function characters (particles, prepositions, conjunctions, copulas, pronouns).
const ZH_STOPCHARS: &str =
    "的了是在和与及或也都就不这那其为对从以而被把将于之中有等可能会要所如若但并还又因此则即该个些着过给让向由到上下使你我他她它们应时可已很更最";

/// Minimum length (weighted characters) of a block that can be good on its own.
const LENGTH_LOW: f64 = 70.0;
/// Length from which a block with enough stopwords is good.
const LENGTH_HIGH: f64 = 200.0;
/// Link density above which a block is boilerplate.
const MAX_LINK_DENSITY: f64 = 0.2;
/// English stopword density thresholds (near-good, good).
const EN_STOP_LOW: f64 = 0.22;
const EN_STOP_HIGH: f64 = 0.28;
/// Chinese function-character density thresholds (near-good, good).
const ZH_STOP_LOW: f64 = 0.08;
const ZH_STOP_HIGH: f64 = 0.11;
/// Headings within this many weighted characters before good text are kept.
const MAX_HEADING_DISTANCE: f64 = 200.0;
/// Weight of boilerplate text against good text when choosing the main region.
const BAD_WEIGHT: f64 = 0.5;

fn en_stopwords() -> &'static HashSet<&'static str> {
    static S: OnceLock<HashSet<&'static str>> = OnceLock::new();
    S.get_or_init(|| EN_STOPWORDS.iter().copied().collect())
}

fn zh_stopchars() -> &'static HashSet<char> {
    static S: OnceLock<HashSet<char>> = OnceLock::new();
    S.get_or_init(|| ZH_STOPCHARS.chars().collect())
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0xF900..=0xFAFF
        | 0x3040..=0x30FF | 0x3000..=0x303F | 0xFF00..=0xFFEF | 0xAC00..=0xD7AF)
}

use crate::langid::is_han;

/// Collapses whitespace runs (and no-break and zero-width spaces) to one space, drops the
/// space between two CJK characters (a line break in the source of a Chinese paragraph), and
/// trims.
pub fn collapse_ws(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending = false;
    for c in s.chars() {
        if matches!(
            c,
            '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{FEFF}' | '\u{AD}'
        ) {
            continue;
        }
        if c.is_whitespace() {
            pending = true;
            continue;
        }
        if pending && !out.is_empty() {
            let prev = out.chars().next_back().unwrap_or(' ');
            if !(is_cjk(prev) && is_cjk(c)) {
                out.push(' ');
            }
        }
        pending = false;
        out.push(c);
    }
    out
}

/// The kind of a block, from the innermost block-level element around its text.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Paragraph,
    Heading(u8),
    ListItem,
    Row,
    Pre,
}

/// The class of a block.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Class {
    Good,
    NearGood,
    Short,
    Bad,
}

#[derive(Debug, Clone)]
struct Block {
    text: String,
    kind: Kind,
    /// The innermost block-level element around the text.
    node: usize,
    /// The enclosing list or table, for joining items with single line breaks.
    group: Option<usize>,
    /// Weighted length.
    len: f64,
    link_density: f64,
    class: Class,
    /// The block was bad before context (link-dense, copyright), so context cannot save it.
    hard_bad: bool,
}

fn class_tokens(dom: &Dom, i: usize) -> Vec<String> {
    let mut v = Vec::new();
    for name in ["class", "id"] {
        if let Some(val) = dom.attr(i, name) {
            v.push(val.to_ascii_lowercase());
        }
    }
    v
}

fn marked_as_boilerplate(dom: &Dom, i: usize) -> bool {
    if let Some(role) = dom.attr(i, "role") {
        let role = role.trim().to_ascii_lowercase();
        if DROP_ROLES.contains(&role.as_str()) {
            return true;
        }
    }
    if dom.attr(i, "hidden").is_some()
        || dom
            .attr(i, "aria-hidden")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return true;
    }
    if let Some(style) = dom.attr(i, "style") {
        let s: String = style
            .to_ascii_lowercase()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if s.contains("display:none") || s.contains("visibility:hidden") {
            return true;
        }
    }
    for val in class_tokens(dom, i) {
        if DROP_SUBSTRINGS.iter().any(|s| val.contains(s)) {
            return true;
        }
        if val
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|t| DROP_TOKENS.contains(&t))
        {
            return true;
        }
    }
    false
}

/// Non-whitespace characters of text in each subtree, and of those inside links.
fn text_sizes(dom: &Dom) -> (Vec<usize>, Vec<usize>) {
    let n = dom.nodes.len();
    let mut text = vec![0usize; n];
    let mut link = vec![0usize; n];
    for i in (0..n).rev() {
        if let Data::Text(t) = &dom.nodes[i].data {
            text[i] = t.chars().filter(|c| !c.is_whitespace()).count();
        }
        if dom.tag(i) == Some("a") {
            link[i] = text[i];
        }
        if let Some(p) = dom.nodes[i].parent {
            text[p] += text[i];
            link[p] += link[i];
        }
    }
    (text, link)
}

/// Which nodes are pruned (the root of each pruned subtree is marked).
fn prune(dom: &Dom) -> Vec<bool> {
    let (text, link) = text_sizes(dom);
    let prose = |i: usize| text[i].saturating_sub(link[i]);
    let body = (0..dom.nodes.len())
        .find(|&i| dom.tag(i) == Some("body"))
        .unwrap_or(0);
    let page_prose = prose(body).max(1);
    // Holds at least three blocks of text (paragraphs, headings, list items, ...).
    let blocky = |i: usize| {
        (i + 1..dom.end[i])
            .filter(|&j| {
                matches!(
                    dom.tag(j),
                    Some(
                        "p" | "h1"
                            | "h2"
                            | "h3"
                            | "h4"
                            | "h5"
                            | "h6"
                            | "li"
                            | "pre"
                            | "blockquote"
                            | "td"
                    )
                ) && text[j] > 0
            })
            .nth(2)
            .is_some()
    };
    let mut removed = vec![false; dom.nodes.len()];
    let mut i = 0;
    while i < dom.nodes.len() {
        let Some(tag) = dom.tag(i) else {
            i += 1;
            continue;
        };
        let in_article = || {
            dom.ancestors(i)
                .any(|a| matches!(dom.tag(a), Some("article" | "main")))
        };
        let drop = match tag {
            "html" | "body" | "main" | "article" => false,
            // A page header goes, an article's header (its title and byline) stays.
            "header" => !in_article(),
            // Some sites wrap the whole page in one form.
            "form" => prose(i) * 2 < page_prose,
            t if DROP_TAGS.contains(&t) => true,
            // A marked element that holds most of the page's prose is a layout wrapper
            // (`class="page has-sidebar"`), not boilerplate.
            _ => marked_as_boilerplate(dom, i) && !(prose(i) * 2 >= page_prose && blocky(i)),
        };
        if drop {
            removed[i] = true;
            i = dom.end[i];
        } else {
            i += 1;
        }
    }
    removed
}

/// Builds the blocks of the pruned tree.
fn blocks(dom: &Dom, removed: &[bool]) -> Vec<Block> {
    struct Acc {
        buf: String,
        link_chars: usize,
        chars: usize,
    }
    let mut out: Vec<Block> = Vec::new();
    let mut acc = Acc {
        buf: String::new(),
        link_chars: 0,
        chars: 0,
    };
    // Open block-level elements, innermost last.
    let mut open: Vec<usize> = Vec::new();
    let mut in_link = 0usize;
    let mut in_pre = 0usize;
    let flush = |acc: &mut Acc, open: &[usize], out: &mut Vec<Block>| {
        let raw = std::mem::take(&mut acc.buf);
        let (link_chars, chars) = (acc.link_chars, acc.chars);
        acc.link_chars = 0;
        acc.chars = 0;
        let Some(&node) = open.last() else { return };
        let mut kind = Kind::Paragraph;
        let mut group = None;
        for &o in open.iter().rev() {
            match dom.tag(o) {
                Some("pre") => {
                    kind = Kind::Pre;
                    break;
                }
                Some("li" | "dd" | "dt") => {
                    kind = Kind::ListItem;
                    group = dom.nodes[o].parent;
                    break;
                }
                Some("tr") => {
                    kind = Kind::Row;
                    group = dom.ancestors(o).find(|&a| dom.tag(a) == Some("table"));
                    break;
                }
                Some(t @ ("h1" | "h2" | "h3" | "h4" | "h5" | "h6")) => {
                    kind = Kind::Heading(t.as_bytes()[1] - b'0');
                    break;
                }
                Some("p" | "blockquote" | "div" | "section" | "article" | "main" | "body") => break,
                _ => {}
            }
        }
        let text = if kind == Kind::Pre {
            raw.trim_matches('\n').trim_end().to_string()
        } else {
            raw.split('\n')
                .map(collapse_ws)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let text = text.trim_start_matches(" | ").to_string();
        if text.chars().all(|c| !c.is_alphanumeric()) {
            return;
        }
        let len = weighted_len(&text);
        out.push(Block {
            text,
            kind,
            node,
            group,
            len,
            link_density: if chars == 0 {
                0.0
            } else {
                link_chars as f64 / chars as f64
            },
            class: Class::Bad,
            hard_bad: false,
        });
    };
    // An explicit stack of (node, entering?) events.
    let mut stack: Vec<(usize, bool)> = vec![(0, true)];
    while let Some((i, enter)) = stack.pop() {
        let tag = dom.tag(i);
        if !enter {
            match tag {
                Some("a") => in_link -= 1,
                Some("pre") => in_pre -= 1,
                _ => {}
            }
            if tag.is_some_and(|t| BLOCK_TAGS.contains(&t)) {
                flush(&mut acc, &open, &mut out);
                open.pop();
            }
            continue;
        }
        if removed[i] {
            continue;
        }
        match &dom.nodes[i].data {
            Data::Text(t) => {
                let n = t.chars().filter(|c| !c.is_whitespace()).count();
                acc.chars += n;
                if in_link > 0 {
                    acc.link_chars += n;
                }
                if in_pre > 0 {
                    acc.buf.push_str(t);
                } else {
                    // Line breaks in the source are spaces; `<br>` makes real ones.
                    acc.buf
                        .extend(t.chars().map(|c| if c == '\n' { ' ' } else { c }));
                }
                continue;
            }
            Data::Document => {}
            Data::Element { tag, .. } => {
                match tag.as_str() {
                    "br" => acc.buf.push('\n'),
                    "a" => in_link += 1,
                    "pre" => in_pre += 1,
                    "td" | "th" if !acc.buf.trim().is_empty() => acc.buf.push_str(" | "),
                    "img" => {
                        continue;
                    }
                    _ => {}
                }
                if BLOCK_TAGS.contains(&tag.as_str()) {
                    flush(&mut acc, &open, &mut out);
                    open.push(i);
                }
                if tag == "br" {
                    continue;
                }
                stack.push((i, false));
            }
        }
        for &c in dom.nodes[i].children.iter().rev() {
            stack.push((c, true));
        }
    }
    flush(&mut acc, &open, &mut out);
    out
}

/// Length with Han characters weighing three and whitespace not counted.
fn weighted_len(text: &str) -> f64 {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| if is_han(c) { 3.0 } else { 1.0 })
        .sum()
}

/// Stopword density, and whether the text is mostly Chinese.
fn stopword_density(text: &str) -> (f64, bool) {
    let mut han = 0usize;
    let mut han_stop = 0usize;
    for c in text.chars().filter(|&c| is_han(c)) {
        han += 1;
        if zh_stopchars().contains(&c) {
            han_stop += 1;
        }
    }
    let mut words = 0usize;
    let mut word_stop = 0usize;
    let lower = text.to_lowercase();
    for w in lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty() && w.chars().any(|c| c.is_ascii_alphabetic()))
    {
        words += 1;
        if en_stopwords().contains(w) {
            word_stop += 1;
        }
    }
    if han > words {
        (han_stop as f64 / han as f64, true)
    } else if words > 0 {
        (word_stop as f64 / words as f64, false)
    } else {
        (0.0, false)
    }
}

fn has_sentence_punctuation(text: &str) -> bool {
    text.chars().any(|c| {
        matches!(
            c,
            '.' | ',' | ';' | ':' | '!' | '?' | '。' | '，' | '；' | '：' | '！' | '？' | '、'
        )
    })
}

/// Text that is boilerplate whatever its length: copyright lines and cookie notices.
fn boilerplate_text(text: &str) -> bool {
    let lower = text.to_lowercase();
    lower.contains('©')
        || lower.contains("all rights reserved")
        || lower.contains("版权所有")
        || (lower.contains("cookie") && text.len() < 600)
}

/// Context-free classification (jusText's first stage, with punctuation).
fn classify(b: &mut Block) {
    let (density, chinese) = stopword_density(&b.text);
    let (low, high) = if chinese {
        (ZH_STOP_LOW, ZH_STOP_HIGH)
    } else {
        (EN_STOP_LOW, EN_STOP_HIGH)
    };
    b.class = if b.link_density > MAX_LINK_DENSITY || boilerplate_text(&b.text) {
        b.hard_bad = true;
        Class::Bad
    } else if b.len < LENGTH_LOW {
        if b.link_density > 0.0 {
            Class::Bad
        } else {
            Class::Short
        }
    } else if density >= high {
        if b.len > LENGTH_HIGH && has_sentence_punctuation(&b.text) {
            Class::Good
        } else {
            Class::NearGood
        }
    } else if density >= low {
        Class::NearGood
    } else {
        Class::Bad
    };
}

/// The class of the nearest block before or after (`forward`) block `i` that is not short
/// (nor near-good when `skip_neargood`); None past either end of the page.
fn neighbour(classes: &[Class], i: usize, forward: bool, skip_neargood: bool) -> Option<Class> {
    let mut j = i;
    loop {
        if forward {
            j += 1;
            if j >= classes.len() {
                return None;
            }
        } else {
            if j == 0 {
                return None;
            }
            j -= 1;
        }
        match classes[j] {
            Class::Short => continue,
            Class::NearGood if skip_neargood => continue,
            c => return Some(c),
        }
    }
}

/// jusText's context stage: short and near-good blocks take the class of their surroundings;
/// headings just before good text are kept.
fn reclassify(blocks: &mut [Block]) {
    let classes: Vec<Class> = blocks.iter().map(|b| b.class).collect();
    let mut after_short = classes.clone();
    for (i, c) in classes.iter().enumerate() {
        if *c != Class::Short {
            continue;
        }
        // The ends of the page take the class of the other side.
        let prev = neighbour(&classes, i, false, true);
        let next = neighbour(&classes, i, true, true);
        let (prev, next) = (prev.or(next), next.or(prev));
        after_short[i] = match (prev, next) {
            (Some(Class::Good), Some(Class::Good)) => Class::Good,
            (Some(Class::Bad), Some(Class::Bad)) => Class::Bad,
            _ => {
                let near = Some(Class::NearGood);
                if neighbour(&classes, i, false, false) == near
                    || neighbour(&classes, i, true, false) == near
                {
                    Class::Good
                } else {
                    Class::Bad
                }
            }
        };
    }
    let mut fin = after_short.clone();
    for (i, c) in after_short.iter().enumerate() {
        if *c != Class::NearGood {
            continue;
        }
        // A near-good block goes only between boilerplate; the ends of the page are neutral,
        // so that a page of short paragraphs keeps them.
        let prev = neighbour(&after_short, i, false, true);
        let next = neighbour(&after_short, i, true, true);
        let bad_sides = [prev, next]
            .iter()
            .filter(|c| **c == Some(Class::Bad))
            .count();
        let sides = [prev, next].iter().filter(|c| c.is_some()).count();
        fin[i] = if sides > 0 && bad_sides == sides {
            Class::Bad
        } else {
            Class::Good
        };
    }
    // Headings: kept when good text follows within a short distance.
    for i in 0..blocks.len() {
        if !matches!(blocks[i].kind, Kind::Heading(_))
            || blocks[i].hard_bad
            || fin[i] == Class::Good
        {
            continue;
        }
        let mut dist = 0.0;
        for j in i + 1..blocks.len() {
            if fin[j] == Class::Good {
                fin[i] = Class::Good;
                break;
            }
            dist += blocks[j].len;
            if dist > MAX_HEADING_DISTANCE {
                break;
            }
        }
    }
    for (b, c) in blocks.iter_mut().zip(fin) {
        b.class = c;
    }
}

/// The element whose subtree best holds the good blocks: most good text, least boilerplate.
fn main_region(dom: &Dom, blocks: &[Block]) -> Option<usize> {
    let mut score = vec![0.0f64; dom.nodes.len()];
    let mut any_good = false;
    for b in blocks {
        let w = match b.class {
            Class::Good => {
                any_good = true;
                b.len
            }
            Class::Bad => -BAD_WEIGHT * b.len,
            _ => 0.0,
        };
        score[b.node] += w;
        for a in dom.ancestors(b.node) {
            score[a] += w;
        }
    }
    if !any_good {
        return None;
    }
    // The best score; among equals the deepest element (the latest in pre-order).
    let mut best: Option<usize> = None;
    for i in 0..dom.nodes.len() {
        if dom.tag(i).is_none() {
            continue;
        }
        match best {
            Some(b) if score[i] < score[b] => {}
            _ => best = Some(i),
        }
    }
    best
}

fn meta_content(dom: &Dom, keys: &[&str]) -> Option<String> {
    for key in keys {
        for i in 0..dom.nodes.len() {
            if dom.tag(i) != Some("meta") {
                continue;
            }
            let matches = ["property", "name", "itemprop", "http-equiv"]
                .iter()
                .filter_map(|a| dom.attr(i, a))
                .any(|v| v.trim().eq_ignore_ascii_case(key));
            if matches {
                if let Some(c) = dom.attr(i, "content").map(collapse_ws) {
                    if !c.is_empty() {
                        return Some(c);
                    }
                }
            }
        }
    }
    None
}

fn clean_title(title: &str, h1: Option<&str>) -> String {
    if let Some(h1) = h1 {
        if title != h1 && title.contains(h1) {
            let parts: Vec<&str> = title
                .split(['|', '_', '–', '—', '·', '»', '-', '｜'])
                .map(str::trim)
                .collect();
            if parts.contains(&h1) {
                return h1.to_string();
            }
        }
    }
    title.to_string()
}

/// Extracts the main text and metadata of a page (already decoded to text).
pub fn extract(html: &str) -> Page {
    let dom = Dom::parse(html);
    let first = |tag: &str| (0..dom.nodes.len()).find(|&i| dom.tag(i) == Some(tag));
    let h1 = first("h1")
        .map(|i| dom.text_of(i))
        .filter(|t| !t.is_empty());
    let title_tag = first("title")
        .map(|i| dom.text_of(i))
        .filter(|t| !t.is_empty());
    let title = meta_content(&dom, &["og:title", "twitter:title"])
        .or_else(|| title_tag.map(|t| clean_title(&t, h1.as_deref())))
        .or_else(|| h1.clone());
    let canonical = (0..dom.nodes.len())
        .filter(|&i| dom.tag(i) == Some("link"))
        .find(|&i| {
            dom.attr(i, "rel").is_some_and(|r| {
                r.split_whitespace()
                    .any(|t| t.eq_ignore_ascii_case("canonical"))
            })
        })
        .and_then(|i| dom.attr(i, "href"))
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| meta_content(&dom, &["og:url"]));
    let lang = first("html")
        .and_then(|i| dom.attr(i, "lang").or_else(|| dom.attr(i, "xml:lang")))
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .or_else(|| meta_content(&dom, &["content-language", "language", "og:locale"]));
    let date = meta_content(
        &dom,
        &[
            "article:published_time",
            "datePublished",
            "og:published_time",
            "published_time",
            "citation_publication_date",
            "citation_date",
            "dc.date.issued",
            "dcterms.issued",
            "dc.date",
            "dcterms.date",
            "date",
            "pubdate",
            "publishdate",
            "publish-date",
            "publication_date",
            "sailthru.date",
        ],
    );
    let removed = prune(&dom);
    let mut blocks = blocks(&dom, &removed);
    for b in blocks.iter_mut() {
        classify(b);
    }
    reclassify(&mut blocks);
    let text = match main_region(&dom, &blocks) {
        None => String::new(),
        Some(region) => {
            let inside = |n: usize| n >= region && n < dom.end[region];
            let mut kept: Vec<&Block> = blocks
                .iter()
                .filter(|b| b.class == Class::Good && inside(b.node))
                .collect();
            // The page's h1 just outside the region (a title bar above the article).
            if let Some(first_kept) = kept.first().map(|b| b.node) {
                if let Some(h) = blocks.iter().find(|b| {
                    b.kind == Kind::Heading(1)
                        && !b.hard_bad
                        && !inside(b.node)
                        && b.node < first_kept
                }) {
                    kept.insert(0, h);
                }
            }
            join(&kept)
        }
    };
    Page {
        title,
        canonical_url: canonical,
        lang,
        date,
        text,
    }
}

fn join(blocks: &[&Block]) -> String {
    let mut s = String::new();
    let mut prev: Option<&Block> = None;
    for b in blocks {
        if let Some(p) = prev {
            let same_group = p.group.is_some()
                && p.group == b.group
                && matches!(b.kind, Kind::ListItem | Kind::Row);
            s.push_str(if same_group { "\n" } else { "\n\n" });
        }
        s.push_str(&b.text);
        prev = Some(b);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_is_collapsed_but_not_between_han() {
        assert_eq!(collapse_ws("  a \n\t b\u{a0}c  "), "a b c");
        assert_eq!(
            collapse_ws("高血压\n    患者 need care"),
            "高血压患者 need care"
        );
    }

    #[test]
    fn titles_canonical_lang_and_date() {
        let p = extract(
            r#"<html lang="en-GB"><head><title>Asthma in children | Example Health</title>
            <link rel="canonical" href="https://health.example/asthma">
            <meta property="article:published_time" content="2024-03-05T08:00:00Z"></head>
            <body><h1>Asthma in children</h1></body></html>"#,
        );
        assert_eq!(p.title.as_deref(), Some("Asthma in children"));
        assert_eq!(
            p.canonical_url.as_deref(),
            Some("https://health.example/asthma")
        );
        assert_eq!(p.lang.as_deref(), Some("en-GB"));
        assert_eq!(p.date.as_deref(), Some("2024-03-05T08:00:00Z"));
        let p = extract(
            r#"<head><meta property="og:title" content="OG title"><meta property="og:url" content="https://x.example/a">
            <meta name="citation_publication_date" content="2021/06/01"></head><body><h1>H</h1></body>"#,
        );
        assert_eq!(p.title.as_deref(), Some("OG title"));
        assert_eq!(p.canonical_url.as_deref(), Some("https://x.example/a"));
        assert_eq!(p.date.as_deref(), Some("2021/06/01"));
        assert_eq!(p.lang, None);
        assert_eq!(
            extract("<h1>Only &amp; heading</h1>").title.as_deref(),
            Some("Only & heading")
        );
    }
}
