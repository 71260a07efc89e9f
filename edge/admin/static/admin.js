/* capi-edge dashboard: progressive enhancement, no build step, no dependencies.
 * Every page works without this script; with it, fields are checked as they lose focus,
 * pills refresh live, TEST buttons answer in place, and the debug view streams. */
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function post(url, body, json) {
    var headers = { "X-CSRF-Token": csrf, "Accept": "application/json" };
    if (json) headers["Content-Type"] = "application/json";
    return fetch(url, {
      method: "POST", headers: headers, credentials: "same-origin",
      body: json ? JSON.stringify(body) : body
    });
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /* -- connect wizard: validate each field when it loses focus -------------------------- */
  var form = document.querySelector("form[data-validate-url]");
  if (form) {
    var url = form.getAttribute("data-validate-url");
    form.querySelectorAll("input[data-validate]").forEach(function (input) {
      input.addEventListener("blur", function () {
        post(url, { field: input.name, value: input.value }, true)
          .then(function (r) { return r.json(); })
          .then(function (answer) {
            var error = form.querySelector('[data-error-for="' + input.name + '"]');
            var field = input.closest(".field");
            if (error) error.textContent = answer.ok ? "" : answer.message;
            if (answer.ok) { input.removeAttribute("aria-invalid"); field && field.classList.remove("invalid"); }
            else { input.setAttribute("aria-invalid", "true"); field && field.classList.add("invalid"); }
          })
          .catch(function () { /* the server checks again on submit */ });
      });
    });
  }

  /* -- forms answered in place (TEST, Test and activate) ------------------------------- */
  document.querySelectorAll("form[data-async]").forEach(function (f) {
    f.addEventListener("submit", function (event) {
      event.preventDefault();
      var out = document.querySelector(f.getAttribute("data-result"));
      var button = f.querySelector("button");
      if (button) button.disabled = true;
      if (out) { out.className = "test-result"; out.textContent = "Testing…"; }
      post(f.action, new URLSearchParams(new FormData(f)), false)
        .then(function (r) { return r.json(); })
        .then(function (answer) {
          if (out) {
            out.textContent = answer.message || (answer.ok ? "OK" : "failed");
            out.className = "test-result " + (answer.ok ? "good" : "bad");
          }
          if (answer.ok && answer.redirect) {
            setTimeout(function () { window.location.assign(answer.redirect); }, 900);
          }
        })
        .catch(function () { if (out) { out.textContent = "No answer from the edge."; out.className = "test-result bad"; } })
        .finally(function () { if (button) button.disabled = false; });
    });
  });

  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (event) {
      if (!window.confirm(f.getAttribute("data-confirm"))) event.preventDefault();
    });
  });

  /* -- live pills on the platforms grid ------------------------------------------------ */
  var grid = document.querySelector("[data-status-url]");
  if (grid) {
    var statusUrl = grid.getAttribute("data-status-url");
    var refresh = function () {
      fetch(statusUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (all) {
          if (!all) return;
          Object.keys(all).forEach(function (name) {
            var card = grid.querySelector('[data-platform="' + name + '"]');
            var s = all[name];
            if (!card || !s.connected) return;
            var pill = card.querySelector("[data-pill]");
            if (pill) { pill.textContent = s.pill; pill.className = "pill " + s.pill_css; pill.title = s.detail; }
            var detail = card.querySelector("[data-detail]");
            if (detail) detail.textContent = s.detail;
            ["delivered", "failed", "skipped"].forEach(function (k) {
              var node = card.querySelector('[data-count="' + k + '"]');
              if (node) node.textContent = s[k];
            });
          });
        })
        .catch(function () {});
    };
    setInterval(refresh, 3000);
  }

  /* -- dead letters: select all -------------------------------------------------------- */
  var all = document.querySelector("[data-select-all]");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll('input[name="event"]').forEach(function (box) { box.checked = all.checked; });
    });
  }

  /* -- config: load a chosen file into the textarea ------------------------------------ */
  document.querySelectorAll("input[data-load-into]").forEach(function (input) {
    input.addEventListener("change", function () {
      var target = document.querySelector(input.getAttribute("data-load-into"));
      var file = input.files && input.files[0];
      if (!target || !file) return;
      file.text().then(function (text) { target.value = text; });
    });
  });

  /* -- debug view: server-sent events -------------------------------------------------- */
  var feed = document.querySelector("[data-stream]");
  if (feed) debugView(feed);

  function debugView(feed) {
    var template = document.getElementById("hit-template");
    var live = document.querySelector("[data-live]");
    var filter = document.querySelector("[data-filter]");
    var pauseButton = document.querySelector("[data-pause]");
    var paused = false;
    var held = [];
    var cards = {};   // event_id -> card element
    var orphans = {}; // event_id -> attempts that came before their hit (after a reconnect)

    function time(at) { return new Date(at * 1000).toLocaleTimeString(); }

    function fact(text, cls) { return el("span", "fact" + (cls ? " " + cls : ""), text); }

    function matches(card) {
      var q = (filter && filter.value || "").trim().toLowerCase();
      return !q || card.getAttribute("data-search").indexOf(q) >= 0;
    }

    function addHit(hit) {
      var empty = feed.querySelector("[data-empty]");
      if (empty) empty.remove();
      var card = template.content.firstElementChild.cloneNode(true);
      card.setAttribute("data-event-id", hit.event_id);
      card.setAttribute("data-search", (hit.event + " " + hit.event_id).toLowerCase());
      card.querySelector(".event").textContent = hit.event;
      card.querySelector(".event-id").textContent = hit.event_id;
      card.querySelector(".source").textContent = hit.source;
      card.querySelector(".dup").hidden = !hit.duplicate;
      card.querySelector("time").textContent = time(hit.at);
      var page = hit.page || "(no page URL)";
      if (hit.query_names && hit.query_names.length) page += "  ?" + hit.query_names.join(", ") + " (values hidden)";
      card.querySelector(".url").textContent = page;
      var facts = card.querySelector(".facts");
      if (hit.value !== null && hit.value !== undefined) facts.appendChild(fact("value " + hit.value + " " + (hit.currency || "")));
      if (hit.order_id) facts.appendChild(fact("order " + hit.order_id));
      Object.keys(hit.consent).forEach(function (p) {
        var v = hit.consent[p];
        facts.appendChild(fact(p + ": " + v, v === "granted" ? "granted" : (v === "denied" ? "denied" : "")));
      });
      if (hit.gpc) facts.appendChild(fact("GPC", "denied"));
      facts.appendChild(fact("pixels: " + (hit.pixels.length ? hit.pixels.join(", ") : "none")));
      var body = card.querySelector(".decisions tbody");
      hit.decisions.forEach(function (d) {
        var row = el("tr");
        row.setAttribute("data-destination", d.destination);
        row.appendChild(el("td", "", d.title));
        var cell = el("td");
        cell.appendChild(el("span", "pill " + (d.status === "pending" ? "queued" : d.status), d.status === "pending" ? "queued" : d.status));
        row.appendChild(cell);
        row.appendChild(el("td", "", d.reason + (d.test_code ? " · test code " + d.test_code : "")));
        row.appendChild(el("td", "", d.platform_event || "—"));
        var answer = el("td", "answer", d.status === "pending" ? "waiting…" : "—");
        row.appendChild(answer);
        body.appendChild(row);
      });
      if (!hit.decisions.length) {
        var none = el("tr");
        var td = el("td", "muted", "No destination is connected.");
        td.colSpan = 5;
        none.appendChild(td);
        body.appendChild(none);
      }
      card.querySelector(".identity pre").textContent = JSON.stringify(hit.identity, null, 2);
      cards[hit.event_id] = card;
      card.hidden = !matches(card);
      feed.insertBefore(card, feed.firstChild);
      (orphans[hit.event_id] || []).forEach(addAttempt);
      delete orphans[hit.event_id];
      while (feed.children.length > 200) {
        var last = feed.lastElementChild;
        delete cards[last.getAttribute("data-event-id")];
        last.remove();
      }
    }

    function addAttempt(a) {
      var seen = false;
      a.event_ids.forEach(function (id) {
        var card = cards[id];
        if (!card) { (orphans[id] = orphans[id] || []).push(a); return; }
        seen = true;
        var row = card.querySelector('tr[data-destination="' + a.destination + '"] .answer');
        if (row) {
          row.textContent = "";
          var label = a.http_status ? "HTTP " + a.http_status : "no answer";
          var rejected = a.rejected && a.rejected[id];
          row.appendChild(el("span", "pill " + (rejected ? "rejected" : a.verdict), rejected ? "rejected" : a.verdict));
          row.appendChild(document.createTextNode(" " + label + " · " + Math.round(a.latency_ms) + " ms" + (a.reason ? " · " + a.reason : "") + (rejected ? " · " + rejected : "")));
        }
        var details = el("details");
        details.appendChild(el("summary", "", a.destination + ": request sent " + time(a.at) + " (" + a.event_ids.length + " event" + (a.event_ids.length > 1 ? "s" : "") + ") → " + (a.http_status || a.verdict)));
        details.appendChild(el("pre", "", JSON.stringify(a.request, null, 2)));
        if (a.answer) { details.appendChild(el("p", "muted", "The platform answered:")); details.appendChild(el("pre", "", a.answer)); }
        card.querySelector(".requests").appendChild(details);
      });
      return seen;
    }

    function handle(type, entry) {
      if (paused) { held.push([type, entry]); return; }
      if (type === "hit") addHit(entry);
      else if (type === "attempt") addAttempt(entry);
    }

    function connect() {
      var source = new EventSource(feed.getAttribute("data-stream"));
      source.addEventListener("open", function () { live.textContent = "live"; live.classList.add("on"); });
      source.addEventListener("error", function () { live.textContent = "reconnecting…"; live.classList.remove("on"); });
      ["hit", "attempt"].forEach(function (type) {
        source.addEventListener(type, function (message) { handle(type, JSON.parse(message.data)); });
      });
    }
    connect();

    if (filter) filter.addEventListener("input", function () {
      Object.keys(cards).forEach(function (id) { cards[id].hidden = !matches(cards[id]); });
    });
    if (pauseButton) pauseButton.addEventListener("click", function () {
      paused = !paused;
      pauseButton.textContent = paused ? "Resume" : "Pause";
      if (!paused) { var queued = held; held = []; queued.forEach(function (h) { handle(h[0], h[1]); }); }
    });
    var clear = document.querySelector("[data-clear]");
    if (clear) clear.addEventListener("click", function () {
      Object.keys(cards).forEach(function (id) { cards[id].remove(); });
      cards = {};
    });
  }
})();
