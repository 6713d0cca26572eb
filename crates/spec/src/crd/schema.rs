//! The structural-schema walk: one value against one `openAPIV3Schema` node, recursively.

use super::{SchemaViolation, Validation};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// Collects violations for one object while walking its schema.
pub(super) struct Walker<'a> {
    object: &'a str,
    regexes: &'a Mutex<BTreeMap<String, Option<regex::Regex>>>,
    result: Validation,
}

/// Whether `properties` close the object. Junctor branches (`anyOf`, …) only add constraints to
/// fields the enclosing schema already declares, so they never close it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Closed,
    Constraint,
}

impl<'a> Walker<'a> {
    pub(super) fn new(
        object: &'a str,
        regexes: &'a Mutex<BTreeMap<String, Option<regex::Regex>>>,
    ) -> Self {
        Walker {
            object,
            regexes,
            result: Validation::default(),
        }
    }

    pub(super) fn violation(&mut self, path: &str, rule: &str, message: String) {
        self.result.violations.push(SchemaViolation {
            object: self.object.to_string(),
            path: if path.is_empty() {
                ".".to_string()
            } else {
                path.to_string()
            },
            rule: rule.to_string(),
            message,
        });
    }

    pub(super) fn finish(self) -> Validation {
        self.result
    }

    /// Validates the whole object. `apiVersion`, `kind` and `metadata` were checked by the
    /// caller as the API server does (their schema nodes only say `type`).
    pub(super) fn validate_root(&mut self, schema: &Value, object: &Value) {
        match object {
            Value::Object(map) if map.contains_key("metadata") => {
                let mut rest = map.clone();
                rest.remove("metadata");
                self.validate(schema, &Value::Object(rest), "", Mode::Closed);
            }
            _ => self.validate(schema, object, "", Mode::Closed),
        }
    }

    fn validate(&mut self, schema: &Value, value: &Value, path: &str, mode: Mode) {
        let Some(s) = schema.as_object() else {
            // `true`/`{}`-like schemas accept anything.
            return;
        };
        if let Some(rules) = s.get("x-kubernetes-validations").and_then(Value::as_array) {
            self.result.cel_rules_skipped += rules.len();
        }
        if value.is_null() {
            // The API server prunes a null in a field that is not nullable; a nullable null
            // skips every other check.
            return;
        }
        if !self.check_type(s, value, path) {
            return;
        }
        self.check_enum(s, value, path);
        match value {
            Value::String(text) => self.check_string(s, text, path),
            Value::Number(_) => self.check_number(s, value, path),
            Value::Array(items) => self.check_array(s, items, path, mode),
            Value::Object(map) => self.check_object(s, map, path, mode),
            Value::Bool(_) | Value::Null => {}
        }
        self.check_junctors(s, value, path);
    }

    /// Checks `type` (with `x-kubernetes-int-or-string`); false when the value has the wrong type,
    /// since every further check would only repeat the same mistake.
    fn check_type(&mut self, s: &Map<String, Value>, value: &Value, path: &str) -> bool {
        if s.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
            if value.is_string() || is_integer(value) {
                return true;
            }
            self.violation(
                path,
                "type",
                format!("must be an integer or a string, not {}", type_name(value)),
            );
            return false;
        }
        let Some(ty) = s.get("type").and_then(Value::as_str) else {
            return true;
        };
        let ok = match ty {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "integer" => is_integer(value),
            "number" => value.is_number(),
            _ => true,
        };
        if !ok {
            self.violation(
                path,
                "type",
                format!("must be {} {ty}, not {}", article(ty), type_name(value)),
            );
        }
        ok
    }

    fn check_enum(&mut self, s: &Map<String, Value>, value: &Value, path: &str) {
        let Some(allowed) = s.get("enum").and_then(Value::as_array) else {
            return;
        };
        if !allowed.iter().any(|a| a == value) {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            self.violation(
                path,
                "enum",
                format!("{value} is not one of {}", list.join(", ")),
            );
        }
    }

    fn check_string(&mut self, s: &Map<String, Value>, text: &str, path: &str) {
        let len = text.chars().count() as u64;
        if let Some(min) = s.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            self.violation(
                path,
                "minLength",
                format!("{len} characters, at least {min} required"),
            );
        }
        if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            self.violation(
                path,
                "maxLength",
                format!("{len} characters, at most {max} allowed"),
            );
        }
        if let Some(pattern) = s.get("pattern").and_then(Value::as_str)
            && self.pattern_rejects(pattern, text)
        {
            self.violation(
                path,
                "pattern",
                format!("{text:?} does not match {pattern}"),
            );
        }
        if let Some(format) = s.get("format").and_then(Value::as_str)
            && !string_format_ok(format, text)
        {
            self.violation(path, "format", format!("{text:?} is not a valid {format}"));
        }
    }

    /// True when the pattern compiles and does not match; patterns the regex crate cannot
    /// compile are skipped (none of the CRDs we ship uses one).
    fn pattern_rejects(&self, pattern: &str, text: &str) -> bool {
        let mut cache = match self.regexes.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let re = cache
            .entry(pattern.to_string())
            .or_insert_with(|| regex::Regex::new(pattern).ok());
        re.as_ref().is_some_and(|re| !re.is_match(text))
    }

    fn check_number(&mut self, s: &Map<String, Value>, value: &Value, path: &str) {
        let Some(n) = value.as_f64() else { return };
        match s.get("format").and_then(Value::as_str) {
            Some("int32") if !fits(value, i32::MIN.into(), i32::MAX.into()) => {
                self.violation(path, "format", format!("{value} does not fit in int32"));
            }
            Some("int64") if !fits(value, i64::MIN, i64::MAX) => {
                self.violation(path, "format", format!("{value} does not fit in int64"));
            }
            _ => {}
        }
        let flag = |key: &str| s.get(key).and_then(Value::as_bool) == Some(true);
        if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
            let exclusive = flag("exclusiveMinimum");
            if n < min || (exclusive && n == min) {
                let op = if exclusive { ">" } else { ">=" };
                self.violation(path, "minimum", format!("{value} must be {op} {min}"));
            }
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
            let exclusive = flag("exclusiveMaximum");
            if n > max || (exclusive && n == max) {
                let op = if exclusive { "<" } else { "<=" };
                self.violation(path, "maximum", format!("{value} must be {op} {max}"));
            }
        }
    }

    fn check_array(&mut self, s: &Map<String, Value>, items: &[Value], path: &str, mode: Mode) {
        let len = items.len() as u64;
        if let Some(min) = s.get("minItems").and_then(Value::as_u64)
            && len < min
        {
            self.violation(
                path,
                "minItems",
                format!("{len} items, at least {min} required"),
            );
        }
        if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
            && len > max
        {
            self.violation(
                path,
                "maxItems",
                format!("{len} items, at most {max} allowed"),
            );
        }
        let list_type = s.get("x-kubernetes-list-type").and_then(Value::as_str);
        let unique = s.get("uniqueItems").and_then(Value::as_bool) == Some(true);
        if unique || list_type == Some("set") {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    self.violation(
                        &format!("{path}[{i}]"),
                        "x-kubernetes-list-type",
                        format!("duplicate entry {item} in a set"),
                    );
                }
            }
        }
        if list_type == Some("map") {
            self.check_map_list_keys(s, items, path);
        }
        if let Some(item_schema) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                self.validate(item_schema, item, &format!("{path}[{i}]"), mode);
            }
        }
    }

    /// A `map` list may not hold two entries with the same key fields.
    fn check_map_list_keys(&mut self, s: &Map<String, Value>, items: &[Value], path: &str) {
        let keys: Vec<&str> = s
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|k| k.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if keys.is_empty() {
            return;
        }
        let mut seen = BTreeSet::new();
        for (i, item) in items.iter().enumerate() {
            let key: Vec<String> = keys
                .iter()
                .map(|k| item.get(*k).map(Value::to_string).unwrap_or_default())
                .collect();
            if !seen.insert(key.clone()) {
                self.violation(
                    &format!("{path}[{i}]"),
                    "x-kubernetes-list-map-keys",
                    format!(
                        "duplicate entry with {} = {}",
                        keys.join(","),
                        key.join(",")
                    ),
                );
            }
        }
    }

    fn check_object(
        &mut self,
        s: &Map<String, Value>,
        map: &Map<String, Value>,
        path: &str,
        mode: Mode,
    ) {
        let count = map.values().filter(|v| !v.is_null()).count() as u64;
        if let Some(min) = s.get("minProperties").and_then(Value::as_u64)
            && count < min
        {
            self.violation(
                path,
                "minProperties",
                format!("{count} fields, at least {min} required"),
            );
        }
        if let Some(max) = s.get("maxProperties").and_then(Value::as_u64)
            && count > max
        {
            self.violation(
                path,
                "maxProperties",
                format!("{count} fields, at most {max} allowed"),
            );
        }
        let properties = s.get("properties").and_then(Value::as_object);
        if let Some(required) = s.get("required").and_then(Value::as_array) {
            for field in required.iter().filter_map(Value::as_str) {
                // The API server fills a missing field from its `default` before validating.
                let defaulted = properties
                    .and_then(|p| p.get(field))
                    .is_some_and(|p| p.get("default").is_some());
                if map.get(field).is_none_or(Value::is_null) && !defaulted {
                    self.violation(
                        path,
                        "required",
                        format!("required field {field:?} is missing"),
                    );
                }
            }
        }
        let additional = s.get("additionalProperties");
        let preserve = s
            .get("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            == Some(true);
        let embedded = s
            .get("x-kubernetes-embedded-resource")
            .and_then(Value::as_bool)
            == Some(true);
        if embedded {
            self.check_embedded(map, path);
        }
        for (key, value) in map {
            let child = format!("{path}.{key}");
            if embedded && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                // ObjectMeta and type meta: checked by check_embedded, as the API server does.
                continue;
            }
            if let Some(prop) = properties.and_then(|p| p.get(key)) {
                self.validate(prop, value, &child, Mode::Closed);
            } else if let Some(extra) = additional {
                if extra.as_bool() == Some(false) {
                    self.violation(&child, "unknown-field", format!("unknown field {key:?}"));
                } else {
                    self.validate(extra, value, &child, Mode::Closed);
                }
            } else if mode == Mode::Closed && !preserve && properties.is_some() {
                self.violation(&child, "unknown-field", format!("unknown field {key:?}"));
            } else if mode == Mode::Closed && !preserve && properties.is_none() && has_type(s) {
                // `type: object` without properties, additionalProperties or preserve-unknown:
                // the API server prunes every field, so a strict apply refuses them.
                self.violation(&child, "unknown-field", format!("unknown field {key:?}"));
            }
        }
    }

    /// An embedded resource must say what it is, as a top-level object does.
    fn check_embedded(&mut self, map: &Map<String, Value>, path: &str) {
        for field in ["apiVersion", "kind"] {
            match map.get(field) {
                Some(Value::String(s)) if !s.is_empty() => {}
                _ => self.violation(
                    path,
                    "x-kubernetes-embedded-resource",
                    format!("embedded resource needs a string {field:?}"),
                ),
            }
        }
        if let Some(meta) = map.get("metadata")
            && !meta.is_object()
            && !meta.is_null()
        {
            self.violation(
                &format!("{path}.metadata"),
                "type",
                "metadata must be an object".into(),
            );
        }
    }

    fn check_junctors(&mut self, s: &Map<String, Value>, value: &Value, path: &str) {
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for branch in all {
                self.validate(branch, value, path, Mode::Constraint);
            }
        }
        if let Some(any) = s.get("anyOf").and_then(Value::as_array)
            && !any.is_empty()
            && !any.iter().any(|b| self.branch_passes(b, value, path))
        {
            self.violation(
                path,
                "anyOf",
                "matches none of the anyOf alternatives".into(),
            );
        }
        if let Some(one) = s.get("oneOf").and_then(Value::as_array)
            && !one.is_empty()
        {
            let passing = one
                .iter()
                .filter(|b| self.branch_passes(b, value, path))
                .count();
            if passing != 1 {
                self.violation(
                    path,
                    "oneOf",
                    format!("matches {passing} of the oneOf alternatives, exactly 1 required"),
                );
            }
        }
        if let Some(not) = s.get("not")
            && self.branch_passes(not, value, path)
        {
            self.violation(path, "not", "matches the schema under `not`".into());
        }
    }

    /// Whether `value` satisfies a junctor branch, without recording the branch's violations.
    fn branch_passes(&self, branch: &Value, value: &Value, path: &str) -> bool {
        let mut probe = Walker::new(self.object, self.regexes);
        probe.validate(branch, value, path, Mode::Constraint);
        probe.result.violations.is_empty()
    }
}

fn has_type(s: &Map<String, Value>) -> bool {
    s.get("type").and_then(Value::as_str) == Some("object")
}

fn is_integer(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn fits(value: &Value, min: i64, max: i64) -> bool {
    match value.as_i64() {
        Some(i) => i >= min && i <= max,
        // A u64 above i64::MAX or a float: in range only if it is a float inside the bounds.
        None => value
            .as_f64()
            .is_some_and(|f| f >= min as f64 && f <= max as f64 && value.as_u64().is_none()),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn article(ty: &str) -> &'static str {
    if ty.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// The string formats the API server checks (kube-openapi's registry, the ones our CRDs use);
/// unknown formats pass, as they do there.
fn string_format_ok(format: &str, text: &str) -> bool {
    match format {
        "uuid" => is_uuid(text),
        "ipv4" => text.parse::<std::net::Ipv4Addr>().is_ok(),
        "date-time" => is_date_time(text),
        "byte" => is_base64(text),
        _ => true,
    }
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    if groups.len() == 5 {
        return groups
            .iter()
            .zip(lens)
            .all(|(g, l)| g.len() == l && g.chars().all(|c| c.is_ascii_hexdigit()));
    }
    // kube-openapi also accepts the 32-digit form without dashes.
    text.len() == 32 && text.chars().all(|c| c.is_ascii_hexdigit())
}

fn is_date_time(text: &str) -> bool {
    static SHAPE: &str = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$";
    regex::Regex::new(SHAPE).is_ok_and(|re| re.is_match(text))
}

fn is_base64(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    text.len().is_multiple_of(4)
        && text.len() - body.len() <= 2
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(schema: Value, value: Value) -> Vec<String> {
        let cache = Mutex::new(BTreeMap::new());
        let mut w = Walker::new("Test x", &cache);
        w.validate_root(&schema, &value);
        w.finish()
            .violations
            .into_iter()
            .map(|v| format!("{} {}", v.path, v.rule))
            .collect()
    }

    #[test]
    fn int_or_string_accepts_both_and_nothing_else() {
        let s = json!({"x-kubernetes-int-or-string": true});
        assert!(run(s.clone(), json!(3)).is_empty());
        assert!(run(s.clone(), json!("30%")).is_empty());
        assert_eq!(run(s, json!(true)), [". type"]);
    }

    #[test]
    fn formats_int32_and_uuid() {
        let s = json!({"type": "integer", "format": "int32"});
        assert!(run(s.clone(), json!(2147483647)).is_empty());
        assert_eq!(run(s, json!(2147483648_i64)), [". format"]);
        let s = json!({"type": "string", "format": "uuid"});
        assert!(run(s.clone(), json!("3f0e2c1a-1b2c-4d5e-8f90-0123456789ab")).is_empty());
        assert_eq!(run(s, json!("public")), [". format"]);
    }

    #[test]
    fn exclusive_bounds() {
        let s = json!({"type": "number", "minimum": 0, "exclusiveMinimum": true, "maximum": 1});
        assert_eq!(run(s.clone(), json!(0)), [". minimum"]);
        assert!(run(s.clone(), json!(1)).is_empty());
        assert_eq!(run(s, json!(1.5)), [". maximum"]);
    }

    #[test]
    fn junctors() {
        let s = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
            "oneOf": [{"required": ["a"]}, {"required": ["b"]}]});
        assert!(run(s.clone(), json!({"a": "x"})).is_empty());
        assert_eq!(run(s.clone(), json!({"a": "x", "b": "y"})), [". oneOf"]);
        assert_eq!(run(s, json!({})), [". oneOf"]);
        let s = json!({"type": "object", "properties": {"a": {"type": "string"}},
            "not": {"required": ["a"]}, "anyOf": [{"properties": {"a": {"minLength": 2}}}]});
        assert_eq!(run(s.clone(), json!({"a": "xy"})), [". not"]);
        assert!(run(s, json!({})).is_empty());
    }

    #[test]
    fn lists_sets_and_maps() {
        let s =
            json!({"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}});
        assert_eq!(run(s, json!(["a", "a"])), ["[1] x-kubernetes-list-type"]);
        let s = json!({"type": "array", "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"], "items": {"type": "object",
            "properties": {"name": {"type": "string"}}}});
        assert_eq!(
            run(s, json!([{"name": "a"}, {"name": "a"}])),
            ["[1] x-kubernetes-list-map-keys"]
        );
    }

    #[test]
    fn null_is_pruned_unless_required() {
        let s = json!({"type": "object", "required": ["a"],
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}}});
        assert!(run(s.clone(), json!({"a": "x", "b": null})).is_empty());
        assert_eq!(run(s, json!({"a": null})), [". required"]);
    }

    #[test]
    fn a_default_satisfies_required() {
        let s = json!({"type": "object", "required": ["a"],
            "properties": {"a": {"type": "string", "default": "x"}}});
        assert!(run(s, json!({})).is_empty());
    }

    #[test]
    fn open_objects() {
        let s = json!({"type": "object", "additionalProperties": {"type": "string"}});
        assert!(run(s.clone(), json!({"k": "v"})).is_empty());
        assert_eq!(run(s, json!({"k": 1})), [".k type"]);
        let s = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        assert!(run(s, json!({"anything": [1]})).is_empty());
        let s = json!({"type": "object"});
        assert_eq!(run(s, json!({"x": 1})), [".x unknown-field"]);
    }

    #[test]
    fn embedded_resource_needs_type_meta() {
        let s = json!({"type": "object", "x-kubernetes-embedded-resource": true,
            "x-kubernetes-preserve-unknown-fields": true});
        assert!(run(s.clone(), json!({"apiVersion": "v1", "kind": "Pod"})).is_empty());
        assert_eq!(
            run(s, json!({"kind": "Pod"})),
            [". x-kubernetes-embedded-resource"]
        );
    }
}
