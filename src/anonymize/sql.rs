//! Lexing shared by both dialects: splitting a dump into statements without
//! looking inside strings, comments or dollar quotes; a small cursor for the
//! statements the anonymizer reads.

use std::io::{self, BufRead};

use memchr::{memchr, memchr2};

use super::Dialect;

/// How a statement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// At the statement terminator (`;`, or the MySQL client's delimiter).
    Terminator,
    /// A client command line: MySQL's `DELIMITER …`, psql's `\restrict …`,
    /// `\connect …` and the like. Passed through as is.
    ClientCommand,
    /// At the end of the input, without a terminator.
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
enum Lex {
    Normal,
    Single { esc: bool },
    Double { esc: bool },
    Backtick,
    Block { depth: u32 },
    Dollar { tag: Vec<u8> },
}

/// Splits a dump into statements, one input line at a time, so memory is
/// bounded by the longest statement and every byte is passed on unchanged.
pub(crate) struct Splitter {
    mysql: bool,
    state: Lex,
    delimiter: Vec<u8>,
    carry: Vec<u8>,
    has_code: bool,
    last_single_esc: bool,
    /// Lines read so far (for messages).
    pub(crate) line: u64,
}

/// The longest statement (or line) accepted, so garbage input cannot
/// exhaust memory.
pub(crate) const MAX_STATEMENT: usize = 1 << 30;

impl Splitter {
    pub(crate) fn new(dialect: Dialect) -> Splitter {
        Splitter {
            mysql: dialect == Dialect::Mysql,
            state: Lex::Normal,
            delimiter: b";".to_vec(),
            carry: Vec::new(),
            has_code: false,
            last_single_esc: false,
            line: 0,
        }
    }

    /// Bytes after the last terminator on its line (usually `\n`).
    pub(crate) fn take_carry(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.carry)
    }

    /// Reads the next statement (with the whitespace and comments before it)
    /// into `stmt`. `None` at the end of the input.
    pub(crate) fn next<R: BufRead>(
        &mut self,
        r: &mut R,
        stmt: &mut Vec<u8>,
    ) -> io::Result<Option<Ended>> {
        stmt.clear();
        self.state = Lex::Normal;
        self.has_code = false;
        loop {
            let from = stmt.len();
            if !self.carry.is_empty() {
                stmt.append(&mut self.carry);
            } else {
                let n = read_line_limited(r, stmt)?;
                if n == 0 {
                    return Ok((!stmt.is_empty()).then_some(Ended::Eof));
                }
                self.line += 1;
            }
            if let Some((end, how)) = self.scan(stmt, from) {
                self.carry.extend_from_slice(&stmt[end..]);
                stmt.truncate(end);
                return Ok(Some(how));
            }
            if stmt.len() > MAX_STATEMENT {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a statement is longer than {MAX_STATEMENT} bytes"),
                ));
            }
        }
    }

    fn scan(&mut self, b: &[u8], from: usize) -> Option<(usize, Ended)> {
        if self.mysql && self.state == Lex::Normal && !self.has_code {
            let line = &b[from..];
            let t = line
                .iter()
                .position(|c| !c.is_ascii_whitespace())
                .unwrap_or(line.len());
            if line.len() >= t + 10 && line[t..t + 10].eq_ignore_ascii_case(b"delimiter ") {
                let rest = &line[t + 10..];
                let tok: Vec<u8> = rest
                    .iter()
                    .copied()
                    .skip_while(|c| c.is_ascii_whitespace())
                    .take_while(|c| !c.is_ascii_whitespace())
                    .collect();
                if !tok.is_empty() {
                    self.delimiter = tok;
                }
                let end = memchr(b'\n', line).map_or(b.len(), |p| from + p + 1);
                return Some((end, Ended::ClientCommand));
            }
        }
        if !self.mysql && self.state == Lex::Normal && !self.has_code {
            let line = &b[from..];
            let t = line.iter().position(|c| *c != b' ' && *c != b'\t');
            if t.is_some_and(|t| line[t] == b'\\') {
                let end = memchr(b'\n', line).map_or(b.len(), |p| from + p + 1);
                return Some((end, Ended::ClientCommand));
            }
        }
        let mut i = from;
        while i < b.len() {
            let c = b[i];
            match &mut self.state {
                Lex::Normal => match c {
                    b'\'' => {
                        let esc = self.mysql
                            || (i > 0 && b[i - 1] == b'\'' && self.last_single_esc)
                            || (i > 0
                                && (b[i - 1] == b'E' || b[i - 1] == b'e')
                                && !(i > 1 && is_ident_byte(b[i - 2])));
                        self.state = Lex::Single { esc };
                        self.has_code = true;
                    }
                    b'"' => {
                        self.state = Lex::Double { esc: self.mysql };
                        self.has_code = true;
                    }
                    b'`' if self.mysql => {
                        self.state = Lex::Backtick;
                        self.has_code = true;
                    }
                    b'-' if b.get(i + 1) == Some(&b'-')
                        && (!self.mysql
                            || b.get(i + 2)
                                .is_none_or(|c| c.is_ascii_whitespace() || *c < 32)) =>
                    {
                        i = memchr(b'\n', &b[i..]).map_or(b.len(), |p| i + p + 1);
                        continue;
                    }
                    b'#' if self.mysql => {
                        i = memchr(b'\n', &b[i..]).map_or(b.len(), |p| i + p + 1);
                        continue;
                    }
                    b'/' if b.get(i + 1) == Some(&b'*') => {
                        self.state = Lex::Block { depth: 1 };
                        i += 2;
                        continue;
                    }
                    b'$' if !(self.mysql || (i > 0 && is_ident_byte(b[i - 1]))) => {
                        let mut j = i + 1;
                        while j < b.len() && is_ident_byte(b[j]) && b[j] != b'$' {
                            j += 1;
                        }
                        let tag_ok = b.get(j) == Some(&b'$')
                            && !b.get(i + 1).is_some_and(u8::is_ascii_digit);
                        if tag_ok {
                            self.state = Lex::Dollar {
                                tag: b[i..=j].to_vec(),
                            };
                            self.has_code = true;
                            i = j + 1;
                            continue;
                        }
                        self.has_code = true;
                    }
                    _ if c == self.delimiter[0] && b[i..].starts_with(&self.delimiter) => {
                        return Some((i + self.delimiter.len(), Ended::Terminator));
                    }
                    _ if c.is_ascii_whitespace() => {}
                    _ => self.has_code = true,
                },
                Lex::Single { esc } => {
                    let esc = *esc;
                    let rest = &b[i..];
                    let hit = if esc {
                        memchr2(b'\'', b'\\', rest)
                    } else {
                        memchr(b'\'', rest)
                    };
                    match hit {
                        None => return None,
                        Some(p) => {
                            i += p;
                            if b[i] == b'\\' {
                                i += 2;
                                continue;
                            }
                            self.last_single_esc = esc;
                            self.state = Lex::Normal;
                        }
                    }
                }
                Lex::Double { esc } => {
                    if *esc && c == b'\\' {
                        i += 2;
                        continue;
                    }
                    if c == b'"' {
                        self.state = Lex::Normal;
                    }
                }
                Lex::Backtick => {
                    if c == b'`' {
                        self.state = Lex::Normal;
                    }
                }
                Lex::Block { depth } => {
                    if c == b'*' && b.get(i + 1) == Some(&b'/') {
                        *depth -= 1;
                        if *depth == 0 {
                            self.state = Lex::Normal;
                        }
                        i += 2;
                        continue;
                    }
                    if !self.mysql && c == b'/' && b.get(i + 1) == Some(&b'*') {
                        *depth += 1;
                        i += 2;
                        continue;
                    }
                }
                Lex::Dollar { tag } => match memchr(b'$', &b[i..]) {
                    None => return None,
                    Some(p) => {
                        i += p;
                        if b[i..].starts_with(tag) {
                            i += tag.len();
                            self.state = Lex::Normal;
                        } else {
                            i += 1;
                        }
                        continue;
                    }
                },
            }
            i += 1;
        }
        None
    }
}

/// `read_until(b'\n')` that refuses lines longer than [`MAX_STATEMENT`].
pub(crate) fn read_line_limited<R: BufRead>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<usize> {
    let start = buf.len();
    loop {
        let (done, used) = {
            let avail = match r.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                return Ok(buf.len() - start);
            }
            match memchr(b'\n', avail) {
                Some(p) => {
                    buf.extend_from_slice(&avail[..=p]);
                    (true, p + 1)
                }
                None => {
                    buf.extend_from_slice(avail);
                    (false, avail.len())
                }
            }
        };
        r.consume(used);
        if done {
            return Ok(buf.len() - start);
        }
        if buf.len() - start > MAX_STATEMENT {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a line is longer than {MAX_STATEMENT} bytes"),
            ));
        }
    }
}

pub(crate) fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// A cursor over one statement's bytes.
pub(crate) struct Cur<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) i: usize,
    mysql: bool,
}

impl<'a> Cur<'a> {
    pub(crate) fn new(b: &'a [u8], dialect: Dialect) -> Cur<'a> {
        Cur {
            b,
            i: 0,
            mysql: dialect == Dialect::Mysql,
        }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Skips whitespace and comments (MySQL `/*!…*/` included).
    pub(crate) fn ws(&mut self) {
        let b = self.b;
        while self.i < b.len() {
            let c = b[self.i];
            if c.is_ascii_whitespace() {
                self.i += 1;
            } else if (c == b'-' && b.get(self.i + 1) == Some(&b'-')) || (self.mysql && c == b'#') {
                self.i = memchr(b'\n', &b[self.i..]).map_or(b.len(), |p| self.i + p + 1);
            } else if c == b'/' && b.get(self.i + 1) == Some(&b'*') {
                let mut depth = 1;
                self.i += 2;
                while self.i < b.len() && depth > 0 {
                    if b[self.i..].starts_with(b"*/") {
                        depth -= 1;
                        self.i += 2;
                    } else if !self.mysql && b[self.i..].starts_with(b"/*") {
                        depth += 1;
                        self.i += 2;
                    } else {
                        self.i += 1;
                    }
                }
            } else {
                break;
            }
        }
    }

    /// Consumes a keyword (case-insensitive, whole word).
    pub(crate) fn kw(&mut self, word: &str) -> bool {
        self.ws();
        let w = word.as_bytes();
        let end = self.i + w.len();
        if end <= self.b.len()
            && self.b[self.i..end].eq_ignore_ascii_case(w)
            && !self.b.get(end).is_some_and(|c| is_ident_byte(*c))
        {
            self.i = end;
            true
        } else {
            false
        }
    }

    /// Consumes one punctuation byte.
    pub(crate) fn punct(&mut self, c: u8) -> bool {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// An identifier: `"quoted"` (PostgreSQL), `` `quoted` `` (MySQL) or
    /// bare (folded to lower case in PostgreSQL).
    pub(crate) fn ident(&mut self) -> Option<String> {
        self.ws();
        let b = self.b;
        let q = match self.peek()? {
            b'"' if !self.mysql => b'"',
            b'`' if self.mysql => b'`',
            c if is_ident_byte(c) && c != b'$' => {
                let start = self.i;
                while self.i < b.len() && is_ident_byte(b[self.i]) {
                    self.i += 1;
                }
                let s = String::from_utf8_lossy(&b[start..self.i]);
                return Some(if self.mysql {
                    s.into_owned()
                } else {
                    s.to_lowercase()
                });
            }
            _ => return None,
        };
        let mut out = Vec::new();
        self.i += 1;
        loop {
            let c = *b.get(self.i)?;
            self.i += 1;
            if c == q {
                if b.get(self.i) == Some(&q) {
                    out.push(q);
                    self.i += 1;
                } else {
                    return Some(String::from_utf8_lossy(&out).into_owned());
                }
            } else {
                out.push(c);
            }
        }
    }

    /// `a.b.c` → its parts.
    pub(crate) fn qualified(&mut self) -> Option<Vec<String>> {
        let mut parts = vec![self.ident()?];
        loop {
            let save = self.i;
            if self.punct(b'.') {
                match self.ident() {
                    Some(p) => parts.push(p),
                    None => {
                        self.i = save;
                        break;
                    }
                }
            } else {
                break;
            }
        }
        Some(parts)
    }

    /// `(a, b, c)` → names.
    pub(crate) fn ident_list(&mut self) -> Option<Vec<String>> {
        if !self.punct(b'(') {
            return None;
        }
        let mut names = Vec::new();
        loop {
            names.push(self.ident()?);
            // MySQL index prefixes: `col`(10), and ASC/DESC.
            if self.peek_punct(b'(') {
                self.skip_group()?;
            }
            let _ = self.kw("asc") || self.kw("desc");
            if self.punct(b')') {
                return Some(names);
            }
            if !self.punct(b',') {
                return None;
            }
        }
    }

    pub(crate) fn peek_punct(&mut self, c: u8) -> bool {
        self.ws();
        self.peek() == Some(c)
    }

    /// Skips one token or balanced parenthesized group; string-aware.
    pub(crate) fn skip_group(&mut self) -> Option<()> {
        self.ws();
        if self.peek().is_some_and(|c| is_ident_byte(c) && c != b'$') {
            while self.peek().is_some_and(is_ident_byte) {
                self.i += 1;
            }
            return Some(());
        }
        let mut depth = 0i64;
        loop {
            let c = *self.b.get(self.i)?;
            match c {
                b'(' => depth += 1,
                b')' => depth -= 1,
                b'\'' | b'"' | b'`' => {
                    self.skip_quoted(c)?;
                    if depth == 0 {
                        return Some(());
                    }
                    continue;
                }
                _ => {}
            }
            self.i += 1;
            if depth <= 0 {
                return Some(());
            }
        }
    }

    /// Skips a quoted string or identifier starting at the cursor.
    pub(crate) fn skip_quoted(&mut self, q: u8) -> Option<()> {
        let b = self.b;
        let esc = self.mysql && q != b'`'
            || (q == b'\'' && self.i > 0 && (b[self.i - 1] == b'E' || b[self.i - 1] == b'e'));
        self.i += 1;
        loop {
            let c = *b.get(self.i)?;
            self.i += 1;
            if esc && c == b'\\' {
                self.i += 1;
            } else if c == q {
                if b.get(self.i) == Some(&q) {
                    self.i += 1;
                } else {
                    return Some(());
                }
            }
        }
    }

    /// The span of one value expression, up to a top-level `,` or `)`.
    pub(crate) fn value_span(&mut self) -> Option<(usize, usize)> {
        self.ws();
        let start = self.i;
        let mut depth = 0i64;
        let mut end = self.i;
        loop {
            let c = *self.b.get(self.i)?;
            match c {
                b'\'' | b'"' | b'`' => {
                    self.skip_quoted(c)?;
                    end = self.i;
                    continue;
                }
                b'(' | b'[' => depth += 1,
                b')' | b']' if depth > 0 => depth -= 1,
                b',' | b')' if depth == 0 => {
                    return (end > start).then_some((start, end));
                }
                c if c.is_ascii_whitespace() => {
                    self.i += 1;
                    continue;
                }
                _ => {}
            }
            self.i += 1;
            end = self.i;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(dialect: Dialect, input: &str) -> Vec<(String, Ended)> {
        let mut s = Splitter::new(dialect);
        let mut r = input.as_bytes();
        let mut out = Vec::new();
        let mut stmt = Vec::new();
        while let Some(how) = s.next(&mut r, &mut stmt).unwrap() {
            out.push((String::from_utf8(stmt.clone()).unwrap(), how));
        }
        let carry = s.take_carry();
        assert!(carry.is_empty());
        out
    }

    #[test]
    fn dollar_quotes_hide_semicolons_and_copy() {
        let sql = "CREATE FUNCTION f() RETURNS void AS $body$\nBEGIN\n  COPY x FROM stdin;\n  RAISE 'a;b';\nEND\n$body$ LANGUAGE plpgsql;\nSELECT 1;\n";
        let parts = split(Dialect::Postgres, sql);
        assert_eq!(parts.len(), 3);
        assert!(parts[0].0.ends_with("plpgsql;"));
        assert_eq!(parts[1].0, "\nSELECT 1;");
        assert_eq!(parts[2], ("\n".into(), Ended::Eof));
        let joined: String = parts.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(joined, sql);
    }

    #[test]
    fn strings_and_comments_hide_semicolons() {
        let sql =
            "INSERT INTO t VALUES ('a;b', E'c\\';d', 'e'';f'); -- x;y\n/* ; /* ; */ ; */ SELECT 2;";
        let parts = split(Dialect::Postgres, sql);
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert!(parts[0].0.ends_with("'e'';f');"));
        let sql = "INSERT INTO `t` VALUES ('a\\';b',\"c;\"),('x'); # ;\n-- ;\nSELECT 1;";
        let parts = split(Dialect::Mysql, sql);
        assert_eq!(parts.len(), 2, "{parts:?}");
    }

    #[test]
    fn mysql_delimiter_lines() {
        let sql = "DELIMITER ;;\nCREATE TRIGGER t BEGIN SET a=1; SET b=2; END ;;\nDELIMITER ;\nSELECT 1;\n";
        let parts = split(Dialect::Mysql, sql);
        assert_eq!(parts[0].1, Ended::ClientCommand);
        assert!(parts[1].0.ends_with("END ;;"));
        assert_eq!(parts[2].1, Ended::ClientCommand);
        assert_eq!(parts[3].0, "SELECT 1;");
    }

    #[test]
    fn psql_meta_commands_are_statements_of_their_own() {
        let sql = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\nSET a = 1;\n\\connect db\nCREATE TABLE t (a int);\n";
        let parts = split(Dialect::Postgres, sql);
        assert_eq!(
            parts[0],
            (
                "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n".into(),
                Ended::ClientCommand
            )
        );
        assert_eq!(parts[1].0, "\nSET a = 1;");
        assert_eq!(parts[2], ("\n\\connect db\n".into(), Ended::ClientCommand));
        assert_eq!(parts[3].0, "CREATE TABLE t (a int);");
    }

    #[test]
    fn two_statements_on_one_line_and_very_long_lines() {
        let long = "x".repeat(3_000_000);
        let sql = format!("SET a = 1; SELECT '{long}';\n");
        let parts = split(Dialect::Postgres, &sql);
        assert_eq!(parts[0].0, "SET a = 1;");
        assert_eq!(parts[1].0.len(), long.len() + 11);
    }
}
