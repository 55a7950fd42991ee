// Form pieces the editing pages share: labelled inputs, the API's validation shown on the
// field it names, and a stale write (412 on If-Match) shown as the conflict it is.
import { h, errorBox } from './dom.js';

/** A labelled field; `input` must carry the id `prefix + name`. */
export function field(id, label, input, hint) {
  return h('div', {},
    h('label', { for: id }, label, hint ? h('span', { class: 'hint' }, ` (${hint})`) : null), input);
}

export function select(id, name, options, value, attrs = {}) {
  return h('select', { id, name, ...attrs }, options.map(([v, t]) => h('option', { value: v, selected: v === (value ?? '') }, t)));
}

/** Clears the marks a previous error left on the form. */
export function clearMarks(formEl) {
  for (const el of formEl.querySelectorAll('[aria-invalid]')) {
    el.removeAttribute('aria-invalid');
    el.removeAttribute('aria-errormessage');
  }
}

/**
 * Shows `err` (an ApiError) in `problems`. The field it names (`settings.limit_usd`,
 * `target.url`: the last part of the path, under `prefix`) is marked and focused; a 412 says
 * the record changed since it was read and that saving again overwrites, keeping the edits.
 * `what` names the record ("profile low").
 */
export function showApiError(formEl, problems, err, { prefix, what, reloadHref, fieldOf } = {}) {
  const box = errorBox(err);
  box.id = `${formEl.id || 'form'}-error`;
  if (err.status === 412) {
    box.prepend(h('p', { 'data-testid': 'conflict' }, h('strong', {}, 'Edit conflict. '),
      `Someone changed ${what} after you opened it. Your edits are still in the form; `,
      reloadHref ? [h('a', { href: reloadHref, onclick: () => setTimeout(() => location.reload(), 0) }, `reload ${what}`), ' to see theirs, or '] : '',
      'save again to overwrite them.'));
  }
  problems.replaceChildren(box);
  const name = err.field ? (fieldOf ? fieldOf(String(err.field)) : String(err.field).split('.').pop().split('[')[0]) : null;
  const target = name && formEl.querySelector(`#${CSS.escape(prefix + name)}`);
  if (target && !target.disabled) {
    target.setAttribute('aria-invalid', 'true');
    target.setAttribute('aria-errormessage', box.id);
    target.focus();
  } else {
    box.tabIndex = -1;
    box.focus();
  }
}

/** A "Delete…" button that asks first; `run` does it and returns nothing or throws. */
export function deleteSection(title, question, buttonText, run) {
  const out = h('div', { 'aria-live': 'polite' });
  const confirmRow = h('div', { class: 'actions', hidden: true },
    h('span', {}, question),
    h('button', { type: 'button', class: 'danger', onclick: async () => {
      try { await run(); } catch (err) {
        if (!err.status) throw err;
        out.replaceChildren(errorBox(err));
        out.firstChild.tabIndex = -1;
        out.firstChild.focus();
      }
    } }, buttonText),
    h('button', { type: 'button', class: 'ghost', onclick: () => { confirmRow.hidden = true; opener.focus(); } }, 'Cancel'));
  const opener = h('button', { type: 'button', class: 'ghost', onclick: () => { confirmRow.hidden = false; confirmRow.querySelector('button').focus(); } }, `${buttonText}…`);
  return h('section', { class: 'card', style: { marginTop: '16px' }, 'aria-label': title },
    h('h2', {}, title), opener, confirmRow, out);
}
