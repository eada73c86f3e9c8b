/* Follow a server-sent event stream, falling back to polling a JSON URL.
 *
 * NextupLive.follow({events, event, poll, pollEvery, onData, isDone})
 *   events:  the EventSource URL;  event: the event name carrying the data
 *   poll:    a URL answering the same data as JSON, used when the stream
 *            does not get through (no EventSource, server at its cap, errors)
 *   onData:  called with each new data object
 *   isDone:  optional; true for data after which nothing changes any more
 * Returns {stop, refresh}.
 */
(function () {
  "use strict";

  function follow(o) {
    var source = null, timer = null, stopped = false, failures = 0, lastData = Date.now();
    var pollEvery = o.pollEvery || 10000;

    function deliver(data) {
      lastData = Date.now();
      failures = 0;
      o.onData(data);
      if (o.isDone && o.isDone(data)) { stop(); }
    }

    function poll() {
      if (stopped) { return; }
      fetch(o.poll, {cache: "no-store", headers: {"Accept": "application/json"}})
        .then(function (r) {
          if (r.status === 404) { stop(); return null; }
          return r.ok ? r.json() : null;
        })
        .then(function (data) { if (data) { deliver(data); } })
        .catch(function () { /* offline for now: the next poll tries again */ });
    }

    function startPolling() {
      if (source) { source.close(); source = null; }
      if (timer || stopped) { return; }
      poll();
      timer = setInterval(poll, pollEvery);
    }

    function startStream() {
      if (!window.EventSource) { startPolling(); return; }
      source = new EventSource(o.events);
      source.addEventListener(o.event, function (e) { deliver(JSON.parse(e.data)); });
      source.onerror = function () {
        // A stream ends every minute or so and reconnects by itself; only a
        // closed source (e.g. 204: the server has no room) or repeated failures
        // without any data in between mean the stream does not get through.
        failures += 1;
        if (!source || source.readyState === EventSource.CLOSED || failures > 3) { startPolling(); }
      };
    }

    function stop() {
      stopped = true;
      if (source) { source.close(); source = null; }
      if (timer) { clearInterval(timer); timer = null; }
    }

    // Each stream opens with the current data, so a long silence means a proxy holds the events back.
    var watchdog = setInterval(function () {
      if (stopped) { clearInterval(watchdog); return; }
      if (!timer && Date.now() - lastData > 150000) { startPolling(); }
    }, 15000);

    // Phones freeze background pages: catch up as soon as the page is seen again.
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible" && !stopped) { poll(); }
    });

    startStream();
    return {stop: stop, refresh: poll};
  }

  window.NextupLive = {follow: follow};
})();
