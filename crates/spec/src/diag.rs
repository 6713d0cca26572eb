//! Diagnostics: what is wrong in a definition, where (file, line, column, field path) and how to fix it.

use std::fmt;
use std::path::PathBuf;

/// A place in a source file. Lines and columns start at 1; 0 means unknown.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SourceLoc {
    /// The file, as given to the loader (relative to the repository when loaded through it).
    pub file: PathBuf,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl fmt::Display for SourceLoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        Ok(())
    }
}

/// What kind of mistake a diagnostic reports (stable, for tests and `--output json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The file is not valid YAML, or cannot be read.
    Syntax,
    /// A field the schema does not have.
    UnknownField,
    /// A value of the wrong type.
    WrongType,
    /// A required field is missing.
    MissingField,
    /// A value of the right type that is not allowed.
    InvalidValue,
    /// Two values that cannot both hold (overlapping CIDRs, duplicate names, …).
    Conflict,
}

/// One problem in a cluster definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where the offending value (or its closest enclosing value) is written.
    pub loc: SourceLoc,
    /// Field path, e.g. `workers[1].count`; empty for the whole document.
    pub path: String,
    /// The kind of mistake.
    pub kind: Kind,
    /// What is wrong.
    pub message: String,
    /// What would be valid.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.loc)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n    hint: {h}")?;
        }
        Ok(())
    }
}

impl serde::Serialize for Diagnostic {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Diagnostic", 7)?;
        st.serialize_field("file", &self.loc.file.display().to_string())?;
        st.serialize_field("line", &self.loc.line)?;
        st.serialize_field("column", &self.loc.column)?;
        st.serialize_field("path", &self.path)?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("message", &self.message)?;
        st.serialize_field("hint", &self.hint)?;
        st.end()
    }
}

/// Every problem found in one definition, in file order. Loading reports all it can at once.
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl Diagnostics {
    /// True when nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Adds one diagnostic.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    /// Sorts by file, line and column, dropping exact duplicates.
    pub fn sort(&mut self) {
        self.0
            .sort_by(|a, b| (&a.loc, &a.path).cmp(&(&b.loc, &b.path)));
        self.0.dedup();
    }
}
