// The alarm list refreshes its rows when an alarm changes (the stream's address is data-stream).
(function () {
  if (!window.EventSource) return;
  var source = new EventSource(document.getElementById('alarm-rows').dataset.stream);
  var pending = false;
  source.addEventListener('alarm', function () {
    document.dispatchEvent(new CustomEvent('linli:alarm'));
    if (pending) return;
    pending = true;
    // Several changes at once are one refresh.
    setTimeout(function () {
      var url = new URL(window.location.href);
      url.searchParams.set('partial', '1');
      fetch(url, {credentials: 'same-origin'}).then(function (r) { return r.text(); }).then(function (html) {
        document.getElementById('alarm-rows').innerHTML = html;
        var none = document.getElementById('no-alarms');
        if (none) none.hidden = document.querySelectorAll('#alarm-rows tr').length > 0;
        pending = false;
      }, function () { pending = false; });
    }, 200);
  });
})();
