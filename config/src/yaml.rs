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

    #[test]
    fn content_on_marker_line() {
        let d = split_documents("--- {a: 1}\n--- # c\nb: 2\n");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].text.trim(), "{a: 1}");
        assert_eq!(d[0].start_line, 1);
        assert_eq!(d[1].start_line, 3);
    }
}
