// Live state and log of a running build (Server-Sent Events). Without
// JavaScript the page reloads itself (a <noscript> refresh) until it ends.
(function () {
  var status = document.querySelector('[data-events]');
  if (!status || !window.EventSource) return;
  var source = new EventSource(status.getAttribute('data-events'));
  source.addEventListener('progress', function (event) {
    var data = JSON.parse(event.data);
    var label = status.querySelector('[data-testid=build-label]');
    if (label) label.textContent = data.label;
    var duration = status.querySelector('[data-field=duration]');
    if (duration) duration.textContent = data.duration;
    var log = document.querySelector('[data-testid=build-log]');
    if (log && typeof data.log === 'string') {
      var atEnd = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
      log.textContent = data.log;
      if (atEnd) window.scrollTo(0, document.body.scrollHeight);
    }
  });
  source.addEventListener('done', function () {
    source.close();
    window.location.reload();
  });
  source.onerror = function () {
    if (source.readyState === 2)
      setTimeout(function () {
        window.location.reload();
      }, 5000);
  };
})();
