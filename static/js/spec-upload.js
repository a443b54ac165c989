// Fills the spec textarea from a chosen file, so uploads work without
// multipart handling; without JavaScript, pasting still works.
(function () {
  var input = document.getElementById('spec-file');
  var area = document.getElementById('spec');
  if (!input || !area || !window.FileReader) return;
  input.addEventListener('change', function () {
    var file = input.files && input.files[0];
    if (!file) return;
    var reader = new FileReader();
    reader.onload = function () { area.value = String(reader.result); };
    reader.readAsText(file);
  });
})();
