// Uni-HAR web page: upload a video (or record one from the webcam), send it to POST /v1/predict?poses=1,
// then play it back with everyone's skeleton drawn over each frame (a colour per person, the colours of
// the annotated video), a label over each skeleton with the person's id and current action, the followed
// person's top-k as bars, and a clickable timeline with one row per person. Plain browser JavaScript,
// no build step.
"use strict";

const TOPK = 5;
const MISSED_ALPHA = 0.45; // frames where a person was not found (their pose is filled in) are drawn faint

const $ = (id) => document.getElementById(id);
const video = $("video");
const canvas = $("overlay");
const context = canvas.getContext("2d");
const state = {
  result: null, // the API's answer
  people: new Map(), // id -> {id, colour, start, end, windows, topk, reason, segments, poses}
  selected: null, // id of the person whose top-k the bars show
  currentWindow: -1,
  objectUrl: null,
  stream: null,
  recorder: null,
};

// ------------------------------------------------------------------------------------------ status
function setStatus(kind, text) {
  const status = $("status");
  status.dataset.state = kind;
  status.textContent = text;
}

function errorText(data, response) {
  const detail = data && data.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ");
  }
  return `${response.status} ${response.statusText}`;
}

const percent = (p) => `${(100 * p).toFixed(1)}%`;
const seconds = (frame) => (frame / state.result.fps).toFixed(1);

// ------------------------------------------------------------------------------------------ upload
async function analyse(blob, name) {
  stopCamera();
  clearResult();
  showVideo(blob);
  setStatus("busy", `Analysing ${name} (${(blob.size / 1e6).toFixed(1)} MB)…`);
  const form = new FormData();
  form.append("file", blob, name);
  let response;
  let data;
  try {
    response = await fetch(`/v1/predict?poses=1&topk=${TOPK}`, { method: "POST", body: form });
    data = await response.json().catch(() => null);
  } catch (error) {
    setStatus("error", `Could not reach the server: ${error.message}`);
    return;
  }
  if (!response.ok) {
    const retry = response.status === 503 && response.headers.get("Retry-After");
    setStatus("error", `error: ${errorText(data, response)}` + (retry ? ` (retry in ${retry} s)` : ""));
    return;
  }
  showResult(data);
}

function showVideo(blob) {
  if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
  state.objectUrl = URL.createObjectURL(blob);
  video.srcObject = null;
  video.src = state.objectUrl;
  video.controls = true;
  $("placeholder").hidden = true;
}

function clearResult() {
  state.result = null;
  state.people = new Map();
  state.selected = null;
  state.currentWindow = -1;
  for (const id of ["current-topk", "overall-topk", "timeline", "people", "labels"]) $(id).replaceChildren();
  for (const id of ["summary", "raw", "now-range", "overall-who"]) $(id).textContent = "";
  context.clearRect(0, 0, canvas.width, canvas.height);
}

// The API lists people by id; ?poses=1 adds each one's keypoints and colour, and names the main person.
function collectPeople(data) {
  const drawn = new Map(data.poses.people.map((p) => [p.id, p]));
  for (const person of data.people) {
    const poses = drawn.get(person.id);
    state.people.set(person.id, {
      id: person.id,
      colour: poses.colour,
      start: person.start_frame,
      end: person.end_frame,
      windows: person.windows || [],
      topk: person.topk || null,
      reason: person.reason || null,
      segments: segmentsOf(person.windows || [], person.start_frame, person.end_frame),
      poses,
    });
  }
}

function showResult(data) {
  state.result = data;
  const [width, height] = data.poses.frame_size;
  if (width > 0 && height > 0) {
    canvas.width = width;
    canvas.height = height;
    $("stage").style.aspectRatio = `${width} / ${height}`;
  }
  collectPeople(data);
  renderPeople();
  buildTimeline();
  const main = state.people.get(data.poses.main_person); // the person the top-level topk / windows describe
  select(main.id);
  const count = state.people.size;
  $("summary").textContent =
    `${data.source}: ${data.frames} frames at ${data.fps.toFixed(2)} fps (${(data.frames / data.fps).toFixed(1)} s), ` +
    `${count} ${count === 1 ? "person" : "people"}, skeleton: ${data.poses.layout}`;
  const { poses, ...rest } = data;
  $("raw").textContent = JSON.stringify(rest, null, 2);
  const best = main.topk[0];
  setStatus(
    "done",
    `Done: ${count} ${count === 1 ? "person" : "people"}; #${main.id}: ${best.label} (${percent(best.prob)}). ` +
      "Play the video to follow the actions over time.",
  );
  drawAt(video.currentTime || 0);
}

// ------------------------------------------------------------------------------------------ people
function renderPeople() {
  const items = [...state.people.values()].map((person) => {
    const item = document.createElement("li");
    item.dataset.person = String(person.id);
    item.style.setProperty("--person", person.colour);
    const button = document.createElement("button");
    button.type = "button";
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = `#${person.id}`;
    const what = document.createElement("span");
    what.className = "what";
    what.textContent = person.topk ? `${person.topk[0].label} ${percent(person.topk[0].prob)}` : person.reason;
    what.title = `${person.reason ? person.reason + "; " : ""}seen ${seconds(person.start)}–${seconds(person.end + 1)} s`;
    button.append(swatch, who, what);
    button.addEventListener("click", () => select(person.id));
    item.append(button);
    return item;
  });
  $("people").replaceChildren(...items);
}

function select(id) {
  const person = state.people.get(id);
  state.selected = id;
  state.currentWindow = -1;
  for (const item of $("people").children) item.classList.toggle("selected", Number(item.dataset.person) === id);
  for (const row of $("timeline").querySelectorAll(".track")) row.classList.toggle("selected", Number(row.dataset.person) === id);
  $("overall-who").textContent = `(person #${id})`;
  if (person.topk) {
    renderBars($("overall-topk"), person.topk);
  } else {
    $("overall-topk").replaceChildren();
    $("now-range").textContent = `(person #${id}: ${person.reason})`;
    $("current-topk").replaceChildren();
  }
  drawAt(video.currentTime || 0);
}

// ------------------------------------------------------------------------------------------ bars
function renderBars(list, scores) {
  const items = scores.map((score) => {
    const item = document.createElement("li");
    item.dataset.label = score.label;
    item.dataset.prob = String(score.prob);
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = score.label;
    label.title = score.label;
    const prob = document.createElement("span");
    prob.className = "prob";
    prob.textContent = percent(score.prob);
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = `${(100 * score.prob).toFixed(2)}%`;
    bar.append(fill);
    item.append(label, prob, bar);
    return item;
  });
  list.replaceChildren(...items);
}

// ------------------------------------------------------------------------------------------ timeline
// Each window "owns" the frames nearer to its centre than to any other window's centre: the same rule
// as PersonPrediction.window_for_frame, so the page and the annotated video show the same window.
function windowCentre(w) {
  return (w.start_frame + w.end_frame - 1) / 2;
}

function segmentsOf(windows, start, end) {
  return windows.map((w, i) => ({
    from: i === 0 ? start : (windowCentre(windows[i - 1]) + windowCentre(w)) / 2,
    to: i === windows.length - 1 ? end + 1 : (windowCentre(w) + windowCentre(windows[i + 1])) / 2,
  }));
}

function windowIndexForFrame(person, frame) {
  let best = -1;
  let bestDistance = Infinity;
  person.windows.forEach((w, i) => {
    const distance = Math.abs(windowCentre(w) - frame);
    if (distance < bestDistance) {
      best = i;
      bestDistance = distance;
    }
  });
  return best;
}

function labelColour(id) {
  return `hsl(${(id * 137.508) % 360}, 62%, 42%)`;
}

function place(element, from, to) {
  const frames = state.result.frames;
  element.style.left = `${(100 * from) / frames}%`;
  element.style.width = `${(100 * (to - from)) / frames}%`;
}

function buildTimeline() {
  const rows = [...state.people.values()].map((person) => {
    const row = document.createElement("div");
    row.className = "track";
    row.role = "listitem";
    row.dataset.person = String(person.id);
    row.style.setProperty("--person", person.colour);
    const label = document.createElement("button");
    label.type = "button";
    label.className = "track-label";
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    label.append(swatch, `#${person.id}`);
    label.addEventListener("click", () => select(person.id));
    const lane = document.createElement("div");
    lane.className = "lane";
    if (!person.topk) {
      const span = document.createElement("div");
      span.className = "unclassified";
      span.textContent = span.title = person.reason;
      place(span, person.start, person.end + 1);
      lane.append(span);
    }
    person.windows.forEach((w, i) => {
      const { from, to } = person.segments[i];
      const best = w.topk[0];
      const cell = document.createElement("button");
      cell.type = "button";
      cell.className = "window";
      cell.dataset.index = String(i);
      place(cell, from, to);
      cell.style.background = labelColour(best.id);
      cell.textContent = best.label;
      cell.title = `#${person.id}, ${seconds(w.start_frame)}–${seconds(w.end_frame)} s: ${best.label} ${percent(best.prob)}`;
      // The first frame this window owns (a frame exactly between two centres goes to the earlier window).
      const first = i === 0 ? from : Math.floor(from) + 1;
      cell.addEventListener("click", () => {
        select(person.id);
        seekToFrame(first);
      });
      lane.append(cell);
    });
    const playhead = document.createElement("div");
    playhead.className = "playhead";
    lane.append(playhead);
    row.append(label, lane);
    return row;
  });
  $("timeline").replaceChildren(...rows);
}

function seekToFrame(frame) {
  if (!state.result) return;
  // Aim at the middle of the frame so rounding lands on it.
  video.currentTime = (frame + 0.5) / state.result.fps;
  drawAt(video.currentTime);
}

// ------------------------------------------------------------------------------------------ drawing
function drawSkeleton(poses, person, frame) {
  const offset = frame - person.poses.start_frame;
  const points = person.poses.keypoints[offset];
  const found = person.poses.detected[offset];
  const threshold = poses.min_confidence;
  const scale = Math.max(canvas.width, canvas.height) / 400;
  context.globalAlpha = found ? 1 : MISSED_ALPHA;
  context.strokeStyle = context.fillStyle = person.colour;
  context.lineWidth = Math.max(2, 2.5 * scale);
  context.lineCap = "round";
  for (const [a, b] of poses.edges) {
    const p = points[a];
    const q = points[b];
    if (p[2] < threshold || q[2] < threshold) continue;
    context.beginPath();
    context.moveTo(p[0], p[1]);
    context.lineTo(q[0], q[1]);
    context.stroke();
  }
  const radius = Math.max(2.5, 3 * scale);
  for (const p of points) {
    if (p[2] < threshold) continue;
    context.beginPath();
    context.arc(p[0], p[1], radius, 0, 2 * Math.PI);
    context.fill();
  }
  context.globalAlpha = 1;
  const visible = points.filter((p) => p[2] >= threshold);
  if (!visible.length) return null;
  // The label's anchor: above the person's highest visible joint, at their leftmost one (as in the video).
  return { x: Math.min(...visible.map((p) => p[0])), y: Math.min(...visible.map((p) => p[1])), found };
}

function personLabel(person, frame, anchor) {
  const label = document.createElement("div");
  label.className = "person-label";
  label.dataset.person = String(person.id);
  label.style.setProperty("--person", person.colour);
  const index = windowIndexForFrame(person, frame);
  const action = index >= 0 ? person.windows[index].topk[0] : null;
  label.textContent = `#${person.id}` + (action ? ` ${action.label} ${(100 * action.prob).toFixed(0)}%` : "");
  label.classList.toggle("missed", !anchor.found);
  // In percent of the frame, so the label follows the video whatever size it is shown at.
  label.style.left = `${(100 * Math.max(0, anchor.x)) / canvas.width}%`;
  label.style.top = `${(100 * Math.max(0, anchor.y - 4)) / canvas.height}%`;
  return label;
}

function drawAt(time) {
  const data = state.result;
  if (!data) return;
  const frame = Math.min(data.frames - 1, Math.max(0, Math.floor(time * data.fps + 1e-3)));
  context.clearRect(0, 0, canvas.width, canvas.height);
  const labels = [];
  for (const person of state.people.values()) {
    if (frame < person.start || frame > person.end) continue;
    const anchor = drawSkeleton(data.poses, person, frame);
    if (anchor) labels.push(personLabel(person, frame, anchor));
  }
  $("labels").replaceChildren(...labels);
  showCurrentWindow(frame);
  for (const playhead of $("timeline").querySelectorAll(".playhead")) {
    playhead.style.left = `${(100 * Math.min(time * data.fps, data.frames)) / data.frames}%`;
  }
}

function showCurrentWindow(frame) {
  const person = state.people.get(state.selected);
  if (!person || !person.topk) return;
  const index = windowIndexForFrame(person, frame);
  if (index === state.currentWindow) return;
  const w = person.windows[index];
  renderBars($("current-topk"), w.topk);
  const away = frame < person.start || frame > person.end ? ", not in view now" : "";
  $("now-range").textContent =
    `(person #${person.id}${away}, window ${index + 1}/${person.windows.length}: ${seconds(w.start_frame)}–${seconds(w.end_frame)} s)`;
  for (const row of $("timeline").querySelectorAll(".track")) {
    const mine = Number(row.dataset.person) === person.id;
    for (const cell of row.querySelectorAll(".window")) cell.classList.toggle("current", mine && Number(cell.dataset.index) === index);
  }
  state.currentWindow = index;
}

// Redraw on every decoded frame where the browser says which one it is, else on every animation frame.
if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
  const onFrame = (_now, metadata) => {
    drawAt(metadata.mediaTime);
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
} else {
  const onAnimationFrame = () => {
    if (!video.paused) drawAt(video.currentTime);
    requestAnimationFrame(onAnimationFrame);
  };
  requestAnimationFrame(onAnimationFrame);
}
for (const event of ["seeked", "loadeddata", "timeupdate"]) {
  video.addEventListener(event, () => drawAt(video.currentTime));
}

// ------------------------------------------------------------------------------------------ webcam
async function startCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || typeof MediaRecorder === "undefined") {
    setStatus("error", "This browser cannot record from the webcam here (it needs https or http://localhost).");
    return;
  }
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  } catch (error) {
    setStatus("error", `The webcam could not be opened: ${error.message}`);
    return;
  }
  clearResult();
  if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
  state.objectUrl = null;
  video.removeAttribute("src");
  video.srcObject = state.stream;
  video.controls = false;
  $("placeholder").hidden = true;
  $("stage").style.aspectRatio = "4 / 3";
  await video.play().catch(() => {});
  $("webcam-controls").hidden = false;
  $("webcam").hidden = true;
  setStatus("idle", "Camera on. Step back so your whole body is in view, then press Record.");
}

function stopCamera() {
  if (state.recorder && state.recorder.state === "recording") state.recorder.stop();
  if (state.stream) for (const track of state.stream.getTracks()) track.stop();
  state.stream = null;
  $("webcam-controls").hidden = true;
  $("webcam").hidden = false;
}

function record() {
  const duration = Number($("record-seconds").value);
  const type = ["video/webm;codecs=vp9", "video/webm;codecs=vp8", "video/webm"].find((t) => MediaRecorder.isTypeSupported(t));
  const recorder = new MediaRecorder(state.stream, type ? { mimeType: type } : {});
  const chunks = [];
  recorder.addEventListener("dataavailable", (event) => { if (event.data.size) chunks.push(event.data); });
  recorder.addEventListener("stop", () => {
    clearInterval(countdown);
    $("record").disabled = false;
    const blob = new Blob(chunks, { type: "video/webm" });
    if (blob.size) analyse(blob, "webcam.webm");
  });
  state.recorder = recorder;
  $("record").disabled = true;
  let left = duration;
  setStatus("busy", `Recording… ${left} s`);
  const countdown = setInterval(() => {
    left -= 1;
    if (left > 0) setStatus("busy", `Recording… ${left} s`);
  }, 1000);
  recorder.start();
  setTimeout(() => { if (recorder.state === "recording") recorder.stop(); }, duration * 1000);
}

// ------------------------------------------------------------------------------------------ wiring
$("file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) analyse(file, file.name);
  event.target.value = "";
});
$("webcam").addEventListener("click", startCamera);
$("camera-off").addEventListener("click", () => {
  stopCamera();
  video.srcObject = null;
  setStatus("idle", "Camera off.");
});
$("record").addEventListener("click", record);

const stage = $("stage");
stage.addEventListener("dragover", (event) => { event.preventDefault(); stage.classList.add("dragging"); });
stage.addEventListener("dragleave", () => stage.classList.remove("dragging"));
stage.addEventListener("drop", (event) => {
  event.preventDefault();
  stage.classList.remove("dragging");
  const file = event.dataTransfer.files[0];
  if (file) analyse(file, file.name);
});

fetch("/v1/labels")
  .then((response) => (response.ok ? response.json() : null))
  .then((data) => {
    if (data) {
      const info = $("model-info");
      info.textContent = `The model knows ${data.num_classes} actions.`;
      info.title = data.labels.map((l) => l.label).join(", ");
    }
  })
  .catch(() => {});
