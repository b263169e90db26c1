// The inbox: a new notification appears at the top as it arrives. A severity's label is the
// page's (data-severity-{code} on the list), in the page's language.
(function () {
  if (!window.EventSource) return;
  var list = document.getElementById('inbox');
  var unread = document.getElementById('inbox-unread');
  function severityLabel(code) {
    var key = 'severity' + code.charAt(0).toUpperCase() + code.slice(1);
    return list.dataset[key] || code;
  }
  new EventSource('/app/inbox/stream').addEventListener('notification', function (e) {
    var n = JSON.parse(e.data);
    if (list.querySelector('[data-id="' + n.id + '"]')) return;
    var li = document.createElement('li');
    li.className = 'unread';
    li.dataset.id = n.id;
    if (n.severity) { var tag = document.createElement('span'); tag.className = 'tag'; tag.dataset.severity = n.severity; tag.textContent = severityLabel(n.severity); li.appendChild(tag); li.appendChild(document.createTextNode(' ')); }
    var strong = document.createElement('strong');
    if (n.link) { var a = document.createElement('a'); a.href = n.link; a.textContent = n.title; strong.appendChild(a); } else { strong.textContent = n.title; }
    li.appendChild(strong);
    li.appendChild(document.createElement('br'));
    li.appendChild(document.createTextNode(n.body));
    list.insertBefore(li, list.firstChild);
    unread.textContent = String(Number(unread.textContent) + 1);
    var empty = document.getElementById('inbox-empty');
    if (empty) empty.hidden = true;
  });
})();
