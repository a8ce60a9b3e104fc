//! PostgreSQL plain dumps: `COPY … FROM stdin` blocks in text format,
//! `INSERT`s, and the DDL that declares types and keys.

use std::io::{self, BufRead};

use memchr::memchr;

use super::schema::{self, SqlType, TableBody, TypeKind};
use super::sql::{self, Cur, Ended, Splitter};
use super::values::{self, Codec, Lit};
use super::{Action, Dialect, Engine, Plan, ProblemKind, TableName};

pub(crate) fn run<R: BufRead>(e: &mut Engine<'_>, r: &mut R) -> io::Result<()> {
    let mut sp = Splitter::new(Dialect::Postgres);
    let mut stmt = Vec::new();
    while let Some(how) = sp.next(r, &mut stmt)? {
        e.line = sp.line;
        statement(e, &stmt, how, r, &mut sp)?;
    }
    e.line = sp.line;
    Ok(())
}

fn name_of(parts: Vec<String>) -> TableName {
    let mut parts = parts;
    let table = parts.pop().unwrap_or_default();
    let schema = parts.pop().unwrap_or_else(|| "public".into());
    (schema, table)
}

fn statement<R: BufRead>(
    e: &mut Engine<'_>,
    stmt: &[u8],
    how: Ended,
    r: &mut R,
    sp: &mut Splitter,
) -> io::Result<()> {
    if how == Ended::ClientCommand {
        return e.write(stmt);
    }
    let mut c = Cur::new(stmt, Dialect::Postgres);
    c.ws();
    if c.kw("copy") {
        if let Some(header) = copy_header(&mut c)
            && how == Ended::Terminator
        {
            e.write(stmt)?;
            let carry = sp.take_carry();
            e.write(&carry)?;
            let plan = if header.text_format {
                e.plan(&header.name, header.columns)
            } else {
                e.problem(
                    ProblemKind::BadValue,
                    format!("{}.{}", header.name.0, header.name.1),
                    "COPY data in CSV, binary or with a custom delimiter cannot be anonymized; \
                         dump with pg_dump's default (text) format"
                        .into(),
                    None,
                    None,
                );
                None
            };
            return copy_block(e, r, sp, plan.as_deref(), &header.name);
        }
        return e.write(stmt);
    }
    let save = c.i;
    if c.kw("insert") && c.kw("into") {
        return insert(e, stmt, c, how);
    }
    c.i = save;
    if c.kw("create") {
        let unique = c.kw("unique");
        if unique && c.kw("index") {
            create_unique_index(e, &mut c);
        } else if !unique {
            let _ = c.kw("unlogged") || c.kw("temporary") || c.kw("temp");
            if c.kw("table") {
                create_table(e, &mut c);
            }
        }
        return e.write(stmt);
    }
    c.i = save;
    if c.kw("alter") && c.kw("table") {
        alter_table(e, &mut c);
        return e.write(stmt);
    }
    c.i = save;
    if c.kw("select") && is_large_object_call(&mut c) {
        let drop_data = e.large_object();
        let write_call = !(drop_data && c.kw("lowrite"));
        if write_call {
            return e.write(stmt);
        }
        // Keep the bytes before the statement (comments, newlines).
        return e.write(&stmt[..save]);
    }
    e.write(stmt)
}

fn is_large_object_call(c: &mut Cur<'_>) -> bool {
    let save = c.i;
    let _ = c.kw("pg_catalog") && c.punct(b'.');
    let after = c.i;
    for f in [
        "lo_create",
        "lo_open",
        "lowrite",
        "lo_from_bytea",
        "lo_import",
        "lo_put",
    ] {
        if c.kw(f) {
            c.i = after;
            return true;
        }
    }
    c.i = save;
    false
}

/// A `COPY … FROM stdin` statement.
struct CopyHeader {
    name: TableName,
    columns: Option<Vec<String>>,
    /// The default text format (the only one understood).
    text_format: bool,
}

/// `COPY name [(cols)] FROM stdin [options]`; `None` for other COPYs.
fn copy_header(c: &mut Cur<'_>) -> Option<CopyHeader> {
    let name = name_of(c.qualified()?);
    let columns = if c.peek_punct(b'(') {
        Some(c.ident_list()?)
    } else {
        None
    };
    if !(c.kw("from") && c.kw("stdin")) {
        return None;
    }
    c.ws();
    let rest = String::from_utf8_lossy(&c.b[c.i..]).to_ascii_lowercase();
    let text_format =
        !(rest.contains("csv") || rest.contains("binary") || rest.contains("delimiter"));
    Some(CopyHeader {
        name,
        columns,
        text_format,
    })
}

fn is_end_marker(line: &[u8]) -> bool {
    matches!(line, b"\\.\n" | b"\\." | b"\\.\r\n")
}

fn copy_block<R: BufRead>(
    e: &mut Engine<'_>,
    r: &mut R,
    sp: &mut Splitter,
    plan: Option<&Plan>,
    name: &TableName,
) -> io::Result<()> {
    let mut scratch = Scratch::default();
    let mut long_line = Vec::new();
    let passthrough = plan.is_none_or(|p| !p.transform && !p.scan);
    loop {
        // Whole lines are processed inside the reader's buffer, without copying;
        // runs of untouched lines are written with one call.
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if avail.is_empty() {
            e.problem(
                ProblemKind::BadValue,
                format!("{}.{}", name.0, name.1),
                "the dump ends inside COPY data (no `\\.` line): it is truncated".into(),
                None,
                None,
            );
            return Ok(());
        }
        let mut pos = 0;
        let mut done = false;
        while let Some(p) = memchr(b'\n', &avail[pos..]) {
            let line = &avail[pos..pos + p + 1];
            sp.line += 1;
            if is_end_marker(line) {
                pos += line.len();
                done = true;
                break;
            }
            if let (false, Some(plan)) = (passthrough, plan) {
                row(e, plan, line, sp.line, &mut scratch)?;
            }
            pos += line.len();
        }
        if passthrough || done {
            // Untouched lines, then the end marker (or just the end marker).
            let from = if passthrough {
                0
            } else {
                pos - end_len(&avail[..pos])
            };
            e.write(&avail[from..pos])?;
        }
        r.consume(pos);
        if done {
            e.line = sp.line;
            return Ok(());
        }
        if pos == 0 {
            // A line longer than the buffer.
            long_line.clear();
            sql::read_line_limited(r, &mut long_line)?;
            sp.line += 1;
            if is_end_marker(&long_line) {
                e.line = sp.line;
                return e.write(&long_line);
            }
            match plan {
                Some(plan) if !passthrough => row(e, plan, &long_line, sp.line, &mut scratch)?,
                _ => e.write(&long_line)?,
            }
        }
    }
}

/// The length of the end marker line at the end of `b`.
fn end_len(b: &[u8]) -> usize {
    if b.ends_with(b"\\.\r\n") { 4 } else { 3 }
}

#[derive(Default)]
struct Scratch {
    out: Vec<u8>,
    buf: Vec<u8>,
    tbuf: Vec<u8>,
}

/// One COPY row of a table with transformed or scanned columns.
fn row(
    e: &mut Engine<'_>,
    plan: &Plan,
    line: &[u8],
    line_no: u64,
    s: &mut Scratch,
) -> io::Result<()> {
    let Scratch { out, buf, tbuf } = s;
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    out.clear();
    let mut start = 0usize;
    let n = plan.cols.len();
    let mut fields_ok = true;
    for (i, col) in plan.cols.iter().enumerate() {
        let end = if i + 1 == n {
            if memchr(b'\t', &body[start..]).is_some() {
                fields_ok = false;
            }
            body.len()
        } else {
            match memchr(b'\t', &body[start..]) {
                Some(p) => start + p,
                None => {
                    fields_ok = false;
                    break;
                }
            }
        };
        let field = &body[start..end];
        let null = field == b"\\N";
        match &col.action {
            Action::Keep => out.extend_from_slice(field),
            Action::Scan(d) => {
                if !null {
                    e.count(col);
                    if memchr(b'\\', field).is_some() {
                        copy_decode(field, buf);
                        e.scan(*d, buf);
                    } else {
                        e.scan(*d, field);
                    }
                }
                out.extend_from_slice(field);
            }
            Action::Transform(..) => {
                if null {
                    out.extend_from_slice(field);
                } else {
                    e.count(col);
                    let value: &[u8] = if memchr(b'\\', field).is_some() {
                        copy_decode(field, buf);
                        buf
                    } else {
                        field
                    };
                    match e.transform(col, value, tbuf) {
                        Some(true) => copy_encode(tbuf, out),
                        Some(false) => out.extend_from_slice(b"\\N"),
                        None => out.extend_from_slice(field),
                    }
                }
            }
        }
        if i + 1 < n {
            out.push(b'\t');
        }
        start = end + 1;
    }
    if !fields_ok {
        e.problem(
            ProblemKind::BadValue,
            plan.table.clone(),
            format!(
                "a COPY row at line {} does not have {} tab-separated fields ({})",
                line_no,
                n,
                plan.columns.join(", ")
            ),
            None,
            None,
        );
        return Ok(());
    }
    if plan.transform {
        if line.ends_with(b"\n") {
            out.push(b'\n');
        }
        e.write(out)?;
    } else {
        e.write(line)?;
    }
    Ok(())
}

/// Decodes one COPY text-format field (not `\N`).
pub(crate) fn copy_decode(field: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < field.len() {
        let Some(p) = memchr(b'\\', &field[i..]) else {
            out.extend_from_slice(&field[i..]);
            return;
        };
        out.extend_from_slice(&field[i..i + p]);
        i += p + 1;
        let Some(&c) = field.get(i) else {
            out.push(b'\\');
            return;
        };
        i += 1;
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match field.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            b'x' if field.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut v = 0u32;
                for _ in 0..2 {
                    match field.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            i += 1;
                        }
                        None => break,
                    }
                }
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
}

/// Encodes a value as a COPY text-format field, as PostgreSQL writes it.
pub(crate) fn copy_encode(v: &[u8], out: &mut Vec<u8>) {
    if v.iter().all(|&c| c > 13 && c != b'\\') {
        out.extend_from_slice(v);
        return;
    }
    for &c in v {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            8 => out.extend_from_slice(b"\\b"),
            12 => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            11 => out.extend_from_slice(b"\\v"),
            c => out.push(c),
        }
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
    let name = name_of(parts);
    let cols = if c.peek_punct(b'(') {
        c.ident_list()
    } else {
        None
    };
    while !c.kw("values") {
        c.ws();
        if c.peek().is_none() || c.kw("select") || c.kw("default") {
            // INSERT … SELECT / DEFAULT VALUES: no literal rows to anonymize.
            e.problem(
                ProblemKind::BadValue,
                format!("{}.{}", name.0, name.1),
                "an INSERT without a VALUES list cannot be anonymized".into(),
                None,
                None,
            );
            return Ok(());
        }
        c.skip_group();
    }
    if how == Ended::Eof {
        e.problem(
            ProblemKind::BadValue,
            format!("{}.{}", name.0, name.1),
            "the dump ends inside an INSERT statement: it is truncated".into(),
            None,
            None,
        );
        return Ok(());
    }
    let Some(plan) = e.plan(&name, cols) else {
        return Ok(());
    };
    values::rows(e, stmt, c, &plan, &PgCodec)
}

fn create_table(e: &mut Engine<'_>, c: &mut Cur<'_>) {
    let _ = c.kw("if") && c.kw("not") && c.kw("exists");
    let Some(parts) = c.qualified() else { return };
    let name = name_of(parts);
    let mut parent = None;
    if c.kw("partition") && c.kw("of") {
        parent = c.qualified().map(name_of);
    }
    let body = if c.peek_punct(b'(') {
        schema::table_body(c).unwrap_or_default()
    } else {
        TableBody::default()
    };
    if parent.is_none() && c.kw("inherits") && c.punct(b'(') {
        parent = c.qualified().map(name_of);
    }
    e.define_table(&name, body.columns);
    if parent.is_some() {
        e.table_mut(&name).parent = parent;
    }
    for key in body.keys {
        e.add_key(&name, key);
    }
}

/// `ALTER TABLE [ONLY] t ADD CONSTRAINT n PRIMARY KEY|UNIQUE (…)` and
/// `ALTER TABLE [ONLY] parent ATTACH PARTITION child …`.
fn alter_table(e: &mut Engine<'_>, c: &mut Cur<'_>) {
    let _ = c.kw("if") && c.kw("exists");
    let _ = c.kw("only");
    let Some(parts) = c.qualified() else { return };
    let name = name_of(parts);
    if c.kw("attach") && c.kw("partition") {
        if let Some(child) = c.qualified().map(name_of) {
            e.set_parent(&child, name);
        }
        return;
    }
    if !c.kw("add") {
        return;
    }
    if c.kw("constraint") {
        let _ = c.ident();
    }
    let key = if c.kw("primary") && c.kw("key") {
        c.ident_list()
    } else if c.kw("unique") {
        if c.kw("nulls") {
            let _ = c.kw("not");
            let _ = c.kw("distinct");
        }
        c.ident_list()
    } else {
        None
    };
    if let Some(cols) = key {
        e.add_key(&name, cols);
    }
}

/// `CREATE UNIQUE INDEX n ON [ONLY] t [USING m] (cols…)`; expression indexes are ignored.
fn create_unique_index(e: &mut Engine<'_>, c: &mut Cur<'_>) {
    let _ = c.kw("concurrently");
    let _ = c.kw("if") && c.kw("not") && c.kw("exists");
    if !c.peek_punct(b'(') && !c.kw("on") {
        let _ = c.qualified();
        if !c.kw("on") {
            return;
        }
    }
    let _ = c.kw("only");
    let Some(parts) = c.qualified() else { return };
    let name = name_of(parts);
    if c.kw("using") {
        let _ = c.ident();
    }
    if let Some(cols) = c.ident_list() {
        e.add_key(&name, cols);
    }
}

/// PostgreSQL literals as `pg_dump --inserts` writes them
/// (`standard_conforming_strings` on; `E'…'` understood too).
pub(crate) struct PgCodec;

impl Codec for PgCodec {
    fn decode(&self, lit: &[u8], buf: &mut Vec<u8>) -> Result<Option<Lit>, String> {
        buf.clear();
        if lit.eq_ignore_ascii_case(b"null") {
            return Ok(None);
        }
        let (esc, body_start) = match lit {
            [b'\'', ..] => (false, 1),
            [b'E' | b'e', b'\'', ..] => (true, 2),
            _ => {
                buf.extend_from_slice(lit);
                return Ok(Some(if values::is_number(lit) {
                    Lit::Number
                } else {
                    Lit::Bare
                }));
            }
        };
        let mut i = body_start;
        while i < lit.len() {
            let c = lit[i];
            if c == b'\'' {
                if lit.get(i + 1) == Some(&b'\'') {
                    buf.push(b'\'');
                    i += 2;
                    continue;
                }
                return Ok(Some(Lit::Quoted));
            }
            if esc && c == b'\\' {
                let j = escape_end(lit, i);
                let mut tmp = Vec::new();
                copy_decode(&lit[i..j], &mut tmp);
                buf.extend_from_slice(&tmp);
                i = j;
                continue;
            }
            buf.push(c);
            i += 1;
        }
        Err("a string literal is not closed".into())
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
        out.push(b'\'');
        for &c in v {
            if c == b'\'' {
                out.push(b'\'');
            }
            out.push(c);
        }
        out.push(b'\'');
        if kind == Lit::Quoted {
            // Keep a cast such as `::jsonb` after the closing quote.
            if let Some(p) = closing_quote(lit) {
                out.extend_from_slice(&lit[p + 1..]);
            }
        }
    }
}

/// The end of the backslash escape starting at `i` (octal, hex or one byte).
fn escape_end(lit: &[u8], i: usize) -> usize {
    let mut j = i + 2;
    match lit.get(i + 1) {
        Some(b'0'..=b'7') => {
            while j < lit.len() && j < i + 4 && (b'0'..=b'7').contains(&lit[j]) {
                j += 1;
            }
        }
        Some(b'x') => {
            while j < lit.len() && j < i + 4 && lit[j].is_ascii_hexdigit() {
                j += 1;
            }
        }
        _ => {}
    }
    j.min(lit.len())
}

fn closing_quote(lit: &[u8]) -> Option<usize> {
    let start = lit.iter().position(|c| *c == b'\'')? + 1;
    let esc = start >= 2 && lit[start - 2].eq_ignore_ascii_case(&b'e');
    let mut i = start;
    while i < lit.len() {
        match lit[i] {
            b'\\' if esc => i += 2,
            b'\'' if lit.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The escaping PostgreSQL's COPY TO writes for text format.
    fn canonical_field() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|v| {
            let mut out = Vec::new();
            copy_encode(&v, &mut out);
            out
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn copy_decode_inverts_encode(v in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut enc = Vec::new();
            copy_encode(&v, &mut enc);
            prop_assert!(!enc.contains(&b'\t') && !enc.contains(&b'\n'));
            let mut dec = Vec::new();
            copy_decode(&enc, &mut dec);
            prop_assert_eq!(dec, v);
        }

        #[test]
        fn canonical_fields_round_trip(f in canonical_field()) {
            let mut dec = Vec::new();
            copy_decode(&f, &mut dec);
            let mut enc = Vec::new();
            copy_encode(&dec, &mut enc);
            prop_assert_eq!(enc, f);
        }

        #[test]
        fn sql_string_literals_round_trip(v in proptest::collection::vec(any::<u8>(), 0..128)) {
            let mut lit = Vec::new();
            PgCodec.encode(b"'x'", Lit::Quoted, &SqlType::text(), Some(&v), &mut lit);
            let mut dec = Vec::new();
            prop_assert_eq!(PgCodec.decode(&lit, &mut dec).unwrap(), Some(Lit::Quoted));
            prop_assert_eq!(dec, v);
        }
    }

    #[test]
    fn copy_escapes() {
        let mut out = Vec::new();
        copy_decode(b"a\\tb\\nc\\\\d\\101\\x41\\x4g\\q\\0", &mut out);
        assert_eq!(out, b"a\tb\nc\\dAA\x04gq\0");
        copy_decode(b"\\\\N", &mut out);
        assert_eq!(out, b"\\N");
        copy_decode(b"trailing\\", &mut out);
        assert_eq!(out, b"trailing\\");
    }

    #[test]
    fn e_strings_and_casts() {
        let mut buf = Vec::new();
        assert_eq!(
            PgCodec.decode(b"E'a\\nb\\'c''d\\x41'", &mut buf).unwrap(),
            Some(Lit::Quoted)
        );
        assert_eq!(buf, b"a\nb'c'dA");
        assert_eq!(PgCodec.decode(b"NULL", &mut buf).unwrap(), None);
        assert_eq!(
            PgCodec.decode(b"-12.5", &mut buf).unwrap(),
            Some(Lit::Number)
        );
        assert_eq!(
            PgCodec.decode(b"'{}'::jsonb", &mut buf).unwrap(),
            Some(Lit::Quoted)
        );
        let mut out = Vec::new();
        PgCodec.encode(
            b"'{}'::jsonb",
            Lit::Quoted,
            &SqlType::text(),
            Some(b"{\"a\":1}"),
            &mut out,
        );
        assert_eq!(out, b"'{\"a\":1}'::jsonb");
        assert!(PgCodec.decode(b"'open", &mut buf).is_err());
    }
}
