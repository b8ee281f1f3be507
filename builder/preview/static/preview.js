// mpforge preview shell. The page HTML comes pre-rendered and escaped from mpforge
// (builder/preview); this script places it, navigates, and follows live rebuilds.
// Static previews embed everything in #mpforge-data and run no page script: taps follow
// the links resolved at build time. `mpforge dev` serves JSON, pushes builds over
// Server-Sent Events and loads runtime.js first, which runs the pages' scripts: each
// page shown then has a live instance (entry.inst) whose handlers the taps call.
(function () {
  'use strict';

  var embedded = document.getElementById('mpforge-data');
  var STATIC = embedded ? JSON.parse(embedded.textContent) : null;
  var $ = function (id) { return document.getElementById(id); };

  var state = {
    app: null,        // app model of the build shown
    shown: -1,        // version of the build shown
    entry: null,      // the page shown: {path, query, inst, tab}
    stack: [],        // entries to go back to
    tabs: {},         // the tab pages' entries, by path: they stay loaded
    latest: null,     // newest build message not yet applied
    busy: false,
    dismissed: -1,    // version whose error overlay was closed
  };

  var screenEl = $('mpf-screen');
  var host = $('mpf-page-host');
  var shadow = host.attachShadow({ mode: 'open' });
  var sheets = { base: new CSSStyleSheet(), app: new CSSStyleSheet(), page: new CSSStyleSheet() };
  shadow.adoptedStyleSheets = [sheets.base, sheets.app, sheets.page];
  var root = document.createElement('div');
  root.className = 'mp-root';
  shadow.appendChild(root);
  var timers = [];

  // --- data ---------------------------------------------------------------------------

  function getJSON(url) {
    return fetch(url, { cache: 'no-store' }).then(function (r) {
      if (!r.ok) { throw new Error(url + ': ' + r.status); }
      return r.json();
    });
  }

  function loadStatus() {
    if (STATIC) { return Promise.resolve({ version: 0, ok: true, problems: [], app: STATIC.app }); }
    return getJSON('/__mpforge/app');
  }

  function loadPage(path) {
    if (STATIC) { return Promise.resolve(STATIC.pages[path] || null); }
    return getJSON('/__mpforge/page?path=' + encodeURIComponent(path)).catch(function () { return null; });
  }

  // --- rendering ------------------------------------------------------------------------

  function replaceSheet(sheet, css) {
    try { sheet.replaceSync(css || ''); } catch (e) { console.warn('mpforge preview: stylesheet', e); }
  }

  function applyApp(app) {
    state.app = app;
    if (sheets.baseText !== app.baseCss) { replaceSheet(sheets.base, app.baseCss); sheets.baseText = app.baseCss; }
    replaceSheet(sheets.app, app.css);
    $('mpf-app-name').textContent = app.name;
    document.title = app.name + ' · mpforge preview';
    renderPageList();
  }

  function pageInfo(path) {
    var pages = state.app ? state.app.pages : [];
    for (var i = 0; i < pages.length; i++) { if (pages[i].path === path) { return pages[i]; } }
    return null;
  }

  function currentPath() { return state.entry ? state.entry.path : null; }

  function renderPageList() {
    var list = $('mpf-pages');
    list.textContent = '';
    state.app.pages.forEach(function (page) {
      var li = document.createElement('li');
      var button = document.createElement('button');
      button.type = 'button';
      button.dataset.path = page.path;
      if (page.path === currentPath()) { button.setAttribute('aria-current', 'page'); }
      var title = document.createElement('span');
      title.textContent = page.title;
      if (page.tab) {
        var badge = document.createElement('span');
        badge.className = 'mpf-tab-badge';
        badge.textContent = 'tab';
        title.appendChild(badge);
      }
      var path = document.createElement('span');
      path.className = 'mpf-page-path';
      path.textContent = page.path;
      button.appendChild(title);
      button.appendChild(path);
      button.addEventListener('click', function () { go(page.path, '', 'reLaunch'); });
      li.appendChild(button);
      list.appendChild(li);
    });
  }

  function renderTabBar(path) {
    var bar = $('mpf-tabbar');
    var tab = state.app.tabBar;
    var info = pageInfo(path);
    bar.textContent = '';
    if (!tab || !info || !info.tab) { bar.hidden = true; return false; }
    bar.hidden = false;
    bar.style.setProperty('--mpf-tab-bg', tab.backgroundColor);
    bar.style.setProperty('--mpf-tab-fg', tab.textColor);
    bar.style.setProperty('--mpf-tab-active', tab.selectedColor);
    tab.items.forEach(function (item) {
      var selected = item.pagePath === path;
      var button = document.createElement('button');
      button.type = 'button';
      button.dataset.path = item.pagePath;
      button.setAttribute('role', 'tab');
      button.setAttribute('aria-selected', selected ? 'true' : 'false');
      var src = selected ? (item.activeIcon || item.icon) : item.icon;
      if (src) {
        var img = document.createElement('img');
        img.src = src;
        img.alt = '';
        button.appendChild(img);
      }
      var label = document.createElement('span');
      label.textContent = item.name;
      button.appendChild(label);
      button.addEventListener('click', function () { switchTab(item.pagePath); });
      bar.appendChild(button);
    });
    return true;
  }

  function renderWarnings(page) {
    var box = $('mpf-warnings');
    var items = (state.app.warnings || []).concat(page ? page.warnings : []);
    var list = box.querySelector('ul');
    list.textContent = '';
    items.forEach(function (text) {
      var li = document.createElement('li');
      li.textContent = text;
      list.appendChild(li);
    });
    box.hidden = items.length === 0;
  }

  // Show state.entry: its page model (title, styles, tab bar) and its HTML: the build's
  // render of the page's initial data, or, for a page whose script runs, of its data now.
  function show(keepScroll) {
    var entry = state.entry;
    var path = entry.path;
    return loadPage(path).then(function (page) {
      if (!page) { toast('This app has no page ' + path); return null; }
      if (entry !== state.entry) { return null; }  // navigated away meanwhile
      var html = runtime && entry.inst ? runtime.renderHtml(entry.inst).catch(function () { return page.html; })
        : Promise.resolve(page.html);
      return html.then(function (body) {
        if (entry !== state.entry) { return; }
        placePage(page, body, keepScroll);
        if (runtime && !entry.inst) {
          entry.inst = runtime.open(path, entry.query);
        }
      });
    });
  }

  function placePage(page, body, keepScroll) {
    var path = page.path;
    var sameSpot = keepScroll && document.body.dataset.page === path;
    replaceSheet(sheets.page, page.css);
    placeHtml(body, sameSpot);
    var nav = $('mpf-phone');
    nav.style.setProperty('--mpf-nav-bg', page.navBackground);
    nav.style.setProperty('--mpf-nav-fg', page.navColor);
    $('mpf-title').textContent = page.title;
    $('mpf-back').hidden = state.stack.length === 0;
    screenEl.style.background = page.background;
    var tabs = renderTabBar(path);
    var screenHeight = 812 - 88 - (tabs ? 56 : 0);
    host.style.setProperty('--mp-vh', (screenHeight / 100) + 'px');
    renderPageList();
    renderWarnings(page);
    if (location.hash !== '#' + path) { history.replaceState(null, '', '#' + path); }
    document.body.dataset.page = path;
  }

  // The page's HTML, replaced in place (a setData render keeps the scroll position). The
  // same HTML again (a setData that changed nothing shown) leaves the page as it is.
  var placed = null;
  function placeHtml(body, keepScroll) {
    if (keepScroll && body === placed) { return; }
    placed = body;
    var scroll = screenEl.scrollTop;
    timers.forEach(clearInterval);
    timers = [];
    root.innerHTML = body;  // escaped by mpforge's renderer
    screenEl.scrollTop = keepScroll ? scroll : 0;
    startSwipers();
    if (runtime) { runtime.decorate(root); } else { showWebViewAddress(); }
  }

  // A web-view page gets its address from the query it was opened with (?url=...); with
  // the runtime, the page's own script sets it.
  function showWebViewAddress() {
    var match = /(?:^|&)url=([^&]*)/.exec((state.entry && state.entry.query) || '');
    var label = root.querySelector('.mp-web-view-src');
    if (!match || !label) { return; }
    try { label.textContent = decodeURIComponent(match[1]); } catch (e) { /* leave the placeholder */ }
  }

  function startSwipers() {
    root.querySelectorAll('.mp-swiper').forEach(function (swiper) {
      var track = swiper.querySelector('.mp-swiper-track');
      var dots = swiper.querySelectorAll('.mp-swiper-dot');
      if (!track) { return; }
      var current = function () { return Math.round(track.scrollLeft / Math.max(1, track.clientWidth)); };
      track.addEventListener('scroll', function () {
        var i = current();
        dots.forEach(function (dot, j) { dot.classList.toggle('mp-swiper-dot-active', i === j); });
      });
      if (swiper.hasAttribute('data-mp-autoplay')) {
        var interval = Math.max(1000, parseInt(swiper.getAttribute('data-mp-interval'), 10) || 5000);
        timers.push(setInterval(function () {
          var count = track.children.length;
          if (count < 2) { return; }
          var next = (current() + 1) % count;
          track.scrollTo({ left: next * track.clientWidth, behavior: 'smooth' });
        }, interval));
      }
    });
  }

  // --- navigation --------------------------------------------------------------------

  function switchTab(path) { return go(path, '', 'switchTab'); }

  // Open a page: 'navigate' pushes it over the current one, 'redirect' replaces the
  // current one, 'switchTab' (and opening any tab page) closes the pages over the tabs,
  // 'reLaunch' closes every page. A closed page's instance is unloaded; tab pages stay
  // loaded (hidden) until a reLaunch, as in the mini-program.
  function go(path, query, how) {
    var leaving = state.entry;
    var tab = Boolean((pageInfo(path) || {}).tab);
    if (how === 'switchTab' || how === 'reLaunch' || tab) {
      var relaunch = how === 'reLaunch';
      state.stack.concat(leaving ? [leaving] : []).forEach(function (entry) {
        if (!entry.tab || relaunch) { unload(entry); }
        else if (entry === leaving && entry.path !== path && runtime && entry.inst) { runtime.hide(entry.inst); }
      });
      state.stack = [];
      if (relaunch) {
        Object.keys(state.tabs).forEach(function (key) { unload(state.tabs[key]); });
        state.tabs = {};
      }
      var kept = tab ? state.tabs[path] : null;
      if (kept) {
        state.entry = kept;
        if (runtime && kept.inst && kept !== leaving) { runtime.show(kept.inst); }
        return show();
      }
    } else if (how === 'redirect' || !leaving) {
      unload(leaving);
    } else {
      if (runtime && leaving.inst) { runtime.hide(leaving.inst); }
      state.stack.push(leaving);
    }
    state.entry = { path: path, query: query || '', inst: null, tab: tab };
    if (tab) { state.tabs[path] = state.entry; }
    return show();
  }

  function unload(entry) {
    if (runtime && entry && entry.inst) { runtime.unload(entry.inst); }
  }

  function open(url, how) {
    var path = String(url || '').replace(/^\//, '').split('?')[0];
    if (!pageInfo(path)) { toast('Not a page of this app: ' + url); return false; }
    go(path, String(url || '').split('?')[1] || '', how);
    return true;
  }

  function back(delta) {
    var steps = Math.min(delta || 1, state.stack.length);
    if (steps < 1) { return; }
    unload(state.entry);
    for (var i = 1; i < steps; i++) { unload(state.stack.pop()); }
    state.entry = state.stack.pop();
    if (runtime && state.entry.inst) { runtime.show(state.entry.inst); }
    show();
  }

  function followLink(link) {
    if (link.kind === 'tab') { open(link.url, 'switchTab'); }
    else if (link.kind === 'page') { open(link.url, 'navigate'); }
    else if (link.kind === 'phone') { toast('📞 Call ' + link.number); }
    else if (link.kind === 'map') { toast('📍 Map: ' + (link.name || '') + ' ' + (link.address || '')); }
    else { toast('Link: ' + JSON.stringify(link)); }
  }

  // A tap in the page. With the runtime, the page's handlers take it; a <navigator> (no
  // script) is followed here either way. Without it, links resolved at build time are
  // followed and other handlers say they run in the mini-program.
  shadow.addEventListener('click', function (event) {
    try {
      if (runtime && state.entry && state.entry.inst && runtime.tap(event.target, state.entry.inst, root)) {
        event.preventDefault();
        return;
      }
      var el = event.target.closest('[data-mp-link], [data-mp-nav], [data-mp-on-tap], [data-mp-catch-tap], ' +
        '.mp-lifestyle, [data-mp-component]');
      if (!el) { return; }
      event.preventDefault();
      if (el.dataset.mpNav) {
        var nav = JSON.parse(el.dataset.mpNav);
        if (nav.openType === 'navigateBack') { back(1); } else { open(nav.url, nav.openType); }
      } else if (runtime) {
        return;  // a handler the page does not have was reported by the runtime
      } else if (el.dataset.mpLink) { followLink(JSON.parse(el.dataset.mpLink)); }
      else {
        var what = el.dataset.mpOnTap || el.dataset.mpCatchTap || el.dataset.mpComponent || 'lifestyle follow';
        toast(what + ': runs in the mini-program');
      }
    } catch (e) { console.warn('mpforge preview: tap', e); }
  });
  $('mpf-back').addEventListener('click', function () { back(1); });

  var toastTimer = null;
  function toast(text) {
    var el = $('mpf-toast');
    el.textContent = text;
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { el.hidden = true; }, 2200);
  }

  // --- build status and errors ------------------------------------------------------

  function setStatus(text, kind) {
    var el = $('mpf-status');
    el.textContent = text;
    el.dataset.kind = kind;
  }

  var OVERLAY_DELAY = 200;  // ms
  var overlayTimer = null;

  function showProblems(version, problems) {
    var list = $('mpf-problems');
    list.textContent = '';
    problems.forEach(function (p) {
      var li = document.createElement('li');
      var where = [p.file, p.line, p.column].filter(function (x) { return x !== null && x !== undefined; }).join(':');
      if (where) {
        var loc = document.createElement('span');
        loc.className = 'mpf-problem-location';
        loc.textContent = where;
        li.appendChild(loc);
        li.appendChild(document.createTextNode(': '));
      }
      if (p.path) {
        var path = document.createElement('span');
        path.className = 'mpf-problem-path';
        path.textContent = p.path;
        li.appendChild(path);
        li.appendChild(document.createTextNode(': '));
      }
      li.appendChild(document.createTextNode(p.message));
      if (p.hint) {
        var hint = document.createElement('span');
        hint.className = 'mpf-problem-hint';
        hint.textContent = p.hint;
        li.appendChild(hint);
      }
      list.appendChild(li);
    });
    // Shown after a short pause, so that saving many times in a row (auto-save while
    // typing) does not flash it for states that are fixed a moment later.
    clearTimeout(overlayTimer);
    overlayTimer = setTimeout(function () { $('mpf-overlay').hidden = state.dismissed === version; },
      $('mpf-overlay').hidden ? OVERLAY_DELAY : 0);
    document.body.dataset.state = 'error';
    setStatus('build failed: ' + problems.length + ' problem' + (problems.length === 1 ? '' : 's'), 'error');
  }

  function hideProblems() {
    clearTimeout(overlayTimer);
    $('mpf-overlay').hidden = true;
    document.body.dataset.state = 'ok';
  }

  $('mpf-overlay-close').addEventListener('click', function () {
    state.dismissed = Number(document.body.dataset.build);
    $('mpf-overlay').hidden = true;
  });

  // Apply the newest build message; messages that arrive meanwhile replace each other.
  function onBuild(message) {
    state.latest = message;
    if (!state.busy) { drain(); }
  }

  function drain() {
    var message = state.latest;
    if (!message) { state.busy = false; return; }
    state.latest = null;
    state.busy = true;
    apply(message).catch(function (e) { console.warn('mpforge preview: update', e); }).then(drain);
  }

  function apply(message) {
    document.body.dataset.build = message.version;
    if (!message.ok) {
      showProblems(message.version, message.problems);
      return Promise.resolve();
    }
    if (message.version === state.shown) {
      hideProblems();
      setStatus('up to date · build ' + message.version, 'ok');
      return Promise.resolve();
    }
    return loadStatus().then(function (status) {
      if (!status.app) { return null; }
      applyApp(status.app);
      return configureRuntime(status).then(function (restarted) {
        var path = state.entry && pageInfo(state.entry.path) ? state.entry.path : pickStart();
        var stale = restarted || message.since !== state.shown || message.appChanged || path !== currentPath()
          || (message.changed || []).indexOf(path) >= 0;
        state.stack = state.stack.filter(function (entry) { return pageInfo(entry.path); });
        if (path !== currentPath()) { return go(path, '', 'reLaunch'); }
        return stale ? show(true) : null;
      }).then(function () {
        state.shown = status.app.version;
        document.body.dataset.version = state.shown;
        if (status.ok) {
          hideProblems();
          setStatus(STATIC ? 'static preview' : 'up to date · build ' + state.shown, 'ok');
        } else {
          showProblems(status.version, status.problems);
        }
      });
    });
  }

  function pickStart() {
    var wanted = decodeURIComponent(location.hash.replace(/^#/, ''));
    return pageInfo(wanted) ? wanted : state.app.entry;
  }

  function connect() {
    var source = new EventSource('/__mpforge/events');
    source.addEventListener('build', function (event) { onBuild(JSON.parse(event.data)); });
    source.onerror = function () { setStatus('disconnected; retrying…', 'offline'); };
  }

  function start() {
    loadStatus().then(function (status) {
      if (status.app) {
        onBuild({ version: status.app.version, ok: true, since: null, appChanged: true, changed: [] });
      } else {
        root.innerHTML = '<p class="mpf-empty">No successful build yet.</p>';
      }
      if (!status.ok) { onBuild({ version: status.version, ok: false, problems: status.problems }); }
      if (!STATIC) { connect(); }
    }).catch(function (e) {
      setStatus('cannot reach mpforge dev: ' + e.message, 'offline');
      if (!STATIC) { setTimeout(start, 1000); }
    });
  }

  window.addEventListener('hashchange', function () {
    var wanted = decodeURIComponent(location.hash.replace(/^#/, ''));
    if (state.app && pageInfo(wanted) && wanted !== currentPath()) { go(wanted, '', 'reLaunch'); }
  });

  // --- the runtime (mpforge dev only) ------------------------------------------------------

  var runtime = null;

  // A build's scripts and back end for the runtime. When its scripts changed the app
  // starts again: every page instance is unloaded and made anew when shown.
  function configureRuntime(status) {
    if (!runtime || !status.runtime) { return Promise.resolve(false); }
    showBackend(status.runtime.backend);
    showLocations(status.runtime.stores || []);
    return runtime.configure(status.runtime, status.app).then(function (restarted) {
      if (restarted) {
        var tabs = Object.keys(state.tabs).map(function (key) { return state.tabs[key]; });
        state.stack.concat(state.entry ? [state.entry] : [], tabs).forEach(function (entry) {
          unload(entry);
          entry.inst = null;
        });
      }
      return restarted;
    });
  }

  // The Location choices: a spot about 60 m from each store of the spec, or refused.
  // The choice is kept across reloads while that spot is still offered; the first store
  // is the default.
  function showLocations(stores) {
    var select = $('mpf-location');
    if (!select) { return; }
    var saved = localStorage.getItem('mpforge-preview:location');
    while (select.options.length > 1) { select.remove(1); }
    stores.forEach(function (store) {
      var option = document.createElement('option');
      option.value = JSON.stringify({ lat: Math.round((store.lat + 0.0004) * 1e6) / 1e6,
        lng: Math.round((store.lng + 0.0004) * 1e6) / 1e6, store: store.id });
      option.textContent = 'near ' + store.name;
      select.appendChild(option);
    });
    var values = Array.prototype.map.call(select.options, function (o) { return o.value; });
    select.value = saved !== null && values.indexOf(saved) >= 0 ? saved : (values[1] || '');
  }

  function showBackend(backend) {
    var el = $('mpf-backend');
    if (!el) { return; }
    if (backend && backend.running) {
      el.textContent = 'page scripts run; my.request to ' + backend.base + ' reaches the local back end (sandbox)';
      el.dataset.kind = 'ok';
    } else {
      el.textContent = 'page scripts run; no back end' + (backend && backend.note ? ': ' + backend.note : '');
      el.dataset.kind = 'offline';
    }
  }

  function runtimeLog(text, kind) {
    var list = $('mpf-log');
    var item = document.createElement('li');
    item.dataset.kind = kind;
    item.textContent = text;
    list.appendChild(item);
    while (list.children.length > 60) { list.removeChild(list.firstChild); }
    list.scrollTop = list.scrollHeight;
  }

  function phoneToast(icon, text) {
    var el = $('mpf-ptoast');
    el.querySelector('.mpf-ptoast-icon').textContent = icon;
    el.querySelector('.mpf-ptoast-text').textContent = text;
    el.hidden = false;
  }

  if (!STATIC && window.MpforgeRuntime && $('mpf-runtime')) {
    var USER_KEY = 'mpforge-preview:sandbox-user';
    var userSelect = $('mpf-user');
    var savedUser = localStorage.getItem(USER_KEY);
    if (savedUser !== null) { userSelect.value = savedUser; }
    // Another user is another phone: the app's storage (a session token, say) is not theirs.
    userSelect.addEventListener('change', function () {
      localStorage.setItem(USER_KEY, userSelect.value);
      runtime.clearStorage();
      runtimeLog('sandbox user ' + (userSelect.value || '(refuses)') + ': the app\'s storage was cleared', 'info');
    });
    var LOCATION_KEY = 'mpforge-preview:location';
    var locationSelect = $('mpf-location');
    locationSelect.addEventListener('change', function () {
      localStorage.setItem(LOCATION_KEY, locationSelect.value);
      runtimeLog('my.getLocation now answers: ' + locationSelect.selectedOptions[0].textContent, 'info');
    });
    runtime = window.MpforgeRuntime.create({
      root: function () { return root; },
      entries: function () { return state.stack.concat(state.entry ? [state.entry] : []); },
      currentPath: currentPath,
      isShown: function (inst) { return Boolean(state.entry && state.entry.inst === inst); },
      placeHtml: function (body) { placeHtml(body, true); },
      open: open,
      back: back,
      user: function () { return userSelect.value; },
      location: function () {
        var spot = locationSelect.value ? JSON.parse(locationSelect.value) : null;
        return spot && { latitude: spot.lat, longitude: spot.lng };
      },
      // The store the phone is at (my.scan reads its till's code): the Location's store, else the first.
      store: function () {
        var spot = locationSelect.value ? JSON.parse(locationSelect.value) : null;
        var first = locationSelect.options[1] ? JSON.parse(locationSelect.options[1].value) : null;
        return (spot && spot.store) || (first && first.store) || '';
      },
      log: runtimeLog,
      notice: toast,
      phoneToast: phoneToast,
      hidePhoneToast: function () { $('mpf-ptoast').hidden = true; },
      setTitle: function (text) { $('mpf-title').textContent = text; },
      screenHeight: function () { return screenEl.clientHeight; },
      screenRect: function () { return screenEl.getBoundingClientRect(); },
      scrollTop: function () { return screenEl.scrollTop; },
      scrollTo: function (top) { screenEl.scrollTop = top; },
    });
    var currentInst = function () { return state.entry && state.entry.inst; };
    $('mpf-pull').addEventListener('click', function () { runtime.pullDownRefresh(currentInst()); });
    $('mpf-share').addEventListener('click', function () {
      var out = $('mpf-share-out');
      out.textContent = 'onShareAppMessage →\n' + JSON.stringify(runtime.share(currentInst()), null, 2);
      out.hidden = false;
    });
    $('mpf-clear-storage').addEventListener('click', function () {
      runtime.clearStorage();
      runtimeLog('storage cleared', 'info');
    });
    var atBottom = false;  // onReachBottom once per arrival at the bottom
    screenEl.addEventListener('scroll', function () {
      var bottom = screenEl.scrollTop + screenEl.clientHeight >= screenEl.scrollHeight - 1;
      if (bottom && !atBottom) { runtime.reachBottom(currentInst()); }
      atBottom = bottom;
    });
  }

  start();
})();
