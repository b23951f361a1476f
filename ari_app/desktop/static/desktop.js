// Hotline 109 agent desktop. Everything from the server is put on the page as
// text (textContent, never innerHTML): a note or a name holding markup shows
// as the characters typed.
"use strict";

(function () {
  const LANG = document.documentElement.lang === "ar" ? "ar" : "en";
  const T = {
    en: {
      title: "Hotline 109 — Agent desktop", connecting: "Connecting…", live: "Live",
      lost: "Reconnecting…", sign_in: "Sign in", sign_out: "Sign out", user: "User",
      password: "Password", my_state: "My state", since: "Since", log_in: "Log in",
      log_out: "Log out", resume: "Resume", pause: "Pause", pause_reason: "Pause reason",
      call: "Call", no_call: "No call", caller: "Caller", language: "Language",
      entity: "Entity", path: "Menu path", waited: "Waited", kind: "Call",
      history: "Earlier calls", when: "When", outcome: "Outcome", reason: "Reason",
      wrapup: "Wrap-up", sub_reason: "Detail", note: "Note", save_reason: "Save reason",
      wrapup_done: "End wrap-up", wrapup_extend: "+60 s", none: "—",
      direct: "Direct call", transferred: "Transferred", transferred_by: "Transferred by",
      callback: "Callback", anonymous: "Anonymous", unreachable: "Phone not registered",
      reachable: "Phone registered", days: "(last {n} days)", no_history: "No earlier calls",
      history_loading: "Looking up…", saved: "Saved: ", days_ago: "", wrong: "Sign-in failed",
      st_logged_out: "Logged out", st_available: "Available", st_offered: "Ringing",
      st_on_call: "On a call", st_wrapup: "Wrap-up", st_paused: "Paused",
      missed_call: "Missed call", until: "until",
      o_answered: "Answered", o_abandoned_in_queue: "Hung up in queue",
      o_abandoned_in_menu: "Hung up in menus", o_completed_in_menu: "Served by menus",
      o_no_agent_fallback: "No agent", o_max_wait_fallback: "Waited too long",
      o_transferred: "Transferred", o_rejected: "Refused", o_failed: "Failed",
      no_reason_given: "No reason given",
    },
    ar: {
      title: "الخط الساخن 109 — شاشة الموظف", connecting: "جارٍ الاتصال…", live: "مباشر",
      lost: "إعادة الاتصال…", sign_in: "تسجيل الدخول", sign_out: "تسجيل الخروج",
      user: "المستخدم", password: "كلمة المرور", my_state: "حالتي", since: "منذ",
      log_in: "بدء العمل", log_out: "إنهاء العمل", resume: "استئناف", pause: "إيقاف مؤقت",
      pause_reason: "سبب الإيقاف", call: "المكالمة", no_call: "لا توجد مكالمة",
      caller: "المتصل", language: "اللغة", entity: "الجهة", path: "مسار القائمة",
      waited: "مدة الانتظار", kind: "نوع المكالمة", history: "المكالمات السابقة",
      when: "التاريخ", outcome: "النتيجة", reason: "السبب", wrapup: "إنهاء المكالمة",
      sub_reason: "التفصيل", note: "ملاحظة", save_reason: "حفظ السبب",
      wrapup_done: "إنهاء المعالجة", wrapup_extend: "+60 ث", none: "—",
      direct: "مكالمة مباشرة", transferred: "محوّلة", transferred_by: "محوّلة من",
      callback: "معاودة اتصال", anonymous: "رقم مخفي", unreachable: "الهاتف غير مسجّل",
      reachable: "الهاتف مسجّل", days: "(آخر {n} يومًا)", no_history: "لا مكالمات سابقة",
      history_loading: "جارٍ البحث…", saved: "تم الحفظ: ", wrong: "فشل تسجيل الدخول",
      st_logged_out: "خارج العمل", st_available: "متاح", st_offered: "يرن",
      st_on_call: "في مكالمة", st_wrapup: "معالجة المكالمة", st_paused: "متوقف مؤقتًا",
      missed_call: "مكالمة فائتة", until: "حتى",
      o_answered: "تم الرد", o_abandoned_in_queue: "أغلق أثناء الانتظار",
      o_abandoned_in_menu: "أغلق في القوائم", o_completed_in_menu: "خُدم بالقوائم",
      o_no_agent_fallback: "لا يوجد موظف", o_max_wait_fallback: "انتظار طويل",
      o_transferred: "محوّلة", o_rejected: "مرفوضة", o_failed: "فشلت",
      no_reason_given: "بلا سبب",
    },
  };
  const t = (k) => (T[LANG][k] !== undefined ? T[LANG][k] : T.en[k] !== undefined ? T.en[k] : k);
  const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
  const ACTIVE = new Set(["offered", "on_call", "wrapup"]);

  let csrf = "";
  let me = null;
  let state = null;
  let pop = null;
  let source = null;
  let reasons = [];

  function setText(id, text) { const el = $(id); if (el) el.textContent = text == null ? "" : String(text); }
  function label(names) { return names ? (names[LANG] || names.en || Object.values(names)[0] || "") : ""; }
  function clock(sec) {
    if (sec == null) return t("none");
    const s = Math.max(0, Math.round(sec));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }
  function hhmm(epoch) {
    if (!epoch) return "–";
    return new Date(epoch * 1000).toLocaleTimeString(LANG === "ar" ? "ar" : "en-GB",
      { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.title = t("title");
  const sw = $("lang-switch");
  sw.href = LANG === "ar" ? "/desktop?lang=en" : "/desktop?lang=ar";
  sw.textContent = LANG === "ar" ? "English" : "العربية";
  sw.lang = LANG === "ar" ? "en" : "ar";

  async function api(method, path, body) {
    const headers = { "Accept": "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, { method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body) });
    let data = {};
    try { data = await r.json(); } catch (e) { data = {}; }
    if (r.status === 401 && path !== "/desktop/api/signin") showSignin();
    if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
    return data;
  }

  // -- sign-in ---------------------------------------------------------------------------------
  function showSignin(message) {
    if (source) { source.close(); source = null; }
    $("desk").hidden = true; $("signout").hidden = true;
    $("signin").hidden = false;
    setText("signin-error", message || "");
    setText("desk-user", "");
    setConn("wait");
  }

  $("signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    setText("signin-error", "");
    try {
      const out = await api("POST", "/desktop/api/signin",
        { user: $("signin-user").value, password: $("signin-password").value });
      csrf = out.csrf;
      $("signin-password").value = "";
      // a guarded page (the supervision console) sent the browser here first
      const next = new URLSearchParams(location.search).get("next");
      if (next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/desktop")) {
        location.assign(next);
        return;
      }
      await start();
    } catch (e) {
      setText("signin-error", `${t("wrong")}: ${e.message}`);
    }
  });

  $("signout").addEventListener("click", async () => {
    try { await api("POST", "/desktop/api/signout"); } catch (e) { /* the session may be gone */ }
    csrf = ""; me = null;
    showSignin();
  });

  async function start() {
    try { me = await api("GET", "/desktop/api/me"); } catch (e) { return; }
    csrf = me.csrf;
    $("signin").hidden = true; $("desk").hidden = false; $("signout").hidden = false;
    setText("desk-user", me.user);
    const sel = $("pause-reason");
    sel.replaceChildren();
    for (const r of me.pause_reasons) {
      const o = document.createElement("option");
      o.value = r.id; o.textContent = label(r.labels);
      sel.appendChild(o);
    }
    reasons = me.pause_reasons;
    if (me.status) renderState(me.status);
    connect();
  }

  // -- live stream -----------------------------------------------------------------------------
  function setConn(kind) {
    const el = $("conn-status");
    el.className = `conn conn-${kind}`;
    el.textContent = t(kind === "live" ? "live" : kind === "lost" ? "lost" : "connecting");
  }

  function connect() {
    if (source) source.close();
    source = new EventSource("/desktop/events");
    source.onopen = () => setConn("live");
    source.onerror = async () => {
      setConn("lost");
      if (source && source.readyState === EventSource.CLOSED) {
        // the browser gave up (e.g. 401): is the session still there?
        try { await api("GET", "/desktop/api/me"); setTimeout(connect, 2000); } catch (e) { /* signin shown */ }
      }
    };
    source.addEventListener("state", (ev) => { setConn("live"); renderState(JSON.parse(ev.data)); });
    source.addEventListener("pop", (ev) => renderPop(JSON.parse(ev.data)));
    source.addEventListener("history", (ev) => renderHistory(JSON.parse(ev.data)));
    source.addEventListener("unavailable", () => setConn("lost"));
  }

  // -- my state --------------------------------------------------------------------------------
  function reasonLabel(id) {
    if (!id) return "";
    if (id === "missed_call" || id === "missed call") return t("missed_call");
    const r = reasons.find((x) => x.id === id);
    return r ? label(r.labels) : id;
  }

  function renderState(st) {
    state = st;
    const el = $("agent-state");
    el.textContent = t(`st_${st.state}`);
    el.dataset.state = st.state;
    let reason = st.state === "paused" ? reasonLabel(st.reason) : "";
    if (st.state === "wrapup" && st.until) reason = `${t("until")} ${hhmm(st.until)}`;
    setText("agent-reason", reason);
    setText("agent-since", hhmm(st.since));
    setText("agent-reachable", st.reachable ? t("reachable") : t("unreachable"));
    $("agent-reachable").classList.toggle("bad", !st.reachable);
    const s = st.state;
    $("btn-login").disabled = s !== "logged_out";
    $("btn-logout").disabled = s === "logged_out";
    $("btn-resume").disabled = s !== "paused";
    $("btn-pause").disabled = !(s === "available" || s === "wrapup");
    $("pause-reason").disabled = $("btn-pause").disabled;
    // a pop belongs to the call being offered, talked or wrapped up
    if (pop && !ACTIVE.has(s) && st.since && st.since * 1000 >= pop.offered_at) hidePop();
    $("wrapup").hidden = !(pop && (s === "on_call" || s === "wrapup") && me && me.wrapup);
  }

  async function act(action, body) {
    setText("action-error", "");
    try {
      const out = await api("POST", `/desktop/api/${action}`, body);
      if (out.status) renderState(out.status);
    } catch (e) { setText("action-error", e.message); }
  }
  $("btn-login").addEventListener("click", () => act("login"));
  $("btn-logout").addEventListener("click", () => act("logout"));
  $("btn-resume").addEventListener("click", () => act("resume"));
  $("btn-pause").addEventListener("click", () => act("pause", { reason: $("pause-reason").value }));

  // -- screen-pop ------------------------------------------------------------------------------
  function hidePop() {
    pop = null;
    $("pop").hidden = true; $("pop-empty").hidden = false; $("wrapup").hidden = true;
  }

  function renderPop(p) {
    pop = p;
    const el = $("pop");
    setText("pop-caller", p.caller || t("anonymous"));
    const ln = p.language_name || {};
    setText("pop-language", LANG === "en" && ln.en && ln.en !== ln.own ? `${ln.own} (${ln.en})` : (ln.own || p.language));
    setText("pop-entity", label(p.entity_name) || p.entity);
    setText("pop-path", (p.path || []).map((x) => label(x.name) || x.id).join(" › ") || t("none"));
    setText("pop-waited", clock(p.waited_seconds));
    let kind = t("direct");
    if (p.transferred) kind = p.transferred_by ? `${t("transferred_by")} ${p.transferred_by}` : t("transferred");
    if (p.callback) kind = t("callback");
    setText("pop-kind", kind);
    setText("history-status", t("history_loading"));
    $("history-rows").replaceChildren();
    el.dataset.callId = p.call_id;
    el.dataset.offeredAt = String(p.offered_at);
    el.hidden = false; $("pop-empty").hidden = true;
    el.dataset.shownAt = String(Date.now());  // the offer-to-display delay's end
    setText("wrapup-saved", ""); setText("wrapup-error", "");
    if (me && me.wrapup) loadReasons(p.entity);
    if (state) renderState(state);
  }

  function renderHistory(h) {
    if (!pop || h.call_id !== pop.call_id) return;
    setText("history-days", t("days").replace("{n}", h.days || ""));
    const rows = $("history-rows");
    rows.replaceChildren();
    if (h.error) { setText("history-status", h.error); return; }
    setText("history-status", h.calls.length ? "" : t("no_history"));
    for (const c of h.calls) {
      const tr = document.createElement("tr");
      tr.dataset.testid = "history-row";
      const when = new Date(c.arrived_at).toLocaleString(LANG === "ar" ? "ar" : "en-GB",
        { day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit" });
      const reason = [c.reason ? t(c.reason) === c.reason ? kindLabel(c.reason) : t(c.reason) : "",
        c.reason_detail || "", c.note || ""].filter(Boolean).join(" · ");
      for (const v of [when, label(c.entity_name) || c.entity || "", c.outcome ? t(`o_${c.outcome}`) : "", reason]) {
        const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
      }
      rows.appendChild(tr);
    }
  }

  // -- wrap-up ---------------------------------------------------------------------------------
  let kinds = [];
  function kindLabel(id) {
    const k = kinds.find((x) => x.kind === id);
    return k ? label(k.labels) : id;
  }

  async function loadReasons(entity) {
    try {
      const out = await api("GET", `/desktop/api/wrapup/reasons?entity=${encodeURIComponent(entity || "")}`);
      kinds = out.reasons || [];
    } catch (e) { kinds = []; }
    const sel = $("wrapup-kind");
    sel.replaceChildren();
    for (const k of kinds) {
      const o = document.createElement("option"); o.value = k.kind; o.textContent = label(k.labels);
      sel.appendChild(o);
    }
    fillSubs();
  }
  function fillSubs() {
    const k = kinds.find((x) => x.kind === $("wrapup-kind").value);
    const sel = $("wrapup-sub");
    sel.replaceChildren();
    const none = document.createElement("option"); none.value = ""; none.textContent = t("none");
    sel.appendChild(none);
    for (const s of (k && k.sub_reasons) || []) {
      const o = document.createElement("option"); o.value = s.id; o.textContent = label(s.labels);
      sel.appendChild(o);
    }
  }
  $("wrapup-kind").addEventListener("change", fillSubs);

  $("wrapup").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!pop) return;
    setText("wrapup-error", ""); setText("wrapup-saved", "");
    try {
      const out = await api("POST", "/desktop/api/wrapup/tag", {
        call_id: pop.call_id, kind: $("wrapup-kind").value,
        sub_reason: $("wrapup-sub").value || null, note: $("wrapup-note").value || null });
      const sel = $("wrapup-kind");
      const what = sel.options[sel.selectedIndex] ? sel.options[sel.selectedIndex].textContent : "";
      setText("wrapup-saved", t("saved") + what + (out.note ? ` — ${out.note}` : ""));
      $("wrapup-note").value = "";
      if (out.status) renderState(out.status);
    } catch (e) { setText("wrapup-error", e.message); }
  });
  async function wrap(action, body) {
    setText("wrapup-error", "");
    try {
      const out = await api("POST", `/desktop/api/wrapup/${action}`, body);
      if (out.status) renderState(out.status);
    } catch (e) { setText("wrapup-error", e.message); }
  }
  $("wrapup-done").addEventListener("click", () => wrap("done"));
  $("wrapup-extend").addEventListener("click", () => wrap("extend", { seconds: 60 }));

  // -- go --------------------------------------------------------------------------------------
  (async () => {
    try {
      me = await api("GET", "/desktop/api/me");
      await start();
    } catch (e) {
      showSignin();
    }
  })();
})();
