// Alerts: the events (each linked to the budget's or the scope's chart at its moment, and to
// its deliveries), dead letters, and the alert channels (list, create, send a test, delete:
// channels.js).
import { get, qs } from '../api.js';
import { h, mount, table, when } from '../dom.js';
import { alertLine } from './overview.js';
import channels from './channels.js';

const TABS = [['', 'Alerts'], ['dead-letters', 'Dead letters'], ['channels', 'Channels']];

export function tabs(current) {
  return h('nav', { class: 'actions', 'aria-label': 'Alert pages' },
    TABS.map(([k, t]) => h('a', { class: k === current ? 'button' : 'button ghost', href: k ? `#/alerts/${k}` : '#/alerts', 'aria-current': k === current ? 'page' : null }, t)));
}

export default async function alerts({ args, params }) {
  if (args[0] === 'channels') return channels({ args: args.slice(1) });
  if (args[0] === 'deliveries') return deliveries(args[1]);
  if (args[0] === 'dead-letters') return deadLetters();
  const limit = Number(params.get('limit')) || 100;
  const list = await get('/v1/alerts' + qs({ limit }));
  mount(h('h1', {}, 'Alerts'), tabs(''),
    h('p', { class: 'muted' }, `The latest ${limit} alert events, newest first (docs/alerts.md). Each links to the chart at its moment and to its deliveries.`),
    list.length ? table(['When', 'Severity', 'Kind', 'What', 'Deliveries'],
      list.map((a) => [when(a.at_ms), h('span', { class: `badge sev-${a.severity}` }, a.severity), a.kind.replace(/_/g, ' '),
        h('span', {}, ...alertLine(a, { time: false })),
        h('a', { href: '#/alerts/deliveries/' + encodeURIComponent(a.id), 'aria-label': `Deliveries of ${a.id}` }, 'deliveries')]),
      { caption: 'Alerts' })
      : h('p', { class: 'muted' }, 'No alerts.'));
}

function attemptsTable(attempts) {
  if (!attempts.length) return h('span', { class: 'muted' }, 'no attempt yet');
  return table(['Attempt', 'When', 'Outcome', 'Status', 'Error', 'Took'],
    attempts.map((t, i) => [String(i + 1), when(t.at_ms), t.ok ? 'delivered' : 'failed', t.status ?? '—', t.error || '', `${t.duration_ms} ms`]),
    { caption: 'Attempts', numeric: [0, 3, 5] });
}

async function deliveries(id) {
  const records = await get(`/v1/alerts/${encodeURIComponent(id)}/deliveries`);
  const alert = records[0] && records[0].alert;
  mount(h('h1', {}, 'Deliveries'), tabs(null),
    h('p', {}, 'Alert ', h('code', {}, id), alert ? [': ', ...alertLine(alert)] : ''),
    records.length ? records.map((r) => h('section', { class: 'card', style: { marginTop: '12px' }, 'aria-label': `Delivery to ${r.channel_id}` },
      h('h2', {}, `${r.channel_id} (${r.channel_kind})`),
      h('p', {}, h('span', { class: `badge sev-${r.state === 'delivered' ? 'ok' : r.state === 'dead' ? 'critical' : 'warning'}` }, r.state),
        r.state === 'pending' ? ` · held by ${r.owner} until ${when(r.lease_until_ms)}` : ''),
      attemptsTable(r.attempts)))
      : h('p', { class: 'muted' }, 'No channel wanted this alert (none, or none at its severity).'));
}

async function deadLetters() {
  const dead = await get('/v1/alerts/dead-letters');
  mount(h('h1', {}, 'Dead letters'), tabs('dead-letters'),
    h('p', { class: 'muted' }, 'Deliveries that failed every attempt (kept 7 days), newest alert first.'),
    dead.length ? table(['Alert', 'Channel', 'Attempts', 'Last error'],
      dead.map((r) => [h('a', { href: '#/alerts/deliveries/' + encodeURIComponent(r.alert.id) }, r.alert.id), `${r.channel_id} (${r.channel_kind})`,
        String(r.attempts.length), r.attempts.length ? r.attempts[r.attempts.length - 1].error || `HTTP ${r.attempts[r.attempts.length - 1].status}` : '']),
      { caption: 'Dead letters', numeric: [2] })
      : h('p', { class: 'muted' }, 'None: every delivery arrived or is still being tried.'));
}
