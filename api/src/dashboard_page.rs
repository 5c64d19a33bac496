//! The comité de pilotage's dashboard page at `/dashboard`: static assets compiled into
//! the binary (the tracker may run in a closed network, so nothing comes from a CDN),
//! fed only by the public GraphQL API with the token the user pastes.

use poem::http::header;
use poem::{Response, Route, get, handler};

/// Scripts, styles, data and websockets from this origin only: the page holds a token,
/// so nothing else may run in it or receive what it reads.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                      img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
                      frame-ancestors 'none'";

fn asset(body: &'static str, mime: &str) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, mime)
        .header(header::CONTENT_SECURITY_POLICY, POLICY)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        // Small files: revalidate, so a new binary's page is never mixed with old scripts.
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
}

macro_rules! page_asset {
    ($name:ident, $file:literal, $mime:literal) => {
        #[handler]
        fn $name() -> Response {
            asset(include_str!(concat!("../assets/dashboard/", $file)), $mime)
        }
    };
}

page_asset!(page_html, "index.html", "text/html; charset=utf-8");
page_asset!(page_js, "dashboard.js", "application/javascript; charset=utf-8");
page_asset!(page_css, "dashboard.css", "text/css; charset=utf-8");
page_asset!(map_shapes, "departements.json", "application/json");
page_asset!(map_licence, "LICENCE-carte.txt", "text/plain; charset=utf-8");

/// `/dashboard` and its assets.
pub fn routes(route: Route) -> Route {
    route
        .at("/dashboard", get(page_html))
        .at("/dashboard/", get(page_html))
        .at("/dashboard/dashboard.js", get(page_js))
        .at("/dashboard/dashboard.css", get(page_css))
        .at("/dashboard/departements.json", get(map_shapes))
        .at("/dashboard/LICENCE-carte.txt", get(map_licence))
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::{Endpoint, Request, http::StatusCode};

    async fn fetch(path: &str) -> (StatusCode, poem::http::HeaderMap, String) {
        let response = routes(Route::new()).call(Request::builder().uri(path.parse().unwrap()).finish()).await;
        let response = match response {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.into_body().into_string().await.unwrap())
    }

    #[tokio::test]
    async fn the_page_and_its_assets_come_from_the_binary_with_a_strict_policy() {
        for (path, mime) in [
            ("/dashboard", "text/html; charset=utf-8"),
            ("/dashboard/", "text/html; charset=utf-8"),
            ("/dashboard/dashboard.js", "application/javascript; charset=utf-8"),
            ("/dashboard/dashboard.css", "text/css; charset=utf-8"),
            ("/dashboard/departements.json", "application/json"),
            ("/dashboard/LICENCE-carte.txt", "text/plain; charset=utf-8"),
        ] {
            let (status, headers, body) = fetch(path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(headers[header::CONTENT_TYPE], mime, "{path}");
            assert_eq!(headers[header::CONTENT_SECURITY_POLICY], POLICY, "{path}");
            assert!(!body.is_empty(), "{path}");
        }
        assert_eq!(fetch("/dashboard/missing.js").await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn the_page_loads_nothing_from_outside() {
        let (_, _, html) = fetch("/dashboard").await;
        let (_, _, script) = fetch("/dashboard/dashboard.js").await;
        let (_, _, style) = fetch("/dashboard/dashboard.css").await;
        for (name, text) in [("index.html", &html), ("dashboard.js", &script), ("dashboard.css", &style)] {
            // The SVG namespace is a name, not an address the page fetches.
            let text = text.replace("http://www.w3.org/2000/svg", "");
            for outside in ["http://", "https://", "//cdn", "@import", "url("] {
                assert!(!text.contains(outside), "{name} refers to `{outside}`");
            }
        }
        assert!(html.contains(r#"<html lang="fr">"#));
        assert!(
            html.contains(r#"src="/dashboard/dashboard.js""#) && html.contains(r#"href="/dashboard/dashboard.css""#)
        );
    }

    /// Every département INSEE lists (overseas included) has a shape on the map, and the
    /// map has no shape for a code INSEE does not list.
    #[tokio::test]
    async fn the_map_has_a_shape_for_every_departement_and_nothing_else() {
        let (_, _, body) = fetch("/dashboard/departements.json").await;
        let map: serde_json::Value = serde_json::from_str(&body).unwrap();
        let mut codes: Vec<String> = map["metropole"].as_object().unwrap().keys().cloned().collect();
        codes.extend(map["overseas"].as_array().unwrap().iter().map(|o| o["code"].as_str().unwrap().to_string()));
        for o in map["overseas"].as_array().unwrap() {
            assert!(o["viewBox"].as_str().is_some_and(|v| v.split(' ').count() == 4), "{o}");
        }
        codes.sort();
        let mut insee: Vec<String> = domain::territory::departements().iter().map(|d| d.code.clone()).collect();
        insee.sort();
        assert_eq!(codes, insee);
        assert_eq!(codes.len(), 101);
        assert!(map["source"].as_str().unwrap().contains("MIT"));
    }
}
