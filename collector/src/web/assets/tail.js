// The admin pages' live log tail: follows /api/v1/logs/tail (Server-Sent Events) with the
// page's filters and appends each line as it is stored, keeping the last 1,000.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var box = document.getElementById("tail");
  var state = document.getElementById("tail-state");
  if (!box || !window.EventSource) { return; }
  var KEEP = 1000;
  var source = new EventSource(box.getAttribute("data-source"));
  source.onopen = function () { state.textContent = "Following: new lines appear below."; };
  source.onerror = function () { state.textContent = "Disconnected; reconnecting…"; };
  function add(text, cls) {
    var line = document.createElement("div");
    if (cls) { line.className = cls; }
    line.textContent = text;
    var atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    box.appendChild(line);
    while (box.childNodes.length > KEEP) { box.removeChild(box.firstChild); }
    if (atBottom) { box.scrollTop = box.scrollHeight; }
  }
  source.addEventListener("line", function (e) {
    var l = JSON.parse(e.data);
    add([l.time, l.agent, l.level || "-", l.source, l.text].join("  "), "line");
  });
  source.addEventListener("lagged", function (e) {
    add("… " + JSON.parse(e.data).missed + " lines missed (this page fell behind)", "muted");
  });
});
