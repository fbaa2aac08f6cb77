//! `POST /incidents/{id}/ack` `{"by": "...", "note": "..."}`: stops an incident's escalation.

use super::{error, json};
use crate::body::ResponseBody;
use crate::control::{AckRequest, Command, ControlHandle};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// Acknowledges incident `id` through the control loop (the only writer of incidents).
pub(super) async fn ack(control: &ControlHandle, req: Request<Incoming>, id: &str) -> Response<ResponseBody> {
    let body = match http_body_util::Limited::new(req.into_body(), 4096).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(StatusCode::BAD_REQUEST, "unreadable body"),
    };
    let ack: AckRequest = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, format!("body must be JSON {{\"by\": NAME, \"note\": TEXT}}: {e}"))
        }
    };
    match control.call(|reply| Command::Ack(id.to_string(), ack, reply)).await {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => error(super::command_status(&e), e.to_string()),
    }
}
