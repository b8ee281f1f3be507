// mpforge dev's runtime: runs the pages' generated scripts in the browser on a small
// emulation of the mini-program framework (App, Page, getApp, require, getCurrentPages)
// and of `my`. The AXML is still rendered by mpforge: setData merges into the page's data
// here and posts it to /__mpforge/render, whose HTML replaces the page. What is emulated
// and what is not: docs/preview-runtime.md. preview.js (the shell) creates one runtime with
// `MpforgeRuntime.create(host)` and hands it each page it shows.
(function () {
  'use strict';

  var RUNTIME_HEADER = { 'X-Mpforge-Runtime': '1' };
  var AUTH_PREFIX = 'sandbox-user-';

  // Scripts of the build, by path: { digest, factory }. Each arrives as a script of this
  // origin (/__mpforge/module) that calls __mpforgeDefine, so no eval is needed.
  var defined = {};
  var arrived = {};
  window.__mpforgeDefine = function (path, factory) { arrived[path] = factory; };

  function loadScript(path, digest) {
    return new Promise(function (resolve) {
      delete arrived[path];
      var script = document.createElement('script');
      script.src = '/__mpforge/module?path=' + encodeURIComponent(path) + '&v=' + encodeURIComponent(digest);
      script.onload = function () {
        script.remove();
        if (arrived[path]) {
          defined[path] = { digest: digest, factory: arrived[path] };
        } else {  // it did not run: a syntax error, which the console shows with its line
          defined[path] = { digest: digest, factory: null };
        }
        resolve();
      };
      script.onerror = function () {
        script.remove();
        defined[path] = { digest: digest, factory: null };
        resolve();
      };
      document.head.appendChild(script);
    });
  }

  // --- helpers -------------------------------------------------------------------------

  function clone(value) {
    return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
  }

  function isObject(value) { return value !== null && typeof value === 'object'; }

  // 'a.b[2].c' -> ['a', 'b', 2, 'c'], as setData reads its keys.
  function parsePath(key) {
    var parts = [];
    String(key).replace(/([^.[\]]+)|\[(\d+)\]/g, function (match, name, index) {
      parts.push(index !== undefined ? Number(index) : name);
      return match;
    });
    return parts;
  }

  // setData's merge: the value at `key`'s path replaces what was there; missing parents
  // are created (a list where the next part is an index).
  function setPath(data, key, value) {
    var parts = parsePath(key);
    if (parts.length === 0) { return; }
    var target = data;
    for (var i = 0; i < parts.length - 1; i++) {
      var part = parts[i];
      if (!isObject(target[part])) { target[part] = typeof parts[i + 1] === 'number' ? [] : {}; }
      target = target[part];
    }
    target[parts[parts.length - 1]] = value;
  }

  function parseQuery(text) {
    var query = {};
    String(text || '').split('&').forEach(function (pair) {
      if (!pair) { return; }
      var at = pair.indexOf('=');
      // Values stay as written (URL-encoded), as the mini-program hands them to onLoad.
      query[at < 0 ? pair : pair.slice(0, at)] = at < 0 ? '' : pair.slice(at + 1);
    });
    return query;
  }

  function datasetOf(el) {
    if (!el || !el.getAttribute) { return {}; }
    var raw = el.getAttribute('data-mp-dataset');
    if (!raw) { return {}; }
    try { return JSON.parse(raw); } catch (e) { return {}; }
  }

  function dirname(path) { return path.indexOf('/') < 0 ? '' : path.slice(0, path.lastIndexOf('/')); }

  function normalize(path) {
    var out = [];
    path.split('/').forEach(function (part) {
      if (part === '..') { out.pop(); } else if (part && part !== '.') { out.push(part); }
    });
    return out.join('/');
  }

  // --- the runtime -----------------------------------------------------------------------

  function create(host) {
    var config = { scripts: {}, backend: { base: null, running: false, note: '' }, proxy: '/__mpforge/backend' };
    var session = null;     // one app launch: modules, App, page definitions
    var warned = {};
    var followed = false;

    function log(text, kind) {
      host.log(text, kind || 'info');
      if (kind === 'error') { console.error('mpforge preview: ' + text); }
      else if (kind === 'warn') { console.warn('mpforge preview: ' + text); }
    }

    function report(where, error) {
      log(where + ' threw: ' + (error && error.stack ? error.stack.split('\n').slice(0, 3).join(' | ') : error),
        'error');
    }

    function later(fn) { setTimeout(fn, 0); }

    // Alipay's callback trio: success or fail, then complete.
    function succeed(options, result) {
      later(function () {
        if (options && typeof options.success === 'function') { guard('success callback', options.success, result); }
        if (options && typeof options.complete === 'function') { guard('complete callback', options.complete, result); }
      });
      return result;
    }

    function failWith(options, result) {
      later(function () {
        if (options && typeof options.fail === 'function') { guard('fail callback', options.fail, result); }
        if (options && typeof options.complete === 'function') { guard('complete callback', options.complete, result); }
      });
    }

    function guard(where, fn, arg, self) {
      try { return fn.call(self, arg); } catch (e) { report(where, e); return undefined; }
    }

    // --- modules, App and Page ----------------------------------------------------------

    function newSession() {
      return { modules: {}, loading: [], pageDefs: {}, app: null, launched: false, pages: [] };
    }

    // require(): './x' and '../x' from the requiring script's folder, '/x' from the app's
    // root, 'x' from the folder and then the root; '.js' and '/index.js' may be left off.
    function resolve(from, request) {
      var name = String(request);
      var candidates = name.charAt(0) === '/' ? [normalize(name)] : [normalize(dirname(from) + '/' + name)];
      if (name.charAt(0) !== '/' && name.charAt(0) !== '.') { candidates.push(normalize(name)); }
      for (var i = 0; i < candidates.length; i++) {
        var tries = [candidates[i], candidates[i] + '.js', candidates[i] + '/index.js'];
        for (var j = 0; j < tries.length; j++) { if (defined[tries[j]]) { return tries[j]; } }
      }
      return null;
    }

    function load(path) {
      var cached = session.modules[path];
      if (cached) { return cached.exports; }
      var entry = defined[path];
      if (!entry || !entry.factory) {
        throw new Error(entry ? path + ' did not run (a syntax error? see the console)' : path + ' is not in the build');
      }
      var module = { id: path, exports: {} };
      session.modules[path] = module;
      session.loading.push(path);
      try {
        entry.factory.call(module.exports, module, module.exports, function (request) {
          var target = resolve(path, request);
          if (!target) { throw new Error('require(' + JSON.stringify(request) + ') from ' + path + ': no such script in the build'); }
          return load(target);
        }, my, getApp, App, Page, Component, getCurrentPages, requirePlugin);
      } catch (e) {
        delete session.modules[path];
        throw e;
      } finally {
        session.loading.pop();
      }
      return module.exports;
    }

    function App(definition) { session.app = definition || {}; }

    function Page(definition) {
      var path = session.loading[session.loading.length - 1] || '';
      session.pageDefs[path.replace(/\.js$/, '')] = definition || {};
    }

    function Component() { warnOnce('Component', 'custom components are not emulated; Component() is ignored'); }

    function getApp() { return session.app; }

    // Alipay's plugins (app.json `plugins`): the 会员私域插件 (alipassToolKit) is emulated;
    // any other has no methods, and calling one throws as a missing function would.
    function requirePlugin(name) {
      if (String(name) === 'alipassToolKit') { return { openCard: openCard }; }
      warnOnce('plugin:' + name, 'requirePlugin(' + JSON.stringify(String(name)) + '): this plugin is not emulated');
      return {};
    }

    // The member card's claim page (activateurl.apply's url): here the sandbox user fills
    // the form in a dialog; the sandbox then answers the auth code and request id the
    // plugin's callback carries (POST /__mpforge/sandbox/card-apply).
    function openCard(options) {
      options = options || {};
      var callback = typeof options.callback === 'function' ? options.callback : function () {};
      var login = host.user();
      var answer = function (result) { later(function () { guard('openCard callback', callback, result); }); };
      if (!options.url) {
        log('openCard: url is required (activateurl.apply\'s apply_card_url)', 'warn');
        answer({ success: false, errorMessage: 'url is required' });
        return;
      }
      var templateId = '';
      try { templateId = new URL(String(options.url)).searchParams.get('template_id') || ''; } catch (e) { templateId = ''; }
      var mobile = login ? window.prompt('支付宝会员卡开卡（沙箱）\n' + AUTH_PREFIX + login + ' 填写开卡表单：手机号\n' +
        '(mpforge preview: the sandbox\'s card form of template ' + (templateId || '?') + ')', '13800000000') : null;
      if (mobile === null) {
        log('openCard: the user left the card form', 'warn');
        answer({ success: false });
        return;
      }
      var form = login + '|' + templateId + '|' + String(mobile).replace(/[^0-9]/g, '');
      post('/__mpforge/sandbox/card-apply', { form: form }).then(function (result) {
        var body = result.body || {};
        if (result.ok && body.authCode && body.requestId) {
          log('openCard: ' + AUTH_PREFIX + login + ' submitted the card form (sandbox request ' + body.requestId + ')');
          answer({ success: true, auth_code: body.authCode, request_id: body.requestId,
            template_id: body.templateId || '' });
        } else {
          log('openCard: the sandbox took no card form: ' + errorText(result), 'warn');
          answer({ success: false, errorMessage: errorText(result) });
        }
      });
    }

    function errorText(result) {
      var error = result.body && result.body.error;
      return (error && (error.message || error)) || String(result.status);
    }

    function getCurrentPages() {
      return host.entries().map(function (entry) { return entry.inst && entry.inst.page; }).filter(Boolean);
    }

    function launch(query) {
      session.launched = true;
      if (!defined['app.js']) { session.app = {}; return; }
      try { load('app.js'); } catch (e) { report('app.js', e); session.app = session.app || {}; return; }
      var options = { query: query || {}, scene: 1001, path: host.currentPath(), referrerInfo: {} };
      callHook(session.app, 'onLaunch', options, 'App.onLaunch');
      callHook(session.app, 'onShow', options, 'App.onShow');
    }

    function callHook(target, name, arg, where) {
      if (target && typeof target[name] === 'function') { return guard(where, target[name], arg, target); }
      return undefined;
    }

    // --- pages -----------------------------------------------------------------------------

    function newPage(path, queryText) {
      if (!session.launched) { launch(parseQuery(queryText)); }
      if (!session.pageDefs[path] && defined[path + '.js']) {
        try { load(path + '.js'); } catch (e) { report(path + '.js', e); }
      }
      var definition = session.pageDefs[path];
      if (!definition) { log(path + '.js did not call Page(): the page shows its initial data only', 'warn'); }
      var inst = { path: path, query: parseQuery(queryText), seq: 0, queued: false, callbacks: [], live: true };
      var page = {};
      Object.keys(definition || {}).forEach(function (key) {
        var value = definition[key];
        // Each instance gets its own copy of what is not a function (a value JSON cannot
        // copy, a cycle say, is shared as it is).
        try { page[key] = typeof value === 'function' ? value : clone(value); } catch (e) { page[key] = value; }
      });
      page.data = clone((definition && definition.data) || {});
      page.route = path;
      page.setData = function (update, callback) { setData(inst, update, callback); };
      page.$spliceData = function () { warnOnce('$spliceData', 'page.$spliceData is not emulated'); };
      inst.page = page;
      return inst;
    }

    function setData(inst, update, callback) {
      if (!isObject(update)) { log(inst.path + ': setData needs an object', 'warn'); return; }
      Object.keys(update).forEach(function (key) { setPath(inst.page.data, key, clone(update[key])); });
      if (typeof callback === 'function') { inst.callbacks.push(callback); }
      if (!inst.queued) {
        inst.queued = true;
        Promise.resolve().then(function () { inst.queued = false; render(inst); });
      }
    }

    function renderHtml(inst) {
      return fetch('/__mpforge/render?path=' + encodeURIComponent(inst.path), {
        method: 'POST', cache: 'no-store', body: JSON.stringify(inst.page.data),
        headers: Object.assign({ 'Content-Type': 'application/json' }, RUNTIME_HEADER),
      }).then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) { throw new Error(body.error || String(response.status)); }
          return body;
        });
      });
    }

    // The newest render of a page wins; one that answers late is dropped.
    function render(inst) {
      var seq = ++inst.seq;
      var callbacks = inst.callbacks.splice(0);
      return renderHtml(inst).then(function (result) {
        if (seq !== inst.seq || !inst.live) { return; }
        if (host.isShown(inst)) { host.placeHtml(result.html, result.warnings); }
        callbacks.forEach(function (fn) { guard(inst.path + ' setData callback', fn, undefined, inst.page); });
      }).catch(function (e) { log(inst.path + ': render failed: ' + e.message, 'error'); });
    }

    function lifecycle(inst, name, arg) {
      if (typeof inst.page[name] === 'function') { log(inst.path + ' ' + name + (arg ? ' ' + JSON.stringify(arg) : '')); }
      return callHook(inst.page, name, arg, inst.path + ' ' + name);
    }

    // --- taps and component events ---------------------------------------------------------

    function eventFor(type, target, current, detail) {
      return {
        type: type, timeStamp: Date.now(), detail: detail || {},
        target: { id: target && target.id || '', dataset: datasetOf(target && target.closest && target.closest('[data-mp-dataset]')) },
        currentTarget: { id: current.id || '', dataset: datasetOf(current) },
      };
    }

    function callHandler(inst, el, event, name) {
      var handler = el.getAttribute('data-mp-catch-' + name) || el.getAttribute('data-mp-on-' + name);
      if (!handler) { return false; }
      if (typeof inst.page[handler] !== 'function') {
        log(inst.path + ': no handler ' + handler + ' for ' + name, 'warn');
        return true;
      }
      guard(inst.path + ' ' + handler, inst.page[handler], event, inst.page);
      return true;
    }

    // A tap inside the page: handlers from the element tapped outwards, as onTap bubbles
    // (catchTap stops it). Returns whether anything took the tap.
    function tap(target, inst, stopAt) {
      var handled = false;
      var follow = target.closest('.mp-lifestyle-follow');
      if (follow) { followLifeAccount(inst, follow.closest('.mp-lifestyle')); return true; }
      for (var el = target; el && el !== stopAt; el = el.parentElement) {
        if (el.getAttribute('data-mp-component') === 'get-coupon') {
          getCoupon(inst, el, target);
          handled = true;
        }
        if (el.hasAttribute('data-mp-on-tap') || el.hasAttribute('data-mp-catch-tap')) {
          handled = callHandler(inst, el, eventFor('tap', target, el), 'tap') || handled;
          if (el.hasAttribute('data-mp-catch-tap')) { break; }
        }
      }
      return handled;
    }

    // <lifestyle onFollow>: the sandbox records the follow (the back end's follow query
    // then says so), then the page hears onFollow.
    function followLifeAccount(inst, el) {
      var login = host.user() || 'preview';
      post('/__mpforge/sandbox/follow', { login: login }).then(function (result) {
        if (result.ok) { log('lifestyle: ' + AUTH_PREFIX + login + ' follows the life account (sandbox)'); }
        else { log('lifestyle: the follow was not recorded: ' + (result.body.error || result.status), 'warn'); }
      }).then(function () {
        followed = true;
        decorate(host.root());
        if (el) { callHandler(inst, el, eventFor('follow', el, el, { followed: true }), 'follow'); }
      });
    }

    // Alipay's coupon plugin (<get-coupon>): Alipay would show its claim dialog and issue
    // the voucher itself; here a tap is taken as a successful claim of its params.
    function getCoupon(inst, el, target) {
      var params = null;
      try { params = JSON.parse(el.getAttribute('data-mp-params') || 'null'); } catch (e) { params = null; }
      log('get-coupon: Alipay\'s claim dialog is not emulated; reporting success for ' + JSON.stringify(params));
      callHandler(inst, el, eventFor('beforeGetCoupon', target, el, { params: params }), 'beforegetcoupon');
      callHandler(inst, el, eventFor('getCouponSuccess', target, el, { params: params, sandbox: true }),
        'getcouponsuccess');
    }

    function post(url, body) {
      return fetch(url, {
        method: 'POST', cache: 'no-store', body: JSON.stringify(body),
        headers: Object.assign({ 'Content-Type': 'application/json' }, RUNTIME_HEADER),
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          return { ok: response.ok, status: response.status, body: data };
        });
      }).catch(function (e) { return { ok: false, status: 0, body: { error: e.message } }; });
    }

    // What the runtime adds to the rendered page: the lifestyle button says it is the sandbox's.
    function decorate(root) {
      if (!root) { return; }
      root.querySelectorAll('.mp-lifestyle-follow').forEach(function (button) {
        button.textContent = followed ? '已关注 (sandbox)' : '+ 关注 (sandbox)';
        button.title = 'follows in the sandbox of mpforge dev, then calls onFollow';
      });
    }

    // --- my ----------------------------------------------------------------------------------

    function warnOnce(name, text) {
      if (warned[name]) { return; }
      warned[name] = true;
      log(text, 'warn');
    }

    function storageKey(key) { return 'mpforge:' + (config.appid || config.name || 'app') + ':' + key; }

    function readStorage(key) {
      var raw = localStorage.getItem(storageKey(key));
      if (raw === null) { return null; }
      try { return JSON.parse(raw); } catch (e) { return null; }
    }

    function headerValue(headers, name) {
      var found = Object.keys(headers).filter(function (k) { return k.toLowerCase() === name; })[0];
      return found === undefined ? undefined : String(headers[found]);
    }

    function encodeForm(data) {
      return Object.keys(data).map(function (key) {
        var value = data[key];
        return encodeURIComponent(key) + '=' + encodeURIComponent(isObject(value) ? JSON.stringify(value) : value);
      }).join('&');
    }

    // my.request: only the spec's back end is reachable (through the dev server, so the
    // page stays same-origin). 2xx -> success({data, status, headers}); another status ->
    // fail({error: 19, ...}); no answer -> fail({error: 12}); timeout -> 13; JSON that
    // does not parse -> 14.
    function request(options) {
      options = options || {};
      var url = String(options.url || '');
      var method = String(options.method || 'GET').toUpperCase();
      var headers = Object.assign({}, options.headers || options.header || {});
      var dataType = options.dataType || 'json';
      var base = config.backend.base;
      var controller = new AbortController();
      var task = { abort: function () { controller.abort(); } };
      var rest = base && url.indexOf(base) === 0 ? url.slice(base.length) : null;
      if (rest === null || (rest && '/?#'.indexOf(rest.charAt(0)) < 0)) {
        var why = base ? 'only the spec\'s back end (' + base + ') is reachable from the preview'
          : 'the spec names no back end (backend.base_url)';
        log('my.request ' + method + ' ' + url + ': not sent: ' + why, 'warn');
        failWith(options, { error: 12, errorMessage: 'mpforge preview: ' + why });
        return task;
      }
      var target = config.proxy + (rest.charAt(0) === '/' ? rest : '/' + rest);
      var data = options.data;
      var body;
      if (method === 'GET' || method === 'HEAD') {
        if (isObject(data) && Object.keys(data).length) { target += (target.indexOf('?') < 0 ? '?' : '&') + encodeForm(data); }
      } else if (data !== undefined && data !== null) {
        var type = headerValue(headers, 'content-type');
        if (type === undefined) { type = headers['content-type'] = 'application/json'; }
        body = typeof data === 'string' ? data : type.indexOf('json') >= 0 ? JSON.stringify(data) : encodeForm(data);
      }
      var timedOut = false;
      var timer = setTimeout(function () { timedOut = true; controller.abort(); }, Number(options.timeout) || 30000);
      var shown = method + ' ' + url.slice(base.length);
      fetch(target, {
        method: method, body: body, cache: 'no-store', signal: controller.signal,
        headers: Object.assign(headers, RUNTIME_HEADER),
      }).then(function (response) {
        return response.text().then(function (text) {
          clearTimeout(timer);
          if (response.headers.get('X-Mpforge-Backend')) {
            var note = text;
            try { note = JSON.parse(text).error; } catch (e) { /* the text itself */ }
            log('my.request ' + shown + ': ' + note, 'warn');
            failWith(options, { error: 12, errorMessage: note });
            return;
          }
          var answer = {};
          response.headers.forEach(function (value, name) { answer[name] = value; });
          var result = { data: text, status: response.status, headers: answer };
          if (dataType === 'json' && text) {
            try { result.data = JSON.parse(text); } catch (e) {
              log('my.request ' + shown + ' → ' + response.status + ': the answer is not JSON', 'warn');
              failWith(options, { error: 14, errorMessage: 'JSON parse data error', data: text,
                status: response.status, headers: answer });
              return;
            }
          }
          var ok = response.status >= 200 && response.status < 300;
          log('my.request ' + shown + ' → ' + response.status, ok ? 'info' : 'warn');
          if (ok) { succeed(options, result); } else {
            failWith(options, Object.assign({ error: 19, errorMessage: 'http status error' }, result));
          }
        });
      }).catch(function (e) {
        clearTimeout(timer);
        var error = timedOut ? { error: 13, errorMessage: 'timeout' } : { error: 12, errorMessage: String(e && e.message || e) };
        log('my.request ' + shown + ': ' + error.errorMessage, 'warn');
        failWith(options, error);
      });
      return task;
    }

    var toastTimer = null;
    var TOAST_ICONS = { success: '✓', fail: '✕', exception: '!', none: '' };

    function systemInfo() {
      return {
        brand: 'mpforge', model: 'preview phone (375 x 812)', platform: 'iOS', system: '17.0', language: 'zh-Hans',
        version: '10.5.0', app: 'alipay', SDKVersion: '2.9.0', pixelRatio: 2, screenWidth: 375, screenHeight: 812,
        windowWidth: 375, windowHeight: host.screenHeight(), statusBarHeight: 44, titleBarHeight: 44,
        storage: '', currentBattery: '100%', fontSizeSetting: 16,
      };
    }

    function createSelectorQuery() {
      var steps = [];
      var query = {
        select: function (selector) { return node(selector, false); },
        selectAll: function (selector) { return node(selector, true); },
        selectViewport: function () { return node(null, false); },
        exec: function (callback) {
          var results = steps.map(function (step) { return step(); });
          later(function () { if (typeof callback === 'function') { guard('selectorQuery.exec', callback, results); } });
          return query;
        },
      };
      function rect(el) {
        if (!el) { return null; }
        var r = el.getBoundingClientRect();
        var screen = host.screenRect();
        return { left: r.left - screen.left, top: r.top - screen.top, right: r.right - screen.left,
          bottom: r.bottom - screen.top, width: r.width, height: r.height, id: el.id, dataset: datasetOf(el) };
      }
      function node(selector, all) {
        var find = function () {
          var root = host.root();
          if (selector === null) { return null; }
          return all ? Array.prototype.slice.call(root.querySelectorAll(selector)) : root.querySelector(selector);
        };
        return {
          boundingClientRect: function () {
            steps.push(function () {
              var found = find();
              if (selector === null) { return { left: 0, top: 0, width: 375, height: host.screenHeight() }; }
              return all ? found.map(rect) : rect(found);
            });
            return query;
          },
          scrollOffset: function () {
            steps.push(function () { return { scrollTop: host.scrollTop(), scrollLeft: 0 }; });
            return query;
          },
        };
      }
      return query;
    }

    var api = {
      request: request,
      getAuthCode: function (options) {
        var login = host.user();
        var scopes = (options && options.scopes) || 'auth_base';
        if (!login) {
          log('my.getAuthCode: the sandbox user refuses', 'warn');
          failWith(options, { error: 11, errorMessage: '用户取消授权' });
          return;
        }
        log('my.getAuthCode → ' + AUTH_PREFIX + login);
        succeed(options, { authCode: AUTH_PREFIX + login, authSuccessScopes: [].concat(scopes), authErrorScopes: {} });
      },
      getStorageSync: function (options) { return { data: readStorage(options && options.key) }; },
      setStorageSync: function (options) {
        localStorage.setItem(storageKey(options.key), JSON.stringify(options.data === undefined ? null : options.data));
        return { success: true };
      },
      removeStorageSync: function (options) { localStorage.removeItem(storageKey(options.key)); return { success: true }; },
      clearStorageSync: function () { clearStorage(); return { success: true }; },
      getStorage: function (options) { succeed(options, { data: readStorage(options && options.key) }); },
      setStorage: function (options) { api.setStorageSync(options); succeed(options, { success: true }); },
      removeStorage: function (options) { api.removeStorageSync(options); succeed(options, { success: true }); },
      clearStorage: function (options) { clearStorage(); succeed(options, { success: true }); },
      getStorageInfoSync: function () {
        var prefix = storageKey('');
        var keys = Object.keys(localStorage).filter(function (k) { return k.indexOf(prefix) === 0; })
          .map(function (k) { return k.slice(prefix.length); });
        return { keys: keys, currentSize: 0, limitSize: 10240 };
      },
      showToast: function (options) {
        options = options || {};
        clearTimeout(toastTimer);
        host.phoneToast(TOAST_ICONS[options.type] || '', String(options.content || ''));
        toastTimer = setTimeout(host.hidePhoneToast, Number(options.duration) || 2000);
        log('my.showToast: ' + (options.content || ''));
        succeed(options, {});
      },
      hideToast: function (options) { clearTimeout(toastTimer); host.hidePhoneToast(); succeed(options, {}); },
      showLoading: function (options) {
        clearTimeout(toastTimer);
        host.phoneToast('◌', String((options && options.content) || '加载中'));
        succeed(options, {});
      },
      hideLoading: function (options) { clearTimeout(toastTimer); host.hidePhoneToast(); succeed(options, {}); },
      alert: function (options) {
        window.alert([options && options.title, options && options.content].filter(Boolean).join('\n'));
        succeed(options, {});
      },
      confirm: function (options) {
        var yes = window.confirm([options && options.title, options && options.content].filter(Boolean).join('\n'));
        succeed(options, { confirm: yes });
      },
      navigateTo: function (options) { navigate(options, 'navigate'); },
      redirectTo: function (options) { navigate(options, 'redirect'); },
      switchTab: function (options) { navigate(options, 'switchTab'); },
      reLaunch: function (options) { navigate(options, 'reLaunch'); },
      navigateBack: function (options) {
        host.back(Math.max(1, Number(options && options.delta) || 1));
        succeed(options, {});
      },
      makePhoneCall: function (options) {
        host.notice('📞 my.makePhoneCall: ' + ((options && options.number) || ''));
        log('my.makePhoneCall ' + ((options && options.number) || ''));
        succeed(options, {});
      },
      openLocation: function (options) {
        options = options || {};
        var text = '📍 my.openLocation: ' + [options.name, options.address].filter(Boolean).join(' ') +
          ' (' + options.latitude + ', ' + options.longitude + ')';
        host.notice(text);
        log(text);
        succeed(options, {});
      },
      // Alipay's cashier: the sandbox buyer confirms (or cancels) in a dialog; the sandbox
      // then pays the trade and sends its signed notification to the back end. Like
      // Alipay, resultCode comes in success either way: 9000 paid, 6001 cancelled.
      tradePay: function (options) {
        options = options || {};
        var tradeNO = String(options.tradeNO || '');
        if (!tradeNO) {
          failWith(options, { error: 2, errorMessage: 'my.tradePay: tradeNO is required (alipay.trade.create\'s trade_no)' });
          return;
        }
        if (!window.confirm('支付宝沙箱收银台\n支付交易 ' + tradeNO + '？\n(mpforge preview: the sandbox pays it)')) {
          log('my.tradePay ' + tradeNO + ': the buyer cancelled (6001)');
          succeed(options, { resultCode: '6001' });
          return;
        }
        post('/__mpforge/sandbox/pay', { tradeNo: tradeNO }).then(function (result) {
          if (result.ok) {
            log('my.tradePay ' + tradeNO + ': paid in the sandbox; notification answered ' + result.body.notifyAnswer);
            succeed(options, { resultCode: '9000' });
          } else {
            var why = (result.body.error && result.body.error.message) || result.body.error || result.status;
            log('my.tradePay ' + tradeNO + ': the sandbox did not pay: ' + why, 'warn');
            succeed(options, { resultCode: '4000' });
          }
        });
      },
      // Where the phone is: the runtime panel's Location (near a store of the spec, or
      // refused: error 2001 as Alipay answers when the user declines).
      getLocation: function (options) {
        var spot = host.location();
        if (!spot) {
          log('my.getLocation: the user refuses (2001)', 'warn');
          failWith(options, { error: 2001, errorMessage: '用户拒绝给小程序授权' });
          return;
        }
        log('my.getLocation → ' + spot.latitude + ', ' + spot.longitude);
        succeed(options, { latitude: String(spot.latitude), longitude: String(spot.longitude), accuracy: 30,
          horizontalAccuracy: 30 });
      },
      // The camera: "scan the till's current code" (the till of the Location's store, read
      // from the back end through POST /__mpforge/sandbox/till-code); the dialog shows the
      // code, which may be changed (e.g. to an old one, to see a replay refused); cancel is
      // error 10 as Alipay answers a user cancelling.
      scan: function (options) {
        post('/__mpforge/sandbox/till-code', { store: host.store() || 'none' }).then(function (result) {
          var current = result.ok && result.body && result.body.code ? String(result.body.code) : '';
          if (!current) { log('my.scan: the till\'s code could not be read: ' + errorText(result), 'warn'); }
          var code = window.prompt('my.scan (mpforge preview)\nscan the till\'s current code:', current);
          if (code === null || code === '') {
            log('my.scan: cancelled (10)');
            failWith(options, { error: 10, errorMessage: '用户取消' });
            return;
          }
          log('my.scan → ' + code);
          succeed(options, { code: code, qrCode: code, rawData: code, scanType: 'qrCode' });
        });
      },
      // The subscription panel: one dialog per call; OK accepts every template asked,
      // Cancel rejects them (refusing is a success, as on Alipay). More than 3 ids: error 203.
      requestSubscribeMessage: function (options) {
        var ids = (options && options.entityIds) || [];
        if (!ids.length || ids.length > 3) {
          failWith(options, { error: 203, errorMessage: 'entityIds: 1 to 3 template ids', behavior: '' });
          return;
        }
        var yes = window.confirm('订阅消息 (mpforge preview)\n' + ids.join('\n') + '\nOK: 允许 · Cancel: 拒绝');
        var result = { behavior: 'subscribe', show: true, keep: false, refuse: false,
          result: { subscribedEntityIds: yes ? ids.slice() : [], unsubscribedEntityIds: yes ? [] : ids.slice() } };
        ids.forEach(function (id) { result[id] = yes ? 'accept' : 'reject'; });
        log('my.requestSubscribeMessage ' + ids.join(',') + ' → ' + (yes ? 'accept' : 'reject'));
        succeed(options, result);
      },
      // The card pack's card page (enterprise mini-programs only): not emulated, a notice.
      openCardDetail: function (options) {
        host.notice('💳 my.openCardDetail: ' + ((options && options.passId) || '(no passId)'));
        log('my.openCardDetail: the card pack is Alipay\'s; not emulated');
        succeed(options, {});
      },
      getSystemInfoSync: systemInfo,
      getSystemInfo: function (options) { succeed(options, systemInfo()); },
      setNavigationBar: function (options) {
        if (options && options.title) { host.setTitle(String(options.title)); }
        succeed(options, {});
      },
      stopPullDownRefresh: function (options) { log('my.stopPullDownRefresh'); succeed(options, {}); },
      pageScrollTo: function (options) { host.scrollTo(Number(options && options.scrollTop) || 0); succeed(options, {}); },
      createSelectorQuery: createSelectorQuery,
      getLaunchOptionsSync: function () { return { query: {}, scene: 1001, path: host.currentPath() }; },
      canIUse: function (name) { return Object.prototype.hasOwnProperty.call(api, String(name).split('.')[0]); },
    };

    function navigate(options, how) {
      var url = options && options.url;
      log('my.' + (how === 'navigate' ? 'navigateTo' : how === 'redirect' ? 'redirectTo' : how) + ' ' + url);
      if (host.open(url, how)) { succeed(options, {}); }
      else { failWith(options, { error: 3, errorMessage: 'no page ' + url + ' in this app' }); }
    }

    function clearStorage() {
      var prefix = storageKey('');
      Object.keys(localStorage).forEach(function (k) { if (k.indexOf(prefix) === 0) { localStorage.removeItem(k); } });
    }

    // Anything else on `my` warns once and fails its call, so the page goes on.
    var my = typeof Proxy === 'function' ? new Proxy(api, {
      get: function (target, name) {
        if (typeof name !== 'string' || Object.prototype.hasOwnProperty.call(target, name)) { return target[name]; }
        if (name === 'then' || name === 'toJSON') { return undefined; }  // my is no promise, and no JSON
        warnOnce('my.' + name, 'my.' + name + ' is not emulated by the preview (see docs/preview-runtime.md)');
        return function (options) {
          failWith(options, { error: 3, errorMessage: 'my.' + name + ' is not emulated by the mpforge preview' });
        };
      },
    }) : api;

    // --- what the shell calls -----------------------------------------------------------------

    return {
      // A build's runtime settings; resolves true when its scripts changed (the shell then
      // restarts the app: every page is loaded again).
      configure: function (runtime, app) {
        config.appid = runtime.appid;
        config.name = app && app.name;
        config.backend = runtime.backend || config.backend;
        config.proxy = runtime.proxy || config.proxy;
        var scripts = runtime.scripts || {};
        var changed = Object.keys(scripts).filter(function (p) { return !defined[p] || defined[p].digest !== scripts[p]; });
        var removed = Object.keys(defined).filter(function (p) { return !(p in scripts); });
        removed.forEach(function (p) { delete defined[p]; });
        var first = session === null;
        return Promise.all(changed.map(function (p) { return loadScript(p, scripts[p]); })).then(function () {
          var restart = first || changed.length > 0 || removed.length > 0;
          if (restart) {
            if (!first) { log('scripts changed: the app starts again'); }
            session = newSession();
          }
          return restart;
        });
      },
      // A page the shell opens: a new instance (onLoad, onShow, then onReady once shown).
      open: function (path, queryText) {
        var inst = newPage(path, queryText);
        lifecycle(inst, 'onLoad', clone(inst.query));
        lifecycle(inst, 'onShow');
        later(function () { if (inst.live) { lifecycle(inst, 'onReady'); } });
        return inst;
      },
      renderHtml: function (inst) { return renderHtml(inst).then(function (r) { return r.html; }); },
      show: function (inst) { lifecycle(inst, 'onShow'); },
      hide: function (inst) { lifecycle(inst, 'onHide'); },
      unload: function (inst) {
        if (!inst || !inst.live) { return; }
        inst.live = false;
        lifecycle(inst, 'onUnload');
      },
      tap: tap,
      decorate: decorate,
      pullDownRefresh: function (inst) {
        if (!inst || typeof inst.page.onPullDownRefresh !== 'function') {
          log((inst ? inst.path : 'this page') + ' has no onPullDownRefresh', 'warn');
          return;
        }
        lifecycle(inst, 'onPullDownRefresh');
      },
      share: function (inst) {
        if (!inst || typeof inst.page.onShareAppMessage !== 'function') {
          return { note: (inst ? inst.path : 'this page') + ' has no onShareAppMessage: Alipay shares it with the ' +
            'default title and no query' };
        }
        return lifecycle(inst, 'onShareAppMessage', { from: 'menu' }) || {};
      },
      reachBottom: function (inst) { if (inst) { lifecycle(inst, 'onReachBottom'); } },
      clearStorage: clearStorage,
      backend: function () { return config.backend; },
    };
  }

  // setPath is exported for the browser tests of setData's merge.
  window.MpforgeRuntime = { create: create, setPath: setPath };
})();
