// The import page: a chosen CSV file is read into the text box, which is what the form sends.
document.getElementById('csv-file').addEventListener('change', function (e) {
  var file = e.target.files[0];
  if (!file) return;
  var reader = new FileReader();
  reader.onload = function () { document.getElementById('csv').value = reader.result; };
  reader.readAsText(file, 'utf-8');
});
