//! Column types and `CREATE TABLE` bodies, as far as the anonymizer needs
//! them: types decide how values are fitted, keys decide which rules could
//! not restore.

use super::sql::{Cur, is_ident_byte};

/// A column type as far as the transformers care.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SqlType {
    pub(crate) kind: TypeKind,
    /// Maximum length in characters (`varchar(n)`, `char(n)`).
    pub(crate) max_len: Option<u32>,
    pub(crate) array: bool,
    /// The type as declared, for messages.
    pub(crate) declared: String,
}

/// The families of column types.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum TypeKind {
    Int { min: i128, max: i128 },
    Numeric,
    Bool,
    Text,
    Uuid,
    Date,
    Timestamp,
    Time,
    Json,
    Binary,
    Enum,
    Other,
}

impl SqlType {
    pub(crate) fn text() -> SqlType {
        SqlType {
            kind: TypeKind::Text,
            max_len: None,
            array: false,
            declared: "text".into(),
        }
    }

    pub(crate) fn unknown() -> SqlType {
        SqlType {
            kind: TypeKind::Other,
            max_len: None,
            array: false,
            declared: "unknown (no CREATE TABLE in the dump)".into(),
        }
    }

    /// Whether detectors scan this column (text-like types only).
    pub(crate) fn is_text_like(&self) -> bool {
        matches!(self.kind, TypeKind::Text | TypeKind::Json | TypeKind::Other)
    }

    /// Parses a declared type such as `character varying(12)`,
    /// `int(10) unsigned`, `timestamp with time zone` or `text[]`.
    pub(crate) fn parse(declared: &str) -> SqlType {
        let lower = declared.trim().to_ascii_lowercase();
        let array = lower.contains('[') || lower.starts_with("_") || lower.ends_with(" array");
        let unqualified = lower
            .strip_prefix("pg_catalog.")
            .or_else(|| lower.strip_prefix("public."))
            .unwrap_or(&lower);
        let (base, args, suffix) = match unqualified.find('(') {
            Some(p) => {
                let close = unqualified[p..]
                    .find(')')
                    .map_or(unqualified.len(), |c| p + c);
                (
                    unqualified[..p].trim(),
                    unqualified[p + 1..close].trim(),
                    unqualified.get(close + 1..).unwrap_or(""),
                )
            }
            None => (unqualified.trim_end_matches("[]").trim(), "", ""),
        };
        let base = base.trim_matches('"');
        let unsigned = suffix.contains("unsigned") || base.contains("unsigned");
        let base = base.split(" unsigned").next().unwrap_or(base).trim();
        let int = |bits: u32| {
            if unsigned {
                TypeKind::Int {
                    min: 0,
                    max: (1i128 << bits) - 1,
                }
            } else {
                TypeKind::Int {
                    min: -(1i128 << (bits - 1)),
                    max: (1i128 << (bits - 1)) - 1,
                }
            }
        };
        let mut max_len = None;
        let kind = match base {
            "smallint" | "int2" | "smallserial" | "serial2" => int(16),
            "integer" | "int" | "int4" | "serial" | "serial4" => int(32),
            "bigint" | "int8" | "bigserial" | "serial8" => int(64),
            "tinyint" => int(8),
            "mediumint" => int(24),
            "numeric" | "decimal" | "real" | "double precision" | "double" | "float" | "float4"
            | "float8" | "money" | "dec" | "fixed" => TypeKind::Numeric,
            "boolean" | "bool" => TypeKind::Bool,
            "character varying"
            | "varchar"
            | "character"
            | "char"
            | "bpchar"
            | "nvarchar"
            | "nchar"
            | "national character varying"
            | "national char" => {
                max_len = args.parse::<u32>().ok();
                if max_len.is_none() && (base == "char" || base == "character") && args.is_empty() {
                    max_len = Some(1);
                }
                TypeKind::Text
            }
            "tinytext" => {
                max_len = Some(255);
                TypeKind::Text
            }
            "text" | "citext" | "name" | "mediumtext" | "longtext" | "xml" | "inet" | "cidr"
            | "macaddr" | "macaddr8" | "tsvector" => TypeKind::Text,
            "uuid" => TypeKind::Uuid,
            "date" => TypeKind::Date,
            "json" | "jsonb" => TypeKind::Json,
            "bytea" | "blob" | "tinyblob" | "mediumblob" | "longblob" | "binary" | "varbinary" => {
                TypeKind::Binary
            }
            "enum" | "set" => TypeKind::Enum,
            b if b.starts_with("timestamp") || b.starts_with("datetime") => TypeKind::Timestamp,
            b if b.starts_with("time") => TypeKind::Time,
            _ => TypeKind::Other,
        };
        SqlType {
            kind,
            max_len,
            array,
            declared: declared.trim().to_string(),
        }
    }
}

/// One column of a `CREATE TABLE`.
#[derive(Debug, Clone)]
pub(crate) struct ColumnDef {
    pub(crate) name: String,
    pub(crate) ty: SqlType,
    pub(crate) not_null: bool,
}

/// What a `CREATE TABLE` body declares.
#[derive(Debug, Default)]
pub(crate) struct TableBody {
    pub(crate) columns: Vec<ColumnDef>,
    /// Column sets of PRIMARY KEY and UNIQUE constraints.
    pub(crate) keys: Vec<Vec<String>>,
    pub(crate) primary: Vec<String>,
}

const COLUMN_STOP_WORDS: &[&str] = &[
    "not",
    "null",
    "default",
    "primary",
    "unique",
    "references",
    "check",
    "constraint",
    "collate",
    "generated",
    "auto_increment",
    "comment",
    "character",
    "charset",
    "on",
    "invisible",
    "visible",
    "storage",
    "compression",
    "identity",
];

/// Parses the body of `CREATE TABLE name ( … )`, the cursor at `(`.
pub(crate) fn table_body(c: &mut Cur<'_>) -> Option<TableBody> {
    if !c.punct(b'(') {
        return None;
    }
    let mut body = TableBody::default();
    loop {
        c.ws();
        if c.punct(b')') {
            return Some(body);
        }
        let item_start = c.i;
        if c.kw("constraint") {
            c.ident()?;
        }
        if c.kw("primary") && c.kw("key") {
            let cols = c.ident_list()?;
            body.primary = cols.clone();
            body.keys.push(cols);
        } else if c.kw("unique") {
            let _ = c.kw("key") || c.kw("index");
            if !c.peek_punct(b'(') {
                c.ident()?;
            }
            if let Some(cols) = c.ident_list() {
                body.keys.push(cols);
            }
        } else if c.i != item_start
            || [
                "key", "index", "foreign", "check", "exclude", "fulltext", "spatial", "like",
                "period",
            ]
            .iter()
            .any(|k| {
                let save = c.i;
                let hit = c.kw(k);
                c.i = save;
                hit
            })
        {
            // A constraint or index we do not need; skipped below.
        } else {
            let name = c.ident()?;
            c.ws();
            let ty_start = c.i;
            c.skip_group()?;
            let mut ty_end = c.i;
            loop {
                c.ws();
                match c.peek()? {
                    b',' | b')' => break,
                    _ => {}
                }
                if COLUMN_STOP_WORDS.iter().any(|w| {
                    let save = c.i;
                    let hit = c.kw(w);
                    c.i = save;
                    hit
                }) {
                    break;
                }
                c.skip_group()?;
                ty_end = c.i;
            }
            let declared = String::from_utf8_lossy(&c.b[ty_start..ty_end]).into_owned();
            let mut ty = SqlType::parse(&declared);
            let rest_start = c.i;
            skip_to_item_end(c)?;
            let rest = String::from_utf8_lossy(&c.b[rest_start..c.i]).to_ascii_lowercase();
            let not_null = rest.contains("not null") || rest.contains("primary key");
            if rest.contains("primary key") {
                body.primary = vec![name.clone()];
                body.keys.push(vec![name.clone()]);
            } else if contains_word(&rest, "unique") {
                body.keys.push(vec![name.clone()]);
            }
            if rest.contains("json_valid") && ty.kind == TypeKind::Text {
                ty.kind = TypeKind::Json;
            }
            body.columns.push(ColumnDef { name, ty, not_null });
            if c.punct(b',') {
                continue;
            }
            continue;
        }
        skip_to_item_end(c)?;
        let _ = c.punct(b',');
    }
}

fn contains_word(hay: &str, word: &str) -> bool {
    hay.match_indices(word).any(|(i, _)| {
        let before = hay[..i].bytes().last().is_none_or(|c| !is_ident_byte(c));
        let after = hay[i + word.len()..]
            .bytes()
            .next()
            .is_none_or(|c| !is_ident_byte(c));
        before && after
    })
}

/// Moves the cursor to the `,` or `)` that ends the current item.
fn skip_to_item_end(c: &mut Cur<'_>) -> Option<()> {
    loop {
        c.ws();
        match c.peek()? {
            b',' | b')' => return Some(()),
            _ => c.skip_group()?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anonymize::Dialect;

    #[test]
    fn types() {
        let t = SqlType::parse("character varying(12)");
        assert_eq!((t.kind, t.max_len), (TypeKind::Text, Some(12)));
        assert_eq!(
            SqlType::parse("int(10) unsigned").kind,
            TypeKind::Int {
                min: 0,
                max: 4_294_967_295
            }
        );
        assert_eq!(
            SqlType::parse("smallint").kind,
            TypeKind::Int {
                min: -32768,
                max: 32767
            }
        );
        assert_eq!(
            SqlType::parse("timestamp(3) with time zone").kind,
            TypeKind::Timestamp
        );
        assert!(SqlType::parse("text[]").array);
        assert_eq!(SqlType::parse("public.mood").kind, TypeKind::Other);
        assert_eq!(SqlType::parse("uuid").kind, TypeKind::Uuid);
    }

    #[test]
    fn create_table_bodies() {
        let sql = b"(\n    id integer NOT NULL,\n    email character varying(255) NOT NULL UNIQUE,\n    note text DEFAULT 'a,b',\n    CONSTRAINT pk PRIMARY KEY (id)\n)";
        let mut c = Cur::new(sql, Dialect::Postgres);
        let body = table_body(&mut c).unwrap();
        let names: Vec<_> = body.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "email", "note"]);
        assert_eq!(
            body.keys,
            vec![vec!["email".to_string()], vec!["id".to_string()]]
        );
        let sql = b"(\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  `code` varchar(12) DEFAULT NULL,\n  `doc` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL CHECK (json_valid(`doc`)),\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `code` (`code`),\n  KEY `x` (`doc`(10))\n)";
        let mut c = Cur::new(sql, Dialect::Mysql);
        let body = table_body(&mut c).unwrap();
        assert_eq!(body.columns.len(), 3);
        assert_eq!(body.columns[2].ty.kind, TypeKind::Json);
        assert_eq!(body.primary, vec!["id".to_string()]);
        assert!(body.keys.contains(&vec!["code".to_string()]));
    }
}
