/* The ticket page: shows people ahead and, once called, where to go; rings on the call. */
(function () {
  "use strict";
  var root = document.getElementById("ticket");
  if (!root) { return; }
  var text = JSON.parse(document.getElementById("ticket-text").textContent);
  var data = JSON.parse(document.getElementById("ticket-data").textContent);
  var status = document.getElementById("status");
  var cancel = document.getElementById("cancel");
  var soundButton = document.getElementById("sound");
  var finished = {served: true, no_show: true, cancelled: true};
  var title = document.title;

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (m, k) { return values[k] === undefined ? m : values[k]; });
  }

  function para(cls, content) {
    var p = document.createElement("p");
    p.className = cls;
    p.textContent = content;
    return p;
  }

  function render(t) {
    var nodes = [];
    if (t.state === "waiting") {
      var ahead = t.ahead === 0 ? text.next : t.ahead === 1 ? text.ahead_one : fill(text.ahead_many, {n: t.ahead});
      nodes.push(para(t.ahead === 0 ? "ahead next" : "ahead", ahead));
      nodes.push(para("eta", t.eta_s < 60 ? text.eta_soon : fill(text.eta, {min: Math.round(t.eta_s / 60)})));
    } else if (t.state === "called") {
      nodes.push(para("turn", text.turn));
      nodes.push(para("go", fill(text.go, {point: t.point_name || t.point})));
    } else if (text[t.state]) {
      nodes.push(para("done", text[t.state]));
    }
    status.replaceChildren.apply(status, nodes);
    document.body.className = document.body.className.replace(/\bstate-\w+/, "state-" + t.state);
    document.title = t.state === "called" ? "\u25B6 " + fill(text.title_called, {point: t.point_name || t.point}) : title;
    if (cancel) { cancel.hidden = t.state !== "waiting"; }
    document.getElementById("again").hidden = !finished[t.state];
    document.getElementById("hint").hidden = !!finished[t.state];
    if (finished[t.state] && soundButton) { soundButton.hidden = true; }
  }

  function update(t) {
    var called = t.state === "called" && (data.state !== "called" || t.called_at !== data.called_at);
    data = t;
    render(t);
    if (called) {
      NextupSound.chime();
      NextupSound.vibrate([400, 150, 400, 150, 800]);
    }
  }

  if (cancel) {
    cancel.addEventListener("submit", function (e) {
      if (!window.confirm(text.confirm_cancel)) { e.preventDefault(); }
    });
  }

  if (soundButton && !finished[data.state]) {
    soundButton.hidden = false;
    soundButton.addEventListener("click", function () {
      NextupSound.unlock();
      NextupSound.chime();
      NextupSound.vibrate(200);
      soundButton.setAttribute("aria-pressed", "true");
      soundButton.textContent = text.sound_on;
      soundButton.classList.add("secondary");  // a tap again plays the chime again: a sound check
    });
  }

  if (!finished[data.state]) {
    NextupLive.follow({
      events: root.dataset.events, event: "ticket", poll: root.dataset.poll,
      pollEvery: Number(root.dataset.pollEvery) || 10000,
      onData: update, isDone: function (t) { return !!finished[t.state]; },
    });
  }
})();
