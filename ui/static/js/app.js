// The dashboard's shell: log-in, navigation (routes live in the URL fragment, never the
// token), theme, and the page modules.
import { token, setToken, clearToken, get, ApiError } from './api.js';
import { h, mount, errorBox, announce } from './dom.js';
import overview from './pages/overview.js';
import budgets from './pages/budgets.js';
import budget from './pages/budget.js';
import reports from './pages/reports.js';
import calculator from './pages/calculator.js';
import profiles from './pages/profiles.js';
import anomalies from './pages/anomalies.js';
import alerts from './pages/alerts.js';

const pages = {
  overview,
  budgets,
  budget,
  reports,
  calculator,
  profiles,
  anomalies,
  alerts,
};

const THEME_KEY = 'tollgate.theme';

function applyTheme() {
  const saved = localStorage.getItem(THEME_KEY);
  const dark = saved ? saved === 'dark' : matchMedia('(prefers-color-scheme: dark)').matches;
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
  const button = document.getElementById('theme');
  button.setAttribute('aria-pressed', String(dark));
  button.textContent = dark ? 'Light theme' : 'Dark theme';
}

function loginPage(problem) {
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'current-password', required: true, 'aria-describedby': 'token-help' });
  const form = h('form', { class: 'card login', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Log in'),
    h('label', { for: 'token' }, 'Admin token'),
    input,
    h('p', { id: 'token-help', class: 'muted' },
      'The control plane\'s admin token. It is kept in this tab\'s session storage only and sent in the Authorization header.'),
    problem ? errorBox(problem) : null,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Log in')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setToken(input.value.trim());
    try {
      await get('/v1/budgets?limit=1');
    } catch (err) {
      clearToken();
      loginPage(err instanceof ApiError && err.status === 401 ? Object.assign(err, { message: 'This token is not an admin token of this control plane.' }) : err);
      return;
    }
    if (!location.hash || location.hash === '#/login') location.hash = '#/overview';
    else route();
  });
  document.getElementById('nav').hidden = true;
  document.getElementById('logout').hidden = true;
  mount(form);
  input.focus();
}

let rendering = 0;

async function route() {
  if (!token()) return loginPage();
  document.getElementById('nav').hidden = false;
  document.getElementById('logout').hidden = false;
  const [path, query] = (location.hash.replace(/^#\/?/, '') || 'overview').split('?');
  const [name, ...rest] = path.split('/');
  const page = pages[name] || pages.overview;
  for (const a of document.querySelectorAll('nav a')) {
    const current = a.getAttribute('href') === '#/' + (pages[name] ? name : 'overview') || (name === 'budget' && a.getAttribute('href') === '#/budgets');
    if (current) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const mine = ++rendering;
  const main = mount(h('p', { class: 'muted' }, 'Loading…'));
  // The browser tests wait on these: which page, and whether it finished (ready or error).
  main.dataset.page = pages[name] ? name : 'overview';
  main.dataset.route = location.hash;
  main.dataset.state = 'loading';
  try {
    await page({ args: rest.map(decodeURIComponent), params: new URLSearchParams(query || ''), isCurrent: () => mine === rendering });
    document.title = `${main.querySelector('h1')?.textContent || 'Tollgate'} · Tollgate`;
    announce(`${document.title} loaded`);
    if (mine === rendering) main.dataset.state = 'ready';
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) { clearToken(); return loginPage(err); }
    if (mine !== rendering) return;
    mount(h('h1', {}, 'Something went wrong'), errorBox(err));
    main.dataset.state = 'error';
    console.error(err);
  }
}

document.getElementById('theme').addEventListener('click', () => {
  const dark = document.documentElement.dataset.theme === 'dark';
  localStorage.setItem(THEME_KEY, dark ? 'light' : 'dark');
  applyTheme();
  route();
});
document.getElementById('logout').addEventListener('click', () => {
  clearToken();
  location.hash = '';
  loginPage();
});
// Following the system's theme as it changes (unless the toggle chose one): the page is
// drawn again, for the charts read their colours when drawn.
matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
  if (localStorage.getItem(THEME_KEY)) return;
  applyTheme();
  if (token()) route();
});
// The skip link moves the focus to the page's content; following its `#main` would change
// the route.
document.querySelector('a.skip').addEventListener('click', (ev) => {
  ev.preventDefault();
  document.getElementById('main').focus();
});
window.addEventListener('hashchange', route);
applyTheme();
route();
