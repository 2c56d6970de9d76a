// haathi console: the directory page's form that uploads files and deletes paths as one commit
// (haathi/console/upload.py). A multipart form cannot carry the CSRF token where the server
// checks it before reading the body, so this sends it in the X-CSRF-Token header, then goes
// to the page the server answers with, or shows why it refused (nothing was committed).
(function () {
  "use strict";

  function problemOf(response, body) {
    const kind = response.headers.get("content-type") || "";
    if (kind.startsWith("application/json")) {
      try { return JSON.parse(body).message || body; } catch (e) { return body; }
    }
    const page = new DOMParser().parseFromString(body, "text/html");  // inert: nothing runs
    const message = page.querySelector(".error .message");
    return message ? message.textContent : "the server answered " + response.status;
  }

  function submit(form, event) {
    event.preventDefault();
    const problem = document.getElementById("upload-problem");
    const button = document.getElementById("commit-button");
    const data = new FormData(form);
    if (![...data.getAll("file")].some((f) => f.name) && !data.getAll("delete").length) {
      problem.textContent = "Choose files to upload or tick entries to delete.";
      problem.hidden = false;
      return;
    }
    button.disabled = true;
    button.textContent = "Committing…";
    problem.hidden = true;
    fetch(form.action, {
      method: "POST",
      body: data,
      headers: { "X-CSRF-Token": window.haathiConsole.csrfToken() },
      credentials: "same-origin",
    }).then(function (response) {
      if (response.ok && response.redirected) {
        window.location.assign(response.url);
        return null;
      }
      return response.text().then(function (body) {
        throw new Error(response.ok ? "the server did not commit" : problemOf(response, body));
      });
    }).catch(function (error) {
      problem.textContent = "Not committed: " + error.message;
      problem.hidden = false;
      button.disabled = false;
      button.textContent = "Commit";
    });
  }

  for (const form of document.querySelectorAll("form[data-upload]")) {
    form.addEventListener("submit", function (event) { submit(form, event); });
  }
})();
