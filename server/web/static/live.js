// Live pages: redraw the server-rendered regions pushed over server-sent events, and post
// the pages' forms with fetch so the page stays put. Without JavaScript every form still
// works as a plain POST and redirect. No inline script anywhere: the CSP forbids it.
"use strict";

(function () {
  const body = document.body;

  function isTyping(el) {
    return el && (el.tagName === "TEXTAREA" || el.tagName === "SELECT" ||
      (el.tagName === "INPUT" && !["hidden", "submit", "button"].includes(el.type)));
  }

  const pending = {};

  function replaceRegion(id, html) {
    const region = document.getElementById(id);
    if (!region) return;
    const active = document.activeElement;
    // Never pull a half-typed message out from under the desk: redraw when they leave the field.
    if (region.contains(active) && isTyping(active)) {
      pending[id] = html;
      return;
    }
    const open = Array.from(region.querySelectorAll("details[open]")).map((d) => d.id).filter(Boolean);
    const focusId = region.contains(active) ? active.id || null : null;
    const focusAction = region.contains(active) && active.form ? active.form.getAttribute("action") : null;
    region.innerHTML = html;
    open.forEach((id) => {
      const d = document.getElementById(id);
      if (d) d.open = true;
    });
    let target = focusId ? document.getElementById(focusId) : null;
    if (!target && focusAction) {
      const form = region.querySelector(`form[action="${CSS.escape(focusAction)}"]`);
      target = form ? form.querySelector("button") : null;
    }
    if (target) target.focus();
    body.dispatchEvent(new CustomEvent("waitroom:updated", { detail: { id } }));
  }

  document.addEventListener("focusout", () => {
    setTimeout(() => {
      for (const id of Object.keys(pending)) {
        const region = document.getElementById(id);
        if (region && !(region.contains(document.activeElement) && isTyping(document.activeElement))) {
          const html = pending[id];
          delete pending[id];
          replaceRegion(id, html);
        }
      }
    }, 0);
  });

  // A page in another language gives its words as data-ok / data-lost on #live-state.
  function setState(ok) {
    const el = document.getElementById("live-state");
    if (!el) return;
    el.textContent = ok ? (el.dataset.ok || "Live") : (el.dataset.lost || "Reconnecting…");
    el.classList.toggle("ok", ok);
  }

  function connect() {
    const url = body.dataset.live;
    if (!url || !window.EventSource) return;
    const source = new EventSource(url);
    source.onopen = () => setState(true);
    source.onerror = () => setState(false);
    source.onmessage = (msg) => {
      const regions = JSON.parse(msg.data);
      for (const [id, html] of Object.entries(regions)) replaceRegion(id, html);
      body.dataset.updates = String(Number(body.dataset.updates || 0) + 1);
    };
    // Signed out elsewhere, or the token was revoked: the reload shows the right page.
    source.addEventListener("gone", () => {
      source.close();
      window.location.reload();
    });
  }

  function flash(message, undoSeq, isError) {
    const box = document.getElementById("flash");
    if (!box) return;
    box.textContent = "";
    const p = document.createElement("p");
    if (isError) p.className = "error";
    p.textContent = message;
    const meta = document.querySelector('meta[name="csrf-token"]');
    if (undoSeq && meta) {
      const form = document.createElement("form");
      form.method = "post";
      form.action = `/console/undo/${undoSeq}`;
      form.className = "inline";
      form.dataset.ajax = "";
      const csrf = document.createElement("input");
      csrf.type = "hidden";
      csrf.name = "csrf";
      csrf.value = meta.content;
      const button = document.createElement("button");
      button.type = "submit";
      button.textContent = "Undo";
      form.append(csrf, button);
      p.append(" ", form);
    }
    box.append(p);
  }

  document.addEventListener("submit", async (e) => {
    const form = e.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-ajax")) return;
    e.preventDefault();
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const resp = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        headers: { "X-Requested-With": "fetch" },
        credentials: "same-origin",
      });
      const type = resp.headers.get("Content-Type") || "";
      if (resp.status === 401) {
        window.location.assign("/login");
        return;
      }
      if (type.includes("application/json")) {
        const data = await resp.json();
        if (resp.ok) {
          flash(data.message || "Done.", data.undo, false);
          // A declared emergency must not stay in the form, ready to be declared twice.
          if (form.querySelector("textarea") || form.hasAttribute("data-reset")) form.reset();
        } else {
          flash(data.error || `Refused (${resp.status})`, null, true);
        }
      } else {
        flash((await resp.text()).slice(0, 200) || `Refused (${resp.status})`, null, true);
      }
    } catch (err) {
      flash("Could not reach the server. Check the connection and try again.", null, true);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", connect);
  else connect();
})();
