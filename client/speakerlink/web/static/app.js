// The speakerlink page: upload clips, follow the job, draw who spoke where.
// Talks only to the page's own server (speakerlink/web), which calls the gRPC service.

const $ = (id) => document.getElementById(id);
const COLOURS = ["#3566d6", "#e0603a", "#2a9d6f", "#b04fc4", "#d4a017", "#1c9bb5", "#c8392b", "#6c7a89",
                 "#8d5b2e", "#5a3fb0", "#7aa81e", "#d65a9b"];
const EXPORTS = ["json", "csv", "text", "rttm", "srt", "vtt"];
let limits = { max_file_bytes: 0, max_clips: 0 };
let picked = [];

function headers(extra = {}) {
  const token = sessionStorage.getItem("speakerlink-token");
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
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
    row.querySelector(".state").textContent = `${(file.size / 1e6).toFixed(1)} MB`;
    list.append(row);
    file.row = row;
    if (limits.max_file_bytes && file.size > limits.max_file_bytes) {
      problems.push(`${file.name} is ${(file.size / 1e6).toFixed(1)} MB; the service takes up to ${(limits.max_file_bytes / 1e6).toFixed(1)} MB a file`);
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
    for (const [k, v] of Object.entries(headers({ "X-File-Name": file.name }))) xhr.setRequestHeader(k, v);
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
    $("progress-text").textContent = `the service went away (${event.message}); reconnecting…`;
    return false;
  }
  $("progress-box").hidden = true;
  if (event.kind === "result") render(event.result);
  else if (event.kind === "cancelled") show($("job-error"), { code: "CANCELLED", message: "the job was cancelled" });
  else if (event.kind === "error") show($("job-error"), event);
  return event.kind !== "accepted";
}

// ------------------------------------------------------------------ the result

function render(result) {
  $("result").hidden = false;
  const colour = Object.fromEntries(result.speakers.map((s, i) => [s.label, COLOURS[i % COLOURS.length]]));
  $("timeline").replaceChildren(...result.clips.map((clip) => timeline(clip, colour)));
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
  $("exports").replaceChildren(...EXPORTS.map((format) => {
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
// stacked at the same time.
function timeline(clip, colour) {
  const ns = "http://www.w3.org/2000/svg";
  const lanes = [...new Set((clip.segments || []).map((s) => s.speaker))];
  const width = 1000, label = 150, lane = 16, height = Math.max(1, lanes.length) * lane + 24;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.dataset.clip = clip.name;
  const text = document.createElementNS(ns, "text");
  text.setAttribute("x", 6);
  text.setAttribute("y", 16);
  text.setAttribute("font-size", 13);
  text.textContent = `${clip.name} (${seconds(clip.duration_seconds || 0)})`;
  svg.append(text);
  const scale = (width - label - 10) / Math.max(clip.duration_seconds || 1, 1e-3);
  for (const s of clip.segments || []) {
    const bar = document.createElementNS(ns, "rect");
    bar.setAttribute("x", label + (s.start || 0) * scale);
    bar.setAttribute("y", 22 + lanes.indexOf(s.speaker) * lane);
    bar.setAttribute("width", Math.max(1, (s.end - (s.start || 0)) * scale));
    bar.setAttribute("height", lane - 3);
    bar.setAttribute("rx", 2);
    bar.setAttribute("fill", colour[s.speaker]);
    bar.dataset.speaker = s.speaker;
    const title = document.createElementNS(ns, "title");
    title.textContent = `${s.speaker} ${(s.start || 0).toFixed(1)}–${s.end.toFixed(1)} s${s.text ? ": " + s.text : ""}`;
    bar.append(title);
    svg.append(bar);
  }
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

// ------------------------------------------------------------------ start

async function main() {
  $("token").value = sessionStorage.getItem("speakerlink-token") || "";
  $("token").onchange = () => {
    sessionStorage.setItem("speakerlink-token", $("token").value.trim());
    location.reload();
  };
  const jobId = new URLSearchParams(location.search).get("job");
  if (jobId) return openJob(jobId);
  $("files").onchange = (e) => pick(e.target.files);
  const drop = $("drop");
  drop.ondragover = (e) => { e.preventDefault(); drop.classList.add("over"); };
  drop.ondragleave = () => drop.classList.remove("over");
  drop.ondrop = (e) => { e.preventDefault(); drop.classList.remove("over"); pick(e.dataTransfer.files); };
  $("upload-form").onsubmit = start;
  recent();
  try {
    limits = await api("/api/info");
    $("limits").textContent = `up to ${limits.max_clips} clips of ${(limits.max_file_bytes / 1e6).toFixed(0)} MB each: ${limits.formats.join(", ")}`;
    $("transcribe-option").hidden = !limits.transcription;
  } catch (error) {
    show($("upload-error"), error);
  }
}

window.addEventListener("popstate", () => location.reload());
main();
