//! The admin bearer token, read from the environment or `admin.token_file`: config-level, so
//! `preflight` can judge it without depending on the admin server.

/// The admin token. `Debug` is redacted so it never reaches a log line.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// From `SWITCHYARD_ADMIN_TOKEN` (wins) or the first line of `token_file`; empty means none.
    pub fn from_env_or_file(env: Option<String>, file: Option<&std::path::Path>) -> std::io::Result<Option<Token>> {
        if let Some(t) = env.filter(|t| !t.trim().is_empty()) {
            return Ok(Some(Token(t.trim().to_string())));
        }
        match file {
            Some(p) => {
                let t = std::fs::read_to_string(p)?;
                let t = t.lines().next().unwrap_or("").trim().to_string();
                Ok((!t.is_empty()).then_some(Token(t)))
            }
            None => Ok(None),
        }
    }

    /// A token from a string (tests, CLI).
    pub fn new(t: impl Into<String>) -> Token {
        Token(t.into())
    }

    /// The secret, for the constant-time comparison in `admin`.
    pub fn expose(&self) -> &str {
        &self.0
    }
}
