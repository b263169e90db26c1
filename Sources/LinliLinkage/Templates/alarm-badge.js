// The header's badge: the critical alarms no one has acknowledged, counted every 15 seconds and
// whenever the alarm board hears of a change, with an optional sound when the count goes up.
// The sound is off until the person turns it on (browsers play sound only after a gesture).
(function () {
  var badge = document.getElementById('alarm-badge');
  var toggle = document.getElementById('alarm-sound');
  if (!badge || !window.fetch) return;
  var last = null;
  var soundOn = false;
  try { soundOn = window.localStorage.getItem('linli.alarmSound') === 'on'; } catch (e) { /* private mode */ }
  var audio = null;

  function showToggle() {
    toggle.textContent = soundOn ? toggle.dataset.on : toggle.dataset.off;
    toggle.setAttribute('aria-pressed', soundOn ? 'true' : 'false');
  }

  function beep() {
    if (!soundOn) return;
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      [0, 0.35].forEach(function (at) {
        var tone = audio.createOscillator();
        var gain = audio.createGain();
        tone.frequency.value = 880;
        gain.gain.value = 0.15;
        tone.connect(gain);
        gain.connect(audio.destination);
        tone.start(audio.currentTime + at);
        tone.stop(audio.currentTime + at + 0.2);
      });
    } catch (e) { /* no audio here */ }
  }

  function count() {
    fetch(badge.dataset.src, {credentials: 'same-origin'}).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (b) {
      if (!b) return;
      badge.hidden = b.critical === 0;
      toggle.hidden = false;
      badge.textContent = badge.dataset.label.replace('{n}', b.critical);
      badge.dataset.count = b.critical;
      if (b.href) badge.href = b.href;
      if (last !== null && b.critical > last) beep();
      last = b.critical;
    }, function () {});
  }

  toggle.addEventListener('click', function () {
    soundOn = !soundOn;
    try { window.localStorage.setItem('linli.alarmSound', soundOn ? 'on' : 'off'); } catch (e) { /* private mode */ }
    showToggle();
    if (soundOn) beep();
  });
  showToggle();
  count();
  // Polled, not streamed: a stream per open tab would use up the six connections a browser keeps
  // to one server. The alarm board, which streams already, says when an alarm changed.
  setInterval(count, 15000);
  document.addEventListener('linli:alarm', function () { count(); });
})();
