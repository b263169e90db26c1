// The device list: a row's status follows the devices' online and offline events.
(function () {
  if (!window.EventSource) return;
  var source = new EventSource('/api/v1/events/stream');
  ['device.online', 'device.offline', 'device.disabled', 'device.enabled'].forEach(function (type) {
    source.addEventListener(type, function (e) {
      var ev = JSON.parse(e.data), p = JSON.parse(ev.payload || '{}');
      var row = document.getElementById('dev-' + p.productKey + '-' + p.deviceName);
      if (!row) return;
      var cell = row.querySelector('.status');
      // The status shown by its label in the page's language (data-status-… of the table).
      var status = type === 'device.enabled' ? 'offline' : type.slice('device.'.length);
      cell.textContent = document.getElementById('devices').getAttribute('data-status-' + status) || status;
      cell.className = 'status status-' + status;
    });
  });
})();
