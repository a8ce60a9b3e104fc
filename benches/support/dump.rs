//! A generated PostgreSQL plain dump for benchmarks: `users` and `orders`
//! carry personal data (six rules), `events` is a large untouched table.
//! Shared by `benches/anonymize.rs` and `examples/anon_throughput.rs`.

use std::io::{self, Write};

/// Six transformer rules on two tables, plus `keep` for everything else
/// either by glob (scanned by the detectors) or by name (not scanned).
pub fn rules(scan_the_rest: bool) -> String {
    let mut r = String::from(
        r#"
"public.users.email" = "email"
"public.users.first_name" = "first-name"
"public.users.last_name" = "last-name"
"public.users.phone" = "phone"
"public.users.birth_date" = { date-shift = { max-days = 30 } }
"public.orders.user_email" = "email"
"#,
    );
    if scan_the_rest {
        r.push_str("\"public.*.*\" = \"keep\"\n");
    } else {
        for c in [
            "users.id",
            "users.created_at",
            "users.bio",
            "orders.id",
            "orders.user_id",
            "orders.total",
            "orders.status",
            "orders.placed_at",
            "orders.note",
            "events.id",
            "events.user_id",
            "events.kind",
            "events.at",
            "events.payload",
        ] {
            r.push_str(&format!("\"public.{c}\" = \"keep\"\n"));
        }
    }
    r
}

const FIRST: &[&str] = &[
    "Wilhelmina",
    "Bartholomew",
    "Genevieve",
    "Leopold",
    "Ottoline",
    "Percival",
];
const LAST: &[&str] = &[
    "Fairweather",
    "Blackwood",
    "Huxley",
    "Pemberton",
    "Whitlock",
];

/// Writes a dump of about `target` bytes.
pub fn write_dump<W: Write>(w: &mut W, target: u64) -> io::Result<u64> {
    let mut n = 0u64;
    let mut put = |w: &mut W, s: &str| -> io::Result<()> {
        n += s.len() as u64;
        w.write_all(s.as_bytes())
    };
    put(
        w,
        "--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\nSET standard_conforming_strings = on;\n\n",
    )?;
    put(
        w,
        "CREATE TABLE public.users (\n    id integer NOT NULL,\n    email character varying(255) NOT NULL,\n    first_name text,\n    last_name text,\n    phone text,\n    birth_date date,\n    created_at timestamp with time zone,\n    bio text\n);\n\n",
    )?;
    put(
        w,
        "CREATE TABLE public.orders (\n    id bigint NOT NULL,\n    user_id integer,\n    user_email character varying(255),\n    total numeric(10,2),\n    status text,\n    placed_at timestamp without time zone,\n    note text\n);\n\n",
    )?;
    put(
        w,
        "CREATE TABLE public.events (\n    id bigint NOT NULL,\n    user_id integer,\n    kind text,\n    at timestamp with time zone,\n    payload text\n);\n\n",
    )?;
    let users = target / 5 / 140;
    let orders = target * 3 / 10 / 105;
    let events = target / 2 / 100;
    put(
        w,
        "COPY public.users (id, email, first_name, last_name, phone, birth_date, created_at, bio) FROM stdin;\n",
    )?;
    let mut line = String::new();
    for i in 0..users {
        line.clear();
        let f = FIRST[(i % 6) as usize];
        let l = LAST[(i % 5) as usize];
        line.push_str(&format!(
            "{i}\t{}.{}{i}@mail{}.test\t{f}\t{l}\t+1 (415) 555-{:04}\t{}-{:02}-{:02}\t2024-01-{:02} 10:00:00+00\tlikes hiking and\\tquiet evenings\n",
            f.to_lowercase(), l.to_lowercase(), i % 7, i % 10000, 1950 + i % 50, 1 + i % 12, 1 + i % 28, 1 + i % 28
        ));
        put(w, &line)?;
    }
    put(w, "\\.\n\n")?;
    put(
        w,
        "COPY public.orders (id, user_id, user_email, total, status, placed_at, note) FROM stdin;\n",
    )?;
    for i in 0..orders {
        let u = (i * 7919) % users.max(1);
        line.clear();
        line.push_str(&format!(
            "{i}\t{u}\t{}.{}{u}@mail{}.test\t{}.99\tshipped\t2024-03-{:02} 12:34:56\tgift wrap, leave at the door\n",
            FIRST[(u % 6) as usize].to_lowercase(), LAST[(u % 5) as usize].to_lowercase(), u % 7, i % 500, 1 + i % 28
        ));
        put(w, &line)?;
    }
    put(w, "\\.\n\n")?;
    put(
        w,
        "COPY public.events (id, user_id, kind, at, payload) FROM stdin;\n",
    )?;
    for i in 0..events {
        line.clear();
        line.push_str(&format!(
            "{i}\t{}\tpage_view\t2024-05-{:02} 08:{:02}:00+00\t{{\"path\": \"/products/{}\", \"ref\": \"search\", \"ms\": {}}}\n",
            i % 100_000, 1 + i % 28, i % 60, i % 9973, i % 1000
        ));
        put(w, &line)?;
    }
    put(w, "\\.\n\n--\n-- PostgreSQL database dump complete\n--\n\n")?;
    Ok(n)
}
