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
      cell.textContent = type.slice('device.'.length);
      cell.className = 'status status-' + cell.textContent;
    });
  });
})();
