// The page's two DOM helpers, shared by the modules: a query, and a message box that shows
// text (or hides itself when there is none).

export const $ = (selector, root = document) => root.querySelector(selector);

// --- messages: every failure ends up on the page, never as a blank screen ---------------
export function showMessage(box, text, kind = 'error') {
  box.textContent = text;
  box.dataset.kind = kind;
  box.hidden = !text;
}
