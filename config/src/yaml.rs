//! Multi-document YAML helpers: split a stream into documents while keeping
//! their positions, so every problem can name the file, document and line.

use std::fmt;

/// One document of a multi-document YAML stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document<'a> {
    /// Position of the document in the stream, counting from 1 (only non-empty documents count).
    pub index: usize,
    /// 1-based line number where the document's text starts in the stream.
    pub start_line: usize,
    /// The document's text, without its `---` marker line.
    pub text: &'a str,
}

/// Where something came from: a file (or stream name), a document in it, and a line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SourcePos {
    pub file: String,
    /// 1-based document index within the file.
    pub document: usize,
    /// 1-based line of the document's start (or of the problem, when known).
    pub line: usize,
}

impl fmt::Display for SourcePos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} (document {})",
            self.file, self.line, self.document
        )
    }
}

fn is_marker(line: &str, marker: &str) -> bool {
    let line = line.trim_end_matches(['\r']);
    if !line.starts_with(marker) {
        return false;
    }
    let rest = &line[marker.len()..];
    rest.is_empty() || rest.starts_with([' ', '\t', '#'])
}

/// Whether a document holds nothing but blank lines, comments and directives.
fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t.starts_with('%')
    })
}

/// Splits a YAML stream on `---` document markers (and `...` end markers).
/// Empty documents (only comments or whitespace) are dropped, but they do not
/// disturb the line numbers of the others.
pub fn split_documents(input: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut start_byte = 0usize;
    let mut start_line = 1usize;
    let mut offset = 0usize;
    let mut line_no = 0usize;
    let mut spans: Vec<(usize, usize, usize)> = Vec::new();
    for line in input.split_inclusive('\n') {
        line_no += 1;
        let content = line.trim_end_matches('\n');
        if is_marker(content, "---") || is_marker(content, "...") {
            spans.push((start_byte, offset, start_line));
            start_byte = offset + line.len();
            start_line = line_no + 1;
            // "--- key: value" puts content on the marker line itself.
            let after = content.trim_start_matches("---").trim_start_matches("...");
            let after_trim = after.trim();
            if !after_trim.is_empty() && !after_trim.starts_with('#') {
                start_byte = offset + 3 + (after.len() - after.trim_start().len());
                start_line = line_no;
            }
        }
        offset += line.len();
    }
    spans.push((start_byte, input.len(), start_line));
    for (from, to, line) in spans {
        let text = &input[from..to];
        if is_blank(text) {
            continue;
        }
        docs.push(Document {
            index: docs.len() + 1,
            start_line: line,
            text,
        });
    }
    docs
}

/// One document read by [`DocumentReader`]: like [`Document`], owning its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedDocument {
    /// Position of the document in the stream, counting from 1 (only non-empty documents count).
    pub index: usize,
    /// 1-based line number where the document's text starts in the stream.
    pub start_line: usize,
    /// The document's text, without its `---` marker line.
    pub text: String,
}

/// Splits a YAML stream into documents as it reads it, with the rules of
/// [`split_documents`], holding one document at a time: a file of 100,000
/// documents is never in memory whole.
pub struct DocumentReader<R> {
    reader: R,
    line: String,
    line_no: usize,
    /// The document being gathered and the line it starts on.
    text: String,
    start_line: usize,
    index: usize,
    done: bool,
}

impl<R: std::io::BufRead> DocumentReader<R> {
    pub fn new(reader: R) -> DocumentReader<R> {
        DocumentReader {
            reader,
            line: String::new(),
            line_no: 0,
            text: String::new(),
            start_line: 1,
            index: 0,
            done: false,
        }
    }

    /// The gathered document, unless it is blank; starts the next one.
    fn finish(&mut self, next_start: usize, next_text: &str) -> Option<OwnedDocument> {
        let text = std::mem::replace(&mut self.text, next_text.to_string());
        let start_line = std::mem::replace(&mut self.start_line, next_start);
        if is_blank(&text) {
            return None;
        }
        self.index += 1;
        Some(OwnedDocument {
            index: self.index,
            start_line,
            text,
        })
    }
}

impl<R: std::io::BufRead> Iterator for DocumentReader<R> {
    /// A document, or the read error (a line that is not UTF-8 is one).
    type Item = std::io::Result<OwnedDocument>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.line.clear();
            match self.reader.read_line(&mut self.line) {
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Ok(0) => {
                    self.done = true;
                    let (start, empty) = (self.start_line, String::new());
                    if let Some(doc) = self.finish(start, &empty) {
                        return Some(Ok(doc));
                    }
                }
                Ok(_) => {
                    self.line_no += 1;
                    let content = self.line.trim_end_matches('\n');
                    if is_marker(content, "---") || is_marker(content, "...") {
                        // "--- key: value" puts content on the marker line itself.
                        let after = content.trim_start_matches("---").trim_start_matches("...");
                        let after_trim = after.trim();
                        let (start, first) =
                            if !after_trim.is_empty() && !after_trim.starts_with('#') {
                                let skip = 3 + (after.len() - after.trim_start().len());
                                (self.line_no, self.line[skip..].to_string())
                            } else {
                                (self.line_no + 1, String::new())
                            };
                        if let Some(doc) = self.finish(start, &first) {
                            return Some(Ok(doc));
                        }
                    } else {
                        self.text.push_str(&self.line);
                    }
                }
            }
        }
        None
    }
}

/// How many events YAML aliases may replay in a document of `len` octets:
/// four per octet of text, and at least 4096. The parser's own limit is a
/// million, which lets 400 octets of nested aliases expand to a hundred
/// megabytes; a configuration that uses aliases stays far below this.
pub fn alias_replay_limit(len: usize) -> usize {
    len.saturating_mul(4).max(4096)
}

/// Reads one YAML document as `T` (every reader of configuration text goes
/// through here), with aliases bounded by [`alias_replay_limit`].
pub fn from_str<'de, T: serde::Deserialize<'de>>(text: &'de str) -> Result<T, serde_saphyr::Error> {
    let mut options = serde_saphyr::Options::default();
    options.alias_limits.max_total_replayed_events = alias_replay_limit(text.len());
    // Our messages take the parser's first line and position only; a
    // rendered source snippet (a copy of the text around the error, drawn
    // on Display) would be built and thrown away.
    options.with_snippet = false;
    serde_saphyr::from_str_with_options(text, options)
}

/// The parser's message for `err`, without the position it repeats (the
/// caller names the position, relative to the file) and without the
/// library's advice to its programmer.
pub fn parser_message(err: &serde_saphyr::Error) -> String {
    let text = err.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("").trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let msg = first
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(": "))
        .map_or(first, |(_, m)| m);
    let msg = msg.find(" at line ").map_or(msg, |cut| &msg[..cut]);
    let msg = msg
        .find(", set DuplicateKeyPolicy")
        .map_or(msg, |cut| &msg[..cut]);
    if msg.is_empty() {
        "invalid YAML".to_string()
    } else {
        msg.to_string()
    }
}

/// Where a YAML parser's position (1-based line and column, lines broken
/// at `\r\n`, `\r` or `\n` as YAML breaks them) is in `text` as files are
/// numbered here and by editors that break lines at `\n` only: a lone
/// carriage return is a line break to YAML but not to [`split_documents`].
/// A line past the end of `text` counts on from its last line.
pub fn text_position(text: &str, line: usize, column: usize) -> (usize, usize) {
    let bytes = text.as_bytes();
    let mut yaml_line = 1;
    let mut start = 0;
    let mut i = 0;
    while yaml_line < line && i < bytes.len() {
        match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                i += 2;
                yaml_line += 1;
                start = i;
            }
            b'\r' | b'\n' => {
                i += 1;
                yaml_line += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    let before = &text[..start];
    let file_line = 1 + before.matches('\n').count() + (line - yaml_line.min(line));
    let line_start = before.rfind('\n').map_or(0, |at| at + 1);
    let file_column = text[line_start..start].chars().count() + column;
    (file_line, file_column)
}

/// One step of a path into a YAML document: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// What a scalar was read as (YAML 1.1 rules, as Kubernetes reads it too:
/// `y`, `yes`, `on` are booleans, `0123` and `1e3` numbers, `~` is null).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarKind {
    Null,
    Boolean,
    Number,
    String,
}

/// What a value found at a path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Scalar(ScalarKind),
    Mapping,
    List,
}

/// A value located in a document: its 1-based line and column (within the
/// document text), what it is, and its text as written (a scalar's, with
/// its quotes if it has any; the first character of a collection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub line: usize,
    pub column: usize,
    pub found: Found,
    pub written: String,
}

impl Located {
    /// How a person would name the value: `the boolean y`, `the number
    /// 0123`, `the string "yes"`, `null (~)`, `a mapping`, `a sequence`.
    pub fn describe(&self) -> String {
        match self.found {
            Found::Scalar(ScalarKind::Boolean) => format!("the boolean {}", self.written),
            Found::Scalar(ScalarKind::Number) => format!("the number {}", self.written),
            Found::Scalar(ScalarKind::Null) if self.written.is_empty() => {
                "no value (null)".to_string()
            }
            Found::Scalar(ScalarKind::Null) => format!("null ({})", self.written),
            Found::Scalar(ScalarKind::String) => format!("the string {}", self.written),
            Found::Mapping => "a mapping".to_string(),
            Found::List => "a sequence".to_string(),
        }
    }

    /// Whether the value is a plain (unquoted) scalar that YAML read as
    /// something other than a string: quoting it makes it one.
    pub fn quoting_makes_a_string(&self) -> bool {
        matches!(
            self.found,
            Found::Scalar(ScalarKind::Boolean | ScalarKind::Number | ScalarKind::Null)
        ) && !self.written.is_empty()
            && !self.written.starts_with(['"', '\'', '!', '&', '*'])
    }
}

/// A YAML node with the places it was written, read only to locate a
/// value after a typed read failed (see [`locate`]).
enum Node {
    Scalar(ScalarKind),
    List(Vec<serde_saphyr::Spanned<Node>>),
    Mapping(Vec<(String, serde_saphyr::Spanned<Node>)>),
}

impl<'de> serde::Deserialize<'de> for Node {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Scalar(ScalarKind::Boolean))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Scalar(ScalarKind::Number))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Scalar(ScalarKind::Number))
            }
            fn visit_i128<E>(self, _: i128) -> Result<Node, E> {
                Ok(Node::Scalar(ScalarKind::Number))
            }
            fn visit_u128<E>(self, _: u128) -> Result<Node, E> {
                Ok(Node::Scalar(ScalarKind::Number))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Scalar(ScalarKind::Number))
            }
            fn visit_str<E>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Scalar(ScalarKind::String))
            }
            fn visit_bytes<E>(self, _: &[u8]) -> Result<Node, E> {
                Ok(Node::Scalar(ScalarKind::String))
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar(ScalarKind::Null))
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar(ScalarKind::Null))
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                <Node as serde::Deserialize>::deserialize(d)
            }
            fn visit_newtype_struct<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Node, D::Error> {
                <Node as serde::Deserialize>::deserialize(d)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = a.next_element()? {
                    items.push(item);
                }
                Ok(Node::List(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                // Keys as a string, as the untyped read takes them.
                let mut entries = Vec::new();
                while let Some(key) = a.next_key::<String>()? {
                    entries.push((key, a.next_value()?));
                }
                Ok(Node::Mapping(entries))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// Finds the value at `path` in the YAML document `text` and says where it
/// is and what it was read as. None when the document does not parse or
/// has no such value. For a value reached through an alias, the position
/// is the alias's and the text the anchored value's.
pub fn locate(text: &str, path: &[Step]) -> Option<Located> {
    let root: serde_saphyr::Spanned<Node> = from_str(text).ok()?;
    let mut node = &root;
    for step in path {
        node = match (&node.value, step) {
            (Node::Mapping(entries), Step::Key(key)) => {
                // The last of duplicate keys wins, as in the untyped read.
                &entries.iter().rev().find(|(k, _)| k == key)?.1
            }
            (Node::List(items), Step::Index(i)) => items.get(*i)?,
            _ => return None,
        };
    }
    let at = node.referenced;
    let defined = node.defined.span();
    let written = match (&node.value, defined.byte_offset(), defined.byte_len()) {
        (Node::Scalar(_), Some(from), Some(len)) => {
            let from = usize::try_from(from).ok()?;
            let to = from.checked_add(usize::try_from(len).ok()?)?;
            text.get(from..to)?.to_string()
        }
        _ => String::new(),
    };
    Some(Located {
        line: usize::try_from(at.line()).ok()?,
        column: usize::try_from(at.column()).ok()?,
        found: match &node.value {
            Node::Scalar(kind) => Found::Scalar(*kind),
            Node::List(_) => Found::List,
            Node::Mapping(_) => Found::Mapping,
        },
        written,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_keeps_lines() {
        let s = "# header\n---\na: 1\n---\n# only a comment\n---\nb: 2\nc: 3\n...\n";
        let d = split_documents(s);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].index, 1);
        assert_eq!(d[0].start_line, 3);
        assert_eq!(d[0].text, "a: 1\n");
        assert_eq!(d[1].index, 2);
        assert_eq!(d[1].start_line, 7);
        assert_eq!(d[1].text, "b: 2\nc: 3\n");
    }

    #[test]
    fn single_document_without_marker() {
        let d = split_documents("kind: Foo\n");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].start_line, 1);
    }

    #[test]
    fn dashes_inside_values_are_not_markers() {
        let d = split_documents("a: |\n  ---\n  x\nb: ---x\n");
        assert_eq!(d.len(), 1);
        let d = split_documents("a: 1\n----\n");
        assert_eq!(d.len(), 1);
    }

    /// The streaming reader splits exactly as `split_documents` does.
    #[test]
    fn reader_agrees_with_split_documents() {
        let cases = [
            "# header\n---\na: 1\n---\n# only a comment\n---\nb: 2\nc: 3\n...\n",
            "kind: Foo\n",
            "a: |\n  ---\n  x\nb: ---x\n",
            "a: 1\n----\n",
            "--- {a: 1}\n--- # c\nb: 2\n",
            "---\n---\n",
            "",
            "a: 1\r\n---\r\nb: 2",
            "--- x\n... \n--- y\n",
        ];
        for text in cases {
            let want: Vec<OwnedDocument> = split_documents(text)
                .into_iter()
                .map(|d| OwnedDocument {
                    index: d.index,
                    start_line: d.start_line,
                    text: d.text.to_string(),
                })
                .collect();
            let got: Vec<OwnedDocument> = DocumentReader::new(text.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(got, want, "{text:?}");
        }
        // A line that is not UTF-8 is a read error.
        let bad: &[u8] = b"a: 1\n---\nb: \xff\n";
        let items: Vec<_> = DocumentReader::new(bad).collect();
        assert!(items.last().unwrap().is_err());
    }

    #[test]
    fn content_on_marker_line() {
        let d = split_documents("--- {a: 1}\n--- # c\nb: 2\n");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].text.trim(), "{a: 1}");
        assert_eq!(d[0].start_line, 1);
        assert_eq!(d[1].start_line, 3);
    }
}
