// "Copy key" beside a secret shown once: the button stays hidden without
// JavaScript, and says in its status line whether the copy worked, so a
// screen reader hears it too.
(function () {
  document.querySelectorAll('button[data-copy]').forEach(function (button) {
    var id = button.dataset.copy;
    var source = document.getElementById(id);
    var status = document.querySelector('[data-copy-status="' + id + '"]');
    if (!source) return;
    button.hidden = false;
    function say(text) { if (status) status.textContent = text; }
    // Selected, so Ctrl+C still works where the page may not write the clipboard.
    function select() {
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    }
    button.addEventListener('click', function () {
      var text = source.textContent.trim();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(
          function () { say('Copied.'); },
          function () { select(); say('Selected: press Ctrl+C (⌘C) to copy.'); }
        );
      } else {
        select();
        say(document.execCommand && document.execCommand('copy') ? 'Copied.' : 'Selected: press Ctrl+C (⌘C) to copy.');
      }
    });
  });
})();
