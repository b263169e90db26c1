// Behaviour every page may use, kept in a file so that the Content-Security-Policy needs no inline
// script: a form with data-confirm asks first; a link with data-back goes back in the history.
document.addEventListener('submit', function (e) {
  var form = e.target;
  if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) e.preventDefault();
});
document.addEventListener('click', function (e) {
  var link = e.target.closest && e.target.closest('a[data-back]');
  if (link && window.history.length > 1) { e.preventDefault(); window.history.back(); }
});
