// One device's page: its status follows its online and offline events (its id is data-device).
(function () {
  if (!window.EventSource) return;
  var source = new EventSource('/api/v1/events/stream');
  ['device.online', 'device.offline', 'device.disabled', 'device.enabled'].forEach(function (type) {
    source.addEventListener(type, function (e) {
      var ev = JSON.parse(e.data);
      if (ev.subjectId !== document.getElementById('device-status').dataset.device) return;
      var badge = document.getElementById('device-status');
      var status = type === 'device.enabled' ? 'offline' : type.slice('device.'.length);
      badge.textContent = badge.getAttribute('data-status-' + status) || status;
      badge.className = 'status status-' + status;
    });
  });
})();
// The chart: pointing at a dot (or focusing it from the keyboard) shows its value and time under
// the chart, from the dot's <title>, which is also the browser's own tooltip.
(function () {
  var figure = document.getElementById('chart');
  var readout = document.getElementById('chart-readout');
  if (!figure || !readout) return;
  function show(e) {
    var dot = e.target.closest && e.target.closest('circle.point');
    if (!dot) return;
    var title = dot.querySelector('title');
    readout.textContent = title ? title.textContent : dot.getAttribute('data-value');
    figure.querySelectorAll('circle.point.active').forEach(function (d) { d.classList.remove('active'); });
    dot.classList.add('active');
  }
  figure.addEventListener('mouseover', show);
  figure.addEventListener('focusin', show);
})();
// The command form: only the fields of the chosen command are shown (without script all are,
// and the server reads those of the chosen one).
(function () {
  var select = document.getElementById('command-service');
  if (!select) return;
  function show() {
    document.querySelectorAll('fieldset.command-inputs').forEach(function (f) { f.hidden = f.dataset.service !== select.value; });
  }
  select.addEventListener('change', show);
  show();
})();
