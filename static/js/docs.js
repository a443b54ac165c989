// Renders the stored spec with the vendored Swagger UI. "Try it out" calls
// the gateway (not the servers the document names) with the key the
// developer typed, which stays in this tab's sessionStorage.
(function () {
  var el = document.getElementById('swagger-ui');
  var keyInput = document.getElementById('try-key');
  if (!el || !window.SwaggerUIBundle) return;
  var stored = sessionStorage.getItem('tollgate-try-key');
  if (stored && keyInput) keyInput.value = stored;
  if (keyInput) keyInput.addEventListener('input', function () { sessionStorage.setItem('tollgate-try-key', keyInput.value); });
  var server = el.dataset.server;
  var keyName = el.dataset.keyName || 'user_key';
  var keyIn = el.dataset.keyIn || 'query';
  var ui = window.SwaggerUIBundle({
    url: el.dataset.spec,
    domNode: el,
    deepLinking: true,
    tryItOutEnabled: false,
    // No badge from the public validator service: the page loads nothing
    // from outside this server (its Content-Security-Policy forbids it).
    validatorUrl: null,
    requestInterceptor: function (req) {
      var key = keyInput ? keyInput.value.trim() : '';
      if (key && req.url.indexOf(el.dataset.spec) === -1) {
        if (keyIn === 'header') {
          req.headers[keyName] = key;
        } else {
          var u = new URL(req.url, window.location.href);
          u.searchParams.set(keyName, key);
          req.url = u.toString();
        }
      }
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
