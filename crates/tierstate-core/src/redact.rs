//! Showing a connection URL without its password: every message and log that names a
//! database goes through [`redact_url`].

/// `scheme://user:password@host…` with the password masked (`scheme://user:***@host…`), and a
/// `password=` query parameter too.
pub fn redact_url(url: &str) -> String {
    let masked = match url.find("://") {
        Some(start) => {
            let rest = &url[start + 3..];
            let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
            match rest[..auth_end].rfind('@') {
                Some(at) => match rest[..at].find(':') {
                    Some(colon) => {
                        format!("{}{}:***{}", &url[..start + 3], &rest[..colon], &rest[at..])
                    }
                    None => url.to_owned(),
                },
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    };
    match masked.split_once('?') {
        Some((base, query)) => {
            let q: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{base}?{}", q.join("&"))
        }
        None => masked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(redact_url("postgres://u:p@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u:p@x@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("postgres://h/db?password=p&x=1"),
            "postgres://h/db?password=***&x=1"
        );
        assert_eq!(
            redact_url("error connecting to postgres://u:p@h:5/db: refused"),
            "error connecting to postgres://u:***@h:5/db: refused"
        );
    }
}
