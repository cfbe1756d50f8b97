// flowcraft inspector: live reload of a running run's page, and a check of the resume form's
// JSON before it is sent. The pages work without it.
(function () {
  "use strict";
  var body = document.body;
  if (body.dataset.live === "1" && body.dataset.api) {
    var poll = function () {
      fetch(body.dataset.api, { headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (run) {
          if (run && run.fingerprint !== body.dataset.fingerprint) {
            window.location.replace(window.location.pathname);
          } else {
            window.setTimeout(poll, 2000);
          }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    };
    window.setTimeout(poll, 2000);
  }
  var form = document.getElementById("resume-form");
  if (form) {
    form.addEventListener("submit", function (event) {
      var text = form.elements.output.value.trim();
      var error = form.querySelector(".form-error");
      if (text === "") { return; }
      try {
        JSON.parse(text);
      } catch (e) {
        event.preventDefault();
        error.textContent = "Output is not JSON: " + e.message;
      }
    });
  }
  var cancel = document.getElementById("cancel-form");
  if (cancel) {
    cancel.addEventListener("submit", function (event) {
      if (!window.confirm("Cancel this run? Running nodes are cancelled.")) {
        event.preventDefault();
      }
    });
  }
})();
