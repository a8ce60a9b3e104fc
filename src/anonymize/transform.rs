//! Transformers: deterministic, keyed by the salt, fitted to the column type.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::json::{JsonPath, JsonRule};
use super::schema::{SqlType, TypeKind};

/// HMAC-SHA256 keyed by the salt. Every transformer derives its output from
/// `HMAC(salt, transformer-tag || 0x00 || value)`: the table and column are
/// not part of the input, so equal values map to equal outputs everywhere.
#[derive(Clone)]
pub(crate) struct Keyed {
    mac: Hmac<Sha256>,
}

impl Keyed {
    pub(crate) fn new(salt: &[u8]) -> Keyed {
        // HMAC accepts keys of any length.
        let mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(salt).unwrap_or_else(|_| unreachable!());
        Keyed { mac }
    }

    pub(crate) fn digest(&self, tag: &[u8], value: &[u8]) -> [u8; 32] {
        let mut m = self.mac.clone();
        m.update(tag);
        m.update(&[0]);
        m.update(value);
        let bytes = m.finalize().into_bytes();
        let mut out = [0u8; 32];
        out.copy_from_slice(&bytes);
        out
    }
}

/// What a rule does to a value.
#[derive(Debug, Clone)]
pub(crate) enum Transformer {
    Keep,
    Null,
    Fixed(String),
    Redact,
    Hash,
    Email,
    FirstName,
    LastName,
    FullName,
    Phone,
    DateShift {
        max_days: u32,
    },
    Regex {
        re: regex::bytes::Regex,
        replace: Vec<u8>,
    },
    Json(JsonRule),
}

const NAMES: &str = "keep, null, redact, hash, email, first-name, last-name, full-name (or name), \
                     phone, date-shift, { fixed = \"…\" }, { date-shift = { max-days = N } }, \
                     { regex = \"…\", replace = \"…\" }, { json = { \"$.key\" = \"email\" } }";

impl Transformer {
    pub(crate) fn from_toml(value: &toml::Value) -> Result<Transformer, String> {
        match value {
            toml::Value::String(name) => Transformer::from_name(name),
            toml::Value::Table(t) => {
                let keys: Vec<&str> = t.keys().map(String::as_str).collect();
                match keys.as_slice() {
                    ["fixed"] => match &t["fixed"] {
                        toml::Value::String(s) => Ok(Transformer::Fixed(s.clone())),
                        toml::Value::Integer(i) => Ok(Transformer::Fixed(i.to_string())),
                        toml::Value::Float(f) => Ok(Transformer::Fixed(f.to_string())),
                        toml::Value::Boolean(b) => Ok(Transformer::Fixed(b.to_string())),
                        _ => Err("`fixed` takes a string, number or boolean".into()),
                    },
                    ["date-shift"] => {
                        let inner = t["date-shift"]
                            .as_table()
                            .ok_or("`date-shift` takes { max-days = N }")?;
                        let mut max_days = 30;
                        for (k, v) in inner {
                            match (k.as_str(), v.as_integer()) {
                                ("max-days", Some(n)) if (1..=36_500).contains(&n) => {
                                    max_days = n as u32
                                }
                                ("max-days", _) => {
                                    return Err(
                                        "`max-days` must be an integer from 1 to 36500".into()
                                    );
                                }
                                (other, _) => {
                                    return Err(format!("unknown date-shift option `{other}`"));
                                }
                            }
                        }
                        Ok(Transformer::DateShift { max_days })
                    }
                    ["regex", "replace"] | ["replace", "regex"] => {
                        let (Some(re), Some(rep)) = (t["regex"].as_str(), t["replace"].as_str())
                        else {
                            return Err("`regex` and `replace` take strings".into());
                        };
                        let re =
                            regex::bytes::Regex::new(re).map_err(|e| format!("bad regex: {e}"))?;
                        Ok(Transformer::Regex {
                            re,
                            replace: rep.as_bytes().to_vec(),
                        })
                    }
                    ["json"] => {
                        let inner = t["json"].as_table().ok_or(
                            "`json` takes a table of paths, e.g. { \"$.email\" = \"email\" }",
                        )?;
                        let mut paths = Vec::new();
                        for (path, v) in inner {
                            let path = JsonPath::parse(path)?;
                            let tr = Transformer::from_toml(v)?;
                            if matches!(tr, Transformer::Json(_)) {
                                return Err("`json` cannot be nested".into());
                            }
                            paths.push((path, tr));
                        }
                        if paths.is_empty() {
                            return Err("`json` needs at least one path".into());
                        }
                        Ok(Transformer::Json(JsonRule { paths }))
                    }
                    _ => Err(format!(
                        "unknown transformer table with keys {keys:?}; expected one of {NAMES}"
                    )),
                }
            }
            _ => Err(format!(
                "expected a transformer name or table, one of {NAMES}"
            )),
        }
    }

    fn from_name(name: &str) -> Result<Transformer, String> {
        Ok(match name {
            "keep" => Transformer::Keep,
            "null" => Transformer::Null,
            "redact" => Transformer::Redact,
            "hash" => Transformer::Hash,
            "email" => Transformer::Email,
            "first-name" => Transformer::FirstName,
            "last-name" => Transformer::LastName,
            "full-name" | "name" => Transformer::FullName,
            "phone" => Transformer::Phone,
            "date-shift" => Transformer::DateShift { max_days: 30 },
            "fixed" => {
                return Err("`fixed` needs a value: { fixed = \"nobody@example.com\" }".into());
            }
            other => {
                return Err(format!(
                    "unknown transformer {other:?}; expected one of {NAMES}"
                ));
            }
        })
    }

    /// A short description for reports.
    pub(crate) fn describe(&self) -> String {
        match self {
            Transformer::Keep => "keep".into(),
            Transformer::Null => "null".into(),
            Transformer::Fixed(v) => format!("fixed {v:?}"),
            Transformer::Redact => "redact".into(),
            Transformer::Hash => "hash".into(),
            Transformer::Email => "email".into(),
            Transformer::FirstName => "first-name".into(),
            Transformer::LastName => "last-name".into(),
            Transformer::FullName => "full-name".into(),
            Transformer::Phone => "phone".into(),
            Transformer::DateShift { max_days } => format!("date-shift (max-days {max_days})"),
            Transformer::Regex { re, .. } => format!("regex {:?}", re.as_str()),
            Transformer::Json(j) => {
                let parts: Vec<String> = j
                    .paths
                    .iter()
                    .map(|(p, t)| format!("{} = {}", p.source, t.describe()))
                    .collect();
                format!("json {{ {} }}", parts.join(", "))
            }
        }
    }

    /// Outputs the same constant for every row (so a key would collide).
    pub(crate) fn is_constant(&self) -> bool {
        matches!(
            self,
            Transformer::Null | Transformer::Fixed(_) | Transformer::Redact
        )
    }

    /// Outputs from a small set (names): not usable on a unique key either.
    pub(crate) fn repeats(&self) -> bool {
        matches!(
            self,
            Transformer::FirstName | Transformer::LastName | Transformer::FullName
        )
    }

    /// Checks that the transformer can produce a value of the column's type.
    pub(crate) fn check_type(&self, ty: &SqlType) -> Result<(), String> {
        use TypeKind as K;
        let ok = match self {
            Transformer::Keep | Transformer::Null | Transformer::Fixed(_) => true,
            _ if ty.array => matches!(self, Transformer::Redact),
            Transformer::Redact => !matches!(ty.kind, K::Enum),
            Transformer::Hash => matches!(ty.kind, K::Text | K::Other | K::Int { .. } | K::Uuid),
            Transformer::Email
            | Transformer::FirstName
            | Transformer::LastName
            | Transformer::FullName
            | Transformer::Phone => matches!(ty.kind, K::Text | K::Other),
            Transformer::Regex { .. } => matches!(ty.kind, K::Text | K::Other | K::Json),
            Transformer::DateShift { .. } => {
                matches!(ty.kind, K::Date | K::Timestamp | K::Text | K::Other)
            }
            Transformer::Json(_) => matches!(ty.kind, K::Json | K::Text | K::Other),
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "`{}` cannot produce a value of the column's type `{}`",
                self.describe(),
                ty.declared
            ))
        }
    }

    /// Transforms one non-NULL value (already unescaped) into `out`.
    /// Returns `Ok(false)` when the output is SQL NULL.
    pub(crate) fn apply(
        &self,
        k: &Keyed,
        ty: &SqlType,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool, String> {
        out.clear();
        let texty = matches!(ty.kind, TypeKind::Text | TypeKind::Other | TypeKind::Json);
        if input.is_empty() && texty && !self.is_constant() {
            return Ok(true);
        }
        let mut unique_digest = None;
        match self {
            Transformer::Keep => out.extend_from_slice(input),
            Transformer::Null => return Ok(false),
            Transformer::Fixed(v) => out.extend_from_slice(v.as_bytes()),
            Transformer::Redact => out.extend_from_slice(redacted(ty).as_bytes()),
            Transformer::Hash => match ty.kind {
                TypeKind::Int { min, max } => {
                    let v = parse_int(input)
                        .ok_or("`hash` on an integer column met a value that is not an integer")?;
                    if v < min || v > max {
                        return Err("`hash` met an integer outside the column type's range".into());
                    }
                    out.extend_from_slice(permute_int(k, v, min, max).to_string().as_bytes());
                }
                TypeKind::Uuid => {
                    let d = k.digest(b"uuid", &normalize_uuid(input));
                    out.extend_from_slice(format_uuid(&d).as_bytes());
                }
                _ => {
                    let d = k.digest(b"hash", input);
                    hex_into(&d[..16], out);
                    unique_digest = Some(d);
                }
            },
            Transformer::Email => {
                let d = k.digest(b"email", input);
                out.push(b'u');
                hex_into(&d[..8], out);
                out.extend_from_slice(b"@example.com");
                unique_digest = Some(d);
            }
            Transformer::FirstName => {
                let d = k.digest(b"first-name", input);
                out.extend_from_slice(pick(FIRST_NAMES, &d[0..2]).as_bytes());
            }
            Transformer::LastName => {
                let d = k.digest(b"last-name", input);
                out.extend_from_slice(pick(LAST_NAMES, &d[0..2]).as_bytes());
            }
            Transformer::FullName => {
                let d = k.digest(b"full-name", input);
                out.extend_from_slice(pick(FIRST_NAMES, &d[0..2]).as_bytes());
                out.push(b' ');
                out.extend_from_slice(pick(LAST_NAMES, &d[2..4]).as_bytes());
            }
            Transformer::Phone => phone(k, input, out),
            Transformer::DateShift { max_days } => date_shift(k, *max_days, input, out)?,
            Transformer::Regex { re, replace } => {
                out.extend_from_slice(&re.replace_all(input, replace.as_slice()));
            }
            Transformer::Json(rule) => rule.apply(k, input, out)?,
        }
        if let (Some(max), true) = (ty.max_len, texty) {
            fit_text(out, max as usize, unique_digest.as_ref());
        }
        Ok(true)
    }
}

fn redacted(ty: &SqlType) -> &'static str {
    if ty.array {
        return "{}";
    }
    match ty.kind {
        TypeKind::Int { .. } | TypeKind::Numeric => "0",
        TypeKind::Bool => "false",
        TypeKind::Uuid => "00000000-0000-0000-0000-000000000000",
        TypeKind::Date => "1970-01-01",
        TypeKind::Timestamp => "1970-01-01 00:00:00",
        TypeKind::Time => "00:00:00",
        TypeKind::Json => "{}",
        TypeKind::Binary => "",
        TypeKind::Text | TypeKind::Other | TypeKind::Enum => "REDACTED",
    }
}

/// Cuts text to `max` characters. Outputs that must stay unique (hash,
/// email) are replaced by `max` base32 characters of their digest instead,
/// which keeps 5 bits per character.
pub(crate) fn fit_text(out: &mut Vec<u8>, max: usize, unique: Option<&[u8; 32]>) {
    if out.len() <= max {
        return;
    }
    let chars = match std::str::from_utf8(out) {
        Ok(s) => s.chars().count(),
        Err(_) => out.len(),
    };
    if chars <= max {
        return;
    }
    if let Some(d) = unique {
        out.clear();
        base32_into(d, max.min(51), out);
        return;
    }
    match std::str::from_utf8(out) {
        Ok(s) => {
            let cut = s.char_indices().nth(max).map_or(s.len(), |(i, _)| i);
            out.truncate(cut);
        }
        Err(_) => out.truncate(max),
    }
}

fn hex_into(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

fn base32_into(d: &[u8; 32], n: usize, out: &mut Vec<u8>) {
    const ALPHA: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    for i in 0..n {
        let bit = i * 5;
        let (byte, off) = (bit / 8, bit % 8);
        let word = (u16::from(d[byte]) << 8) | u16::from(*d.get(byte + 1).unwrap_or(&0));
        let v = (word >> (11 - off)) & 31;
        out.push(ALPHA[v as usize]);
    }
}

fn pick(list: &[&'static str], b: &[u8]) -> &'static str {
    list[(usize::from(b[0]) << 8 | usize::from(b[1])) % list.len()]
}

fn parse_int(input: &[u8]) -> Option<i128> {
    let s = std::str::from_utf8(input).ok()?.trim();
    s.parse::<i128>().ok()
}

/// A keyed permutation of the integers, within the column type's range and
/// keeping the sign, so unique integers stay unique (a Feistel network on
/// the smallest even bit width that holds the range, with cycle walking).
fn permute_int(k: &Keyed, v: i128, min: i128, max: i128) -> i128 {
    if v >= 0 {
        permute_below(k, v as u128, (max as u128) + 1) as i128
    } else {
        let n = (-(min + 1)) as u128 + 1;
        -1 - permute_below(k, (-(v + 1)) as u128, n) as i128
    }
}

fn permute_below(k: &Keyed, x: u128, n: u128) -> u128 {
    if n <= 1 {
        return x;
    }
    let bits = 128 - (n - 1).leading_zeros();
    let half = bits.div_ceil(2).max(1);
    let mask = (1u128 << half) - 1;
    let mut x = x;
    loop {
        let (mut l, mut r) = (x >> half, x & mask);
        for round in 0u8..6 {
            let mut msg = [0u8; 18];
            msg[0] = round;
            msg[1] = half as u8;
            msg[2..18].copy_from_slice(&r.to_le_bytes());
            let d = k.digest(b"int", &msg);
            let f = u128::from_le_bytes(d[..16].try_into().unwrap_or([0; 16])) & mask;
            (l, r) = (r, l ^ f);
        }
        x = (l << half) | r;
        if x < n {
            return x;
        }
    }
}

fn normalize_uuid(input: &[u8]) -> Vec<u8> {
    input
        .iter()
        .filter(|b| b.is_ascii_hexdigit())
        .map(u8::to_ascii_lowercase)
        .collect()
}

fn format_uuid(d: &[u8; 32]) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut h = Vec::with_capacity(32);
    hex_into(&b, &mut h);
    let h = String::from_utf8_lossy(&h).into_owned();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Every digit replaced by a keyed digit; `+`, spaces and punctuation kept,
/// so the shape and length stay and the output fits wherever the input did.
fn phone(k: &Keyed, input: &[u8], out: &mut Vec<u8>) {
    let mut block = 0u32;
    let mut d = k.digest(b"phone", input);
    let mut used = 0usize;
    let mut first = true;
    for &c in input {
        if c.is_ascii_digit() {
            if used == 32 {
                block += 1;
                let mut msg = input.to_vec();
                msg.extend_from_slice(&block.to_le_bytes());
                d = k.digest(b"phone+", &msg);
                used = 0;
            }
            let digit = if first { 1 + d[used] % 9 } else { d[used] % 10 };
            first = false;
            used += 1;
            out.push(b'0' + digit);
        } else {
            out.push(c);
        }
    }
}

fn date_shift(k: &Keyed, max_days: u32, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let s = input;
    let special = [&b"infinity"[..], b"-infinity", b"0000-00-00"];
    if special.iter().any(|p| s.starts_with(p)) {
        out.extend_from_slice(input);
        return Ok(());
    }
    let bad = || "`date-shift` met a value that does not start with a YYYY-MM-DD date".to_string();
    if s.len() < 10 || s[4] != b'-' || s[7] != b'-' {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        s[r].iter().try_fold(0i64, |a, c| {
            c.is_ascii_digit().then(|| a * 10 + i64::from(c - b'0'))
        })
    };
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return Err(bad());
    };
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return Err(bad());
    }
    let digest = k.digest(b"date-shift", input);
    let x = u64::from_le_bytes(digest[..8].try_into().unwrap_or([0; 8]));
    let mut offset = 1 + (x % u64::from(max_days)) as i64;
    if digest[8] & 1 == 1 {
        offset = -offset;
    }
    let base = days_from_civil(y, m, d);
    let (mut ny, mut nm, mut nd) = civil_from_days(base + offset);
    if !(1..=9999).contains(&ny) {
        (ny, nm, nd) = civil_from_days(base - offset);
    }
    write_date(out, ny, nm, nd);
    out.extend_from_slice(&s[10..]);
    Ok(())
}

fn write_date(out: &mut Vec<u8>, y: i64, m: i64, d: i64) {
    let y = y.clamp(0, 9999) as u32;
    let (m, d) = (m.clamp(0, 99) as u32, d.clamp(0, 99) as u32);
    let digit = |v: u32| b'0' + (v % 10) as u8;
    out.extend_from_slice(&[
        digit(y / 1000),
        digit(y / 100),
        digit(y / 10),
        digit(y),
        b'-',
        digit(m / 10),
        digit(m),
        b'-',
        digit(d / 10),
        digit(d),
    ]);
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

// Howard Hinnant's civil calendar algorithms.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

const FIRST_NAMES: &[&str] = &[
    "Ada", "Alan", "Alice", "Amara", "Anders", "Aiko", "Bea", "Boris", "Carla", "Chen", "Dara",
    "Dmitri", "Elena", "Emeka", "Farah", "Felix", "Greta", "Hana", "Hugo", "Ines", "Ivan", "Jonas",
    "Julia", "Kai", "Kemal", "Lena", "Liam", "Mara", "Mateo", "Mei", "Nadia", "Nils", "Noor",
    "Olga", "Omar", "Paula", "Pedro", "Quinn", "Rosa", "Ravi", "Sara", "Sven", "Tara", "Tomas",
    "Uma", "Viktor", "Wanda", "Yara", "Yusuf", "Zoe",
];

const LAST_NAMES: &[&str] = &[
    "Abara",
    "Berg",
    "Castro",
    "Dahl",
    "Eze",
    "Fischer",
    "Garcia",
    "Hansen",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quist",
    "Rossi",
    "Silva",
    "Tanaka",
    "Ueda",
    "Varga",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zhang",
    "Almeida",
    "Brandt",
    "Costa",
    "Dubois",
    "Engel",
    "Ferreira",
    "Gruber",
    "Horvat",
    "Iqbal",
    "Jovanovic",
    "Kim",
    "Larsen",
    "Meyer",
    "Novak",
    "Olsen",
    "Park",
    "Reyes",
    "Schmidt",
    "Toth",
    "Vogel",
    "Wagner",
    "Young",
    "Zimmer",
    "Lindqvist",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn k() -> Keyed {
        Keyed::new(b"transform-tests-salt")
    }

    fn t(spec: &str) -> Transformer {
        let v: toml::Table = format!("x = {spec}").parse().unwrap();
        Transformer::from_toml(&v["x"]).unwrap()
    }

    fn apply(spec: &str, ty: &str, input: &str) -> Option<String> {
        let mut out = Vec::new();
        let ty = SqlType::parse(ty);
        t(spec).check_type(&ty).unwrap();
        t(spec)
            .apply(&k(), &ty, input.as_bytes(), &mut out)
            .unwrap()
            .then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn keep_null_fixed_redact() {
        assert_eq!(apply("\"keep\"", "text", "x").unwrap(), "x");
        assert_eq!(apply("\"null\"", "text", "x"), None);
        assert_eq!(
            apply("{ fixed = \"nobody@example.com\" }", "text", "x").unwrap(),
            "nobody@example.com"
        );
        assert_eq!(
            apply("{ fixed = \"nobody@example.com\" }", "varchar(6)", "x").unwrap(),
            "nobody"
        );
        assert_eq!(apply("\"redact\"", "text", "secret").unwrap(), "REDACTED");
        assert_eq!(apply("\"redact\"", "integer", "42").unwrap(), "0");
        assert_eq!(
            apply("\"redact\"", "date", "2020-01-01").unwrap(),
            "1970-01-01"
        );
        assert_eq!(apply("\"redact\"", "jsonb", "{\"a\":1}").unwrap(), "{}");
        assert_eq!(apply("\"redact\"", "char(3)", "abcdef").unwrap(), "RED");
    }

    #[test]
    fn email_is_deterministic_unique_looking_and_fits() {
        let a = apply("\"email\"", "text", "ann@example.org").unwrap();
        assert_eq!(
            a,
            apply("\"email\"", "varchar(255)", "ann@example.org").unwrap()
        );
        assert!(a.starts_with('u') && a.ends_with("@example.com") && a.len() == 29);
        assert_ne!(a, apply("\"email\"", "text", "Ann@example.org").unwrap());
        let short = apply("\"email\"", "varchar(12)", "ann@example.org").unwrap();
        assert_eq!(short.len(), 12);
        assert!(
            short
                .bytes()
                .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c))
        );
        assert_eq!(apply("\"email\"", "text", "").unwrap(), "");
    }

    #[test]
    fn hash_keeps_the_type() {
        let h = apply("\"hash\"", "text", "token").unwrap();
        assert_eq!(h.len(), 32);
        let u = apply("\"hash\"", "uuid", "6F1C2F0E-9C3E-4F55-9D7E-3F0B2F8A1A10").unwrap();
        assert_eq!(
            u,
            apply("\"hash\"", "uuid", "6f1c2f0e9c3e4f559d7e3f0b2f8a1a10").unwrap()
        );
        assert_eq!(u.len(), 36);
        assert_eq!(u.as_bytes()[14], b'4');
        for (ty, v, lo, hi) in [
            ("smallint", "-5", -32768i128, -1i128),
            ("smallint", "7", 0, 32767),
            ("integer", "2147483647", 0, 2147483647),
            ("bigint", "-9223372036854775808", i64::MIN as i128, -1),
            ("tinyint unsigned", "255", 0, 255),
        ] {
            let out: i128 = apply("\"hash\"", ty, v).unwrap().parse().unwrap();
            assert!((lo..=hi).contains(&out), "{ty} {v} -> {out}");
        }
    }

    #[test]
    fn hash_of_small_integers_is_a_permutation() {
        let ty = SqlType::parse("smallint");
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for v in 0..=32767i32 {
            Transformer::Hash
                .apply(&k(), &ty, v.to_string().as_bytes(), &mut out)
                .unwrap();
            let n: i32 = std::str::from_utf8(&out).unwrap().parse().unwrap();
            assert!((0..=32767).contains(&n));
            assert!(seen.insert(n), "collision at {v}");
        }
    }

    #[test]
    fn names_and_phones() {
        let f = apply("\"first-name\"", "text", "Wilhelmina").unwrap();
        assert!(FIRST_NAMES.contains(&f.as_str()));
        let full = apply("\"name\"", "text", "Wilhelmina Fairweather").unwrap();
        assert_eq!(full.split(' ').count(), 2);
        let p = apply("\"phone\"", "text", "+1 (415) 555-0001").unwrap();
        assert_eq!(p.len(), "+1 (415) 555-0001".len());
        assert_eq!(
            p.replace(|c: char| c.is_ascii_digit(), "9"),
            "+9 (999) 999-9999"
        );
        assert_ne!(p, "+1 (415) 555-0001");
        let long = "1".repeat(80);
        assert_eq!(apply("\"phone\"", "text", &long).unwrap().len(), 80);
    }

    #[test]
    fn date_shift_keeps_the_format() {
        let d = apply("\"date-shift\"", "date", "2024-02-29").unwrap();
        assert_eq!(d.len(), 10);
        assert_ne!(d, "2024-02-29");
        let ts = apply(
            "{ date-shift = { max-days = 3 } }",
            "timestamptz",
            "2024-01-01 10:11:12.5+02",
        )
        .unwrap();
        assert!(ts.ends_with(" 10:11:12.5+02"), "{ts}");
        let day = &ts[..10];
        assert!(
            [
                "2023-12-29",
                "2023-12-30",
                "2023-12-31",
                "2024-01-02",
                "2024-01-03",
                "2024-01-04"
            ]
            .contains(&day),
            "{ts}"
        );
        assert_eq!(
            apply("\"date-shift\"", "date", "infinity").unwrap(),
            "infinity"
        );
        let mut out = Vec::new();
        assert!(
            t("\"date-shift\"")
                .apply(&k(), &SqlType::parse("date"), b"soon", &mut out)
                .is_err()
        );
        assert!(
            t("\"date-shift\"")
                .apply(&k(), &SqlType::parse("date"), b"2024-13-01", &mut out)
                .is_err()
        );
        for days in [-800_000i64, -1, 0, 59, 60, 365, 738_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn regex_and_json() {
        let r = apply(
            "{ regex = '\\d', replace = \"#\" }",
            "text",
            "call 555-01 now",
        )
        .unwrap();
        assert_eq!(r, "call ###-## now");
        let j = apply(
            r#"{ json = { "$.email" = "email", "$.tags[*]" = "redact", "$..phone" = "phone", "$.missing.x" = "null" } }"#,
            "jsonb",
            r#"{"email": "a@b.io", "tags": ["x", "y"], "nested": [{"phone": "555-1234"}], "keep": 1}"#,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert!(v["email"].as_str().unwrap().ends_with("@example.com"));
        assert_eq!(v["tags"], serde_json::json!(["REDACTED", "REDACTED"]));
        assert_ne!(v["nested"][0]["phone"], "555-1234");
        assert_eq!(v["keep"], 1);
        let mut out = Vec::new();
        let bad = t(r#"{ json = { "$.a" = "email" } }"#).apply(
            &k(),
            &SqlType::parse("json"),
            b"{not json",
            &mut out,
        );
        assert!(bad.is_err());
    }

    #[test]
    fn type_checks_and_parse_errors() {
        assert!(
            t("\"email\"")
                .check_type(&SqlType::parse("integer"))
                .is_err()
        );
        assert!(
            t("\"hash\"")
                .check_type(&SqlType::parse("numeric(10,2)"))
                .is_err()
        );
        assert!(
            t("\"date-shift\"")
                .check_type(&SqlType::parse("boolean"))
                .is_err()
        );
        assert!(
            t("\"email\"")
                .check_type(&SqlType::parse("text[]"))
                .is_err()
        );
        assert!(
            t("\"redact\"")
                .check_type(&SqlType::parse("text[]"))
                .is_ok()
        );
        let bad = |spec: &str| {
            let v: toml::Table = format!("x = {spec}").parse().unwrap();
            Transformer::from_toml(&v["x"]).unwrap_err()
        };
        assert!(bad("\"emial\"").contains("unknown transformer"));
        assert!(bad("\"fixed\"").contains("needs a value"));
        assert!(bad("{ regex = \"(\", replace = \"\" }").contains("bad regex"));
        assert!(bad("{ json = { \"email\" = \"email\" } }").contains("must start with"));
        assert!(bad("{ date-shift = { max-days = 0 } }").contains("max-days"));
        assert!(bad("{ fixed = \"a\", hash = 1 }").contains("unknown transformer table"));
    }
}
