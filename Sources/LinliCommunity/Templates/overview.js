// The overview's live box: the community's changes as they happen (the id is the box's data-community).
(function () {
  var box = document.getElementById('live');
  if (!window.EventSource) return;
  var source = new EventSource('/api/v1/events/stream');
  source.onmessage = show;
  ['household.created','household.updated','person.created','person.updated','residency.moved_in','residency.moved_out','vehicle.registered','building.created','unit.created','organisation.created','grid.created','staff.added','role.granted','role.revoked']
    .forEach(function (t) { source.addEventListener(t, show); });
  function show(e) {
    var ev = JSON.parse(e.data);
    if (ev.communityId !== box.dataset.community) return;
    var line = document.createElement('div');
    line.textContent = new Date(ev.at).toLocaleTimeString() + '  ' + ev.type + '  ' + ev.subjectId;
    if (box.firstChild && box.firstChild.className === 'muted') box.removeChild(box.firstChild);
    box.insertBefore(line, box.firstChild);
  }
})();
