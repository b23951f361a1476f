"use strict";
// The supervisors' console: polls /supervision/api/state, acts through the API
// with the session's CSRF token. Text is set with textContent only.
(() => {
  const T = {
    en: {title: "Hotline 109 — Supervision", calls: "Live calls", call: "Call", entity: "Entity",
         language: "Language", agent: "Agent", recording: "Recording", supervised: "Supervised",
         actions: "Actions", no_calls: "No live call.", agents: "Agents", site: "Site",
         state: "State", reason: "Reason", audit: "Audit", listen: "Listen", whisper: "Whisper",
         barge: "Barge", leave: "Leave", pause: "Pause", logout: "Log out", yes: "yes", no: "—",
         need_reason: "Type a reason first."},
    ar: {title: "الخط 109 — الإشراف", calls: "المكالمات الجارية", call: "المكالمة",
         entity: "الجهة", language: "اللغة", agent: "الموظف", recording: "التسجيل",
         supervised: "تحت الإشراف", actions: "الإجراءات", no_calls: "لا توجد مكالمة جارية.",
         agents: "الموظفون", site: "الموقع", state: "الحالة", reason: "السبب", audit: "السجل",
         listen: "استماع", whisper: "همس", barge: "مشاركة", leave: "مغادرة", pause: "إيقاف مؤقت",
         logout: "تسجيل خروج", yes: "نعم", no: "—", need_reason: "اكتب السبب أولا."},
  };
  const lang = document.documentElement.lang === "ar" ? "ar" : "en";
  const t = (k) => (T[lang][k] || T.en[k] || k);
  const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
  let csrf = "";

  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.title = t("title");
  const sw = $("lang-switch");
  if (lang === "ar") { sw.href = "/supervision?lang=en"; sw.textContent = "English"; sw.lang = "en"; }

  function cell(row, text) { const td = document.createElement("td"); td.textContent = text ?? "—"; row.appendChild(td); return td; }
  function button(td, label, testid, onclick) {
    const b = document.createElement("button"); b.type = "button"; b.textContent = t(label);
    b.dataset.testid = testid; b.addEventListener("click", onclick); td.appendChild(b);
  }
  async function post(path, body) {
    const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
                                 body: JSON.stringify(body || {})});
    const data = await r.json().catch(() => ({}));
    $("sup-error").textContent = r.ok ? "" : (data.error || r.status);
    refresh();
  }
  function render(s) {
    csrf = s.csrf; $("sup-user").textContent = s.user;
    const calls = $("calls-body"); calls.replaceChildren();
    for (const c of s.calls) {
      const tr = document.createElement("tr"); tr.dataset.testid = `call-${c.call_id}`; tr.dataset.agent = c.agent || "";
      cell(tr, c.call_id.slice(0, 8)); cell(tr, c.entity); cell(tr, c.language); cell(tr, c.agent);
      cell(tr, c.recording ? t("yes") : t("no"));
      cell(tr, c.supervisor ? `${c.supervisor} (${t(c.mode)})` : t("no"));
      const td = cell(tr, "");
      for (const a of ["listen", "whisper", "barge", "leave"]) {
        button(td, a, `${a}-${c.call_id}`, () => post(`/supervision/api/calls/${c.call_id}/${a}`));
      }
      calls.appendChild(tr);
    }
    $("no-calls").hidden = s.calls.length > 0;
    const agents = $("agents-body"); agents.replaceChildren();
    for (const a of s.agents) {
      const tr = document.createElement("tr"); tr.dataset.testid = `agent-${a.id}`;
      cell(tr, a.id); cell(tr, a.site); const st = cell(tr, a.state); st.dataset.testid = `state-${a.id}`;
      const td = cell(tr, "");
      for (const act of ["pause", "logout"]) {
        button(td, act, `${act}-${a.id}`, () => {
          const reason = $("force-reason").value.trim();
          if (!reason) { $("sup-error").textContent = t("need_reason"); return; }
          post(`/supervision/api/agents/${a.id}/${act}`, {reason});
        });
      }
      agents.appendChild(tr);
    }
    const audit = $("audit"); audit.replaceChildren();
    for (const e of s.audit) {
      const li = document.createElement("li"); li.dataset.testid = "audit-entry";
      li.textContent = `${e.at} ${e.by} ${e.action} ${e.agent || e.call_id || ""} — ${e.reason}`;
      audit.appendChild(li);
    }
  }
  async function refresh() {
    try {
      const r = await fetch("/supervision/api/state", {headers: {Accept: "application/json"}});
      if (!r.ok) { $("sup-error").textContent = r.status; return; }
      render(await r.json());
    } catch (e) { $("sup-error").textContent = String(e); }
  }
  refresh();
  setInterval(refresh, 1000);
})();
