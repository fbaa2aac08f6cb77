//! Bearer-token check for mutating calls: constant-time comparison, token never logged.

use crate::body::ResponseBody;
use http::{header, HeaderMap, Response, StatusCode};
use subtle::ConstantTimeEq;

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
}

/// Ok when the request carries the token; otherwise the response to send.
#[allow(clippy::result_large_err)]
pub fn check(token: Option<&Token>, headers: &HeaderMap) -> Result<(), Response<ResponseBody>> {
    let Some(token) = token else {
        return Err(super::error(
            StatusCode::FORBIDDEN,
            "mutating admin calls are disabled: set SWITCHYARD_ADMIN_TOKEN or admin.token_file and send Authorization: Bearer TOKEN",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, t)| t.trim());
    if bool::from(given.as_bytes().ct_eq(token.0.as_bytes())) {
        Ok(())
    } else {
        let mut r = super::error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        Err(r)
    }
}
