// The build form shows the fields of the chosen mode only; without
// JavaScript all sets stay visible and the chosen mode decides. A set
// names the modes it belongs to, separated by spaces.
(function () {
  var radios = document.querySelectorAll('input[name=mode]');
  function show() {
    var checked = document.querySelector('input[name=mode]:checked');
    var mode = checked ? checked.value : 'packages';
    document.querySelectorAll('fieldset[data-mode]').forEach(function (set) {
      set.hidden = set.getAttribute('data-mode').split(' ').indexOf(mode) < 0;
    });
  }
  radios.forEach(function (radio) {
    radio.addEventListener('change', show);
  });
  show();
})();
