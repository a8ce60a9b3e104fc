//! `INSERT … VALUES (…), (…)` rows, shared by both dialects: values are
//! located by span, so everything between them is copied byte for byte and
//! only transformed values are re-encoded in the dialect's escaping.

use std::io;

use super::schema::SqlType;
use super::sql::Cur;
use super::{Action, Engine, Plan, ProblemKind};

/// The shape of a literal, so a replacement keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lit {
    /// A quoted string (with an optional introducer or cast kept around it).
    Quoted,
    /// An unquoted number.
    Number,
    /// A hex literal (`0x…`, `X'…'`).
    Hex,
    /// Anything else (`true`, a function call, …).
    Bare,
}

/// Dialect-specific literal reading and writing.
pub(crate) trait Codec {
    /// Decodes a literal into `buf`; `Ok(None)` for NULL.
    fn decode(&self, lit: &[u8], buf: &mut Vec<u8>) -> Result<Option<Lit>, String>;
    /// Writes `value` (NULL when `None`) in place of the literal `lit`.
    fn encode(&self, lit: &[u8], kind: Lit, ty: &SqlType, value: Option<&[u8]>, out: &mut Vec<u8>);
}

pub(crate) fn is_number(v: &[u8]) -> bool {
    let v = v
        .strip_prefix(b"-")
        .or_else(|| v.strip_prefix(b"+"))
        .unwrap_or(v);
    !v.is_empty()
        && v[0].is_ascii_digit()
        && v.iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'-' | b'+'))
}

/// Processes the rows of an INSERT whose cursor stands after `VALUES`,
/// writing the statement (rewritten when the plan transforms something).
pub(crate) fn rows(
    e: &mut Engine<'_>,
    stmt: &[u8],
    mut c: Cur<'_>,
    plan: &Plan,
    codec: &dyn Codec,
) -> io::Result<()> {
    if !plan.transform && !plan.scan {
        return e.write(stmt);
    }
    let mut out = Vec::with_capacity(if plan.transform {
        stmt.len() + stmt.len() / 4
    } else {
        0
    });
    let mut copied = 0usize;
    let mut buf = Vec::new();
    let mut tbuf = Vec::new();
    let mut enc = Vec::new();
    let ok = (|| -> Option<()> {
        loop {
            if !c.punct(b'(') {
                return None;
            }
            for (i, col) in plan.cols.iter().enumerate() {
                if i > 0 && !c.punct(b',') {
                    return None;
                }
                let (s, end) = c.value_span()?;
                let lit = &stmt[s..end];
                match &col.action {
                    Action::Keep => {}
                    Action::Scan(d) => {
                        if let Ok(Some(_)) = codec.decode(lit, &mut buf) {
                            e.count(col);
                            e.scan(*d, &buf);
                        }
                    }
                    Action::Transform(..) => {
                        let kind = match codec.decode(lit, &mut buf) {
                            Ok(Some(k)) => k,
                            Ok(None) => continue,
                            Err(why) => {
                                bad_value(e, plan, col.report, why);
                                continue;
                            }
                        };
                        if kind == Lit::Bare {
                            bad_value(
                                e,
                                plan,
                                col.report,
                                "the value is an expression, not a literal".into(),
                            );
                            continue;
                        }
                        e.count(col);
                        let value = match e.transform(col, &buf, &mut tbuf) {
                            Some(true) => Some(tbuf.as_slice()),
                            Some(false) => None,
                            None => continue,
                        };
                        enc.clear();
                        codec.encode(lit, kind, &col.ty, value, &mut enc);
                        out.extend_from_slice(&stmt[copied..s]);
                        out.extend_from_slice(&enc);
                        copied = end;
                    }
                }
            }
            if !c.punct(b')') {
                return None;
            }
            if !c.punct(b',') {
                return Some(());
            }
        }
    })();
    if ok.is_none() {
        e.problem(
            ProblemKind::BadValue,
            plan.table.clone(),
            format!(
                "cannot read the VALUES of an INSERT (expected {} values per row: {})",
                plan.cols.len(),
                plan.columns.join(", ")
            ),
            None,
            None,
        );
        return Ok(());
    }
    if plan.transform {
        out.extend_from_slice(&stmt[copied..]);
        e.write(&out)
    } else {
        e.write(stmt)
    }
}

fn bad_value(e: &mut Engine<'_>, plan: &Plan, report: usize, why: String) {
    let column = e
        .report
        .columns
        .get(report)
        .map_or_else(|| plan.table.clone(), |c| c.column.clone());
    e.problem(ProblemKind::BadValue, column, why, None, None);
}
