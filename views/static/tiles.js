// Tiles that are checking or preparing to start update themselves: the page is
// fetched again every 2 seconds and the tiles replaced, until none is busy.
// Without JavaScript the page reloads itself (a <noscript> refresh).
(function () {
  function busy() {
    return document.querySelector('[data-testid=tiles][data-busy]');
  }
  if (!busy() || !window.fetch || !window.DOMParser) return;
  function poll() {
    fetch(window.location.href, { credentials: 'same-origin', headers: { Accept: 'text/html' } })
      .then(function (res) {
        return res.ok ? res.text() : Promise.reject(res.status);
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, 'text/html').querySelector('[data-testid=tiles]');
        var tiles = busy();
        if (!fresh || !tiles) return;
        tiles.replaceWith(document.importNode(fresh, true));
        if (busy()) setTimeout(poll, 2000);
      })
      .catch(function () {
        setTimeout(poll, 5000);
      });
  }
  setTimeout(poll, 2000);
})();
