// A resident's report updates itself when staff take a step: the stream says only that it changed,
// and the page fetches itself again and puts in the new status, timeline and forms, unless the
// resident is typing in one of them (then once they leave it).
(function () {
  var live = document.getElementById('report-live');
  if (!live || !window.EventSource || !window.DOMParser) return;
  var waiting = false;

  function typing() {
    var active = document.activeElement;
    return active && live.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName);
  }

  function refresh() {
    if (typing()) { waiting = true; return; }
    waiting = false;
    fetch(window.location.pathname, {credentials: 'same-origin'}).then(function (r) { return r.text(); }).then(function (html) {
      var fresh = new DOMParser().parseFromString(html, 'text/html').getElementById('report-live');
      if (fresh) live.innerHTML = fresh.innerHTML;
    }, function () {});
  }

  live.addEventListener('focusout', function () { if (waiting) setTimeout(refresh, 100); });
  new EventSource(live.dataset.stream).addEventListener('report', function () { setTimeout(refresh, 200); });
})();
