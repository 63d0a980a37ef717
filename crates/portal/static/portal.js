// Progressive enhancement only: every form works without this script.
(function () {
  "use strict";
  // Live subdomain availability while the customer types.
  var input = document.getElementById("subdomain");
  var status = document.getElementById("subdomain-status");
  if (input && status && input.dataset.check) {
    var timer = null;
    var check = function () {
      var name = input.value.trim().toLowerCase();
      if (name.length === 0) { status.textContent = ""; return; }
      fetch(input.dataset.check + encodeURIComponent(name), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (body) {
          if (input.value.trim().toLowerCase() !== name) { return; }
          status.textContent = body.available ? name + " is available" : (body.reason || "not available");
          status.className = body.available ? "ok" : "taken";
        })
        .catch(function () { status.textContent = ""; });
    };
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(check, 250);
    });
  }
  // Progress while an instance is being provisioned or changed.
  var box = document.getElementById("instance");
  if (box && box.dataset.poll) {
    var poll = function () {
      fetch(box.dataset.poll, { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (body) {
          var state = body.instance && body.instance.state;
          var pending = String(body.pending_operations);
          if ((state && state !== box.dataset.state) || pending !== box.dataset.pending) { window.location.reload(); return; }
          setTimeout(poll, 1000);
        })
        .catch(function () { setTimeout(poll, 3000); });
    };
    setTimeout(poll, 1000);
  }
})();
