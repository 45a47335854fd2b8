// Lobby display: names called out loud (issue 20). Each consult reception starts appears in
// the live region as a [data-call] item; a call not seen before is shown large and, when the
// clinic speaks its calls, its sound (a chime and the words, made by the server's espeak-ng)
// is played. Calls wait in a queue: one at a time, never two at once. Calls already on the
// screen when the page opens are not announced again (a reloaded display must not re-call).
"use strict";

(function () {
  const seen = new Set();
  const queue = [];
  const log = [];  // what was announced, with start and end times: the browser test reads it
  window.waitroomCalls = log;
  let busy = false;
  let loaded = false;
  const HOLD_MS = 8000;  // words shown at least this long, sound or not
  const GAP_MS = 1000;

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function collect() {
    const items = Array.from(document.querySelectorAll("#display [data-call]"));
    items.sort((a, b) => (a.dataset.at < b.dataset.at ? -1 : a.dataset.at > b.dataset.at ? 1 : 0));
    for (const el of items) {
      const id = el.dataset.call;
      if (seen.has(id)) continue;
      seen.add(id);
      if (loaded) queue.push({ id, text: el.textContent.trim(), lang: el.lang || "en", audio: el.dataset.audio || null });
    }
    loaded = true;
    pump();
  }

  // The browser may refuse sound until someone has touched the page (a TV's browser started
  // without --autoplay-policy=no-user-gesture-required): then a button asks for one tap.
  function unlock() {
    const button = document.getElementById("sound-on");
    if (!button) return Promise.resolve();
    button.hidden = false;
    return new Promise((resolve) => {
      button.addEventListener("click", () => { button.hidden = true; resolve(); }, { once: true });
    });
  }

  function playOnce(url) {
    return new Promise((resolve, reject) => {
      const audio = new Audio(url);
      const limit = setTimeout(() => { audio.pause(); resolve(); }, 30000);
      const done = () => { clearTimeout(limit); resolve(); };
      audio.addEventListener("ended", done, { once: true });
      audio.addEventListener("error", done, { once: true });
      audio.play().catch((err) => { clearTimeout(limit); reject(err); });
    });
  }

  async function play(url) {
    try {
      await playOnce(url);
    } catch (err) {
      if (err && err.name === "NotAllowedError") {
        await unlock();
        try { await playOnce(url); } catch (e) { /* shown, not heard */ }
      }
    }
  }

  async function pump() {
    if (busy) return;
    busy = true;
    const banner = document.getElementById("call-now");
    try {
      while (queue.length) {
        const call = queue.shift();
        const entry = { id: call.id, text: call.text, start: performance.now(), end: null };
        log.push(entry);
        if (banner) {
          banner.textContent = call.text;
          banner.lang = call.lang;
          banner.hidden = false;
        }
        const shown = sleep(HOLD_MS);
        if (call.audio) await play(call.audio);
        entry.end = performance.now();
        await (queue.length ? sleep(GAP_MS) : shown);
      }
    } finally {
      busy = false;
      if (banner && !queue.length) banner.hidden = true;
    }
  }

  document.body.addEventListener("waitroom:updated", collect);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", collect);
  else collect();
})();
