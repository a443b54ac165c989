// Renders the stored spec with the vendored Swagger UI. "Try it out" calls
// the gateway (not the servers the document names) with the key the
// developer typed, which stays in this tab's sessionStorage.
(function () {
  var el = document.getElementById('swagger-ui');
  var keyInput = document.getElementById('try-key');
  // APIs in app_id + app_key mode take the application's id beside its key.
  var appIdInput = document.getElementById('try-app-id');
  if (!el || !window.SwaggerUIBundle) return;
  [[keyInput, 'tollgate-try-key'], [appIdInput, 'tollgate-try-app-id']].forEach(function (pair) {
    var input = pair[0];
    if (!input) return;
    var stored = sessionStorage.getItem(pair[1]);
    if (stored) input.value = stored;
    input.addEventListener('input', function () { sessionStorage.setItem(pair[1], input.value); });
  });
  // Swagger UI renders its sections as <main> elements; the page has its own, and a
  // second main landmark confuses screen readers. They become named regions.
  function demoteMains() {
    el.querySelectorAll('main').forEach(function (main) {
      if (main.getAttribute('role') === 'region') return;
      main.setAttribute('role', 'region');
      if (!main.getAttribute('aria-label')) main.setAttribute('aria-label', 'API reference');
    });
  }
  new MutationObserver(demoteMains).observe(el, { childList: true, subtree: true });
  var server = el.dataset.server;
  var keyName = el.dataset.keyName || 'user_key';
  var appIdName = el.dataset.appIdName;
  var keyIn = el.dataset.keyIn || 'query';
  // Sets one credential where the API reads it.
  function put(req, name, value) {
    if (keyIn === 'header') {
      req.headers[name] = value;
    } else {
      var u = new URL(req.url, window.location.href);
      u.searchParams.set(name, value);
      req.url = u.toString();
    }
  }
  var ui = window.SwaggerUIBundle({
    url: el.dataset.spec,
    domNode: el,
    deepLinking: true,
    tryItOutEnabled: false,
    // No badge from the public validator service: the page loads nothing
    // from outside this server (its Content-Security-Policy forbids it).
    validatorUrl: null,
    requestInterceptor: function (req) {
      if (req.url.indexOf(el.dataset.spec) !== -1) return req;
      // The key goes to the gateway only, never to a server a document names that the
      // rewrite below missed (a path item pulled in through a $ref keeps its own servers).
      var origin = new URL(req.url, window.location.href).origin;
      if (origin !== new URL(server, window.location.href).origin) return req;
      var key = keyInput ? keyInput.value.trim() : '';
      var appId = appIdInput ? appIdInput.value.trim() : '';
      if (appIdName && appId) put(req, appIdName, appId);
      if (key) put(req, keyName, key);
      return req;
    },
    // Point "Try it out" at the gateway whatever servers the document
    // lists (at the top, on paths or on operations), once it is loaded;
    // YAML documents are only parsed by Swagger UI, so this works on its
    // parsed copy rather than on the fetched text.
    onComplete: function () {
      var spec = ui.specSelectors.specJson().toJS();
      if (spec.openapi) {
        spec.servers = [{ url: server }];
        Object.keys(spec.paths || {}).forEach(function (path) {
          var item = spec.paths[path] || {};
          delete item.servers;
          Object.keys(item).forEach(function (method) {
            if (item[method] && typeof item[method] === 'object') delete item[method].servers;
          });
        });
      } else if (spec.swagger) {
        var u = new URL(server);
        spec.host = u.host;
        spec.basePath = u.pathname;
        spec.schemes = [u.protocol.replace(':', '')];
      }
      ui.specActions.updateJsonSpec(spec);
    },
  });
})();
