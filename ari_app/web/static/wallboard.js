// Hotline 109 wallboard: renders the live snapshots pushed by /wallboard/events.
// Plain JS, no dependencies, text only through textContent (never innerHTML).
"use strict";

(function () {
  const LANG = document.documentElement.lang === "ar" ? "ar" : "en";
  const MAX_ROWS = 10;          // waiting rows that fit a 1080p screen; the rest summarised
  const STALE_MS = 5000;        // no snapshot for this long: dim the figures
  const REOPEN_MS = 5000;       // when the browser gives up on the stream, try again
  const STATES = ["available", "offered", "on_call", "wrapup", "paused"];

  const T = {
    en: {
      title: "Hotline 109 — live", connecting: "Connecting…", live: "Live",
      lost: "Reconnecting…", today: "Today", waiting_now: "Waiting now",
      offered: "Calls today", answered: "Answered", asa: "Average answer",
      service_level: "Service level", abandoned: "Abandoned in queue",
      abandoned_menu: "Hung up in menus", in_menus: "In menus now",
      waiting_title: "Callers waiting", entity: "Entity", waiting: "Waiting",
      longest: "Longest wait", nobody_waiting: "Nobody is waiting",
      agents_title: "Agents by site", site: "Site", available: "Available",
      offered_state: "Ringing", on_call: "On call", wrapup: "Wrap-up", paused: "Paused",
      unreachable: "No phone", total: "Total",
      stale: "Live data unavailable — figures may be out of date",
      more: (n) => `+ ${n} more entities with callers waiting`,
      within: (s) => `(≤ ${s} s)`, seconds: (s) => `${s} s`, rate: (p) => `${p} of calls`,
    },
    ar: {
      title: "الخط الساخن 109 — مباشر", connecting: "جارٍ الاتصال…", live: "مباشر",
      lost: "إعادة الاتصال…", today: "اليوم", waiting_now: "في الانتظار الآن",
      offered: "مكالمات اليوم", answered: "تم الرد", asa: "متوسط زمن الرد",
      service_level: "مستوى الخدمة", abandoned: "متروكة في الانتظار",
      abandoned_menu: "أُنهيت في القوائم", in_menus: "في القوائم الآن",
      waiting_title: "المتصلون في الانتظار", entity: "الجهة", waiting: "في الانتظار",
      longest: "أطول انتظار", nobody_waiting: "لا أحد في الانتظار",
      agents_title: "الموظفون حسب الموقع", site: "الموقع", available: "متاح",
      offered_state: "يرن", on_call: "في مكالمة", wrapup: "إنهاء المكالمة",
      paused: "استراحة", unreachable: "الهاتف غير متصل", total: "المجموع",
      stale: "البيانات المباشرة غير متاحة — قد تكون الأرقام قديمة",
      more: (n) => `+ ${n} جهات أخرى لديها متصلون في الانتظار`,
      within: (s) => `(≤ ${s} ث)`, seconds: (s) => `${s} ث`, rate: (p) => `${p} من المكالمات`,
    },
  };
  const t = T[LANG];

  const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
  const setText = (id, text) => { const el = $(id); if (el && el.textContent !== text) el.textContent = text; };
  const num = (v) => (v === null || v === undefined ? "–" : String(v));
  const pct = (r) => (r === null || r === undefined ? "–" : `${Math.round(r * 100)}%`);
  const dur = (s) => {
    s = Math.max(0, Math.round(s || 0));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? `${h}:` : "") + `${mm}:${String(sec).padStart(2, "0")}`;
  };
  const cls = (el, name) => { el.classList.remove("good", "warn", "bad"); if (name) el.classList.add(name); };

  // static labels
  document.title = t.title;
  for (const el of document.querySelectorAll("[data-i18n]")) {
    const v = t[el.dataset.i18n];
    if (typeof v === "string") el.textContent = v;
  }

  function cell(text, className, testid) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    if (testid) td.dataset.testid = testid;
    if (className === "name") td.dir = "auto";  // an English name on the Arabic page stays LTR
    return td;
  }

  function renderToday(snap) {
    const d = snap.today || {};
    const sla = d.sla_seconds || 20;
    const total = (snap.waiting || []).reduce((a, w) => a + w.count, 0);
    setText("waiting-total", String(total));
    setText("today-offered", num(d.offered));
    setText("today-answered", num(d.answered));
    setText("today-asa", d.asa_seconds === null || d.asa_seconds === undefined ? "–" : t.seconds(Math.round(d.asa_seconds)));
    setText("today-sla-seconds", t.within(sla));
    setText("today-service-level", pct(d.service_level));
    setText("today-abandoned-queue", num(d.abandoned_in_queue));
    setText("today-abandon-rate", d.abandon_rate === null || d.abandon_rate === undefined ? "" : t.rate(pct(d.abandon_rate)));
    setText("today-abandoned-menu", num(d.abandoned_in_menu));
    setText("in-menus", num(snap.in_menus));
    const sl = d.service_level;
    cls($("today-service-level"), sl === null || sl === undefined ? "" : sl >= 0.8 ? "good" : sl >= 0.6 ? "warn" : "bad");
    const asa = d.asa_seconds;
    cls($("today-asa"), asa === null || asa === undefined ? "" : asa <= sla ? "good" : asa <= 2 * sla ? "warn" : "bad");
    cls($("waiting-total"), total ? "warn" : "good");
  }

  function renderWaiting(snap) {
    const d = snap.today || {};
    const sla = d.sla_seconds || 20;
    const rows = snap.waiting || [];
    const body = $("waiting-rows");
    const frag = document.createDocumentFragment();
    for (const w of rows.slice(0, MAX_ROWS)) {
      const tr = document.createElement("tr");
      tr.dataset.testid = `waiting-row-${w.entity}`;
      const name = (w.name && (w.name[LANG] || w.name.en)) || w.entity;
      tr.append(
        cell(name, "name", `waiting-name-${w.entity}`),
        cell(String(w.count), "num", `waiting-count-${w.entity}`),
        cell(dur(w.longest_seconds), "num", `waiting-longest-${w.entity}`),
      );
      if (w.longest_seconds > 3 * sla) tr.className = "bad";
      else if (w.longest_seconds > sla) tr.className = "warn";
      frag.append(tr);
    }
    body.replaceChildren(frag);
    $("waiting-empty").hidden = rows.length > 0;
    const more = $("waiting-more");
    more.hidden = rows.length <= MAX_ROWS;
    more.textContent = rows.length > MAX_ROWS ? t.more(rows.length - MAX_ROWS) : "";
  }

  function renderSites(snap) {
    const body = $("site-rows");
    const frag = document.createDocumentFragment();
    const totals = { unreachable: 0 };
    for (const s of STATES) totals[s] = 0;
    for (const site of snap.sites || []) {
      const tr = document.createElement("tr");
      tr.dataset.testid = `site-row-${site.site}`;
      tr.append(cell(site.name || site.site, "name"));
      for (const s of STATES) {
        const n = (site.agents || {})[s] || 0;
        totals[s] += n;
        tr.append(cell(String(n), `num st-${s}${n ? "" : " zero"}`, `site-${site.site}-${s}`));
      }
      const u = site.unreachable || 0;
      totals.unreachable += u;
      tr.append(cell(String(u), `num st-unreachable${u ? "" : " zero"}`, `site-${site.site}-unreachable`));
      frag.append(tr);
    }
    body.replaceChildren(frag);
    for (const k of Object.keys(totals)) setText(`total-${k}`, String(totals[k]));
  }

  function renderClock(snap) {
    const at = snap.at ? new Date(snap.at) : new Date();
    setText("updated-at", at.toLocaleTimeString("en-GB", { hour12: false }));
  }

  // -- connection -----------------------------------------------------------------------------
  let lastSnapshot = 0;
  let source = null;

  function setConn(state) {
    const el = $("conn-status");
    el.className = `conn conn-${state === "live" ? "live" : state === "lost" ? "lost" : "wait"}`;
    el.textContent = state === "live" ? t.live : state === "lost" ? t.lost : t.connecting;
    el.dataset.state = state;
  }

  function setStale(stale) {
    document.body.classList.toggle("stale", stale);
    $("stale-banner").hidden = !stale;
  }

  function onSnapshot(ev) {
    let snap;
    try { snap = JSON.parse(ev.data); } catch (e) { return; }
    lastSnapshot = Date.now();
    renderToday(snap);
    renderWaiting(snap);
    renderSites(snap);
    renderClock(snap);
    setStale(false);
    setConn("live");
  }

  function connect() {
    source = new EventSource("wallboard/events");
    source.addEventListener("snapshot", onSnapshot);
    source.addEventListener("unavailable", () => setStale(true));
    source.onopen = () => setConn("live");
    source.onerror = () => {
      setConn("lost");
      // EventSource retries by itself after a dropped stream; after an HTTP error it gives up.
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        setTimeout(connect, REOPEN_MS);
      }
    };
  }

  setInterval(() => {
    if (lastSnapshot && Date.now() - lastSnapshot > STALE_MS) setStale(true);
  }, 1000);

  connect();
})();
