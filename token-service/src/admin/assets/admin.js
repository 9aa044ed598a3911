// ptk admin dashboard. Vanilla JS, served from /admin/static/ (the CSP allows no inline code).
// The server renders the rows; this script sends JSON API calls and re-fetches the rows of
// the page on screen only (one page of the list, newest first; "older"/"newer" move by cursor).
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const rowsEl = document.getElementById("rows");
  const flashEl = document.getElementById("flash");
  const REFRESH_MS = 5000;
  const prevButton = document.getElementById("prev-page");
  const nextButton = document.getElementById("next-page");
  // The `after` cursor of every page walked through, the shown one last (null = first page).
  const pages = [null];
  let nextCursor = nextButton.dataset.after || null;

  function showPager() {
    prevButton.disabled = pages.length < 2;
    nextButton.disabled = !nextCursor;
  }

  function flash(message) {
    flashEl.textContent = message || "";
    flashEl.hidden = !message;
  }

  function backToLogin() {
    window.location.assign("/admin");
  }

  // One place for every call: CSRF header, 401 -> login, server errors shown to the user.
  async function call(method, url, body) {
    const options = { method, credentials: "same-origin", headers: { "x-csrf-token": csrf } };
    if (body !== undefined) {
      options.headers["content-type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (e) {
      throw new Error("network error - token-service unreachable");
    }
    if (response.status === 401) {
      backToLogin();
      throw new Error("session expired");
    }
    if (!response.ok) {
      let message = `request failed (${response.status})`;
      try {
        const data = await response.json();
        if (data && data.error && data.error.message) message = data.error.message;
      } catch (e) { /* not JSON: keep the status line */ }
      throw new Error(message);
    }
    return response;
  }

  // Shared with usage.js (loaded after this script), so the view keeps these rules too.
  window.ptkAdmin = { call, flash };

  function localize(root) {
    const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
    root.querySelectorAll("time[datetime]").forEach((el) => {
      const at = new Date(el.getAttribute("datetime"));
      if (!Number.isNaN(at.getTime())) {
        el.title = el.getAttribute("datetime");
        el.textContent = format.format(at);
      }
    });
  }

  function editing() {
    return Array.from(rowsEl.querySelectorAll(".expiry-editor, .text-editor"))
      .some((el) => !el.hidden);
  }

  // Re-reads the shown page only; the server answers its rows and the next page's cursor.
  async function refresh() {
    if (document.hidden || editing()) return;
    const after = pages[pages.length - 1];
    const url = "/admin/fragments/tokens" + (after ? `?after=${encodeURIComponent(after)}` : "");
    try {
      const response = await call("GET", url);
      const html = await response.text();
      if (editing() || after !== pages[pages.length - 1]) return; // moved on while we waited
      // Every token of a later page was deleted: step back instead of showing "no tokens".
      if (pages.length > 1 && !html.includes("data-hash=")) {
        pages.pop();
        return refresh();
      }
      rowsEl.innerHTML = html;
      nextCursor = response.headers.get("x-next-cursor");
      showPager();
      localize(rowsEl);
    } catch (e) {
      flash(e.message);
    }
  }

  nextButton.addEventListener("click", () => {
    if (!nextCursor) return;
    pages.push(nextCursor);
    closeEditors();
    refresh();
  });

  prevButton.addEventListener("click", () => {
    if (pages.length < 2) return;
    pages.pop();
    closeEditors();
    refresh();
  });

  // Runs a mutation, then shows its error or clears the flash, then refreshes the rows.
  async function mutate(method, url, body) {
    try {
      await call(method, url, body);
      flash("");
    } catch (e) {
      flash(e.message);
    }
    closeEditors();
    await refresh();
  }

  // datetime-local gives local wall time without a zone; the API wants an instant.
  function toInstant(localValue) {
    const at = new Date(localValue);
    return Number.isNaN(at.getTime()) ? null : at.toISOString();
  }

  function toLocalInput(iso) {
    const at = new Date(iso);
    if (Number.isNaN(at.getTime())) return "";
    const pad = (n) => String(n).padStart(2, "0");
    return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}` +
      `T${pad(at.getHours())}:${pad(at.getMinutes())}`;
  }

  function closeEditors() {
    rowsEl.querySelectorAll(".expiry-editor, .text-editor").forEach((el) => { el.hidden = true; });
  }

  // "a, b ,c" -> ["a", "b", "c"]; blank -> null (any model).
  function modelList(text) {
    const list = (text || "").split(",").map((m) => m.trim()).filter((m) => m);
    return list.length ? list : null;
  }

  // A text editor (models, key pool) starts from the cell's data- attribute, the stored value.
  function openTextEditor(row, field, current) {
    const editor = row.querySelector(`.text-editor[data-field="${field}"]`);
    editor.value = current || "";
    editor.hidden = false;
    editor.focus();
  }

  function saveTextEditor(editor) {
    const row = editor.closest("tr[data-hash]");
    const value = editor.value.trim();
    const body = editor.dataset.field === "models"
      ? { models: modelList(value) }
      : { key_pool: value || null };
    mutate("PATCH", `/admin/api/tokens/${row.dataset.hash}`, body);
  }

  rowsEl.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const row = button.closest("tr[data-hash]");
    const url = `/admin/api/tokens/${row.dataset.hash}`;
    switch (button.dataset.action) {
      case "toggle":
        mutate("PATCH", url, { status: button.dataset.next });
        break;
      case "delete":
        if (window.confirm("Delete this token? Clients using it are refused at once.")) {
          mutate("DELETE", url);
        }
        break;
      case "copy-hash":
        copy(row.dataset.hash, button);
        break;
      case "clear-expiry":
        mutate("PATCH", url, { expires_at: null });
        break;
      case "edit-models":
        openTextEditor(row, "models", row.querySelector("td.models").dataset.models);
        break;
      case "edit-key-pool":
        openTextEditor(row, "key_pool", row.querySelector("td.key-pool").dataset.keyPool);
        break;
      case "edit-expiry": {
        const editor = row.querySelector(".expiry-editor");
        editor.value = row.dataset.expires ? toLocalInput(row.dataset.expires) : "";
        editor.hidden = false;
        editor.focus();
        break;
      }
    }
  });

  rowsEl.addEventListener("change", (event) => {
    const editor = event.target.closest(".expiry-editor");
    if (!editor || !editor.value) return;
    const row = editor.closest("tr[data-hash]");
    const at = toInstant(editor.value);
    if (!at) { flash("invalid expiry"); return; }
    mutate("PATCH", `/admin/api/tokens/${row.dataset.hash}`, { expires_at: at });
  });

  rowsEl.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && event.target.closest(".expiry-editor, .text-editor")) {
      closeEditors();
      refresh();
    }
    const text = event.target.closest(".text-editor");
    if (event.key === "Enter" && text) {
      event.preventDefault();
      saveTextEditor(text);
    }
  });

  // The create form: JSON to the API, then the plaintext (once) with the snippets.
  const form = document.getElementById("create");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = { label: data.get("label"), providers: data.getAll("providers") };
    const token = (data.get("token") || "").trim();
    if (token) body.token = token;
    if (data.get("expires")) {
      body.expires_at = toInstant(data.get("expires"));
      if (!body.expires_at) { flash("invalid expiry"); return; }
    }
    const count = data.get("rl_count");
    const windowS = data.get("rl_window");
    if (count || windowS) body.rate_limit = { count: Number(count), window_s: Number(windowS) };
    const models = modelList(data.get("models"));
    if (models) body.models = models;
    const pool = (data.get("key_pool") || "").trim();
    if (pool) body.key_pool = pool;
    try {
      const response = await call("POST", "/admin/api/tokens", body);
      const created = await response.json();
      showCreated(created.token, created.providers || []);
      form.reset();
      flash("");
      pages.length = 1; // the new token is the newest: show the first page
    } catch (e) {
      flash(e.message);
    }
    await refresh();
  });

  // The plaintext once, with the snippets of the token's own scopes only.
  function showCreated(token, providers) {
    document.getElementById("created-token").textContent = token;
    document.querySelectorAll("#created .snippet-block").forEach((block) => {
      block.hidden = !providers.includes(block.dataset.provider);
      const pre = block.querySelector("pre.snippet");
      pre.textContent = block.hidden ? "" : pre.dataset.template.split("__PTK_TOKEN__").join(token);
    });
    document.getElementById("created").hidden = false;
  }

  async function copy(text, button) {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "copied";
    } catch (e) {
      flash("copy failed: select the text and copy it by hand");
    }
  }

  document.getElementById("copy-token").addEventListener("click", (event) => {
    copy(document.getElementById("created-token").textContent, event.target);
  });

  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  setInterval(refresh, REFRESH_MS);
  showPager();
  localize(rowsEl);
  const keysEl = document.getElementById("keys");
  if (keysEl) localize(keysEl);
})();
