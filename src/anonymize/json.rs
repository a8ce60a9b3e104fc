//! `{ json = { "$.path" = transformer, … } }`: transformers applied inside
//! JSON values, addressed by a small JSONPath subset.

use super::schema::SqlType;
use super::transform::{Keyed, Transformer};

/// `{ json = { "$.path" = transformer, … } }`.
#[derive(Debug, Clone)]
pub(crate) struct JsonRule {
    pub(crate) paths: Vec<(JsonPath, Transformer)>,
}

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
    Any,
    Descend(String),
}

/// A small JSONPath subset: `$`, `.key`, `["key"]`, `[n]`, `[*]`, `.*`, `..key`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JsonPath {
    pub(crate) source: String,
    steps: Vec<Step>,
}

impl JsonPath {
    pub(crate) fn parse(source: &str) -> Result<JsonPath, String> {
        let bad = |why: &str| {
            format!(
                "bad JSON path {source:?}: {why} (use e.g. \"$.email\", \"$.contacts[*].phone\", \"$..email\")"
            )
        };
        let b = source.as_bytes();
        if b.first() != Some(&b'$') {
            return Err(bad("it must start with `$`"));
        }
        let mut steps = Vec::new();
        let mut i = 1;
        let ident = |i: &mut usize| {
            let start = *i;
            while *i < b.len() && b[*i] != b'.' && b[*i] != b'[' {
                *i += 1;
            }
            source[start..*i].to_string()
        };
        while i < b.len() {
            if b[i..].starts_with(b"..") {
                i += 2;
                let k = ident(&mut i);
                if k.is_empty() || k == "*" {
                    return Err(bad("`..` needs a key name"));
                }
                steps.push(Step::Descend(k));
            } else if b[i] == b'.' {
                i += 1;
                let k = ident(&mut i);
                if k.is_empty() {
                    return Err(bad("empty key"));
                }
                steps.push(if k == "*" { Step::Any } else { Step::Key(k) });
            } else if b[i] == b'[' {
                let end = source[i..].find(']').ok_or_else(|| bad("`[` not closed"))? + i;
                let inner = source[i + 1..end].trim();
                steps.push(if inner == "*" {
                    Step::Any
                } else if let Ok(n) = inner.parse::<usize>() {
                    Step::Index(n)
                } else if inner.len() >= 2
                    && ((inner.starts_with('"') && inner.ends_with('"'))
                        || (inner.starts_with('\'') && inner.ends_with('\'')))
                {
                    Step::Key(inner[1..inner.len() - 1].to_string())
                } else {
                    return Err(bad("inside [] put *, a number or a quoted key"));
                });
                i = end + 1;
            } else {
                return Err(bad("unexpected character"));
            }
        }
        Ok(JsonPath {
            source: source.to_string(),
            steps,
        })
    }
}

impl JsonRule {
    pub(crate) fn apply(&self, k: &Keyed, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let mut v: serde_json::Value = serde_json::from_slice(input)
            .map_err(|e| format!("`json` met a value that is not valid JSON ({e})"))?;
        for (path, tr) in &self.paths {
            visit(&mut v, &path.steps, &mut |node| json_leaf(k, tr, node))?;
        }
        serde_json::to_writer(&mut *out, &v).map_err(|e| e.to_string())
    }
}

fn visit(
    v: &mut serde_json::Value,
    steps: &[Step],
    f: &mut dyn FnMut(&mut serde_json::Value) -> Result<(), String>,
) -> Result<(), String> {
    use serde_json::Value;
    let Some((step, rest)) = steps.split_first() else {
        return f(v);
    };
    match (step, v) {
        (Step::Key(key), Value::Object(m)) => match m.get_mut(key) {
            Some(child) => visit(child, rest, f),
            None => Ok(()),
        },
        (Step::Index(i), Value::Array(a)) => match a.get_mut(*i) {
            Some(child) => visit(child, rest, f),
            None => Ok(()),
        },
        (Step::Any, Value::Array(a)) => a.iter_mut().try_for_each(|c| visit(c, rest, f)),
        (Step::Any, Value::Object(m)) => m.values_mut().try_for_each(|c| visit(c, rest, f)),
        (Step::Descend(key), v) => descend(v, key, rest, f),
        _ => Ok(()),
    }
}

fn descend(
    v: &mut serde_json::Value,
    key: &str,
    rest: &[Step],
    f: &mut dyn FnMut(&mut serde_json::Value) -> Result<(), String>,
) -> Result<(), String> {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if k == key {
                    visit(child, rest, f)?;
                } else {
                    descend(child, key, rest, f)?;
                }
            }
            Ok(())
        }
        Value::Array(a) => a.iter_mut().try_for_each(|c| descend(c, key, rest, f)),
        _ => Ok(()),
    }
}

fn json_leaf(k: &Keyed, tr: &Transformer, node: &mut serde_json::Value) -> Result<(), String> {
    use serde_json::Value;
    let text_type = SqlType::text();
    match tr {
        Transformer::Keep => Ok(()),
        Transformer::Null => {
            *node = Value::Null;
            Ok(())
        }
        Transformer::Fixed(s) => {
            *node = Value::String(s.clone());
            Ok(())
        }
        Transformer::Redact => {
            *node = Value::String("REDACTED".into());
            Ok(())
        }
        _ => match node {
            Value::String(s) => {
                let mut out = Vec::new();
                tr.apply(k, &text_type, s.as_bytes(), &mut out)?;
                *s = String::from_utf8_lossy(&out).into_owned();
                Ok(())
            }
            Value::Number(n) => {
                let mut out = Vec::new();
                tr.apply(k, &text_type, n.to_string().as_bytes(), &mut out)?;
                *node = Value::String(String::from_utf8_lossy(&out).into_owned());
                Ok(())
            }
            Value::Array(a) => a.iter_mut().try_for_each(|c| json_leaf(k, tr, c)),
            Value::Object(m) => m.values_mut().try_for_each(|c| json_leaf(k, tr, c)),
            Value::Null | Value::Bool(_) => Ok(()),
        },
    }
}
