// EvoToken playground: runs a prompt through the public OpenAI-compatible API with
// `stream: true, stream_steps: "full"` and draws every refinement step, one cell per
// generated position. Plain JS, no build step, no dependencies.
'use strict';

(() => {
  const KEY_STORAGE = 'evotoken.playground.apiKey';
  const FIELDS = ['max_tokens', 'block_length', 'steps', 'temperature', 'k_soft',
    'alpha_soft_mask', 'threshold', 'decoding', 'remasking', 'cache'];
  const FALLBACK_DEFAULTS = {max_tokens: 128, block_length: 32, steps: 64, temperature: 0,
    k_soft: 3, alpha_soft_mask: 0.7, threshold: null, decoding: 'evotoken', remasking: 'low_confidence',
    cache: 'none'};
  const MAX_BARS = 5;

  const $ = (selector, root = document) => root.querySelector(selector);
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

  // --- messages: every failure ends up on the page, never as a blank screen ---------------
  function showMessage(box, text, kind = 'error') {
    box.textContent = text;
    box.dataset.kind = kind;
    box.hidden = !text;
  }
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
    const ratio = defaults.steps / defaultCanvas;
    const perBlock = Math.max(1, Math.round(ratio * block));
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

  // --- SSE over fetch: EventSource cannot POST or send headers -------------------------------
  async function* sseData(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let data = [];
    for (;;) {
      const {value, done} = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, {stream: true});
      const lines = buffer.split(/\r\n|\n|\r(?!$)/);
      buffer = done ? '' : lines.pop();
      for (const line of lines) {
        if (line === '' || line === '\r') {
          if (data.length) yield data.join('\n');
          data = [];
        } else if (line.startsWith('data:')) {
          data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
        } // comments (": ping") and other fields carry nothing for us
      }
      if (done) break;
    }
    if (data.length) yield data.join('\n');
  }

  // --- text helpers --------------------------------------------------------------------------
  const escapeControl = (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  // A token as a cell shows it: whitespace and control characters made visible.
  function visible(text) {
    if (text === '') return '\u2205';
    if (/^ +$/.test(text)) return '\u2423'.repeat(text.length);
    return text.replace(/\n/g, '\u21b5').replace(/\t/g, '\u21e5').replace(/[\u0000-\u001f\u007f]/g, escapeControl);
  }
  // The draft keeps its line breaks and tabs; other control characters are shown as escapes.
  const visibleDraft = (text) => text.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, escapeControl);
  // A revision: a decoded token replaced by a more confident one (EvoToken's step 6).
  const revised = (before, now) => Boolean(before) && before.state === 'decoded'
    && (now.state === 'decoded' || now.state === 'final') && before.id !== now.id;
  const percent = (p) => `${(100 * p).toFixed(1)}%`;
  const seconds = (ms) => `${(ms / 1000).toFixed(2)} s`;

  // --- one panel: the canvas of one decoding mode, its figures and its recorded steps ------
  class Panel {
    constructor(decoding, body) {
      this.decoding = decoding;
      this.body = body;
      this.root = $('#panel-template').content.firstElementChild.cloneNode(true);
      this.root.dataset.decoding = decoding;
      $('.panel-title', this.root).textContent = decoding;
      this.canvas = $('.canvas', this.root);
      this.canvas.setAttribute('aria-label', `${decoding}: generated positions`);
      this.inspector = $('.inspector', this.root);
      this.steps = [];       // every step as received, for the replay
      this.shown = -1;       // index into steps of what the canvas shows
      this.cursor = null;    // position the inspector describes
      this.revisions = 0;
      this.replaying = false;  // true once the scrubber drives the canvas
      this.buildCells(body.max_tokens, body.block_length);
      this.canvas.addEventListener('mouseover', (e) => {
        const cell = e.target.closest('.cell');
        if (cell) this.inspect(Number(cell.dataset.pos), false);
      });
      this.canvas.addEventListener('keydown', (e) => this.onKey(e));
      this.canvas.addEventListener('focus', () => this.inspect(this.cursor ?? 0, true));
    }

    // One flow of fixed-size cells (no row per block, so short blocks waste no space); each
    // block's first cell is marked, and the cells of the block being decoded are outlined.
    buildCells(count, blockLength) {
      this.cells = [];
      this.blockLength = blockLength;
      this.currentBlock = -1;
      for (let pos = 0; pos < count; pos++) {
        const cell = document.createElement('div');
        cell.className = pos % blockLength === 0 ? 'cell block-start' : 'cell';
        cell.dataset.pos = String(pos);
        cell.dataset.state = 'masked';
        cell.innerHTML = '<span class="tok"></span><span class="bars"></span>';
        this.cells.push(cell);
      }
      this.canvas.replaceChildren(...this.cells);
    }

    outlineBlock(block) {
      if (block === this.currentBlock) return;
      for (const b of [this.currentBlock, block]) {
        const start = b * this.blockLength;
        for (const cell of this.cells.slice(start, start + this.blockLength)) {
          cell.classList.toggle('current', b === block);
        }
      }
      this.currentBlock = block;
    }

    figure(name, text) { $(`[data-figure="${name}"]`, this.root).textContent = text; }
    summary(text) { $('.summary', this.root).textContent = text; }
    message(text, kind) { showMessage($('.panel-message', this.root), text, kind); }

    record(evotoken, elapsed) {
      const byPos = [];
      for (const token of evotoken.tokens) byPos[token.pos] = token;
      const last = this.steps[this.steps.length - 1];
      if (last) this.revisions += evotoken.tokens.filter((t) => revised(last.byPos[t.pos], t)).length;
      const decided = evotoken.tokens.filter((t) => t.state === 'decoded' || t.state === 'final').length;
      this.steps.push({...evotoken, byPos, elapsed, decided, revisions: this.revisions});
      if (!this.replaying) this.show(this.steps.length - 1);
    }

    show(index) {
      const rec = this.steps[index];
      if (!rec) return;
      const before = index > 0 ? this.steps[index - 1].byPos : [];
      this.outlineBlock(rec.block);
      for (const token of rec.tokens) {
        const cell = this.cells[token.pos];
        if (cell) this.paint(cell, token, before[token.pos]);
      }
      this.shown = index;
      const total = this.body.steps;
      this.figure('step', `${rec.step + 1} / ${total}`);
      this.figure('nfe', String(rec.nfe));
      this.figure('rate', rec.elapsed > 0 ? (rec.decided / (rec.elapsed / 1000)).toFixed(1) : '\u2013');
      this.figure('elapsed', seconds(rec.elapsed));
      this.figure('revisions', String(rec.revisions));
      $('.draft', this.root).textContent = visibleDraft(rec.draft);
      if (this.cursor !== null) this.inspect(this.cursor, false);
    }

    paint(cell, token, previous) {
      const state = token.state;
      if (cell.dataset.state !== state) cell.dataset.state = state;
      const tok = cell.firstChild;
      const bars = cell.lastChild;
      let text = '';
      if (state === 'soft' && token.top && token.top.length) {
        const mask = token.mask_share || 0;
        const sum = token.top.reduce((s, [, p]) => s + p, 0) || 1;
        text = visible(token.top[0][0]);
        cell.style.setProperty('--w', ((1 - mask) * token.top[0][1] / sum).toFixed(3));
        this.paintBars(bars, token.top.map(([, p]) => (1 - mask) * p / sum), mask);
      } else if (state === 'decoded' || state === 'final') {
        text = visible(token.text);
        cell.style.setProperty('--c', (token.conf ?? 0).toFixed(3));
        if (cell.dataset.dark !== String(token.conf >= 0.55)) cell.dataset.dark = String(token.conf >= 0.55);
      }
      if (tok.textContent !== text) tok.textContent = text;
      if (revised(previous, token)) {
        cell.dataset.flash = cell.dataset.flash === 'a' ? 'b' : 'a';  // restarts the animation
      }
    }

    // The soft token's mix, as the next step's input gets it: candidate weights, then the mask's.
    paintBars(bars, weights, mask) {
      const wanted = Math.min(weights.length, MAX_BARS) + 1;
      while (bars.childElementCount < wanted) bars.append(document.createElement('i'));
      while (bars.childElementCount > wanted) bars.lastChild.remove();
      for (let j = 0; j < wanted - 1; j++) bars.children[j].style.setProperty('--h', weights[j].toFixed(3));
      const m = bars.lastChild;
      m.className = 'mask';
      m.style.setProperty('--h', mask.toFixed(3));
    }

    inspect(pos, announce) {
      if (!(pos >= 0 && pos < this.cells.length)) return;
      if (this.cursor !== null && this.cells[this.cursor]) this.cells[this.cursor].classList.remove('cursor');
      this.cursor = pos;
      if (announce) this.cells[pos].classList.add('cursor');
      const rec = this.steps[this.shown];
      const token = rec && rec.byPos[pos];
      if (!token) { this.inspector.textContent = `Position ${pos}: masked, not reached yet.`; return; }
      const parts = [`Position ${pos}: ${token.state}`];
      if (token.state === 'decoded' || token.state === 'final') {
        parts.push(`\u201c${visible(token.text)}\u201d`);
        if (token.conf !== null && token.conf !== undefined) parts.push(`confidence ${percent(token.conf)}`);
      }
      if (token.mask_share !== undefined) parts.push(`mask share ${percent(token.mask_share)}`);
      if (token.top && token.top.length) {
        parts.push(`candidates: ${token.top.map(([t, p]) => `\u201c${visible(t)}\u201d ${percent(p)}`).join(', ')}`);
      }
      this.inspector.textContent = parts.join(' \u00b7 ');
    }

    onKey(e) {
      const top = this.cells[0].offsetTop;
      const firstOfRow2 = this.cells.findIndex((c) => c.offsetTop !== top);
      const perRow = firstOfRow2 > 0 ? firstOfRow2 : this.cells.length;
      const moves = {ArrowLeft: -1, ArrowRight: 1, ArrowUp: -perRow, ArrowDown: perRow,
        Home: -Infinity, End: Infinity};
      if (!(e.key in moves)) return;
      e.preventDefault();
      const from = this.cursor === null ? 0 : this.cursor;
      const to = Math.min(this.cells.length - 1, Math.max(0, from + moves[e.key]));
      this.inspect(to, true);
      this.cells[to].scrollIntoView({block: 'nearest'});
    }
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
  keyInput.addEventListener('change', () => { storeKey(); loadDefaults(); });
  rememberKey.addEventListener('change', storeKey);
  form.elements.prompt.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); }
  });
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') stopRuns(); });

  fillDefaults();
  loadDefaults();
})();
