// Live progress of a running check (Server-Sent Events). Without JavaScript
// the page reloads itself (a <noscript> refresh) until the check is done.
(function () {
  var verdict = document.querySelector('[data-events]');
  function bytes(n) {
    if (!n) return '0 bytes';
    var units = ['bytes', 'kB', 'MB', 'GB', 'TB'];
    var u = 0;
    while (n >= 1000 && u < units.length - 1) {
      n /= 1000;
      u++;
    }
    return (u === 0 ? n : n.toFixed(n >= 100 ? 0 : 1)) + ' ' + units[u];
  }
  window.followProgress(verdict, function (data) {
    var p = data.progress || {};
    var message = verdict.querySelector('[data-testid=progress-message]');
    if (message) message.textContent = p.message || '';
    var read = verdict.querySelector('[data-testid=progress-read]');
    if (read && p.bytesTotal) {
      read.max = p.bytesTotal;
      read.value = p.bytesRead || 0;
    }
    var pull = verdict.querySelector('[data-testid=progress-pull]');
    if (pull && p.pullTotal) {
      pull.max = p.pullTotal;
      pull.value = p.pulledBytes || 0;
    }
    var readText = verdict.querySelector('[data-field=read]');
    if (readText) readText.textContent = bytes(p.bytesRead) + ' of ' + bytes(p.bytesTotal);
    var pullText = verdict.querySelector('[data-field=pull]');
    if (pullText) pullText.textContent = bytes(p.pulledBytes) + ' of ' + bytes(p.pullTotal);
    var log = document.querySelector('[data-testid=log]');
    if (log && typeof data.log === 'string') log.textContent = data.log;
  });
})();
