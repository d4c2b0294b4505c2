// The NuroPb console: one WebSocket to the gateway, frames as in the gateway's docs.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  let ws = null;
  let nextId = 1;
  const pending = new Map();
  let current = null; // {service, method, spec}

  function setStatus(text, cls) {
    $("status").textContent = text;
    $("status").className = "status " + (cls || "");
  }

  function send(type, payload) {
    return new Promise((resolve) => {
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        resolve({type: "error", payload: {error: "NotConnected", description: "sign in first"}});
        return;
      }
      const id = nextId++;
      pending.set(id, resolve);
      ws.send(JSON.stringify({type, id, payload}));
    });
  }

  function show(reply) {
    const out = $("result");
    const p = reply.payload || {};
    const error = reply.type === "error" ? p : p.error;
    out.className = "result" + (error ? " error" : "");
    out.textContent = JSON.stringify(error ? {error: error.error, description: error.description} : (reply.type === "response" ? p.result : p), null, 2);
  }

  function onEvent(payload) {
    if (payload.topic === "hello") {
      const who = payload.event.username || payload.event.user_id || "anonymous";
      setStatus("connected as " + who, "on");
      return;
    }
    const li = document.createElement("li");
    li.textContent = payload.topic + "  " + JSON.stringify(payload.event);
    $("events").prepend(li);
  }

  function connect(token) {
    if (ws) ws.close();
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/websocket";
    ws = new WebSocket(url, ["nuropb"]);
    setStatus("connecting…");
    ws.onopen = () => {
      if (token) ws.send(JSON.stringify({type: "authenticate", id: nextId++, payload: {token}}));
    };
    ws.onmessage = (m) => {
      let frame;
      try { frame = JSON.parse(m.data); } catch { return; }
      if (frame.type === "event") return onEvent(frame.payload);
      if (frame.id !== undefined && pending.has(frame.id)) {
        const resolve = pending.get(frame.id);
        pending.delete(frame.id);
        return resolve(frame);
      }
      if (frame.type === "error") setStatus(frame.payload.description, "off");
    };
    ws.onclose = (e) => setStatus("disconnected" + (e.reason ? ": " + e.reason : ""), "off");
  }

  async function loadServices() {
    const r = await fetch("services");
    const names = r.ok ? await r.json() : [];
    const ul = $("services");
    ul.replaceChildren();
    for (const name of names) {
      const li = document.createElement("li");
      li.className = "pick";
      li.textContent = name;
      li.onclick = () => describe(name);
      ul.append(li);
    }
  }

  async function describe(service) {
    const reply = await send("describe", {service});
    if (reply.type !== "description") return show(reply);
    for (const li of $("services").children) li.classList.toggle("chosen", li.textContent === service);
    const d = reply.payload.description;
    $("service-title").textContent = service;
    $("service-description").textContent = d.description || "";
    const ul = $("methods");
    ul.replaceChildren();
    for (const [name, spec] of Object.entries(d.methods)) {
      const li = document.createElement("li");
      li.className = "pick";
      li.dataset.method = name;
      li.textContent = name + (spec.requires_encryption ? " (encrypted)" : "");
      li.title = spec.description || "";
      li.onclick = () => pick(service, name, spec);
      ul.append(li);
    }
  }

  function pick(service, method, spec) {
    current = {service, method, spec};
    for (const li of $("methods").children) li.classList.toggle("chosen", li.dataset.method === method);
    $("method-title").textContent = service + "." + method;
    const box = $("params");
    box.replaceChildren();
    for (const [name, p] of (spec.parameters && spec.parameters.properties) || []) {
      const row = document.createElement("div");
      row.className = "param";
      const label = document.createElement("label");
      label.textContent = name;
      const input = document.createElement("input");
      input.name = name;
      input.dataset.type = p.type || "";
      input.placeholder = p.type === "str" ? "text" : "JSON";
      const hint = document.createElement("small");
      hint.textContent = p.type || "any";
      row.append(label, input, hint);
      box.append(row);
    }
    $("call").hidden = false;
  }

  function params() {
    const out = {};
    for (const input of $("params").querySelectorAll("input")) {
      if (input.value === "") continue;
      if (input.dataset.type === "str") { out[input.name] = input.value; continue; }
      try { out[input.name] = JSON.parse(input.value); } catch { out[input.name] = input.value; }
    }
    // A method of **kwargs takes its parameters as they are.
    if (Object.keys(out).length === 1 && "kwargs" in out && typeof out.kwargs === "object") return out.kwargs;
    return out;
  }

  $("signin").onsubmit = (e) => { e.preventDefault(); connect($("token").value.trim()); };
  $("pick").onsubmit = (e) => { e.preventDefault(); const s = $("service-name").value.trim(); if (s) describe(s); };
  $("call").onsubmit = async (e) => {
    e.preventDefault();
    if (current) show(await send("request", {service: current.service, method: current.method, params: params()}));
  };
  $("command-button").onclick = async () => {
    if (current) show(await send("command", {service: current.service, method: current.method, params: params()}));
  };
  $("subscribe").onsubmit = async (e) => {
    e.preventDefault();
    const topic = $("pattern").value.trim();
    const reply = await send("subscribe", {topic});
    if (reply.type !== "subscribed") return show(reply);
    const li = document.createElement("li");
    li.textContent = "subscribed: " + topic;
    $("subscriptions").append(li);
  };
  $("publish").onsubmit = async (e) => {
    e.preventDefault();
    let event = $("publish-event").value;
    try { event = JSON.parse(event); } catch { /* sent as text */ }
    show(await send("publish", {topic: $("publish-topic").value.trim(), event}));
  };
  loadServices();
})();
