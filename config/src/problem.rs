//! A problem found in the configuration, named so a person can act on it.

use std::fmt;

use crate::yaml::SourcePos;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// Identifies one object: kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ObjectRef {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    pub fn new(kind: &str, namespace: Option<&str>, name: &str) -> Self {
        ObjectRef {
            kind: kind.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// One problem: which object, which field, which value, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Problem {
    pub severity: Severity,
    /// The object; None for problems of a whole file or document.
    pub object: Option<ObjectRef>,
    /// Field path such as `spec.addresses[1]`.
    pub field: Option<String>,
    /// The offending value as written.
    pub value: Option<String>,
    pub message: String,
    /// Where the object was read from, when it came from a file.
    pub source: Option<SourcePos>,
    /// The 1-based column of the offending value on `source`'s line, when
    /// known (then `source.line` is the value's line, not the document's).
    pub column: Option<usize>,
}

impl Problem {
    pub fn error(object: ObjectRef, field: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Error,
            object: Some(object),
            field: Some(field.into()),
            value: None,
            message: message.into(),
            source: None,
            column: None,
        }
    }

    pub fn warning(
        object: ObjectRef,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(object, field, message)
        }
    }

    /// A problem of a file or document rather than of an object.
    pub fn in_source(severity: Severity, source: SourcePos, message: impl Into<String>) -> Self {
        Problem {
            severity,
            object: None,
            field: None,
            value: None,
            message: message.into(),
            source: Some(source),
            column: None,
        }
    }

    pub fn with_value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self
    }

    pub fn with_source(mut self, source: Option<SourcePos>) -> Self {
        if self.source.is_none() {
            self.source = source;
        }
        self
    }

    /// Sets the column of the value on the source's line (see [`Problem::column`]).
    pub fn at_column(mut self, column: usize) -> Self {
        self.column = Some(column);
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.source, self.column) {
            (Some(src), Some(column)) => write!(
                f,
                "{}:{}:{column} (document {}): ",
                src.file, src.line, src.document
            )?,
            (Some(src), None) => write!(f, "{src}: ")?,
            (None, _) => {}
        }
        write!(f, "{}: ", self.severity)?;
        if let Some(obj) = &self.object {
            write!(f, "{obj}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}")?;
            if let Some(v) = &self.value {
                write!(f, " {v:?}")?;
            }
            write!(f, ": ")?;
        } else if let Some(v) = &self.value {
            write!(f, "{v:?}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Counts of errors and warnings.
pub fn count(problems: &[Problem]) -> (usize, usize) {
    let errors = problems.iter().filter(|p| p.is_error()).count();
    (errors, problems.len() - errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_everything() {
        let p = Problem::error(
            ObjectRef::new("IPAddressPool", Some("ferrolb-system"), "a"),
            "spec.addresses[1]",
            "first address is after last address",
        )
        .with_value("198.51.100.9-198.51.100.1")
        .with_source(Some(SourcePos {
            file: "pools.yaml".into(),
            document: 2,
            line: 7,
        }));
        assert_eq!(
            p.to_string(),
            "pools.yaml:7 (document 2): error: IPAddressPool ferrolb-system/a: spec.addresses[1] \"198.51.100.9-198.51.100.1\": first address is after last address"
        );
    }
}
