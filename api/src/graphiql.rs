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
      defaultQuery: '# Votre jeton va dans l’onglet « Headers » en bas :\n#   {"Authorization": "Bearer ct_…"}\n# (tracker token create, ou ceux qu’affiche serve --demo). Le schéma et sa\n# documentation se chargent sans jeton.\n\n# Conventions and their budgets\n{\n  conventions {\n    code\n    partner\n    total\n    budget { allocated committed serviceDone paid available consumedPercent }\n    envelopes { name kind figures { allocated committed available } }\n  }\n}\n',
    }));
  </script>
</body>
</html>
"#;

/// Whether a request only asks for the schema (`__schema`, `__type`, `__typename` at its
/// root, in queries only): with GraphiQL on, such a request needs no token, so that the
/// page can load the schema and its documentation before one is pasted. Anything else
/// (a fragment spread at the root included) is not.
pub fn introspection_only(query: &str) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType, Selection};
    let Ok(document) = async_graphql::parser::parse_query(query) else { return false };
    let operations: Vec<_> = match &document.operations {
        DocumentOperations::Single(op) => vec![op],
        DocumentOperations::Multiple(ops) => ops.values().collect(),
    };
    operations.iter().all(|op| {
        op.node.ty == OperationType::Query
            && op.node.selection_set.node.items.iter().all(|item| match &item.node {
                Selection::Field(f) => matches!(f.node.name.node.as_str(), "__schema" | "__type" | "__typename"),
                _ => false,
            })
    })
}

/// Whether this server serves GraphiQL (and so answers schema-only requests without a token).
#[derive(Clone, Copy)]
pub struct GraphiqlOpen(pub bool);

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

#[cfg(test)]
mod tests {
    use super::introspection_only;

    #[test]
    fn only_requests_for_the_schema_alone_count_as_introspection() {
        assert!(introspection_only("query IntrospectionQuery { __schema { queryType { name } } }"));
        assert!(introspection_only("{ __type(name: \"Convention\") { fields { name } } __typename }"));
        assert!(!introspection_only("{ __schema { queryType { name } } conventions { code } }"), "data beside it");
        assert!(!introspection_only("{ ...F } fragment F on Query { conventions { code } }"), "a spread at the root");
        assert!(!introspection_only("mutation { __typename }"), "a mutation");
        assert!(!introspection_only("{ conventions { __typename } }"));
        assert!(!introspection_only("{ __schema { "), "unparsable");
    }
}
