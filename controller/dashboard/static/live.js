// Live updates where JavaScript is on: fetch this page again every few seconds
// and swap its <main> in place. Without JavaScript the page is the same, just
// as of when it was loaded (reload to refresh).
(function () {
  "use strict";
  var main = document.getElementById("live");
  var status = document.getElementById("live-status");
  if (!main || !window.fetch || !window.DOMParser) return;
  var every = parseFloat(main.dataset.every || "0");
  if (!(every > 0)) return;

  function busy() {
    // Never replace what someone is typing into or has selected.
    var active = document.activeElement;
    return (active && main.contains(active) && active.tagName !== "A") ||
      String(window.getSelection()).length > 0;
  }

  function update() {
    if (document.hidden || busy()) return;
    fetch(window.location.href, { headers: { "X-Setpoint-Live": "1" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        // Swap only what changed: an unchanged page keeps its elements (and
        // whatever a reader or a test holds of them).
        if (fresh && fresh.innerHTML !== main.innerHTML) main.innerHTML = fresh.innerHTML;
        status.textContent = "live · updated " + new Date().toLocaleTimeString();
        status.className = "muted";
      })
      .catch(function (error) {
        status.textContent = "live updates paused: " + error.message;
        status.className = "st-failed";
      });
  }

  status.textContent = "live";
  window.setInterval(update, every * 1000);
})();
