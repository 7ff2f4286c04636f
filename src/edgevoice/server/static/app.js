// The edgevoice page: speaks through /v1/audio/speech as 16-bit PCM, playing each piece as it arrives (Web Audio),
// then hands the whole take to the <audio> element as a wav to replay or download. No libraries, nothing remote.
"use strict";

const $ = (id) => document.getElementById(id);
let audioContext = null;

function headers(extra = {}) {
  const key = $("api-key").value.trim();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

function say(element, message, isError = false) {
  element.textContent = message;
  element.classList.toggle("error", isError);
}

async function failure(response) {
  try {
    const body = await response.json();
    return body.error ? body.error.message : `HTTP ${response.status}`;
  } catch (_) {
    return `HTTP ${response.status}`;
  }
}

async function getJson(path) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw new Error(await failure(response));
  return response.json();
}

async function loadModels() {
  const models = (await getJson("/v1/models")).data;
  $("model").replaceChildren(...models.map((m) => new Option(`${m.id} (${m.family})`, m.id)));
  await loadVoices();
}

async function loadVoices() {
  const model = $("model").value;
  if (!model) return;
  const voices = (await getJson(`/v1/voices?model=${encodeURIComponent(model)}`)).data;
  const options = voices.map((v) => new Option(v.kind === "built-in" ? `${v.id} (speaker)` : v.id, v.id));
  if (!voices.length || voices[0].kind === "built-in") options.unshift(new Option("(model default)", ""));
  $("voice").replaceChildren(...options);
}

function wavFile(samples, rate) {
  const header = new DataView(new ArrayBuffer(44));
  const text = (offset, s) => [...s].forEach((c, i) => header.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF"); header.setUint32(4, 36 + samples.byteLength, true); text(8, "WAVE");
  text(12, "fmt "); header.setUint32(16, 16, true); header.setUint16(20, 1, true); header.setUint16(22, 1, true);
  header.setUint32(24, rate, true); header.setUint32(28, rate * 2, true); header.setUint16(32, 2, true);
  header.setUint16(34, 16, true); text(36, "data"); header.setUint32(40, samples.byteLength, true);
  return new Blob([header, samples], { type: "audio/wav" });
}

function requestBody() {
  const body = { model: $("model").value, input: $("text").value, response_format: "pcm", stream: true };
  const options = JSON.parse($("options").value.trim() || "{}");
  Object.assign(body, options);
  if ($("voice").value) body.voice = $("voice").value;
  if ($("prompt").value.trim()) body.prompt = $("prompt").value.trim();
  if ($("language").value.trim()) body.language = $("language").value.trim();
  return body;
}

async function speak() {
  const status = $("status");
  let body;
  try {
    body = requestBody();
  } catch (error) {
    return say(status, `The options are not valid JSON: ${error.message}`, true);
  }
  $("speak").disabled = true;
  $("download").hidden = true;
  say(status, "Speaking…");
  const started = performance.now();
  try {
    const response = await fetch("/v1/audio/speech", {
      method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(await failure(response));
    const rate = Number(response.headers.get("X-Sample-Rate"));
    const pieces = await play(response.body.getReader(), rate, started);
    const total = pieces.reduce((n, p) => n + p.length, 0);
    const samples = new Int16Array(total);
    pieces.reduce((offset, p) => (samples.set(p, offset), offset + p.length), 0);
    const url = URL.createObjectURL(wavFile(samples.buffer, rate));
    $("player").src = url;
    $("download").href = url;
    $("download").hidden = false;
    say(status, `Done: ${(total / rate).toFixed(2)} s of audio in ${((performance.now() - started) / 1000).toFixed(2)} s.`);
  } catch (error) {
    say(status, error.message, true);
  } finally {
    $("speak").disabled = false;
  }
}

// Each network piece is played at once, queued after the previous one; a byte of a sample split across pieces
// waits for its partner.
async function play(reader, rate, started) {
  audioContext = audioContext && audioContext.sampleRate === rate ? audioContext : new AudioContext({ sampleRate: rate });
  await audioContext.resume();
  let playAt = audioContext.currentTime + 0.05;
  let carry = new Uint8Array(0);
  const pieces = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const bytes = new Uint8Array(carry.length + value.length);
    bytes.set(carry); bytes.set(value, carry.length);
    const even = bytes.length - (bytes.length % 2);
    carry = bytes.slice(even);
    if (!even) continue;
    const piece = new Int16Array(bytes.slice(0, even).buffer);
    if (!pieces.length) say($("status"), `First audio after ${((performance.now() - started) / 1000).toFixed(2)} s…`);
    pieces.push(piece);
    const buffer = audioContext.createBuffer(1, piece.length, rate);
    buffer.getChannelData(0).set(Float32Array.from(piece, (s) => s / 32768));
    const source = audioContext.createBufferSource();
    source.buffer = buffer;
    source.connect(audioContext.destination);
    playAt = Math.max(playAt, audioContext.currentTime);
    source.start(playAt);
    playAt += buffer.duration;
  }
  return pieces;
}

async function createVoice() {
  const status = $("voice-status");
  const file = $("voice-file").files[0];
  if (!file) return say(status, "Choose a clip first.", true);
  const form = new FormData();
  form.append("name", $("voice-name").value.trim());
  form.append("model", $("model").value);
  form.append("file", file);
  if ($("voice-text").value.trim()) form.append("text", $("voice-text").value.trim());
  form.append("language", $("voice-language").value.trim() || "en");
  say(status, "Analysing the clip…");
  try {
    const response = await fetch("/v1/voices", { method: "POST", headers: headers(), body: form });
    if (!response.ok) throw new Error(await failure(response));
    const voice = await response.json();
    await loadVoices();
    $("voice").value = voice.id;
    say(status, `Voice ${voice.id} created for ${voice.model}.`);
  } catch (error) {
    say(status, error.message, true);
  }
}

$("model").addEventListener("change", () => loadVoices().catch((e) => say($("status"), e.message, true)));
$("speak").addEventListener("click", speak);
$("create-voice").addEventListener("click", createVoice);
$("api-key").addEventListener("change", () => loadModels().catch((e) => say($("status"), e.message, true)));
loadModels().catch((e) => say($("status"), e.message, true));
