// mpforge preview shell. The page HTML comes pre-rendered and escaped from mpforge
// (builder/preview); this script only places it, navigates, and follows live rebuilds.
// Static previews embed everything in #mpforge-data; `mpforge dev` serves JSON and
// pushes builds over Server-Sent Events.
(function () {
  'use strict';

  var embedded = document.getElementById('mpforge-data');
  var STATIC = embedded ? JSON.parse(embedded.textContent) : null;
  var $ = function (id) { return document.getElementById(id); };

  var state = {
    app: null,        // app model of the build shown
    shown: -1,        // version of the build shown
    path: null,       // current page
    query: '',        // the query it was opened with
    stack: [],        // {path, query} to go back to
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

  function renderPageList() {
    var list = $('mpf-pages');
    list.textContent = '';
    state.app.pages.forEach(function (page) {
      var li = document.createElement('li');
      var button = document.createElement('button');
      button.type = 'button';
      button.dataset.path = page.path;
      if (page.path === state.path) { button.setAttribute('aria-current', 'page'); }
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
      button.addEventListener('click', function () {
        state.stack = [];
        state.query = '';
        show(page.path);
      });
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

  function show(path, keepScroll) {
    return loadPage(path).then(function (page) {
      if (!page) { toast('This app has no page ' + path); return; }
      var sameSpot = keepScroll && path === state.path;
      var scroll = screenEl.scrollTop;
      state.path = path;
      timers.forEach(clearInterval);
      timers = [];
      replaceSheet(sheets.page, page.css);
      root.innerHTML = page.html;  // escaped by mpforge's renderer
      var nav = $('mpf-phone');
      nav.style.setProperty('--mpf-nav-bg', page.navBackground);
      nav.style.setProperty('--mpf-nav-fg', page.navColor);
      $('mpf-title').textContent = page.title;
      $('mpf-back').hidden = state.stack.length === 0;
      screenEl.style.background = page.background;
      var tabs = renderTabBar(path);
      var screenHeight = 812 - 88 - (tabs ? 56 : 0);
      host.style.setProperty('--mp-vh', (screenHeight / 100) + 'px');
      screenEl.scrollTop = sameSpot ? scroll : 0;
      startSwipers();
      showWebViewAddress();
      renderPageList();
      renderWarnings(page);
      if (location.hash !== '#' + path) { history.replaceState(null, '', '#' + path); }
      document.body.dataset.page = path;
    });
  }

  // A web-view page gets its address from the query it was opened with (?url=...).
  function showWebViewAddress() {
    var match = /(?:^|&)url=([^&]*)/.exec(state.query || '');
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

  function switchTab(path) {
    state.stack = [];
    state.query = '';
    return show(path);
  }

  function open(url, how) {
    var path = String(url || '').replace(/^\//, '').split('?')[0];
    var info = pageInfo(path);
    if (!info) { toast('Not a page of this app: ' + url); return; }
    if (how === 'switchTab' || how === 'reLaunch' || info.tab) {
      state.stack = [];
    } else if (how !== 'redirect' && state.path) {
      state.stack.push({ path: state.path, query: state.query });
    }
    state.query = String(url || '').split('?')[1] || '';
    show(path);
  }

  function back() {
    var previous = state.stack.pop();
    if (previous) {
      state.query = previous.query;
      show(previous.path);
    }
  }

  function followLink(link) {
    if (link.kind === 'tab') { open(link.url, 'switchTab'); }
    else if (link.kind === 'page') { open(link.url, 'navigate'); }
    else if (link.kind === 'phone') { toast('📞 Call ' + link.number); }
    else if (link.kind === 'map') { toast('📍 Map: ' + (link.name || '') + ' ' + (link.address || '')); }
    else { toast('Link: ' + JSON.stringify(link)); }
  }

  shadow.addEventListener('click', function (event) {
    var el = event.target.closest('[data-mp-link], [data-mp-nav], [data-mp-tap]');
    if (!el) { return; }
    event.preventDefault();
    try {
      if (el.dataset.mpLink) { followLink(JSON.parse(el.dataset.mpLink)); }
      else if (el.dataset.mpNav) {
        var nav = JSON.parse(el.dataset.mpNav);
        if (nav.openType === 'navigateBack') { back(); } else { open(nav.url, nav.openType); }
      } else { toast(el.dataset.mpTap + ': runs in the mini-program'); }
    } catch (e) { console.warn('mpforge preview: tap', e); }
  });
  $('mpf-back').addEventListener('click', back);

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
      var path = pageInfo(state.path) ? state.path : pickStart();
      var stale = message.since !== state.shown || message.appChanged || path !== state.path
        || (message.changed || []).indexOf(path) >= 0;
      state.stack = state.stack.filter(function (entry) { return pageInfo(entry.path); });
      return (stale ? show(path, true) : Promise.resolve()).then(function () {
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
    if (state.app && pageInfo(wanted) && wanted !== state.path) {
      state.stack = [];
      state.query = '';
      show(wanted);
    }
  });

  start();
})();
