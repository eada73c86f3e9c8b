// The admin dashboard follows the queue by itself: server-sent events bring the re-rendered
// live part after each change; without them (refused, or broken for good) it polls every second.
// Between updates the waiting times tick here, against the server's clock.
(function () {
  "use strict";
  var root = document.getElementById("live");
  var state = document.getElementById("live-state");
  if (!root) { return; }
  var offset = 0;   // server time minus browser time, in seconds
  var polling = null;

  function show(text, kind) {
    state.textContent = text;
    state.className = "tag live-state " + (kind || "");
  }

  function syncClock() {
    var body = document.getElementById("live-body");
    if (body) { offset = parseFloat(body.getAttribute("data-now")) - Date.now() / 1000; }
  }

  function mss(seconds) {
    var s = Math.max(0, Math.round(seconds));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return h ? h + ":" + pad(m) + ":" + pad(r) : m + ":" + pad(r);
  }

  function tick() {
    var now = Date.now() / 1000 + offset;
    var items = root.querySelectorAll("[data-since]");
    for (var i = 0; i < items.length; i++) {
      var waited = now - parseFloat(items[i].getAttribute("data-since"));
      items[i].textContent = mss(waited);
      var target = items[i].getAttribute("data-target");
      if (target) { items[i].classList.toggle("over", waited > parseFloat(target)); }
    }
  }

  function replace(html) {
    root.innerHTML = html;
    syncClock();
    tick();
  }

  function poll() {
    fetch(root.getAttribute("data-fragment"), { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.redirected || response.status === 401 || response.status === 403) {
          window.location.reload();  // signed out: the page itself goes to sign-in
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) { if (html) { replace(html); show("live (polling)", "warn"); } })
      .catch(function () { show("connection lost", "bad"); });
  }

  function startPolling() {
    if (polling === null) { polling = window.setInterval(poll, 1000); poll(); }
  }

  syncClock();
  window.setInterval(tick, 1000);
  if (!window.EventSource) { startPolling(); return; }
  var source = new EventSource(root.getAttribute("data-events"));
  source.addEventListener("open", function () { show("live", "ok"); });
  source.addEventListener("dashboard", function (event) {
    replace(JSON.parse(event.data).html);
    show("live", "ok");
  });
  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED) { startPolling(); }
    else { show("reconnecting…", "warn"); }
  });
}());
