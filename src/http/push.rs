//! `POST /push`: the push API's HTTP side ([`crate::push`]). Answers JSON: `{"applied":
//! N}`, or `{"error": …, "field": …}` with a 4xx status and nothing applied.

use std::panic::AssertUnwindSafe;

use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use super::metrics::bearer_is;
use super::HttpState;
use crate::push::{self, BadField};

pub async fn entry(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let shared = &state.shared;
    if !shared.config.push_enabled() {
        return HttpResponse::NotFound().finish();
    }
    if request.method() != Method::POST {
        return HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "POST"))
            .finish();
    }
    // The token is checked before the body is read: without it, nothing is buffered.
    if !bearer_is(&request, &shared.config.push_token) {
        shared.metrics.push_refused.inc();
        return error(
            StatusCode::UNAUTHORIZED,
            &BadField {
                field: String::new(),
                problem: "missing or wrong bearer token".to_owned(),
            },
        );
    }
    let body = match payload.to_bytes_limited(push::MAX_BODY).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return refused(shared, StatusCode::BAD_REQUEST, &read_error(e)),
        Err(_) => {
            let problem = format!("the body is over {} bytes", push::MAX_BODY);
            return refused(
                shared,
                StatusCode::PAYLOAD_TOO_LARGE,
                &body_problem(problem),
            );
        }
    };
    let made = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let parsed = push::parse(&body).map_err(|bad| (StatusCode::BAD_REQUEST, bad))?;
        push::apply(&shared.snapshots, &parsed.ops, parsed.array)
            .map_err(|refused| (StatusCode::CONFLICT, refused))?;
        Ok(parsed.ops)
    }));
    match made {
        Ok(Ok(ops)) => {
            for op in &ops {
                shared
                    .metrics
                    .push_operations
                    .with_label_values(&[op.name()])
                    .inc();
            }
            tracing::debug!("Push: {} operations applied", ops.len());
            HttpResponse::Ok()
                .content_type("application/json")
                .body(format!("{{\"applied\":{}}}", ops.len()))
        }
        Ok(Err((status, bad))) => refused(shared, status, &bad),
        Err(_) => {
            shared.metrics.requests_fail.inc();
            tracing::error!("push: panic while applying a request");
            HttpResponse::InternalServerError().finish()
        }
    }
}

fn body_problem(problem: String) -> BadField {
    BadField {
        field: String::new(),
        problem,
    }
}

fn read_error(e: actix_web::Error) -> BadField {
    body_problem(format!("the body could not be read: {e}"))
}

fn refused(
    shared: &crate::server::state::Shared,
    status: StatusCode,
    bad: &BadField,
) -> HttpResponse {
    shared.metrics.push_refused.inc();
    error(status, bad)
}

/// `{"error": "<problem>", "field": "<path>"}` (`field` left out when the whole body
/// is at fault).
fn error(status: StatusCode, bad: &BadField) -> HttpResponse {
    let mut body = serde_json::json!({ "error": bad.problem });
    if !bad.field.is_empty() {
        body["field"] = bad.field.clone().into();
    }
    let mut response = HttpResponse::build(status);
    if status == StatusCode::UNAUTHORIZED {
        response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
    }
    response
        .content_type("application/json")
        .body(body.to_string())
}
