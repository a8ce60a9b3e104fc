//! Property tests of the anonymizer through its public API: identity with
//! keep-only rules on generated dumps of both dialects, determinism,
//! uniqueness, and the fuzz targets' body on arbitrary and mutated input.

use std::collections::HashSet;
use std::fmt::Write as _;

use proptest::prelude::*;
use sluice::anonymize::{Dialect, Rules, Salt, anonymize, fuzz_one};

fn salt(s: &str) -> Salt {
    Salt::new(format!("property-salt-{s}-0123456789").into_bytes()).unwrap()
}

fn run(input: &[u8], rules: &str, salt: &Salt, dialect: Dialect) -> Vec<u8> {
    let rules = Rules::from_toml(rules).unwrap();
    let mut out = Vec::new();
    if let Err(e) = anonymize(input, &mut out, &rules, salt, dialect) {
        panic!("{e}\n--- input ---\n{}", String::from_utf8_lossy(input));
    }
    out
}

/// A value as generated: NULL, an integer, or text. Text has no digits and
/// no `@`, so the detectors have nothing to find in it.
#[derive(Debug, Clone)]
enum Val {
    Null,
    Int(i64),
    Text(String),
}

#[derive(Debug, Clone, Copy)]
enum Ty {
    Int,
    Text,
    Varchar,
    Blob,
}

fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z \\t\\n\\\\'\";(),$.{}\\[\\]éß✓*/#-]{0,24}").unwrap()
}

fn column() -> impl Strategy<Value = Ty> {
    prop_oneof![
        Just(Ty::Int),
        Just(Ty::Text),
        Just(Ty::Varchar),
        Just(Ty::Blob)
    ]
}

fn value(ty: Ty) -> BoxedStrategy<Val> {
    let v = match ty {
        Ty::Int => any::<i32>().prop_map(|i| Val::Int(i.into())).boxed(),
        Ty::Text | Ty::Blob => text().prop_map(Val::Text).boxed(),
        Ty::Varchar => text()
            .prop_map(|s| Val::Text(s.chars().take(20).collect()))
            .boxed(),
    };
    prop_oneof![1 => Just(Val::Null), 6 => v].boxed()
}

#[derive(Debug, Clone)]
struct Table {
    cols: Vec<Ty>,
    rows: Vec<Vec<Val>>,
    style: u8,
}

fn table() -> impl Strategy<Value = Table> {
    (proptest::collection::vec(column(), 1..5), 0u8..4).prop_flat_map(|(cols, style)| {
        let row: Vec<BoxedStrategy<Val>> = cols.iter().map(|t| value(*t)).collect();
        proptest::collection::vec(row, 0..6).prop_map(move |rows| Table {
            cols: cols.clone(),
            rows,
            style,
        })
    })
}

fn copy_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}

fn pg_dump(tables: &[Table], noise: &[String]) -> String {
    let mut s = String::from(
        "--\n-- PostgreSQL database dump\n--\n\nSET standard_conforming_strings = on;\n",
    );
    for (ti, t) in tables.iter().enumerate() {
        let _ = writeln!(
            s,
            "\n-- {}\nSET x = '{}';",
            noise[ti % noise.len()].replace('\n', " "),
            noise[ti % noise.len()].replace('\'', "''")
        );
        let _ = writeln!(
            s,
            "CREATE FUNCTION public.f{ti}() RETURNS text AS $q$ COPY public.t{ti} FROM stdin; {} $q$ LANGUAGE sql;",
            noise[(ti + 1) % noise.len()].replace('$', "")
        );
        let defs: Vec<String> = t
            .cols
            .iter()
            .enumerate()
            .map(|(i, ty)| {
                let ty = match ty {
                    Ty::Int => "integer",
                    Ty::Text => "text",
                    Ty::Varchar => "character varying(20)",
                    Ty::Blob => "bytea",
                };
                format!("    c{i} {ty}")
            })
            .collect();
        let _ = writeln!(s, "CREATE TABLE public.t{ti} (\n{}\n);\n", defs.join(",\n"));
        let names: Vec<String> = (0..t.cols.len()).map(|i| format!("c{i}")).collect();
        let lit = |v: &Val, ty: Ty| match (v, ty) {
            (Val::Null, _) => "NULL".to_string(),
            (Val::Int(i), _) => i.to_string(),
            (Val::Text(x), Ty::Blob) => format!(
                "'\\x{}'",
                x.bytes().map(|b| format!("{b:02x}")).collect::<String>()
            ),
            (Val::Text(x), _) => format!("'{}'", x.replace('\'', "''")),
        };
        match t.style {
            0 | 1 => {
                let _ = writeln!(s, "COPY public.t{ti} ({}) FROM stdin;", names.join(", "));
                for row in &t.rows {
                    let fields: Vec<String> = row
                        .iter()
                        .zip(&t.cols)
                        .map(|(v, ty)| match (v, ty) {
                            (Val::Null, _) => "\\N".into(),
                            (Val::Int(i), _) => i.to_string(),
                            (Val::Text(x), Ty::Blob) => {
                                format!(
                                    "\\\\x{}",
                                    x.bytes().map(|b| format!("{b:02x}")).collect::<String>()
                                )
                            }
                            (Val::Text(x), _) => copy_escape(x),
                        })
                        .collect();
                    let _ = writeln!(s, "{}", fields.join("\t"));
                }
                s.push_str("\\.\n\n");
            }
            2 => {
                for row in &t.rows {
                    let vals: Vec<String> =
                        row.iter().zip(&t.cols).map(|(v, ty)| lit(v, *ty)).collect();
                    let _ = writeln!(s, "INSERT INTO public.t{ti} VALUES ({});", vals.join(", "));
                }
            }
            _ => {
                if !t.rows.is_empty() {
                    let rows: Vec<String> = t
                        .rows
                        .iter()
                        .map(|row| {
                            let vals: Vec<String> =
                                row.iter().zip(&t.cols).map(|(v, ty)| lit(v, *ty)).collect();
                            format!("\t({})", vals.join(", "))
                        })
                        .collect();
                    let _ = writeln!(
                        s,
                        "INSERT INTO public.t{ti} ({}) VALUES\n{};",
                        names.join(", "),
                        rows.join(",\n")
                    );
                }
            }
        }
    }
    s
}

fn my_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

fn my_dump(tables: &[Table], noise: &[String]) -> String {
    let mut s = String::from(
        "-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB\n--\n-- Host: localhost    Database: gen\n\
         /*!40101 SET NAMES utf8mb4 */;\n",
    );
    for (ti, t) in tables.iter().enumerate() {
        let _ = writeln!(
            s,
            "\n-- {}\n# {}",
            noise[ti % noise.len()].replace('\n', " "),
            noise[0].replace('\n', " ")
        );
        let _ = writeln!(
            s,
            "DELIMITER ;;\n/*!50003 CREATE*/ /*!50003 TRIGGER tr{ti} BEFORE INSERT ON `t{ti}` FOR EACH ROW BEGIN SET @a = '{}'; END */;;\nDELIMITER ;",
            my_escape(&noise[(ti + 1) % noise.len()])
        );
        let defs: Vec<String> = t
            .cols
            .iter()
            .enumerate()
            .map(|(i, ty)| {
                let ty = match ty {
                    Ty::Int => "int(11) DEFAULT NULL",
                    Ty::Text => "text DEFAULT NULL",
                    Ty::Varchar => "varchar(20) DEFAULT NULL",
                    Ty::Blob => "blob DEFAULT NULL",
                };
                format!("  `c{i}` {ty}")
            })
            .collect();
        let _ = writeln!(
            s,
            "CREATE TABLE `t{ti}` (\n{}\n) ENGINE=InnoDB;",
            defs.join(",\n")
        );
        if t.rows.is_empty() {
            continue;
        }
        let rows: Vec<String> = t
            .rows
            .iter()
            .map(|row| {
                let vals: Vec<String> = row
                    .iter()
                    .zip(&t.cols)
                    .map(|(v, ty)| match (v, ty) {
                        (Val::Null, _) => "NULL".into(),
                        (Val::Int(i), _) => i.to_string(),
                        (Val::Text(x), Ty::Blob) if t.style % 2 == 0 && !x.is_empty() => {
                            format!(
                                "0x{}",
                                x.bytes().map(|b| format!("{b:02X}")).collect::<String>()
                            )
                        }
                        (Val::Text(x), Ty::Blob) => format!("_binary '{}'", my_escape(x)),
                        (Val::Text(x), _) => format!("'{}'", my_escape(x)),
                    })
                    .collect();
                format!("({})", vals.join(","))
            })
            .collect();
        let sep = if t.style < 2 { "," } else { ",\n" };
        let _ = writeln!(s, "INSERT INTO `t{ti}` VALUES {};", rows.join(sep));
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn keep_only_postgres_output_is_identical(
        tables in proptest::collection::vec(table(), 1..4),
        noise in proptest::collection::vec(text(), 1..3),
    ) {
        let dump = pg_dump(&tables, &noise);
        let out = run(dump.as_bytes(), r#""*.*.*" = "keep""#, &salt("a"), Dialect::Postgres);
        prop_assert_eq!(String::from_utf8_lossy(&out), dump.as_str());
        // The same through a tiny read buffer (rows split across reads).
        let rules = Rules::from_toml(r#""*.*.*" = "keep""#).unwrap();
        let mut small = Vec::new();
        let reader = std::io::BufReader::with_capacity(5, dump.as_bytes());
        anonymize(reader, &mut small, &rules, &salt("a"), Dialect::Postgres).unwrap();
        prop_assert_eq!(small, out);
    }

    #[test]
    fn keep_only_mysql_output_is_identical(
        tables in proptest::collection::vec(table(), 1..4),
        noise in proptest::collection::vec(text(), 1..3),
    ) {
        let dump = my_dump(&tables, &noise);
        let out = run(dump.as_bytes(), r#""*.*.*" = "keep""#, &salt("a"), Dialect::Mysql);
        prop_assert_eq!(String::from_utf8_lossy(&out), dump);
    }

    #[test]
    fn redacting_keeps_the_dump_shape(
        tables in proptest::collection::vec(table(), 1..4),
        noise in proptest::collection::vec(text(), 1..3),
    ) {
        // Every column transformed: the statement and line structure survives.
        let rules = r#""*.*.*" = "redact""#;
        let pg = pg_dump(&tables, &noise);
        let out = run(pg.as_bytes(), rules, &salt("a"), Dialect::Postgres);
        let count = |s: &[u8], needle: &str| String::from_utf8_lossy(s).matches(needle).count();
        prop_assert_eq!(count(&out, "FROM stdin;\n"), count(pg.as_bytes(), "FROM stdin;\n"));
        prop_assert_eq!(count(&out, "INSERT INTO"), count(pg.as_bytes(), "INSERT INTO"));
        let my = my_dump(&tables, &noise);
        let out = run(my.as_bytes(), rules, &salt("a"), Dialect::Mysql);
        prop_assert_eq!(count(&out, "INSERT INTO"), count(my.as_bytes(), "INSERT INTO"));
    }

    #[test]
    fn same_salt_same_output_other_salt_other_values(
        values in proptest::collection::vec("[a-z]{1,12}", 1..20),
    ) {
        let mut dump = String::from("CREATE TABLE public.u (\n    id integer,\n    email text\n);\nCOPY public.u (id, email) FROM stdin;\n");
        for (i, v) in values.iter().enumerate() {
            let _ = writeln!(dump, "{i}\t{v}@corp.test");
        }
        dump.push_str("\\.\n");
        let rules = r#""public.u.id" = "keep"
"public.u.email" = "email""#;
        let a = run(dump.as_bytes(), rules, &salt("a"), Dialect::Postgres);
        let b = run(dump.as_bytes(), rules, &salt("a"), Dialect::Postgres);
        prop_assert_eq!(&a, &b);
        let c = run(dump.as_bytes(), rules, &salt("c"), Dialect::Postgres);
        let lines = |o: &[u8]| String::from_utf8_lossy(o).lines().map(str::to_owned).collect::<Vec<_>>();
        let (la, lc) = (lines(&a), lines(&c));
        prop_assert_eq!(la.len(), lc.len());
        for (x, y) in la.iter().zip(&lc) {
            if x.contains("@example.com") {
                prop_assert_ne!(x, y);
            }
        }
    }
}

#[test]
fn thousands_of_distinct_emails_stay_distinct() {
    for ty in ["character varying(255)", "character varying(12)"] {
        let mut dump = format!(
            "CREATE TABLE public.u (\n    email {ty}\n);\nCOPY public.u (email) FROM stdin;\n"
        );
        for i in 0..5000 {
            let _ = writeln!(dump, "person{i}@corp{}.test", i % 17);
        }
        dump.push_str("\\.\n");
        let out = run(
            dump.as_bytes(),
            r#""*.u.email" = "email""#,
            &salt("u"),
            Dialect::Postgres,
        );
        let text = String::from_utf8(out).unwrap();
        let rows: Vec<&str> = text.lines().skip(4).take(5000).collect();
        let distinct: HashSet<&str> = rows.iter().copied().collect();
        assert_eq!(distinct.len(), 5000, "{ty}");
        assert!(
            rows.iter()
                .all(|r| r.chars().count() <= 29 && !r.contains("corp")),
            "{ty}"
        );
    }
}

fn fixtures() -> Vec<(Vec<u8>, Dialect)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    [
        ("pg_plain.sql", Dialect::Postgres),
        ("pg_inserts.sql", Dialect::Postgres),
        ("pg_rows50.sql", Dialect::Postgres),
        ("mariadb.sql", Dialect::Mysql),
    ]
    .into_iter()
    .map(|(f, d)| (std::fs::read(dir.join(f)).unwrap(), d))
    .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let special = prop_oneof![
        Just(b"'".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"\t".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\\.\n".to_vec()),
        Just(b"$$".to_vec()),
        Just(b"/*".to_vec()),
        Just(b"(".to_vec()),
        Just(b");".to_vec()),
        Just(b"`".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"COPY x FROM stdin;\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 1..8),
    ];
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), special).prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1usize..200).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut data: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let len = data.len().max(1);
        match m {
            Mutation::Flip(i, b) => {
                if !data.is_empty() {
                    data[i % len] = *b;
                }
            }
            Mutation::Insert(i, v) => {
                let at = i % (data.len() + 1);
                data.splice(at..at, v.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let at = i % len;
                let end = (at + n).min(data.len());
                data.drain(at.min(data.len())..end);
            }
            Mutation::Truncate(i) => data.truncate(i % len),
        }
    }
    data
}

/// Cases for the fuzz-body tests: 256, or `ANON_FUZZ_CASES` for a longer run.
fn fuzz_cases() -> u32 {
    std::env::var("ANON_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(fuzz_cases()))]

    #[test]
    fn fuzz_body_survives_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..4096), pg in any::<bool>()) {
        fuzz_one(if pg { Dialect::Postgres } else { Dialect::Mysql }, &data);
    }

    #[test]
    fn fuzz_body_survives_sql_like_bytes(
        data in proptest::string::string_regex("(COPY t \\(a\\) FROM stdin;\n|INSERT INTO t VALUES \\(|CREATE TABLE t \\(a text, email text\\);\n|'|\"|`|\\$\\$|\\\\|\t|\n|\\\\\\.|;|,|\\)|\\(|NULL|0x4|_binary |E'|--|/\\*|\\*/|DELIMITER ;;\n|a@b.io|[a-z0-9 ]{1,4})*").unwrap(),
        pg in any::<bool>(),
    ) {
        fuzz_one(if pg { Dialect::Postgres } else { Dialect::Mysql }, data.as_bytes());
    }
}

#[test]
fn fuzz_body_survives_mutated_fixtures() {
    use proptest::test_runner::{Config, TestRunner};
    let fixtures = fixtures();
    let mut runner = TestRunner::new(Config {
        cases: fuzz_cases(),
        ..Config::default()
    });
    runner
        .run(
            &(
                0..fixtures.len(),
                proptest::collection::vec(mutation(), 1..6),
            ),
            |(which, muts)| {
                let (data, dialect) = &fixtures[which];
                let data = mutate(data.clone(), &muts);
                fuzz_one(*dialect, &data);
                Ok(())
            },
        )
        .unwrap();
}
