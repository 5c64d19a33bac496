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

// Exact sums and shares of decimal strings, in cents, through BigInt: never floating point.
function cents(amount) {
  const s = String(amount ?? "0");
  const negative = s.startsWith("-");
  const [whole, frac = ""] = (negative ? s.slice(1) : s).split(".");
  const c = BigInt(whole || "0") * 100n + BigInt((frac + "00").slice(0, 2));
  return negative ? -c : c;
}
function fromCents(c) {
  const negative = c < 0n;
  const a = negative ? -c : c;
  return `${negative ? "-" : ""}${a / 100n}.${String(a % 100n).padStart(2, "0")}`;
}
/// `part` of `whole` in percent with one decimal, rounded half up: "41,3 %".
function shareOf(part, whole) {
  if (whole <= 0n) return "—";
  const tenths = (part * 2000n + whole) / (2n * whole);
  return percent(`${tenths / 10n}.${tenths % 10n}`);
}
/// A count or an amount (in cents) per 100 000 inhabitants, as text and as a number for
/// sorting and shading. Counts keep one decimal; euros are rounded to the euro.
function per100k(raw, population, money) {
  if (!population) return { text: "—", value: 0, csv: "" };
  const pop = BigInt(population);
  if (money) {
    const c = cents(raw) * 100000n;
    const euroUnits = (c + pop * 50n) / (pop * 100n);
    return { text: `${groupDigits(String(euroUnits))}${NNBSP}€`, value: Number(euroUnits), csv: String(euroUnits) };
  }
  const tenths = (BigInt(raw ?? 0) * 1000000n * 2n + pop) / (2n * pop);
  const text = `${tenths / 10n},${tenths % 10n}`;
  return { text, value: Number(tenths) / 10, csv: text };
}
/// "2021-03-15" → "15/03/2021".
function frenchDate(iso) {
  if (!iso) return "—";
  const [y, m, d] = iso.slice(0, 10).split("-");
  return `${d}/${m}/${y}`;
}
/// An RFC 3339 instant → "30/11/2026 à 04:41" in the browser's time zone.
function frenchInstant(instant) {
  if (!instant) return "—";
  const t = new Date(instant);
  if (Number.isNaN(t.getTime())) return instant;
  const two = (n) => String(n).padStart(2, "0");
  return `${two(t.getDate())}/${two(t.getMonth() + 1)}/${t.getFullYear()} à ${two(t.getHours())}:${two(t.getMinutes())}`;
}
const MONTHS = ["janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."];
function frenchMonth(ym) {
  const [y, m] = ym.split("-");
  return `${MONTHS[Number(m) - 1]} ${y}`;
}
function daysBetween(fromIso, toDate) {
  return Math.floor((toDate.getTime() - new Date(`${fromIso}T00:00:00Z`).getTime()) / 86400000);
}
function today() {
  const t = new Date();
  return new Date(Date.UTC(t.getFullYear(), t.getMonth(), t.getDate()));
}

// ---------------------------------------------------------------- GraphQL
const FIGURES = `fragment Figures on Indicators {
  budget { committed released serviceDone paid }
  training { trainees certifying certifyingPercent }
  habilitations { habilitated byStatus { status count } }
  pix { certifications }
  ccas { actions }
  reimbursements { claimed eligible approved paid reimbursed reductionsByCap
    byStatus { status count } meanDaysToPaid p90DaysToPaid meanDaysToReimbursed p90DaysToReimbursed
    meanDaysEndToEnd p90DaysEndToEnd overdueClaims lateFundsCalls }
}`;
const BOARD = `query Board($minPosition: Int, $from: String, $to: String) {
  me { role label }
  conventions { id code partner title total periodStart periodEnd targets { kind quantity }
    budget { allocated committed serviceDone paid consumedPercent }
    funders { funder figures { allocated committed serviceDone paid } } }
  dashboard(minPosition: $minPosition, from: $from, to: $to) {
    position recordedAt
    targets { kind target reached percent }
    total { ...Figures }
    regions { region { code name population } indicators { ...Figures } }
    departements { edges { node { departement { code name population region { code name population } } indicators { ...Figures } } } }
  }
  annexClaims(status: SUBMITTED) { reference conventionId claimed submittedOn assessBy overdue departement { code name } }
  fundsCalls { number conventionId total issuedOn dueOn paidOn late }
  measures { id public axis number title lead status launchedOn doneOn conventionCode
    convention { code total budget { committed paid consumedPercent } } }
}
${FIGURES}`;
const REPORT = `query Report($asOf: Date, $asKnownAt: String) { report(asOf: $asOf, asKnownAt: $asKnownAt) }`;
const PROVENANCE = `query Provenance($asOf: Date, $asKnownAt: String, $code: String!, $envelope: String!, $figure: ReportFigure!) {
  reportProvenance(asOf: $asOf, asKnownAt: $asKnownAt, conventionCode: $code, envelope: $envelope, figure: $figure) {
    position eventType businessDate recordedAt actor effect reference } }`;

class ApiError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

/// What a person reads when the server refuses: French, by the error's code, never the
/// server's own (English, technical) message.
function frenchError(e) {
  switch (e.code) {
    case "UNAUTHENTICATED":
    case "401":
      return "jeton inconnu ou révoqué.";
    case "FORBIDDEN":
      return "votre jeton n’a pas accès à cette information.";
    case "BAD_USER_INPUT":
      return "le serveur a refusé la demande : une valeur saisie n’est pas valable.";
    case "TIMEOUT":
      return "le serveur a mis trop de temps à répondre ; réessayez dans un moment.";
    case "RATE_LIMITED":
    case "429":
      return "trop de demandes en peu de temps ; réessayez dans quelques secondes.";
    case "NETWORK":
      return "le serveur ne répond pas (réseau coupé ou serveur arrêté).";
    default:
      return `le serveur n’a pas pu répondre (code ${e.code || "inconnu"}).`;
  }
}

async function graphql(query, variables) {
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${state.token}` },
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ApiError("network", "NETWORK");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`status ${response.status}`, String(response.status));
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
  map: null, // code → path
  mapOrder: [], // codes in INSEE order, for the arrow keys
  viewBox: null,
  period: { from: null, to: null },
  sort: { "departements-table": { key: "code", dir: 1 }, "regions-table": { key: "name", dir: 1 } },
  lastReport: null,
  series: null, // monthly cumulative counts
  seriesAt: 0,
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
    p90DaysToReimbursed: [r.p90DaysToReimbursed, days],
    meanDaysEndToEnd: [r.meanDaysEndToEnd, days],
    p90DaysEndToEnd: [r.p90DaysEndToEnd, days],
    overdueClaims: [r.overdueClaims, count],
    lateFundsCalls: [r.lateFundsCalls, count],
  };
}

function periodName() {
  const { from, to } = state.period;
  if (!from && !to) return "— toute la période";
  if (from && to) return `— de ${frenchMonth(from)} à ${frenchMonth(to)}`;
  return from ? `— depuis ${frenchMonth(from)}` : `— jusqu’à ${frenchMonth(to)}`;
}

// ---------------------------------------------------------------- the headline and the pace
function renderHeadline(conventions) {
  const sum = (f) => conventions.reduce((s, c) => s + cents(f(c)), 0n);
  const total = sum((c) => c.total);
  const committed = sum((c) => c.budget.committed);
  const paid = sum((c) => c.budget.paid);
  const box = $("headline");
  for (const [key, value] of [["total", total], ["committed", committed], ["paid", paid]]) {
    const dd = box.querySelector(`[data-money="${key}"]`);
    dd.textContent = euros(fromCents(value));
    dd.dataset.value = fromCents(value);
  }
  box.querySelector('[data-share="committed"]').textContent = `${shareOf(committed, total)} du montant des conventions`;
  box.querySelector('[data-share="paid"]').textContent = `${shareOf(paid, total)} du montant des conventions`;
}

const REACHED = {
  TRAININGS: (t) => t.training.trainees,
  // Trained: the training completed, habilitated since or not (revoked ones were).
  AIDANTS_TRAINED: (t) =>
    (t.habilitations.byStatus || [])
      .filter((s) => ["TRAINING_COMPLETED", "HABILITATED", "REVOKED"].includes(s.status))
      .reduce((sum, s) => sum + s.count, 0),
  HABILITATIONS: (t) => t.habilitations.habilitated,
  CERTIFICATIONS: (t) => t.pix.certifications,
  CCAS_ACTIONS: (t) => t.ccas.actions,
};

/// The plan's period for a target: from the first start to the last end of the
/// conventions that set it.
function targetPeriod(kind, conventions) {
  const setting = conventions.filter((c) => (c.targets || []).some((t) => t.kind === kind));
  if (!setting.length) return null;
  const start = setting.map((c) => c.periodStart).sort()[0];
  const end = setting.map((c) => c.periodEnd).sort().at(-1);
  return { start, end };
}

/// At a steady pace from the start to the end: where we should be today, and where the
/// pace so far leads at the end.
function pace(target, reached, period, now) {
  const start = new Date(`${period.start}T00:00:00Z`).getTime();
  const end = new Date(`${period.end}T00:00:00Z`).getTime();
  const elapsed = Math.min(1, Math.max(0, (now.getTime() - start) / Math.max(1, end - start)));
  const expected = Math.round(target * elapsed);
  const projected = elapsed > 0 ? Math.round(reached / elapsed) : null;
  return { elapsed, expected, projected };
}

function renderTargets(targets, total, conventions) {
  const list = $("targets");
  list.replaceChildren();
  const now = today();
  for (const kind of Object.keys(TARGETS)) {
    const t = targets.find((t) => t.kind === kind);
    const label = TARGETS[kind];
    const id = `target-${kind}`;
    const reached = REACHED[kind](total);
    if (!t) {
      list.append(
        el("li", { "data-target": kind, "data-reached": String(reached) },
          el("div", { id, text: `${label} : ${count(reached)}` }),
          el("div", { class: "hint", text: "aucun objectif chiffré dans les conventions" })),
      );
      continue;
    }
    const progress = el("progress", { max: String(t.target), value: String(Math.min(t.reached, t.target)), "aria-labelledby": id });
    const item = el(
      "li",
      { "data-target": kind, "data-reached": String(t.reached), "data-goal": String(t.target) },
      el("div", { id, text: `${label} : ${count(t.reached)} sur ${count(t.target)} (${percent(t.percent)})` }),
      progress,
    );
    const period = targetPeriod(kind, conventions);
    if (period) {
      const p = pace(t.target, t.reached, period, now);
      const ahead = t.reached >= p.expected;
      item.dataset.expected = String(p.expected);
      if (p.projected !== null) item.dataset.projected = String(p.projected);
      item.append(
        el("p", { class: "pace", text: `Période : du ${frenchDate(period.start)} au ${frenchDate(period.end)}.` }),
        el(
          "p",
          { class: "pace" },
          `À rythme régulier, ${count(p.expected)} attendus aujourd’hui ; `,
          el("span", { class: ahead ? "ahead" : "behind", text: ahead ? "en avance" : "en retard" }),
          p.projected === null ? "." : ` ; au rythme actuel, ${count(p.projected)} à la fin de la période.`,
        ),
      );
      const chart = renderChart(kind, t.target, period);
      if (chart) item.append(chart);
    }
    list.append(item);
  }
}

/// The months from the period's start to today (or its end), at most 37 points (a request
/// of that many dashboards stays within the complexity limit).
function chartMonths(period) {
  const months = [];
  const [sy, sm] = period.start.split("-").map(Number);
  const end = period.end.slice(0, 7);
  const now = today().toISOString().slice(0, 7);
  const last = end < now ? end : now;
  for (let y = sy, m = sm; ; m++) {
    if (m > 12) { m = 1; y++; }
    const ym = `${y}-${String(m).padStart(2, "0")}`;
    if (ym > last) break;
    months.push(ym);
  }
  const step = Math.ceil(months.length / 36) || 1;
  const sampled = months.filter((_, i) => i % step === 0);
  if (months.length && sampled.at(-1) !== months.at(-1)) sampled.push(months.at(-1));
  return sampled;
}

/// The monthly cumulative counts of every target, in one request of aliased dashboards.
async function loadSeries(conventions) {
  const periods = Object.keys(TARGETS).map((k) => targetPeriod(k, conventions)).filter(Boolean);
  if (!periods.length) return null;
  const start = periods.map((p) => p.start).sort()[0];
  const end = periods.map((p) => p.end).sort().at(-1);
  const months = chartMonths({ start, end });
  if (!months.length) return null;
  const fields = "total { training { trainees } habilitations { habilitated byStatus { status count } } pix { certifications } ccas { actions } }";
  const query = `{ ${months.map((m) => `m${m.replace("-", "_")}: dashboard(to: "${m}") { ${fields} }`).join(" ")} }`;
  const data = await graphql(query, {});
  return months.map((m) => ({ month: m, total: data[`m${m.replace("-", "_")}`].total }));
}

function renderChart(kind, target, period) {
  const series = (state.series || []).filter((p) => p.month >= period.start.slice(0, 7) && p.month <= period.end.slice(0, 7));
  if (series.length < 2) return null;
  const W = 320, H = 120, L = 34, B = 18;
  const start = new Date(`${period.start}T00:00:00Z`).getTime();
  const end = new Date(`${period.end}T00:00:00Z`).getTime();
  const x = (ym) => L + ((new Date(`${ym}-28T00:00:00Z`).getTime() - start) / Math.max(1, end - start)) * (W - L - 4);
  const values = series.map((p) => REACHED[kind](p.total));
  const top = Math.max(target, ...values) || 1;
  const y = (v) => H - B - (v / top) * (H - B - 6);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, "aria-hidden": "true", focusable: "false" });
  chart.append(
    svg("line", { class: "axis", x1: L, y1: H - B, x2: W - 4, y2: H - B }),
    svg("line", { class: "goal", x1: L, y1: y(0), x2: W - 4, y2: y(target) }),
    svg("polyline", { class: "cumul", points: series.map((p, i) => `${x(p.month).toFixed(1)},${y(values[i]).toFixed(1)}`).join(" ") }),
  );
  const label = (tx, ty, text, anchor = "start") => {
    const t = svg("text", { x: tx, y: ty, "text-anchor": anchor });
    t.textContent = text;
    return t;
  };
  chart.append(label(2, 12, count(top)), label(L, H - 4, frenchMonth(period.start.slice(0, 7))), label(W - 4, H - 4, frenchMonth(period.end.slice(0, 7)), "end"));
  // The text alternative: the same points as a table.
  const rows = series.map((p, i) =>
    el("tr", {}, el("th", { scope: "row", text: frenchMonth(p.month) }), el("td", { class: "num", text: count(values[i]) })),
  );
  const table = el(
    "table",
    { class: "chart-table", "data-chart": kind },
    el("caption", { text: `${TARGETS[kind]} cumulés, fin de mois (objectif ${count(target)}, ligne pointillée : rythme régulier)` }),
    el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Mois" }), el("th", { scope: "col", class: "num", text: "Cumul" }))),
    el("tbody", {}, ...rows),
  );
  return el(
    "figure",
    { class: "chart" },
    chart,
    el("details", {}, el("summary", { text: "Les points du graphique en tableau" }), el("div", { class: "table-scroll" }, table)),
  );
}

/// What a steady pace would have committed by today: the convention's amount times the
/// share of its period elapsed (in days, to the cent, rounded down).
function expectedMoney(c) {
  if (!c.periodStart || !c.periodEnd) return null;
  const start = new Date(`${c.periodStart}T00:00:00Z`).getTime();
  const end = new Date(`${c.periodEnd}T00:00:00Z`).getTime();
  const days = BigInt(Math.max(1, Math.round((end - start) / 86400000)));
  const elapsed = BigInt(Math.min(Number(days), Math.max(0, Math.round((today().getTime() - start) / 86400000))));
  return (cents(c.total) * elapsed) / days;
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
    const article = el(
      "article",
      { class: "convention", "data-convention": c.code },
      el("h4", {}, `${c.code} `, el("span", { class: "partner", text: `· ${c.partner}` })),
      el("p", { class: "hint", text: `${c.title} — total ${euros(c.total)}, consommé ${percent(c.budget.consumedPercent)}` }),
      chart,
    );
    const expected = expectedMoney(c);
    if (expected !== null) {
      const ahead = cents(c.budget.committed) >= expected;
      article.dataset.expectedCommitted = fromCents(expected);
      article.append(
        el(
          "p",
          { class: "pace" },
          `Période du ${frenchDate(c.periodStart)} au ${frenchDate(c.periodEnd)} : à rythme régulier, ${euros(fromCents(expected))} engagés attendus aujourd’hui ; `,
          el("span", { class: ahead ? "ahead" : "behind", text: ahead ? "en avance" : "en retard" }),
          ".",
        ),
      );
    }
    box.append(article);
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

// ---------------------------------------------------------------- tables (sortable, exportable)
/// A column: its header, the value it sorts by, the text shown and the text exported.
function column(key, label, value, show, csv, num = true) {
  return { key, label, value, show: show || ((r) => String(value(r))), csv: csv || ((r) => String(value(r))), num };
}
const moneyCsv = (a) => (a === null || a === undefined ? "" : String(a).replace(".", ","));

/// Renders rows into `table` with sortable headers (`aria-sort`), an optional totals row.
function renderTable(tableId, caption, columns, rows, totals, rowAttrs) {
  const table = $(tableId);
  const sort = state.sort[tableId];
  if (sort) {
    const col = columns.find((c) => c.key === sort.key) || columns[0];
    rows = [...rows].sort((a, b) => {
      const va = col.value(a), vb = col.value(b);
      const cmp = typeof va === "string" ? va.localeCompare(vb, "fr") : va - vb;
      return cmp * sort.dir;
    });
  }
  const head = el(
    "tr",
    {},
    ...columns.map((c) => {
      const th = el("th", { scope: "col", class: c.num ? "num" : "", "data-csv": c.label });
      if (sort) {
        const active = sort.key === c.key;
        th.setAttribute("aria-sort", active ? (sort.dir > 0 ? "ascending" : "descending") : "none");
        const button = el("button", { type: "button", class: "sort", "data-key": c.key, text: c.label });
        button.addEventListener("click", () => {
          state.sort[tableId] = { key: c.key, dir: active ? -sort.dir : 1 };
          renderTerritoryTables();
          table.querySelector(`button.sort[data-key="${c.key}"]`)?.focus();
        });
        th.append(button);
      } else {
        th.textContent = c.label;
      }
      return th;
    }),
  );
  const body = rows.map((r) =>
    el(
      "tr",
      rowAttrs ? rowAttrs(r) : {},
      ...columns.map((c, i) =>
        el(i === 0 ? "th" : "td", { ...(i === 0 ? { scope: "row" } : {}), class: c.num ? "num" : "", "data-column": c.key, "data-csv": c.csv(r) }, c.show(r)),
      ),
    ),
  );
  const foot = totals
    ? [el("tr", { class: "total" }, ...columns.map((c, i) =>
        el(i === 0 ? "th" : "td", { ...(i === 0 ? { scope: "row" } : {}), class: c.num ? "num" : "", "data-csv": totals[c.key]?.csv ?? "" }, totals[c.key]?.text ?? "")))]
    : [];
  table.replaceChildren(el("caption", { text: caption }), el("thead", {}, head), el("tbody", {}, ...body, ...foot));
  if (!rows.length) table.querySelector("tbody").prepend(el("tr", {}, el("td", { colspan: String(columns.length), text: "Aucune ligne." })));
}

/// A table as French spreadsheets read it: UTF-8 with a BOM, `;`, decimal comma, CRLF; a
/// cell that starts like a formula is prefixed with `'` so that it is never run.
function tableCsv(table) {
  const quote = (v) => {
    let s = String(v ?? "").replaceAll(NNBSP, " ");
    if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
    return /[;"\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  const lines = [...table.querySelectorAll("tr")]
    .filter((tr) => tr.closest("table") === table)
    .map((tr) => [...tr.children].map((cell) => quote(cell.dataset.csv ?? cell.textContent.trim())).join(";"));
  return `\ufeff${lines.join("\r\n")}\r\n`;
}

function exportTable(tableId, file) {
  const blob = new Blob([tableCsv($(tableId))], { type: "text/csv;charset=utf-8" });
  const a = el("a", { href: URL.createObjectURL(blob), download: `${file}.csv` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

// ---------------------------------------------------------------- territories
const INDICATOR_MONEY = { trainees: false, habilitated: false, reimbursed: true, committed: true };

function departementRows() {
  return state.board ? state.board.dashboard.departements.edges.map((e) => e.node) : [];
}

/// The chosen indicator of a territory: raw, and per 100 000 inhabitants.
function measure(indicators, population) {
  const key = $("indicator").value;
  const raw = INDICATORS[key].value(indicators);
  const normalised = per100k(raw, population, INDICATOR_MONEY[key]);
  return { raw, normalised };
}

/// The ten départements where the chosen indicator per inhabitant is lowest (none while
/// the country's figure is zero: nobody is behind before anything started).
function furthestBehind() {
  const rows = departementRows();
  const scored = rows.map((r) => ({ code: r.departement.code, v: measure(r.indicators, r.departement.population).normalised.value }));
  if (!scored.some((s) => s.v > 0)) return new Set();
  scored.sort((a, b) => a.v - b.v || a.code.localeCompare(b.code));
  return new Set(scored.slice(0, 10).map((s) => s.code));
}

function mapSortKey(code) {
  if (code === "2A") return 20.1;
  if (code === "2B") return 20.2;
  return Number(code);
}

async function buildMap() {
  const shapes = await (await fetch("/dashboard/departements.json")).json();
  const map = svg("svg", { viewBox: shapes.viewBox, role: "group", "aria-label": "Carte de la France métropolitaine par département" });
  state.viewBox = shapes.viewBox;
  const paths = {};
  const add = (parent, code, d) => {
    const p = svg("path", { d, class: "dep", "data-code": code, tabindex: "-1", role: "button" });
    p.append(svg("title"));
    p.addEventListener("click", () => select("departement", code));
    p.addEventListener("keydown", (e) => mapKey(e, code));
    p.addEventListener("focus", () => rove(code));
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
  state.mapOrder = Object.keys(paths).sort((a, b) => mapSortKey(a) - mapSortKey(b));
  rove(state.mapOrder[0]);
}

/// The map is one Tab stop: only one département is in the Tab order at a time.
function rove(code) {
  if (!state.map || !state.map[code]) return;
  for (const [c, p] of Object.entries(state.map)) p.setAttribute("tabindex", c === code ? "0" : "-1");
}

function mapKey(e, code) {
  const order = state.mapOrder;
  const i = order.indexOf(code);
  let next = null;
  if (e.key === "ArrowRight" || e.key === "ArrowDown") next = order[Math.min(order.length - 1, i + 1)];
  else if (e.key === "ArrowLeft" || e.key === "ArrowUp") next = order[Math.max(0, i - 1)];
  else if (e.key === "Home") next = order[0];
  else if (e.key === "End") next = order.at(-1);
  else if (e.key === "Enter" || e.key === " ") {
    e.preventDefault();
    select("departement", code);
    return;
  }
  if (next) {
    e.preventDefault();
    rove(next);
    state.map[next].focus();
  }
}

/// Zooms the metropolitan map on the chosen région (so that Paris and the petite couronne
/// can be clicked in Île-de-France); the whole country otherwise.
function zoomMap() {
  const frame = $("map").querySelector("svg");
  if (!frame) return;
  const region = $("region").value;
  const inRegion = region ? departementRows().filter((r) => r.departement.region.code === region).map((r) => state.map[r.departement.code]) : [];
  const shown = inRegion.filter((p) => p && p.ownerSVGElement === frame);
  if (!shown.length) {
    frame.setAttribute("viewBox", state.viewBox);
    frame.dataset.zoom = "";
    return;
  }
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const p of shown) {
    const b = p.getBBox();
    x0 = Math.min(x0, b.x); y0 = Math.min(y0, b.y);
    x1 = Math.max(x1, b.x + b.width); y1 = Math.max(y1, b.y + b.height);
  }
  const pad = Math.max(x1 - x0, y1 - y0) * 0.06;
  frame.setAttribute("viewBox", `${x0 - pad} ${y0 - pad} ${x1 - x0 + 2 * pad} ${y1 - y0 + 2 * pad}`);
  frame.dataset.zoom = region;
}

function renderMap() {
  if (!state.map || !state.board) return;
  const key = $("indicator").value;
  const indicator = INDICATORS[key];
  const perCapita = $("per-capita").checked;
  const rows = departementRows();
  const valueOf = (r) => {
    const m = measure(r.indicators, r.departement.population);
    return perCapita ? m.normalised.value : magnitude(m.raw);
  };
  const max = Math.max(0, ...rows.map(valueOf));
  const region = $("region").value;
  for (const r of rows) {
    const code = r.departement.code;
    const path = state.map[code];
    if (!path) continue;
    const m = measure(r.indicators, r.departement.population);
    const v = valueOf(r);
    const shade = v <= 0 || max <= 0 ? 0 : Math.min(5, 1 + Math.floor((4 * v) / max + 1e-9));
    path.style.fill = SHADES[shade];
    const label = `${r.departement.name} (${code}) : ${indicator.show(m.raw)} ${indicator.label}, ${m.normalised.text} pour 100 000 habitants`;
    path.setAttribute("aria-label", label);
    path.querySelector("title").textContent = label;
    path.classList.toggle("dimmed", Boolean(region) && r.departement.region.code !== region);
    path.classList.toggle("selected", state.selected?.kind === "departement" && state.selected.code === code);
    const caption = document.querySelector(`[data-caption="${code}"]`);
    if (caption) caption.textContent = r.departement.name;
  }
  const topRow = rows.find((r) => valueOf(r) === max);
  const top = topRow ? (perCapita ? measure(topRow.indicators, topRow.departement.population).normalised.text : indicator.show(indicator.value(topRow.indicators))) : "0";
  $("map-caption").textContent = `Carte des départements : ${indicator.label}${perCapita ? " pour 100 000 habitants" : ""} (plus foncé = plus élevé).`;
  $("scale").replaceChildren(
    el("b", { text: "aucun" }),
    ...SHADES.map((c) => el("i", { style: `background:${c}` })),
    el("b", { text: `jusqu’à ${top}` }),
  );
  zoomMap();
}

function territoryColumns(kind) {
  const population = (r) => r[kind].population;
  const cols = [
    kind === "departement"
      ? column("code", "Département", (r) => mapSortKey(r.departement.code), (r) => `${r.departement.name} (${r.departement.code})`, (r) => `${r.departement.name} (${r.departement.code})`, false)
      : column("name", "Région", (r) => r.region.name, (r) => r.region.name, (r) => r.region.name, false),
  ];
  if (kind === "departement") cols.push(column("region", "Région", (r) => r.departement.region.name, null, null, false));
  cols.push(
    column("population", "Population", population, (r) => count(population(r))),
    column("trainees", "Personnes formées", (r) => r.indicators.training.trainees, (r) => count(r.indicators.training.trainees)),
    column("traineesPer", "Formées pour 100 000 hab.", (r) => per100k(r.indicators.training.trainees, population(r)).value,
      (r) => per100k(r.indicators.training.trainees, population(r)).text, (r) => per100k(r.indicators.training.trainees, population(r)).csv),
    column("habilitated", "Habilitations", (r) => r.indicators.habilitations.habilitated, (r) => count(r.indicators.habilitations.habilitated)),
    column("habilitatedPer", "Habilitations pour 100 000 hab.", (r) => per100k(r.indicators.habilitations.habilitated, population(r)).value,
      (r) => per100k(r.indicators.habilitations.habilitated, population(r)).text, (r) => per100k(r.indicators.habilitations.habilitated, population(r)).csv),
    column("reimbursed", "Frais annexes remboursés", (r) => magnitude(r.indicators.reimbursements.reimbursed), (r) => euros(r.indicators.reimbursements.reimbursed), (r) => moneyCsv(r.indicators.reimbursements.reimbursed)),
    column("committed", "Engagé", (r) => magnitude(r.indicators.budget.committed), (r) => euros(r.indicators.budget.committed), (r) => moneyCsv(r.indicators.budget.committed)),
    column("committedPer", "Engagé pour 100 000 hab.", (r) => per100k(r.indicators.budget.committed, population(r), true).value,
      (r) => per100k(r.indicators.budget.committed, population(r), true).text, (r) => per100k(r.indicators.budget.committed, population(r), true).csv),
  );
  return cols;
}

function renderTerritoryTables() {
  if (!state.board) return;
  const behind = furthestBehind();
  const region = $("region").value;
  const depCols = territoryColumns("departement");
  depCols.push(column("behind", "Signal", (r) => (behind.has(r.departement.code) ? 0 : 1),
    (r) => (behind.has(r.departement.code) ? el("span", { class: "flag", text: "⚑ en retard" }) : ""),
    (r) => (behind.has(r.departement.code) ? "en retard" : ""), false));
  const deps = departementRows().filter((r) => !region || r.departement.region.code === region);
  renderTable("departements-table", `Indicateurs par département ${periodName()}${region ? ` — région ${regionName(region)}` : ""}`, depCols, deps, null,
    (r) => ({ "data-departement": r.departement.code, ...(behind.has(r.departement.code) ? { "data-behind": "true" } : {}) }));
  const regions = state.board.dashboard.regions;
  const regionsBehind = new Set(
    regions.map((r) => ({ code: r.region.code, v: measure(r.indicators, r.region.population).normalised.value }))
      .filter(() => regions.some((r) => measure(r.indicators, r.region.population).normalised.value > 0))
      .sort((a, b) => a.v - b.v).slice(0, 3).map((s) => s.code),
  );
  const regCols = territoryColumns("region");
  regCols.push(column("behind", "Signal", (r) => (regionsBehind.has(r.region.code) ? 0 : 1),
    (r) => (regionsBehind.has(r.region.code) ? el("span", { class: "flag", text: "⚑ en retard" }) : ""),
    (r) => (regionsBehind.has(r.region.code) ? "en retard" : ""), false));
  const totalPop = regions.reduce((s, r) => s + r.region.population, 0);
  const t = state.board.dashboard.total;
  const totals = {
    name: { text: "France entière", csv: "France entière" },
    population: { text: count(totalPop), csv: String(totalPop) },
    trainees: { text: count(t.training.trainees), csv: String(t.training.trainees) },
    traineesPer: per100k(t.training.trainees, totalPop),
    habilitated: { text: count(t.habilitations.habilitated), csv: String(t.habilitations.habilitated) },
    habilitatedPer: per100k(t.habilitations.habilitated, totalPop),
    reimbursed: { text: euros(t.reimbursements.reimbursed), csv: moneyCsv(t.reimbursements.reimbursed) },
    committed: { text: euros(t.budget.committed), csv: moneyCsv(t.budget.committed) },
    committedPer: per100k(t.budget.committed, totalPop, true),
  };
  renderTable("regions-table", `Indicateurs par région ${periodName()} (trois signalées : les plus basses pour l’indicateur choisi, rapporté à la population)`,
    regCols, regions, totals, (r) => ({ "data-region": r.region.code, ...(regionsBehind.has(r.region.code) ? { "data-behind": "true" } : {}) }));
}

function regionName(code) {
  return state.board?.dashboard.regions.find((r) => r.region.code === code)?.region.name ?? code;
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

/// The régions by name, as French readers look for them (not in INSEE code order).
function renderRegions() {
  const select = $("region");
  if (select.options.length > 1 || !state.board) return;
  const regions = [...state.board.dashboard.regions].sort((a, b) => a.region.name.localeCompare(b.region.name, "fr"));
  for (const r of regions) select.append(el("option", { value: r.region.code, text: r.region.name }));
}

// ---------------------------------------------------------------- claims and funds calls late
function renderLateLists() {
  const board = state.board;
  const codes = Object.fromEntries(board.conventions.map((c) => [c.id, c.code]));
  const now = today();
  const overdue = (board.annexClaims || []).filter((c) => c.overdue);
  renderTable("overdue-table", `Demandes déposées dont l’instruction a dépassé son échéance (${count(overdue.length)})`, [
    column("reference", "Demande", (c) => c.reference, null, null, false),
    column("convention", "Convention", (c) => codes[c.conventionId] || "", null, null, false),
    column("departement", "Département", (c) => `${c.departement.name} (${c.departement.code})`, null, null, false),
    column("claimed", "Montant demandé", (c) => magnitude(c.claimed), (c) => euros(c.claimed), (c) => moneyCsv(c.claimed)),
    column("submittedOn", "Déposée le", (c) => c.submittedOn, (c) => frenchDate(c.submittedOn), (c) => frenchDate(c.submittedOn)),
    column("assessBy", "À instruire avant le", (c) => c.assessBy, (c) => frenchDate(c.assessBy), (c) => frenchDate(c.assessBy)),
    column("late", "Jours de retard", (c) => Math.max(0, daysBetween(c.assessBy, now)), null, null),
  ], overdue.sort((a, b) => a.assessBy.localeCompare(b.assessBy)), null, (c) => ({ "data-claim": c.reference }));
  const late = (board.fundsCalls || []).filter((c) => c.late);
  renderTable("late-calls-table", `Appels de fonds payés ou à payer après leur échéance (${count(late.length)})`, [
    column("number", "Appel n°", (c) => c.number, null, null),
    column("convention", "Convention", (c) => codes[c.conventionId] || "", null, null, false),
    column("total", "Montant", (c) => magnitude(c.total), (c) => euros(c.total), (c) => moneyCsv(c.total)),
    column("dueOn", "Échéance", (c) => c.dueOn, (c) => frenchDate(c.dueOn), (c) => frenchDate(c.dueOn)),
    column("paidOn", "Payé le", (c) => c.paidOn || "", (c) => (c.paidOn ? frenchDate(c.paidOn) : "non payé"), (c) => (c.paidOn ? frenchDate(c.paidOn) : "")),
    column("late", "Jours de retard", (c) => Math.max(0, c.paidOn ? daysBetween(c.dueOn, new Date(`${c.paidOn}T00:00:00Z`)) : daysBetween(c.dueOn, now)), null, null),
  ], late, null, (c) => ({ "data-call": String(c.number) }));
}

// ---------------------------------------------------------------- the funders and ANCT's payments
/// Each funder's figures, summed over the conventions (exact, in cents).
function renderFunders(conventions) {
  const keys = ["allocated", "committed", "serviceDone", "paid"];
  const by = new Map();
  for (const c of conventions) {
    for (const f of c.funders || []) {
      const sums = by.get(f.funder) || Object.fromEntries(keys.map((k) => [k, 0n]));
      for (const k of keys) sums[k] += cents(f.figures[k]);
      by.set(f.funder, sums);
    }
  }
  const rows = [...by.entries()].map(([funder, sums]) => ({ funder, ...Object.fromEntries(keys.map((k) => [k, fromCents(sums[k])])) }));
  const totalPaid = rows.reduce((s, r) => s + cents(r.paid), 0n);
  const money = (k, label) => column(k, label, (r) => magnitude(r[k]), (r) => euros(r[k]), (r) => moneyCsv(r[k]));
  const totals = Object.fromEntries(keys.map((k) => {
    const t = fromCents(rows.reduce((s, r) => s + cents(r[k]), 0n));
    return [k, { text: euros(t), csv: moneyCsv(t) }];
  }));
  totals.funder = { text: "Total", csv: "Total" };
  totals.share = { text: shareOf(totalPaid, totalPaid), csv: "" };
  renderTable("funders-table", "Alloué, engagé, service fait et payé, par financeur (toutes conventions)", [
    column("funder", "Financeur", (r) => r.funder, null, null, false),
    money("allocated", "Alloué"),
    money("committed", "Engagé"),
    money("serviceDone", "Service fait"),
    money("paid", "Payé"),
    column("share", "Part du payé", (r) => Number(r.paid), (r) => shareOf(cents(r.paid), totalPaid), (r) => shareOf(cents(r.paid), totalPaid).replace(NNBSP, " ")),
  ], rows, totals, (r) => ({ "data-funder": r.funder }));
}

/// What ANCT paid each partner, from each convention's disbursements (one request).
async function loadDisbursements(conventions) {
  if (!conventions.length) return [];
  const fields = "received justified advanceNotJustified payableSoFar toRecover recovered";
  const query = `{ ${conventions.map((c, i) => `d${i}: disbursements(conventionId: "${c.id}") { ${fields} }`).join(" ")} }`;
  const data = await graphql(query, {});
  return conventions.map((c, i) => ({ code: c.code, partner: c.partner, ...data[`d${i}`] }));
}

function renderDisbursements(rows) {
  const money = (k, label) => column(k, label, (r) => magnitude(r[k]), (r) => euros(r[k]), (r) => moneyCsv(r[k]));
  const keys = ["payableSoFar", "received", "justified", "advanceNotJustified", "toRecover", "recovered"];
  const totals = Object.fromEntries(keys.map((k) => {
    const t = fromCents(rows.reduce((s, r) => s + cents(r[k]), 0n));
    return [k, { text: euros(t), csv: moneyCsv(t) }];
  }));
  totals.code = { text: "Total", csv: "Total" };
  renderTable("disbursements-table", "Versements de l’ANCT, justification et reversements, par convention", [
    column("code", "Convention", (r) => r.code, null, null, false),
    column("partner", "Partenaire", (r) => r.partner, null, null, false),
    money("payableSoFar", "Échéancier : exigible à ce jour"),
    money("received", "Versé par l’ANCT"),
    money("justified", "Justifié (états récapitulatifs)"),
    money("advanceNotJustified", "Avance non justifiée"),
    money("toRecover", "À reverser"),
    money("recovered", "Reversé"),
  ], rows, totals, (r) => ({ "data-disbursement": r.code }));
}

// ---------------------------------------------------------------- the register of measures
const PUBLICS = { MEDIATORS: "Médiateurs numériques", SOCIAL_WORKERS: "Travailleurs sociaux", PUBLIC_AGENTS: "Agents publics d’accueil" };
const MEASURE_STATES = { PROPOSED: "Proposée", LAUNCHED: "Lancée", DONE: "Réalisée" };

function renderMeasures() {
  const measures = state.board.measures || [];
  const progress = (m) =>
    m.convention
      ? `${m.convention.code} : engagé ${euros(m.convention.budget.committed)} (${percent(m.convention.budget.consumedPercent)}), payé ${euros(m.convention.budget.paid)}`
      : "aucune convention ne la suit";
  renderTable("measures-table", `Les ${count(measures.length)} mesures du plan : où en est chacune`, [
    column("public", "Public", (m) => PUBLICS[m.public] || m.public, null, null, false),
    column("measure", "Mesure", (m) => `${m.number} – ${m.title}`, null, null, false),
    column("lead", "Porteur", (m) => m.lead, null, null, false),
    column("status", "État", (m) => MEASURE_STATES[m.status] || m.status, null, null, false),
    column("launchedOn", "Lancée le", (m) => m.launchedOn || "", (m) => frenchDate(m.launchedOn), (m) => (m.launchedOn ? frenchDate(m.launchedOn) : ""), false),
    column("doneOn", "Réalisée le", (m) => m.doneOn || "", (m) => frenchDate(m.doneOn), (m) => (m.doneOn ? frenchDate(m.doneOn) : ""), false),
    column("progress", "Chiffres de sa convention", progress, null, null, false),
  ], measures, null, (m) => ({ "data-measure": m.id, "data-status": m.status }));
}

// ---------------------------------------------------------------- the whole page
function render() {
  const board = state.board;
  const d = board.dashboard;
  state.position = d.position;
  $("updated").textContent = frenchInstant(d.recordedAt);
  $("updated").dataset.position = String(d.position);
  $("who").textContent = `${board.me.label} (${board.me.role})`;
  for (const span of document.querySelectorAll(".period-name")) span.textContent = periodName();
  renderHeadline(board.conventions);
  renderFunders(board.conventions);
  if (state.disbursements) renderDisbursements(state.disbursements);
  fill($("national"), figuresOf(d.total));
  fill($("claims"), figuresOf(d.total));
  renderTargets(d.targets, d.total, board.conventions);
  renderConventions(board.conventions);
  renderRegions();
  renderMap();
  renderTerritoryTables();
  renderTerritory();
  renderClaimStates($("claim-states"), d.total.reimbursements.byStatus);
  renderLateLists();
  renderMeasures();
  document.body.dataset.position = String(d.position);
}

/// Chooses a territory; `push` records it in the address (`#dep=29`, `#region=53`) so
/// that the back button and a shared link come back to it.
function select(kind, code, push = true) {
  state.selected = code ? { kind, code } : null;
  if (kind === "departement" && code) {
    // A département outside the chosen région: show the whole country again.
    const r = departementRows().find((r) => r.departement.code === code);
    if (r && $("region").value && $("region").value !== r.departement.region.code) $("region").value = "";
    rove(code);
  }
  if (kind === "region") $("region").value = code || "";
  if (push) {
    const hash = code ? `#${kind === "departement" ? "dep" : "region"}=${code}` : " ";
    if (location.hash !== hash.trim()) history.pushState(null, "", hash.trim() || location.pathname);
  }
  renderMap();
  renderTerritoryTables();
  renderTerritory();
}

/// Restores the territory the address names.
function applyHash() {
  const m = /^#(dep|region)=([0-9AB]{2,3})$/.exec(location.hash);
  if (!m) {
    select("region", null, false);
    return;
  }
  select(m[1] === "dep" ? "departement" : "region", m[2], false);
}

// ---------------------------------------------------------------- loading and live updates
async function load(minPosition) {
  // One load at a time; a newer request waits for the running one, then runs.
  const previous = state.loading;
  const run = (async () => {
    if (previous) await previous.catch(() => {});
    if (minPosition !== undefined && minPosition <= state.position) return;
    const { from, to } = state.period;
    state.board = await graphql(BOARD, { minPosition: minPosition ?? null, from, to });
    // The monthly series costs some forty dashboards: asked again at most once a minute.
    if (!state.series || Date.now() - state.seriesAt > 60000) {
      state.series = await loadSeries(state.board.conventions).catch(() => state.series);
      state.seriesAt = Date.now();
    }
    state.disbursements = await loadDisbursements(state.board.conventions).catch(() => state.disbursements);
    $("load-error").textContent = "";
    render();
  })();
  state.loading = run;
  try {
    await run;
  } catch (e) {
    if ((e.code === "UNAUTHENTICATED" || e.code === "401") && !$("board").hidden) {
      // The token was revoked while the page was open: back to the login form.
      leave();
      $("login-error").textContent = "Votre jeton n’est plus valide : collez-en un nouveau.";
    } else {
      $("load-error").textContent = `Les chiffres n’ont pas pu être chargés : ${frenchError(e)}`;
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
const REPORT_COLUMNS = [
  ["total", "Montant de la convention"],
  ["allocated", "Alloué"],
  ["committed", "Engagé"],
  ["serviceDone", "Service fait"],
  ["paid", "Payé"],
  ["reimbursed", "Frais annexes remboursés"],
];
const PROVENANCE_FIGURE = { allocated: "ALLOCATED", committed: "COMMITTED", serviceDone: "SERVICE_DONE", paid: "PAID" };
const EVENT_NAMES = {
  FundsReleased: "Libération de crédits",
  ConventionAmended: "Avenant",
  FundsCommitted: "Engagement",
  ServiceDone: "Service fait",
  PaymentRecorded: "Paiement",
  EnvelopeAllocated: "Allocation d’enveloppe",
};

function validDate(value) {
  return /^\d{4}-\d{2}-\d{2}$/.test(value) && value >= "2000-01-01" && value <= "2100-12-31" && !Number.isNaN(new Date(`${value}T00:00:00Z`).getTime());
}

async function showReport(asOf, asKnownAtLocal) {
  const box = $("report");
  if (!validDate(asOf)) {
    box.replaceChildren(el("p", { class: "error", role: "alert", text: "Date invalide : saisissez une date du 01/01/2000 au 31/12/2100 (jour/mois/année)." }));
    return;
  }
  let asKnownAt = null;
  if (asKnownAtLocal) {
    const t = new Date(asKnownAtLocal);
    if (Number.isNaN(t.getTime())) {
      box.replaceChildren(el("p", { class: "error", role: "alert", text: "Instant invalide : saisissez une date et une heure." }));
      return;
    }
    asKnownAt = t.toISOString();
  }
  box.replaceChildren(el("p", { text: "Rejeu du journal…" }));
  let report;
  try {
    report = (await graphql(REPORT, { asOf, asKnownAt })).report;
  } catch (e) {
    box.replaceChildren(el("p", { class: "error", role: "alert", text: `Rapport impossible : ${frenchError(e)}` }));
    return;
  }
  state.lastReport = { asOf, asKnownAt, report };
  const h = report.header;
  const integrity = h.intact
    ? el("span", { class: "intact", text: "journal intègre" })
    : el("span", { class: "altered", text: "journal ALTÉRÉ : chiffres non fiables" });
  const values = (c) => [c.total, c.budget.allocated, c.budget.committed, c.budget.serviceDone, c.budget.paid, c.annexCosts.reimbursed];
  const totals = REPORT_COLUMNS.map((_, i) => report.conventions.reduce((s, c) => s + cents(values(c)[i]), 0n));
  const cell = (c, v, i) => {
    const key = REPORT_COLUMNS[i][0];
    const td = el("td", { class: "num", "data-column": key, "data-value": v, "data-csv": moneyCsv(v) });
    if (c && PROVENANCE_FIGURE[key]) {
      const b = el("button", { type: "button", class: "report-figure", text: euros(v), "aria-label": `${euros(v)} : voir les événements (${REPORT_COLUMNS[i][1]}, ${c.code})` });
      b.addEventListener("click", () => showProvenance(c, key));
      td.append(b);
    } else {
      td.textContent = euros(v);
    }
    return td;
  };
  const table = el(
    "table",
    { id: "report-table" },
    el("caption", { text: `Situation au ${frenchDate(asOf)}${asKnownAt ? `, telle que connue le ${frenchInstant(asKnownAt)}` : ""}` }),
    el("thead", {}, el("tr", {}, el("th", { scope: "col", "data-csv": "Convention", text: "Convention" }),
      ...REPORT_COLUMNS.map(([, label]) => el("th", { scope: "col", class: "num", "data-csv": label, text: label })))),
    el(
      "tbody",
      {},
      ...report.conventions.map((c) =>
        el("tr", { "data-convention": c.code }, el("th", { scope: "row", "data-csv": `${c.code} (${c.partner})`, text: `${c.code} (${c.partner})` }), ...values(c).map((v, i) => cell(c, v, i))),
      ),
      el("tr", { class: "total" }, el("th", { scope: "row", "data-csv": "Total", text: "Total" }), ...totals.map((t, i) => cell(null, fromCents(t), i))),
    ),
  );
  const corrections = report.corrections.length
    ? el(
        "details",
        { id: "report-corrections" },
        el("summary", { text: `${count(report.corrections.length)} correction(s) jusqu’à cette date (libérations, avenants en baisse), par date` }),
        el(
          "ul",
          {},
          ...[...report.corrections].sort((a, b) => a.businessDate.localeCompare(b.businessDate) || a.position - b.position).map((c) =>
            el("li", {
              text: `${frenchDate(c.businessDate)} · ${EVENT_NAMES[c.eventType] || c.eventType}${c.reference ? ` ${c.reference}` : ""}${c.effect ? ` (${c.effect.replace(".", ",")} €)` : ""} — enregistré le ${frenchInstant(c.recordedAt)} (position ${count(c.position)})`,
            }),
          ),
        ),
      )
    : el("p", { text: "Aucune correction jusqu’à cette date." });
  const exportButton = el("button", { type: "button", class: "export secondary", text: "Exporter le rapport (CSV)" });
  exportButton.addEventListener("click", () => exportTable("report-table", `rapport-${asOf}`));
  const extra = reportDetails(report, asOf);
  box.replaceChildren(
    el(
      "p",
      { class: "report-header" },
      `${count(h.eventsInReport)} événements jusqu’au ${frenchDate(asOf)} ; journal lu jusqu’à la position ${count(h.logPosition)}, `,
      integrity,
      ". Empreinte du journal : ",
      el("code", { id: "report-digest", text: `${h.logPosition}:${h.logDigest}` }),
    ),
    report.conventions.length ? el("div", { class: "table-scroll" }, table) : el("p", { text: "Aucune convention n’était signée à cette date." }),
    report.conventions.length ? exportButton : "",
    el("div", { id: "provenance", "aria-live": "polite" }),
    ...extra.nodes,
    corrections,
  );
  extra.fill();
  updatePrintHeader();
}

/// The report's funders, partners' balances and annex costs, each a table with its export.
function reportDetails(report, asOf) {
  const money = (k, label) => column(k, label, (r) => magnitude(r[k]), (r) => euros(r[k]), (r) => moneyCsv(r[k]));
  const sections = [
    ["report-funders", "Par financeur (plans de financement)", report.conventions.flatMap((c) =>
      (c.funders || []).map((f) => ({ code: c.code, ...f }))), [
      column("code", "Convention", (r) => r.code, null, null, false),
      column("funder", "Financeur", (r) => r.funder, null, null, false),
      money("share", "Part prévue"),
      money("allocated", "Alloué"),
      money("committed", "Engagé"),
      money("serviceDone", "Service fait"),
      money("paid", "Payé"),
    ]],
    ["report-balances", "Soldes des partenaires (versements de l’ANCT)", report.conventions.map((c) => ({ code: c.code, partner: c.partner, ...(c.disbursements || {}) })), [
      column("code", "Convention", (r) => r.code, null, null, false),
      column("partner", "Partenaire", (r) => r.partner, null, null, false),
      money("received", "Versé par l’ANCT"),
      money("justified", "Justifié"),
      money("advanceNotJustified", "Avance non justifiée"),
      money("toRecover", "À reverser"),
      money("recovered", "Reversé"),
    ]],
    ["report-claims", "Frais annexes", report.conventions.map((c) => ({ code: c.code, ...(c.annexCosts || {}) })), [
      column("code", "Convention", (r) => r.code, null, null, false),
      money("claimed", "Demandé"),
      money("approved", "Approuvé"),
      money("paid", "Payé par l’OPCO"),
      money("reimbursed", "Remboursé par l’ANCT"),
    ]],
  ];
  const nodes = [];
  for (const [id, title, rows] of sections) {
    const button = el("button", { type: "button", class: "export secondary", text: "Exporter (CSV)" });
    button.addEventListener("click", () => exportTable(`${id}-table`, `${id.replace("report-", "rapport-")}-${asOf}`));
    nodes.push(el("h3", { id: `${id}-title`, text: title }), el("div", { class: "table-scroll" }, el("table", { id: `${id}-table`, "aria-labelledby": `${id}-title` })), rows.length ? button : "");
  }
  return {
    nodes,
    fill: () => {
      for (const [id, title, rows, columns] of sections) {
        const keys = columns.filter((c) => c.num).map((c) => c.key);
        const totals = Object.fromEntries(keys.map((k) => {
          const t = fromCents(rows.reduce((s, r) => s + cents(r[k] ?? "0"), 0n));
          return [k, { text: euros(t), csv: moneyCsv(t) }];
        }));
        totals.code = { text: "Total", csv: "Total" };
        renderTable(`${id}-table`, `${title} au ${frenchDate(asOf)}`, columns, rows, rows.length ? totals : null);
      }
    },
  };
}

/// The events behind one figure of the report, summed over the convention's envelopes.
async function showProvenance(c, key) {
  const box = $("provenance");
  const { asOf, asKnownAt } = state.lastReport;
  box.replaceChildren(el("p", { text: "Recherche des événements…" }));
  try {
    const envelopes = (c.envelopes || []).map((e) => e.name);
    const lists = await Promise.all(
      envelopes.map((envelope) => graphql(PROVENANCE, { asOf, asKnownAt, code: c.code, envelope, figure: PROVENANCE_FIGURE[key] })),
    );
    const events = lists.flatMap((l) => l.reportProvenance).sort((a, b) => a.position - b.position);
    const label = REPORT_COLUMNS.find(([k]) => k === key)[1];
    box.replaceChildren(
      el("h3", { text: `${label} de ${c.code} au ${frenchDate(asOf)} : ${count(events.length)} événement(s)` }),
      el("ul", { id: "provenance-list" }, ...events.map((e) =>
        el("li", { "data-position": String(e.position), text: `${frenchDate(e.businessDate)} · ${EVENT_NAMES[e.eventType] || e.eventType}${e.reference ? ` ${e.reference}` : ""}${e.effect ? ` (${e.effect.replace(".", ",")} €)` : ""} — position ${count(e.position)}, enregistré le ${frenchInstant(e.recordedAt)}` }))),
    );
  } catch (e) {
    box.replaceChildren(el("p", { class: "error", role: "alert", text: `Provenance impossible : ${frenchError(e)}` }));
  }
}

// ---------------------------------------------------------------- print
function updatePrintHeader() {
  const d = state.board?.dashboard;
  const parts = [`Tableau de bord imprimé le ${frenchInstant(new Date().toISOString())}`];
  if (d) parts.push(`données à jour au ${frenchInstant(d.recordedAt)} (journal, position ${count(d.position)})`);
  parts.push(`période : ${periodName().replace("— ", "")}`);
  if (state.lastReport) parts.push(`empreinte du journal ${state.lastReport.report.header.logPosition}:${state.lastReport.report.header.logDigest}`);
  $("print-header").textContent = `${parts.join(" · ")}.`;
}

function beforePrint() {
  updatePrintHeader();
  for (const d of document.querySelectorAll("details")) d.open = true;
}

// ---------------------------------------------------------------- session
async function enter(token) {
  state.token = token;
  state.position = 0;
  state.series = null;
  try {
    await load();
  } catch (e) {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    const why =
      e.code === "FORBIDDEN"
        ? "ce jeton n’ouvre pas le tableau de bord (rôle copil, ANCT, OPCO ou auditeur requis)."
        : frenchError(e);
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
  applyHash();
  // Focus the content without scrolling the header out of sight.
  $("main").focus({ preventScroll: true });
  window.scrollTo(0, 0);
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

function applyPeriod(from, to) {
  if (from && to && from > to) {
    $("period-error").textContent = "La période est inversée : le premier mois doit précéder le second.";
    return;
  }
  $("period-error").textContent = "";
  state.period = { from: from || null, to: to || null };
  state.position = 0;
  load().catch(() => {});
}

document.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("token").value.trim();
    if (token) enter(token);
  });
  $("logout").addEventListener("click", leave);
  $("print").addEventListener("click", () => window.print());
  window.addEventListener("beforeprint", beforePrint);
  $("indicator").addEventListener("change", () => {
    renderMap();
    renderTerritoryTables();
  });
  $("per-capita").addEventListener("change", renderMap);
  $("region").addEventListener("change", () => {
    const code = $("region").value;
    select("region", code || null);
  });
  window.addEventListener("popstate", applyHash);
  $("period-form").addEventListener("submit", (e) => {
    e.preventDefault();
    applyPeriod($("from").value, $("to").value);
  });
  $("period-reset").addEventListener("click", () => {
    $("from").value = "";
    $("to").value = "";
    applyPeriod(null, null);
  });
  for (const b of document.querySelectorAll("button.export[data-table]")) {
    b.addEventListener("click", () => exportTable(b.dataset.table, b.dataset.file));
  }
  $("report-form").addEventListener("submit", (e) => {
    e.preventDefault();
    showReport($("as-of").value, $("as-known-at").value);
  });
  $("as-of").value = new Date().toISOString().slice(0, 10);
  try {
    await buildMap();
  } catch (e) {
    $("map").textContent = `La carte n’a pas pu être chargée : ${frenchError({ code: "NETWORK" })}`;
  }
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) enter(saved);
  else $("token").focus();
});
