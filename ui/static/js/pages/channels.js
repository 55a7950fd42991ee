// Alert channels (`#/alerts/channels`): the list, with a test alert sent on demand
// (POST /v1/channels/{id}/test, the attempt's outcome shown as the API answered it) and
// delete (If-Match: a channel changed since the list was read is a 412, shown as such); and a
// form to create one. Secrets are written, never read back (docs/alerts.md).
import { get, request, serves, ApiError } from '../api.js';
import { h, mount, table, when, announce, errorBox } from '../dom.js';
import { field, select, clearMarks, showApiError } from '../forms.js';
import { tabs } from './alerts.js';

const SEVERITIES = [['info', 'info (everything)'], ['warning', 'warning and critical'], ['critical', 'critical only']];

export default async function channels({ args }) {
  if (args[0] === 'new') return form();
  // An older control plane has no test endpoint: the button is left out, never called.
  const [list, canTest] = await Promise.all([get('/v1/channels'), serves('/v1/channels/{id}/test')]);
  mount(h('h1', {}, 'Alert channels'), tabs('channels'),
    h('div', { class: 'actions' }, h('a', { class: 'button', href: '#/alerts/channels/new' }, 'New channel')),
    list.length ? table(['Channel', 'Kind', 'Destination', 'Sends', 'Enabled', 'Created', 'Actions'],
      list.map((c) => [c.id, c.target.kind, destination(c.target), `${c.min_severity} and up`, c.enabled ? 'yes' : 'no', when(c.created_at_ms),
        actions(c, canTest)]), { caption: 'Alert channels' })
      : h('p', { class: 'muted' }, 'No channels: alerts are listed here but sent nowhere.'));
}

function destination(t) {
  if (t.kind === 'webhook') return t.url;
  if (t.kind === 'slack') return `${t.origin} (path hidden)`;
  return `${t.to.join(', ')} via ${t.host}:${t.port} (${t.tls})`;
}

function actions(c, canTest) {
  const out = h('div', { class: 'outcome', 'aria-live': 'polite', 'data-channel': c.id });
  const confirmRow = h('span', { hidden: true },
    ` Delete ${c.id}? `,
    h('button', { type: 'button', class: 'danger', onclick: async () => {
      try {
        await request('DELETE', '/v1/channels/' + encodeURIComponent(c.id), { ifMatch: c.version });
        announce(`Channel ${c.id} deleted`);
        location.reload();
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        out.replaceChildren(errorBox(err));
      }
    } }, 'Delete channel'),
    ' ',
    h('button', { type: 'button', class: 'ghost', onclick: () => { confirmRow.hidden = true; } }, 'Cancel'));
  return h('div', {},
    h('div', { class: 'actions' },
      canTest && h('button', { type: 'button', class: 'ghost', 'aria-label': `Send test alert to ${c.id}`, onclick: async (ev) => {
        const button = ev.currentTarget;
        button.disabled = true;
        out.replaceChildren(h('span', { class: 'muted' }, 'Sending…'));
        try {
          const t = await (await request('POST', `/v1/channels/${encodeURIComponent(c.id)}/test`)).json();
          out.replaceChildren(h('span', { class: `badge sev-${t.ok ? 'ok' : 'critical'}`, 'data-testid': 'test-outcome' },
            t.ok ? `test delivered${t.status ? ` (HTTP ${t.status})` : ''} in ${t.duration_ms} ms` : `test failed: ${t.error || `HTTP ${t.status}`}`));
        } catch (err) {
          if (!(err instanceof ApiError)) throw err;
          out.replaceChildren(errorBox(err));
        } finally {
          button.disabled = false;
        }
      } }, 'Send test'),
      h('button', { type: 'button', class: 'ghost', 'aria-label': `Delete ${c.id}`, onclick: () => { confirmRow.hidden = false; confirmRow.querySelector('button').focus(); } }, 'Delete'),
      confirmRow),
    out);
}

function form() {
  const id = (n) => 'ch-' + n;
  const input = (name, attrs = {}) => h('input', { id: id(name), name, ...attrs });
  const kind = select(id('kind'), 'kind', [['webhook', 'signed webhook'], ['slack', 'Slack-compatible webhook'], ['email', 'email (SMTP)']], 'webhook');
  const only = (kinds, ...children) => h('div', { class: 'row', 'data-kinds': kinds }, ...children);
  const fields = [
    h('div', { class: 'row' },
      field(id('id'), 'Id', input('id', { required: true, pattern: '[A-Za-z0-9._-]{1,64}' }), 'letters, digits . _ -'),
      field(id('kind'), 'Kind', kind),
      field(id('min_severity'), 'Send', select(id('min_severity'), 'min_severity', SEVERITIES, 'info')),
      h('div', {}, h('label', { for: id('enabled') }, h('input', { type: 'checkbox', id: id('enabled'), name: 'enabled', checked: true }), ' Enabled'))),
    only('webhook slack', field(id('url'), 'URL', input('url', { type: 'url', size: 48, placeholder: 'https://hooks.example.com/tollgate' }))),
    only('webhook', field(id('secret'), 'Signing secret', input('secret', { type: 'password', autocomplete: 'new-password' }), 'at least 16 bytes')),
    only('email',
      field(id('host'), 'SMTP host', input('host')),
      field(id('port'), 'Port', input('port', { inputmode: 'numeric', placeholder: 'by TLS' })),
      field(id('tls'), 'TLS', select(id('tls'), 'tls', [['starttls', 'STARTTLS'], ['tls', 'TLS (SMTPS)'], ['none', 'none (a local relay)']], 'starttls')),
      field(id('username'), 'User', input('username', { autocomplete: 'off' })),
      field(id('password'), 'Password', input('password', { type: 'password', autocomplete: 'new-password' })),
      field(id('from'), 'From', input('from', { placeholder: 'Tollgate <alerts@example.com>' })),
      field(id('to'), 'To', input('to', { placeholder: 'finops@example.com, …' }), 'comma-separated')),
  ];
  const problems = h('div', { 'aria-live': 'assertive' });
  const formEl = h('form', { id: 'channel-form', 'aria-label': 'New channel', novalidate: true }, ...fields, problems,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create channel'), h('a', { class: 'button ghost', href: '#/alerts/channels' }, 'Cancel')));
  const showKind = () => {
    for (const el of formEl.querySelectorAll('[data-kinds]')) el.hidden = !el.dataset.kinds.split(' ').includes(kind.value);
  };
  kind.addEventListener('change', showKind);
  showKind();
  formEl.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearMarks(formEl);
    const data = new FormData(formEl);
    const v = (k) => String(data.get(k) ?? '').trim();
    const target = { kind: v('kind') };
    if (target.kind === 'webhook') Object.assign(target, { url: v('url'), secret: String(data.get('secret') ?? '') });
    else if (target.kind === 'slack') target.url = v('url');
    else {
      Object.assign(target, { host: v('host'), tls: v('tls'), from: v('from'), to: v('to').split(',').map((x) => x.trim()).filter(Boolean) });
      if (v('port')) target.port = /^\d+$/.test(v('port')) ? Number(v('port')) : v('port');
      if (v('username')) target.username = v('username');
      if (data.get('password')) target.password = String(data.get('password'));
    }
    const body = { id: v('id'), min_severity: v('min_severity'), enabled: !!data.get('enabled'), target };
    try {
      await request('POST', '/v1/channels', { body });
      announce(`Channel ${body.id} created`);
      location.hash = '#/alerts/channels';
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      showApiError(formEl, problems, err, { prefix: 'ch-', what: `channel ${body.id}` });
    }
  });
  mount(h('h1', {}, 'New alert channel'), tabs('channels'),
    h('p', { class: 'muted' }, 'Secrets (the signing secret, a Slack URL\'s path, the SMTP password) are stored as written and never shown again.'),
    formEl);
}
