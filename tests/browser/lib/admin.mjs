// admin.mjs: helpers for the admin views' browser suites (tenants, users, providers, routes,
// prices, budgets, tokens, audit, profile): API setup as an operator would do it, and checks
// made in the page.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

// Every route of the dashboard's table, with its ids filled in.
export function allRoutes({ tid, kid }) {
  return ['#/', '#/overview', `#/t/${tid}/keys`, `#/t/${tid}/keys/${kid}`, '#/requests', '#/usage',
    '#/tenants', `#/t/${tid}`, `#/t/${tid}/budgets`, '#/users', '#/providers', '#/routes',
    '#/prices', '#/tokens', '#/audit', '#/me'];
}

// The admin views (the ones this suite's views own), for scans.
export function adminRoutes({ tid }) {
  return ['#/tenants', `#/t/${tid}`, `#/t/${tid}/budgets`, '#/users', '#/providers', '#/routes',
    '#/prices', '#/tokens', '#/audit', '#/me'];
}

export async function api(stack, method, p, body, token = stack.admin) {
  const r = await stack.cp.api(method, p, { token, body });
  assert.ok(r.status < 300, `${method} ${p}: ${r.status} ${r.text}`);
  return r.body;
}

export async function makeUser(stack, email, { name, tenantId, role, password = 'a-password-for-tests' } = {}) {
  const body = { email, password, ...(name ? { name } : {}), ...(tenantId ? { tenant_id: tenantId, role } : {}) };
  return api(stack, 'POST', '/api/v1/users', body);
}

// The controls in <main> that change something: buttons, links and menus named like a write
// (create, add, edit, save, delete, remove, rotate, revoke, rename, disable, set), and every
// form field outside a filter or search form. `allowForms` names forms (aria-label) that are
// allowed (a person's own profile). Returns descriptions, [] when there is none.
export async function writeControls(page, { allowForms = [] } = {}) {
  return page.evaluate((allow) => {
    const main = document.getElementById('app-main');
    const out = [];
    const WRITE = /\b(create|add|new|edit|save|delete|remove|rotate|revoke|rename|disable|enable|set|change|invite|update)\b/i;
    const visible = (e) => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
    const allowed = (e) => {
      const f = e.closest('form');
      if (f && (f.getAttribute('role') === 'search' || f.classList.contains('filters'))) return true;
      if (e.closest('.filters, [role=search]')) return true;
      if (f && allow.includes(f.getAttribute('aria-label'))) return true;
      return false;
    };
    const name = (e) => (e.getAttribute('aria-label') || e.textContent || e.value || '').trim().replace(/\s+/g, ' ');
    for (const e of main.querySelectorAll('button, a, [role=button], [role=menuitem], summary')) {
      if (allowed(e)) continue;
      const n = name(e);
      if (WRITE.test(n)) out.push(`${e.tagName.toLowerCase()} "${n.slice(0, 80)}"${visible(e) ? '' : ' (hidden)'}`);
    }
    for (const e of main.querySelectorAll('input, select, textarea')) {
      if (allowed(e) || e.readOnly) continue;
      const label = e.labels && e.labels[0] ? e.labels[0].textContent.trim() : e.getAttribute('aria-label') || e.name;
      out.push(`${e.tagName.toLowerCase()} "${label}"${visible(e) ? '' : ' (hidden)'}`);
    }
    return out;
  }, allowForms);
}

// The text of <main>, for comparing two pages.
export async function mainText(page) {
  return page.evaluate(() => document.getElementById('app-main').innerText.trim());
}

export function randomId() {
  return randomUUID();
}
