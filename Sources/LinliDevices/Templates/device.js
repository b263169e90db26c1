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
