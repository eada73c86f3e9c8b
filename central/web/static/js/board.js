/* The web board: latest calls, waiting per service, clock; chimes and speaks each new call. */
(function () {
  "use strict";
  var root = document.getElementById("board");
  if (!root) { return; }
  var text = JSON.parse(document.getElementById("board-text").textContent);
  var board = JSON.parse(document.getElementById("board-data").textContent);
  var lang = document.documentElement.lang || "en";
  var soundButton = document.getElementById("board-sound");
  var list = document.getElementById("call-list");
  var earlier = Number(root.dataset.history) || 5;
  var soundWanted = localStorage.getItem("nextup.board.sound") === "on";
  var seen = {};

  function key(call) { return call.number + "@" + call.at; }
  board.calls.forEach(function (c) { seen[key(c)] = true; });

  function el(tag, cls, content) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (content !== undefined) { e.textContent = content; }
    return e;
  }

  function callRow(c) {
    var row = el("li", "call");
    row.appendChild(el("span", "call-number", c.number));
    row.appendChild(el("span", "call-arrow", "\u2192")).setAttribute("aria-hidden", "true");
    row.appendChild(el("span", "call-point", c.point_name));
    return row;
  }

  function render(b) {
    document.getElementById("board-site").textContent = b.site;
    var newest = document.getElementById("newest");
    var first = b.calls[0];
    newest.hidden = !first;
    if (first) {
      newest.querySelector(".call-number").textContent = first.number;
      newest.querySelector(".call-point").textContent = first.point_name;
    }
    document.getElementById("no-calls").hidden = !!first;
    var rows = b.calls.slice(1, 1 + earlier).map(callRow);
    list.replaceChildren.apply(list, rows);
    document.getElementById("history").hidden = rows.length === 0;
    var waiting = b.waiting.map(function (w) {
      var li = el("li");
      var name = li.appendChild(el("span", "waiting-name"));
      name.appendChild(el("span", "prefix", w.prefix));
      name.appendChild(document.createTextNode(" " + w.name));
      li.appendChild(el("span", "waiting-count", String(w.count)));
      return li;
    });
    var wl = document.getElementById("waiting-list");
    wl.replaceChildren.apply(wl, waiting);
    root.classList.toggle("closed", !b.open);
  }

  function spoken(number) {
    // "A-042" is read as "A 42"
    return number.replace(/-0*(\d)/, " $1");
  }

  function announce(calls) {
    if (!calls.length) { return; }
    var newest = document.getElementById("newest");
    newest.classList.remove("flash");
    void newest.offsetWidth;  // restart the highlight animation
    newest.classList.add("flash");
    if (!soundWanted) { return; }
    NextupSound.chime();
    calls.forEach(function (c) {
      NextupSound.speak(text.say.replace("{number}", spoken(c.number)).replace("{point}", c.point_name), lang);
    });
  }

  function update(b) {
    // New calls (also a recall of the same ticket: a new time), oldest first.
    var fresh = b.calls.filter(function (c) { return !seen[key(c)]; }).reverse();
    fresh.forEach(function (c) { seen[key(c)] = true; });
    board = b;
    render(b);
    announce(fresh);
  }

  function showSound() {
    soundButton.textContent = soundWanted ? text.sound_on : text.sound_off;
    soundButton.setAttribute("aria-pressed", soundWanted ? "true" : "false");
  }

  soundButton.addEventListener("click", function () {
    soundWanted = !soundWanted;
    localStorage.setItem("nextup.board.sound", soundWanted ? "on" : "off");
    if (soundWanted) { NextupSound.unlock(); NextupSound.chime(); }
    showSound();
  });
  // A TV that had sound on asks for it again; a browser may still want a tap (or its autoplay policy relaxed).
  if (soundWanted) { NextupSound.unlock(); }
  showSound();

  document.getElementById("board-full").addEventListener("click", function () {
    if (document.fullscreenElement) { document.exitFullscreen(); }
    else if (document.documentElement.requestFullscreen) { document.documentElement.requestFullscreen(); }
  });

  var clock = document.getElementById("board-clock");
  function tick() {
    var options = {hour: "2-digit", minute: "2-digit", hourCycle: "h23"};  // as the hall display
    try {
      clock.textContent = new Intl.DateTimeFormat(lang, Object.assign({timeZone: board.timezone}, options))
        .format(new Date());
    } catch (e) {
      clock.textContent = new Date().toLocaleTimeString(lang, options);
    }
  }
  tick();
  setInterval(tick, 1000);

  NextupLive.follow({
    events: root.dataset.events, event: "board", poll: root.dataset.poll,
    pollEvery: Number(root.dataset.pollEvery) || 5000, onData: update,
  });
})();
