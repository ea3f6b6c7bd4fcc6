// Keeps the status page's states current without a reload: every 5 s it reads
// /api/v1/status (public, as the page is) and updates each check's state and the banner. The page works without it
// (the server renders the same states; without JavaScript it reloads every minute).
"use strict";
(function () {
  var WORDS = { up: "✓ Up", down: "✕ Down", pending: "… Pending", unknown: "? Unknown" };
  var BANNER = {
    up: "All systems operational",
    down: "Some systems are down",
    degraded: "Some systems have no recent results"
  };
  function refresh() {
    fetch("/api/v1/status", { headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (body) {
        var states = {};
        body.groups.forEach(function (g) {
          g.checks.forEach(function (c) { states[c.name] = c.status; });
        });
        var anyDown = false, allUp = true;
        document.querySelectorAll("[data-check]").forEach(function (el) {
          var s = states[el.getAttribute("data-check")];
          if (!s) { return; }
          anyDown = anyDown || s === "down";
          allUp = allUp && s === "up";
          el.className = el.className.replace(/\bs-[a-z]+\b/, "s-" + s);
          var label = el.querySelector("[data-state]");
          if (label && label.textContent !== WORDS[s]) { label.textContent = WORDS[s]; }
        });
        var overall = anyDown ? "down" : allUp ? "up" : "degraded";
        var banner = document.getElementById("overall");
        if (banner) {
          banner.className = "banner s-" + overall;
          banner.textContent = BANNER[overall];
        }
        document.body.setAttribute("data-refreshed", new Date().toISOString());
      })
      .catch(function () { /* the next round tries again */ });
  }
  setInterval(refresh, 5000);
})();
