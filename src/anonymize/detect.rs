//! Detectors for personal data in columns kept by a glob rule, name-based
//! suggestions, and the `--init` rules file.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use memchr::memchr_iter;

use super::rules::{toml_key, toml_string};
use super::schema::{SqlType, TypeKind};
use super::{Engine, TableName};

/// Distinct phone or card numbers that fail a scanned column.
pub(crate) const DISTINCT_HITS_TO_FAIL: usize = 3;
/// Distinct numbers remembered in `--init` (for counting only).
const DISTINCT_CAP_INIT: usize = 1000;

/// Detector state for one scanned column.
#[derive(Debug)]
pub(crate) struct Scan {
    pub(crate) column: String,
    pub(crate) table: TableName,
    pub(crate) name: String,
    pub(crate) report: usize,
    pub(crate) emails: u64,
    pub(crate) phones: Vec<u64>,
    pub(crate) cards: Vec<u64>,
    pub(crate) ips: u64,
    pub(crate) examples: [Option<String>; 3],
    failed: bool,
}

/// What failed a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Email,
    Phone,
    Card,
}

/// A detector failure.
#[derive(Debug, Clone)]
pub(crate) struct Finding {
    pub(crate) kind: Kind,
    pub(crate) example: String,
}

impl Finding {
    pub(crate) fn message(&self) -> String {
        let what = match self.kind {
            Kind::Email => "an email address".to_string(),
            Kind::Phone => format!("{DISTINCT_HITS_TO_FAIL} distinct phone numbers"),
            Kind::Card => {
                format!("{DISTINCT_HITS_TO_FAIL} distinct payment card numbers (Luhn-valid)")
            }
        };
        format!(
            "{what} found in a column kept only by a glob rule; name the column in a rule \
             (an explicit \"keep\" if this is not personal data)"
        )
    }
}

impl Scan {
    pub(crate) fn new(column: String, table: TableName, name: String, report: usize) -> Scan {
        Scan {
            column,
            table,
            name,
            report,
            emails: 0,
            phones: Vec::new(),
            cards: Vec::new(),
            ips: 0,
            examples: [None, None, None],
            failed: false,
        }
    }

    /// Scans one value. With `enforce`, returns the first finding that
    /// crosses a threshold (once per column).
    pub(crate) fn scan(&mut self, v: &[u8], enforce: bool) -> Option<Finding> {
        let cap = if enforce {
            DISTINCT_HITS_TO_FAIL
        } else {
            DISTINCT_CAP_INIT
        };
        let mut fail = None;
        if let Some(masked) = find_email(v) {
            self.emails += 1;
            self.examples[0].get_or_insert(masked);
            fail = Some(Kind::Email);
        }
        let mut ip = false;
        // Phone and card numbers need 8 digits or more, IP addresses 4 and dots.
        let digits = v.iter().filter(|c| c.is_ascii_digit()).count();
        if digits >= 8 || (digits >= 4 && memchr::memchr(b'.', v).is_some()) {
            for_each_number(v, |n| match n {
                Number::Ip => ip = true,
                Number::Card(digits, masked) => {
                    let h = fnv(&digits);
                    if !self.cards.contains(&h) && self.cards.len() < cap {
                        self.cards.push(h);
                        self.examples[2].get_or_insert(masked);
                    }
                }
                Number::Phone(digits, masked) => {
                    let h = fnv(&digits);
                    if !self.phones.contains(&h) && self.phones.len() < cap {
                        self.phones.push(h);
                        self.examples[1].get_or_insert(masked);
                    }
                }
            });
        }
        if ip {
            if self.ips == 0 && enforce {
                tracing::warn!(
                    column = %self.column,
                    "IP addresses found in a column kept by a glob rule; consider a rule for it"
                );
            }
            self.ips += 1;
        }
        if fail.is_none() && self.phones.len() >= DISTINCT_HITS_TO_FAIL {
            fail = Some(Kind::Phone);
        }
        if fail.is_none() && self.cards.len() >= DISTINCT_HITS_TO_FAIL {
            fail = Some(Kind::Card);
        }
        if !enforce || self.failed {
            return None;
        }
        let kind = fail?;
        self.failed = true;
        let i = match kind {
            Kind::Email => 0,
            Kind::Phone => 1,
            Kind::Card => 2,
        };
        Some(Finding {
            kind,
            example: self.examples[i].clone().unwrap_or_default(),
        })
    }
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, c| {
        (h ^ u64::from(*c)).wrapping_mul(0x100_0000_01b3)
    })
}

fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'-'
}

/// The first email address in `v`, masked (`j***@e***.com`).
pub(crate) fn find_email(v: &[u8]) -> Option<String> {
    for at in memchr_iter(b'@', v) {
        let mut s = at;
        while s > 0 && is_local(v[s - 1]) && at - s < 64 {
            s -= 1;
        }
        let mut e = at + 1;
        while e < v.len() && is_domain(v[e]) && e - at < 255 {
            e += 1;
        }
        let local = &v[s..at];
        let mut domain = &v[at + 1..e];
        while domain.last().is_some_and(|c| *c == b'.' || *c == b'-') {
            domain = &domain[..domain.len() - 1];
        }
        let Some(dot) = domain.iter().rposition(|c| *c == b'.') else {
            continue;
        };
        let tld = &domain[dot + 1..];
        if local.is_empty()
            || domain.first().is_none_or(|c| !c.is_ascii_alphanumeric())
            || tld.len() < 2
            || !tld.iter().all(u8::is_ascii_alphabetic)
        {
            continue;
        }
        return Some(format!(
            "{}***@{}***.{}",
            local[0] as char,
            domain[0] as char,
            String::from_utf8_lossy(tld)
        ));
    }
    None
}

enum Number {
    Ip,
    Card(Vec<u8>, String),
    Phone(Vec<u8>, String),
}

/// Finds runs of digits and separators and classifies them.
fn for_each_number(v: &[u8], mut f: impl FnMut(Number)) {
    let mut i = 0;
    while i < v.len() {
        let c = v[i];
        let starts = c.is_ascii_digit()
            || ((c == b'+' || c == b'(') && v.get(i + 1).is_some_and(u8::is_ascii_digit));
        if !starts || (i > 0 && v[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i;
        let mut j = i;
        while j < v.len() && j - start < 40 {
            let c = v[j];
            if c.is_ascii_digit() {
                j += 1;
                end = j;
            } else if matches!(c, b' ' | b'-' | b'.' | b'(' | b')' | b'+') {
                j += 1;
            } else {
                break;
            }
        }
        i = end.max(start + 1);
        if v.get(end).is_some_and(u8::is_ascii_alphabetic) {
            continue;
        }
        let run = &v[start..end];
        let ndigits = run.iter().filter(|c| c.is_ascii_digit()).count();
        if ndigits < 8 {
            if ndigits >= 4 && is_ipv4(run) {
                f(Number::Ip);
            }
            continue;
        }
        if is_ipv4(run) {
            f(Number::Ip);
            continue;
        }
        let digits: Vec<u8> = run.iter().copied().filter(u8::is_ascii_digit).collect();
        let plus = run[0] == b'+';
        let card_seps = run
            .iter()
            .all(|c| c.is_ascii_digit() || *c == b' ' || *c == b'-');
        if (13..=19).contains(&digits.len()) && card_seps && luhn(&digits) {
            let n = digits.len();
            let masked: String = run
                .iter()
                .scan(0usize, |seen, c| {
                    if c.is_ascii_digit() {
                        *seen += 1;
                        Some(if *seen + 4 > n { *c as char } else { '*' })
                    } else {
                        Some(*c as char)
                    }
                })
                .collect();
            f(Number::Card(digits, masked));
            continue;
        }
        let min = if plus { 8 } else { 10 };
        if (min..=15).contains(&digits.len()) && !looks_like_date(run) && !run.contains(&b'.') {
            let n = digits.len();
            let masked: String = run
                .iter()
                .scan(0usize, |seen, c| {
                    if c.is_ascii_digit() {
                        *seen += 1;
                        Some(if *seen + 2 > n { *c as char } else { '*' })
                    } else {
                        Some(*c as char)
                    }
                })
                .collect();
            f(Number::Phone(digits, masked));
        }
    }
}

fn is_ipv4(run: &[u8]) -> bool {
    let mut parts = 0;
    for p in run.split(|c| *c == b'.') {
        parts += 1;
        let ok = !p.is_empty()
            && p.len() <= 3
            && p.iter().all(u8::is_ascii_digit)
            && p.iter().fold(0u32, |a, c| a * 10 + u32::from(c - b'0')) <= 255;
        if !ok || parts > 4 {
            return false;
        }
    }
    parts == 4
}

fn looks_like_date(run: &[u8]) -> bool {
    run.windows(10).any(|w| {
        w[..4].iter().all(u8::is_ascii_digit)
            && (w[4] == b'-' || w[4] == b'/')
            && w[5..7].iter().all(u8::is_ascii_digit)
            && w[7] == w[4]
            && w[8..10].iter().all(u8::is_ascii_digit)
    })
}

pub(crate) fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = u32::from(c - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A transformer suggested by the column's name, if it looks personal and
/// the transformer fits the type.
pub(crate) fn suggest_by_name(column: &str, ty: &SqlType) -> Option<&'static str> {
    let c = column.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| c.contains(w));
    let s = if has(&["email", "e_mail", "mail_address"]) {
        "email"
    } else if has(&["first_name", "firstname", "given_name", "fname", "forename"]) {
        "first-name"
    } else if has(&["last_name", "lastname", "surname", "family_name", "lname"]) {
        "last-name"
    } else if has(&["username", "user_name", "login"]) {
        "hash"
    } else if c == "name"
        || has(&[
            "full_name",
            "fullname",
            "display_name",
            "contact_name",
            "customer_name",
            "nickname",
        ])
    {
        "full-name"
    } else if has(&["phone", "mobile", "msisdn", "fax"]) || c == "tel" || c.ends_with("_tel") {
        "phone"
    } else if has(&["birth", "dob"]) {
        "date-shift"
    } else if has(&[
        "address",
        "street",
        "addr",
        "city",
        "zip",
        "postcode",
        "postal",
        "ssn",
        "iban",
        "passport",
        "tax_id",
        "national_id",
        "card_number",
        "cc_number",
    ]) {
        "redact"
    } else if has(&["password", "secret", "token"]) {
        "hash"
    } else if c == "ip" || has(&["ip_addr", "_ip", "ip_"]) {
        "null"
    } else {
        return None;
    };
    let probe = super::transform::Transformer::from_toml(&toml::Value::String(s.into())).ok()?;
    probe.check_type(ty).ok()?;
    Some(s)
}

/// A suggested rule value (TOML) for a detector finding.
pub(crate) fn suggest_for_finding(column: &str, f: &Finding) -> String {
    if let Some(s) = suggest_by_name(column, &SqlType::text()) {
        return format!("\"{s}\"");
    }
    match f.kind {
        Kind::Email => EMAIL_REGEX_RULE.to_string(),
        Kind::Phone | Kind::Card => "\"redact\"".to_string(),
    }
}

const EMAIL_REGEX_RULE: &str = r#"{ regex = '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}', replace = "redacted@example.com" }"#;

/// The `--init` rules file for what the engine saw.
pub(crate) fn init_text(e: &Engine<'_>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Anonymization rules generated by `sluice anonymize --init`.\n\
         # Keys are \"schema.table.column\" patterns (globs * and ?); the most specific wins.\n\
         # Every column with data must be covered. Columns kept by a glob (\"….*\" = \"keep\")\n\
         # are still scanned for emails, phone and card numbers; name a column explicitly\n\
         # (\"schema.table.column\" = \"keep\") once you have decided it holds no personal data.\n\
         # Review every suggestion below before use."
    );
    let scans: BTreeMap<(&TableName, &str), &Scan> = e
        .scans
        .iter()
        .map(|sc| ((&sc.table, sc.name.as_str()), sc))
        .collect();
    let schema_of = |t: &TableName| -> String {
        if e.dialect == super::Dialect::Mysql && t.0.is_empty() {
            "*".into()
        } else {
            t.0.clone()
        }
    };
    for name in &e.order {
        let Some(t) = e.tables.get(name) else {
            continue;
        };
        if let Some(parent) = &t.parent {
            let _ = writeln!(
                s,
                "\n# {}.{}: a partition of {}.{}, uses its rules",
                name.0, name.1, parent.0, parent.1
            );
            continue;
        }
        let mut cols: Vec<(String, SqlType)> = t
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.ty.clone()))
            .collect();
        for sc in e.scans.iter().filter(|sc| &sc.table == name) {
            if !cols.iter().any(|c| c.0 == sc.name) {
                cols.push((sc.name.clone(), SqlType::unknown()));
            }
        }
        if cols.is_empty() && !t.has_data {
            continue;
        }
        let schema = schema_of(name);
        let _ = writeln!(s, "\n# {}.{}", name.0, name.1);
        let _ = writeln!(s, "{} = \"keep\"", toml_key(&schema, &name.1, "*"));
        let in_key = |col: &str| t.keys.iter().any(|k| k.iter().any(|c| c == col));
        for (col, ty) in cols {
            let key = toml_key(&schema, &name.1, &col);
            let scan = scans.get(&(name, col.as_str()));
            let by_name = suggest_by_name(&col, &ty);
            let mut why = Vec::new();
            if by_name.is_some() {
                why.push("the name looks personal".to_string());
            }
            let mut value = by_name.map(|v| format!("\"{v}\""));
            if let Some(sc) = scan {
                if sc.emails > 0 {
                    why.push(format!(
                        "{} value(s) with an email address, e.g. {}",
                        sc.emails,
                        sc.examples[0].as_deref().unwrap_or("")
                    ));
                    value.get_or_insert_with(|| EMAIL_REGEX_RULE.to_string());
                }
                if !sc.phones.is_empty() {
                    why.push(format!(
                        "{} distinct phone-like number(s), e.g. {}",
                        sc.phones.len(),
                        sc.examples[1].as_deref().unwrap_or("")
                    ));
                    if sc.phones.len() >= DISTINCT_HITS_TO_FAIL {
                        value.get_or_insert_with(|| "\"redact\"".into());
                    }
                }
                if !sc.cards.is_empty() {
                    why.push(format!(
                        "{} distinct Luhn-valid card-like number(s)",
                        sc.cards.len()
                    ));
                    if sc.cards.len() >= DISTINCT_HITS_TO_FAIL {
                        value.get_or_insert_with(|| "\"redact\"".into());
                    }
                }
                if sc.ips > 0 {
                    why.push(format!("{} value(s) with an IP address", sc.ips));
                }
            }
            if let Some(v) = &value
                && in_key(&col)
                && (v == "\"redact\""
                    || v == "\"null\""
                    || v.contains("-name\"")
                    || v == "\"full-name\"")
            {
                value = Some(
                    if matches!(
                        ty.kind,
                        TypeKind::Text | TypeKind::Other | TypeKind::Int { .. }
                    ) {
                        why.push("part of a unique key, so hashed".into());
                        "\"hash\"".into()
                    } else {
                        why.push("part of a unique key: decide by hand".into());
                        "\"keep\"".into()
                    },
                );
            }
            match value {
                Some(v) => {
                    let _ = writeln!(s, "{key} = {v}  # {}", why.join("; "));
                }
                None if !why.is_empty() => {
                    let _ = writeln!(
                        s,
                        "# {key}: {} (below the failure threshold)",
                        why.join("; ")
                    );
                }
                None => {}
            }
        }
    }
    if e.report.large_objects > 0 {
        let _ = writeln!(
            s,
            "\n# The dump has {} large object(s); they cannot be scanned. \"null\" restores them empty.\n{} = \"null\"",
            e.report.large_objects,
            toml_string("pg_catalog.pg_largeobject.data")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(values: &[&str]) -> (Scan, Option<Finding>) {
        let mut s = Scan::new("s.t.c".into(), ("s".into(), "t".into()), "c".into(), 0);
        let mut first = None;
        for v in values {
            if let Some(f) = s.scan(v.as_bytes(), true) {
                first.get_or_insert(f);
            }
        }
        (s, first)
    }

    #[test]
    fn one_email_fails_and_is_masked() {
        let (_, f) = scan_all(&["hello", "write to john.doe@example.org today"]);
        let f = f.unwrap();
        assert_eq!(f.kind, Kind::Email);
        assert_eq!(f.example, "j***@e***.org");
        let (_, f) = scan_all(&[r#"{"contact": {"email": "ann@corp.io"}}"#]);
        assert_eq!(f.unwrap().example, "a***@c***.io");
        assert!(find_email(b"user@localhost").is_none());
        assert!(find_email(b"@handle and a@b").is_none());
    }

    #[test]
    fn phones_need_three_distinct() {
        let (s, f) = scan_all(&[
            "call +1 555 123 4567",
            "call +1 555 123 4567",
            "(555) 987-6543",
        ]);
        assert!(f.is_none());
        assert_eq!(s.phones.len(), 2);
        let (_, f) = scan_all(&["+1 555 123 4567", "(555) 987-6543", "tel 0049 30 1234567"]);
        let f = f.unwrap();
        assert_eq!(f.kind, Kind::Phone);
        assert!(f.example.ends_with("67"), "{}", f.example);
    }

    #[test]
    fn dates_ips_and_amounts_are_not_phones() {
        let (s, f) = scan_all(&[
            "2024-01-01 10:00:00",
            "on 2023-12-31 12:30 we paid 1234.50",
            "from 192.168.100.200",
            "order 12345",
            "v1.2.3",
        ]);
        assert!(f.is_none());
        assert!(s.phones.is_empty(), "{:?}", s.examples);
        assert_eq!(s.ips, 1);
    }

    #[test]
    fn cards_are_luhn_checked() {
        assert!(luhn(b"4111111111111111"));
        assert!(!luhn(b"4111111111111112"));
        let (s, f) = scan_all(&[
            "4111 1111 1111 1111",
            "5500-0000-0000-0004",
            "4111111111111112",
        ]);
        assert!(f.is_none());
        assert_eq!(s.cards.len(), 2);
        let (_, f) = scan_all(&[
            "4111 1111 1111 1111",
            "5500-0000-0000-0004",
            "340000000000009",
        ]);
        let f = f.unwrap();
        assert_eq!(f.kind, Kind::Card);
        assert_eq!(f.example, "**** **** **** 1111");
    }

    #[test]
    fn names_suggest_transformers_that_fit() {
        let text = SqlType::text();
        assert_eq!(suggest_by_name("email", &text), Some("email"));
        assert_eq!(suggest_by_name("customer_email", &text), Some("email"));
        assert_eq!(suggest_by_name("first_name", &text), Some("first-name"));
        assert_eq!(suggest_by_name("phone", &text), Some("phone"));
        assert_eq!(
            suggest_by_name("birth_date", &SqlType::parse("date")),
            Some("date-shift")
        );
        assert_eq!(
            suggest_by_name("email_count", &SqlType::parse("integer")),
            None
        );
        assert_eq!(suggest_by_name("total", &text), None);
    }
}
