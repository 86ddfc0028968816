// Text as the page shows it: tokens with whitespace and control characters made visible,
// percentages and durations.

const escapeControl = (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
// A token as a cell shows it: whitespace and control characters made visible.
export function visible(text) {
  if (text === '') return '\u2205';
  if (/^ +$/.test(text)) return '\u2423'.repeat(text.length);
  return text.replace(/\n/g, '\u21b5').replace(/\t/g, '\u21e5').replace(/[\u0000-\u001f\u007f]/g, escapeControl);
}
// The draft keeps its line breaks and tabs; other control characters are shown as escapes.
export const visibleDraft = (text) => text.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, escapeControl);
export const percent = (p) => `${(100 * p).toFixed(1)}%`;
export const seconds = (ms) => `${(ms / 1000).toFixed(2)} s`;
