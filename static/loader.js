/*! capi-edge loader: one event_id per event, shared with the browser pixels. Apache-2.0 */
(function (w, d) {
  "use strict";
  var script = d.currentScript;
  var endpoint = script && script.src ? script.src.replace(/loader\.js(\?.*)?$/, "collect") : "/collect";
  var PURPOSES = ["ad_storage", "analytics_storage", "ad_user_data", "ad_personalization"];
  var META_STANDARD = /^(page_view|view_content|search|add_to_cart|add_to_wishlist|initiate_checkout|add_payment_info|purchase|lead|complete_registration|subscribe|start_trial|contact)$/;
  var consent = {};
  var tcString;
  var user = {};
  var lastUrl;
  var lastState; // the consent the edge last heard, so a change is posted once
  var started;

  function safe(fn) {
    return function () {
      try { return fn.apply(this, arguments); } catch (e) { /* never break the page */ }
    };
  }

  function uuid() {
    var c = w.crypto;
    if (c && c.randomUUID) return c.randomUUID();
    var b = new Uint8Array(16);
    c.getRandomValues(b);
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    var h = [];
    for (var i = 0; i < 16; i++) h.push((b[i] + 256).toString(16).slice(1));
    h = h.join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function pascal(name) {
    return name.replace(/(^|_)([a-z])/g, function (m, u, c) { return c.toUpperCase(); });
  }

  // Google Consent Mode v2: replay gtag('consent', 'default'|'update', {...}) from the
  // dataLayer, then watch later pushes. A region-scoped default is not applied: the edge's
  // own default (denied unless configured) is the safer reading when we cannot tell.
  function readConsent(args) {
    if (!args || args[0] !== "consent" || typeof args[2] !== "object") return;
    if (args[1] === "default" && args[2].region) return;
    if (args[1] !== "default" && args[1] !== "update") return;
    for (var i = 0; i < PURPOSES.length; i++) {
      var v = args[2][PURPOSES[i]];
      if (v === "granted" || v === "denied") consent[PURPOSES[i]] = v;
    }
  }

  function watchDataLayer() {
    var dl = (w.dataLayer = w.dataLayer || []);
    for (var i = 0; i < dl.length; i++) readConsent(dl[i]);
    var push = dl.push;
    dl.push = function () {
      for (var j = 0; j < arguments.length; j++) safe(readConsent)(arguments[j]);
      safe(consentChanged)();
      return push.apply(dl, arguments);
    };
  }

  // IAB TCF v2.2: keep the latest TC string; the edge decodes it per destination. While the
  // CMP's UI is up ("cmpuishown") the choices are not final: keep the last final string.
  function watchTcf() {
    if (typeof w.__tcfapi !== "function") return;
    w.__tcfapi("addEventListener", 2, safe(function (data, ok) {
      if (ok && data && data.tcString && data.eventStatus !== "cmpuishown") tcString = data.tcString;
      consentChanged();
    }));
  }

  function gpc() {
    return w.navigator.globalPrivacyControl === true;
  }

  function state() {
    return JSON.stringify([consent, tcString, gpc()]);
  }

  // The banner's answer reaches the edge at once, without an event: a grant keeps the
  // landing page's click IDs as cookies, a refusal cancels what is still queued.
  function consentChanged() {
    if (!started || state() === lastState) return;
    lastState = state();
    send({
      event: "consent_update",
      page: { url: w.location.href },
      consent: copy(consent),
      gpc: gpc() || undefined,
      tcf: tcString
    }, endpoint.replace(/collect$/, "consent"));
  }

  function send(body, url) {
    var json = JSON.stringify(body);
    var nav = w.navigator;
    url = url || endpoint;
    if (nav.sendBeacon && nav.sendBeacon(url, json)) return;
    if (w.fetch) {
      w.fetch(url, {
        method: "POST", body: json, keepalive: true, credentials: "include",
        headers: { "content-type": "text/plain" }
      })["catch"](function () {});
    }
  }

  function copy(a, b) {
    var o = {}, k;
    for (k in a) if (a.hasOwnProperty(k)) o[k] = a[k];
    for (k in b) if (b && b.hasOwnProperty(k)) o[k] = b[k];
    return o;
  }

  // Hand the same id to the browser pixels, so each platform pairs browser and server.
  function pixels(name, data, id) {
    var used = [];
    var contents = data.contents || [];
    var ids = [];
    for (var i = 0; i < contents.length; i++) if (contents[i].id) ids.push(contents[i].id);
    if (typeof w.fbq === "function") {
      var fb = copy({ value: data.value, currency: data.currency, order_id: data.order_id }, ids.length ? { content_ids: ids, content_type: "product", num_items: data.num_items } : {});
      if (META_STANDARD.test(name)) w.fbq("track", pascal(name), fb, { eventID: id });
      else w.fbq("trackCustom", name, fb, { eventID: id });
      used.push("meta");
    }
    if (w.ttq && typeof w.ttq.track === "function" && name !== "page_view") {
      var tt = [];
      for (var j = 0; j < contents.length; j++) {
        tt.push({ content_id: contents[j].id, quantity: contents[j].quantity, price: contents[j].price, content_type: "product" });
      }
      w.ttq.track(pascal(name), { value: data.value, currency: data.currency, contents: tt }, { event_id: id });
      used.push("tiktok");
    }
    return used;
  }

  function track(name, data, opts) {
    opts = opts || {};
    data = data || {};
    var id = opts.event_id || uuid();
    var body = {
      event: name,
      event_id: id,
      page: { url: w.location.href, referrer: d.referrer || undefined, title: d.title || undefined },
      consent: copy(consent),
      gpc: gpc() || undefined,
      tcf: tcString,
      pixels: safe(pixels)(name, data, id)
    };
    var who = copy(user, opts.user);
    for (var k in who) { body.user = who; break; }
    for (var m in data) { body.data = data; break; }
    lastState = state();
    send(body);
    return id;
  }

  var api = safe(function (cmd, a, b, c) {
    if (cmd === "track") return track(a, b, c);
    if (cmd === "identify") user = copy(user, a);
    if (cmd === "consent") {
      readConsent(["consent", "update", a]);
      consentChanged();
    }
  });

  function pageView() {
    if (w.location.href === lastUrl) return;
    lastUrl = w.location.href;
    api("track", "page_view");
  }

  // Single-page apps: a pushState navigation is a page view too.
  function watchHistory() {
    var push = w.history.pushState;
    w.history.pushState = function () {
      var r = push.apply(this, arguments);
      safe(pageView)();
      return r;
    };
    w.addEventListener("popstate", safe(pageView));
  }

  safe(function () {
    var queued = (w.edge && w.edge.q) || [];
    w.edge = api;
    watchDataLayer();
    watchTcf();
    watchHistory();
    // Calls made before the script arrived, with the ids the stub already returned.
    for (var i = 0; i < queued.length; i++) api.apply(null, queued[i]);
    pageView();
    started = true;
  })();
})(window, document);
