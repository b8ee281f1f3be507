// The order board: polls orders/feed every 2 seconds with the cursor of the last answer,
// keeps the store's orders by id, and draws them in columns by status. Buttons are the
// actions the server lists for each order (only the transitions allowed from its status).
// Everything is built with textContent: nothing an order holds is read as HTML. No emoji:
// a counter tablet's fonts may have none.
"use strict";
(function () {
  const POLL_MS = 2000;
  const COLUMNS = ["paid", "accepted", "ready", "completed"];
  const STATUS_LABELS = {paid: "新订单", accepted: "制作中", ready: "待取餐", completed: "已完成",
                         refunded: "已退款", closed: "已关闭", created: "未支付"};
  const ACTION_LABELS = {accept: "接单", ready: "出餐", complete: "完成", refund: "退款"};
  const DONE_MESSAGES = {accept: "已接单", ready: "已出餐，等待顾客取餐", complete: "订单已完成", refund: "已退款"};
  const TIME = new Intl.DateTimeFormat("zh-CN", {timeZone: "Asia/Shanghai", hour: "2-digit", minute: "2-digit",
                                                 hour12: false});
  const CLOCK = new Intl.DateTimeFormat("zh-CN", {timeZone: "Asia/Shanghai", hour: "2-digit", minute: "2-digit",
                                                  second: "2-digit", hour12: false});

  const state = {store: "", cursor: null, orders: new Map(), fresh: new Set(), loaded: false, timer: null,
                 polling: false, generation: 0};
  const storeSelect = document.getElementById("store");
  const live = document.getElementById("live");
  const banner = document.getElementById("banner");
  const toastBox = document.getElementById("toast");
  const soundButton = document.getElementById("sound");
  let audio = null;
  let soundOn = localStorage.getItem("mpforge-board-sound") !== "off";
  let toastTimer = null;
  let bannerTimer = null;

  function shortNumber(id) {
    return "#" + id.slice(-4);
  }

  function where(order) {
    if (order.mode === "dine_in") return order.table ? "堂食 · 桌 " + order.table : "堂食";
    if (order.mode === "delivery") return "外送";
    return "自取";
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function yuan(fen) {
    return "¥" + (fen / 100).toFixed(2);
  }

  function card(order) {
    const article = el("article", "card status-" + order.status);
    article.dataset.id = order.id;
    article.dataset.status = order.status;
    if (state.fresh.has(order.id) && order.status === "paid") article.classList.add("new");
    const head = el("header", "card-head");
    head.append(el("span", "no", shortNumber(order.id)), el("span", "where", where(order)),
                el("time", "time", TIME.format(new Date(order.paidAt || order.createdAt))));
    const lines = el("ul", "lines");
    for (const line of order.lines) {
      const item = el("li", "line");
      const name = el("span", "name");
      name.append(el("span", "qty", line.quantity + " ×"), document.createTextNode(" " + line.name));
      if (line.choices.length) name.append(el("span", "choices", line.choices.join(" · ")));
      item.append(name, el("span", "amount", yuan(line.amount)));
      lines.append(item);
    }
    const foot = el("footer", "card-foot");
    foot.append(el("span", "full-id", order.id), el("span", "total", "合计 ¥" + order.totalText));
    article.append(head, lines, foot);
    if (order.status === "refunded" || order.status === "closed") {
      article.append(el("p", "final", STATUS_LABELS[order.status]));
    }
    if (order.actions.length) {
      const actions = el("div", "actions");
      for (const action of order.actions) {
        const button = el("button", "action action-" + action, ACTION_LABELS[action] || action);
        button.type = "button";
        button.dataset.action = action;
        button.addEventListener("click", () => act(order, action, article));
        actions.append(button);
      }
      article.append(actions);
    }
    return article;
  }

  function render() {
    const groups = {paid: [], accepted: [], ready: [], completed: [], closed: []};
    for (const order of state.orders.values()) {
      (groups[order.status] || groups.closed).push(order);
    }
    const byTime = (a, b) => (a.paidAt || a.createdAt).localeCompare(b.paidAt || b.createdAt);
    for (const status of COLUMNS) {
      const column = document.querySelector(`.column[data-column="${status}"]`);
      const list = groups[status].sort(byTime);
      if (status === "completed") list.reverse();  // the latest first: the old ones matter least
      column.querySelector(".count").textContent = String(list.length);
      column.querySelector(".cards").replaceChildren(...list.map(card));
      if (!list.length) column.querySelector(".cards").append(el("p", "empty", "暂无"));
    }
    const closed = groups.closed.sort(byTime).reverse();
    document.querySelector("#closed .count").textContent = String(closed.length);
    document.querySelector('.cards[data-column="closed"]').replaceChildren(...closed.map(card));
    const waiting = groups.paid.length;
    document.title = (waiting ? "(" + waiting + ") " : "") + document.title.replace(/^\(\d+\) /, "");
  }

  function toast(text, kind) {
    toastBox.textContent = text;
    toastBox.dataset.kind = kind || "info";
    toastBox.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toastBox.hidden = true; }, kind === "error" ? 9000 : 4000);
  }

  function beep() {
    if (!soundOn) return;
    try {
      audio = audio || new AudioContext();
      if (audio.state === "suspended") audio.resume();
      [0, 0.25].forEach((delay) => {
        const oscillator = audio.createOscillator();
        const gain = audio.createGain();
        oscillator.frequency.value = 880;
        gain.gain.setValueAtTime(0.25, audio.currentTime + delay);
        gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + delay + 0.2);
        oscillator.connect(gain).connect(audio.destination);
        oscillator.start(audio.currentTime + delay);
        oscillator.stop(audio.currentTime + delay + 0.2);
      });
    } catch (e) {
      // No audio device: the banner and the pulsing card still show it.
    }
  }

  function announce(newOrders) {
    const names = newOrders.map((o) => shortNumber(o.id) + " " + where(o)).join("，");
    banner.textContent = "新订单 " + names;
    banner.hidden = false;
    clearTimeout(bannerTimer);
    bannerTimer = setTimeout(() => { banner.hidden = true; }, 8000);
    beep();
  }

  // Whether anything changed: the cursor's overlap sends recent orders again, and a board
  // redrawn every 2 seconds for nothing would lose a tap landing during the redraw.
  function merge(orders) {
    const arrived = [];
    let changed = false;
    for (const order of orders) {
      const known = state.orders.get(order.id);
      if (state.loaded && !known && order.status === "paid") {
        arrived.push(order);
        state.fresh.add(order.id);
      }
      changed = changed || !known || known.updatedAt !== order.updatedAt || known.status !== order.status;
      state.orders.set(order.id, order);
    }
    if (arrived.length) announce(arrived);
    return changed;
  }

  function fillStores(stores, names) {
    if (storeSelect.options.length === stores.length) return;
    storeSelect.replaceChildren(...stores.map((id) => {
      const option = el("option", "", (names && names[id]) || id);
      option.value = id;
      return option;
    }));
    storeSelect.value = state.store;
  }

  async function poll() {
    if (state.polling) return;
    state.polling = true;
    const generation = state.generation;
    const params = new URLSearchParams();
    if (state.store) params.set("store", state.store);
    if (state.cursor) params.set("since", state.cursor);
    try {
      const response = await fetch("orders/feed?" + params, {credentials: "same-origin", cache: "no-store"});
      if (response.status === 401) {
        window.location.reload();  // the session expired: the login form
        return;
      }
      const body = await response.json();
      if (response.status === 404 && body.error && body.error.code === "unknown_store") {
        state.store = "";  // a store remembered from another shop, or removed: the first store
        localStorage.removeItem("mpforge-board-store");
        return;
      }
      if (!response.ok) throw new Error(body.error ? body.error.message : String(response.status));
      if (generation !== state.generation) return;  // the store changed meanwhile
      state.store = body.store;
      fillStores(body.stores, body.storeNames);
      const changed = merge(body.orders);
      state.cursor = body.cursor;
      if (changed || !state.loaded) render();
      state.loaded = true;
      live.dataset.state = "ok";
      live.textContent = "● 实时更新 " + CLOCK.format(new Date());
    } catch (e) {
      live.dataset.state = "error";
      live.textContent = "● 连接中断，正在重试…";
    } finally {
      state.polling = false;
    }
  }

  function reload() {
    state.generation += 1;
    state.cursor = null;
    state.orders.clear();
    state.fresh.clear();
    state.loaded = false;
    state.polling = false;
    return poll();
  }

  async function act(order, action, article) {
    if (action === "refund") {
      const question = "确认给订单 " + shortNumber(order.id) + "（" + where(order) + "）退款 ¥" + order.totalText +
                       "？\n钱款将原路退回顾客的支付宝，退款后不能撤销。";
      if (!window.confirm(question)) return;
    }
    article.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    article.classList.add("busy");
    let response = null;
    let body = null;
    try {
      response = await fetch("orders/" + encodeURIComponent(order.id) + "/" + action,
                             {method: "POST", credentials: "same-origin", cache: "no-store"});
      body = await response.json().catch(() => null);
    } catch (e) {
      toast("连不上服务器，操作没有完成，请重试。", "error");
    }
    if (response && response.ok && body) {
      state.fresh.delete(order.id);
      state.orders.set(body.order.id, body.order);
      toast(shortNumber(order.id) + " " + DONE_MESSAGES[action]);
    } else if (response && response.status === 409 && body) {
      state.orders.set(body.order.id, body.order);
      toast("订单 " + shortNumber(order.id) + " 已被其他设备处理，现在是「" + STATUS_LABELS[body.order.status] +
            "」，看板已刷新。", "error");
      await reload();
      return;
    } else if (response && response.status === 401) {
      window.location.reload();
      return;
    } else if (response && body && body.error) {
      const error = body.error;
      const text = error.code === "alipay_refused"
        ? "退款失败，支付宝的原因：" + error.message + (error.alipaySubCode ? "（" + error.alipaySubCode + "）" : "")
        : error.code === "alipay_unavailable" ? "支付宝暂时没有响应，订单没有变化，请稍后重试退款。" : error.message;
      toast(text, "error");
    } else if (response) {
      toast("操作失败（" + response.status + "），请重试。", "error");
    }
    render();
  }

  function showSound() {
    soundButton.textContent = soundOn ? "提示音：开" : "提示音：关";
    soundButton.dataset.on = String(soundOn);
  }

  soundButton.addEventListener("click", () => {
    soundOn = !soundOn;
    localStorage.setItem("mpforge-board-sound", soundOn ? "on" : "off");
    showSound();
    if (soundOn) beep();
  });
  // Browsers start audio only after a tap: the first one anywhere unlocks the cue.
  document.addEventListener("pointerdown", () => {
    if (soundOn && !audio) {
      try { audio = new AudioContext(); } catch (e) { /* no audio */ }
    }
  }, {once: true});
  storeSelect.addEventListener("change", () => {
    state.store = storeSelect.value;
    localStorage.setItem("mpforge-board-store", state.store);
    const url = new URL(window.location.href);
    url.searchParams.set("store", state.store);
    window.history.replaceState(null, "", url);
    reload();
  });
  document.getElementById("logout").addEventListener("click", async () => {
    await fetch("logout", {method: "POST", credentials: "same-origin"}).catch(() => null);
    window.location.reload();
  });

  state.store = new URLSearchParams(window.location.search).get("store") ||
                localStorage.getItem("mpforge-board-store") || "";
  showSound();
  poll();
  state.timer = setInterval(poll, POLL_MS);
})();
