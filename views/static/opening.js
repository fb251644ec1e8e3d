// Follows a launch link's progress: once the server is ready the browser goes
// there; a change of step reloads the page (the build's log, then the next
// step). Without JavaScript the page reloads itself (a <noscript> refresh).
(function () {
  var status = document.querySelector('[data-state]');
  if (!status || !window.fetch) return;
  var step = status.getAttribute('data-step');
  function poll() {
    fetch(status.getAttribute('data-state'), { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (res) {
        return res.ok ? res.json() : null;
      })
      .then(function (launch) {
        if (launch && launch.step === 'ready') return window.location.assign(launch.landing);
        if (launch && launch.step !== step) return window.location.reload();
        setTimeout(poll, 1000);
      })
      .catch(function () {
        setTimeout(poll, 3000);
      });
  }
  setTimeout(poll, 1000);
})();
