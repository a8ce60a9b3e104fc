//! End-to-end tests of the anonymizer on small hand-written dumps.

use super::*;

fn salt() -> Salt {
    Salt::new(b"0123456789abcdef-test-salt".to_vec()).unwrap()
}

fn run(dialect: Dialect, rules: &str, input: &str) -> Result<(String, Report), Error> {
    let rules = Rules::from_toml(rules).unwrap();
    let mut out = Vec::new();
    let report = anonymize(input.as_bytes(), &mut out, &rules, &salt(), dialect)?;
    Ok((String::from_utf8(out).unwrap(), report))
}

fn ok(dialect: Dialect, rules: &str, input: &str) -> String {
    match run(dialect, rules, input) {
        Ok((out, _)) => out,
        Err(e) => panic!("{e}"),
    }
}

fn refused(dialect: Dialect, rules: &str, input: &str) -> Vec<Problem> {
    match run(dialect, rules, input) {
        Err(Error::Refused { problems, .. }) => problems,
        Err(e) => panic!("unexpected error {e}"),
        Ok((out, _)) => panic!("expected a refusal, got:\n{out}"),
    }
}

const PG_USERS: &str = "--\n-- PostgreSQL database dump\n--\n\nSET standard_conforming_strings = on;\n\n\
CREATE TABLE public.users (\n    id integer NOT NULL,\n    email character varying(255) NOT NULL,\n    \
name text,\n    note text,\n    code character varying(12)\n);\n\n\
CREATE FUNCTION public.f() RETURNS text\n    LANGUAGE sql\n    AS $_$SELECT 'COPY public.users (id) FROM stdin;\n1\n\\.\n'; $_$;\n\n\
COPY public.users (id, email, name, note, code) FROM stdin;\n\
1\tann@example.org\tAnn Lee\tlikes\\ttabs\\nand lines\tA1\n\
2\tbob@example.net\t\\N\t\\\\N\tB2\n\
\\.\n\n\
ALTER TABLE ONLY public.users\n    ADD CONSTRAINT users_pkey PRIMARY KEY (id);\n\n\
CREATE UNIQUE INDEX users_code ON public.users USING btree (code);\n";

const PG_RULES: &str = r#"
"public.users.id" = "keep"
"public.users.email" = "email"
"public.users.name" = "full-name"
"public.users.note" = "keep"
"public.users.code" = "hash"
"#;

#[test]
fn postgres_copy_is_transformed_and_the_rest_passes_through() {
    let out = ok(Dialect::Postgres, PG_RULES, PG_USERS);
    assert!(
        !out.contains("ann@example.org") && !out.contains("bob@example.net"),
        "{out}"
    );
    assert!(!out.contains("Ann Lee"));
    // The function body with COPY inside dollar quotes is untouched.
    assert!(out.contains("AS $_$SELECT 'COPY public.users (id) FROM stdin;\n1\n\\.\n'; $_$;"));
    // Escapes of kept columns are preserved byte for byte; NULL vs the string \N.
    assert!(out.contains("\tlikes\\ttabs\\nand lines\t"), "{out}");
    let row2 = out.lines().find(|l| l.starts_with("2\t")).unwrap();
    let f: Vec<&str> = row2.split('\t').collect();
    assert_eq!(f[2], "\\N");
    assert_eq!(f[3], "\\\\N");
    assert!(
        f[1].starts_with('u') && f[1].ends_with("@example.com") && f[1].len() == 29,
        "{row2}"
    );
    assert_eq!(f[4].len(), 12, "hash fits varchar(12): {row2}");
    // Same line count: nothing added or dropped.
    assert_eq!(out.lines().count(), PG_USERS.lines().count());
}

#[test]
fn keep_only_rules_give_identical_output() {
    let out = ok(
        Dialect::Postgres,
        r#""public.users.*" = "keep""#,
        &PG_USERS.replace("@", " at "),
    );
    assert_eq!(out, PG_USERS.replace("@", " at "));
}

#[test]
fn same_salt_same_output_other_salt_other_values() {
    let a = ok(Dialect::Postgres, PG_RULES, PG_USERS);
    let b = ok(Dialect::Postgres, PG_RULES, PG_USERS);
    assert_eq!(a, b);
    let rules = Rules::from_toml(PG_RULES).unwrap();
    let mut c = Vec::new();
    let other = Salt::new(b"another-salt-of-enough-length".to_vec()).unwrap();
    anonymize(
        PG_USERS.as_bytes(),
        &mut c,
        &rules,
        &other,
        Dialect::Postgres,
    )
    .unwrap();
    assert_ne!(a.as_bytes(), c.as_slice());
}

#[test]
fn an_uncovered_column_is_named_with_a_suggestion() {
    let p = refused(Dialect::Postgres, r#""public.users.id" = "keep""#, PG_USERS);
    let cols: Vec<&str> = p.iter().map(|p| p.column.as_str()).collect();
    assert_eq!(
        cols,
        [
            "public.users.email",
            "public.users.name",
            "public.users.note",
            "public.users.code"
        ]
    );
    assert!(p.iter().all(|p| p.kind == ProblemKind::Uncovered));
    assert_eq!(
        p[0].suggestion.as_deref(),
        Some("\"public.users.email\" = \"email\"")
    );
    let msg = Error::Refused {
        problems: p,
        report: Box::default(),
    }
    .to_string();
    assert!(
        msg.contains("public.users.note: no rule covers this column"),
        "{msg}"
    );
}

#[test]
fn an_email_in_free_text_under_a_glob_keep_fails() {
    let dump = PG_USERS.replace("likes\\ttabs", "mail me: carol.x@corp.example.com");
    let rules = r#"
        "public.users.*" = "keep"
        "public.users.email" = "email"
        "public.users.name" = "full-name"
    "#;
    let p = refused(Dialect::Postgres, rules, &dump);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].kind, ProblemKind::Detected);
    assert_eq!(p[0].column, "public.users.note");
    assert_eq!(p[0].example.as_deref(), Some("c***@c***.com"));
    assert!(
        p[0].suggestion
            .as_deref()
            .unwrap()
            .starts_with("\"public.users.note\" = { regex")
    );
    // An explicit keep is a decision: not scanned.
    let explicit = format!("{rules}\n\"public.users.note\" = \"keep\"");
    ok(Dialect::Postgres, &explicit, &dump);
}

#[test]
fn an_email_inside_json_under_a_glob_keep_fails_and_json_rules_fix_it() {
    let dump = "CREATE TABLE public.p (id integer, doc jsonb);\nCOPY public.p (id, doc) FROM stdin;\n\
1\t{\"contact\": {\"email\": \"dora@mail.example\", \"tags\": [1, 2]}, \"n\": 3}\n\\.\n";
    let p = refused(Dialect::Postgres, r#""public.p.*" = "keep""#, dump);
    assert_eq!(p[0].column, "public.p.doc");
    assert_eq!(p[0].example.as_deref(), Some("d***@m***.example"));
    let out = ok(
        Dialect::Postgres,
        r#""public.p.*" = "keep"
           "public.p.doc" = { json = { "$..email" = "email", "$.contact.tags[*]" = "redact" } }"#,
        dump,
    );
    assert!(!out.contains("dora@"), "{out}");
    let line = out.lines().find(|l| l.starts_with("1\t")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(line.split('\t').nth(1).unwrap()).unwrap();
    assert!(
        doc["contact"]["email"]
            .as_str()
            .unwrap()
            .ends_with("@example.com")
    );
    assert_eq!(doc["contact"]["tags"][0], "REDACTED");
    assert_eq!(doc["n"], 3);
    // Key order is kept.
    assert!(line.find("contact").unwrap() < line.find("\"n\"").unwrap());
}

#[test]
fn constant_transformers_on_keys_are_rule_errors_even_when_the_key_comes_after_the_data() {
    let rules = PG_RULES.replace(
        r#""public.users.code" = "hash""#,
        r#""public.users.code" = { fixed = "X" }"#,
    );
    let p = refused(Dialect::Postgres, &rules, PG_USERS);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].kind, ProblemKind::RuleConflict);
    assert_eq!(p[0].column, "public.users.code");
    assert!(p[0].message.contains("UNIQUE"), "{}", p[0].message);
    let rules = PG_RULES.replace(
        r#""public.users.id" = "keep""#,
        r#""public.users.id" = "redact""#,
    );
    let p = refused(Dialect::Postgres, &rules, PG_USERS);
    assert_eq!(p[0].column, "public.users.id");
    let rules = PG_RULES.replace(
        r#""public.users.email" = "email""#,
        r#""public.users.email" = "null""#,
    );
    let p = refused(Dialect::Postgres, &rules, PG_USERS);
    assert!(p[0].message.contains("NOT NULL"), "{p:?}");
}

#[test]
fn pg_inserts_multi_row_with_tricky_strings() {
    let dump = "CREATE TABLE public.t (\n    id bigint NOT NULL,\n    email text,\n    bio text,\n    u uuid\n);\n\
INSERT INTO public.t VALUES (1, 'a@b.io', 'has ), ( and ''quotes'' ; too', '6f1c2f0e-9c3e-4f55-9d7e-3f0b2f8a1a10');\n\
INSERT INTO public.t (id, email, bio, u) VALUES\n\t(2, 'o''neil@x.io', NULL, NULL),\n\t(3, NULL, 'x', 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee');\n";
    let rules = r#"
        "public.t.id" = "hash"
        "public.t.email" = "email"
        "public.t.bio" = "keep"
        "public.t.u" = "hash"
    "#;
    let out = ok(Dialect::Postgres, rules, dump);
    assert!(!out.contains("a@b.io") && !out.contains("neil@"), "{out}");
    assert!(out.contains("'has ), ( and ''quotes'' ; too'"), "{out}");
    assert!(
        out.contains("\n\t(") && out.contains(", NULL, NULL),\n"),
        "{out}"
    );
    // hash of a bigint is an unquoted integer; of a uuid a uuid.
    let first = out
        .lines()
        .find(|l| l.starts_with("INSERT INTO public.t VALUES"))
        .unwrap();
    let id = first
        .trim_start_matches("INSERT INTO public.t VALUES (")
        .split(',')
        .next()
        .unwrap();
    assert!(id.parse::<i64>().unwrap() >= 0, "{first}");
    let uuid = first.rsplit('\'').nth(1).unwrap();
    assert_eq!(uuid.len(), 36);
    assert_eq!(&uuid[14..15], "4");
}

#[test]
fn large_objects_are_refused_unless_nulled() {
    let dump = "SELECT pg_catalog.lo_create('16401');\nBEGIN;\nSELECT pg_catalog.lo_open('16401', 131072);\n\
SELECT pg_catalog.lowrite(0, '\\x68656c6c6f');\nSELECT pg_catalog.lo_close(0);\nCOMMIT;\n";
    let p = refused(Dialect::Postgres, r#""*.*.*" = "keep""#, dump);
    assert_eq!(p[0].kind, ProblemKind::LargeObject);
    assert!(
        p[0].suggestion
            .as_deref()
            .unwrap()
            .contains("pg_catalog.pg_largeobject.data")
    );
    let out = ok(
        Dialect::Postgres,
        r#""pg_catalog.pg_largeobject.data" = "null""#,
        dump,
    );
    assert!(
        !out.contains("lowrite") && out.contains("lo_create") && out.contains("lo_close"),
        "{out}"
    );
}

#[test]
fn partition_rules_apply_to_partitions() {
    let dump = "CREATE TABLE public.ev (\n    id integer NOT NULL,\n    email text\n)\nPARTITION BY RANGE (id);\n\
CREATE TABLE public.ev_1 (\n    id integer NOT NULL,\n    email text\n);\n\
ALTER TABLE ONLY public.ev ATTACH PARTITION public.ev_1 FOR VALUES FROM (0) TO (100);\n\
COPY public.ev_1 (id, email) FROM stdin;\n5\tzed@x.org\n\\.\n";
    let out = ok(
        Dialect::Postgres,
        r#""public.ev.id" = "keep"
           "public.ev.email" = "email""#,
        dump,
    );
    assert!(!out.contains("zed@x.org"));
}

#[test]
fn ambiguous_rules_are_refused() {
    let dump = "COPY public.t (a) FROM stdin;\nx\n\\.\n";
    let p = refused(
        Dialect::Postgres,
        r#""public.*.a" = "keep"
           "public.?.a" = "redact""#,
        dump,
    );
    assert!(p[0].message.contains("equally"), "{p:?}");
}

#[test]
fn truncated_copy_is_refused() {
    let p = refused(
        Dialect::Postgres,
        r#""*.*.*" = "keep""#,
        "COPY public.t (a) FROM stdin;\nx\n",
    );
    assert!(p[0].message.contains("truncated"));
}

const MY_DUMP: &str = "-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)\n--\n\
-- Host: 127.0.0.1    Database: shop\n-- ------------------------------------------------------\n\
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n\
DROP TABLE IF EXISTS `users`;\n/*!40101 SET @saved_cs_client     = @@character_set_client */;\n\
CREATE TABLE `users` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  `email` varchar(255) NOT NULL,\n  \
`avatar` blob DEFAULT NULL,\n  `note` text DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `email` (`email`)\n) \
ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n\
LOCK TABLES `users` WRITE;\n/*!40000 ALTER TABLE `users` DISABLE KEYS */;\n\
INSERT INTO `users` VALUES (1,'ann@example.org',0x89504E47,'it\\'s a \\\"note\\\"\\nwith (parens), and;semis'),\
(2,'b\\\\ob@example.org',_binary 'raw\\0bytes',NULL);\n\
/*!40000 ALTER TABLE `users` ENABLE KEYS */;\nUNLOCK TABLES;\n";

#[test]
fn mysql_extended_inserts() {
    let rules = r#"
        "shop.users.id" = "keep"
        "*.users.email" = "email"
        "shop.users.avatar" = "redact"
        "shop.users.note" = "keep"
    "#;
    let out = ok(Dialect::Mysql, rules, MY_DUMP);
    assert!(
        !out.contains("ann@example.org") && !out.contains("ob@example.org"),
        "{out}"
    );
    assert!(
        out.contains("'it\\'s a \\\"note\\\"\\nwith (parens), and;semis'"),
        "{out}"
    );
    assert!(out.contains("_binary ''"), "{out}");
    assert!(out.contains(",'',") || out.contains(",0x"), "{out}");
    let keep = ok(
        Dialect::Mysql,
        r#""shop.users.*" = "keep""#,
        &MY_DUMP.replace("@example", "-example"),
    );
    assert_eq!(keep, MY_DUMP.replace("@example", "-example"));
}

#[test]
fn mysql_uncovered_and_unique_conflicts() {
    let p = refused(Dialect::Mysql, r#""shop.users.id" = "keep""#, MY_DUMP);
    assert!(
        p.iter()
            .any(|p| p.column == "shop.users.avatar" && p.kind == ProblemKind::Uncovered)
    );
    let p = refused(
        Dialect::Mysql,
        r#""shop.users.*" = "keep"
           "shop.users.email" = { fixed = "nobody@example.com" }"#,
        MY_DUMP,
    );
    assert!(
        p.iter()
            .any(|p| p.column == "shop.users.email" && p.kind == ProblemKind::RuleConflict),
        "{p:?}"
    );
}

#[test]
fn dialect_detection() {
    assert_eq!(
        Dialect::detect(PG_USERS.as_bytes()),
        Some(Dialect::Postgres)
    );
    assert_eq!(Dialect::detect(MY_DUMP.as_bytes()), Some(Dialect::Mysql));
    assert_eq!(Dialect::detect(b"hello"), None);
}

#[test]
fn short_salts_are_refused() {
    assert!(
        Salt::new(Vec::new())
            .unwrap_err()
            .to_string()
            .contains("empty")
    );
    assert!(
        Salt::new(b"short".to_vec())
            .unwrap_err()
            .to_string()
            .contains("at least 16")
    );
    assert!(!format!("{:?}", salt()).contains("0123"));
}

#[test]
fn init_suggests_rules_that_then_pass() {
    let dump = PG_USERS.replace("likes\\ttabs", "ping carol@corp.example.com");
    let text = init_rules(dump.as_bytes(), Dialect::Postgres).unwrap();
    assert!(text.contains("\"public.users.*\" = \"keep\""), "{text}");
    assert!(
        text.contains("\"public.users.email\" = \"email\""),
        "{text}"
    );
    assert!(
        text.contains("\"public.users.name\" = \"full-name\""),
        "{text}"
    );
    assert!(text.contains("\"public.users.note\" = { regex"), "{text}");
    let out = ok(Dialect::Postgres, &text, &dump);
    assert!(
        !out.contains("carol@corp") && !out.contains("ann@example.org"),
        "{out}"
    );
}

#[test]
fn report_lists_columns() {
    let (_, report) = run(
        Dialect::Postgres,
        r#""public.users.*" = "keep"
           "public.users.email" = "email"
           "public.users.name" = "full-name"
           "public.users.id" = "keep""#,
        PG_USERS,
    )
    .unwrap();
    let text = report.to_string();
    assert!(text.contains("transformed  public.users.email"), "{text}");
    assert!(text.contains("kept         public.users.id"), "{text}");
    // Kept columns are copied without being counted: no misleading "0".
    let kept = text
        .lines()
        .find(|l| l.contains("public.users.id"))
        .unwrap();
    assert!(kept.contains(" - values"), "{kept}");
    assert!(text.contains("scanned      public.users.note"), "{text}");
    assert!(
        text.ends_with("5 columns: 2 transformed, 1 kept, 2 scanned"),
        "{text}"
    );
}

#[test]
fn copy_end_marker_only_on_its_own_line() {
    // A value that is a backslash and a dot is written `\\.`: not the end marker.
    let dump = "CREATE TABLE public.t (\n    a text,\n    email text\n);\nCOPY public.t (a, email) FROM stdin;\n\\\\.\tx@y.io\nz\\\\.\tw@y.io\n\\.\nSELECT 1;\n";
    let out = ok(
        Dialect::Postgres,
        "\"public.t.a\" = \"keep\"\n\"public.t.email\" = \"email\"",
        dump,
    );
    assert!(
        out.contains("\n\\\\.\tu") && out.contains("\nz\\\\.\tu"),
        "{out}"
    );
    assert!(!out.contains("@y.io"), "{out}");
    assert!(out.ends_with("\\.\nSELECT 1;\n"));
}

#[test]
fn insert_variants() {
    let pg = "CREATE TABLE public.t (\n    id integer,\n    email text\n);\n\
INSERT INTO public.t (id, email) OVERRIDING SYSTEM VALUE VALUES (1, 'a@b.io') ON CONFLICT DO NOTHING;\n";
    let out = ok(
        Dialect::Postgres,
        "\"public.t.id\" = \"keep\"\n\"public.t.email\" = \"email\"",
        pg,
    );
    assert!(
        out.contains("OVERRIDING SYSTEM VALUE VALUES (1, 'u")
            && out.ends_with("') ON CONFLICT DO NOTHING;\n"),
        "{out}"
    );
    let my = "CREATE TABLE `t` (\n  `id` int(11),\n  `email` varchar(255)\n);\n\
INSERT IGNORE INTO `t` (`id`, `email`) VALUES (1,'a@b.io'),(2,NULL);\nREPLACE INTO `t` VALUES (3,'c@d.io');\n";
    let out = ok(
        Dialect::Mysql,
        "\"*.t.id\" = \"keep\"\n\"*.t.email\" = \"email\"",
        my,
    );
    assert!(
        !out.contains("@b.io") && !out.contains("@d.io") && out.contains(",(2,NULL);"),
        "{out}"
    );
}

#[test]
fn quoted_identifiers_match_names_as_written() {
    let dump = "CREATE TABLE \"Sales Dept\".\"Order Lines\" (\n    \"Customer_Email\" text\n);\n\
COPY \"Sales Dept\".\"Order Lines\" (\"Customer_Email\") FROM stdin;\nq@r.io\n\\.\n";
    let out = ok(
        Dialect::Postgres,
        "\"Sales Dept.Order Lines.Customer_Email\" = \"email\"",
        dump,
    );
    assert!(!out.contains("q@r.io"), "{out}");
}

#[test]
fn csv_copy_is_refused_not_passed_through() {
    let dump = "COPY public.t (a) FROM stdin WITH (FORMAT csv);\n\"x@y.io\"\n\\.\nSELECT 1;\n";
    let p = refused(Dialect::Postgres, r#""*.*.*" = "keep""#, dump);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].message.contains("CSV"));
}
