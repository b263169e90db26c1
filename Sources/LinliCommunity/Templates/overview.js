// The overview's live box: the community's changes as they happen (the id is the box's data-community).
// Each change's words come from the box's data-label-* attributes (the page's language); times are Beijing time.
(function () {
  var box = document.getElementById('live');
  if (!box || !window.EventSource) return;
  var source = new EventSource('/api/v1/events/stream');
  source.onmessage = show;
  var types = ['household.created', 'household.updated', 'person.created', 'person.updated', 'residency.moved_in',
    'residency.moved_out', 'vehicle.registered', 'building.created', 'unit.created', 'organisation.created',
    'grid.created', 'staff.added', 'role.granted', 'role.revoked'];
  types.forEach(function (t) { source.addEventListener(t, show); });
  function label(type) {
    var key = 'label' + type.split(/[._]/).map(function (w) { return w.charAt(0).toUpperCase() + w.slice(1); }).join('');
    return box.dataset[key] || box.dataset.other;
  }
  function show(e) {
    var ev = JSON.parse(e.data);
    if (ev.communityId !== box.dataset.community) return;
    var line = document.createElement('div');
    line.className = 'change';
    line.dataset.type = ev.type;
    var when = new Date(ev.at).toLocaleTimeString(box.dataset.lang, { timeZone: 'Asia/Shanghai', hour12: false });
    line.textContent = when + '  ' + label(ev.type) + '  ' + ev.subjectId;
    if (box.firstChild && box.firstChild.className === 'muted') box.removeChild(box.firstChild);
    box.insertBefore(line, box.firstChild);
  }
})();
