// Filters the package table as you type; without JavaScript the search form
// asks the server (?q=), which renders the same rows.
(function () {
  var input = document.getElementById('inventory-q');
  var table = document.querySelector('[data-testid=packages]');
  var count = document.querySelector('[data-testid=inventory-count]');
  if (!input || !table) return;
  var rows = Array.prototype.slice.call(table.querySelectorAll('tbody tr'));
  var total = count ? count.textContent.replace(/^\d+ of /, '') : '';
  function filter() {
    var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    rows.forEach(function (row) {
      var text = row.getAttribute('data-search') || '';
      var match = words.every(function (w) {
        return text.indexOf(w) !== -1;
      });
      row.hidden = !match;
      if (match) shown++;
    });
    if (count) count.textContent = shown + ' of ' + total;
  }
  input.addEventListener('input', filter);
})();
