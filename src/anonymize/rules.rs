//! The rules file: `"schema.table.column"` patterns mapped to transformers,
//! and the "most specific pattern wins" resolution.

use std::fmt;
use std::sync::Arc;

use super::Error;
use super::transform::Transformer;

/// One part of a pattern (`schema`, `table` or `column`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    text: String,
    wildcards: u32,
}

impl Part {
    fn new(text: String) -> Part {
        let wildcards = text.bytes().filter(|b| *b == b'*' || *b == b'?').count() as u32;
        Part { text, wildcards }
    }

    fn is_literal(&self) -> bool {
        self.wildcards == 0
    }

    fn literal_chars(&self) -> u32 {
        self.text.chars().count() as u32 - self.wildcards
    }

    pub(crate) fn matches(&self, name: &str) -> bool {
        if self.is_literal() {
            self.text == name
        } else {
            glob_match(self.text.as_bytes(), name.as_bytes())
        }
    }
}

/// Glob matching with `*` (any run, also empty) and `?` (one character).
/// Iterative with one backtrack point, so it is linear-ish and cannot blow up.
pub(crate) fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let text = String::from_utf8_lossy(text);
    let pattern = String::from_utf8_lossy(pattern);
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A parsed `"schema.table.column"` pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    pub(crate) source: String,
    parts: [Part; 3],
}

/// How specific a pattern is; larger wins. Compared field by field:
/// column part literal, table part literal, schema part literal, fewer
/// wildcards in total, more literal characters in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Specificity {
    column_literal: bool,
    table_literal: bool,
    schema_literal: bool,
    fewer_wildcards: i64,
    literal_chars: u32,
}

impl Pattern {
    pub(crate) fn parse(source: &str) -> Result<Pattern, Error> {
        let parts = split_pattern(source).map_err(|why| {
            Error::Rules(format!(
                "the key {source:?} is not a \"schema.table.column\" pattern: {why}. \
                 Write three dot-separated parts, e.g. \"public.users.email\" or \"*.orders.*\"; \
                 wrap a part containing a dot in double quotes: '\"my.schema\".users.email'"
            ))
        })?;
        let [a, b, c]: [String; 3] = parts.try_into().map_err(|p: Vec<String>| {
            Error::Rules(format!(
                "the key {source:?} has {} part(s); a pattern has exactly three, \
                 \"schema.table.column\" (for MySQL the schema is the database name or *), \
                 e.g. \"*.users.email\"",
                p.len()
            ))
        })?;
        Ok(Pattern {
            source: source.to_owned(),
            parts: [Part::new(a), Part::new(b), Part::new(c)],
        })
    }

    pub(crate) fn matches(&self, schema: &str, table: &str, column: &str) -> bool {
        self.parts[2].matches(column)
            && self.parts[1].matches(table)
            && self.parts[0].matches(schema)
    }

    /// Whether the column part names the column literally (an explicit decision).
    pub(crate) fn column_is_literal(&self) -> bool {
        self.parts[2].is_literal()
    }

    pub(crate) fn specificity(&self) -> Specificity {
        let wildcards: u32 = self.parts.iter().map(|p| p.wildcards).sum();
        Specificity {
            column_literal: self.parts[2].is_literal(),
            table_literal: self.parts[1].is_literal(),
            schema_literal: self.parts[0].is_literal(),
            fewer_wildcards: -i64::from(wildcards),
            literal_chars: self.parts.iter().map(Part::literal_chars).sum(),
        }
    }
}

fn split_pattern(source: &str) -> Result<Vec<String>, &'static str> {
    let mut parts = Vec::new();
    let mut chars = source.chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("a double quote is not closed"),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(c) => part.push(c),
                }
            }
            match chars.peek() {
                None | Some('.') => {}
                Some(_) => return Err("a quoted part must be followed by a dot or the end"),
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                part.push(c);
                chars.next();
            }
        }
        if part.is_empty() {
            return Err("a part is empty");
        }
        parts.push(part);
        match chars.next() {
            None => return Ok(parts),
            Some('.') => {}
            Some(_) => return Err("unexpected character"),
        }
    }
}

/// One rule: a pattern and what to do with the columns it matches.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) pattern: Pattern,
    pub(crate) transformer: Arc<Transformer>,
}

/// The anonymization rules, parsed from TOML. See the module documentation
/// of [`crate::anonymize`] for the format.
#[derive(Debug, Clone)]
pub struct Rules {
    pub(crate) rules: Vec<Rule>,
}

/// The rule chosen for one column.
#[derive(Debug, Clone)]
pub(crate) struct Resolved<'r> {
    pub(crate) rule: &'r Rule,
    /// The column was matched through the partition's parent table.
    pub(crate) via_parent: bool,
}

impl Rules {
    /// Parses a rules file. Errors name the offending key and show a valid line.
    pub fn from_toml(text: &str) -> Result<Rules, Error> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            Error::Rules(format!("the rules file is not valid TOML: {e}"))
        })?;
        let mut rules = Vec::with_capacity(table.len());
        for (key, value) in table {
            let pattern = Pattern::parse(&key)?;
            let transformer = Transformer::from_toml(&value).map_err(|why| {
                Error::Rules(format!(
                    "the rule for {key:?} is invalid: {why}. Examples: \"{key}\" = \"email\", \
                     \"{key}\" = {{ fixed = \"nobody@example.com\" }}, \
                     \"{key}\" = {{ date-shift = {{ max-days = 30 }} }}"
                ))
            })?;
            rules.push(Rule {
                pattern,
                transformer: Arc::new(transformer),
            });
        }
        Ok(Rules { rules })
    }

    /// Finds the most specific rule for a column. `parent` is the root of a
    /// partitioned (or inheritance) table: its rules apply to the partition,
    /// and on equal specificity the partition's own name wins.
    /// Returns `Err` with the two patterns when the best match is a tie.
    pub(crate) fn resolve(
        &self,
        table: (&str, &str),
        parent: Option<(&str, &str)>,
        column: &str,
    ) -> Result<Option<Resolved<'_>>, (String, String)> {
        let mut best: Option<(Specificity, bool, &Rule)> = None;
        let mut tie: Option<&Rule> = None;
        let names = std::iter::once((table, false)).chain(parent.map(|p| (p, true)));
        for ((schema, name), via_parent) in names {
            for rule in &self.rules {
                if !rule.pattern.matches(schema, name, column) {
                    continue;
                }
                let spec = rule.pattern.specificity();
                match &best {
                    None => {
                        best = Some((spec, via_parent, rule));
                        tie = None;
                    }
                    Some((b, bp, br)) => {
                        if spec > *b {
                            best = Some((spec, via_parent, rule));
                            tie = None;
                        } else if spec == *b && via_parent == *bp && !std::ptr::eq(*br, rule) {
                            tie = Some(rule);
                        }
                    }
                }
            }
        }
        match (best, tie) {
            (Some((_, _, a)), Some(b)) => Err((a.pattern.source.clone(), b.pattern.source.clone())),
            (Some((_, via_parent, rule)), None) => Ok(Some(Resolved { rule, via_parent })),
            (None, _) => Ok(None),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Quotes one name part for a pattern key, so dots in names survive.
/// (`*` and `?` stay globs even when quoted: names containing them are
/// matched by the glob, which is acceptable for such rare names.)
pub(crate) fn pattern_part(name: &str) -> String {
    if name.contains('.') || name.starts_with('"') {
        format!("\"{}\"", name.replace('"', "\"\""))
    } else {
        name.to_owned()
    }
}

/// Formats a TOML key for `schema.table.column`.
pub(crate) fn toml_key(schema: &str, table: &str, column: &str) -> String {
    let key = format!(
        "{}.{}.{}",
        pattern_part(schema),
        pattern_part(table),
        pattern_part(column)
    );
    toml_string(&key)
}

/// A TOML basic string for any text.
pub(crate) fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Rules {
        Rules::from_toml(text).unwrap()
    }

    fn pick(r: &Rules, s: &str, t: &str, c: &str) -> Option<String> {
        r.resolve((s, t), None, c)
            .unwrap()
            .map(|x| x.rule.pattern.source.clone())
    }

    #[test]
    fn glob_basics() {
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"us?rs", b"users"));
        assert!(glob_match(b"*_email", b"work_email"));
        assert!(!glob_match(b"*_email", b"email"));
        assert!(glob_match(b"a*b*c", b"aXXbYYc"));
        assert!(!glob_match(b"a*b*c", b"aXXbYY"));
        assert!(glob_match(b"**", b"x"));
    }

    #[test]
    fn quoted_parts_and_spaces() {
        let p = Pattern::parse("Sales Dept.Order Lines.customer_email").unwrap();
        assert!(p.matches("Sales Dept", "Order Lines", "customer_email"));
        let p = Pattern::parse("\"my.schema\".t.\"a\"\"b\"").unwrap();
        assert!(p.matches("my.schema", "t", "a\"b"));
        assert!(Pattern::parse("a.b").is_err());
        assert!(Pattern::parse("a.b.c.d").is_err());
        assert!(Pattern::parse("a..c").is_err());
    }

    #[test]
    fn column_part_weighs_most() {
        let r = rules(
            r#"
            "*.*.email" = "email"
            "public.users.*" = "keep"
        "#,
        );
        assert_eq!(pick(&r, "public", "users", "email").unwrap(), "*.*.email");
        assert_eq!(pick(&r, "public", "users", "id").unwrap(), "public.users.*");
        assert_eq!(pick(&r, "other", "t", "id"), None);
    }

    #[test]
    fn literal_beats_glob_and_fewer_wildcards_win() {
        let r = rules(
            r#"
            "*.*.*" = "keep"
            "public.*.*" = "keep"
            "public.users.*" = "keep"
            "public.user?.*" = "null"
            "public.users.e*" = "hash"
            "public.users.em*" = "email"
        "#,
        );
        assert_eq!(pick(&r, "public", "users", "id").unwrap(), "public.users.*");
        assert_eq!(
            pick(&r, "public", "usersX", "id"),
            Some("public.*.*".into())
        );
        assert_eq!(pick(&r, "x", "y", "z").unwrap(), "*.*.*");
        // Same wildcard count: more literal characters win.
        assert_eq!(
            pick(&r, "public", "users", "email").unwrap(),
            "public.users.em*"
        );
        assert_eq!(
            pick(&r, "public", "users", "eid").unwrap(),
            "public.users.e*"
        );
    }

    #[test]
    fn equal_specificity_is_an_ambiguity() {
        let r = rules(
            r#"
            "public.*.email" = "email"
            "*.users.email" = "hash"
            "public.u*.phone" = "phone"
            "public.*s.phone" = "keep"
        "#,
        );
        // table literal beats schema literal: not a tie.
        assert_eq!(
            pick(&r, "public", "users", "email").unwrap(),
            "*.users.email"
        );
        let err = r.resolve(("public", "users"), None, "phone").unwrap_err();
        assert!(err.0.contains("phone") && err.1.contains("phone"));
    }

    #[test]
    fn partition_uses_parent_rules_and_own_name_wins_ties() {
        let r = rules(
            r#"
            "*.*.*" = "keep"
            "public.events.email" = "email"
            "public.events_2024.note" = "redact"
            "public.events.note" = "null"
        "#,
        );
        let got = r
            .resolve(
                ("public", "events_2024"),
                Some(("public", "events")),
                "email",
            )
            .unwrap()
            .unwrap();
        assert_eq!(got.rule.pattern.source, "public.events.email");
        assert!(got.via_parent);
        let got = r
            .resolve(
                ("public", "events_2024"),
                Some(("public", "events")),
                "note",
            )
            .unwrap()
            .unwrap();
        assert_eq!(got.rule.pattern.source, "public.events_2024.note");
    }

    #[test]
    fn bad_rules_are_explained() {
        let e = Rules::from_toml(r#""a.b.c" = "emial""#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a.b.c") && e.contains("emial"), "{e}");
        let e = Rules::from_toml(r#""a.b" = "email""#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("exactly three"), "{e}");
        assert!(Rules::from_toml("x = ").is_err());
    }

    #[test]
    fn toml_keys_round_trip() {
        let key = toml_key("my.schema", "Order Lines", "e\"mail");
        let text = format!("{key} = \"keep\"");
        let r = rules(&text);
        assert!(
            r.rules[0]
                .pattern
                .matches("my.schema", "Order Lines", "e\"mail")
        );
    }
}
