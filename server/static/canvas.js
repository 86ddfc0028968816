// One panel: the canvas of one decoding mode, one cell per generated position, drawn step by
// step (masked, soft with its candidates' bars, decoded, final), with its figures, its
// inspector and every recorded step for the replay.

import {$, showMessage} from './dom.js';
import {percent, seconds, visible, visibleDraft} from './format.js';

const MAX_BARS = 5;

// A revision: a decoded token replaced by a more confident one (EvoToken's step 6).
const revised = (before, now) => Boolean(before) && before.state === 'decoded'
  && (now.state === 'decoded' || now.state === 'final') && before.id !== now.id;

// A special token (`<|endoftext|>`, `<|eot_id|>`): the answer's end and the padding after it.
const settled = (t) => Boolean(t) && (t.state === 'decoded' || t.state === 'final');
const isSpecial = (t) => settled(t) && /^<\|.*\|>$/.test(t.text);

export class Panel {
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
    this.tail = null;        // {start, count}: the collapsed run of padding, when there is one
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
    this.collapseTail(rec);
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

  // Once an answer has ended, the rest of the canvas is one special token repeated (end-of-text
  // padding): that run is drawn as its first cell, marked with its length, and the rest are
  // hidden. Only the drawing changes; every position is still in the stream and in the replay.
  collapseTail(rec) {
    if (this.tail) {
      for (const cell of this.cells.slice(this.tail.start)) cell.classList.remove('tail', 'tail-hidden');
      this.tail = null;
    }
    const n = this.cells.length;
    const last = rec.byPos[n - 1];
    if (!isSpecial(last)) return;
    let start = n - 1;
    while (start > 0 && settled(rec.byPos[start - 1]) && rec.byPos[start - 1].id === last.id) start--;
    if (n - start < 2) return;
    this.tail = {start, count: n - start};
    this.cells[start].classList.add('tail');
    this.cells[start].firstChild.dataset.count = String(n - start);
    for (const cell of this.cells.slice(start + 1)) cell.classList.add('tail-hidden');
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
    const run = this.tail && pos === this.tail.start
      ? `Positions ${pos}\u2013${pos + this.tail.count - 1} (${this.tail.count} cells shown as one)` : `Position ${pos}`;
    const parts = [`${run}: ${token.state}`];
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
    const firstOfRow2 = this.cells.findIndex((c) => c.offsetParent !== null && c.offsetTop !== top);
    const perRow = firstOfRow2 > 0 ? firstOfRow2 : this.cells.length;
    const lastShown = this.tail ? this.tail.start : this.cells.length - 1;  // hidden cells are skipped
    const moves = {ArrowLeft: -1, ArrowRight: 1, ArrowUp: -perRow, ArrowDown: perRow,
      Home: -Infinity, End: Infinity};
    if (!(e.key in moves)) return;
    e.preventDefault();
    const from = this.cursor === null ? 0 : this.cursor;
    const to = Math.min(lastShown, Math.max(0, from + moves[e.key]));
    this.inspect(to, true);
    this.cells[to].scrollIntoView({block: 'nearest'});
  }
}
