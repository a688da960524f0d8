// The UE of tests/test_browser.c: one MSRP data channel (RFC 8873) to the gateway, the SDP answer
// from the test (which plays the ALG), MSRP SEND requests, and what the page saw posted as JSON.
"use strict";

const params = new URLSearchParams(location.search);
const count = Number(params.get("n") || "200");
const size = Number(params.get("size") || "4096");
const firstSize = Number(params.get("first") || "32");
const openTimeoutMs = Number(params.get("open_ms") || "10000");
const bulkTimeoutMs = Number(params.get("bulk_ms") || "20000");
const toPath = params.get("to") || "msrp://core.test:2855/core;tcp";
const fromPath = params.get("from") || "msrp://ue.test:9/ue;dc";

// Times are milliseconds from the moment the offer is posted to the ALG.
const result = {
  opened: 0,
  label: "",
  protocol: "",
  candidates: 0,
  sent: 0,
  responses: 0,
  bad: 0,
  unexpected: 0,
  answer_ms: -1,
  open_ms: -1,
  first_ms: -1,
  bulk_ms: -1,
  pc_state: "",
  ice_state: "",
  error: "",
};

let pc = null;
let failure = null;
let posted = false;
const waiters = [];

function wake() {
  for (const check of waiters.slice()) check();
}

// Resolves once pred() holds (checked at every wake()), rejects on failure or after ms.
function until(pred, ms, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`${what} after ${ms} ms`)), ms);
    function done(err) {
      clearTimeout(timer);
      const k = waiters.indexOf(check);
      if (k >= 0) waiters.splice(k, 1);
      if (err) reject(err);
      else resolve();
    }
    function check() {
      if (failure) done(failure);
      else if (pred()) done(null);
    }
    waiters.push(check);
    check();
  });
}

function fail(why) {
  if (!failure) failure = new Error(why);
  wake();
}

// The body of message i: the generator of body_pattern() in tests/test_browser.c.
function body(i, len) {
  let x = (Math.imul(i + 1, 2654435761) + 1) >>> 0;
  const parts = [];
  for (let k = 0; k < len; k += 8192) {
    const codes = new Array(Math.min(8192, len - k));
    for (let j = 0; j < codes.length; j++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      codes[j] = 97 + ((x >>> 16) % 26);
    }
    parts.push(String.fromCharCode.apply(null, codes));
  }
  return parts.join("");
}

function tid(i) {
  return "tx" + String(i).padStart(6, "0");
}

function request(i, len) {
  const t = tid(i);
  return (
    `MSRP ${t} SEND\r\nTo-Path: ${toPath}\r\nFrom-Path: ${fromPath}\r\n` +
    `Message-ID: msg${String(i).padStart(6, "0")}\r\nByte-Range: 1-${len}/${len}\r\n` +
    `Content-Type: text/plain\r\n\r\n${body(i, len)}\r\n-------${t}$\r\n`
  );
}

// Responses, framed by their end-line whatever the data-channel message boundaries.
const answered = new Set();
const decoder = new TextDecoder();
let rx = "";

function onFrame(id, what, frame) {
  if (!/^\d{3}$/.test(what)) {
    result.unexpected++;
    return;
  }
  const to = /\r\nTo-Path: ([^\r\n]*)\r\n/.exec(frame);
  const n = /^tx(\d{6})$/.exec(id);
  if (what !== "200" || !to || to[1] !== fromPath || !n || Number(n[1]) >= result.sent ||
      answered.has(id)) {
    result.bad++;
    return;
  }
  answered.add(id);
  result.responses++;
}

function onMessage(data) {
  rx += typeof data === "string" ? data : decoder.decode(data, { stream: true });
  for (;;) {
    const eol = rx.indexOf("\r\n");
    if (eol < 0) break;
    const m = /^MSRP ([A-Za-z0-9][A-Za-z0-9.+%=-]{3,31}) (\S+)(?: [^\r\n]*)?$/.exec(rx.slice(0, eol));
    if (!m) {
      result.bad++;
      fail("not an MSRP frame: " + JSON.stringify(rx.slice(0, 80)));
      return;
    }
    const endLine = "\r\n-------" + m[1];
    const at = rx.indexOf(endLine, eol);
    if (at < 0 || rx.length < at + endLine.length + 3) break;
    const frame = rx.slice(0, at + endLine.length + 3);
    rx = rx.slice(frame.length);
    onFrame(m[1], m[2], frame);
  }
  wake();
}

async function post(path, text) {
  const r = await fetch(path, { method: "POST", body: text, cache: "no-store" });
  const t = await r.text();
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${t}`);
  return t;
}

function finish(error) {
  if (posted) return;
  posted = true;
  if (error && !result.error) result.error = String(error);
  if (pc) {
    result.pc_state = pc.connectionState;
    result.ice_state = pc.iceConnectionState;
  }
  post("/result", JSON.stringify(result)).catch(() => {});
}

window.addEventListener("error", (e) => finish(e.message));
window.addEventListener("unhandledrejection", (e) => finish(e.reason));

async function main() {
  // A (fake) microphone permission lets Chromium list every interface, loopback included.
  const media = await navigator.mediaDevices.getUserMedia({ audio: true }).catch((e) => {
    throw new Error(`getUserMedia: ${e.name} (Chromium needs --use-fake-device-for-media-stream)`);
  });
  media.getTracks().forEach((t) => t.stop());

  pc = new RTCPeerConnection();
  const dc = pc.createDataChannel("msrp", { protocol: "msrp" });
  dc.binaryType = "arraybuffer";
  result.label = dc.label;
  result.protocol = dc.protocol;
  let open = false;
  dc.onopen = () => {
    open = true;
    wake();
  };
  dc.onclose = () => fail("channel closed");
  dc.onmessage = (e) => onMessage(e.data);
  dc.onbufferedamountlow = wake;
  pc.onicegatheringstatechange = wake;
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "failed") fail("peer connection failed");
  };

  await pc.setLocalDescription(await pc.createOffer());
  // The test answers only once it has the candidates: no trickle.
  await until(() => pc.iceGatheringState === "complete", 5000, "ICE gathering").catch(() => {});
  const offer = pc.localDescription.sdp;
  result.candidates = (offer.match(/^a=candidate:/gm) || []).length;

  const t0 = performance.now();
  const answer = await post("/offer", offer);
  result.answer_ms = performance.now() - t0;
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  await until(() => open, openTimeoutMs, "channel not open");
  result.opened = 1;
  result.open_ms = performance.now() - t0;

  dc.send(request(0, firstSize));
  result.sent = 1;
  await until(() => result.responses === 1, bulkTimeoutMs, "no answer to the first SEND");
  result.first_ms = performance.now() - t0;

  const tb = performance.now();
  dc.bufferedAmountLowThreshold = 256 * 1024;
  for (let i = 1; i <= count; i++) {
    await until(() => dc.bufferedAmount <= 1024 * 1024, bulkTimeoutMs, "channel stalled");
    dc.send(request(i, size));
    result.sent++;
  }
  await until(() => result.responses === count + 1, bulkTimeoutMs, "answers missing");
  result.bulk_ms = performance.now() - tb;
  finish("");
}

main().catch((e) => finish(e && e.message ? e.message : e));
