// The comité de pilotage's dashboard page. Fed only by the public GraphQL API (the same
// queries any client may send), with the token the user pastes, kept in sessionStorage
// so that it dies with the browser session. No framework, no build step, no outside
// address: the tracker may run in a closed network.
"use strict";

const TOKEN_KEY = "convention-tracker-token";
const NNBSP = "\u202f"; // French thousands separator

// ---------------------------------------------------------------- formatting
// Amounts arrive as decimal strings ("39268.87"); they are formatted as strings, never
// through floating point, so the page shows exactly the cents the API answered.
function groupDigits(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, NNBSP);
}
function euros(amount) {
  if (amount === null || amount === undefined) return "—";
  const s = String(amount);
  const negative = s.startsWith("-");
  const [whole, cents = ""] = (negative ? s.slice(1) : s).split(".");
  return `${negative ? "−" : ""}${groupDigits(whole)},${(cents + "00").slice(0, 2)}${NNBSP}€`;
}
function count(n) {
  return n === null || n === undefined ? "—" : groupDigits(String(n));
}
function days(n) {
  return n === null || n === undefined ? "—" : `${String(n).replace(".", ",")}${NNBSP}j`;
}
function percent(p) {
  return `${String(p).replace(".", ",")}${NNBSP}%`;
}
/// Only to size bars and shade the map; figures shown are always the API's strings.
function magnitude(v) {
  const x = Number(v);
  return Number.isFinite(x) ? x : 0;
}

const CLAIM_STATES = {
  SUBMITTED: "Déposée",
  CHANGES_REQUESTED: "À compléter",
  REJECTED: "Rejetée",
  APPROVED: "Approuvée",
  AWAITING_FUNDS: "En attente de fonds",
  FUNDED: "Financée",
  PAID: "Payée par l’OPCO",
  IN_FUNDS_CALL: "Dans un appel de fonds",
  REIMBURSED: "Remboursée par l’ANCT",
};
const TARGETS = {
  TRAININGS: "Personnes formées",
  AIDANTS_TRAINED: "Aidants formés (Aidants Connect)",
  HABILITATIONS: "Habilitations Aidants Connect",
  CERTIFICATIONS: "Certifications Pix",
  CCAS_ACTIONS: "Actions CCAS",
};
const INDICATORS = {
  trainees: { label: "personnes formées", value: (i) => i.training.trainees, show: count },
  habilitated: { label: "habilitations", value: (i) => i.habilitations.habilitated, show: count },
  reimbursed: { label: "frais annexes remboursés", value: (i) => i.reimbursements.reimbursed, show: euros },
  committed: { label: "engagés", value: (i) => i.budget.committed, show: euros },
};
// Light to dark blue; the darkest has a 12:1 contrast on white.
const SHADES = ["#f0f0f0", "#dcdcfc", "#a9a9f5", "#6a6af4", "#2f2fd6", "#000091"];

// ---------------------------------------------------------------- GraphQL
const FIGURES = `fragment Figures on Indicators {
  budget { committed released serviceDone paid }
  training { trainees certifying certifyingPercent }
  habilitations { habilitated byStatus { status count } }
  pix { certifications }
  ccas { actions }
  reimbursements { claimed eligible approved paid reimbursed reductionsByCap
    byStatus { status count } meanDaysToPaid p90DaysToPaid meanDaysToReimbursed p90DaysToReimbursed
    overdueClaims lateFundsCalls }
}`;
const BOARD = `query Board($minPosition: Int) {
  conventions { id code partner title total budget { allocated committed serviceDone paid consumedPercent } }
  dashboard(minPosition: $minPosition) {
    position
    targets { kind target reached percent }
    total { ...Figures }
    regions { region { code name } indicators { ...Figures } }
    departements { edges { node { departement { code name region { code name } } indicators { ...Figures } } } }
  }
}
${FIGURES}`;
const REPORT = `query Report($asOf: Date) { report(asOf: $asOf) }`;

class ApiError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

async function graphql(query, variables) {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${state.token}` },
    body: JSON.stringify({ query, variables }),
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`le serveur a répondu ${response.status} sans réponse lisible`);
  }
  if (body.errors && body.errors.length) {
    const e = body.errors[0];
    throw new ApiError(e.message, (e.extensions && e.extensions.code) || String(response.status));
  }
  return body.data;
}

// ---------------------------------------------------------------- state
const state = {
  token: null,
  board: null, // the last Board answer
  position: 0,
  selected: null, // { kind: "departement" | "region", code }
  socket: null,
  reconnect: null,
  loading: null,
  map: null,
};

const $ = (id) => document.getElementById(id);
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}
const SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

/// Fills `<dd data-figure=…>` elements: the shown text and, in `data-value`, the API's own value.
function fill(container, values) {
  for (const dd of container.querySelectorAll("[data-figure]")) {
    const entry = values[dd.dataset.figure];
    if (!entry) continue;
    const [raw, show] = entry;
    dd.textContent = show(raw);
    dd.dataset.value = raw === null || raw === undefined ? "" : String(raw);
  }
}

function figuresOf(i) {
  const r = i.reimbursements;
  return {
    committed: [i.budget.committed, euros],
    serviceDone: [i.budget.serviceDone, euros],
    paid: [i.budget.paid, euros],
    trainees: [i.training.trainees, count],
    habilitated: [i.habilitations.habilitated, count],
    certifications: [i.pix.certifications, count],
    ccasActions: [i.ccas.actions, count],
    claimed: [r.claimed, euros],
    eligible: [r.eligible, euros],
    approved: [r.approved, euros],
    claimsPaid: [r.paid, euros],
    reimbursed: [r.reimbursed, euros],
    reductionsByCap: [r.reductionsByCap, euros],
    meanDaysToPaid: [r.meanDaysToPaid, days],
    p90DaysToPaid: [r.p90DaysToPaid, days],
    meanDaysToReimbursed: [r.meanDaysToReimbursed, days],
    overdueClaims: [r.overdueClaims, count],
    lateFundsCalls: [r.lateFundsCalls, count],
  };
}

// ---------------------------------------------------------------- rendering
/// Progress against the conventions' targets; an indicator no convention sets a target
/// for is still shown, with its count, so the four counts of the plan are always there.
function renderTargets(targets, total) {
  const list = $("targets");
  list.replaceChildren();
  const reached = {
    TRAININGS: total.training.trainees,
    // Trained: the training completed, habilitated since or not (revoked ones were).
    AIDANTS_TRAINED: total.habilitations.byStatus
      .filter((s) => ["TRAINING_COMPLETED", "HABILITATED", "REVOKED"].includes(s.status))
      .reduce((sum, s) => sum + s.count, 0),
    HABILITATIONS: total.habilitations.habilitated,
    CERTIFICATIONS: total.pix.certifications,
    CCAS_ACTIONS: total.ccas.actions,
  };
  for (const kind of Object.keys(TARGETS)) {
    const t = targets.find((t) => t.kind === kind);
    const label = TARGETS[kind];
    const id = `target-${kind}`;
    if (!t) {
      list.append(
        el("li", { "data-target": kind, "data-reached": String(reached[kind]) },
          el("div", { id, text: `${label} : ${count(reached[kind])}` }),
          el("div", { class: "hint", text: "aucun objectif chiffré dans les conventions" })),
      );
      continue;
    }
    const progress = el("progress", { max: String(t.target), value: String(Math.min(t.reached, t.target)), "aria-labelledby": id });
    list.append(
      el(
        "li",
        { "data-target": kind, "data-reached": String(t.reached), "data-goal": String(t.target) },
        el("div", { id, text: `${label} : ${count(t.reached)} sur ${count(t.target)} (${percent(t.percent)})` }),
        progress,
      ),
    );
  }
}

function renderConventions(conventions) {
  const box = $("conventions");
  box.replaceChildren();
  const rows = [
    ["allocated", "Alloué"],
    ["committed", "Engagé"],
    ["serviceDone", "Service fait"],
    ["paid", "Payé"],
  ];
  for (const c of conventions) {
    const total = magnitude(c.total) || 1;
    const description = rows.map(([k, label]) => `${label} ${euros(c.budget[k])}`).join(", ");
    // Plain HTML bars: they grow with the type size (a projector), and the amounts
    // stay text. For assistive technologies the whole chart is one image whose name
    // says every amount.
    const chart = el("div", { class: "bars", role: "img", "aria-label": `${c.code}, sur ${euros(c.total)} : ${description}` });
    for (const [k, label] of rows) {
      const share = Math.max(0, Math.min(1, magnitude(c.budget[k]) / total)) * 100;
      chart.append(
        el(
          "div",
          { class: "bar-row" },
          el("span", { text: label }),
          el("span", { class: "track" }, el("span", { class: `fill bar-${k === "serviceDone" ? "service" : k}`, style: `width:${share.toFixed(2)}%` })),
          el("span", { class: "amount", text: euros(c.budget[k]) }),
        ),
      );
    }
    box.append(
      el(
        "article",
        { class: "convention", "data-convention": c.code },
        el("h4", {}, `${c.code} `, el("span", { class: "partner", text: `· ${c.partner}` })),
        el("p", { class: "hint", text: `${c.title} — total ${euros(c.total)}, consommé ${percent(c.budget.consumedPercent)}` }),
        chart,
      ),
    );
  }
}

function renderClaimStates(container, byStatus) {
  container.replaceChildren();
  const total = byStatus.reduce((s, c) => s + c.count, 0);
  for (const key of Object.keys(CLAIM_STATES)) {
    const n = (byStatus.find((c) => c.status === key) || { count: 0 }).count;
    const share = total ? (100 * n) / total : 0;
    container.append(
      el(
        "li",
        { "data-state": key },
        el("span", { text: CLAIM_STATES[key] }),
        el("span", { class: "track", "aria-hidden": "true" }, el("span", { class: "fill", style: `width:${share.toFixed(1)}%` })),
        el("span", { class: "count", text: count(n) }),
      ),
    );
  }
}

async function buildMap() {
  const shapes = await (await fetch("/dashboard/departements.json")).json();
  const map = svg("svg", { viewBox: shapes.viewBox, role: "group", "aria-label": "Carte de la France métropolitaine par département" });
  const paths = {};
  const add = (parent, code, d) => {
    const p = svg("path", { d, class: "dep", "data-code": code, tabindex: "0", role: "button" });
    p.append(svg("title"));
    p.addEventListener("click", () => select("departement", code));
    p.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        select("departement", code);
      }
    });
    parent.append(p);
    paths[code] = p;
  };
  for (const [code, d] of Object.entries(shapes.metropole)) add(map, code, d);
  $("map").replaceChildren(map);
  const overseas = $("overseas");
  overseas.replaceChildren();
  for (const o of shapes.overseas) {
    const small = svg("svg", { viewBox: o.viewBox, role: "group" });
    add(small, o.code, o.d);
    const caption = el("figcaption", { "data-caption": o.code, text: o.code });
    overseas.append(el("figure", {}, small, caption));
  }
  state.map = paths;
}

function departementRows() {
  return state.board ? state.board.dashboard.departements.edges.map((e) => e.node) : [];
}

function renderMap() {
  if (!state.map || !state.board) return;
  const indicator = INDICATORS[$("indicator").value];
  const rows = departementRows();
  const max = Math.max(0, ...rows.map((r) => magnitude(indicator.value(r.indicators))));
  const region = $("region").value;
  for (const r of rows) {
    const code = r.departement.code;
    const path = state.map[code];
    if (!path) continue;
    const raw = indicator.value(r.indicators);
    const v = magnitude(raw);
    const shade = v <= 0 || max <= 0 ? 0 : Math.min(5, 1 + Math.floor((4 * v) / max + 1e-9));
    path.style.fill = SHADES[shade];
    const label = `${r.departement.name} (${code}) : ${indicator.show(raw)} ${indicator.label}`;
    path.setAttribute("aria-label", label);
    path.querySelector("title").textContent = label;
    path.classList.toggle("dimmed", Boolean(region) && r.departement.region.code !== region);
    path.classList.toggle("selected", state.selected?.kind === "departement" && state.selected.code === code);
    const caption = document.querySelector(`[data-caption="${code}"]`);
    if (caption) caption.textContent = r.departement.name;
  }
  const top = rows.map((r) => indicator.value(r.indicators)).find((x) => magnitude(x) === max) ?? 0;
  $("map-caption").textContent = `Carte des départements : ${indicator.label} (plus foncé = plus élevé).`;
  const scale = $("scale");
  scale.replaceChildren(
    el("b", { text: "aucun" }),
    ...SHADES.map((c) => el("i", { style: `background:${c}` })),
    el("b", { text: `jusqu’à ${indicator.show(top)}` }),
  );
}

function renderTable() {
  const tbody = $("departements-table").querySelector("tbody");
  const region = $("region").value;
  tbody.replaceChildren(
    ...departementRows()
      .filter((r) => !region || r.departement.region.code === region)
      .map((r) =>
        el(
          "tr",
          { "data-departement": r.departement.code },
          el("th", { scope: "row", text: `${r.departement.name} (${r.departement.code})` }),
          el("td", { text: r.departement.region.name }),
          el("td", { class: "num", text: count(r.indicators.training.trainees) }),
          el("td", { class: "num", text: count(r.indicators.habilitations.habilitated) }),
          el("td", { class: "num", text: euros(r.indicators.reimbursements.reimbursed) }),
          el("td", { class: "num", text: euros(r.indicators.budget.committed) }),
        ),
      ),
  );
}

function renderTerritory() {
  const box = $("territory");
  const figures = $("territory-figures");
  const s = state.selected;
  let found = null;
  if (s && state.board) {
    if (s.kind === "departement") {
      const r = departementRows().find((r) => r.departement.code === s.code);
      if (r) found = { title: `${r.departement.name} (${r.departement.code}) — ${r.departement.region.name}`, indicators: r.indicators };
    } else {
      const r = state.board.dashboard.regions.find((r) => r.region.code === s.code);
      if (r) found = { title: `Région ${r.region.name}`, indicators: r.indicators };
    }
  }
  box.dataset.kind = found ? s.kind : "";
  box.dataset.code = found ? s.code : "";
  $("territory-title").textContent = found ? found.title : "Choisissez un département ou une région";
  figures.hidden = !found;
  if (found) fill(figures, figuresOf(found.indicators));
}

function renderRegions() {
  const select = $("region");
  if (select.options.length > 1 || !state.board) return;
  for (const r of state.board.dashboard.regions) select.append(el("option", { value: r.region.code, text: r.region.name }));
}

function render() {
  const board = state.board;
  const d = board.dashboard;
  state.position = d.position;
  $("position").textContent = count(d.position);
  $("position").dataset.value = String(d.position);
  fill($("national"), figuresOf(d.total));
  fill($("claims"), figuresOf(d.total));
  renderTargets(d.targets, d.total);
  renderConventions(board.conventions);
  renderRegions();
  renderMap();
  renderTable();
  renderTerritory();
  renderClaimStates($("claim-states"), d.total.reimbursements.byStatus);
  document.body.dataset.position = String(d.position);
}

function select(kind, code) {
  state.selected = code ? { kind, code } : null;
  if (kind === "departement" && code) {
    // A département outside the chosen région: show the whole country again.
    const r = departementRows().find((r) => r.departement.code === code);
    if (r && $("region").value && $("region").value !== r.departement.region.code) $("region").value = "";
  }
  renderMap();
  renderTable();
  renderTerritory();
}

// ---------------------------------------------------------------- loading and live updates
async function load(minPosition) {
  // One load at a time; a newer request waits for the running one, then runs.
  const previous = state.loading;
  const run = (async () => {
    if (previous) await previous.catch(() => {});
    if (minPosition !== undefined && minPosition <= state.position) return;
    state.board = await graphql(BOARD, { minPosition: minPosition ?? null });
    $("load-error").textContent = "";
    render();
  })();
  state.loading = run;
  try {
    await run;
  } catch (e) {
    if (e.code === "UNAUTHENTICATED" && !$("board").hidden) {
      // The token was revoked while the page was open: back to the login form.
      leave();
      $("login-error").textContent = "Votre jeton n’est plus valide : collez-en un nouveau.";
    } else {
      $("load-error").textContent = `Les chiffres n’ont pas pu être chargés : ${e.message}`;
    }
    throw e;
  } finally {
    if (state.loading === run) state.loading = null;
  }
}

function setLive(on) {
  const live = $("live");
  live.dataset.state = on ? "on" : "off";
  live.textContent = on ? "En direct" : "Hors ligne";
}

/// Follows `dashboardUpdates` over graphql-transport-ws; each push reloads the figures
/// at (at least) the pushed position, so every part of the page moves together.
function follow() {
  stopFollowing();
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql/ws`;
  const socket = new WebSocket(url, "graphql-transport-ws");
  state.socket = socket;
  socket.onopen = () => socket.send(JSON.stringify({ type: "connection_init", payload: { Authorization: `Bearer ${state.token}` } }));
  socket.onmessage = (message) => {
    const m = JSON.parse(message.data);
    if (m.type === "connection_ack") {
      setLive(true);
      socket.send(JSON.stringify({ id: "national", type: "subscribe", payload: { query: "subscription { dashboardUpdates { position } }" } }));
    } else if (m.type === "next" && m.payload.data) {
      const position = m.payload.data.dashboardUpdates.position;
      if (position > state.position) load(position).catch(() => {});
    } else if (m.type === "ping") {
      socket.send(JSON.stringify({ type: "pong" }));
    }
  };
  socket.onclose = () => {
    if (state.socket !== socket) return;
    setLive(false);
    if (state.token) state.reconnect = setTimeout(follow, 3000);
  };
}

function stopFollowing() {
  clearTimeout(state.reconnect);
  if (state.socket) {
    const s = state.socket;
    state.socket = null;
    s.close();
  }
  setLive(false);
}

// ---------------------------------------------------------------- the report at a date
async function showReport(asOf) {
  const box = $("report");
  box.replaceChildren(el("p", { text: "Rejeu du journal…" }));
  let report;
  try {
    report = (await graphql(REPORT, { asOf })).report;
  } catch (e) {
    box.replaceChildren(el("p", { class: "error", role: "alert", text: `Rapport impossible : ${e.message}` }));
    return;
  }
  const h = report.header;
  const integrity = h.intact
    ? el("span", { class: "intact", text: "journal intègre" })
    : el("span", { class: "altered", text: "journal ALTÉRÉ : chiffres non fiables" });
  const table = el(
    "table",
    { id: "report-table" },
    el("caption", { text: `Situation au ${asOf}` }),
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        ...["Convention", "Total", "Alloué", "Engagé", "Service fait", "Payé", "Frais annexes remboursés"].map((t, i) =>
          el("th", { scope: "col", class: i ? "num" : "", text: t }),
        ),
      ),
    ),
    el(
      "tbody",
      {},
      ...report.conventions.map((c) =>
        el(
          "tr",
          { "data-convention": c.code },
          el("th", { scope: "row", text: `${c.code} (${c.partner})` }),
          ...[c.total, c.budget.allocated, c.budget.committed, c.budget.serviceDone, c.budget.paid, c.annexCosts.reimbursed].map((v, i) =>
            el("td", { class: "num", "data-column": ["total", "allocated", "committed", "serviceDone", "paid", "reimbursed"][i], "data-value": v, text: euros(v) }),
          ),
        ),
      ),
    ),
  );
  const corrections = report.corrections.length
    ? el(
        "details",
        { id: "report-corrections" },
        el("summary", { text: `${count(report.corrections.length)} correction(s) jusqu’à cette date (libérations, avenants en baisse)` }),
        el(
          "ul",
          {},
          ...report.corrections.map((c) =>
            el("li", {
              text: `${c.businessDate} · ${c.eventType}${c.reference ? ` ${c.reference}` : ""}${c.effect ? ` (${c.effect})` : ""} — ${
                c.correction || ""
              } (position ${c.position}, par ${c.actor})`,
            }),
          ),
        ),
      )
    : el("p", { text: "Aucune correction jusqu’à cette date." });
  box.replaceChildren(
    el(
      "p",
      { class: "report-header" },
      `${count(h.eventsInReport)} événements jusqu’au ${asOf} ; journal lu jusqu’à la position ${count(h.logPosition)}, `,
      integrity,
      ".",
    ),
    report.conventions.length ? table : el("p", { text: "Aucune convention n’était signée à cette date." }),
    corrections,
  );
}

// ---------------------------------------------------------------- session
async function enter(token) {
  state.token = token;
  state.position = 0;
  try {
    await load();
  } catch (e) {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    const why =
      e.code === "FORBIDDEN"
        ? "ce jeton n’ouvre pas le tableau de bord (rôle copil, ANCT, OPCO ou auditeur requis)."
        : e.code === "UNAUTHENTICATED" || e.code === "401"
          ? "jeton inconnu ou révoqué."
          : e.message;
    $("login-error").textContent = `Connexion refusée : ${why}`;
    $("load-error").textContent = "";
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("login").hidden = true;
  $("board").hidden = false;
  $("session").hidden = false;
  $("login-error").textContent = "";
  follow();
  $("main").focus();
}

function leave() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.board = null;
  stopFollowing();
  $("board").hidden = true;
  $("session").hidden = true;
  $("login").hidden = false;
  $("token").value = "";
  $("token").focus();
}

document.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("token").value.trim();
    if (token) enter(token);
  });
  $("logout").addEventListener("click", leave);
  $("indicator").addEventListener("change", renderMap);
  $("region").addEventListener("change", () => {
    const code = $("region").value;
    select("region", code || null);
  });
  $("report-form").addEventListener("submit", (e) => {
    e.preventDefault();
    if ($("as-of").value) showReport($("as-of").value);
  });
  $("as-of").value = new Date().toISOString().slice(0, 10);
  try {
    await buildMap();
  } catch (e) {
    $("map").textContent = `La carte n’a pas pu être chargée : ${e.message}`;
  }
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) enter(saved);
  else $("token").focus();
});
