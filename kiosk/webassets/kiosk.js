// The kiosk page's own behaviour, around textual-serve's textual.js (which draws the screen).
//
// - KioskSocket stands in for the page's WebSocket: textual.js talks to it as to one socket
//   that never closes, while underneath it reconnects after a network drop and resumes the
//   same kiosk session on the box (it says how many screen bytes it has; the box sends the
//   rest). Meanwhile the page shows "Reconnecting" and takes no taps.
// - The font is sized so the kiosk's layout fits the screen, in either orientation.
// - Tablet manners: full screen on the first tap where the browser allows it, no soft
//   keyboard (the kiosk has its own keypad), no zoom, no selection or menu on a long press.
(function () {
  "use strict";

  var NativeWebSocket = window.WebSocket;
  var PING_MS = 2000; // the box answers each ping: how a silent drop is noticed
  var DEAD_MS = 6000; // nothing heard for this long: the connection is gone
  var CONNECT_MS = 5000; // a connection attempt that has not opened by then is given up
  // The kiosk is laid out for 160x50 cells (1280x800 at 8x16 px); it needs at least this many.
  var MIN_COLS = 100;
  var MIN_ROWS = 50;
  var MAX_FONT = 28;
  var MIN_FONT = 6;

  function terminal() {
    var list = window.textualTerminals || [];
    return list.length ? list[list.length - 1] : null;
  }

  // The largest font size at which the terminal still has MIN_COLS x MIN_ROWS cells.
  function fitFont() {
    var t = terminal();
    if (!t || !t.fitAddon) return;
    var term = t.terminal;
    var best = MIN_FONT;
    var lo = MIN_FONT, hi = MAX_FONT;
    while (lo <= hi) {
      var mid = Math.floor((lo + hi) / 2);
      term.options.fontSize = mid;
      var dims = t.fitAddon.proposeDimensions();
      if (dims && dims.cols >= MIN_COLS && dims.rows >= MIN_ROWS) {
        best = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    term.options.fontSize = best;
    t.fit();
  }

  function noSoftKeyboard() {
    document.querySelectorAll(".xterm-helper-textarea").forEach(function (ta) {
      ta.setAttribute("inputmode", "none"); // no on-screen keyboard; a real keyboard still types
      ta.setAttribute("readonly", "readonly"); // and none on browsers that ignore inputmode
      ta.setAttribute("autocomplete", "off");
      ta.setAttribute("autocorrect", "off");
      ta.setAttribute("autocapitalize", "off");
      ta.setAttribute("spellcheck", "false");
      ta.setAttribute("aria-hidden", "true");
    });
  }

  function KioskSocket(url) {
    this.binaryType = "arraybuffer";
    this.readyState = 0;
    this._listeners = { open: [], close: [], message: [], error: [] };
    this._base = url.split("?")[0];
    this._session = "";
    this._received = 0; // screen bytes of this session drawn so far
    this._ws = null;
    this._opened = false;
    this._retry = 0;
    this._heard = Date.now();
    var self = this;
    noSoftKeyboard();
    // Connect once Roboto Mono has loaded and the font is fitted with its real cells: a
    // terminal that changes its rows under a drawn screen scrolls it out of place.
    var started = false;
    var start = function () {
      if (started) return;
      started = true;
      fitFont();
      self._connect();
    };
    if (document.fonts && document.fonts.load) {
      document.fonts.load('16px "Roboto Mono"').then(start, start);
      setTimeout(start, 3000); // a font that never loads: the fallback monospace will do
    } else {
      start();
    }
    setInterval(function () { self._watch(); }, PING_MS);
  }

  KioskSocket.prototype.addEventListener = function (type, fn) {
    (this._listeners[type] = this._listeners[type] || []).push(fn);
  };
  KioskSocket.prototype._emit = function (type, event) {
    (this._listeners[type] || []).forEach(function (fn) { fn(event); });
  };
  KioskSocket.prototype.send = function (data) {
    // While reconnecting, taps go nowhere (the overlay covers the screen anyway).
    if (this._ws && this._ws.readyState === NativeWebSocket.OPEN) this._ws.send(data);
  };
  KioskSocket.prototype.close = function () {
    if (this._ws) this._ws.close();
  };

  KioskSocket.prototype._url = function () {
    var t = terminal();
    var cols = t ? t.terminal.cols : 160, rows = t ? t.terminal.rows : 50;
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + location.host + this._base + "?width=" + cols + "&height=" + rows +
      "&session=" + encodeURIComponent(this._session) + "&received=" + this._received;
  };

  KioskSocket.prototype._connect = function () {
    var self = this;
    var ws = new NativeWebSocket(this._url());
    ws.binaryType = "arraybuffer";
    this._ws = ws;
    this._heard = Date.now();
    var timer = setTimeout(function () {
      if (ws.readyState !== NativeWebSocket.OPEN) ws.close();
    }, CONNECT_MS);
    ws.addEventListener("open", function () {
      clearTimeout(timer);
      self._heard = Date.now();
    });
    ws.addEventListener("message", function (e) {
      if (ws !== self._ws) return;
      self._heard = Date.now();
      if (typeof e.data === "string") {
        var msg;
        try { msg = JSON.parse(e.data); } catch (err) { return; }
        if (msg[0] === "session") return self._onSession(msg[1]);
        if (msg[0] === "pong" && String(msg[1]).charAt(0) === "k") return; // our keep-alive
        self._emit("message", { data: e.data });
        return;
      }
      self._received += e.data.byteLength;
      self._emit("message", { data: e.data });
    });
    ws.addEventListener("close", function (e) {
      clearTimeout(timer);
      if (ws !== self._ws) return;
      self._ws = null;
      if (e.code === 4003) { // the box runs as many kiosk screens as it may
        document.body.classList.add("-unavailable");
        setTimeout(function () { self._connect(); }, 10000);
        return;
      }
      if (e.code === 4001) self._session = ""; // the kiosk process ended: a new one
      self._reconnectSoon();
    });
  };

  KioskSocket.prototype._onSession = function (info) {
    var t = terminal();
    document.body.classList.remove("-reconnecting", "-unavailable");
    this._retry = 0;
    if (!info.resumed) {
      // A new kiosk session (the first, or the old one ended): a clean terminal for it.
      if (this._opened && t) t.terminal.reset();
      this._received = 0;
    }
    this._session = info.id;
    this.readyState = 1;
    if (!this._opened) {
      this._opened = true;
      this._emit("open", {});
    }
    // The size now (it may have changed while connecting, or while the tablet was away).
    if (t) this._send(["resize", { width: t.terminal.cols, height: t.terminal.rows }]);
  };

  KioskSocket.prototype._send = function (msg) {
    if (this._ws && this._ws.readyState === NativeWebSocket.OPEN) this._ws.send(JSON.stringify(msg));
  };

  KioskSocket.prototype._reconnectSoon = function () {
    var self = this;
    if (this._opened) document.body.classList.add("-reconnecting");
    var delay = Math.min(3000, 250 * Math.pow(2, this._retry++));
    setTimeout(function () { self._connect(); }, delay);
  };

  KioskSocket.prototype._watch = function () {
    var ws = this._ws;
    if (!ws || ws.readyState !== NativeWebSocket.OPEN) return;
    if (Date.now() - this._heard > DEAD_MS) {
      // A silent drop (Wi-Fi gone, the box unplugged): no close ever comes, so stop waiting.
      this._ws = null;
      ws.close();
      this._reconnectSoon();
      return;
    }
    this._send(["ping", "k" + Date.now()]);
  };

  window.WebSocket = KioskSocket;
  window.kioskFitFont = fitFont;

  // Tablet manners ---------------------------------------------------------------------------

  function goFullScreen() {
    var el = document.documentElement;
    if (document.fullscreenElement || document.webkitFullscreenElement) return;
    var request = el.requestFullscreen || el.webkitRequestFullscreen;
    if (!request) return; // iPhone Safari: "Add to Home Screen" gives the full screen instead
    try {
      var p = request.call(el, { navigationUI: "hide" });
      if (p && p.catch) p.catch(function () {});
    } catch (err) { /* not allowed here: carry on windowed */ }
  }

  var stop = function (e) { e.preventDefault(); };
  document.addEventListener("contextmenu", stop); // long press: no menu
  document.addEventListener("selectstart", stop); // and no selection
  document.addEventListener("gesturestart", stop); // Safari's pinch
  document.addEventListener("dblclick", stop);
  document.addEventListener("pointerdown", goFullScreen, true);
  document.addEventListener("touchend", goFullScreen, true);
  // Rotating the tablet or leaving full screen: fit the font again (textual.js sends the size).
  var refit;
  window.addEventListener("resize", function () {
    clearTimeout(refit);
    refit = setTimeout(fitFont, 100);
  });
  document.addEventListener("focusin", noSoftKeyboard);
})();
