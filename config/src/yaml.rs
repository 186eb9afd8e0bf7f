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
