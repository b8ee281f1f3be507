// The customer view: the funnel of the chosen days (customers/funnel) as numbers and as
// Chart.js bar charts per channel and per entry point, the segments with CSV export and
// the push to 棋盘密云, and the most recent customers. Everything is built with
// textContent: nothing a customer or the spec holds is read as HTML.
"use strict";
(function () {
  const STEP_COLORS = ["#1677ff", "#13c2c2", "#fa8c16", "#722ed1", "#52c41a"];
  const DAY_MS = 24 * 3600 * 1000;
  const CHINA_DATE = new Intl.DateTimeFormat("en-CA", {timeZone: "Asia/Shanghai"});  // YYYY-MM-DD
  const CHINA_TIME = new Intl.DateTimeFormat("zh-CN", {timeZone: "Asia/Shanghai", month: "2-digit", day: "2-digit",
                                                       hour: "2-digit", minute: "2-digit", hour12: false});
  const charts = {};
  const fromInput = document.getElementById("from");
  const toInput = document.getElementById("to");
  const banner = document.getElementById("banner");
  const toastBox = document.getElementById("toast");
  let segmentNames = {};
  let toastTimer = null;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function toast(text) {
    toastBox.textContent = text;
    toastBox.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { toastBox.hidden = true; }, 3000);
  }

  async function getJson(path) {
    const response = await fetch(path, {credentials: "same-origin", cache: "no-store"});
    if (response.status === 401) {
      location.reload();  // the session expired: the server answers the login form
      throw new Error("login required");
    }
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? body.error.message : "HTTP " + response.status);
    return body;
  }

  function showError(error) {
    banner.textContent = "读取失败：" + error.message;
    banner.hidden = false;
  }

  function rate(part, whole) {
    return whole ? Math.round((part / whole) * 100) + "%" : "—";
  }

  function drawTotal(data) {
    const list = document.getElementById("total");
    list.replaceChildren();
    data.steps.forEach(function (step, i) {
      const item = el("li", "step");
      item.dataset.step = step.id;
      item.append(el("span", "name", step.name), el("span", "value", data.total[i]));
      item.append(el("span", "rate", i === 0 ? "访客" : "占访客 " + rate(data.total[i], data.total[0])));
      list.append(item);
    });
  }

  function drawTable(id, data, groups) {
    const table = document.getElementById(id);
    table.replaceChildren();
    const head = el("tr");
    head.append(el("th", "", id === "channel-table" ? "渠道" : "入口"));
    data.steps.forEach(function (step) { head.append(el("th", "", step.name)); });
    table.append(head);
    if (!groups.length) {
      const row = el("tr");
      const cell = el("td", "empty", "这段时间没有访客");
      cell.colSpan = data.steps.length + 1;
      row.append(cell);
      table.append(row);
    }
    groups.forEach(function (group) {
      const row = el("tr");
      row.dataset.key = group.key;
      row.append(el("td", "", group.name));
      group.counts.forEach(function (count) { row.append(el("td", "", count)); });
      table.append(row);
    });
  }

  function drawChart(id, data, groups) {
    const config = {
      type: "bar",
      data: {
        labels: groups.map(function (g) { return g.name; }),
        datasets: data.steps.map(function (step, i) {
          return {label: step.name, data: groups.map(function (g) { return g.counts[i]; }),
                  backgroundColor: STEP_COLORS[i % STEP_COLORS.length]};
        }),
      },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        scales: {y: {beginAtZero: true, grace: "10%", ticks: {precision: 0}}},
        plugins: {legend: {position: "bottom"}},
      },
    };
    if (charts[id]) charts[id].destroy();
    charts[id] = new Chart(document.getElementById(id), config);
  }

  async function loadFunnel() {
    const query = "?from=" + encodeURIComponent(fromInput.value) + "&to=" + encodeURIComponent(toInput.value);
    const data = await getJson("customers/funnel" + query);
    document.getElementById("period-text").textContent = data.from === data.to ? data.from : data.from + " 至 " + data.to;
    drawTotal(data);
    drawTable("channel-table", data, data.channels);
    drawTable("entry-table", data, data.entryPoints);
    drawChart("channel-chart", data, data.channels);
    drawChart("entry-chart", data, data.entryPoints);
    document.body.dataset.funnel = "ready";
  }

  function crowdText(crowd) {
    if (!crowd) return "尚未推送到棋盘密云";
    return "棋盘人群 " + crowd.code + " · " + crowd.users + " 人 · " + CHINA_TIME.format(new Date(crowd.pushedAt)) + " 推送";
  }

  function segmentRow(segment) {
    const row = el("div", "segment");
    row.dataset.id = segment.id;
    row.append(el("span", "name", segment.name), el("span", "size", segment.count), el("span", "", "人"));
    if (segment.description) row.append(el("span", "desc", segment.description));
    const crowd = el("span", "crowd", crowdText(segment.crowd));
    const actions = el("span", "actions");
    const csv = el("a", "button export", "导出 CSV");
    csv.href = "customers/segments/" + encodeURIComponent(segment.id) + ".csv";
    csv.setAttribute("download", "");
    const push = el("button", "push", "推送到棋盘密云");
    push.type = "button";
    const result = el("span", "result");
    push.addEventListener("click", function () { pushSegment(segment, push, result, crowd); });
    actions.append(csv, push);
    row.append(crowd, actions, result);
    return row;
  }

  async function pushSegment(segment, button, result, crowd) {
    button.disabled = true;
    result.className = "result";
    result.textContent = "推送中…";
    try {
      const response = await fetch("customers/segments/" + encodeURIComponent(segment.id) + "/push",
                                   {method: "POST", credentials: "same-origin"});
      const body = await response.json();
      if (!response.ok) throw new Error(body.error ? body.error.message : "HTTP " + response.status);
      let text = (body.created ? "已创建人群 " : "已更新人群 ") + body.crowdCode + "：新增 " + body.added + " 人，移除 " +
        body.removed + " 人，现有 " + body.inCrowd + " 人。";
      if (body.unpushable) text += " " + body.unpushable + " 人无法推送（" + body.unpushableReason + "）";
      result.textContent = text;
      crowd.textContent = crowdText({code: body.crowdCode, users: body.inCrowd, pushedAt: new Date().toISOString()});
      toast("已推送到棋盘密云");
    } catch (error) {
      result.className = "result error";
      result.textContent = "推送失败：" + error.message;
    } finally {
      button.disabled = false;
    }
  }

  async function loadSegments() {
    const data = await getJson("customers/segments");
    const box = document.getElementById("segments");
    box.replaceChildren();
    segmentNames = {};
    data.segments.forEach(function (segment) {
      segmentNames[segment.id] = segment.name;
      box.append(segmentRow(segment));
    });
    if (!data.segments.length) box.append(el("p", "empty", "规格文件没有定义分群（membership.segments）"));
  }

  async function loadCustomers() {
    const data = await getJson("customers/list");
    document.getElementById("customer-count").textContent = "共 " + data.total + " 人" +
      (data.total > data.customers.length ? "，显示最近到访的 " + data.customers.length + " 人" : "");
    const body = document.getElementById("customers");
    body.replaceChildren();
    data.customers.forEach(function (customer) {
      const row = el("tr");
      row.dataset.user = customer.user;
      row.append(el("td", "user", customer.user));
      row.append(el("td", customer.member ? "yes" : "", customer.member ? "会员" : "—"));
      row.append(el("td", "", customer.levelName || "—"), el("td", "", customer.points),
                 el("td", "", customer.paidOrders), el("td", "", CHINA_TIME.format(new Date(customer.lastVisit))));
      const tags = el("td", "tags");
      customer.segments.forEach(function (id) { tags.append(el("span", "tag", segmentNames[id] || id)); });
      row.append(tags);
      body.append(row);
    });
    if (!data.customers.length) {
      const row = el("tr");
      const cell = el("td", "empty", "还没有顾客登录过小程序");
      cell.colSpan = 7;
      row.append(cell);
      body.append(row);
    }
  }

  function setDays(days) {
    const now = Date.now();
    toInput.value = CHINA_DATE.format(new Date(now));
    fromInput.value = CHINA_DATE.format(new Date(now - (days - 1) * DAY_MS));
  }

  async function refresh() {
    banner.hidden = true;
    try {
      await loadFunnel();
      await loadSegments();
      await loadCustomers();
    } catch (error) {
      showError(error);
    }
  }

  document.getElementById("period").addEventListener("submit", function (event) {
    event.preventDefault();
    refresh();
  });
  document.querySelectorAll("[data-days]").forEach(function (button) {
    button.addEventListener("click", function () {
      setDays(Number(button.dataset.days));
      refresh();
    });
  });
  document.getElementById("logout").addEventListener("click", async function () {
    await fetch("logout", {method: "POST", credentials: "same-origin"});
    location.reload();
  });

  const params = new URLSearchParams(location.search);
  if (params.get("from") && params.get("to")) {
    fromInput.value = params.get("from");
    toInput.value = params.get("to");
  } else {
    setDays(1);
  }
  refresh();
})();
