// The speakerlink page: upload clips, follow the job, draw who spoke where.
// Talks only to the page's own server (speakerlink/web), which calls the gRPC service.

const $ = (id) => document.getElementById(id);
// Okabe and Ito's palette: told apart with any common colour-vision deficiency.
const COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];
const MiB = 2 ** 20;
let limits = { max_file_bytes: 0, max_clips: 0 };
let picked = [];
let shown = null; // the result on screen, drawn again when the scale changes

// Every request carries X-Speakerlink: a header no cross-site form can send, so only this page
// can change jobs through its server.
function headers(extra = {}) {
  const token = sessionStorage.getItem("speakerlink-token");
  const all = { ...extra, "X-Speakerlink": "1" };
  return token ? { ...all, Authorization: `Bearer ${token}` } : all;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers) });
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : await response.blob();
  if (!response.ok) throw body;
  return body;
}

function describe(error) {
  if (error && error.code) return [`${error.code}: ${error.message}`, ...(error.troubleshooting || [])].join("\n");
  return `the page's server did not answer (${error})`;
}

function show(box, error) {
  box.textContent = describe(error);
  box.hidden = false;
}

function seconds(s) {
  const m = Math.floor(s / 60);
  return m ? `${m} min ${Math.round(s % 60)} s` : `${s.toFixed(1)} s`;
}

// ------------------------------------------------------------------ uploading

function pick(files) {
  $("upload-error").hidden = true;
  picked = [...files];
  const list = $("file-list");
  list.replaceChildren();
  const problems = [];
  for (const file of picked) {
    const row = document.createElement("li");
    row.innerHTML = `<span class="name"></span><div class="bar"><div></div></div><span class="state hint"></span>`;
    row.querySelector(".name").textContent = file.name;
    row.querySelector(".state").textContent = `${(file.size / MiB).toFixed(1)} MiB`;
    list.append(row);
    file.row = row;
    if (limits.max_file_bytes && file.size > limits.max_file_bytes) {
      problems.push(`${file.name} is ${(file.size / MiB).toFixed(1)} MiB; the service takes up to ${(limits.max_file_bytes / MiB).toFixed(0)} MiB a file`);
    }
  }
  if (limits.max_clips && picked.length > limits.max_clips) {
    problems.push(`${picked.length} clips picked; the service takes up to ${limits.max_clips} in one job`);
  }
  if (problems.length) show($("upload-error"), { code: "TOO_LARGE", message: "nothing was uploaded", troubleshooting: problems });
  $("start").disabled = !picked.length || problems.length > 0;
}

function send(file) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/uploads");
    for (const [k, v] of Object.entries(headers({ "X-File-Name": encodeURIComponent(file.name) }))) xhr.setRequestHeader(k, v);
    const bar = file.row.querySelector(".bar > div");
    const state = file.row.querySelector(".state");
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) bar.style.width = `${(100 * e.loaded) / e.total}%`;
    };
    xhr.onload = () => {
      const body = JSON.parse(xhr.responseText || "{}");
      if (xhr.status === 200) {
        bar.style.width = "100%";
        state.textContent = "uploaded";
        resolve(body.upload);
      } else reject(body);
    };
    xhr.onerror = () => reject(new Error("the upload broke off"));
    xhr.send(file);
  });
}

async function start(event) {
  event.preventDefault();
  $("start").disabled = true;
  $("upload-error").hidden = true;
  const number = (id) => ($(id).value ? Number($(id).value) : null);
  const options = { num_speakers: number("num-speakers"), min_speakers: number("min-speakers"), max_speakers: number("max-speakers") };
  if (!$("transcribe-option").hidden) options.transcribe = $("transcribe").checked;
  try {
    const uploads = await Promise.all(picked.map(send));
    $("start").textContent = "Analysing…";
    const { job_id } = await api("/api/jobs", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ uploads, options }),
    });
    history.pushState({}, "", `/?job=${job_id}`);
    openJob(job_id);
  } catch (error) {
    show($("upload-error"), error);
    $("start").textContent = "Diarize";
    $("start").disabled = false;
  }
}

async function recent() {
  try {
    const jobs = await api("/api/jobs");
    $("recent").replaceChildren(...jobs.map((job) => {
      const li = document.createElement("li");
      li.innerHTML = `<a></a> <span class="hint"></span>`;
      li.querySelector("a").href = `/?job=${job.job_id}`;
      li.querySelector("a").textContent = job.job_id.slice(0, 12);
      li.querySelector("span").textContent = `${job.state} · ${job.clips.join(", ")} · ${job.created.replace("T", " ").slice(0, 19)}`;
      return li;
    }));
  } catch (error) {
    $("recent").textContent = describe(error);
  }
}

// ------------------------------------------------------------------ following a job

async function openJob(jobId) {
  $("upload-view").hidden = true;
  $("job-view").hidden = false;
  $("job-id").textContent = `job ${jobId}`;
  $("cancel").onclick = () => api(`/api/jobs/${jobId}/cancel`, { method: "POST" }).catch((e) => show($("job-error"), e));
  for (let attempt = 0; ; attempt++) {
    const ended = await follow(jobId).catch(() => false);
    if (ended) return;
    $("progress-text").textContent = "lost the connection to the service; reconnecting…";
    await new Promise((r) => setTimeout(r, Math.min(1000 * 2 ** attempt, 10000)));
  }
}

// Reads the job's Server-Sent Events; true once the job has ended (shown), false if the stream broke.
async function follow(jobId) {
  const response = await fetch(`/api/jobs/${jobId}/events`, { headers: headers() });
  if (!response.ok) {
    const error = await response.json().catch(() => ({}));
    if (response.status >= 500) return false;
    show($("job-error"), error);
    return true;
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (data && handle(JSON.parse(data))) return true;
    }
  }
}

function handle(event) {
  if (event.kind === "progress") {
    $("progress-bar").style.width = `${event.percent}%`;
    $("progress-text").textContent = `${event.stage} · ${Math.round(event.percent)} %${event.message ? " · " + event.message : ""}`;
    return false;
  }
  if (event.kind === "waiting") {
    $("progress-text").textContent = "the service is not answering; reconnecting…";
    return false;
  }
  $("progress-box").hidden = true;
  if (event.kind === "result") render(event.result, event.exports);
  else if (event.kind === "cancelled") show($("job-error"), { code: "CANCELLED", message: "the job was cancelled" });
  else if (event.kind === "error") show($("job-error"), event);
  return event.kind !== "accepted";
}

// ------------------------------------------------------------------ the result

function render(result, exports) {
  $("result").hidden = false;
  shown = result;
  const colour = colours(result);
  drawTimeline();
  $("legend").replaceChildren(...result.speakers.map((s) => {
    const li = document.createElement("li");
    li.dataset.speaker = s.label;
    const clips = (s.clip_indices || [0]).map((i) => result.clips.find((c) => (c.index || 0) === i)?.name).join(", ");
    li.innerHTML = `<span class="swatch"></span><strong></strong> <span class="hint"></span>`;
    li.querySelector(".swatch").style.background = colour[s.label];
    li.querySelector("strong").textContent = s.name ? `${s.name} (${s.label})` : s.label;
    li.querySelector(".hint").textContent = `${seconds(s.speech_seconds || 0)} in ${clips}`;
    return li;
  }));
  $("exports").replaceChildren(...exports.map((format) => {
    const button = document.createElement("button");
    button.className = "plain";
    button.textContent = `Export ${format.toUpperCase()}`;
    button.dataset.format = format;
    button.onclick = () => download(result.job_id, format);
    return button;
  }));
  const spoken = result.clips.flatMap((clip) => (clip.segments || []).filter((s) => s.text).map((s) => ({ clip, s })));
  $("transcript-box").hidden = !spoken.length;
  $("transcript").replaceChildren(...spoken.map(({ clip, s }) => {
    const li = document.createElement("li");
    li.textContent = `${clip.name} ${(s.start || 0).toFixed(1)}–${s.end.toFixed(1)} s ${s.speaker}: ${s.text}`;
    li.style.borderLeft = `4px solid ${colour[s.speaker]}`;
    li.style.paddingLeft = ".5rem";
    return li;
  }));
}

// One row per clip; each speaker of the clip has a lane, so overlapped speech shows as bars
// stacked at the same time. Rows share one time scale, the longest clip's, with one axis under
// them; "fit each clip" stretches each row to its own length, with an axis of its own.
function drawTimeline() {
  const result = shown;
  const colour = colours(result);
  const fit = $("fit").checked;
  const longest = Math.max(...result.clips.map((c) => c.duration_seconds || 0), 1e-3);
  const rows = result.clips.map((clip) => timeline(clip, colour, fit ? clip.duration_seconds || 1e-3 : longest, fit));
  $("timeline").replaceChildren(...rows, ...(fit ? [] : [axis(longest)]));
}

function colours(result) {
  return Object.fromEntries(result.speakers.map((s, i) => [s.label, COLOURS[i % COLOURS.length]]));
}

const NS = "http://www.w3.org/2000/svg";
const WIDTH = 1000, LABEL = 150, LANE = 16, AXIS = 22;

function svgElement(name, attributes) {
  const element = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attributes)) element.setAttribute(k, v);
  return element;
}

function timeline(clip, colour, span, withAxis) {
  const lanes = [...new Set((clip.segments || []).map((s) => s.speaker))];
  const height = Math.max(1, lanes.length) * LANE + 24;
  const svg = svgElement("svg", { viewBox: `0 0 ${WIDTH} ${height + (withAxis ? AXIS : 0)}` });
  svg.dataset.clip = clip.name;
  const text = svgElement("text", { x: 6, y: 16, "font-size": 13 });
  text.textContent = `${clip.name} (${seconds(clip.duration_seconds || 0)})`;
  svg.append(text);
  const scale = (WIDTH - LABEL - 10) / span;
  for (const s of clip.segments || []) {
    const bar = svgElement("rect", {
      x: LABEL + (s.start || 0) * scale, y: 22 + lanes.indexOf(s.speaker) * LANE,
      width: Math.max(1, (s.end - (s.start || 0)) * scale), height: LANE - 3, rx: 2, fill: colour[s.speaker],
    });
    bar.dataset.speaker = s.speaker;
    const title = svgElement("title", {});
    title.textContent = `${s.speaker} ${(s.start || 0).toFixed(1)}–${s.end.toFixed(1)} s${s.text ? ": " + s.text : ""}`;
    bar.append(title);
    svg.append(bar);
  }
  if (withAxis) svg.append(ticks(span, height));
  return svg;
}

// Ticks every 1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10, 15, 30 min or 1 h: the first step giving at most 10.
function ticks(span, top) {
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
  const step = steps.find((s) => span / s <= 10) || Math.ceil(span / 36000) * 3600;
  const scale = (WIDTH - LABEL - 10) / span;
  const group = svgElement("g", { class: "axis" });
  group.append(svgElement("line", { x1: LABEL, x2: LABEL + span * scale, y1: top, y2: top }));
  for (let t = 0; t <= span + 1e-9; t += step) {
    const x = LABEL + t * scale;
    group.append(svgElement("line", { x1: x, x2: x, y1: top, y2: top + 4 }));
    const label = svgElement("text", { x, y: top + 16, "font-size": 11, "text-anchor": "middle" });
    label.textContent = span >= 60 ? `${Math.floor(t / 60)}:${String(t % 60).padStart(2, "0")}` : `${t} s`;
    group.append(label);
  }
  return group;
}

function axis(span) {
  const svg = svgElement("svg", { viewBox: `0 0 ${WIDTH} ${AXIS + 4}`, class: "axis-row" });
  svg.append(ticks(span, 2));
  return svg;
}

async function download(jobId, format) {
  try {
    const response = await fetch(`/api/jobs/${jobId}/export/${format}`, { headers: headers() });
    if (!response.ok) throw await response.json();
    const name = /filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "")?.[1] || `${jobId}.${format}`;
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = name;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  } catch (error) {
    show($("job-error"), error);
  }
}

// ------------------------------------------------------------------ live

let live = null; // the stream under way: its capture, socket and turns

async function startLive() {
  $("live-error").hidden = true;
  $("live-start").disabled = true;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    const context = new AudioContext();
    await context.audioWorklet.addModule("/static/capture.js");
    const source = context.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(context, "pcm-capture");
    const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/live`);
    live = { stream, context, node, socket, final: [], provisional: [], heard: 0, capturing: true };
    socket.onopen = () => {
      const max = $("live-max").value ? Number($("live-max").value) : null;
      socket.send(JSON.stringify({
        sample_rate: context.sampleRate, latency: Number($("live-latency").value), max_speakers: max,
        token: sessionStorage.getItem("speakerlink-token") || "",
      }));
      node.port.onmessage = (e) => socket.readyState === WebSocket.OPEN && live.capturing && socket.send(e.data);
      source.connect(node).connect(context.destination); // the node writes silence: nothing is heard
    };
    socket.onmessage = (e) => liveEvent(JSON.parse(e.data));
    socket.onclose = () => {
      stopCapture();
      $("live-start").disabled = false;
      $("live-stop").hidden = true;
    };
    $("live-stop").hidden = false;
    $("live-status").textContent = "connecting…";
  } catch (error) {
    show($("live-error"), {
      code: "NO_MICROPHONE", message: `the page cannot hear a microphone (${error.message || error})`,
      troubleshooting: ["Plug one in, and allow this page to use it."],
    });
    $("live-start").disabled = false;
  }
}

function stopLive() {
  if (live && live.socket.readyState === WebSocket.OPEN) live.socket.send("end");
  stopCapture();
  $("live-stop").hidden = true;
  $("live-status").textContent = "ending the stream…";
}

function stopCapture() {
  if (!live || !live.capturing) return;
  live.capturing = false;
  live.stream.getTracks().forEach((track) => track.stop());
  live.context.close();
}

function liveEvent(event) {
  if (event.kind === "accepted") {
    $("live-status").textContent = `listening · job ${event.job_id}`;
  } else if (event.kind === "update") {
    live.final.push(...event.final);
    live.provisional = event.provisional;
    live.heard = event.heard_seconds;
    drawLive();
  } else if (event.kind === "result") {
    history.pushState({}, "", `/?job=${event.job_id}`);
    $("live-view").hidden = true;
    openJob(event.job_id);
  } else if (event.kind === "error") {
    show($("live-error"), event);
  }
}

// One row that grows with the stream, in steps of 30 s; a lane per speaker, as a clip's row.
function drawLive() {
  const turns = [...live.final, ...live.provisional.map((t) => ({ ...t, provisional: true }))];
  const speakers = [...new Set(turns.map((t) => t.speaker))].sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  const colour = Object.fromEntries(speakers.map((s, i) => [s, COLOURS[i % COLOURS.length]]));
  const span = Math.max(30, Math.ceil(live.heard / 30) * 30);
  const row = timeline({ name: "microphone", duration_seconds: live.heard, segments: turns }, colour, span, true);
  row.querySelectorAll("rect").forEach((bar, i) => turns[i].provisional && bar.setAttribute("fill-opacity", "0.4"));
  $("live-timeline").replaceChildren(row);
  const names = Object.fromEntries(turns.filter((t) => t.name).map((t) => [t.speaker, t.name]));
  $("live-legend").replaceChildren(...speakers.map((speaker) => {
    const li = document.createElement("li");
    li.dataset.speaker = speaker;
    li.innerHTML = `<span class="swatch"></span><strong></strong>`;
    li.querySelector(".swatch").style.background = colour[speaker];
    li.querySelector("strong").textContent = names[speaker] ? `${names[speaker]} (${speaker})` : speaker;
    return li;
  }));
}

function openLive() {
  $("upload-view").hidden = true;
  $("live-view").hidden = false;
  $("live-start").onclick = startLive;
  $("live-stop").onclick = stopLive;
}

// ------------------------------------------------------------------ start

async function main() {
  $("token").value = sessionStorage.getItem("speakerlink-token") || "";
  $("token").onchange = () => {
    sessionStorage.setItem("speakerlink-token", $("token").value.trim());
    location.reload();
  };
  $("fit").onchange = () => shown && drawTimeline();
  const query = new URLSearchParams(location.search);
  if (query.get("job")) return openJob(query.get("job"));
  if (query.has("live")) return openLive();
  $("files").onchange = (e) => pick(e.target.files);
  const drop = $("drop");
  drop.ondragover = (e) => { e.preventDefault(); drop.classList.add("over"); };
  drop.ondragleave = () => drop.classList.remove("over");
  drop.ondrop = (e) => { e.preventDefault(); drop.classList.remove("over"); pick(e.dataTransfer.files); };
  $("upload-form").onsubmit = start;
  try {
    limits = await api("/api/info");
    $("limits").textContent = `up to ${limits.max_clips} clips of ${(limits.max_file_bytes / MiB).toFixed(0)} MiB each: ${limits.formats.join(", ")}`;
    $("transcribe-option").hidden = !limits.transcription;
  } catch (error) {
    show($("upload-error"), error); // said once: the recent jobs would only say it again
    return;
  }
  recent();
}

window.addEventListener("popstate", () => location.reload());
main();
