/* A chime made by the browser (Web Audio, no sound file), vibration and speech.
 *
 * Browsers let a page make sound only after a tap on it: call
 * NextupSound.unlock() from a click handler; later chime() calls then play.
 */
(function () {
  "use strict";
  var ctx = null;

  function context() {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!ctx && Ctx) { ctx = new Ctx(); }
    return ctx;
  }

  function note(c, freq, start, length, gain) {
    var osc = c.createOscillator(), amp = c.createGain();
    osc.type = "sine";
    osc.frequency.value = freq;
    amp.gain.setValueAtTime(0.0001, start);
    amp.gain.exponentialRampToValueAtTime(gain, start + 0.02);
    amp.gain.exponentialRampToValueAtTime(0.0001, start + length);
    osc.connect(amp).connect(c.destination);
    osc.start(start);
    osc.stop(start + length + 0.05);
  }

  /* Two falling notes, as a hall's "ding-dong". */
  function chime() {
    var c = context();
    if (!c) { return false; }
    if (c.state === "suspended") { c.resume(); }
    var t = c.currentTime + 0.05;
    note(c, 659.25, t, 0.9, 0.5);        // E5
    note(c, 523.25, t + 0.45, 1.3, 0.5); // C5
    return c.state === "running";
  }

  function unlock() {
    var c = context();
    if (c && c.state === "suspended") { c.resume(); }
    return !!c;
  }

  function vibrate(pattern) {
    if (navigator.vibrate) {
      try { return navigator.vibrate(pattern); } catch (e) { return false; }
    }
    return false;
  }

  function speak(text, lang) {
    if (!window.speechSynthesis || !window.SpeechSynthesisUtterance) { return false; }
    var u = new SpeechSynthesisUtterance(text);
    if (lang) { u.lang = lang; }
    u.rate = 0.9;
    window.speechSynthesis.speak(u);
    return true;
  }

  function running() { return !!ctx && ctx.state === "running"; }

  window.NextupSound = {chime: chime, unlock: unlock, vibrate: vibrate, speak: speak, running: running};
})();
