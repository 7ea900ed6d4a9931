// dcp-emulator dashboard: copy buttons and live refresh of uploads in progress. Pages read without it.
(function () {
  "use strict";
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    var area = document.createElement("textarea");  // plain-http hosts other than localhost
    area.value = text; area.style.position = "fixed"; area.style.opacity = "0";
    document.body.appendChild(area); area.select();
    try { document.execCommand("copy"); } finally { document.body.removeChild(area); }
    return Promise.resolve();
  }
  document.querySelectorAll("button.copy").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      copyText(button.dataset.copy).then(function () {
        var label = button.textContent; button.textContent = "Copied";
        setTimeout(function () { button.textContent = label; }, 1200);
      });
    });
  });
  if (!document.body.dataset.live) return;
  var panel = document.querySelector("[data-poll]");
  if (!panel) { setTimeout(function () { location.reload(); }, 1500); return; }
  function poll() {  // counts update in place; the page reloads once the upload is finished
    fetch(panel.dataset.poll, {headers: {"Accept": "application/json"}}).then(function (r) { return r.json(); })
      .then(function (u) {
        ["rows_total", "rows_stored", "rows_rejected"].forEach(function (name) {
          var cell = panel.querySelector('[data-field="' + name + '"]');
          if (cell) cell.textContent = u[name];
        });
        if (u.status === "pending" || u.status === "processing") setTimeout(poll, 1000); else location.reload();
      }).catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();
