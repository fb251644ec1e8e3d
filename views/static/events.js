// Follows a job's Server-Sent Events (a check, a build): each progress event
// goes to onProgress, the page reloads when the job is done, and later when
// the stream was refused (too many pages following) or went away.
window.followProgress = function (element, onProgress) {
  if (!element || !window.EventSource) return;
  var source = new EventSource(element.getAttribute('data-events'));
  source.addEventListener('progress', function (event) {
    onProgress(JSON.parse(event.data));
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
};
