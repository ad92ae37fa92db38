// The agent console and the supervisor view: one WebSocket, plain DOM.
// Everything that comes from a call (utterances, names, slots, reasons) is set with
// textContent or as an attribute value, never parsed as HTML.
"use strict";

(function () {
  const body = document.body;
  const page = body.dataset.page;
  const token = body.dataset.token;
  let ws = null, retryMs = 500, clockOffsetS = 0, current = null, dispositions = [];

  const $ = (id) => document.getElementById(id);
  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function nowS() { return Date.now() / 1000 + clockOffsetS; }
  function ago(s) {
    if (s === null || s === undefined) return "";
    const d = Math.max(0, Math.round(nowS() - s));
    return d < 60 ? d + " s" : Math.floor(d / 60) + " min " + (d % 60) + " s";
  }
  function showError(text) {
    const box = $("error");
    box.textContent = text;
    box.hidden = !text;
  }
  function send(msg) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(scheme + location.host + body.dataset.ws);
    ws.onopen = () => { retryMs = 500; send({type: "hello", token: token, page: page}); };
    ws.onmessage = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      handle(msg);
    };
    ws.onclose = () => {
      const link = $("link-state");
      link.textContent = "disconnected, retrying…";
      link.className = "pill off";
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10000);
    };
  }

  function handle(msg) {
    if (typeof msg.now_s === "number") clockOffsetS = msg.now_s - Date.now() / 1000;
    switch (msg.type) {
      case "welcome":
        $("link-state").textContent = "live";
        $("link-state").className = "pill on";
        dispositions = msg.dispositions || [];
        showError("");
        if (page === "agent") fillDispositions();
        break;
      case "state": if (page === "agent") renderState(msg); break;
      case "supervisor": renderSupervisor(msg); break;
      case "pop": renderPop(msg, true); break;
      case "call": if (current && msg.call && msg.call.call_id === current.call_id) renderPop(msg, false); break;
      case "withdrawn":   // the phone did not take the call (no answer, rejected, the caller left)
        if (current && current.call_id === msg.call_id) {
          current = null;
          $("pop").hidden = true;
          body.dataset.popCall = "";
        }
        break;
      case "saved":
        $("saved").textContent = "Saved: " + msg.disposition;
        body.dataset.saved = msg.call_id;
        break;
      case "taken":
        if (!msg.ok) showError(msg.error || "taken by someone else");
        break;
      case "error": showError(msg.error || "error"); break;
      case "bye": showError(msg.error || "the console closed the connection"); break;
    }
  }

  // ---- agent page ---------------------------------------------------------------------

  function fillDispositions() {
    const select = $("disposition");
    clear(select);
    for (const d of dispositions) {
      const opt = el("option", d);
      opt.value = d;
      select.appendChild(opt);
    }
  }

  function renderState(msg) {
    const me = msg.me || {};
    $("my-status").textContent = (me.status || "unknown").replace("_", "-");
    since($("my-since"), me.since_s, "for ");
    body.dataset.status = me.status || "";
    for (const b of document.querySelectorAll("#status-card button")) {
      b.classList.toggle("current", b.dataset.status === me.status);
    }
    const queue = $("queue");
    clear(queue);
    for (const w of msg.queue || []) queue.appendChild(waitingItem(w));
    if (!(msg.queue || []).length) queue.appendChild(el("li", "nobody waiting", "muted"));
    const list = $("callbacks");
    clear(list);
    for (const cb of msg.callbacks || []) {
      const li = el("li");
      li.dataset.id = cb.id;
      li.appendChild(el("span", cb.number + " "));
      li.appendChild(el("span", (cb.reason || "") + " · asked ", "muted"));
      li.appendChild(since(el("span", null, "muted"), cb.requested_at_s, ""));
      if (cb.taken_by === body.dataset.user) {
        li.appendChild(el("span", " · yours: call them back ", "muted"));
        for (const result of ["done", "failed"]) {
          const b = el("button", result === "done" ? "Done" : "Not reached");
          b.type = "button";
          b.addEventListener("click", () => send({type: "finish_callback", id: String(cb.id), result: result}));
          li.appendChild(b);
        }
      } else if (cb.taken_by) {
        li.appendChild(el("span", " · taken by " + cb.taken_by, "muted"));
      } else {
        const take = el("button", "Take");
        take.type = "button";
        take.className = "take";
        take.addEventListener("click", () => send({type: "take_callback", id: String(cb.id)}));
        li.appendChild(take);
      }
      list.appendChild(li);
    }
    if (!(msg.callbacks || []).length) list.appendChild(el("li", "no callbacks waiting", "muted"));
  }

  function waitingItem(w) {
    const li = el("li");
    li.appendChild(el("span", w.caller + (w.caller_name ? " (" + w.caller_name + ")" : "") + " "));
    if (w.node) li.dataset.node = w.node;
    li.appendChild(since(el("span", null, "wait"), w.joined_at_s, "waiting "));
    const why = [w.queue, w.intent, w.reason, w.node ? "on " + w.node : ""].filter(Boolean).join(" · ");
    if (why) li.appendChild(el("span", " · " + why, "muted"));
    return li;
  }

  function renderPop(msg, fresh) {
    const call = msg.call;
    const box = $("pop");
    if (fresh || !current || current.call_id !== call.call_id) {
      $("notes").value = typeof msg.notes === "string" ? msg.notes : "";
      $("saved").textContent = "";
    }
    current = call;
    box.hidden = false;
    box.dataset.callId = call.call_id;
    box.classList.toggle("ringing", msg.ringing === true);
    $("pop-state").textContent = call.ended ? "(ended: choose a disposition)" : (msg.ringing ? "(ringing)" : "");
    $("pop-caller").textContent = call.caller || "unknown number";
    $("pop-name").textContent = call.caller_name || "";
    $("pop-language").textContent = call.language || "";
    $("pop-intent").textContent = call.intent || "";
    $("pop-reason").textContent = call.reason || "";
    $("pop-queue").textContent = call.queue || "";
    $("pop-node").textContent = call.node || "";
    $("pop-path").textContent = (call.path || []).join(" → ");
    const slots = $("pop-slots").tBodies[0];
    clear(slots);
    for (const [name, value] of Object.entries(call.slots || {})) {
      const tr = el("tr");
      tr.appendChild(el("th", name));
      tr.appendChild(el("td", typeof value === "object" ? JSON.stringify(value) : value));
      tr.dataset.slot = name;
      slots.appendChild(tr);
    }
    const faq = $("pop-faq");
    clear(faq);
    for (const f of call.faq || []) {
      faq.appendChild(el("li", f.id + (f.score !== null ? " (" + f.score.toFixed(2) + ")" : "") +
                               (f.used ? " · answered" : " · weighed") + (f.heard ? " · for “" + f.heard + "”" : "")));
    }
    const tr = $("pop-transcript");
    clear(tr);
    for (const t of call.turns || []) {
      if (t.heard) {
        const li = el("li", null, "caller");
        li.appendChild(el("span", "Caller:", "who"));
        li.appendChild(el("span", t.heard, "heard"));
        if (typeof t.sentiment === "number") {
          const s = el("span", "sentiment " + t.sentiment.toFixed(2), "sent");
          s.classList.add(t.sentiment < -0.05 ? "neg" : t.sentiment > 0.05 ? "pos" : "neu");
          li.appendChild(s);
        }
        tr.appendChild(li);
      }
      for (const said of t.said || []) {
        const li = el("li", null, "machine");
        li.appendChild(el("span", "IVR:", "who"));
        li.appendChild(el("span", said, "said"));
        tr.appendChild(li);
      }
    }
    const crm = $("pop-crm");
    if (typeof msg.crm_url === "string" && /^https?:\/\//.test(msg.crm_url)) {
      crm.href = msg.crm_url;
      crm.hidden = false;
      if (fresh && msg.open_window) window.open(msg.crm_url, "ivr-crm", "noopener");
    } else {
      crm.hidden = true;
    }
    if (fresh) {
      body.dataset.popCall = call.call_id;
      body.dataset.popAtMs = String(Date.now());
    }
  }

  function wireAgent() {
    for (const b of document.querySelectorAll("#status-card button")) {
      b.addEventListener("click", () => send({type: "status", status: b.dataset.status}));
    }
    let timer = null;
    $("notes").addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (current) send({type: "notes", call_id: current.call_id, text: $("notes").value.slice(0, 4000)});
      }, 400);
    });
    $("save-disposition").addEventListener("click", () => {
      if (!current) return;
      send({type: "disposition", call_id: current.call_id, disposition: $("disposition").value,
            notes: $("notes").value.slice(0, 4000)});
    });
  }

  // ---- supervisor page ----------------------------------------------------------------

  function row(cells) {
    const tr = el("tr");
    for (const c of cells) tr.appendChild(c instanceof Node ? c : el("td", c));
    return tr;
  }

  // a time shown as "how long ago", kept current by the ticker below (no rebuild: buttons stay put)
  function since(node, s, prefix) {
    node.dataset.since = s ? String(s) : "";
    node.dataset.prefix = prefix || "";
    node.textContent = s ? (prefix || "") + ago(s) : "";
    return node;
  }

  function renderSupervisor(msg) {
    const agents = $("agents").tBodies[0];
    clear(agents);
    for (const a of msg.agents || []) {
      const tr = row([a.name, (a.status || "").replace("_", "-"), since(el("td"), a.since_s),
                      a.call_id ? (a.caller || "") + " · " + a.call_id : "", a.connected ? "open" : "closed"]);
      tr.dataset.agent = a.name;
      agents.appendChild(tr);
    }
    const queues = $("queues").tBodies[0];
    clear(queues);
    for (const q of msg.queues || []) {
      const tr = row([q.name, q.waiting, since(el("td"), q.longest_since_s), q.callbacks]);
      tr.dataset.queue = q.name;
      queues.appendChild(tr);
    }
    const list = $("queue");
    clear(list);
    for (const w of msg.queue || []) list.appendChild(waitingItem(w));
    const calls = $("calls").tBodies[0];   // every node's calls (the relay), with the node running each
    clear(calls);
    for (const c of msg.calls || []) {
      const tr = row([c.node || "", c.caller + (c.caller_name ? " (" + c.caller_name + ")" : ""), c.flow || "",
                      c.state + (c.queue ? " · " + c.queue : ""), since(el("td"), c.started_at_s), c.agent || ""]);
      tr.dataset.call = c.call_id;
      tr.dataset.node = c.node || "";
      calls.appendChild(tr);
    }
  }

  setInterval(() => {   // waits tick between server updates
    for (const node of document.querySelectorAll("[data-since]")) {
      const s = parseFloat(node.dataset.since);
      if (s) node.textContent = node.dataset.prefix + ago(s);
    }
  }, 1000);
  setInterval(() => send({type: "ping"}), 25000);

  if (page === "agent") wireAgent();
  connect();
})();
