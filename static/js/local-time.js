// Times are written in UTC (<time datetime=… data-local>), which reads the same for everyone;
// here each is rewritten in the reader's own zone, with the zone named, and the UTC text kept
// as its tooltip. Without JavaScript the UTC text stays.
(function () {
  var parts = { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZoneName: 'short' };
  document.querySelectorAll('time[data-local][datetime]').forEach(function (el) {
    var at = new Date(el.getAttribute('datetime'));
    if (isNaN(at.getTime())) return;
    var options = Object.assign({}, parts);
    if (el.dataset.local === 'second') options.second = '2-digit';
    try {
      var text = new Intl.DateTimeFormat(undefined, options).format(at);
      el.title = el.textContent;
      el.textContent = text;
    } catch (e) {
      // An engine without Intl keeps the UTC text.
    }
  });
})();
