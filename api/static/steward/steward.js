// Steward page: keyboard decisions on a task, and JSON form posts with the session's CSRF token.
(function () {
  "use strict";
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var statusLine = document.getElementById("status");

  function say(text, bad) {
    statusLine.textContent = text;
    statusLine.className = bad ? "status error" : "status ok";
  }

  function fill(template, data) {
    return template.replace(/\{(\w+)\}/g, function (_, key) { return data[key] == null ? "" : data[key]; });
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {})
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) { throw new Error((data.error && data.error.message) || r.statusText); }
        return data;
      });
    });
  }

  var task = document.getElementById("task");
  if (task) {
    var id = task.dataset.taskId;
    var claimed = task.dataset.claimed === "1";
    var unsureForm = document.getElementById("unsure-form");
    var busy = false;

    var decide = function (decision, note) {
      if (!claimed || busy) { return; }
      busy = true;
      say("Saving " + decision + "…");
      post("/v1/review/tasks/" + id + "/decision", { decision: decision, note: note || null })
        .then(function () { location.assign(task.dataset.next); })
        .catch(function (e) { busy = false; say(e.message, true); });
    };
    var skip = function () {
      var go = function () { location.assign(task.dataset.skip); };
      if (claimed) { post("/v1/review/tasks/" + id + "/release").then(go, go); } else { go(); }
    };
    var askUnsure = function () {
      if (!claimed) { return; }
      unsureForm.hidden = false;
      document.getElementById("unsure-note").focus();
    };

    document.addEventListener("keydown", function (ev) {
      if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.target.closest("input, textarea, select")) { return; }
      var actions = {
        m: function () { decide("match"); },
        n: function () { decide("no-match"); },
        u: askUnsure,
        s: skip
      };
      if (actions[ev.key]) { ev.preventDefault(); actions[ev.key](); }
    });
    task.querySelectorAll("button[data-decision]").forEach(function (b) {
      b.addEventListener("click", function () {
        if (b.dataset.decision === "unsure") { askUnsure(); } else { decide(b.dataset.decision); }
      });
    });
    task.querySelector("button[data-skip]").addEventListener("click", skip);
    unsureForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      decide("unsure", document.getElementById("unsure-note").value.trim());
    });
  }

  document.querySelectorAll("form[data-api]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var body = {};
      Array.prototype.forEach.call(form.elements, function (el) {
        if (!el.name || el.value === "") { return; }
        body[el.name] = el.dataset.type === "int" ? Number(el.value) : el.value.trim();
      });
      say("Working…");
      post(form.dataset.api, body).then(function (data) {
        var pending = data.status === "pending_approval";
        say(fill(pending ? form.dataset.pending : form.dataset.done, data));
        if (!pending && form.dataset.go) {
          setTimeout(function () { location.assign(fill(form.dataset.go, data)); }, 600);
        }
      }).catch(function (e) { say(e.message, true); });
    });
  });
}());
