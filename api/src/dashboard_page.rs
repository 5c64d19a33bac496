//! The comité de pilotage's dashboard page at `/dashboard`: static assets compiled into
//! the binary (the tracker may run in a closed network, so nothing comes from a CDN),
//! fed only by the public GraphQL API with the token the user pastes.

use poem::http::header;
use poem::{Response, Route, get, handler};

/// Scripts, styles, data and websockets from this origin only: the page holds a token,
/// so nothing else may run in it or receive what it reads.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                      img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; \
                      form-action 'self'; frame-ancestors 'none'";

/// One file of the page, with its gzip form and its validator, computed once.
struct Asset {
    body: &'static [u8],
    mime: &'static str,
    gzipped: std::sync::OnceLock<(Vec<u8>, String)>,
}

impl Asset {
    const fn new(body: &'static [u8], mime: &'static str) -> Self {
        Self { body, mime, gzipped: std::sync::OnceLock::new() }
    }

    /// The gzip form and the entity tag (a digest of the file): the page is 150 KB and a
    /// comité member reloads it often; compressed and revalidated, a reload costs a 304.
    fn prepared(&self) -> &(Vec<u8>, String) {
        self.gzipped.get_or_init(|| {
            use sha2::Digest;
            use std::io::Write;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            gz.write_all(self.body).expect("gzip in memory");
            let digest = sha2::Sha256::digest(self.body);
            let tag: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            (gz.finish().expect("gzip in memory"), format!("\"{tag}\""))
        })
    }

    fn respond(&self, request: &poem::Request) -> Response {
        let (gzipped, etag) = self.prepared();
        let builder = Response::builder()
            .header(header::CONTENT_TYPE, self.mime)
            .header(header::CONTENT_SECURITY_POLICY, POLICY)
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            .header(header::REFERRER_POLICY, "no-referrer")
            // Revalidate every time (a new binary's page is never mixed with old scripts),
            // which costs a 304 while the file is unchanged.
            .header(header::CACHE_CONTROL, "no-cache")
            .header(header::ETAG, etag.as_str())
            .header(header::VARY, "Accept-Encoding");
        let header_has = |name: header::HeaderName, wanted: &str| {
            request
                .headers()
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|v| v.split(';').next().unwrap_or("").trim() == wanted)
        };
        if header_has(header::IF_NONE_MATCH, etag) || header_has(header::IF_NONE_MATCH, "*") {
            return builder.status(poem::http::StatusCode::NOT_MODIFIED).finish();
        }
        if header_has(header::ACCEPT_ENCODING, "gzip") {
            builder.header(header::CONTENT_ENCODING, "gzip").body(gzipped.clone())
        } else {
            builder.body(self.body)
        }
    }
}

macro_rules! page_asset {
    ($name:ident, $file:literal, $mime:literal) => {
        #[handler]
        fn $name(request: &poem::Request) -> Response {
            static ASSET: Asset = Asset::new(include_bytes!(concat!("../assets/dashboard/", $file)), $mime);
            ASSET.respond(request)
        }
    };
}

page_asset!(page_html, "index.html", "text/html; charset=utf-8");
page_asset!(page_js, "dashboard.js", "application/javascript; charset=utf-8");
page_asset!(page_css, "dashboard.css", "text/css; charset=utf-8");
page_asset!(map_shapes, "departements.json", "application/json");
page_asset!(map_licence, "LICENCE-carte.txt", "text/plain; charset=utf-8");
page_asset!(favicon, "favicon.svg", "image/svg+xml");
// The French State's design system (DSFR 1.15.3, Etalab 2.0, restricted to the
// administration: see `dsfr/LICENCE-dsfr.md`): its core (typography, colours) and logo.
page_asset!(dsfr_core, "dsfr/core.min.css", "text/css; charset=utf-8");
page_asset!(dsfr_logo, "dsfr/logo.min.css", "text/css; charset=utf-8");
page_asset!(dsfr_licence, "dsfr/LICENCE-dsfr.md", "text/plain; charset=utf-8");
page_asset!(marianne_regular, "fonts/Marianne-Regular.woff2", "font/woff2");
page_asset!(marianne_medium, "fonts/Marianne-Medium.woff2", "font/woff2");
page_asset!(marianne_bold, "fonts/Marianne-Bold.woff2", "font/woff2");

/// `/dashboard` and its assets.
pub fn routes(route: Route) -> Route {
    route
        .at("/dashboard", get(page_html))
        .at("/dashboard/", get(page_html))
        .at("/dashboard/dashboard.js", get(page_js))
        .at("/dashboard/dashboard.css", get(page_css))
        .at("/dashboard/departements.json", get(map_shapes))
        .at("/dashboard/LICENCE-carte.txt", get(map_licence))
        .at("/dashboard/favicon.svg", get(favicon))
        .at("/dashboard/dsfr/core.min.css", get(dsfr_core))
        .at("/dashboard/dsfr/logo.min.css", get(dsfr_logo))
        .at("/dashboard/dsfr/LICENCE-dsfr.md", get(dsfr_licence))
        .at("/dashboard/fonts/Marianne-Regular.woff2", get(marianne_regular))
        .at("/dashboard/fonts/Marianne-Medium.woff2", get(marianne_medium))
        .at("/dashboard/fonts/Marianne-Bold.woff2", get(marianne_bold))
        .at("/favicon.ico", get(favicon))
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
        (status, headers, String::from_utf8_lossy(&response.into_body().into_vec().await.unwrap()).into_owned())
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
            ("/dashboard/favicon.svg", "image/svg+xml"),
            ("/favicon.ico", "image/svg+xml"),
            ("/dashboard/dsfr/core.min.css", "text/css; charset=utf-8"),
            ("/dashboard/dsfr/logo.min.css", "text/css; charset=utf-8"),
            ("/dashboard/fonts/Marianne-Bold.woff2", "font/woff2"),
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

    #[tokio::test]
    async fn assets_are_compressed_and_revalidated_with_a_304() {
        let routes = routes(Route::new());
        let get = |headers: &[(&str, &str)]| {
            let mut request = Request::builder().uri("/dashboard/dashboard.js".parse().unwrap());
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.finish()
        };
        // Given a browser that accepts gzip, then the script comes compressed, with a validator.
        let response = routes.call(get(&[("accept-encoding", "gzip, deflate, br")])).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
        let etag = response.headers()[header::ETAG].to_str().unwrap().to_string();
        let zipped = response.into_body().into_vec().await.unwrap();
        let mut plain = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&zipped[..]), &mut plain).unwrap();
        assert_eq!(plain, include_str!("../assets/dashboard/dashboard.js"));
        assert!(zipped.len() * 2 < plain.len(), "{} bytes compressed from {}", zipped.len(), plain.len());
        // When it asks again with the validator, then the answer is 304 with no body.
        let again = routes.call(get(&[("if-none-match", &etag)])).await.unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(again.into_body().into_vec().await.unwrap().is_empty());
        // A client without gzip gets the plain file; an old validator gets the file.
        let plain_answer = routes.call(get(&[("if-none-match", "\"old\"")])).await.unwrap();
        assert_eq!(plain_answer.status(), StatusCode::OK);
        assert!(plain_answer.headers().get(header::CONTENT_ENCODING).is_none());
    }

    /// The DSFR's styles load their fonts from this origin only, and the weights the page
    /// uses are served; nothing they refer to is outside.
    #[tokio::test]
    async fn the_design_systems_styles_and_fonts_come_from_the_binary() {
        let (_, _, html) = fetch("/dashboard").await;
        assert!(html.contains(r#"href="/dashboard/dsfr/core.min.css""#));
        let (_, _, core) = fetch("/dashboard/dsfr/core.min.css").await;
        for weight in ["Regular", "Medium", "Bold"] {
            assert!(core.contains(&format!("url(../fonts/Marianne-{weight}.woff2)")), "{weight}");
            let (status, _, _) = fetch(&format!("/dashboard/fonts/Marianne-{weight}.woff2")).await;
            assert_eq!(status, StatusCode::OK, "{weight}");
        }
        for css in [core, fetch("/dashboard/dsfr/logo.min.css").await.2] {
            let outside = css.replace("http://www.w3.org/2000/svg", "");
            assert!(!outside.contains("http://") && !outside.contains("https://"), "the DSFR's styles call outside");
        }
        assert!(POLICY.contains("font-src 'self'"));
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
