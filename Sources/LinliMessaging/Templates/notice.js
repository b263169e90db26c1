// A notice's progress refreshes when a resident answers (the stream's address is data-stream).
(function () {
  if (!window.EventSource) return;
  var source = new EventSource(document.getElementById('progress').dataset.stream), pending = false;
  source.addEventListener('answered', function () {
    if (pending) return;
    pending = true;
    setTimeout(function () {
      fetch(window.location.pathname + '?partial=1', {credentials: 'same-origin'}).then(function (r) { return r.text(); }).then(function (html) {
        document.getElementById('progress').innerHTML = html;
        pending = false;
      }, function () { pending = false; });
    }, 200);
  });
})();
