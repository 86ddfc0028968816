// EvoToken playground: runs a prompt through the public OpenAI-compatible API with
// `stream: true, stream_steps: "full"` and draws every refinement step, one cell per
// generated position. Plain JS modules, no build step, no dependencies. This module holds the
// controls: the API key, the settings and their server defaults, the runs, replay and compare.

import {Panel} from './canvas.js';
import {$, showMessage} from './dom.js';
import {seconds} from './format.js';
import {sseData} from './sse.js';

const KEY_STORAGE = 'evotoken.playground.apiKey';
const FIELDS = ['max_tokens', 'block_length', 'steps', 'temperature', 'k_soft',
  'alpha_soft_mask', 'threshold', 'decoding', 'remasking', 'cache'];
const FALLBACK_DEFAULTS = {max_tokens: 128, block_length: 32, steps: 64, steps_ratio: 0.5, temperature: 0,
  k_soft: 3, alpha_soft_mask: 0.7, threshold: null, decoding: 'evotoken', remasking: 'low_confidence',
  cache: 'none'};

const form = $('#run-form');
const panelsBox = $('#panels');
const scrubber = $('#scrubber');
const scrubLabel = $('#scrub-label');
const runButton = $('#run');
const stopButton = $('#stop');
const keyInput = $('#api-key');
const rememberKey = $('#remember-key');

let modelId = null;
let defaults = {...FALLBACK_DEFAULTS};
let stepsTouched = false;
let defaultsApplied = false;  // later loads (a new API key) keep what the user has typed

const pageMessage = (text, kind) => showMessage($('#page-message'), text, kind);
window.addEventListener('error', (e) => pageMessage(`Unexpected error in the page: ${e.message}`));
window.addEventListener('unhandledrejection', (e) => pageMessage(`Unexpected error in the page: ${e.reason}`));

class APIError extends Error {}

async function errorText(response) {
  let detail = `${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) {
      detail = `${response.status}: ${body.error.message}`;
      if (body.error.param) detail += ` (parameter: ${body.error.param})`;
    }
  } catch (_) { /* not JSON: the status line is all there is */ }
  return detail;
}

// --- the API key lives in memory, and in localStorage only when the user asks -----------
function apiKey() { return keyInput.value.trim(); }
function headers(accept = 'application/json') {
  const h = {'Content-Type': 'application/json', 'Accept': accept};
  if (apiKey()) h.Authorization = `Bearer ${apiKey()}`;
  return h;
}
function storeKey() {
  try {
    if (rememberKey.checked && apiKey()) localStorage.setItem(KEY_STORAGE, apiKey());
    else localStorage.removeItem(KEY_STORAGE);
  } catch (_) { /* storage disabled: the key stays in memory */ }
}
try {
  const saved = localStorage.getItem(KEY_STORAGE);
  if (saved) { keyInput.value = saved; rememberKey.checked = true; }
} catch (_) { /* storage disabled */ }

// --- server defaults, from the model entry of GET /v1/models --------------------------------
function fillDefaults() {
  for (const name of FIELDS) {
    const value = defaults[name];
    form.elements[name].value = value === null || value === undefined ? '' : String(value);
  }
  stepsTouched = false;
}

async function loadDefaults() {
  document.body.dataset.defaults = 'loading';
  try {
    const response = await fetch('/v1/models', {headers: headers()});
    if (!response.ok) throw new APIError(await errorText(response));
    const model = (await response.json()).data[0];
    modelId = model.id;
    $('#model-name').textContent = model.id;
    defaults = {...FALLBACK_DEFAULTS, ...(model.evotoken_defaults || {})};
    if (!defaultsApplied) fillDefaults();
    defaultsApplied = true;
    pageMessage('');
    document.body.dataset.defaults = 'loaded';
  } catch (error) {
    $('#model-name').textContent = 'unknown';
    pageMessage(`Could not read the server's models and defaults: ${error.message}` +
      (apiKey() ? '' : ' If the server needs an API key, enter it below the settings.'));
    document.body.dataset.defaults = 'failed';
  }
}

// Steps follow the server's ratio (steps per block) until the user sets them.
function followSteps() {
  if (stepsTouched) return;
  const block = Number(form.elements.block_length.value);
  const gen = Number(form.elements.max_tokens.value);
  if (!(block >= 1 && gen >= 1)) return;
  const defaultCanvas = Math.ceil(defaults.max_tokens / defaults.block_length) * defaults.block_length;
  const ratio = defaults.steps_ratio ?? defaults.steps / defaultCanvas;
  const perBlock = Math.max(1, Math.floor(ratio * block + 1e-9));  // the server's rule: rounded down
  form.elements.steps.value = String(perBlock * Math.ceil(gen / block));
}

function requestBody(decoding) {
  const f = form.elements;
  const number = (name) => Number(f[name].value);
  const body = {
    max_tokens: number('max_tokens'), block_length: number('block_length'),
    steps: number('steps'), temperature: number('temperature'), k_soft: number('k_soft'),
    alpha_soft_mask: number('alpha_soft_mask'),
    threshold: f.threshold.value === '' ? null : number('threshold'),
    remasking: f.remasking.value, cache: f.cache.value, decoding,
    stream: true, stream_steps: 'full', stream_options: {include_usage: true},
  };
  if (f.seed.value !== '') body.seed = number('seed');
  if (modelId) body.model = modelId;
  const prompt = f.prompt.value;
  if (f.mode.value === 'chat') body.messages = [{role: 'user', content: prompt}];
  else body.prompt = prompt;
  return body;
}

// --- one run: POST, read the stream, feed the panel -----------------------------------------
async function runPanel(panel, controller) {
  const started = performance.now();
  const elapsed = () => performance.now() - started;
  const chat = 'messages' in panel.body;
  const ticker = setInterval(() => { if (!panel.replaying) panel.figure('elapsed', seconds(elapsed())); }, 200);
  let lastSummary = 0;
  panel.root.dataset.run = 'running';
  panel.summary(`${panel.decoding}: running`);
  let answer = '';
  let finished = false;
  try {
    const response = await fetch(chat ? '/v1/chat/completions' : '/v1/completions', {
      method: 'POST', headers: headers('text/event-stream'), body: JSON.stringify(panel.body),
      signal: controller.signal,
    });
    if (!response.ok) throw new APIError(await errorText(response));
    for await (const data of sseData(response)) {
      if (data === '[DONE]') { finished = true; break; }
      const chunk = JSON.parse(data);
      if (chunk.error) throw new APIError(chunk.error.message || 'the server reported an error');
      const choice = chunk.choices && chunk.choices[0];
      if (!choice) continue;
      if (choice.evotoken) panel.record(choice.evotoken, elapsed());
      const piece = chat ? choice.delta && choice.delta.content : choice.text;
      if (piece) {
        answer += piece;
        $('.answer', panel.root).textContent = answer;
      }
      if (choice.finish_reason) $('.finish', panel.root).textContent = `(finish: ${choice.finish_reason})`;
      if (elapsed() - lastSummary > 2000) {
        lastSummary = elapsed();
        panel.summary(`${panel.decoding}: step ${panel.steps.length} of ${panel.body.steps}`);
      }
    }
    if (!finished) throw new APIError('the connection closed before the run finished.');
    panel.root.dataset.run = 'done';
    const last = panel.steps[panel.steps.length - 1];
    panel.summary(`${panel.decoding} finished: ${panel.steps.length} steps, ` +
      `${last ? last.nfe : 0} forward passes, ${seconds(elapsed())}.`);
  } catch (error) {
    if (error.name === 'AbortError') {
      panel.root.dataset.run = 'stopped';
      panel.message(`Stopped after ${panel.steps.length} steps.`, 'info');
      panel.summary(`${panel.decoding}: stopped`);
    } else {
      panel.root.dataset.run = 'error';
      const text = error instanceof APIError ? error.message
        : error instanceof TypeError ? `Could not reach the server (${error.message}).`
          : `Unexpected error: ${error.message}`;
      panel.message(`The request failed: ${text}`);
      panel.summary(`${panel.decoding}: failed`);
    }
  } finally {
    clearInterval(ticker);
    if (panel.shown >= 0) panel.figure('elapsed', seconds(panel.steps[panel.shown].elapsed));
  }
}

// One controller aborts every fetch of a run; closing the streams cancels them on the server.
let controller = null;

async function startRuns() {
  if (controller) return;
  if (!form.reportValidity()) return;
  storeKey();
  pageMessage('');
  const modes = $('#compare').checked ? ['evotoken', 'hard_mask'] : [form.elements.decoding.value];
  const panels = modes.map((mode) => new Panel(mode, requestBody(mode)));
  panelsBox.replaceChildren(...panels.map((p) => p.root));
  panelsBox.dataset.count = String(panels.length);
  controller = new AbortController();
  setRunning(true);
  try {
    await Promise.all(panels.map((p) => runPanel(p, controller)));
  } finally {
    controller = null;
    setRunning(false);
    enableReplay(panels);
  }
}

function stopRuns() {
  if (controller) controller.abort();
}

function setRunning(running) {
  runButton.disabled = running;
  stopButton.disabled = !running;
  document.body.dataset.running = String(running);
  if (running) {
    scrubber.disabled = true;
    scrubLabel.textContent = 'after a run';
  }
}

function enableReplay(panels) {
  const longest = Math.max(0, ...panels.map((p) => p.steps.length));
  if (!longest) return;
  scrubber.max = String(longest - 1);
  scrubber.value = String(longest - 1);
  scrubber.disabled = false;
  scrubber.oninput = () => {
    const i = Number(scrubber.value);
    for (const p of panels) {
      p.replaying = true;
      p.show(Math.min(i, p.steps.length - 1));
    }
    scrubLabel.textContent = `step ${i + 1} of ${longest}`;
  };
  scrubLabel.textContent = `step ${longest} of ${longest}`;
}

// --- wiring ------------------------------------------------------------------------------------
form.addEventListener('submit', (e) => {
  e.preventDefault();
  startRuns();
});
stopButton.addEventListener('click', stopRuns);
form.elements.steps.addEventListener('input', () => { stepsTouched = true; });
form.elements.max_tokens.addEventListener('input', followSteps);
form.elements.block_length.addEventListener('input', followSteps);
$('#reset-defaults').addEventListener('click', fillDefaults);
// The example menu: a click puts its prompt in the box (as a chat message) and marks it.
const exampleButtons = [...document.querySelectorAll('.example')];
const markExample = () => {
  for (const b of exampleButtons) b.setAttribute('aria-pressed', String(b.dataset.prompt === form.elements.prompt.value));
};
for (const button of exampleButtons) {
  button.addEventListener('click', () => {
    form.elements.prompt.value = button.dataset.prompt;
    form.elements.mode.value = 'chat';
    markExample();
    form.elements.prompt.focus();
  });
}
form.elements.prompt.addEventListener('input', markExample);
keyInput.addEventListener('change', () => { storeKey(); loadDefaults(); });
rememberKey.addEventListener('change', storeKey);
form.elements.prompt.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); }
});
document.addEventListener('keydown', (e) => { if (e.key === 'Escape') stopRuns(); });

fillDefaults();
loadDefaults();
