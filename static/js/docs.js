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
  window.SwaggerUIBundle({
    url: el.dataset.spec,
    domNode: el,
    deepLinking: true,
    tryItOutEnabled: false,
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
    responseInterceptor: function (res) {
      // Point "Try it out" at the gateway whatever servers the document lists.
      if (res.url && res.url.indexOf(el.dataset.spec) !== -1 && res.obj) {
        if (res.obj.openapi) res.obj.servers = [{ url: server }];
        if (res.obj.swagger) { var u = new URL(server); res.obj.host = u.host; res.obj.basePath = u.pathname; res.obj.schemes = [u.protocol.replace(':', '')]; }
      }
      return res;
    },
  });
})();
