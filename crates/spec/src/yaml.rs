//! A YAML tree that remembers where each value was written, so every later error (a type mismatch
//! found by serde, a CIDR overlap found by validation) can name its file, line and column, even
//! after layering has merged several files into one tree.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// Where a node was written: index of its file in the loader's file table, 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Pos {
    /// Index into the file table of the load.
    pub file: u32,
    /// 1-based line (0 = unknown).
    pub line: u32,
    /// 1-based column (0 = unknown).
    pub column: u32,
}

/// A YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the value starts.
    pub pos: Pos,
    /// The value.
    pub value: Value,
}

/// A YAML value whose children are [`Node`]s.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// A boolean.
    Bool(bool),
    /// A negative integer, or any integer that fits `i64`.
    Int(i64),
    /// An integer above `i64::MAX`.
    UInt(u64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order. Keys are unique (the parser rejects duplicates).
    Map(Vec<(Key, Node)>),
}

/// A mapping key and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key text.
    pub name: String,
    /// Where the key is written (errors about the entry point here).
    pub pos: Pos,
}

impl Value {
    /// A word for the value's type, for messages ("a string", "a mapping", …).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::UInt(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// The entry `key` of a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets the file index of this node and all below it (the parser knows nothing of files).
    fn set_file(&mut self, file: u32) {
        self.pos.file = file;
        match &mut self.value {
            Value::Seq(items) => items.iter_mut().for_each(|n| n.set_file(file)),
            Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
                k.pos.file = file;
                v.set_file(file);
            }),
            _ => {}
        }
    }

    /// Converts to JSON, recording for every JSON path the position it came from.
    pub fn to_json(&self, path: &mut String, positions: &mut PosTable) -> serde_json::Value {
        positions.insert(path.clone(), self.pos);
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::UInt(u) => serde_json::Value::from(*u),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, n) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    out.push(n.to_json(path, positions));
                    path.truncate(len);
                }
                serde_json::Value::Array(out)
            }
            Value::Map(entries) => {
                let mut out = serde_json::Map::with_capacity(entries.len());
                for (k, n) in entries {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(&k.name);
                    // The key's own position is where "unknown field" errors should point.
                    positions.insert(format!("{path}#key"), k.pos);
                    out.insert(k.name.clone(), n.to_json(path, positions));
                    path.truncate(len);
                }
                serde_json::Value::Object(out)
            }
        }
    }
}

/// JSON path (`workers[1].count`) → where that value was written; `path#key` for mapping keys.
pub type PosTable = std::collections::HashMap<String, Pos>;

/// A YAML syntax error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// What the parser said.
    pub message: String,
    /// Where (file index is the one passed to [`parse`]).
    pub pos: Pos,
}

/// Parses one YAML document into a positioned tree. An empty document is a `Null` node.
pub fn parse(text: &str, file: u32) -> Result<Node, SyntaxError> {
    let mut options = serde_saphyr::Options::default();
    // Errors are rendered by us, with file names; the snippet would repeat the text.
    options.with_snippet = false;
    match serde_saphyr::from_str_with_options::<Option<Spanned<Value>>>(text, options) {
        Ok(Some(spanned)) => {
            let mut node = from_spanned(spanned);
            node.set_file(file);
            Ok(node)
        }
        Ok(None) => Ok(Node {
            pos: Pos {
                file,
                line: 1,
                column: 1,
            },
            value: Value::Null,
        }),
        Err(e) => {
            let pos = e
                .location()
                .map(|l| Pos {
                    file,
                    line: u32::try_from(l.line()).unwrap_or(0),
                    column: u32::try_from(l.column()).unwrap_or(0),
                })
                .unwrap_or(Pos {
                    file,
                    line: 0,
                    column: 0,
                });
            Err(SyntaxError {
                message: first_line(&e.to_string()),
                pos,
            })
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).trim().to_string()
}

fn from_spanned(s: Spanned<Value>) -> Node {
    Node {
        pos: Pos {
            file: 0,
            line: u32::try_from(s.referenced.line()).unwrap_or(0),
            column: u32::try_from(s.referenced.column()).unwrap_or(0),
        },
        value: s.value,
    }
}

// `Value` deserializes from any YAML node; children are `Spanned<Value>` so each keeps its position.
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map(Value::Int).unwrap_or(Value::UInt(v)))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        u64::try_from(v)
            .map(|u| self.visit_u64::<E>(u).unwrap_or(Value::UInt(u)))
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Value>>()? {
            items.push(from_spanned(item));
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value::<Spanned<Value>>()?;
            let pos = from_spanned(Spanned::new(Value::Null, key.referenced, key.defined)).pos;
            entries.push((
                Key {
                    name: key.value.0,
                    pos,
                },
                from_spanned(value),
            ));
        }
        Ok(Value::Map(entries))
    }
}

/// A mapping key: strings as they are, other scalars as their text (YAML allows `1: x`).
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<KeyText, E> {
                Ok(KeyText("null".to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Node {
        match parse(text, 7) {
            Ok(n) => n,
            Err(e) => panic!("parse failed: {e:?}"),
        }
    }

    #[test]
    fn positions_of_nested_values_and_keys() {
        let n = p("a: 1\nb:\n  c: [x, {d: true}]\n");
        let b = n.get("b").expect("b");
        assert_eq!((b.pos.line, b.pos.file), (3, 7));
        let c = b.get("c").expect("c");
        assert_eq!((c.pos.line, c.pos.column), (3, 6));
        let Value::Seq(items) = &c.value else {
            panic!("not a seq")
        };
        assert_eq!(items[1].pos.column, 10);
        let Value::Map(entries) = &n.value else {
            panic!("not a map")
        };
        assert_eq!((entries[1].0.pos.line, entries[1].0.pos.column), (2, 1));
    }

    #[test]
    fn scalars_keep_their_types() {
        let n = p("i: -3\nf: 1.30\ns: '1.30'\nb: false\nz: ~\n");
        assert_eq!(n.get("i").map(|x| &x.value), Some(&Value::Int(-3)));
        assert_eq!(n.get("f").map(|x| &x.value), Some(&Value::Float(1.3)));
        assert_eq!(
            n.get("s").map(|x| &x.value),
            Some(&Value::Str("1.30".into()))
        );
        assert_eq!(n.get("b").map(|x| &x.value), Some(&Value::Bool(false)));
        assert_eq!(n.get("z").map(|x| &x.value), Some(&Value::Null));
    }

    #[test]
    fn empty_document_is_null() {
        assert_eq!(p("").value, Value::Null);
        assert_eq!(p("# only a comment\n").value, Value::Null);
    }

    #[test]
    fn duplicate_keys_and_bad_syntax_are_errors_with_positions() {
        let e = parse("a: 1\na: 2\n", 0).expect_err("duplicate");
        assert!(e.pos.line >= 1, "{e:?}");
        let e = parse("a: [1, 2\nb: 3\n", 0).expect_err("unclosed");
        assert!(e.pos.line >= 1, "{e:?}");
    }

    #[test]
    fn json_positions_cover_every_path() {
        let n = p("workers:\n  - name: a\n    count: 2\n");
        let mut table = PosTable::new();
        let v = n.to_json(&mut String::new(), &mut table);
        assert_eq!(v["workers"][0]["count"], 2);
        assert_eq!(table["workers[0].count"].line, 3);
        assert_eq!(table["workers[0].count#key"].column, 5);
    }
}
