//! MariaDB/MySQL dumps (`mariadb-dump`, `mysqldump`): extended INSERTs with
//! backslash escapes, `_binary '…'` and `0x…` literals; column order, types
//! and keys from `CREATE TABLE`; the database name from the header or `USE`.

use std::io::{self, BufRead};

use memchr::memmem;

use super::schema::{self, SqlType, TypeKind};
use super::sql::{Cur, Ended, Splitter};
use super::values::{self, Codec, Lit};
use super::{Dialect, Engine, ProblemKind, TableName};

pub(crate) fn run<R: BufRead>(e: &mut Engine<'_>, r: &mut R) -> io::Result<()> {
    let mut sp = Splitter::new(Dialect::Mysql);
    let mut stmt = Vec::new();
    while let Some(how) = sp.next(r, &mut stmt)? {
        e.line = sp.line;
        statement(e, &stmt, how)?;
    }
    e.line = sp.line;
    Ok(())
}

/// `-- Host: localhost    Database: shop` in the dump header.
fn header_database(stmt: &[u8]) -> Option<String> {
    let p = memmem::find(stmt, b"-- Host:")?;
    let line_end = stmt[p..]
        .iter()
        .position(|c| *c == b'\n')
        .map_or(stmt.len(), |q| p + q);
    let line = &stmt[p..line_end];
    let d = memmem::find(line, b"Database: ")?;
    let name = String::from_utf8_lossy(&line[d + 10..]).trim().to_string();
    (!name.is_empty()).then_some(name)
}

fn name_of(e: &Engine<'_>, mut parts: Vec<String>) -> TableName {
    let table = parts.pop().unwrap_or_default();
    let schema = parts.pop().unwrap_or_else(|| e.database.clone());
    (schema, table)
}

fn statement(e: &mut Engine<'_>, stmt: &[u8], how: Ended) -> io::Result<()> {
    if e.database.is_empty()
        && let Some(db) = header_database(stmt)
    {
        e.database = db;
    }
    if how == Ended::ClientCommand {
        return e.write(stmt);
    }
    let mut c = Cur::new(stmt, Dialect::Mysql);
    c.ws();
    let save = c.i;
    if c.kw("insert") || c.kw("replace") {
        let _ = c.kw("low_priority") || c.kw("delayed") || c.kw("high_priority");
        let _ = c.kw("ignore");
        // MySQL allows `INSERT t VALUES …` without INTO.
        let _ = c.kw("into");
        return insert(e, stmt, c, how);
    }
    c.i = save;
    if c.kw("use") {
        if let Some(db) = c.ident() {
            e.database = db;
        }
        return e.write(stmt);
    }
    c.i = save;
    if c.kw("create") {
        if c.kw("unique") && c.kw("index") {
            let _ = c.ident();
            if c.kw("on")
                && let Some(parts) = c.qualified()
            {
                let name = name_of(e, parts);
                if let Some(cols) = c.ident_list() {
                    e.add_key(&name, cols);
                }
            }
        } else {
            let _ = c.kw("temporary");
            if c.kw("table") {
                create_table(e, &mut c);
            }
        }
        return e.write(stmt);
    }
    c.i = save;
    if c.kw("alter") && c.kw("table") {
        if let Some(parts) = c.qualified() {
            let name = name_of(e, parts);
            while c.kw("add") {
                if c.kw("constraint") && !c.peek_punct(b'(') {
                    let save = c.i;
                    if !(c.kw("primary") || c.kw("unique")) {
                        let _ = c.ident();
                    } else {
                        c.i = save;
                    }
                }
                let key = if c.kw("primary") && c.kw("key") {
                    c.ident_list()
                } else if c.kw("unique") {
                    let _ = c.kw("key") || c.kw("index");
                    if !c.peek_punct(b'(') {
                        let _ = c.ident();
                    }
                    c.ident_list()
                } else {
                    None
                };
                match key {
                    Some(cols) => e.add_key(&name, cols),
                    None => break,
                }
                if !c.punct(b',') {
                    break;
                }
            }
        }
        return e.write(stmt);
    }
    e.write(stmt)
}

fn create_table(e: &mut Engine<'_>, c: &mut Cur<'_>) {
    let _ = c.kw("if") && c.kw("not") && c.kw("exists");
    let Some(parts) = c.qualified() else { return };
    let name = name_of(e, parts);
    let Some(body) = schema::table_body(c) else {
        return;
    };
    e.define_table(&name, body.columns);
    for key in body.keys {
        e.add_key(&name, key);
    }
}

fn insert(e: &mut Engine<'_>, stmt: &[u8], mut c: Cur<'_>, how: Ended) -> io::Result<()> {
    let Some(parts) = c.qualified() else {
        e.problem(
            ProblemKind::BadValue,
            format!("line {}", e.line),
            "an INSERT whose table name cannot be read cannot be anonymized".into(),
            None,
            None,
        );
        return Ok(());
    };
    let name = name_of(e, parts);
    let cols = if c.peek_punct(b'(') {
        c.ident_list()
    } else {
        None
    };
    if !(c.kw("values") || c.kw("value")) || how == Ended::Eof {
        e.problem(
            ProblemKind::BadValue,
            format!("{}.{}", name.0, name.1),
            if how == Ended::Eof {
                "the dump ends inside an INSERT statement: it is truncated".into()
            } else {
                "an INSERT without a VALUES list cannot be anonymized".into()
            },
            None,
            None,
        );
        return Ok(());
    }
    let Some(plan) = e.plan(&name, cols) else {
        return Ok(());
    };
    values::rows(e, stmt, c, &plan, &MyCodec)
}

/// MySQL literals as `mysqldump`/`mariadb-dump` write them.
pub(crate) struct MyCodec;

/// Decodes the body of a backslash-escaped MySQL string (without quotes).
pub(crate) fn unescape(body: &[u8], q: u8, out: &mut Vec<u8>) {
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        if c == b'\\' && i + 1 < body.len() {
            let n = body[i + 1];
            match n {
                b'0' => out.push(0),
                b'b' => out.push(8),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'Z' => out.push(26),
                b'%' | b'_' => {
                    out.push(b'\\');
                    out.push(n);
                }
                other => out.push(other),
            }
            i += 2;
        } else if c == q && body.get(i + 1) == Some(&q) {
            out.push(q);
            i += 2;
        } else {
            out.push(c);
            i += 1;
        }
    }
}

/// Escapes a value as `mysqldump` does inside single quotes.
pub(crate) fn escape(v: &[u8], out: &mut Vec<u8>) {
    for &c in v {
        match c {
            0 => out.extend_from_slice(b"\\0"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\'' => out.extend_from_slice(b"\\'"),
            b'"' => out.extend_from_slice(b"\\\""),
            26 => out.extend_from_slice(b"\\Z"),
            c => out.push(c),
        }
    }
}

/// The prefix before the opening quote (`_binary `, `N`), if this is a string.
fn string_start(lit: &[u8]) -> Option<usize> {
    match lit.first()? {
        b'\'' | b'"' => Some(0),
        b'_' | b'N' | b'n' => {
            let q = lit.iter().position(|c| *c == b'\'' || *c == b'"')?;
            let prefix = &lit[..q];
            let ok = prefix.eq_ignore_ascii_case(b"n")
                || (prefix[0] == b'_'
                    && prefix[1..].iter().all(|c| {
                        c.is_ascii_alphanumeric() || *c == b'_' || c.is_ascii_whitespace()
                    }));
            ok.then_some(q)
        }
        _ => None,
    }
}

fn unhex(h: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    if !h.len().is_multiple_of(2) || !h.iter().all(u8::is_ascii_hexdigit) {
        return Err("a hex literal is malformed".into());
    }
    for pair in h.chunks(2) {
        let d = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        out.push(d(pair[0]) << 4 | d(pair[1]));
    }
    Ok(())
}

impl Codec for MyCodec {
    fn decode(&self, lit: &[u8], buf: &mut Vec<u8>) -> Result<Option<Lit>, String> {
        buf.clear();
        if lit.eq_ignore_ascii_case(b"null") {
            return Ok(None);
        }
        if let Some(q) = string_start(lit) {
            let quote = lit[q];
            if lit.len() < q + 2 || lit[lit.len() - 1] != quote {
                return Err("a string literal is not closed".into());
            }
            unescape(&lit[q + 1..lit.len() - 1], quote, buf);
            return Ok(Some(Lit::Quoted));
        }
        if lit.len() > 2 && (lit.starts_with(b"0x") || lit.starts_with(b"0X")) {
            unhex(&lit[2..], buf)?;
            return Ok(Some(Lit::Hex));
        }
        if lit.len() >= 3
            && (lit[0] == b'x' || lit[0] == b'X')
            && lit[1] == b'\''
            && lit.ends_with(b"'")
        {
            unhex(&lit[2..lit.len() - 1], buf)?;
            return Ok(Some(Lit::Hex));
        }
        buf.extend_from_slice(lit);
        Ok(Some(if values::is_number(lit) {
            Lit::Number
        } else {
            Lit::Bare
        }))
    }

    fn encode(&self, lit: &[u8], kind: Lit, ty: &SqlType, value: Option<&[u8]>, out: &mut Vec<u8>) {
        let Some(v) = value else {
            out.extend_from_slice(b"NULL");
            return;
        };
        let numeric_col = matches!(ty.kind, TypeKind::Int { .. } | TypeKind::Numeric);
        if kind == Lit::Number && numeric_col && values::is_number(v) {
            out.extend_from_slice(v);
            return;
        }
        if kind == Lit::Hex && !v.is_empty() {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.extend_from_slice(b"0x");
            for b in v {
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
            return;
        }
        if kind == Lit::Quoted
            && let Some(q) = string_start(lit)
        {
            out.extend_from_slice(&lit[..q]);
        }
        out.push(b'\'');
        escape(v, out);
        out.push(b'\'');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn escapes_round_trip(v in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut lit = Vec::new();
            MyCodec.encode(b"'x'", Lit::Quoted, &SqlType::text(), Some(&v), &mut lit);
            prop_assert!(!lit.contains(&b'\n'));
            let mut dec = Vec::new();
            prop_assert_eq!(MyCodec.decode(&lit, &mut dec).unwrap(), Some(Lit::Quoted));
            // \% and \_ are the only escapes MySQL keeps the backslash of.
            prop_assert_eq!(dec, v);
        }

        #[test]
        fn canonical_literals_round_trip(v in proptest::collection::vec(any::<u8>(), 0..128)) {
            let mut canonical = Vec::new();
            escape(&v, &mut canonical);
            let mut dec = Vec::new();
            unescape(&canonical, b'\'', &mut dec);
            let mut again = Vec::new();
            escape(&dec, &mut again);
            prop_assert_eq!(again, canonical);
        }

        #[test]
        fn hex_round_trips(v in proptest::collection::vec(any::<u8>(), 1..64)) {
            let mut lit = Vec::new();
            MyCodec.encode(b"0x00", Lit::Hex, &SqlType::parse("blob"), Some(&v), &mut lit);
            let mut dec = Vec::new();
            prop_assert_eq!(MyCodec.decode(&lit, &mut dec).unwrap(), Some(Lit::Hex));
            prop_assert_eq!(dec, v);
        }
    }

    #[test]
    fn literals() {
        let mut buf = Vec::new();
        assert_eq!(
            MyCodec.decode(b"_binary 'a\\0b\\Z'", &mut buf).unwrap(),
            Some(Lit::Quoted)
        );
        assert_eq!(buf, b"a\0b\x1a");
        assert_eq!(MyCodec.decode(b"0x4142", &mut buf).unwrap(), Some(Lit::Hex));
        assert_eq!(buf, b"AB");
        assert_eq!(
            MyCodec.decode(b"X'4142'", &mut buf).unwrap(),
            Some(Lit::Hex)
        );
        assert_eq!(
            MyCodec.decode(b"'it''s \\%'", &mut buf).unwrap(),
            Some(Lit::Quoted)
        );
        assert_eq!(buf, b"it's \\%");
        assert_eq!(MyCodec.decode(b"NULL", &mut buf).unwrap(), None);
        assert_eq!(
            MyCodec.decode(b"-1.5e3", &mut buf).unwrap(),
            Some(Lit::Number)
        );
        assert!(MyCodec.decode(b"0x414", &mut buf).is_err());
        let mut out = Vec::new();
        MyCodec.encode(
            b"_binary 'zz'",
            Lit::Quoted,
            &SqlType::parse("blob"),
            Some(b"q'"),
            &mut out,
        );
        assert_eq!(out, b"_binary 'q\\''");
        assert_eq!(
            header_database(b"-- MariaDB dump\n-- Host: 127.0.0.1    Database: shop\n"),
            Some("shop".into())
        );
    }
}
