// ptk admin dashboard: the usage view. Reads the JSON usage API (/admin/api/usage,
// /admin/api/tokens/{hash}/usage and the token's /budgets: reads, a session is enough) and builds the tables with
// textContent only: a model name is the provider's text, or a client's, never markup.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const sinceInput = $("usage-since");
  const SHOWN_TOKENS = 100; // the CSV export has every token
  const INCOMPLETE_HELP = "responses whose usage was only partly seen (an aborted stream, an " +
    "upstream error, a disconnect, a response whose usage could not be read): their counts " +
    "are what was seen";
  const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const cents = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });

  // [key in the API's JSON, header, header tooltip]; every usage table ends with these.
  const COUNTS = [
    ["requests", "Requests", "metered responses (and WebSocket sessions)"],
    ["input_tokens", "Input", "every input token, cached ones included"],
    ["cached_input_tokens", "Cached", "input tokens read from a prompt cache"],
    ["cache_write_tokens", "Cache write", "input tokens written to a prompt cache"],
    ["output_tokens", "Output", "every output token, reasoning included"],
    ["reasoning_tokens", "Reasoning", "output tokens spent on reasoning"],
    ["cost_usd", "Cost", "USD, priced when the usage arrived; \"unknown price\": a model the " +
      "price table does not know (its tokens count, its cost is left out)"],
    ["incomplete", "Incomplete", INCOMPLETE_HELP],
  ];
  // [key, header, tooltip, the cell's text]: the columns before the counts.
  const MODEL = [
    ["provider", "Provider", null, (m) => m.provider],
    ["model", "Model", "the model the provider named (the request's, if priced, when the response named none)", (m) => m.model || "(none named)"],
  ];
  const DAY = [["day", "Day", "UTC day", (d) => d.day]];
  const TOKEN = [
    ["label", "Label", "(deleted): the token is gone, its usage is kept", (t) => t.label ?? "(deleted)"],
    ["token", "Hash", "the first 12 characters of the token's hash", (t) => `${t.token.slice(0, 12)}…`],
  ];

  let shown = null; // the token whose usage panel is open: { hash, label }
  const labels = new Map(); // hash -> label, from the fleet's answer

  // admin.js's one place for calls (CSRF header, 401 -> login, errors for the banner).
  const { call, flash } = window.ptkAdmin;

  async function getJSON(url) {
    return (await call("GET", url)).json();
  }

  // A cost as money, from the API's exact nanodollars (`cost_nano_usd`): cents from $1 on
  // ("$1,234.57"), below that every significant decimal (at least two), so a tiny cost never
  // shows as $0.00; an API without that field: its six-decimal `cost_usd`.
  function usd(c) {
    const nano = Number(c.cost_nano_usd);
    if (!Number.isSafeInteger(nano) || nano < 0) return `$${c.cost_usd}`;
    if (nano === 0 || nano >= 1e9) return `$${cents.format(nano / 1e9)}`;
    const decimals = String(nano).padStart(9, "0").replace(/0+$/, "").padEnd(2, "0");
    return `$0.${decimals}`;
  }

  function costCell(td, c) {
    td.title = `${c.cost_usd} USD`;
    if (!c.unknown_price) {
      td.textContent = usd(c);
      return;
    }
    td.classList.add("unknown-price");
    td.textContent = Number(c.cost_nano_usd ?? c.cost_usd) > 0 ? `${usd(c)} + unknown price` : "unknown price";
    td.title = `${c.unpriced_requests} of ${c.requests} responses had no price (a model the ` +
      `price table does not know): their cost is not in the ${c.cost_usd} USD`;
  }

  function headCell(row, key, name, help) {
    const th = document.createElement("th");
    th.textContent = name;
    th.dataset.col = key;
    if (help) th.title = help;
    row.appendChild(th);
  }

  // Fills `table` with the `lead` columns and the counts, one row per item; `action` adds a
  // last column with a "usage" button for rows that name a token.
  function fill(table, lead, items, action) {
    const head = document.createElement("thead");
    const headRow = head.insertRow();
    for (const [key, name, help] of [...lead, ...COUNTS]) headCell(headRow, key, name, help);
    if (action) headCell(headRow, "action", "", null);
    const body = document.createElement("tbody");
    for (const item of items) {
      const row = body.insertRow();
      for (const [key, , , text] of lead) {
        const td = row.insertCell();
        td.dataset.col = key;
        td.textContent = text(item);
        if (key === "token") td.title = item.token;
      }
      for (const [key] of COUNTS) {
        const td = row.insertCell();
        td.dataset.col = key;
        td.className = "num";
        if (key === "cost_usd") costCell(td, item);
        else td.textContent = integer.format(item[key]);
        if (key === "incomplete" && item.incomplete > 0) td.classList.add("warn");
      }
      if (action) {
        row.dataset.token = item.token;
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.token = item.token;
        button.textContent = "usage";
        row.insertCell().appendChild(button);
      }
    }
    table.replaceChildren(head, body);
  }

  function sinceQuery() {
    return sinceInput.value ? `?since=${encodeURIComponent(sinceInput.value)}` : "";
  }

  function showEmpty(el, what, since, empty) {
    el.textContent = empty ? `Nothing metered ${what}since ${since} (UTC).` : "";
    el.hidden = !empty;
  }

  async function loadFleet() {
    const data = await getJSON(`/admin/api/usage${sinceQuery()}`);
    if (!sinceInput.value) sinceInput.value = data.since;
    $("usage-csv").href = `/admin/api/usage.csv?since=${encodeURIComponent(data.since)}`;
    const empty = data.models.length === 0 && data.tokens.length === 0;
    showEmpty($("usage-empty"), "", data.since, empty);
    $("usage-fleet").hidden = empty;
    labels.clear();
    data.tokens.forEach((t) => labels.set(t.token, t.label));
    fill($("usage-tokens"), TOKEN, data.tokens.slice(0, SHOWN_TOKENS), true);
    const more = $("usage-tokens-more");
    more.hidden = data.tokens.length <= SHOWN_TOKENS;
    more.textContent = more.hidden ? "" :
      `The ${SHOWN_TOKENS} costliest of ${integer.format(data.tokens.length)} tokens; the CSV has all.`;
    fill($("usage-models"), MODEL, data.models, false);
  }

  // A budget's name, e.g. "token · cost per day" or "group research · tokens per minute".
  function budgetName(b) {
    const who = b.scope === "group" ? `group ${b.group ?? ""}` : "token";
    const what = b.kind === "tpm" ? "tokens" : b.kind;
    return `${who} · ${what} per ${b.period}`;
  }

  // A budget amount in its unit: nanodollars for cost budgets, tokens otherwise.
  function budgetAmount(b, value) {
    if (b.kind !== "cost") return integer.format(value);
    return usd({ cost_nano_usd: value, cost_usd: (Number(value) / 1e9).toFixed(6) });
  }

  // [key, header, tooltip, the cell's text] of the budgets table.
  const BUDGET = [
    ["budget", "Budget", "whose budget (the token's own or its group's), what it counts and its calendar UTC period", budgetName],
    ["limit", "Limit", null, (b) => budgetAmount(b, b.limit)],
    ["spent", "Spent", "settled this period: metered usage, plus the estimate of requests that ended without their usage", (b) => budgetAmount(b, b.spent)],
    ["reserved", "Reserved", "held by grants the filters have not settled yet", (b) => budgetAmount(b, b.reserved)],
    ["remaining", "Remaining", "limit − spent − reserved", (b) => budgetAmount(b, b.remaining)],
    ["resets_at", "Resets (UTC)", "when the period ends and the budget starts again", (b) => b.resets_at.replace("T", " ").replace(/:00Z$/, "").replace(/Z$/, "")],
  ];

  // The token's budgets (none for a deleted token: the section stays hidden).
  async function loadBudgets(hash) {
    let data;
    try {
      data = await getJSON(`/admin/api/tokens/${encodeURIComponent(hash)}/budgets`);
    } catch {
      $("token-budgets").hidden = true;
      return;
    }
    if (!shown || shown.hash !== hash) return;
    const table = $("token-budgets-table");
    const head = document.createElement("thead");
    const headRow = head.insertRow();
    for (const [key, name, help] of BUDGET) headCell(headRow, key, name, help);
    const body = document.createElement("tbody");
    for (const b of data.budgets) {
      const row = body.insertRow();
      for (const [key, , , text] of BUDGET) {
        const td = row.insertCell();
        td.dataset.col = key;
        td.textContent = text(b);
        if (key !== "budget" && key !== "resets_at") td.className = "num";
        if (key === "remaining" && Number(b.remaining) === 0) td.classList.add("warn");
      }
    }
    table.replaceChildren(head, body);
    table.hidden = data.budgets.length === 0;
    $("token-budgets-none").hidden = data.budgets.length > 0;
    $("token-budgets").hidden = false;
  }

  async function loadToken() {
    if (!shown) return;
    const { hash, label } = shown;
    const data = await getJSON(`/admin/api/tokens/${encodeURIComponent(hash)}/usage${sinceQuery()}`);
    if (!shown || shown.hash !== hash) return; // another token was opened meanwhile
    $("token-usage-name").textContent = `${label ?? "(deleted token)"} (${hash.slice(0, 12)}…)`;
    $("token-usage-name").title = hash;
    const empty = data.models.length === 0;
    showEmpty($("token-usage-empty"), "for this token ", data.since, empty);
    $("token-usage-tables").hidden = empty;
    fill($("token-usage-models"), MODEL, data.models, false);
    fill($("token-usage-days"), DAY, data.per_day, false);
    $("token-usage").hidden = false;
    await loadBudgets(hash);
  }

  async function load(...loaders) {
    try {
      for (const loader of loaders) await loader();
    } catch (e) {
      flash(e.message);
    }
  }

  async function open(hash, label) {
    shown = { hash, label };
    await load(loadToken);
    $("token-usage").scrollIntoView({ block: "start" });
  }

  // "usage" in the token table (rendered by the server) and in the fleet's token table.
  $("rows").addEventListener("click", (event) => {
    const button = event.target.closest('button[data-action="usage"]');
    if (!button) return;
    const row = button.closest("tr[data-hash]");
    open(row.dataset.hash, row.querySelector("td.label").textContent);
  });
  $("usage-tokens").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-token]");
    if (button) open(button.dataset.token, labels.get(button.dataset.token));
  });
  $("token-usage-close").addEventListener("click", () => {
    shown = null;
    $("token-usage").hidden = true;
  });
  sinceInput.addEventListener("change", () => load(loadFleet, loadToken));
  $("usage-refresh").addEventListener("click", () => load(loadFleet, loadToken));
  load(loadFleet);
})();
