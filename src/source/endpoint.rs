//! Where a database is: the parts of a `scheme://user:password@host:port/db`
//! URL, overridden by whichever of the `host`, `port`, `user` and `database`
//! keys are set. Shared by the `postgres` and `mysql` sources and their
//! restore targets; each engine adds how its tools are given the parts.

/// A server and a database on it. The password never appears in
/// [`Endpoint::display`] or in any error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    pub(crate) host: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
    /// The database name.
    pub database: String,
}

/// The keys of a source's config that override a URL's parts.
pub(crate) struct Keys<'a> {
    pub host: &'a Option<String>,
    pub port: Option<u16>,
    pub user: &'a Option<String>,
    pub database: &'a Option<String>,
}

impl Endpoint {
    /// Parses a URL whose scheme is one of `schemes` (the first is the one
    /// errors name); `engine` names the database in errors. Returns the
    /// parsed URL too, for its query. Errors never repeat the URL.
    pub(crate) fn parse(
        url: &str,
        schemes: &[&str],
        engine: &str,
    ) -> Result<(Self, url::Url), String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("invalid {engine} URL ({e})"))?;
        if !schemes.contains(&parsed.scheme()) {
            return Err(format!(
                "a {engine} URL starts with {}://, not {}://",
                schemes[0],
                parsed.scheme()
            ));
        }
        let endpoint = Self {
            host: parsed
                .host_str()
                .filter(|h| !h.is_empty())
                .map(str::to_owned),
            port: parsed.port(),
            user: Some(parsed.username())
                .filter(|u| !u.is_empty())
                .map(percent_decode),
            password: parsed.password().map(percent_decode),
            database: percent_decode(parsed.path().trim_start_matches('/')),
        };
        Ok((endpoint, parsed))
    }

    /// This endpoint with the keys that are set applied; fails when no
    /// database is named by either.
    pub(crate) fn overridden(mut self, keys: Keys<'_>) -> Result<Self, String> {
        if keys.host.is_some() {
            self.host.clone_from(keys.host);
        }
        if keys.port.is_some() {
            self.port = keys.port;
        }
        if keys.user.is_some() {
            self.user.clone_from(keys.user);
        }
        if let Some(database) = keys.database {
            self.database.clone_from(database);
        }
        if self.database.is_empty() {
            return Err("no database: set `database` (or a URL ending in /DBNAME)".to_owned());
        }
        Ok(self)
    }

    /// The same server, another database.
    pub(crate) fn with_database(&self, database: &str) -> Self {
        Self {
            database: database.to_owned(),
            ..self.clone()
        }
    }

    /// `scheme://user@host:port/db`, without the password, for messages.
    pub(crate) fn display(&self, scheme: &str) -> String {
        format!(
            "{scheme}://{}{}{}/{}",
            self.user
                .as_deref()
                .map(|u| format!("{u}@"))
                .unwrap_or_default(),
            self.host.as_deref().unwrap_or(""),
            self.port.map(|p| format!(":{p}")).unwrap_or_default(),
            self.database
        )
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_override_the_url_and_a_database_is_required() {
        let (endpoint, _) = Endpoint::parse(
            "postgres://app%40corp:s3cr%2Ft@db:6543/shop",
            &["postgres"],
            "PostgreSQL",
        )
        .unwrap();
        assert_eq!(endpoint.user.as_deref(), Some("app@corp"));
        assert_eq!(endpoint.password.as_deref(), Some("s3cr/t"));
        let port = Some(7000);
        let merged = endpoint
            .clone()
            .overridden(Keys {
                host: &None,
                port,
                user: &None,
                database: &Some("other".into()),
            })
            .unwrap();
        assert_eq!(
            (merged.port, merged.database.as_str()),
            (Some(7000), "other")
        );
        assert_eq!(
            merged.display("postgres"),
            "postgres://app@corp@db:7000/other"
        );
        let none = Endpoint::default().overridden(Keys {
            host: &None,
            port: None,
            user: &None,
            database: &None,
        });
        assert!(none.is_err());
        let err =
            Endpoint::parse("mysql://x/y", &["postgres", "postgresql"], "PostgreSQL").unwrap_err();
        assert!(err.contains("starts with postgres://"), "{err}");
    }
}
