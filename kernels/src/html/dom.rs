//! A compact, read-only document tree built from html5ever's parse: nodes in document
//! (pre-)order in one vector, so that a node's subtree is the contiguous range
//! `i..end[i]` and every walk is a loop, whatever the nesting depth of the page.

use html5ever::tendril::TendrilSink;
use html5ever::{parse_document, ParseOpts};
use markup5ever_rcdom::{Handle, NodeData, RcDom};

/// What a node is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Data {
    /// The document root.
    Document,
    /// An element: its lower-case local name and attributes (names lower-case).
    Element {
        tag: String,
        attrs: Vec<(String, String)>,
    },
    /// Text, with entities decoded.
    Text(String),
}

/// One node.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    pub data: Data,
}

/// A parsed page.
#[derive(Debug, Clone)]
pub(crate) struct Dom {
    pub nodes: Vec<Node>,
    /// One past the last node of each node's subtree.
    pub end: Vec<usize>,
}

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

impl Dom {
    /// Parses a page with the HTML5 algorithm (as browsers do, whatever the markup errors).
    pub fn parse(html: &str) -> Dom {
        let rc = parse_document(RcDom::default(), ParseOpts::default()).one(html);
        let mut nodes: Vec<Node> = Vec::new();
        let mut stack: Vec<(Handle, Option<usize>)> = vec![(rc.document.clone(), None)];
        while let Some((h, parent)) = stack.pop() {
            let data = match &h.data {
                NodeData::Document => Data::Document,
                NodeData::Element { name, attrs, .. } => Data::Element {
                    tag: lower(&name.local),
                    attrs: attrs
                        .borrow()
                        .iter()
                        .map(|a| (lower(&a.name.local), a.value.to_string()))
                        .collect(),
                },
                NodeData::Text { contents } => Data::Text(contents.borrow().to_string()),
                _ => continue,
            };
            let idx = nodes.len();
            nodes.push(Node {
                parent,
                children: Vec::new(),
                data,
            });
            if let Some(p) = parent {
                nodes[p].children.push(idx);
            }
            for c in h.children.borrow().iter().rev() {
                stack.push((c.clone(), Some(idx)));
            }
        }
        let mut end: Vec<usize> = (1..=nodes.len()).collect();
        for i in (1..nodes.len()).rev() {
            let p = nodes[i].parent.expect("only the root has no parent");
            end[p] = end[p].max(end[i]);
        }
        Dom { nodes, end }
    }

    /// The tag of an element, or None.
    pub fn tag(&self, i: usize) -> Option<&str> {
        match &self.nodes[i].data {
            Data::Element { tag, .. } => Some(tag),
            _ => None,
        }
    }

    /// An attribute of an element.
    pub fn attr(&self, i: usize, name: &str) -> Option<&str> {
        match &self.nodes[i].data {
            Data::Element { attrs, .. } => attrs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }

    /// The ancestors of a node, nearest first.
    pub fn ancestors(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        std::iter::successors(self.nodes[i].parent, move |&p| self.nodes[p].parent)
    }

    /// The text of a subtree, whitespace collapsed.
    pub fn text_of(&self, i: usize) -> String {
        let mut s = String::new();
        for n in &self.nodes[i..self.end[i]] {
            if let Data::Text(t) = &n.data {
                s.push_str(t);
                s.push(' ');
            }
        }
        super::extract::collapse_ws(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preorder_with_subtree_ranges() {
        let d = Dom::parse("<p>a<b>b &amp; c</b></p><div>d</div>");
        let p = (0..d.nodes.len()).find(|&i| d.tag(i) == Some("p")).unwrap();
        assert_eq!(d.text_of(p), "a b & c");
        let b = d.nodes[p].children[1];
        assert_eq!(d.tag(b), Some("b"));
        assert_eq!(d.end[p], b + 2);
        assert!(d.ancestors(b).any(|a| a == p));
        // Deep nesting is walked without recursion.
        let deep = "<div>".repeat(20_000) + "x";
        assert!(Dom::parse(&deep).nodes.len() > 100);
    }
}
