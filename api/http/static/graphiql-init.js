// Starts GraphiQL against the page's own URL (/graphql). A file of its own: the Content-Security-Policy
// allows scripts from this host only, so no inline script.
(function () {
  var fetcher = GraphiQL.createFetcher({ url: window.location.pathname });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(GraphiQL, { fetcher: fetcher, defaultEditorToolsVisibility: true }));
})();
