//! The stylesheet and the two scripts (the page's copy button, the
//! embeddable widget), compiled into the binary: served by
//! us (no CDN), so the pages work offline and in tests.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

pub const STYLESHEET: &str = include_str!("../assets/pages.css");
pub const SCRIPT: &str = include_str!("../assets/pages.js");
/// The embeddable widget a theme includes (see docs/pages.md).
pub const WIDGET: &str = include_str!("../assets/widget.js");

pub async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "pages.css" => (STYLESHEET, "text/css; charset=utf-8"),
        "pages.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "widget.js" => (WIDGET, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
