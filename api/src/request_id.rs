//! Request ids: every request gets one, every response carries it in [`HEADER`], and a failure
//! of the node itself is logged under it while the client gets only the id (see
//! [`ApiError::internal`](super::ApiError::internal)).
//!
//! [`layer`] takes the request's own `x-request-id` when it is a UUID (so a request forwarded
//! to another node, and a layer nested in another, keep the one id), or makes a UUID v4. The id
//! is in scope while the handler runs ([`current`]); a job spawned by the request carries it
//! into its task ([`scope`]), so a job's stored error names the request that started it.

use std::future::Future;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use uuid::Uuid;

/// The request and response header holding the id.
pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: Uuid;
}

/// The middleware: fixes the request's id, serves it in that scope, and sets [`HEADER`].
pub async fn layer(mut req: Request, next: Next) -> Response {
    let given = req.headers().get(HEADER).and_then(|v| v.to_str().ok()).and_then(parse);
    let id = given.unwrap_or_else(Uuid::new_v4);
    let value = header_value(id);
    req.headers_mut().insert(HEADER, value.clone());
    let mut response = scope(id, next.run(req)).await;
    response.headers_mut().insert(HEADER, value);
    response
}

/// The id of the request being served, if any.
pub fn current() -> Option<Uuid> {
    REQUEST_ID.try_with(|id| *id).ok()
}

/// Runs `fut` with `id` as the current request id.
pub fn scope<F: Future>(id: Uuid, fut: F) -> impl Future<Output = F::Output> {
    REQUEST_ID.scope(id, fut)
}

/// An id as the header's value.
pub fn header_value(id: Uuid) -> HeaderValue {
    // A UUID's text is always a valid header value.
    HeaderValue::try_from(id.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A given id, taken only in the hyphenated form (36 characters).
fn parse(s: &str) -> Option<Uuid> {
    (s.len() == 36).then(|| Uuid::parse_str(s).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_id_is_in_scope_only_inside() {
        assert_eq!(current(), None);
        let id = Uuid::new_v4();
        assert_eq!(scope(id, async { current() }).await, Some(id));
        assert_eq!(current(), None);
    }

    #[test]
    fn only_hyphenated_uuids_are_taken() {
        let id = Uuid::new_v4();
        assert_eq!(parse(&id.to_string()), Some(id));
        assert_eq!(parse(&id.simple().to_string()), None);
        assert_eq!(parse("not-a-uuid"), None);
        assert_eq!(header_value(id).to_str().ok(), Some(id.to_string().as_str()));
    }
}
