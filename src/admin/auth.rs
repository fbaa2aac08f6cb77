//! Bearer-token check for mutating calls: constant-time comparison, token never logged.

use crate::body::ResponseBody;
use http::{header, HeaderMap, Response, StatusCode};
use subtle::ConstantTimeEq;

pub use crate::config::Token;

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
    if bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) {
        Ok(())
    } else {
        let mut r = super::error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        Err(r)
    }
}
