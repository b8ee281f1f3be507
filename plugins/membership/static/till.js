// The till's stamp code: polls till/code every 1.5 seconds with the nonce of the code it
// shows; the server answers the current code (the same one until it is scanned or
// expires, then a new one). A scanned code shows 已集点 for a moment. The QR is an SVG
// data: URI from the server; everything else is set with textContent.
"use strict";
(function () {
  const POLL_MS = 1500;
  const STAMPED_MS = 2500;
  const storeSelect = document.getElementById("store");
  const live = document.getElementById("live");
  const qr = document.getElementById("qr");
  const stamped = document.getElementById("stamped");
  const seconds = document.getElementById("seconds");
  const bar = document.getElementById("bar");
  const state = {store: localStorage.getItem("mpforge-till-store") || "", nonce: "", expiresAt: 0, codeSeconds: 30,
                 generation: 0, polling: false};
  let stampedTimer = null;

  function setLive(kind, text) {
    live.dataset.state = kind;
    live.textContent = text;
  }

  function showStores(stores, names) {
    if (storeSelect.options.length === stores.length) return;
    storeSelect.replaceChildren();
    for (const id of stores) {
      const option = document.createElement("option");
      option.value = id;
      option.textContent = names[id] || id;
      storeSelect.append(option);
    }
    storeSelect.value = state.store;
  }

  function showStamped() {
    stamped.hidden = false;
    clearTimeout(stampedTimer);
    stampedTimer = setTimeout(() => { stamped.hidden = true; }, STAMPED_MS);
  }

  function tick() {
    const left = Math.max(0, Math.round((state.expiresAt - Date.now()) / 1000));
    seconds.textContent = state.expiresAt ? String(left) : "--";
    bar.style.width = state.expiresAt ? Math.min(100, (100 * left) / state.codeSeconds) + "%" : "0%";
  }

  async function poll() {
    if (state.polling) return;  // one request at a time: an older answer must not bring back a used code
    state.polling = true;
    try {
      await pollOnce();
    } finally {
      state.polling = false;
    }
  }

  async function pollOnce() {
    const generation = state.generation;
    const query = new URLSearchParams({since: state.nonce});
    if (state.store) query.set("store", state.store);
    try {
      const response = await fetch("till/code?" + query, {credentials: "same-origin", cache: "no-store"});
      if (response.status === 401) {
        window.location.reload();  // the session ended: the server shows the login form
        return;
      }
      const body = await response.json();
      if (!response.ok && body && body.error && body.error.code === "unknown_store") {
        state.store = "";  // a store remembered on this device that the shop no longer has
        localStorage.removeItem("mpforge-till-store");
      }
      if (!response.ok) throw new Error(body && body.error ? body.error.message : String(response.status));
      if (generation !== state.generation) return;  // the store changed meanwhile
      state.store = body.store;
      showStores(body.stores, body.storeNames);
      if (body.used) showStamped();
      if (body.nonce !== state.nonce) {
        state.nonce = body.nonce;
        qr.src = body.qr;
        qr.dataset.nonce = body.nonce;
        qr.hidden = false;
      }
      // The server's seconds left, counted down by this device's clock (which may be off).
      state.expiresAt = Date.now() + body.secondsLeft * 1000;
      state.codeSeconds = body.codeSeconds;
      setLive("ok", "实时更新");
      tick();
    } catch (error) {
      setLive("error", "连接中断，正在重试…");
    }
  }

  storeSelect.addEventListener("change", () => {
    state.store = storeSelect.value;
    state.nonce = "";
    state.generation += 1;  // an answer in flight for the other store is dropped; the next poll asks anew
    localStorage.setItem("mpforge-till-store", state.store);
  });

  document.getElementById("logout").addEventListener("click", async () => {
    await fetch("logout", {method: "POST", credentials: "same-origin"}).catch(() => null);
    window.location.reload();
  });

  poll();
  setInterval(poll, POLL_MS);
  setInterval(tick, 1000);
})();
