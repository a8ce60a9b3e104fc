//! A second line of defence for text sluice did not write itself (a dump
//! tool's stderr, an error's tail sent to a monitor): credentials in URLs,
//! and the values of `password=…`-like settings, are masked before the text
//! is logged or sent anywhere. sluice keeps
//! passwords out of its own messages; this catches what other programs
//! print.

use std::{borrow::Cow, sync::LazyLock};

use regex::Regex;

/// `scheme://userinfo@`, the userinfo running to the last `@` of the
/// word, so a password with an unescaped `@` or `/` is masked whole.
static USERINFO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b([a-z][a-z0-9+.-]*://)\S*@").expect("the userinfo pattern compiles")
});

/// A URL's query string (`?X-Amz-Signature=…`, `?token=…`).
static QUERY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s?]*)\?\S*").expect("the query pattern compiles")
});

/// A setting whose name says it is secret, and its value:
/// `password=hunter2`, `PGPASSWORD=…`, `"api_token": "…"`, `secret: …`.
static SETTING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\b([a-z_-]*(?:password|passwd|pwd|secret|token)[a-z_-]*"?\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s,;&]+)"#)
        .expect("the setting pattern compiles")
});

/// `text` with the user name, password and query of every URL in it, and
/// the value of every secret-named setting, replaced by `***`.
pub fn credentials(text: &str) -> Cow<'_, str> {
    let mut text = Cow::Borrowed(text);
    for (pattern, replacement) in [
        (&USERINFO, "${1}***@"),
        (&QUERY, "${1}?***"),
        (&SETTING, "${1}***"),
    ] {
        if let Cow::Owned(masked) = pattern.replace_all(&text, replacement) {
            text = Cow::Owned(masked);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::credentials;

    #[test]
    fn passwords_in_urls_are_masked() {
        for (text, masked) in [
            (
                "could not connect to postgres://app:s3cret@db.internal:5432/app",
                "could not connect to postgres://***@db.internal:5432/app",
            ),
            (
                "mysql://root:p@ss/w0rd@10.0.0.1/shop: access denied",
                "mysql://***@10.0.0.1/shop: access denied",
            ),
            (
                "two: `postgres://a:one@h1/x` and MONGODB://u:two@h2",
                "two: `postgres://***@h1/x` and MONGODB://***@h2",
            ),
            (
                "https://token@hooks.example/x",
                "https://***@hooks.example/x",
            ),
        ] {
            assert_eq!(credentials(text), masked);
        }
    }

    #[test]
    fn queries_are_masked() {
        assert_eq!(
            credentials("GET https://b.s3.example/k?X-Amz-Signature=abc&x=1 failed"),
            "GET https://b.s3.example/k?*** failed"
        );
        assert_eq!(credentials("http://u:p@h/p?token=t"), "http://***@h/p?***");
    }

    #[test]
    fn secret_settings_are_masked() {
        for (text, masked) in [
            (
                "connect failed: host=db password=hunter2 user=app",
                "connect failed: host=db password=*** user=app",
            ),
            ("PGPASSWORD=s3cret pg_dump", "PGPASSWORD=*** pg_dump"),
            (
                r#"{"api_token": "abc def", "n": 1}"#,
                r#"{"api_token": ***, "n": 1}"#,
            ),
            ("db_passwd:'x y';next", "db_passwd:***;next"),
            ("Secret = topsecret", "Secret = ***"),
        ] {
            assert_eq!(credentials(text), masked);
        }
    }

    #[test]
    fn text_without_credentials_is_unchanged() {
        for text in [
            "pg_dump: error: connection to server failed",
            "see https://www.postgresql.org/docs/current/libpq.html",
            "user@example.com is not a URL",
            "FATAL:  password authentication failed for user \"app\"",
            "",
        ] {
            assert_eq!(credentials(text), text);
        }
    }
}
