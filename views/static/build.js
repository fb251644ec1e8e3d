// Live state and log of a running build. Without JavaScript the page
// reloads itself (a <noscript> refresh) until the build has ended.
(function () {
  var status = document.querySelector('[data-events]');
  window.followProgress(status, function (data) {
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
})();
