// gpnn studio: a small page on the REST API (no framework, no build step).
"use strict";
const CONFIG = JSON.parse(document.getElementById("config").textContent);
const $ = (id) => document.getElementById(id);
const TERMINAL = ["succeeded", "failed", "canceled"];
const state = { files: {}, size: null, sizes: {}, hole: null, job: null, events: null, list: "jobs", next: null };

// --- API key and calls --------------------------------------------------------------------

function apiKey() { return localStorage.getItem("gpnn-key") || ""; }

function storeKey(key) {
  localStorage.setItem("gpnn-key", key);
  // GET links (images, zips, reports, event streams) carry the key as a cookie.
  document.cookie = `${CONFIG.key_cookie}=${encodeURIComponent(key)}; path=/; SameSite=Strict`;
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (apiKey()) headers["X-API-Key"] = apiKey();
  const answer = await fetch(path, { ...options, headers });
  if (!answer.ok) {
    let detail = `${answer.status} ${answer.statusText}`;
    try {
      const body = await answer.json();
      if (typeof body.detail === "string") detail = body.detail;
      else if (Array.isArray(body.detail)) detail = body.detail.map((e) => `\`${e.loc.slice(1).join(".")}\`: ${e.msg}`).join("; ");
    } catch (_) { /* not JSON */ }
    const error = new Error(detail);
    error.status = answer.status;
    throw error;
  }
  return answer;
}

function show(id, message) {
  const node = $(id);
  node.textContent = message || "";
  node.hidden = !message;
}

async function checkKey() {
  if (!CONFIG.auth) return true;
  $("key-form").hidden = false;
  if (!apiKey()) { show("key-error", "This service needs an API key: enter yours above."); return false; }
  try {
    await api("/v1/jobs?limit=1");
    show("key-error", "");
    $("key-state").textContent = "key accepted: you see your own jobs and batches";
    return true;
  } catch (error) {
    show("key-error", error.message);
    return false;
  }
}

$("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  storeKey($("key").value.trim());
  $("key").value = "";
  hideJob();
  $("batch").hidden = true;
  if (await checkKey()) loadList();
  else $("list").tBodies[0].replaceChildren();
});

// --- the parameter form, generated from the engine's JSON schemas ------------------------

function fieldSchema(schema, prop) {
  let s = prop;
  let nullable = false;
  if (prop.anyOf) {
    nullable = prop.anyOf.some((p) => p.type === "null");
    s = { ...prop.anyOf.find((p) => p.type !== "null"), ...prop };
  }
  if (s.$ref) s = { ...schema.$defs[s.$ref.split("/").pop()], ...s };
  if (s.allOf) s = { ...schema.$defs[s.allOf[0].$ref.split("/").pop()], ...s };
  return { s, nullable };
}

function rangeText(s) {
  const parts = [];
  if (s.minimum !== undefined) parts.push(`≥ ${s.minimum}`);
  if (s.exclusiveMinimum !== undefined) parts.push(`> ${s.exclusiveMinimum}`);
  if (s.maximum !== undefined) parts.push(`≤ ${s.maximum}`);
  if (s.exclusiveMaximum !== undefined) parts.push(`< ${s.exclusiveMaximum}`);
  return parts.join(", ");
}

function buildParams() {
  const task = $("task").value;
  const schema = CONFIG.tasks[task].schema;
  const box = $("params");
  box.replaceChildren();
  for (const [name, prop] of Object.entries(schema.properties)) {
    if (name === "task") continue;
    const { s, nullable } = fieldSchema(schema, prop);
    const label = document.createElement("label");
    label.textContent = name + " ";
    let input;
    if (name === "color") {
      input = document.createElement("input");
      input.type = "color";
      input.value = "#00ff00";
      const use = document.createElement("input");
      use.type = "checkbox";
      use.id = "use-color";
      label.append(use, " fill this colour's region instead of a mask ");
    } else if (s.enum) {
      input = document.createElement("select");
      for (const value of s.enum) input.add(new Option(value, value));
      input.value = name === "mode" ? CONFIG.default_mode : s.default;
    } else if (s.type === "boolean") {
      input = document.createElement("input");
      input.type = "checkbox";
      input.checked = !!s.default;
    } else {
      input = document.createElement("input");
      input.type = "text";
      input.inputMode = "decimal";
      input.value = s.default === null || s.default === undefined ? "" : String(s.default);
      if (nullable) input.placeholder = "auto";
    }
    input.name = name;
    input.dataset.default = JSON.stringify(name === "mode" ? CONFIG.default_mode : s.default ?? null);
    input.dataset.nullable = nullable ? "1" : "";
    label.append(input);
    const help = document.createElement("small");
    const range = rangeText(s);
    help.textContent = `${s.description || ""}${range ? ` (${range})` : ""}`;
    label.append(help);
    box.append(label);
  }
  box.querySelectorAll("input, select").forEach((node) => node.addEventListener("change", planJob));
}

function parseValue(text) {
  const t = text.trim();
  if (/^[+]?(inf|infinity)$/i.test(t)) return "Infinity";
  return t !== "" && !isNaN(Number(t)) ? Number(t) : t;
}

// The parameters that differ from the model's defaults (the API fills in the rest).
function collectParams() {
  const params = {};
  for (const input of $("params").querySelectorAll("[name]")) {
    const name = input.name;
    const fallback = JSON.parse(input.dataset.default);
    if (name === "color") {
      if ($("use-color").checked) {
        const hex = input.value;
        params.color = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
      }
      continue;
    }
    let value;
    if (input.type === "checkbox") value = input.checked;
    else if (input.tagName === "SELECT") value = input.value;
    else if (input.value.trim() === "") { if (fallback !== null) params[name] = null; continue; }
    else value = parseValue(input.value);
    if (JSON.stringify(value) !== JSON.stringify(fallback) && String(value) !== String(fallback)) params[name] = value;
  }
  return params;
}

function fillParams(values) {
  for (const input of $("params").querySelectorAll("[name]")) {
    const value = values[input.name];
    if (input.name === "color") {
      $("use-color").checked = Array.isArray(value);
      if (Array.isArray(value)) input.value = "#" + value.map((c) => c.toString(16).padStart(2, "0")).join("");
    } else if (input.type === "checkbox") input.checked = !!value;
    else input.value = value === null || value === undefined ? "" : String(value);
  }
}

// --- inputs: the source (drop, choose), mask painting, the other images -------------------

function taskInputs() { return CONFIG.tasks[$("task").value].inputs; }

function showInputs() {
  const inputs = taskInputs();
  $("drop").hidden = !inputs.includes("source");
  document.querySelectorAll("#extra-inputs [data-input]").forEach((node) => {
    node.hidden = !inputs.includes(node.dataset.input);
  });
  $("paint").hidden = !(inputs.includes("mask") && state.files.source);
}

// An image file decoded by the browser (rejects with a message naming the file).
function loadImage(file) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`${file.name} is not an image this browser can read`));
    image.src = URL.createObjectURL(file);
  });
}

// Resolves once the image is in the form, the mask canvas cleared to its size.
async function setSource(file) {
  state.files.source = file;
  try {
    const image = await loadImage(file);
    state.size = [image.naturalHeight, image.naturalWidth];
    const canvas = $("mask-canvas");
    canvas.width = image.naturalWidth;
    canvas.height = image.naturalHeight;
    state.hole = null;
    $("paint-image").src = image.src;
    showInputs();
    planJob();
  } catch (error) {
    state.size = null;
    state.files.source = null;
    planJob();
    show("form-error", `\`source\`: ${error.message}`);
  }
}

// A mask image (white = hole) painted onto the canvas, as if drawn with the brush.
async function paintMask(file) {
  const image = await loadImage(file);
  const canvas = $("mask-canvas");
  const scratch = document.createElement("canvas");
  scratch.width = canvas.width;
  scratch.height = canvas.height;
  scratch.getContext("2d").drawImage(image, 0, 0);
  const mask = scratch.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  const context = canvas.getContext("2d");
  const painted = context.createImageData(canvas.width, canvas.height);
  let hole = null;
  for (let i = 0; i < mask.data.length; i += 4) {
    if (mask.data[i] < 128) continue;
    painted.data[i] = painted.data[i + 3] = 255;
    const y = Math.floor(i / 4 / canvas.width), x = (i / 4) % canvas.width;
    hole = hole ? [Math.min(hole[0], y), Math.min(hole[1], x), Math.max(hole[2], y + 1), Math.max(hole[3], x + 1)] : [y, x, y + 1, x + 1];
  }
  context.putImageData(painted, 0, 0);
  state.hole = hole;
}

$("source").addEventListener("change", (e) => e.target.files[0] && setSource(e.target.files[0]));
// The plan needs the sizes of the images the engine refines besides the source: a
// collage's sources (side by side) and an analogy's structure (the output's size).
const MEASURED = ["structure", "sources"];
async function imageSize(file) {
  const image = await loadImage(file);
  return [image.naturalHeight, image.naturalWidth];
}
async function measure(name, files) {
  try {
    state.sizes[name] = await Promise.all(files.map(imageSize));
    planJob();
  } catch (error) {
    delete state.sizes[name];
    show("form-error", `\`${name}\`: ${error.message}`);
  }
}
$("structure").addEventListener("change", (e) => {
  show("form-error", "");
  state.files.structure = e.target.files[0];
  if (state.files.structure) measure("structure", [state.files.structure]);
});
$("edited").addEventListener("change", (e) => { show("form-error", ""); state.files.edited = e.target.files[0]; });
$("sources").addEventListener("change", async (e) => {
  show("form-error", "");
  state.files.sources = [...e.target.files];
  if (!state.files.sources.length) return;
  await measure("sources", state.files.sources);
  if (state.sizes.sources) { state.size = state.sizes.sources[0]; planJob(); }
});
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) setSource(e.dataTransfer.files[0]);
});

// The hole is painted in the image's own pixels (the canvas is scaled by CSS).
(function painter() {
  const canvas = $("mask-canvas");
  const context = canvas.getContext("2d");
  let last = null;
  function point(e) {
    const box = canvas.getBoundingClientRect();
    return [(e.clientX - box.left) * canvas.width / box.width, (e.clientY - box.top) * canvas.height / box.height];
  }
  // A round-capped line from the last point: the stroke has no gaps between events.
  function dab(e) {
    const [x, y] = point(e);
    const r = Math.max(1, Number($("brush").value) * canvas.width / canvas.getBoundingClientRect().width / 2);
    const [x0, y0] = last || [x, y];
    context.strokeStyle = "rgb(255, 0, 0)";
    context.lineWidth = 2 * r;
    context.lineCap = "round";
    context.beginPath();
    context.moveTo(x0, y0);
    context.lineTo(x, y);
    context.stroke();
    last = [x, y];
    const h = state.hole || [y - r, x - r, y + r, x + r];
    state.hole = [Math.min(h[0], y - r), Math.min(h[1], x - r), Math.max(h[2], y + r), Math.max(h[3], x + r)];
  }
  canvas.addEventListener("pointerdown", (e) => { last = null; canvas.setPointerCapture(e.pointerId); dab(e); });
  canvas.addEventListener("pointermove", (e) => last && dab(e));
  const stop = () => { if (last) { last = null; planJob(); } };
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);
  $("clear-mask").addEventListener("click", () => {
    context.clearRect(0, 0, canvas.width, canvas.height);
    state.hole = null;
    planJob();
  });
})();

// The painted strokes as a mask PNG: white in the hole, black elsewhere.
function maskBlob() {
  const canvas = $("mask-canvas");
  if (!state.hole) return Promise.resolve(null);
  const painted = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  const out = document.createElement("canvas");
  out.width = canvas.width;
  out.height = canvas.height;
  const context = out.getContext("2d");
  const mask = context.createImageData(canvas.width, canvas.height);
  for (let i = 0; i < painted.data.length; i += 4) {
    const value = painted.data[i + 3] > 0 ? 255 : 0;
    mask.data[i] = mask.data[i + 1] = mask.data[i + 2] = value;
    mask.data[i + 3] = 255;
  }
  context.putImageData(mask, 0, 0);
  return new Promise((resolve) => out.toBlob(resolve, "image/png"));
}

// What the job will get: size, pyramid depth and estimate (from the API).
let planTimer = null;
// What the form holds: the source's size, or a collage's images in the order they join.
function describeInputs() {
  const sized = ([height, width]) => `${width} x ${height} px`;
  if (taskInputs().includes("sources")) {
    const files = state.files.sources || [];
    const sizes = state.sizes.sources || [];
    return files.length ? "joined left to right: " + files.map((f, i) => `${i + 1}. ${f.name}` + (sizes[i] ? ` (${sized(sizes[i])})` : "")).join(", ") : "";
  }
  if (!state.files.source || !state.size) return "";
  const [height, width] = state.size;
  return `${sized(state.size)} (${(width * height / 1e6).toFixed(3)} MP)`;
}

function planJob() {
  clearTimeout(planTimer);
  planTimer = setTimeout(async () => {
    $("source-info").textContent = describeInputs();
    if (!state.size) { $("plan").textContent = ""; return; }
    const unmeasured = taskInputs().find((name) => MEASURED.includes(name) && !state.sizes[name]);
    if (unmeasured) { $("plan").textContent = `the plan follows once \`${unmeasured}\` is chosen`; return; }
    const [height, width] = state.size;
    const hole = state.hole ? [Math.round(state.hole[2] - state.hole[0]), Math.round(state.hole[3] - state.hole[1])] : null;
    try {
      const sizes = Object.fromEntries(Object.entries(state.sizes).filter(([name]) => taskInputs().includes(name)));
      const body = { task: $("task").value, params: collectParams(), samples: Number($("samples").value) || 1, height, width, hole, sizes };
      const plan = await (await api("/studio/plan", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })).json();
      $("plan").textContent = `pyramid: ${plan.levels} levels (depth ${plan.depth}, coarsest ${plan.coarsest[1]} x ${plan.coarsest[0]}), output ${plan.output[1]} x ${plan.output[0]}; about ${plan.estimate.seconds} s and ${plan.estimate.memory_mb} MB (${plan.estimate.mode} mode)` + (plan.problems.length ? ". Problem: " + plan.problems.join("; ") : "");
      show("form-error", "");
    } catch (error) {
      $("plan").textContent = "";
      show("form-error", error.message);
    }
  }, 150);
}

// Each hint concerns one application (data-task): large objects, a collage's seams.
function showTaskHelp() {
  for (const help of document.querySelectorAll(".task-help")) {
    help.hidden = help.dataset.task !== $("task").value;
  }
}

$("task").addEventListener("change", () => { showTaskHelp(); buildParams(); showInputs(); planJob(); });
$("samples").max = CONFIG.limits.max_samples;
$("samples").addEventListener("change", planJob);

// --- submitting and following a job --------------------------------------------------------

$("job-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  show("form-error", "");
  const form = new FormData();
  form.append("task", $("task").value);
  form.append("params", JSON.stringify(collectParams()));
  form.append("samples", $("samples").value);
  form.append("previews", $("previews").checked ? "true" : "false");
  const inputs = taskInputs();
  if (inputs.includes("source") && state.files.source) form.append("source", state.files.source);
  for (const name of ["structure", "edited"]) {
    if (inputs.includes(name) && state.files[name]) form.append(name, state.files[name]);
  }
  if (inputs.includes("sources")) for (const file of state.files.sources || []) form.append("sources", file);
  if (inputs.includes("mask") && !($("use-color") && $("use-color").checked)) {
    const mask = await maskBlob();
    if (mask) form.append("mask", mask, "mask.png");
  }
  $("run").disabled = true;
  try {
    const job = await (await api("/v1/jobs", { method: "POST", body: form })).json();
    openJob(job);
    loadList();
  } catch (error) {
    show("form-error", error.message);
  } finally {
    $("run").disabled = false;
  }
});

function hideJob() {
  if (state.events) state.events.close();
  state.events = null;
  state.job = null;
  $("job").hidden = true;
}

function figure(src, caption, download) {
  const node = document.createElement("figure");
  const image = document.createElement("img");
  image.src = src;
  image.alt = caption;
  node.append(image);
  const text = document.createElement("figcaption");
  text.textContent = caption + " ";
  if (download) {
    const link = document.createElement("a");
    link.href = src;
    link.download = download;
    link.textContent = "download";
    link.className = "download";
    text.append(link);
  }
  node.append(text);
  return node;
}

function previewRow(sample) {
  let row = document.querySelector(`#job-previews [data-sample="${sample}"]`);
  if (!row) {
    row = document.createElement("div");
    row.className = "levels";
    row.dataset.sample = sample;
    row.append(`sample ${sample}: `);
    $("job-previews").append(row);
  }
  return row;
}

function addPreview(preview, via) {
  const row = previewRow(preview.sample);
  if (row.querySelector(`[data-level="${preview.level}"]`)) return;
  const image = document.createElement("img");
  image.src = preview.url;
  image.dataset.level = preview.level;
  image.dataset.via = via; // "event": streamed while the job ran
  image.className = "preview";
  image.title = `sample ${preview.sample}, level ${preview.level + 1} of ${preview.levels}`;
  image.alt = image.title;
  const after = [...row.querySelectorAll("img")].find((i) => Number(i.dataset.level) > preview.level);
  row.insertBefore(image, after || null);
}

// The open job's status, in its panel and in its row of the list: the panel follows the
// job's events, and a list drawn from an answer older than the last event must not
// show an older status (the list is drawn anew once the job ends).
function showStatus(job) {
  for (const status of [$("job-status"), document.querySelector(`#list tr[data-id="${job.id}"] .status`)]) {
    if (!status) continue;
    status.textContent = job.status;
    status.className = `status ${job.status}`;
  }
}

function renderJob(job) {
  state.job = job;
  $("job-id").textContent = job.id;
  showStatus(job);
  $("job-cancel").hidden = TERMINAL.includes(job.status);
  show("job-error", job.status === "failed" || job.status === "canceled" ? job.error || job.status : "");
  for (const preview of job.previews || []) addPreview(preview, "job");
  renderProgress(job.progress, job);
  const results = $("job-results");
  if (job.status === "succeeded" && !results.dataset.done) {
    results.dataset.done = "1";
    const source = CONFIG.tasks[job.task].inputs[0] === "sources" ? "sources-0" : "source";
    results.replaceChildren(figure(`/v1/jobs/${job.id}/inputs/${source}`, "source"));
    job.outputs.forEach((url, n) => results.append(figure(url, `sample ${n} (seed ${Number(job.params.seed) + n})`, `${job.id}-${n}.png`)));
    const zip = document.createElement("a");
    zip.href = `/v1/jobs/${job.id}/outputs.zip`;
    zip.textContent = "download all samples (zip)";
    $("job-downloads").replaceChildren(zip);
  }
}

function renderProgress(progress, job) {
  const bar = $("job-progress");
  if (job.status === "succeeded") { bar.value = 1; $("job-eta").textContent = job.timings ? `done in ${job.timings.total_s.toFixed(1)} s` : "done"; return; }
  if (job.status === "queued") { $("job-eta").textContent = job.estimate ? `queued; about ${job.estimate.seconds} s of work` : "queued"; return; }
  if (!progress) return;
  bar.value = progress.fraction;
  let text = `sample ${progress.sample + 1} of ${progress.samples}, level ${progress.level + 1} of ${progress.levels}`;
  if (job.started_at && progress.fraction > 0.02 && !TERMINAL.includes(job.status)) {
    const elapsed = (Date.now() - Date.parse(job.started_at)) / 1000;
    text += `; about ${Math.max(0, Math.round(elapsed * (1 - progress.fraction) / progress.fraction))} s left`;
  }
  $("job-eta").textContent = text;
}

function openJob(job) {
  hideJob();
  $("job").hidden = false;
  $("job-previews").replaceChildren();
  $("job-results").replaceChildren();
  delete $("job-results").dataset.done;
  $("job-downloads").replaceChildren();
  $("job-progress").value = 0;
  renderJob(job);
  if (TERMINAL.includes(job.status)) return;
  const events = new EventSource(`/v1/jobs/${job.id}/events`);
  state.events = events;
  events.addEventListener("job", (e) => renderJob(JSON.parse(e.data)));
  events.addEventListener("progress", (e) => { if (state.job) { state.job.progress = JSON.parse(e.data); renderProgress(state.job.progress, state.job); } });
  events.addEventListener("preview", (e) => addPreview(JSON.parse(e.data), "event"));
  events.addEventListener("done", () => { events.close(); loadList(); });
  events.onerror = () => { if (events.readyState === EventSource.CLOSED) show("job-error", "lost the event stream; reload the job from the list"); };
}

$("job-cancel").addEventListener("click", async () => {
  try { renderJob(await (await api(`/v1/jobs/${state.job.id}/cancel`, { method: "POST" })).json()); loadList(); }
  catch (error) { show("job-error", error.message); }
});

async function jobInput(job, name) {
  const blob = await (await api(`/v1/jobs/${job.id}/inputs/${name}`)).blob();
  return new File([blob], name, { type: blob.type });
}

// Resubmit: the job's task and parameters back in the form, its inputs fetched again
// unless the form still holds images (a painted hole, a collage's images in order).
$("job-resubmit").addEventListener("click", async () => {
  const job = state.job;
  $("task").value = job.task;
  showTaskHelp();
  buildParams();
  fillParams(job.params);
  $("samples").value = job.samples;
  try {
    const names = CONFIG.tasks[job.task].inputs;
    for (const name of names.filter((n) => n !== "mask" && n !== "sources")) {
      if (state.files[name]) continue;
      const file = await jobInput(job, name);
      if (name === "source") await setSource(file); else state.files[name] = file;
    }
    if (names.includes("mask") && job.params.color == null && !state.hole) {
      await paintMask(await jobInput(job, "mask"));
    }
    if (names.includes("sources") && !(state.files.sources || []).length) {
      const files = [];
      for (let n = 0; ; n++) {
        try { files.push(await jobInput(job, `sources-${n}`)); }
        catch (error) { if (error.status === 404) break; throw error; }
      }
      state.files.sources = files;
      await measure("sources", files);
      if (state.sizes.sources) state.size = state.sizes.sources[0];
    }
  } catch (error) { show("form-error", error.message); }
  showInputs();
  planJob();
  $("new").scrollIntoView();
});

// --- recent jobs and batches ---------------------------------------------------------------

function cell(row, content) {
  const td = row.insertCell();
  if (content instanceof Node) td.append(content); else td.textContent = content ?? "";
  return td;
}

function button(text, action) {
  const node = document.createElement("button");
  node.type = "button";
  node.textContent = text;
  node.addEventListener("click", action);
  return node;
}

function link(text, href) {
  const node = document.createElement("a");
  node.href = href;
  node.textContent = text;
  node.target = "_blank";
  return node;
}

async function loadList(cursorUrl) {
  const body = $("list").tBodies[0];
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.kind === state.list));
  const query = new URLSearchParams({ limit: "10" });
  if ($("filter-status").value) query.set("status", $("filter-status").value);
  if ($("filter-task").value) query.set("task", $("filter-task").value);
  try {
    const page = await (await api(cursorUrl || `/v1/${state.list}?${query}`)).json();
    show("list-error", "");
    body.replaceChildren();
    for (const item of page.results) {
      const row = body.insertRow();
      row.dataset.id = item.id;
      row.className = "item";
      cell(row, new Date(item.created_at).toLocaleString());
      cell(row, item.task);
      const status = document.createElement("span");
      status.className = `status ${item.status}`;
      status.textContent = item.status;
      cell(row, status);
      if (state.list === "jobs") {
        const thumb = item.outputs.length ? Object.assign(document.createElement("img"), { src: item.outputs[0], alt: "sample 0" }) : "";
        cell(row, thumb);
        cell(row, button("Open", async () => openJob(await (await api(`/v1/jobs/${item.id}`)).json())));
      } else {
        cell(row, `${item.done} / ${item.total} jobs, ${item.succeeded} succeeded`);
        cell(row, button("Open", () => openBatch(item.id)));
      }
      cell(row, TERMINAL.includes(item.status) ? "" : button("Cancel", async () => {
        try { await api(`/v1/${state.list}/${item.id}/cancel`, { method: "POST" }); loadList(); }
        catch (error) { show("list-error", error.message); }
      }));
    }
    if (!page.results.length) cell(body.insertRow(), "nothing yet");
    if (state.job) showStatus(state.job);
    state.next = page.next;
    $("list-next").disabled = !page.next;
  } catch (error) {
    show("list-error", error.message);
  }
}

document.querySelectorAll(".tab").forEach((tab) => tab.addEventListener("click", () => { state.list = tab.dataset.kind; loadList(); }));
$("list-first").addEventListener("click", () => loadList());
$("list-next").addEventListener("click", () => state.next && loadList(state.next));
$("filter-status").addEventListener("change", () => loadList());
$("filter-task").addEventListener("change", () => loadList());

async function openBatch(id) {
  try {
    const batch = await (await api(`/v1/batches/${id}`)).json();
    $("batch").hidden = false;
    $("batch-id").textContent = batch.id;
    $("batch-status").textContent = `${batch.status}: ${batch.done} / ${batch.total} jobs`;
    const links = [link("all outputs (zip)", `/v1/batches/${id}/outputs.zip`)];
    if (batch.manifest) links.push(link("manifest", batch.manifest));
    if (batch.report_url) links.push(link("evaluation report", batch.report_url));
    else if (batch.report) links.push(`report: ${batch.report}`);
    $("batch-links").replaceChildren(...links.flatMap((l) => [l, "  "]));
    const gallery = $("batch-gallery");
    gallery.replaceChildren();
    for (const jobUrl of batch.jobs.slice(0, 48)) {
      const job = await (await api(jobUrl)).json();
      const name = job.input_name || job.id.slice(0, 8);
      job.outputs.forEach((url, n) => gallery.append(figure(url, `${name} #${n}`)));
      if (job.status !== "succeeded") gallery.append(`${name}: ${job.status} ${job.error || ""}`);
    }
    $("batch").scrollIntoView();
  } catch (error) {
    show("list-error", error.message);
  }
}

// --- start ----------------------------------------------------------------------------------

buildParams();
showInputs();
if (apiKey()) storeKey(apiKey());
checkKey().then((ok) => ok && loadList());
