// login.test.mjs: signing in and out in a real browser, as a person does: the form, a wrong
// password, Enter, a reload keeping the session, and sign-out ending it for good.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startStack, stopAll, launch, newPage, signIn, settle, assertClean, axe, noOverflow, unsafeDomUses, ADMIN, ROOT } from './lib/browser.mjs';

let stack;
let browser;

before(async () => {
  stack = await startStack({ dataplane: false });
  browser = await launch();
});

after(() => stopAll(browser, stack));

test('signed out, / shows one form with a labelled email, a labelled password and a submit button', async () => {
  const page = await newPage(browser, stack);
  await page.goto('/');
  await settle(page);
  assert.match(page.url(), /#\/login$/);
  const forms = page.locator('form');
  assert.equal(await forms.count(), 1);
  const email = page.getByLabel('Email');
  const password = page.getByLabel('Password');
  assert.equal(await email.getAttribute('type'), 'email');
  assert.equal(await password.getAttribute('type'), 'password');
  assert.equal(await forms.locator('button[type=submit]').count(), 1);
  assert.equal(await forms.locator('#' + await email.getAttribute('id')).count(), 1, 'email is in the form');
  assert.equal(await forms.locator('#' + await password.getAttribute('id')).count(), 1, 'password is in the form');
  assert.equal(await page.locator('html').getAttribute('lang'), 'en');
  assert.match(await page.locator('meta[name=viewport]').getAttribute('content'), /width=device-width/);
  assert.deepEqual(await axe(page), []);
  assert.deepEqual(await noOverflow(page), []);
  assertClean(page);
  await page.context().close();
});

test('a wrong password shows an alert and stays on the form; Enter signs in; a reload keeps the session', async () => {
  const page = await newPage(browser, stack);
  await page.goto('/#/login');
  await settle(page);
  await page.getByLabel('Email').fill(ADMIN.email);
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByLabel('Password').press('Enter');
  const alert = page.getByRole('alert');
  await alert.waitFor({ state: 'visible' });
  assert.match(await alert.innerText(), /wrong email or password/i);
  assert.match(page.url(), /#\/login$/);
  assert.equal(await page.getByLabel('Email').inputValue(), ADMIN.email, 'the email is kept');
  assert.equal(await page.locator('#sign-out').count(), 0, 'not signed in');

  // Enter in the password field submits the form (signIn presses Enter, never clicks).
  await signIn(page, ADMIN.email, ADMIN.password);
  assert.match(page.url(), /#\/$/);
  assert.equal(await page.getByLabel('Password').count(), 0, 'the form is gone');
  const header = page.locator('#app-header');
  assert.match(await header.innerText(), /Platform admin/);
  assert.equal(await page.locator('#whoami').getAttribute('title'), ADMIN.email);

  // The session is an HttpOnly, SameSite=Strict cookie and nothing is kept in web storage.
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'tollgate_session');
  assert.ok(session, 'a session cookie');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
  assert.deepEqual(await page.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie]), [0, 0, '']);

  await page.reload();
  await settle(page);
  await page.locator('#sign-out').waitFor({ state: 'visible' });
  assert.match(page.url(), /#\/$/);
  assert.equal(await page.getByLabel('Password').count(), 0, 'still signed in after a reload');
  assertClean(page);
  await page.context().close();
});

test('sign out ends the session: the old cookie gets 401 afterwards', async () => {
  const page = await newPage(browser, stack);
  await signIn(page);
  const session = (await page.context().cookies()).find((c) => c.name === 'tollgate_session');
  const me = (cookie) => fetch(`${stack.base}/api/v1/me`, { headers: { cookie: `tollgate_session=${cookie}` } });
  assert.equal((await me(session.value)).status, 200, 'the cookie works before sign-out');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Email').waitFor({ state: 'visible' });
  assert.match(page.url(), /#\/login$/);
  assert.equal((await me(session.value)).status, 401, 'the old session is refused after sign-out');
  const left = (await page.context().cookies()).find((c) => c.name === 'tollgate_session');
  assert.ok(!left || left.value === '', 'the cookie is cleared');

  // A bookmarked view asks for sign-in again, then opens.
  await page.goto('/#/usage');
  await settle(page);
  assert.match(page.url(), /#\/login$/);
  await page.getByLabel('Email').fill(ADMIN.email);
  await page.getByLabel('Password').fill(ADMIN.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#sign-out').waitFor({ state: 'visible' });
  await settle(page);
  assert.match(page.url(), /#\/usage$/);
  assertClean(page);
  await page.context().close();
});

test('a session ended elsewhere sends the page to the sign-in form, then back where it was', async () => {
  const page = await newPage(browser, stack);
  await signIn(page);
  const session = (await page.context().cookies()).find((c) => c.name === 'tollgate_session');
  const cookie = `tollgate_session=${session.value}`;
  const me = await (await fetch(`${stack.base}/api/v1/me`, { headers: { cookie } })).json();
  const out = await fetch(`${stack.base}/api/v1/auth/logout`, { method: 'POST', headers: { cookie, 'x-csrf-token': me.csrf_token } });
  assert.equal(out.status, 204);
  await page.locator('#app-nav').getByRole('link', { name: 'Usage' }).click();
  await page.getByLabel('Email').waitFor({ state: 'visible' });
  assert.match(page.url(), /#\/login$/);
  assert.equal(await page.locator('#sign-out').count(), 0, 'the header no longer says signed in');
  await page.getByLabel('Email').fill(ADMIN.email);
  await page.getByLabel('Password').fill(ADMIN.password);
  await page.getByLabel('Password').press('Enter');
  await page.locator('#sign-out').waitFor({ state: 'visible' });
  await settle(page);
  assert.match(page.url(), /#\/usage/);
  assertClean(page);
  await page.context().close();
});

test('navigation is real links and shows only what the role allows', async () => {
  const tenant = await stack.cp.makeTenant(stack.admin, 'nav-acme');
  await stack.cp.makeUser('viewer@nav.test', { tenantId: tenant.id, role: 'viewer' });
  const page = await newPage(browser, stack);
  await signIn(page, 'viewer@nav.test', ADMIN.password);
  const links = await page.locator('#app-nav a').evaluateAll((as) => as.map((a) => [a.textContent, a.getAttribute('href')]));
  for (const [, href] of links) assert.match(href, /^#\//);
  const names = links.map(([n]) => n);
  assert.ok(names.includes('Keys') && names.includes('Requests') && names.includes('Usage'), names.join());
  for (const hidden of ['Tenants', 'Users', 'Providers', 'Audit log']) assert.ok(!names.includes(hidden), `${hidden} hidden from a viewer`);
  assert.match(await page.locator('#my-roles').innerText(), /viewer of nav-acme/);
  await page.context().close();
});

test('keyboard only: Tab reaches the fields in order, Enter signs in, the navigation is reachable', async () => {
  const page = await newPage(browser, stack);
  await page.goto('/');
  await settle(page);
  const focused = () => page.evaluate(() => {
    const a = document.activeElement;
    return a.labels && a.labels[0] ? a.labels[0].textContent.replace(/\s*\*$/, '') : a.textContent.trim();
  });
  // the login view puts focus in the email field
  assert.equal(await focused(), 'Email');
  await page.keyboard.type(ADMIN.email);
  await page.keyboard.press('Tab');
  assert.equal(await focused(), 'Password');
  await page.keyboard.type(ADMIN.password);
  await page.keyboard.press('Tab');
  assert.equal(await focused(), 'Sign in');
  await page.keyboard.press('Enter');
  await page.locator('#sign-out').waitFor({ state: 'visible' });
  await settle(page);
  // a fresh page, from the top: the skip link, then the header, then the navigation
  await page.reload();
  await settle(page);
  await page.keyboard.press('Tab');
  assert.equal(await focused(), 'Skip to content');
  const seen = [];
  for (let i = 0; i < 12 && !seen.includes('Usage'); i++) { await page.keyboard.press('Tab'); seen.push(await focused()); }
  assert.ok(seen.includes('Sign out') && seen.includes('Overview') && seen.includes('Usage'), seen.join(' | '));
  await page.keyboard.press('Enter');
  await settle(page);
  assert.match(page.url(), /#\/usage/);
  assertClean(page);
  await page.context().close();
});

test('the page has no inline script or style, and web/js never turns a string into HTML', async () => {
  const html = readFileSync(path.join(ROOT, 'web/index.html'), 'utf8');
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i, 'every <script> has a src');
  assert.doesNotMatch(html, /<style|\sstyle=|\son[a-z]+=/i);
  assert.deepEqual(unsafeDomUses(), []);
});
