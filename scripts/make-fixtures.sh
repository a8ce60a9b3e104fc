#!/usr/bin/env bash
# Builds the dump fixtures under tests/fixtures/ from scratch databases on the
# local PostgreSQL (127.0.0.1:5432, user postgres) and MariaDB (127.0.0.1:3306,
# root). Each database gets a unique name and is dropped at the end, also on
# failure. Also writes the original personal values (one per line) that the
# tests grep for in anonymized output.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
out="$here/tests/fixtures"
mkdir -p "$out"
suffix="$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')_$$"
pgdb="t_${suffix}"
mydb="t_${suffix}"

PSQL=(psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -q)
MY=(mariadb -h 127.0.0.1 -u root)

cleanup() {
  "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS \"$pgdb\" WITH (FORCE)" >/dev/null 2>&1 || true
  "${MY[@]}" -e "DROP DATABASE IF EXISTS \`$mydb\`" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# ---------------------------------------------------------------- PostgreSQL
"${PSQL[@]}" -d postgres -c "CREATE DATABASE \"$pgdb\" TEMPLATE template0 ENCODING 'UTF8'"
"${PSQL[@]}" -d "$pgdb" <<'SQL'
CREATE TABLE users (
  id serial PRIMARY KEY,
  email varchar(255) NOT NULL UNIQUE,
  first_name text NOT NULL,
  last_name text NOT NULL,
  phone text,
  address text,
  birth_date date,
  profile jsonb,
  bio text,
  created_at timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00'
);
CREATE TABLE orders (
  id bigserial PRIMARY KEY,
  user_id integer NOT NULL REFERENCES users (id),
  user_email varchar(255) NOT NULL REFERENCES users (email),
  total numeric(10, 2) NOT NULL,
  note text,
  placed_at timestamp NOT NULL
);
CREATE TABLE devices (
  id uuid PRIMARY KEY,
  owner_email text,
  label text
);
CREATE TABLE accounts (
  handle varchar(12) NOT NULL UNIQUE,
  user_id integer REFERENCES users (id),
  karma integer
);
CREATE TABLE events (
  id integer NOT NULL,
  at date NOT NULL,
  user_email text,
  kind text,
  PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE FUNCTION touch() RETURNS text LANGUAGE plpgsql AS $fn$
BEGIN
  -- COPY users (id) FROM stdin; is just text here
  RETURN 'a;b';
END
$fn$;

WITH f(i, n) AS (SELECT row_number() OVER (), n FROM unnest(ARRAY['Wilhelmina','Bartholomew','Genevieve','Leopold','Ottoline','Percival','Rosalind','Thaddeus','Cordelia','Ignatius','Philippa','Evander']) n),
     l(i, n) AS (SELECT row_number() OVER (), n FROM unnest(ARRAY['Fairweather','Blackwood','Huxley','Pemberton','Whitlock','Ashdown','Thistlewood','Merriweather','Quenby','Rookwood','Stanhope']) n)
INSERT INTO users (email, first_name, last_name, phone, address, birth_date, profile, bio)
SELECT lower(f.n) || '.' || lower(l.n) || g || '@mail' || (g % 7) || '.test',
       f.n, l.n,
       format('+1 (415) 555-%s', lpad(g::text, 4, '0')),
       g || ' ' || l.n || ' Lane, Springfield',
       date '1970-01-01' + (g * 97) % 15000,
       jsonb_build_object('email', 'alt.' || lower(f.n) || g || '@inbox.test', 'newsletter', g % 2 = 0,
                          'prefs', jsonb_build_object('theme', 'dark', 'tabs', E'a\tb')),
       CASE WHEN g % 3 = 0 THEN E'likes hiking;\nsays "hi" and it''s fine \\ ok' ELSE 'quiet' END
FROM generate_series(1, 120) g
JOIN f ON f.i = 1 + g % 12
JOIN l ON l.i = 1 + g % 11;

INSERT INTO orders (user_id, user_email, total, note, placed_at)
SELECT u.id, u.email, (u.id * 3 + k) % 500 + 0.99, CASE WHEN k = 1 THEN 'gift (wrap it); fragile' END,
       timestamp '2024-03-01 10:00' + (u.id * k) * interval '1 hour'
FROM users u, generate_series(1, 3) k;

INSERT INTO devices (id, owner_email, label)
SELECT md5('dev' || u.id)::uuid, u.email, 'phone ' || u.id FROM users u WHERE u.id % 2 = 0;

INSERT INTO accounts (handle, user_id, karma)
SELECT left(lower(u.first_name), 6) || u.id, u.id, u.id * 7 FROM users u;

INSERT INTO events (id, at, user_email, kind)
SELECT u.id, date '2024-06-01' + (u.id * 4), u.email, 'login' FROM users u;
SQL

pg_dump -h 127.0.0.1 -U postgres -Fp "$pgdb" > "$out/pg_plain.sql"
pg_dump -h 127.0.0.1 -U postgres --inserts "$pgdb" > "$out/pg_inserts.sql"
pg_dump -h 127.0.0.1 -U postgres --column-inserts --rows-per-insert=50 "$pgdb" > "$out/pg_rows50.sql"
"${PSQL[@]}" -d "$pgdb" -At -c "
  SELECT email FROM users UNION ALL SELECT profile->>'email' FROM users
  UNION ALL SELECT first_name FROM users UNION ALL SELECT last_name FROM users
  UNION ALL SELECT phone FROM users UNION ALL SELECT address FROM users
  UNION ALL SELECT handle FROM accounts" | sort -u > "$out/pg_originals.txt"

# ---------------------------------------------------------------- MariaDB
"${MY[@]}" -e "CREATE DATABASE \`$mydb\` CHARACTER SET utf8mb4"
"${MY[@]}" "$mydb" <<'SQL'
CREATE TABLE users (
  id int NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email varchar(255) NOT NULL UNIQUE,
  first_name varchar(100) NOT NULL,
  last_name varchar(100) NOT NULL,
  phone varchar(40),
  address text,
  birth_date date,
  profile json,
  bio text,
  avatar blob
) ENGINE=InnoDB;
CREATE TABLE orders (
  id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id int NOT NULL,
  user_email varchar(255) NOT NULL,
  total decimal(10, 2) NOT NULL,
  note text,
  placed_at datetime NOT NULL,
  CONSTRAINT fk_user FOREIGN KEY (user_id) REFERENCES users (id),
  CONSTRAINT fk_email FOREIGN KEY (user_email) REFERENCES users (email)
) ENGINE=InnoDB;
CREATE TABLE devices (
  id uuid NOT NULL PRIMARY KEY,
  owner_email varchar(255),
  label varchar(50)
) ENGINE=InnoDB;
CREATE TABLE accounts (
  handle varchar(12) NOT NULL,
  user_id int,
  karma int,
  UNIQUE KEY handle (handle)
) ENGINE=InnoDB;

CREATE TABLE seq (g int PRIMARY KEY);
INSERT INTO seq WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 120) SELECT g FROM s;
INSERT INTO users (email, first_name, last_name, phone, address, birth_date, profile, bio, avatar)
SELECT concat(lower(elt(1 + g % 12, 'Wilhelmina','Bartholomew','Genevieve','Leopold','Ottoline','Percival','Rosalind','Thaddeus','Cordelia','Ignatius','Philippa','Evander')),
              '.', lower(elt(1 + g % 11, 'Fairweather','Blackwood','Huxley','Pemberton','Whitlock','Ashdown','Thistlewood','Merriweather','Quenby','Rookwood','Stanhope')),
              g, '@mail', g % 7, '.test'),
       elt(1 + g % 12, 'Wilhelmina','Bartholomew','Genevieve','Leopold','Ottoline','Percival','Rosalind','Thaddeus','Cordelia','Ignatius','Philippa','Evander'),
       elt(1 + g % 11, 'Fairweather','Blackwood','Huxley','Pemberton','Whitlock','Ashdown','Thistlewood','Merriweather','Quenby','Rookwood','Stanhope'),
       concat('+1 (415) 555-', lpad(g, 4, '0')),
       concat(g, ' ', elt(1 + g % 11, 'Fairweather','Blackwood','Huxley','Pemberton','Whitlock','Ashdown','Thistlewood','Merriweather','Quenby','Rookwood','Stanhope'), ' Lane, Springfield'),
       date_add('1970-01-01', INTERVAL (g * 97) % 15000 DAY),
       json_object('email', concat('alt.', g, '@inbox.test'), 'newsletter', g % 2 = 0),
       IF(g % 3 = 0, 'likes hiking;\nsays "hi" and it''s fine \\ ok', 'quiet'),
       unhex(concat('89504E47', lpad(hex(g), 4, '0'), '00275C0A'))
FROM seq;
INSERT INTO orders (user_id, user_email, total, note, placed_at)
SELECT u.id, u.email, (u.id * 3 + k.g) % 500 + 0.99, IF(k.g = 1, 'gift (wrap it); fragile', NULL),
       date_add('2024-03-01 10:00:00', INTERVAL u.id * k.g HOUR)
FROM users u JOIN seq k ON k.g <= 3;
INSERT INTO devices (id, owner_email, label)
SELECT uuid(), email, concat('phone ', id) FROM users WHERE id % 2 = 0;
INSERT INTO accounts (handle, user_id, karma)
SELECT concat(left(lower(first_name), 6), id), id, id * 7 FROM users;
DROP TABLE seq;
SQL

mariadb-dump -h 127.0.0.1 -u root --single-transaction --hex-blob "$mydb" \
  | sed -e "s/^-- Dump completed on .*/-- Dump completed/" > "$out/mariadb.sql"
"${MY[@]}" -N -B "$mydb" -e "
  SELECT email FROM users UNION ALL SELECT json_value(profile, '$.email') FROM users
  UNION ALL SELECT first_name FROM users UNION ALL SELECT last_name FROM users
  UNION ALL SELECT phone FROM users UNION ALL SELECT address FROM users
  UNION ALL SELECT handle FROM accounts" | sort -u > "$out/mariadb_originals.txt"

# The dumps name the scratch database; give them a stable name.
sed -i "s/$mydb/fixture_shop/g" "$out/mariadb.sql"
ls -l "$out"
