// Uni-HAR web page: upload a video (or record one from the webcam), send it to POST /v1/predict?poses=1,
// then play it back with the skeleton drawn over each frame, the current window's top-k as bars, and a
// clickable timeline of the windows. Plain browser JavaScript, no build step.
"use strict";

const TOPK = 5;
const COLOURS = { left: "rgb(255,140,0)", right: "rgb(0,170,255)", centre: "rgb(80,220,80)", filled: "rgb(170,170,170)" };

const $ = (id) => document.getElementById(id);
const video = $("video");
const canvas = $("overlay");
const context = canvas.getContext("2d");
const state = { result: null, objectUrl: null, stream: null, recorder: null, segments: [], currentWindow: -1 };

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
    setStatus("error", `error: ${errorText(data, response)}`);
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
  state.segments = [];
  state.currentWindow = -1;
  for (const id of ["current-topk", "overall-topk", "timeline"]) $(id).replaceChildren();
  $("summary").textContent = "";
  $("raw").textContent = "";
  $("now-range").textContent = "";
  context.clearRect(0, 0, canvas.width, canvas.height);
}

function showResult(data) {
  state.result = data;
  const [width, height] = data.poses ? data.poses.frame_size : [video.videoWidth, video.videoHeight];
  if (width > 0 && height > 0) {
    canvas.width = width;
    canvas.height = height;
    $("stage").style.aspectRatio = `${width} / ${height}`;
  }
  renderBars($("overall-topk"), data.topk);
  buildTimeline(data);
  const seconds = data.frames / data.fps;
  const best = data.topk[0];
  $("summary").textContent =
    `${data.source}: ${data.frames} frames at ${data.fps.toFixed(2)} fps (${seconds.toFixed(1)} s), ` +
    `${data.windows.length} window${data.windows.length === 1 ? "" : "s"}` +
    (data.poses ? `, skeleton: ${data.poses.layout}` : "");
  const { poses, ...rest } = data;
  $("raw").textContent = JSON.stringify(rest, null, 2);
  setStatus("done", `Done: ${best.label} (${(100 * best.prob).toFixed(1)}%). Play the video to follow the actions over time.`);
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
    prob.textContent = `${(100 * score.prob).toFixed(1)}%`;
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
// as VideoPrediction.window_for_frame, so the page and the annotated video show the same window.
function windowCentre(w) {
  return (w.start_frame + w.end_frame - 1) / 2;
}

function labelColour(id) {
  return `hsl(${(id * 137.508) % 360}, 62%, 42%)`;
}

function buildTimeline(data) {
  const timeline = $("timeline");
  const windows = data.windows;
  state.segments = windows.map((w, i) => {
    const from = i === 0 ? 0 : (windowCentre(windows[i - 1]) + windowCentre(w)) / 2;
    const to = i === windows.length - 1 ? data.frames : (windowCentre(w) + windowCentre(windows[i + 1])) / 2;
    return { from, to };
  });
  const cells = windows.map((w, i) => {
    const { from, to } = state.segments[i];
    const best = w.topk[0];
    const cell = document.createElement("button");
    cell.type = "button";
    cell.className = "window";
    cell.role = "listitem";
    cell.dataset.index = String(i);
    cell.style.left = `${(100 * from) / data.frames}%`;
    cell.style.width = `${(100 * (to - from)) / data.frames}%`;
    cell.style.background = labelColour(best.id);
    cell.textContent = best.label;
    cell.title =
      `${(w.start_frame / data.fps).toFixed(1)}–${(w.end_frame / data.fps).toFixed(1)} s: ` +
      `${best.label} ${(100 * best.prob).toFixed(1)}%`;
    // The first frame this window owns (a frame exactly between two centres goes to the earlier window).
    cell.addEventListener("click", () => seekToFrame(i === 0 ? 0 : Math.floor(from) + 1));
    return cell;
  });
  const playhead = document.createElement("div");
  playhead.className = "playhead";
  playhead.id = "playhead";
  timeline.replaceChildren(...cells, playhead);
}

function seekToFrame(frame) {
  const data = state.result;
  if (!data) return;
  // Aim at the middle of the frame so rounding lands on it.
  video.currentTime = (frame + 0.5) / data.fps;
  drawAt(video.currentTime);
}

function windowIndexForFrame(frame) {
  let best = 0;
  let bestDistance = Infinity;
  state.result.windows.forEach((w, i) => {
    const distance = Math.abs(windowCentre(w) - frame);
    if (distance < bestDistance) {
      best = i;
      bestDistance = distance;
    }
  });
  return best;
}

// ------------------------------------------------------------------------------------------ drawing
function jointColour(name) {
  const words = name.split("_");
  return words.includes("left") ? COLOURS.left : words.includes("right") ? COLOURS.right : COLOURS.centre;
}

function drawSkeleton(poses, frame) {
  const points = poses.keypoints[frame];
  const detected = poses.detected[frame];
  const threshold = poses.min_confidence;
  const scale = Math.max(canvas.width, canvas.height) / 400;
  context.lineWidth = Math.max(2, 2.5 * scale);
  context.lineCap = "round";
  for (const [a, b] of poses.edges) {
    const p = points[a];
    const q = points[b];
    if (p[2] < threshold || q[2] < threshold) continue;
    const nameB = poses.joints[b];
    context.strokeStyle = detected ? jointColour(jointColour(nameB) === COLOURS.centre ? poses.joints[a] : nameB) : COLOURS.filled;
    context.beginPath();
    context.moveTo(p[0], p[1]);
    context.lineTo(q[0], q[1]);
    context.stroke();
  }
  const radius = Math.max(2.5, 3 * scale);
  points.forEach((p, j) => {
    if (p[2] < threshold) return;
    context.fillStyle = detected ? jointColour(poses.joints[j]) : COLOURS.filled;
    context.beginPath();
    context.arc(p[0], p[1], radius, 0, 2 * Math.PI);
    context.fill();
  });
}

function drawAt(seconds) {
  const data = state.result;
  if (!data) return;
  const frame = Math.min(data.frames - 1, Math.max(0, Math.floor(seconds * data.fps + 1e-3)));
  context.clearRect(0, 0, canvas.width, canvas.height);
  if (data.poses) drawSkeleton(data.poses, frame);
  const index = windowIndexForFrame(frame);
  if (index !== state.currentWindow) {
    const w = data.windows[index];
    renderBars($("current-topk"), w.topk);
    $("now-range").textContent =
      `(window ${index + 1}/${data.windows.length}: ${(w.start_frame / data.fps).toFixed(1)}–${(w.end_frame / data.fps).toFixed(1)} s)`;
    for (const cell of $("timeline").querySelectorAll(".window")) {
      cell.classList.toggle("current", Number(cell.dataset.index) === index);
    }
    state.currentWindow = index;
  }
  const playhead = $("playhead");
  if (playhead) playhead.style.left = `${(100 * Math.min(seconds * data.fps, data.frames)) / data.frames}%`;
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
  const seconds = Number($("record-seconds").value);
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
  let left = seconds;
  setStatus("busy", `Recording… ${left} s`);
  const countdown = setInterval(() => {
    left -= 1;
    if (left > 0) setStatus("busy", `Recording… ${left} s`);
  }, 1000);
  recorder.start();
  setTimeout(() => { if (recorder.state === "recording") recorder.stop(); }, seconds * 1000);
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
