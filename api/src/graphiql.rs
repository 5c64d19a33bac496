//! GraphiQL, served entirely from the binary: the tracker may run in a closed network
//! where a CDN is out of reach. Assets are stored gzipped (GraphiQL 3.8.3, React 18.3.1;
//! licences in `assets/graphiql/LICENSES.txt`).

use poem::http::header;
use poem::web::Html;
use poem::{Response, Route, get, handler};

const PAGE: &str = r#"<!doctype html>
<html lang="fr">
<head>
  <meta charset="utf-8">
  <title>Convention Tracker — GraphiQL</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="stylesheet" href="/assets/graphiql/graphiql.min.css">
  <style>html, body, #graphiql { height: 100%; margin: 0; }</style>
</head>
<body>
  <div id="graphiql">Chargement de GraphiQL…</div>
  <script src="/assets/graphiql/react.production.min.js"></script>
  <script src="/assets/graphiql/react-dom.production.min.js"></script>
  <script src="/assets/graphiql/graphiql.min.js"></script>
  <script>
    const fetcher = GraphiQL.createFetcher({ url: '/graphql' });
    const root = ReactDOM.createRoot(document.getElementById('graphiql'));
    root.render(React.createElement(GraphiQL, {
      fetcher,
      defaultEditorToolsVisibility: true,
      defaultQuery: '# Conventions and their budgets\n{\n  conventions {\n    code\n    partner\n    total\n    budget { allocated committed serviceDone paid available consumedPercent }\n    envelopes { name kind figures { allocated committed available } }\n  }\n}\n',
    }));
  </script>
</body>
</html>
"#;

#[handler]
pub fn page() -> Html<&'static str> {
    Html(PAGE)
}

macro_rules! gz_asset {
    ($name:ident, $file:literal, $mime:literal) => {
        #[handler]
        fn $name() -> Response {
            Response::builder()
                .header(header::CONTENT_TYPE, $mime)
                .header(header::CONTENT_ENCODING, "gzip")
                .header(header::CACHE_CONTROL, "public, max-age=86400")
                .body(&include_bytes!(concat!("../assets/graphiql/", $file, ".gz"))[..])
        }
    };
}

gz_asset!(graphiql_js, "graphiql.min.js", "application/javascript; charset=utf-8");
gz_asset!(graphiql_css, "graphiql.min.css", "text/css; charset=utf-8");
gz_asset!(react_js, "react.production.min.js", "application/javascript; charset=utf-8");
gz_asset!(react_dom_js, "react-dom.production.min.js", "application/javascript; charset=utf-8");

pub fn assets() -> Route {
    Route::new()
        .at("/graphiql.min.js", get(graphiql_js))
        .at("/graphiql.min.css", get(graphiql_css))
        .at("/react.production.min.js", get(react_js))
        .at("/react-dom.production.min.js", get(react_dom_js))
}
